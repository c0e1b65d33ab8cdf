/*  server: pbtd's reactor. See server.h and proto/PROTOCOL.md. */
#include "server.h"
#include "server_priv.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"
#include "settings.h"
#include "pbt.h"

int64_t
server_now_ms (void)
{
    struct timeval tv;
    gettimeofday (&tv, NULL);
    return (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

//  --------------------------------------------------------------------------
//  Sending

static void
s_free_buf (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Send an encoded body (taken: libzmq frees it once sent, no copy).
static int
s_send_raw (zsock_t *sock, zframe_t *routing_id, uint8_t *buf, size_t len)
{
    void *handle = zsock_resolve (sock);
    //  ROUTER_MANDATORY: a peer that went away makes this fail rather than
    //  silently dropping an assignment.
    if (zmq_send (handle, zframe_data (routing_id), zframe_size (routing_id),
                  ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        free (buf);
        return -1;
    }
    zmq_msg_t body;
    if (zmq_msg_init_data (&body, buf, len, s_free_buf, NULL)) {
        free (buf);
        return -1;
    }
    if (zmq_msg_send (&body, handle, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&body);
        return -1;
    }
    return 0;
}

//  One assignment handed to ZeroMQ: its turnaround since t_in (status).
static void
s_turn_note (server_t *self, int64_t t_in)
{
    if (!t_in || !self->turn_ms)
        return;
    self->turn_ms [self->turn_i] = (float) (zclock_usecs () - t_in) / 1000.0f;
    self->turn_i = (self->turn_i + 1) % SERVER_TURN_RING;
    if (self->turn_n < SERVER_TURN_RING)
        self->turn_n++;
}

//  Encode and send, or, inside a batch, queue until the batch commits
//  (an assign below the durable id ceiling goes at once).
//  peer_key names the worker an assign is for (NULL otherwise).
static int
s_send_to (server_t *self, zsock_t *sock, zframe_t *routing_id, const proto_msg_t *msg,
           const char *peer_key)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_encode (msg, &buf, &len)) {
        log_error ("encode_failed", "type=%s", proto_type_name (msg->type));
        return -1;
    }
    if (!self->batching)
        return s_send_raw (sock, routing_id, buf, len);
    if (msg->type == PROTO_ASSIGN && msg->u.assign.assignment_id < self->asg_ceiling_durable) {
        //  Nothing in it needs to be durable first: its states travel in
        //  it, and if the batch is lost its id is never issued again, so
        //  the worker's heartbeat or result is refused (unknown_assignment).
        int rc = s_send_raw (sock, routing_id, buf, len);
        if (rc == 0)
            s_turn_note (self, self->msg_in_us);
        return rc;
    }
    outmsg_t *out = calloc (1, sizeof *out);
    assert (out);
    out->sock = sock;
    out->routing_id = zframe_dup (routing_id);
    assert (out->routing_id);
    out->buf = buf;
    out->len = len;
    out->type = msg->type;
    out->t_in = self->msg_in_us;
    if (msg->type == PROTO_ACK) {
        out->applied = msg->u.ack.applied;
        out->assignment_id = msg->u.ack.assignment_id;
    }
    else
    if (msg->type == PROTO_ASSIGN)
        out->assignment_id = msg->u.assign.assignment_id;
    if (peer_key)
        snprintf (out->peer_key, sizeof out->peer_key, "%s", peer_key);
    zlistx_add_end (self->outbox, out);
    return 0;
}

static int
s_send (server_t *self, zsock_t *sock, zframe_t *routing_id, const proto_msg_t *msg)
{
    return s_send_to (self, sock, routing_id, msg, NULL);
}

static void
s_outmsg_destroy (outmsg_t **out_p)
{
    outmsg_t *out = *out_p;
    if (!out)
        return;
    zframe_destroy (&out->routing_id);
    free (out->buf);
    free (out);
    *out_p = NULL;
}

static void
s_send_error (server_t *self, zsock_t *sock, zframe_t *routing_id, proto_code_t code,
              uint64_t assignment_id, const char *fmt, ...)
    __attribute__ ((format (printf, 6, 7)));

static void
s_send_error (server_t *self, zsock_t *sock, zframe_t *routing_id, proto_code_t code,
              uint64_t assignment_id, const char *fmt, ...)
{
    proto_msg_t msg = { .type = PROTO_ERROR };
    msg.u.error.code = code;
    msg.u.error.assignment_id = assignment_id;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg.u.error.message, sizeof msg.u.error.message, fmt, ap);
    va_end (ap);
    log_info ("error_sent", "code=%s assignment=%" PRIu64 " msg=\"%s\"",
              proto_code_name (code), assignment_id, msg.u.error.message);
    s_send (self, sock, routing_id, &msg);
}

//  --------------------------------------------------------------------------
//  Agents, leases, peers

static agent_t *
s_agent (server_t *self, int64_t id)
{
    return id >= 0 && id < self->n_agents ? &self->agents [id] : NULL;
}

//  --------------------------------------------------------------------------
//  State cache: an agent's current state, kept so assignments need no
//  snapshot read. Filled from results (the state arrives anyway), from
//  the donor at an evolution, or from SQLite on a miss.

static void
s_cache_drop (agent_t *agent)
{
    proto_state_free (&agent->state);
    agent->state_cached = false;
    agent->state_version = 0;
}

//  Take *state (stolen: *state is zeroed) as agent's state at version.
static void
s_cache_take (server_t *self, agent_t *agent, uint64_t version, proto_state_t *state)
{
    s_cache_drop (agent);
    if (!self->cache_states || !state->params) {
        proto_state_free (state);
        return;
    }
    agent->state = *state;
    memset (state, 0, sizeof *state);
    agent->state_version = version;
    agent->state_cached = true;
}

//  Copy donor's cached state into agent at version (an evolution).
static void
s_cache_copy (server_t *self, agent_t *agent, uint64_t version, const agent_t *donor)
{
    s_cache_drop (agent);
    if (!donor->state_cached || donor->state_version != donor->a.version)
        return;
    proto_state_t st;
    if (proto_state_alloc (&st, donor->state.n_params))
        return;
    size_t bytes = (size_t) donor->state.n_params * sizeof (float);
    memcpy (st.params, donor->state.params, bytes);
    memcpy (st.adam_m, donor->state.adam_m, bytes);
    memcpy (st.adam_v, donor->state.adam_v, bytes);
    st.adam_t = donor->state.adam_t;
    s_cache_take (self, agent, version, &st);
}

static void
s_cache_clear (server_t *self)
{
    for (int i = 0; i < self->n_agents; i++)
        s_cache_drop (&self->agents [i]);
}

static int
s_reload_agent (server_t *self, int64_t id)
{
    agent_t *agent = s_agent (self, id);
    assert (agent);
    return db_load_agent (self->db, id, &agent->a) == 0 ? 0 : -1;
}

static lease_t *
s_lease_find (server_t *self, uint64_t id)
{
    for (lease_t *l = zlistx_first (self->leases); l; l = zlistx_next (self->leases))
        if (l->a.id == id)
            return l;
    return NULL;
}

uint32_t
server_leases_in_flight (server_t *self)
{
    return (uint32_t) zlistx_size (self->leases);
}

void
server_release_lease (server_t *self, lease_t *lease)
{
    for (uint32_t i = 0; i < lease->a.n_seats; i++) {
        agent_t *agent = s_agent (self, lease->a.seats [i].agent_id);
        if (agent && !lease->a.seats [i].frozen && agent->assignment == lease->a.id) {
            agent->busy = false;
            agent->assignment = 0;
            agent->freed_us = self->any_freed_us = zclock_usecs ();
        }
    }
    void *handle = zlistx_find (self->leases, lease);
    assert (handle);
    zlistx_delete (self->leases, handle);
    free (lease);
}

void
server_expire_lease (server_t *self, lease_t *lease, const char *why)
{
    log_warn ("lease_expired", "assignment=%" PRIu64 " worker=\"%s\" why=%s",
              lease->a.id, lease->a.worker, why);
    metrics_lease_expired (self->metrics);
    if (db_assignment_expire (self->db, lease->a.id))
        log_error ("lease_expire_failed", "assignment=%" PRIu64, lease->a.id);
    server_release_lease (self, lease);
}

static peer_t *
s_peer_find (server_t *self, zframe_t *routing_id)
{
    char *key = zframe_strhex (routing_id);
    peer_t *peer = key ? zhashx_lookup (self->peers, key) : NULL;
    free (key);
    return peer;
}

static void
s_unpark (server_t *self, peer_t *peer)
{
    if (!peer->parked)
        return;
    for (char *k = zlistx_first (self->waiting); k; k = zlistx_next (self->waiting))
        if (!strcmp (k, peer->key)) {
            zlistx_delete (self->waiting, zlistx_cursor (self->waiting));
            break;
        }
    peer->parked = false;
}

void
server_forget_peer (server_t *self, peer_t *peer)
{
    log_info ("peer_forgotten", "worker=\"%s\"", peer->worker_id);
    s_unpark (self, peer);
    zhashx_delete (self->peers, peer->key);
}

static void
s_peer_destroy (void **item)
{
    peer_t *peer = *item;
    if (!peer)
        return;
    free (peer->key);
    zframe_destroy (&peer->routing_id);
    free (peer);
    *item = NULL;
}

double
server_samples_per_s (server_t *self)
{
    int64_t now = zclock_mono ();
    uint64_t frames = 0;
    for (uint32_t k = 0; k < self->rate_count; k++) {
        uint32_t i = (self->rate_head + SERVER_RATE_EVENTS - 1 - k) % SERVER_RATE_EVENTS;
        if (now - self->rate_t [i] > SERVER_RATE_WINDOW_MS)
            break;
        frames += self->rate_frames [i];
    }
    int64_t span = now - self->started;
    if (span > SERVER_RATE_WINDOW_MS)
        span = SERVER_RATE_WINDOW_MS;
    return span > 0 ? frames * 1000.0 / span : 0;
}

static void
s_rate_add (server_t *self, uint64_t frames)
{
    self->rate_t [self->rate_head] = zclock_mono ();
    self->rate_frames [self->rate_head] = frames;
    self->rate_head = (self->rate_head + 1) % SERVER_RATE_EVENTS;
    if (self->rate_count < SERVER_RATE_EVENTS)
        self->rate_count++;
}

//  --------------------------------------------------------------------------
//  Matchmaking and assignments

//  PFSP over frozen past snapshots (AlphaStar): with snapshot_prob, a
//  two-player match pits the live agent against a frozen snapshot drawn
//  by pbt_pick_opponent over the snapshots' ratings. The snapshot seat
//  never trains and does not make its live agent busy. Fills seat 1 of
//  chosen/frozen and returns 1 if it did, 0 if not, -1 on error.
#define SERVER_FROZEN_MAX 4096
static int
s_pick_frozen (server_t *self, double r0, db_seat_t *seat)
{
    const pbt_config_t *pbt = &self->cfg->pbt;
    if (pbt->matchmaking != PBT_MATCH_PFSP || self->env->n_players != 2
    ||  pbt->snapshot_prob <= 0)
        return 0;
    db_frozen_t *frozen = malloc (SERVER_FROZEN_MAX * sizeof *frozen);
    double *ratings = malloc (SERVER_FROZEN_MAX * sizeof *ratings);
    int rc = -1;
    if (!frozen || !ratings)
        goto cleanup;
    int n = db_frozen_list (self->db, frozen, SERVER_FROZEN_MAX);
    if (n < 0)
        goto cleanup;
    rc = 0;
    if (n == 0 || rng_uniform (&self->rng) >= pbt->snapshot_prob)
        goto cleanup;
    for (int i = 0; i < n; i++)
        ratings [i] = frozen [i].rating;
    int j = pbt_pick_opponent (pbt, r0, ratings, n, &self->rng);
    if (j < 0 || j >= n)
        j = (int) rng_below (&self->rng, (uint64_t) n);
    memset (seat, 0, sizeof *seat);
    seat->agent_id = frozen [j].agent_id;
    seat->version = frozen [j].version;
    seat->train = false;
    seat->frozen = true;
    rc = 1;
cleanup:
    free (frozen);
    free (ratings);
    return rc;
}

//  Choose the seats of a new match among idle agents. Returns 0 and fills
//  a (not yet recorded), or -1 if too few agents are idle.
static int
s_form_match (server_t *self, db_assignment_t *a)
{
    int n_players = self->env->n_players;
    int idle [self->n_agents], n_idle = 0;
    for (int i = 0; i < self->n_agents; i++)
        if (!self->agents [i].busy && !self->agents [i].unreadable)
            idle [n_idle++] = i;
    if (n_idle < n_players)
        return -1;
    memset (a, 0, sizeof *a);
    a->eval = rng_uniform (&self->rng) < self->cfg->pbt.eval_rate;
    int chosen [PROTO_MAX_AGENTS];
    const pbt_config_t *pbt = &self->cfg->pbt;
    int n_teams = self->env->n_teams;
    if (!a->eval && pbt->script_rate > 0 && pbt->n_scripts > 0 && n_teams > 1
    &&  rng_uniform (&self->rng) < pbt->script_rate) {
        //  Agents make one whole team, on a random side; one of the
        //  scripts plays every seat of the other.
        int side = (int) rng_below (&self->rng, (uint64_t) n_teams);
        const char *script = pbt->scripts [rng_below (&self->rng, pbt->n_scripts)];
        snprintf (a->script, sizeof a->script, "%s", script);
        a->n_seats = (uint32_t) n_players;
        for (int slot = 0; slot < n_players; slot++) {
            db_seat_t *seat = &a->seats [slot];
            seat->slot = (uint32_t) slot;
            if (envspec_team_of (n_players, n_teams, slot) != side) {
                seat->agent_id = -1;
                snprintf (seat->script, sizeof seat->script, "%s", script);
                continue;
            }
            int k = (int) rng_below (&self->rng, (uint64_t) n_idle);
            agent_t *agent = &self->agents [idle [k]];
            idle [k] = idle [--n_idle];
            seat->agent_id = agent->a.id;
            seat->version = agent->a.version;
            seat->train = true;
        }
        return 0;
    }
    int k = (int) rng_below (&self->rng, (uint64_t) n_idle);
    chosen [0] = idle [k];
    idle [k] = idle [--n_idle];
    double ratings [self->n_agents];
    double r0 = self->agents [chosen [0]].a.rating;
    db_seat_t snap;
    int snapshot = s_pick_frozen (self, r0, &snap);
    if (snapshot < 0)
        return -1;
    if (snapshot) {
        agent_t *agent = &self->agents [chosen [0]];
        bool first = rng_below (&self->rng, 2) == 0;      // random slot, as below
        db_seat_t *live = &a->seats [first ? 0 : 1], *past = &a->seats [first ? 1 : 0];
        live->agent_id = agent->a.id;
        live->version = agent->a.version;
        live->train = !a->eval;
        *past = snap;
        a->seats [0].slot = 0;
        a->seats [1].slot = 1;
        a->n_seats = 2;
        return 0;
    }
    for (int p = 1; p < n_players; p++) {
        for (int i = 0; i < n_idle; i++)
            ratings [i] = self->agents [idle [i]].a.rating;
        int j = pbt_pick_opponent (&self->cfg->pbt, r0, ratings, n_idle, &self->rng);
        if (j < 0 || j >= n_idle)
            j = (int) rng_below (&self->rng, (uint64_t) n_idle);
        chosen [p] = idle [j];
        idle [j] = idle [--n_idle];
    }
    //  Random slots (and so random teams): Fisher-Yates.
    for (int i = n_players - 1; i > 0; i--) {
        int j = (int) rng_below (&self->rng, (uint64_t) i + 1);
        int t = chosen [i];
        chosen [i] = chosen [j];
        chosen [j] = t;
    }
    a->n_seats = (uint32_t) n_players;
    for (int s = 0; s < n_players; s++) {
        agent_t *agent = &self->agents [chosen [s]];
        a->seats [s].agent_id = agent->a.id;
        a->seats [s].version = agent->a.version;
        a->seats [s].slot = (uint32_t) s;
        a->seats [s].train = !a->eval;
    }
    return 0;
}

//  Build the assign message for a recorded assignment. Seat states are
//  lent from the cache (lent[i] true: zero them before proto_msg_clear)
//  or loaded from their snapshots. Returns 0 or -1; msg must be cleared.
static int
s_build_assign (server_t *self, const db_assignment_t *a, proto_msg_t *msg, bool *lent,
                int64_t *unreadable)
{
    memset (msg, 0, sizeof *msg);
    msg->type = PROTO_ASSIGN;
    proto_assign_t *as = &msg->u.assign;
    as->assignment_id = a->id;
    as->seed = a->seed;
    as->lease_ms = self->cfg->lease_ms;
    snprintf (as->env, sizeof as->env, "%s", self->cfg->env);
    as->env_options = self->cfg->env_options;
    as->ppo = self->cfg->ppo;
    as->model = self->cfg->model;
    as->n_seats = a->n_seats;
    for (uint32_t i = 0; i < a->n_seats; i++) {
        proto_seat_t *seat = &as->seats [i];
        const db_seat_t *s = &a->seats [i];
        if (s->agent_id < 0) {
            seat->id = -1;
            seat->slot = s->slot;
            snprintf (seat->script, sizeof seat->script, "%s", s->script);
            continue;
        }
        agent_t *agent = s_agent (self, s->agent_id);
        assert (agent);
        seat->id = s->agent_id;
        seat->version = s->version;
        seat->slot = s->slot;
        seat->train = s->train;
        seat->hparams = agent->a.hparams;
        if (s->frozen) {
            //  Read from its immutable row; the cache holds current states only.
            if (db_load_state (self->db, s->agent_id, s->version, &seat->state)) {
                log_error ("snapshot_missing", "agent=%" PRId64 " version=%" PRIu64 " frozen=1",
                           s->agent_id, s->version);
                *unreadable = s->agent_id;
                return -1;
            }
            continue;
        }
        if (!agent->state_cached || agent->state_version != s->version) {
            proto_state_t st;
            if (db_load_state (self->db, s->agent_id, s->version, &st)) {
                log_error ("snapshot_missing", "agent=%" PRId64 " version=%" PRIu64,
                           s->agent_id, s->version);
                *unreadable = s->agent_id;
                return -1;
            }
            //  Not cached: the cache is off, or there are no weights yet
            //  (the seat carries the init seed instead).
            if (!self->cache_states || !st.params) {
                seat->state = st;
                continue;
            }
            s_cache_take (self, agent, s->version, &st);
        }
        seat->state = agent->state;
        lent [i] = true;
    }
    return 0;
}

//  agent_id's state did not read back: fall back to its newest intact
//  snapshot, or leave it out of matches if it has none.
static void
s_state_fallback (server_t *self, int64_t agent_id)
{
    agent_t *agent = s_agent (self, agent_id);
    if (!agent)
        return;
    db_fallback_t fb;
    int rc = db_state_fallback (self->db, agent_id, server_now_ms (), &fb);
    s_cache_drop (agent);
    if (rc == 0) {
        s_reload_agent (self, agent_id);
        self->state_fallbacks++;
        self->fell_back = true;
        log_warn ("state_fallback", "agent=agt_%" PRId64 " version=%" PRIu64 " from_version=%"
                  PRIu64 " was_version=%" PRIu64 " rows_dropped=%u", agent_id, fb.new_version,
                  fb.fell_back ? fb.from_version : fb.old_version, fb.old_version, fb.dropped);
        return;
    }
    if (rc == 1) {
        agent->unreadable = true;
        self->fell_back = true;
        log_error ("state_unreadable", "agent=agt_%" PRId64 " why=\"no snapshot of it reads "
                   "back\" hint=\"left out of matches; restore the state store from the backup\"",
                   agent_id);
    }
}

//  Assignment ids: an assign goes out as soon as it is formed (s_send_to)
//  if its id is below a ceiling that is durable in meta, so no crash can
//  make pbtd issue that id again. Half a block before the ceiling a new
//  one is written in the open batch; it counts once that batch's WAL
//  sync answers (s_wal_synced). Until then, or if the batch is lost,
//  assigns past the durable ceiling wait for their batch like acks.
static void
s_assign_ids_reserve (server_t *self, uint64_t id)
{
    if (id + SERVER_ASSIGN_ID_BLOCK / 2 < self->asg_ceiling)
        return;
    uint64_t ceiling = id + SERVER_ASSIGN_ID_BLOCK;
    if (db_assignment_ids_reserve (self->db, ceiling)) {
        log_warn ("assign_ids_reserve_failed", "ceiling=%" PRIu64 " why=\"assigns wait for "
                  "their batch's fsync until a ceiling is written\"", ceiling);
        return;
    }
    self->asg_ceiling = ceiling;
    if (self->batching)
        self->asg_ceiling_seq = self->commit_seq + 1;       // the open batch's
    else
        self->asg_ceiling_durable = ceiling;
}

static void
s_assign_to (server_t *self, peer_t *peer)
{
    db_assignment_t a;
    if (s_form_match (self, &a))
        return;
    snprintf (a.worker, sizeof a.worker, "%s", peer->worker_id);
    snprintf (a.worker_key, sizeof a.worker_key, "%s", peer->curve_key);
    a.created_at = server_now_ms ();
    a.deadline_ms = a.created_at + self->cfg->lease_ms;
    if (db_assignment_create (self->db, &a, self->cfg->seed)) {
        log_error ("assignment_create_failed", "worker=\"%s\"", peer->worker_id);
        return;
    }
    s_assign_ids_reserve (self, a.id);
    lease_t *lease = calloc (1, sizeof *lease);
    assert (lease);
    lease->a = a;
    snprintf (lease->peer_key, sizeof lease->peer_key, "%s", peer->key);
    zlistx_add_end (self->leases, lease);
    for (uint32_t i = 0; i < a.n_seats; i++) {
        if (a.seats [i].frozen || a.seats [i].agent_id < 0)
            continue;           // a past snapshot (its live agent plays on elsewhere) or a script
        agent_t *agent = s_agent (self, a.seats [i].agent_id);
        agent->busy = true;
        agent->assignment = a.id;
    }
    s_unpark (self, peer);
    peer->assignment = a.id;
    peer->frames_done = 0;

    proto_msg_t msg;
    bool lent [PROTO_MAX_AGENTS] = { false };
    int64_t unreadable = -1;
    int rc = s_build_assign (self, &a, &msg, lent, &unreadable);
    //  Turnaround starts when this assignment became possible.
    int64_t saved_in = self->msg_in_us;
    self->msg_in_us = peer->request_us;
    for (uint32_t i = 0; i < a.n_seats; i++) {
        agent_t *agent = a.seats [i].frozen ? NULL : s_agent (self, a.seats [i].agent_id);
        if (agent && agent->freed_us > self->msg_in_us)
            self->msg_in_us = agent->freed_us;
    }
    //  A prefetch (asked for while the worker held another) waits by rule
    //  for agents to come back (s_next_waiting), not for pbtd: it became
    //  possible then. That holds even when the worker's other assignment
    //  came back first and this one now takes its free slot.
    if (peer->request_held > 0 && self->any_freed_us > self->msg_in_us)
        self->msg_in_us = self->any_freed_us;
    if (rc == 0)
        rc = s_send_to (self, self->worker, peer->routing_id, &msg, peer->key);
    self->msg_in_us = saved_in;
    for (uint32_t i = 0; i < a.n_seats; i++)
        if (lent [i])
            memset (&msg.u.assign.seats [i].state, 0, sizeof msg.u.assign.seats [i].state);
    proto_msg_clear (&msg);
    if (rc && unreadable >= 0) {
        //  A damaged record: that agent falls back to an intact snapshot;
        //  the worker keeps waiting and the others play on.
        server_expire_lease (self, lease, "state_unreadable");
        s_state_fallback (self, unreadable);
        char *key = strdup (peer->key);
        assert (key);
        zlistx_add_end (self->waiting, key);
        peer->parked = true;
        peer->assignment = 0;
        return;
    }
    if (rc) {
        //  Nobody will run it: give the agents back now, not at the deadline.
        //  (In a batch the send is queued; a failure there is handled by
        //  server_batch_end.)
        server_expire_lease (self, lease, "send_failed");
        server_forget_peer (self, peer);
        return;
    }
    char seats [PROTO_MAX_AGENTS * 24] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < a.n_seats && n < sizeof seats; i++)
        n += a.seats [i].agent_id < 0
           ? (size_t) snprintf (seats + n, sizeof seats - n, "%sscript:%s", i ? "," : "",
                                a.seats [i].script)
           : (size_t) snprintf (seats + n, sizeof seats - n, "%sagt_%" PRId64 "@%" PRIu64 "%s",
                                i ? "," : "", a.seats [i].agent_id, a.seats [i].version,
                                a.seats [i].frozen ? "(frozen)" : "");
    log_info ("assigned", "assignment=%" PRIu64 " kind=%s worker=\"%s\" seats=%s",
              a.id, a.eval ? "eval" : "train", peer->worker_id, seats);
}

//  The next waiting peer to serve: the first that holds nothing, else the
//  first whose second (prefetched) assignment would still leave a whole
//  match's worth of agents idle. Without that margin the agents a result
//  just freed would be the only idle ones, and the same pair would meet
//  again and again. NULL if none may be served now.
static peer_t *
s_next_waiting (server_t *self)
{
    int idle = 0;
    for (int i = 0; i < self->n_agents; i++)
        idle += !self->agents [i].busy;
    peer_t *second = NULL;
    char *key = zlistx_first (self->waiting);
    while (key) {
        peer_t *peer = zhashx_lookup (self->peers, key);
        if (!peer) {
            zlistx_delete (self->waiting, zlistx_cursor (self->waiting));
            key = zlistx_first (self->waiting);
            second = NULL;
            continue;
        }
        uint32_t held = server_peer_held (self, peer);
        if (held == 0)
            return peer;
        if (!second && idle >= 2 * self->env->n_players)
            second = peer;
        key = zlistx_next (self->waiting);
    }
    return second;
}

static void
s_dispatch_now (server_t *self)
{
    while (!self->paused && !self->stopping && zlistx_size (self->waiting) > 0) {
        peer_t *peer = s_next_waiting (self);
        if (!peer)
            break;
        size_t before = zlistx_size (self->waiting);
        self->fell_back = false;
        s_assign_to (self, peer);
        if (zlistx_size (self->waiting) == before && !self->fell_back)
            break;              // no match could be formed (or recording failed)
    }
}

void
server_dispatch (server_t *self)
{
    if (self->batching)
        self->dispatch_pending = true;
    else
        s_dispatch_now (self);
}

//  --------------------------------------------------------------------------
//  PBT after a result

static void
s_evolve (server_t *self, int64_t id)
{
    agent_t *agent = s_agent (self, id);
    if (!agent || agent->busy)
        return;
    pbt_member_t pop [self->n_agents];
    for (int i = 0; i < self->n_agents; i++) {
        pop [i].id = self->agents [i].a.id;
        pop [i].rating = self->agents [i].a.rating;
        pop [i].frames_since_evolve = self->agents [i].a.frames_since_evolve;
        pop [i].matches_since_evolve = self->agents [i].a.matches_since_evolve;
        pop [i].busy = self->agents [i].busy;
    }
    if (!pbt_eligible (&self->cfg->pbt, &pop [id]))
        return;
    int d = pbt_select_donor (&self->cfg->pbt, pop, self->n_agents, (int) id, &self->rng);
    if (d < 0 || d == id)
        return;
    agent_t *donor = &self->agents [d];
    proto_kvs_t hp;
    pbt_crossover (&self->cfg->pbt, &agent->a.hparams, &donor->a.hparams, &hp, &self->rng);
    pbt_mutate (&self->cfg->pbt, &hp, &self->rng);
    //  Past selves are frozen only for the one consumer, PFSP matchmaking
    //  (read per evolution: a SIGHUP may change either setting).
    db_set_frozen_keep (self->db, self->cfg->pbt.matchmaking == PBT_MATCH_PFSP
                                  ? self->cfg->pbt.frozen_keep : 0);
    if (db_evolve (self->db, id, d, &hp, server_now_ms ())) {
        log_error ("evolve_failed", "agent=agt_%" PRId64 " donor=agt_%d", id, d);
        return;
    }
    self->evolutions++;
    s_reload_agent (self, id);
    s_cache_copy (self, agent, agent->a.version, donor);
    log_info ("evolved", "agent=agt_%" PRId64 " donor=agt_%d version=%" PRIu64
              " generation=%" PRIu64 " rating=%.4f donor_rating=%.4f", id, d,
              agent->a.version, agent->a.generation, agent->a.rating, donor->a.rating);
}

//  --------------------------------------------------------------------------
//  Worker messages

//  A lease is this peer's if it was handed to (or re-bound to) its routing
//  id and the peer still says the worker id and, under CURVE, holds the key
//  the assignment was given to.
static bool
s_lease_owned (const lease_t *lease, const peer_t *peer)
{
    return !strcmp (lease->peer_key, peer->key) && !strcmp (lease->a.worker, peer->worker_id)
        && !strcmp (lease->a.worker_key, peer->curve_key);
}

//  The population's game build among the ones the worker announced?
//  0, or -1 with the reason (what it has against what trains here).
static int
s_hello_env_ok (server_t *self, const proto_hello_t *hello, char *why, size_t why_len)
{
    const char *name = envspec_name (self->cfg->spec), *hash = self->env_hash;
    for (uint32_t i = 0; i < hello->n_envs; i++)
        if (!strcmp (hello->envs [i].name, name) && !strcmp (hello->envs [i].hash, hash))
            return 0;
    char have [PROTO_MAX_TEXT / 2] = "none";
    size_t used = 0;
    for (uint32_t i = 0; i < hello->n_envs && used < sizeof have; i++)
        used += (size_t) snprintf (have + used, sizeof have - used, "%s%s %s (%.8s)",
                                   i ? ", " : "", hello->envs [i].name,
                                   hello->envs [i].version, hello->envs [i].hash);
    snprintf (why, why_len, "this population trains %s %s (spec hash %s); the worker has %s",
              name, envspec_version (self->cfg->spec), hash, have);
    return -1;
}

static void
s_not_yours (server_t *self, zframe_t *rid, const peer_t *peer, const lease_t *lease,
             const char *what)
{
    log_warn ("not_yours", "assignment=%" PRIu64 " %s_from=\"%s\" key=\"%s\" assigned_to=\"%s\"",
              lease->a.id, what, peer->worker_id, peer->curve_key, lease->a.worker);
    s_send_error (self, self->worker, rid, PROTO_E_NOT_YOURS, lease->a.id,
                  "assignment %" PRIu64 " was given to another worker", lease->a.id);
}

//  The peer's leases (same worker id, same key) follow it to its routing
//  id: after a hello, and after leases are reloaded from the database.
static void
s_rebind_leases (server_t *self, const peer_t *peer)
{
    for (lease_t *l = zlistx_first (self->leases); l; l = zlistx_next (self->leases))
        if (!strcmp (l->a.worker, peer->worker_id) && !strcmp (l->a.worker_key, peer->curve_key)
        &&  strcmp (l->peer_key, peer->key)) {
            snprintf (l->peer_key, sizeof l->peer_key, "%s", peer->key);
            log_info ("lease_rebound", "assignment=%" PRIu64 " worker=\"%s\"", l->a.id,
                      peer->worker_id);
        }
}

static void
s_on_hello (server_t *self, zframe_t *rid, const char *curve_key, const proto_hello_t *hello)
{
    char why [PROTO_MAX_TEXT];
    if (s_hello_env_ok (self, hello, why, sizeof why)) {
        log_warn ("hello_refused", "worker=\"%s\" code=wrong_env why=\"%s\"",
                  hello->worker_id, why);
        s_send_error (self, self->worker, rid, PROTO_E_WRONG_ENV, 0, "%s", why);
        return;
    }
    peer_t *peer = s_peer_find (self, rid);
    if (!peer) {
        peer = calloc (1, sizeof *peer);
        assert (peer);
        peer->key = zframe_strhex (rid);
        peer->routing_id = zframe_dup (rid);
        zhashx_insert (self->peers, peer->key, peer);
    }
    else
        s_unpark (self, peer);
    snprintf (peer->worker_id, sizeof peer->worker_id, "%s", hello->worker_id);
    snprintf (peer->host, sizeof peer->host, "%s", hello->host);
    snprintf (peer->software, sizeof peer->software, "%s", hello->software);
    snprintf (peer->curve_key, sizeof peer->curve_key, "%s", curve_key);
    peer->pid = hello->pid;
    s_rebind_leases (self, peer);
    peer->last_seen = zclock_mono ();
    log_info ("hello", "worker=\"%s\" host=\"%s\" pid=%u software=\"%s\" key=\"%s\"",
              hello->worker_id, hello->host, hello->pid, hello->software, curve_key);
    proto_msg_t msg = { .type = PROTO_WELCOME };
    msg.u.welcome.heartbeat_ms = self->cfg->heartbeat_ms;
    msg.u.welcome.lease_ms = self->cfg->lease_ms;
    msg.u.welcome.max_held = SERVER_MAX_HELD;
    s_send (self, self->worker, rid, &msg);
}

uint32_t
server_peer_held (server_t *self, const peer_t *peer)
{
    uint32_t n = 0;
    for (lease_t *l = zlistx_first (self->leases); l; l = zlistx_next (self->leases))
        n += !strcmp (l->peer_key, peer->key);
    return n;
}

double
server_peer_duty (const peer_t *peer)
{
    const proto_duty_t *a = &peer->duty_base, *b = &peer->duty_last;
    if (!b->uptime_ms)
        return -1;
    if (b->uptime_ms > a->uptime_ms && b->busy_ms >= a->busy_ms)
        return (double) (b->busy_ms - a->busy_ms) / (double) (b->uptime_ms - a->uptime_ms);
    return (double) b->busy_ms / (double) b->uptime_ms;
}

//  A worker's counters from a heartbeat or result. The window restarts
//  if they go backwards (not the same process any more).
static void
s_duty_note (peer_t *peer, const proto_duty_t *d)
{
    if (!d->uptime_ms)
        return;
    if (!peer->duty_last.uptime_ms || d->uptime_ms < peer->duty_last.uptime_ms)
        peer->duty_base = peer->duty_mid = *d;
    else
    if (d->uptime_ms - peer->duty_mid.uptime_ms >= SERVER_DUTY_WINDOW_MS) {
        peer->duty_base = peer->duty_mid;
        peer->duty_mid = *d;
    }
    peer->duty_last = *d;
}

static void
s_on_request (server_t *self, zframe_t *rid, peer_t *peer)
{
    uint32_t held = server_peer_held (self, peer);
    if (held >= SERVER_MAX_HELD) {
        //  Refused, not parked: what it holds is untouched.
        s_send_error (self, self->worker, rid, PROTO_E_OVER_LIMIT, 0,
                      "request refused: this worker holds %u assignments, the most it may "
                      "(welcome.max_held = %d); deliver or return one first", held,
                      SERVER_MAX_HELD);
        return;
    }
    if (!peer->parked) {
        char *key = strdup (peer->key);
        assert (key);
        zlistx_add_end (self->waiting, key);
        peer->parked = true;
        peer->request_us = zclock_usecs ();
        peer->request_held = held;
    }
    server_dispatch (self);
}

//  Answer for an assignment that is not in flight: what happened to it.
static void
s_not_in_flight (server_t *self, zframe_t *rid, uint64_t id)
{
    db_assignment_t a;
    int rc = db_assignment_get (self->db, id, &a);
    if (rc == 0 && !strcmp (a.state, "expired"))
        s_send_error (self, self->worker, rid, PROTO_E_EXPIRED, id,
                      "assignment %" PRIu64 " expired", id);
    else
    if (rc == 0 && !strcmp (a.state, "done"))
        s_send_error (self, self->worker, rid, PROTO_E_UNKNOWN, id,
                      "assignment %" PRIu64 " is already done", id);
    else
        s_send_error (self, self->worker, rid, PROTO_E_UNKNOWN, id,
                      "no assignment %" PRIu64, id);
}

//  The most one assignment can produce (PROTOCOL.md, "Bounds on results"):
//  each seat plays n_envs x n_steps x iterations frames (absent keys take
//  the worker's defaults), and each environment ends at most one episode
//  per min_steps of them, one in all with first_episode_only. min_steps
//  is rps's episode_len (episodes last exactly that long); other
//  environments can end an episode at any step (a soccer goal), so 1.
static void
s_budget (server_t *self, uint64_t *frames, uint64_t *episodes)
{
    const proto_kvs_t *ppo = &self->cfg->ppo;
    //  The worker falls back to the settings table's defaults; so do we.
    double e = proto_kvs_get (ppo, "n_envs", settings_default ("ppo", "n_envs"));
    double t = proto_kvs_get (ppo, "n_steps", settings_default ("ppo", "n_steps"));
    double it = proto_kvs_get (ppo, "iterations", settings_default ("ppo", "iterations"));
    uint64_t n_envs = e >= 1 ? (uint64_t) e : 1;
    uint64_t steps = (t >= 1 ? (uint64_t) t : 1) * (it >= 1 ? (uint64_t) it : 1);
    uint64_t min_steps = 1;
    if (!strcmp (self->env->name, "rps")) {
        double len = proto_kvs_get (&self->cfg->env_options, "episode_len", 10);
        min_steps = len >= 1 ? (uint64_t) len : 1;
    }
    *frames = n_envs * steps;
    *episodes = proto_kvs_get (ppo, "first_episode_only", 0) != 0 ? n_envs
              : n_envs * (steps / min_steps);
}

//  A result's counters within the budget, or bad_field naming the first
//  that is not (checked before anything is applied: a claim costs nothing).
static bool
s_result_in_bounds (server_t *self, const proto_result_t *r, char *err, size_t err_len)
{
    uint64_t max_frames, max_episodes;
    s_budget (self, &max_frames, &max_episodes);
    for (uint32_t i = 0; i < r->n_seats; i++)
        if (r->seats [i].frames > max_frames) {
            snprintf (err, err_len, "result.seats[%u].frames: %" PRIu64 " is over the "
                      "assignment's budget of %" PRIu64, i, r->seats [i].frames, max_frames);
            return false;
        }
    if (r->n_episodes > max_episodes) {
        snprintf (err, err_len, "result.n_episodes: %u is over the %" PRIu64 " episodes the "
                  "assignment can produce", r->n_episodes, max_episodes);
        return false;
    }
    return true;
}

static void
s_on_heartbeat (server_t *self, zframe_t *rid, peer_t *peer, const proto_heartbeat_t *hb)
{
    lease_t *lease = s_lease_find (self, hb->assignment_id);
    if (!lease) {
        s_not_in_flight (self, rid, hb->assignment_id);
        return;
    }
    if (!s_lease_owned (lease, peer)) {
        s_not_yours (self, rid, peer, lease, "heartbeat");
        return;
    }
    uint64_t max_frames, max_episodes;
    s_budget (self, &max_frames, &max_episodes);
    if (hb->frames_done > max_frames) {
        s_send_error (self, self->worker, rid, PROTO_E_FIELD, hb->assignment_id,
                      "heartbeat.frames_done: %" PRIu64 " is over the assignment's budget of %"
                      PRIu64, hb->frames_done, max_frames);
        return;
    }
    int64_t now = server_now_ms ();
    if (now > lease->a.deadline_ms) {
        server_expire_lease (self, lease, "heartbeat_late");
        s_send_error (self, self->worker, rid, PROTO_E_EXPIRED, hb->assignment_id,
                      "assignment %" PRIu64 " expired", hb->assignment_id);
        server_dispatch (self);
        return;
    }
    int64_t deadline = now + self->cfg->lease_ms;
    if (db_assignment_renew (self->db, lease->a.id, deadline)) {
        s_send_error (self, self->worker, rid, PROTO_E_INTERNAL, hb->assignment_id,
                      "could not renew the lease");
        return;
    }
    lease->a.deadline_ms = deadline;
    peer->frames_done = hb->frames_done;
    s_duty_note (peer, &hb->duty);
    peer->assignment = lease->a.id;
    proto_msg_t msg = { .type = PROTO_ACK };
    msg.u.ack.assignment_id = hb->assignment_id;
    msg.u.ack.applied = false;
    s_send (self, self->worker, rid, &msg);
}

static void
s_on_result (server_t *self, zframe_t *rid, peer_t *peer, proto_result_t *r)
{
    lease_t *lease = s_lease_find (self, r->assignment_id);
    int64_t now = server_now_ms ();
    if (lease && !s_lease_owned (lease, peer)) {
        s_not_yours (self, rid, peer, lease, "result");
        return;
    }
    if (lease && now > lease->a.deadline_ms) {
        server_expire_lease (self, lease, "result_late");
        s_send_error (self, self->worker, rid, PROTO_E_EXPIRED, r->assignment_id,
                      "assignment %" PRIu64 " expired", r->assignment_id);
        server_dispatch (self);
        return;
    }
    char err [PROTO_MAX_TEXT];
    if (!s_result_in_bounds (self, r, err, sizeof err)) {
        s_send_error (self, self->worker, rid, PROTO_E_FIELD, r->assignment_id, "%s", err);
        return;
    }
    db_applied_t applied;
    proto_code_t code = db_apply_result (self->db, r, self->cfg->n_params, self->env->n_teams,
                                         &self->cfg->pbt, now, &applied, err, sizeof err);
    if (code != PROTO_OK) {
        if (code == PROTO_E_EXPIRED && lease)
            server_release_lease (self, lease);
        s_send_error (self, self->worker, rid, code, r->assignment_id, "%s", err);
        if (code == PROTO_E_EXPIRED)
            server_dispatch (self);
        return;
    }
    //  Applied (durable once the batch commits; the ack waits in the outbox
    //  until then): acknowledge, update the cache, run PBT.
    proto_msg_t msg = { .type = PROTO_ACK };
    msg.u.ack.assignment_id = r->assignment_id;
    msg.u.ack.applied = true;
    s_send (self, self->worker, rid, &msg);
    self->results++;
    self->samples += applied.frames;
    s_rate_add (self, applied.frames);
    peer->samples_per_s = r->samples_per_s;
    s_duty_note (peer, &r->duty);
    if (peer->assignment == r->assignment_id)
        peer->assignment = 0;
    int64_t ids [PROTO_MAX_AGENTS];
    bool frozen [PROTO_MAX_AGENTS] = { false };
    uint32_t n = r->n_seats;
    db_assignment_t done;
    const db_assignment_t *as = lease ? &lease->a
                              : db_assignment_get (self->db, r->assignment_id, &done) == 0 ? &done
                              : NULL;
    for (uint32_t i = 0; i < n; i++) {
        ids [i] = r->seats [i].id;
        frozen [i] = as && i < as->n_seats && as->seats [i].frozen;
    }
    if (lease)
        server_release_lease (self, lease);
    for (uint32_t i = 0; i < n; i++) {
        if (frozen [i] || ids [i] < 0)
            continue;           // a past snapshot (nothing of its live agent changed) or a script
        agent_t *agent = s_agent (self, ids [i]);
        uint64_t before = agent ? agent->a.version : 0;
        s_reload_agent (self, ids [i]);
        //  A trained seat's new version is exactly the state it sent.
        if (agent && agent->a.version == before + 1 && agent->a.version == r->seats [i].version + 1)
            s_cache_take (self, agent, agent->a.version, &r->seats [i].state);
    }
    log_info ("result_applied", "assignment=%" PRIu64 " worker=\"%s\" frames=%" PRIu64
              " episodes=%u samples_per_s=%.0f", r->assignment_id, peer->worker_id,
              applied.frames, applied.episodes, r->samples_per_s);
    for (uint32_t i = 0; i < n; i++)
        if (!frozen [i] && ids [i] >= 0)
            s_evolve (self, ids [i]);
    server_dispatch (self);
}

//  The CURVE public key the handshake proved, as zauth reported it to
//  libzmq (the ZAP User-Id), or "" on a plaintext endpoint.
static const char *
s_curve_key (server_t *self, zframe_t *frame)
{
    if (!self->worker_curve)
        return "";
    const char *key = zframe_meta (frame, "User-Id");
    return key ? key : "";
}

//  The worker is leaving: everything it holds goes back at once instead
//  of at its lease's deadline, its parked request is dropped and the peer
//  forgotten. It gives back the assignments it names in bye.returned
//  (unfinished work, possibly leased under an earlier socket with the
//  same worker id and CURVE key, §4.1) and pbtd adds every lease it gave to this socket (an
//  assign may have crossed the bye on the wire). Named assignments that
//  are not in flight, or are another worker's, are left alone.
static void
s_on_bye (server_t *self, zframe_t *rid, peer_t *peer, const proto_bye_t *bye)
{
    uint32_t returned = 0;
    for (;;) {
        lease_t *mine = NULL;
        for (lease_t *l = zlistx_first (self->leases); l && !mine; l = zlistx_next (self->leases)) {
            bool named = false;
            for (uint32_t i = 0; i < bye->n_returned; i++)
                named = named || bye->returned [i] == l->a.id;
            if (!strcmp (l->peer_key, peer->key)
            ||  (named && !strcmp (l->a.worker, peer->worker_id)
                && !strcmp (l->a.worker_key, peer->curve_key)))
                mine = l;
        }
        if (!mine)
            break;
        //  Restart the scan: expiring deletes from the list (as in cron).
        server_expire_lease (self, mine, "returned");
        returned++;
    }
    log_info ("bye", "worker=\"%s\" returned=%u named=%u parked=%d", peer->worker_id,
              returned, bye->n_returned, peer->parked);
    proto_msg_t msg = { .type = PROTO_ACK };
    s_send (self, self->worker, rid, &msg);
    server_forget_peer (self, peer);
    if (returned)
        server_dispatch (self);
}

static void
s_worker_message (server_t *self, zsock_t *sock, zmsg_t *zmsg)
{
    zframe_t *rid = zmsg_pop (zmsg);
    if (!rid) {
        zmsg_destroy (&zmsg);
        return;
    }
    if (zmsg_size (zmsg) != 1) {
        s_send_error (self, sock, rid, PROTO_E_MALFORMED, 0,
                      "expected one frame per message, got %zu", zmsg_size (zmsg));
        goto cleanup;
    }
    zframe_t *body = zmsg_first (zmsg);
    if (zframe_size (body) > PROTO_MAX_FRAME) {
        s_send_error (self, sock, rid, PROTO_E_TOO_LARGE, 0, "frame of %zu bytes is over %u",
                      zframe_size (body), PROTO_MAX_FRAME);
        goto cleanup;
    }
    proto_msg_t msg;
    char err [PROTO_MAX_TEXT] = "";
    proto_code_t code = proto_decode (zframe_data (body), zframe_size (body), &msg,
                                      err, sizeof err);
    if (code != PROTO_OK) {
        //  A result or heartbeat that names its assignment gets an error
        //  naming it too, so its sender knows which message failed.
        s_send_error (self, sock, rid, code,
                      proto_peek_assignment_id (zframe_data (body), zframe_size (body)),
                      "%s", err);
        goto cleanup;
    }
    uint64_t about = msg.type == PROTO_HEARTBEAT ? msg.u.heartbeat.assignment_id
                   : msg.type == PROTO_RESULT ? msg.u.result.assignment_id : 0;
    peer_t *peer = s_peer_find (self, rid);
    if (peer)
        peer->last_seen = zclock_mono ();
    if (msg.type == PROTO_HELLO)
        s_on_hello (self, rid, s_curve_key (self, body), &msg.u.hello);
    else
    if (msg.type != PROTO_REQUEST && msg.type != PROTO_HEARTBEAT && msg.type != PROTO_RESULT
    &&  msg.type != PROTO_BYE)
        s_send_error (self, sock, rid, PROTO_E_STATE, 0,
                      "'%s' is not a message a worker sends", proto_type_name (msg.type));
    else
    if (!peer)
        s_send_error (self, sock, rid, PROTO_E_STATE, about,
                      "'%s' before hello: send hello first", proto_type_name (msg.type));
    else
    if (msg.type == PROTO_REQUEST)
        s_on_request (self, rid, peer);
    else
    if (msg.type == PROTO_HEARTBEAT)
        s_on_heartbeat (self, rid, peer, &msg.u.heartbeat);
    else
    if (msg.type == PROTO_BYE)
        s_on_bye (self, rid, peer, &msg.u.bye);
    else
        s_on_result (self, rid, peer, &msg.u.result);
    proto_msg_clear (&msg);
cleanup:
    zframe_destroy (&rid);
    zmsg_destroy (&zmsg);
}

//  Group commit: every worker message already waiting is handled in one
//  database transaction (each result its own savepoint), the next
//  assignments are formed in it too, and one fsync makes all of it
//  durable before any ack or assign goes out. The socket's receive
//  timeout is 0, so the drain stops when the queue is empty, or at the
//  batch's message or time cap (the rest wait for the next wakeup:
//  zmq_poll reports the socket readable while messages are queued).
static int
s_worker_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    server_t *self = arg;
    //  Its reader was just ended in this poll round (s_readers_update).
    if (self->worker_off)
        return 0;
    server_batch_begin (self);
    int n = 0;
    int64_t until = zclock_usecs () + SERVER_BATCH_US;
    zmsg_t *zmsg;
    while (n < SERVER_BATCH_MAX && (n == 0 || zclock_usecs () < until)
    &&     (zmsg = zmsg_recv (sock))) {
        self->msg_in_us = zclock_usecs ();
        s_worker_message (self, sock, zmsg);
        n++;
    }
    self->msg_in_us = 0;
    self->batched += (uint64_t) n;
    server_batch_end (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Batches

void
server_batch_begin (server_t *self)
{
    if (self->batching)
        return;
    //  If even BEGIN fails, every change runs as its own transaction and
    //  every message is sent at once, as without batching.
    if (db_batch_begin_nosync (self->db) == 0) {
        self->batching = true;
        self->batch_start_us = zclock_usecs ();
    }
}

static int s_load_leases (server_t *self);
static int s_control_readable (zloop_t *loop, zsock_t *sock, void *arg);

//  The batch's transaction is gone: reload what the reactor caches from
//  the database, which is the truth.
static void
s_resync (server_t *self)
{
    s_cache_clear (self);
    if (self->asg_ceiling_seq > self->durable_seq) {
        //  The ceiling written in the lost batch: the next id writes it again.
        self->asg_ceiling = self->asg_ceiling_durable;
        self->asg_ceiling_seq = 0;
    }
    for (int i = 0; i < self->n_agents; i++) {
        if (s_reload_agent (self, i))
            log_error ("resync_failed", "agent=agt_%d", i);
        self->agents [i].busy = false;
        self->agents [i].assignment = 0;
    }
    lease_t *l;
    while ((l = zlistx_detach (self->leases, NULL)))
        free (l);
    if (s_load_leases (self) < 0)
        log_error ("resync_failed", "what=leases");
    //  The reloaded leases name their workers but not the routing ids the
    //  workers are still connected on.
    for (peer_t *p = zhashx_first (self->peers); p; p = zhashx_next (self->peers)) {
        if (p->assignment && !s_lease_find (self, p->assignment))
            p->assignment = 0;      // sent from the lost batch: pbtd never issued it
        if (p->worker_id [0])
            s_rebind_leases (self, p);
    }
    int64_t results = db_count_results (self->db), evolutions = db_count_evolutions (self->db);
    if (results >= 0)
        self->results = (uint64_t) results;
    if (evolutions >= 0)
        self->evolutions = (uint64_t) evolutions;
}

//  --------------------------------------------------------------------------
//  Commit path: the fsyncs on the committer thread (committer.h)
//
//  Batch N ends (server_batch_end) with its rows in an open transaction
//  and its states written to the state store, not yet synced.
//  1. Store job N: the committer fdatasyncs the active segment. Meanwhile
//     the transaction stays open, so the reactor reads neither workers nor
//     pbtctl and defers housekeeping (nothing may join the batch that the
//     sync does not cover), but it keeps serving the committer, the reader
//     thread and signals. A batch that wrote no state skips this step.
//  2. On its answer the reactor commits at synchronous=NORMAL (the WAL
//     written, no fsync), moves the batch's outbox to the pending list
//     and hands over WAL job N; then it reads workers again: batch N+1 is
//     handled while N's WAL is synced (at most SERVER_COMMIT_PENDING
//     batches wait, then the worker socket waits instead).
//  3. On WAL job N's answer the batch is durable: its acks go (and any
//     assign whose id was past the durable id ceiling).
//  Assigns themselves go when formed, before any of this
//  (s_assign_ids_reserve says why that is safe): a worker starts on its
//  next match while the result that freed the agents is still syncing.
//  Ordering: a row is written to the WAL only after the states it names
//  were fsynced (step 1 before 2), so whatever of the WAL survives a power
//  loss names durable states; a SIGKILL loses nothing the kernel holds.
//  A failed store sync rolls the batch back (the existing failure path);
//  a failed WAL sync fails its batch and every later one unacked and
//  stops pbtd: after a failed fsync the kernel may have dropped pages of
//  the WAL, and only a restart reads back what is really on disk.

typedef struct {
    uint64_t seq;
    zlistx_t *outbox;               // outmsg_t, sent once the WAL job answers
    int64_t end_us;                 // when the batch ended (zclock_usecs)
} pending_t;

static void
s_pending_destroy (pending_t **p_p)
{
    pending_t *p = *p_p;
    if (!p)
        return;
    outmsg_t *out;
    while ((out = zlistx_detach (p->outbox, NULL)))
        s_outmsg_destroy (&out);
    zlistx_destroy (&p->outbox);
    free (p);
    *p_p = NULL;
}

//  Send (committed) or fail (not) every message of a batch's outbox.
//  Returns true if an assign could not be sent (dispatch again).
static bool
s_flush (server_t *self, zlistx_t *outbox, bool committed)
{
    bool redispatch = false;
    outmsg_t *out;
    while ((out = zlistx_detach (outbox, NULL))) {
        if (!committed && out->type == PROTO_ASSIGN) {
            //  Never recorded: the worker waits for another one.
            peer_t *peer = zhashx_lookup (self->peers, out->peer_key);
            if (peer && !peer->parked) {
                char *key = strdup (peer->key);
                assert (key);
                zlistx_add_end (self->waiting, key);
                peer->parked = true;
                peer->assignment = 0;
            }
            s_outmsg_destroy (&out);
            continue;
        }
        if (!committed && out->type == PROTO_ACK && !out->applied) {
            //  A lease renewal that did not stick: the next heartbeat tries again.
            s_outmsg_destroy (&out);
            continue;
        }
        if (!committed && out->type == PROTO_ACK) {
            //  Not durable, so not acknowledged: the worker keeps its
            //  result (or lease) and sends it again.
            proto_msg_t msg = { .type = PROTO_ERROR };
            msg.u.error.code = PROTO_E_INTERNAL;
            msg.u.error.assignment_id = out->assignment_id;
            snprintf (msg.u.error.message, sizeof msg.u.error.message,
                      "database commit failed; send it again");
            uint8_t *buf = NULL;
            size_t len = 0;
            if (proto_encode (&msg, &buf, &len) == 0)
                s_send_raw (out->sock, out->routing_id, buf, len);
            s_outmsg_destroy (&out);
            continue;
        }
        uint8_t *buf = out->buf;
        out->buf = NULL;
        int sent = s_send_raw (out->sock, out->routing_id, buf, out->len);
        if (sent == 0 && out->type == PROTO_ASSIGN)
            s_turn_note (self, out->t_in);
        if (sent && out->type == PROTO_ASSIGN) {
            //  Nobody will run it: give the agents back now, not at the deadline.
            lease_t *lease = s_lease_find (self, out->assignment_id);
            if (lease)
                server_expire_lease (self, lease, "send_failed");
            peer_t *peer = zhashx_lookup (self->peers, out->peer_key);
            if (peer)
                server_forget_peer (self, peer);
            redispatch = true;
        }
        s_outmsg_destroy (&out);
    }
    return redispatch;
}

//  After a batch's messages went out (or failed): dispatch again if an
//  assign could not be sent, and retire a segment a roll-over emptied.
static void
s_after_batch (server_t *self, bool redispatch)
{
    if (self->wal_failed)
        return;                 // stopping: no new work
    if (redispatch && !self->commit_waiting) {
        server_batch_begin (self);
        server_dispatch (self);
        server_batch_end (self);
    }
    else
    if (redispatch)
        self->dispatch_pending = true;      // joins the batch waiting for its store sync
    //  A segment roll-over usually leaves one old segment with no live
    //  record: retire it now (outside any transaction, after the replies
    //  went out), so the next roll-over reuses its file instead of
    //  growing a new one. Compaction stays in housekeeping.
    uint64_t started = db_store_segments_started (self->db);
    if (started != self->store_started_seen && !self->batching) {
        self->store_started_seen = started;
        if (db_store_gc (self->db, 0) < 0)
            log_warn ("store_gc_failed", "why=\"see the error before; retried next pass\"");
    }
}

//  The open batch is lost: nothing in it may be acknowledged.
static void
s_batch_failed (server_t *self, zlistx_t *outbox, const char *why)
{
    log_error ("batch_lost", "messages=%zu why=\"%s: nothing in it is durable\"",
               zlistx_size (outbox), why);
    s_resync (self);
    s_after_batch (self, s_flush (self, outbox, false));
}

//  Stop reading workers and pbtctl while a batch waits for its store
//  sync, and workers also while SERVER_COMMIT_PENDING batches wait for
//  their WAL sync; read them again once neither holds.
static void
s_readers_update (server_t *self)
{
    bool worker_off = self->commit_waiting
                   || zlistx_size (self->pending) >= SERVER_COMMIT_PENDING;
    bool control_off = self->commit_waiting;
    if (worker_off != self->worker_off) {
        if (worker_off)
            zloop_reader_end (self->loop, self->worker);
        else
        if (zloop_reader (self->loop, self->worker, s_worker_readable, self))
            log_error ("reactor_failed", "what=worker_reader");
        self->worker_off = worker_off;
    }
    if (control_off != self->control_off) {
        if (control_off)
            zloop_reader_end (self->loop, self->control);
        else
        if (zloop_reader (self->loop, self->control, s_control_readable, self))
            log_error ("reactor_failed", "what=control_reader");
        self->control_off = control_off;
    }
}

//  Hand over the WAL sync of batch seq; outbox (taken) waits for it.
static void
s_submit_wal (server_t *self, uint64_t seq, zlistx_t *outbox)
{
    pending_t *p = calloc (1, sizeof *p);
    assert (p);
    p->seq = seq;
    p->outbox = outbox;
    p->end_us = self->batch_end_us;
    zlistx_add_end (self->pending, p);
    self->unsynced = false;
    if (committer_submit (self->committer, COMMITTER_WAL, seq, -1)) {
        //  Committed but never synced: as a failed WAL sync.
        self->wal_failed = true;
        self->stopping = true;
    }
}

//  Commit the open batch's rows (its states are durable) and hand its WAL
//  sync over; its messages wait in the pending list.
static void
s_commit_rows (server_t *self, uint64_t seq)
{
    if (self->dispatch_pending) {
        self->dispatch_pending = false;
        s_dispatch_now (self);
    }
    self->batching = false;
    int64_t t0 = zclock_usecs ();
    bool committed = db_batch_commit_nosync (self->db) == 0;
    self->commit_us += (uint64_t) (zclock_usecs () - t0);
    zlistx_t *outbox = self->outbox;
    self->outbox = zlistx_new ();
    assert (self->outbox);
    if (!committed) {
        s_batch_failed (self, outbox, "commit failed");
        zlistx_destroy (&outbox);
        return;
    }
    //  Nothing waits for this batch (housekeeping, lease renewals without
    //  a reply): the next WAL sync covers it too, it holds no place in
    //  the queue.
    if (zlistx_size (outbox) == 0) {
        zlistx_destroy (&outbox);
        self->unsynced = true;
        return;
    }
    s_submit_wal (self, seq, outbox);
}

//  The open batch cannot commit: roll it back and fail its messages.
static void
s_fail_open_batch (server_t *self, const char *why)
{
    db_batch_rollback (self->db);
    self->batching = false;
    self->dispatch_pending = false;
    zlistx_t *outbox = self->outbox;
    self->outbox = zlistx_new ();
    assert (self->outbox);
    s_batch_failed (self, outbox, why);
    zlistx_destroy (&outbox);
}

void
server_batch_end (server_t *self)
{
    //  While a batch waits for its store sync only its own dispatch joins
    //  it (rows, no states: s_after_batch), committed with it.
    if (!self->batching || self->commit_waiting)
        return;
    if (self->dispatch_pending) {
        self->dispatch_pending = false;
        s_dispatch_now (self);
    }
    self->batches++;
    self->batch_end_us = zclock_usecs ();
    self->batch_work_us += (uint64_t) (self->batch_end_us - self->batch_start_us);
    uint64_t seq = ++self->commit_seq;
    int fd = -1;
    if (db_batch_sync_begin (self->db, &fd)) {
        s_fail_open_batch (self, "state store sync failed");
        return;
    }
    if (fd < 0)
        s_commit_rows (self, seq);      // no state to sync first
    else
    if (committer_submit (self->committer, COMMITTER_STORE, seq, fd))
        s_fail_open_batch (self, "commit thread unavailable");
    else {
        self->commit_waiting = true;
        self->waiting_seq = seq;
    }
    s_readers_update (self);
}

//  Store job seq answered: commit the batch's rows, or roll it back.
static void
s_store_synced (server_t *self, uint64_t seq, bool ok)
{
    assert (self->commit_waiting && seq == self->waiting_seq);
    self->commit_waiting = false;
    db_batch_sync_end (self->db, ok);
    if (ok)
        s_commit_rows (self, seq);
    else
        s_fail_open_batch (self, "state store sync failed");
}

//  WAL job seq answered: the batch is durable, its messages go out.
static void
s_wal_synced (server_t *self, uint64_t seq, bool ok)
{
    pending_t *p = zlistx_detach (self->pending, NULL);
    assert (p && p->seq == seq);
    if (ok && !self->wal_failed) {
        self->durable_seq = seq;
        if (self->asg_ceiling_seq && seq >= self->asg_ceiling_seq) {
            self->asg_ceiling_durable = self->asg_ceiling;
            self->asg_ceiling_seq = 0;
        }
        metrics_observe_commit (self->metrics, zclock_usecs () - p->end_us);
        s_after_batch (self, s_flush (self, p->outbox, true));
    }
    else {
        if (!self->wal_failed)
            log_error ("wal_sync_failed", "batch=%" PRIu64 " why=\"the database's WAL did not "
                       "sync: this batch and every later one stay unacknowledged, and pbtd "
                       "stops so that a restart reads back what is on disk\"", seq);
        self->wal_failed = true;
        self->stopping = true;
        s_batch_failed (self, p->outbox, "WAL sync failed");
    }
    s_pending_destroy (&p);
}

//  Stopping: wait for every job handed over, so each batch's messages
//  go out (or fail) before pbtd exits. The reactor has stopped; a batch
//  still open (its store sync under way) commits here.
static void
s_commit_drain (server_t *self)
{
    if (!self->committer)
        return;
    if (self->batching)
        server_batch_end (self);
    while (true) {
        //  A stop is a point to be durable at: the last batches too,
        //  even those no message waited for.
        if (committer_in_flight (self->committer) == 0) {
            if (!self->unsynced || self->wal_failed)
                break;
            zlistx_t *none = zlistx_new ();
            assert (none);
            s_submit_wal (self, self->commit_seq, none);
        }
        committer_job_t job;
        uint64_t seq;
        bool ok;
        if (committer_recv (self->committer, &job, &seq, &ok)) {
            log_error ("commit_drain_failed", "in_flight=%" PRIu32,
                       committer_in_flight (self->committer));
            break;
        }
        if (job == COMMITTER_STORE)
            s_store_synced (self, seq, ok);
        else
            s_wal_synced (self, seq, ok);
    }
}

//  The committer's answers, in the order the jobs were handed over.
static int
s_committer_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    server_t *self = arg;
    committer_job_t job;
    uint64_t seq;
    bool ok;
    if (committer_recv (self->committer, &job, &seq, &ok))
        return 0;
    if (job == COMMITTER_STORE)
        s_store_synced (self, seq, ok);
    else
        s_wal_synced (self, seq, ok);
    s_readers_update (self);
    if (self->tick_deferred && !self->commit_waiting && !self->stopping) {
        self->tick_deferred = false;
        cron_run (self);
    }
    return self->stopping ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  Control messages

//  A reply from the reader thread: send it to the pbtctl that asked.
static int
s_reader_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    server_t *self = arg;
    zframe_t *rid = NULL, *reply = NULL;
    if (reader_recv (self->reader, &rid, &reply))
        return 0;
    size_t len = zframe_size (reply);
    uint8_t *buf = malloc (len ? len : 1);
    if (len == 0 || !buf || (memcpy (buf, zframe_data (reply), len), 0)
    ||  s_send_raw (self->control, rid, buf, len))
        log_warn ("ctl_reply_failed", "from=reader bytes=%zu", len);
    if (len == 0)
        free (buf);
    zframe_destroy (&rid);
    zframe_destroy (&reply);
    return 0;
}

static int
s_control_readable (zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    server_t *self = arg;
    if (self->control_off)
        return 0;               // its reader was just ended in this poll round
    zmsg_t *zmsg = zmsg_recv (sock);
    if (!zmsg)
        return 0;
    zframe_t *rid = zmsg_pop (zmsg);
    if (!rid) {
        zmsg_destroy (&zmsg);
        return 0;
    }
    if (zmsg_size (zmsg) != 1) {
        s_send_error (self, sock, rid, PROTO_E_MALFORMED, 0,
                      "expected one frame per message, got %zu", zmsg_size (zmsg));
        goto cleanup;
    }
    zframe_t *body = zmsg_first (zmsg);
    proto_msg_t msg;
    char err [PROTO_MAX_TEXT] = "";
    proto_code_t code = proto_decode (zframe_data (body), zframe_size (body), &msg,
                                      err, sizeof err);
    if (code != PROTO_OK) {
        s_send_error (self, sock, rid, code, 0, "%s", err);
        goto cleanup;
    }
    if (msg.type != PROTO_CTL)
        s_send_error (self, sock, rid, PROTO_E_STATE, 0,
                      "only 'ctl' is served on the control endpoint, got '%s'",
                      proto_type_name (msg.type));
    else
    if (reader_serves (msg.u.ctl.cmd)) {
        //  Its work grows with history: the reader thread runs it and the
        //  reply comes back through s_reader_readable.
        if (reader_submit (self->reader, rid, body)) {
            proto_msg_t reply = { .type = PROTO_CTL_REPLY };
            snprintf (reply.u.ctl_reply.error, sizeof reply.u.ctl_reply.error,
                      "busy: %u queries in flight, try again", reader_in_flight (self->reader));
            if (s_send (self, sock, rid, &reply))
                log_warn ("ctl_reply_failed", "cmd=%s", msg.u.ctl.cmd);
        }
    }
    else {
        proto_msg_t reply = { .type = PROTO_CTL_REPLY };
        ctl_handle (self, &msg.u.ctl, &reply.u.ctl_reply);
        if (s_send (self, sock, rid, &reply))
            log_warn ("ctl_reply_failed", "cmd=%s", msg.u.ctl.cmd);
        proto_msg_clear (&reply);
    }
    proto_msg_clear (&msg);
cleanup:
    zframe_destroy (&rid);
    zmsg_destroy (&zmsg);
    return 0;
}

//  --------------------------------------------------------------------------
//  Signals and timers

static int
s_signal_readable (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    (void) item;
    server_t *self = arg;
    unsigned char signo;
    if (read (self->sigfd, &signo, 1) != 1)
        return 0;
    if (signo == SIGHUP) {
        char err [512];
        if (!self->cfg->path [0])
            log_warn ("reload_skipped", "why=\"no --config file\"");
        else
        if (config_reload_pbt (self->cfg, err, sizeof err))
            log_error ("reload_failed", "msg=\"%s\" kept=old", err);
        else
            log_info ("reloaded", "path=%s hparams=%u elo_k=%g t_select=%g", self->cfg->path,
                      self->cfg->pbt.n_hparams, self->cfg->pbt.elo_k, self->cfg->pbt.t_select);
        return 0;
    }
    log_info ("stopping", "signal=%s", strsignal (signo));
    self->stopping = true;
    return -1;                  // end zloop_start
}

static int
s_timer (zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    server_t *self = arg;
    int64_t now = zclock_usecs ();
    if (self->last_tick_us) {
        double slip = (double) (now - self->last_tick_us) / 1000.0 - self->cfg->housekeeping_ms;
        self->tick_slip_ms_last = slip;
        if (slip > self->tick_slip_ms_max)
            self->tick_slip_ms_max = slip;
        if (slip > 100)
            log_warn ("housekeeping_late", "slip_ms=%.1f period_ms=%u", slip, self->cfg->housekeeping_ms);
    }
    self->last_tick_us = now;
    self->ticks++;
    //  Nothing may join a batch waiting for its store sync: the pass runs
    //  once that batch has committed (s_committer_readable).
    if (self->commit_waiting)
        self->tick_deferred = true;
    else
        cron_run (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Life cycle

//  First start: N agents with initial hparams and rating elo_initial, and
//  no weights yet: each gets an init seed (from the population seed and
//  its id) from which the first worker to train it makes its weights (the
//  network lives in workers; pbtd holds weights as opaque bytes).
static int
s_create_population (server_t *self)
{
    config_t *cfg = self->cfg;
    int n = (int) cfg->size;
    db_agent_t *agents = calloc ((size_t) n, sizeof *agents);
    proto_state_t *states = calloc ((size_t) n, sizeof *states);
    int rc = -1;
    if (!agents || !states)
        goto cleanup;
    for (int i = 0; i < n; i++) {
        rng_t rng;
        rng_seed_stream (&rng, cfg->seed, (uint64_t) i);
        agents [i].id = i;
        agents [i].rating = cfg->pbt.elo_initial;
        pbt_initial_hparams (&cfg->pbt, &agents [i].hparams, &rng);
        states [i].init_seed = rng_next (&rng);
    }
    char fingerprint [32], seed [32], created [32];
    config_fingerprint (cfg, fingerprint, sizeof fingerprint);
    snprintf (seed, sizeof seed, "%" PRIu64, cfg->seed);
    snprintf (created, sizeof created, "%" PRId64, server_now_ms ());
    const char *meta [] = { "config_fingerprint", fingerprint, "seed", seed,
                            "created_at", created, "env", cfg->env,
                            "env_version", envspec_version (cfg->spec),
                            "env_hash", envspec_hash (cfg->spec), "paused", "0", NULL };
    rc = db_create_population (self->db, n, agents, states, meta, server_now_ms ());
    if (rc == 0)
        log_info ("population_created", "agents=%d env=%s n_params=%u", n, cfg->env,
                  cfg->n_params);
cleanup:
    for (int i = 0; states && i < n; i++)
        proto_state_free (&states [i]);
    free (states);
    free (agents);
    return rc;
}

//  Every record the database names reads back whole, or, with --repair,
//  each agent whose records do not falls back to its newest intact
//  snapshot. Cost: one read of each kept record (measured in README).
static int
s_check_store (server_t *self)
{
    db_store_check_t chk;
    int64_t t0 = zclock_usecs ();
    int64_t bad = db_store_check (self->db, &chk);
    if (bad < 0)
        return -1;
    log_info ("store_checked", "records=%" PRIu64 " bytes=%" PRIu64 " bad=%" PRIu64 " ms=%.1f",
              chk.records, chk.bytes, chk.bad, (double) (zclock_usecs () - t0) / 1000.0);
    if (bad == 0)
        return 0;
    if (!self->cfg->repair) {
        log_error ("store_mismatch", "db=%s bad_records=%" PRIu64 " of=%" PRIu64 " first=agt_%"
                   PRId64 "@%" PRIu64 " seg=%" PRIu32 " off=%" PRIu64 " why=\"the state store "
                   "does not match the database\" hint=\"restore the database and %s-states "
                   "together from a backup, or start with --repair: each damaged agent falls "
                   "back to its newest intact snapshot\"", self->cfg->db, chk.bad, chk.records,
                   chk.first_agent, chk.first_version, chk.first.seg, chk.first.off,
                   self->cfg->db);
        return -1;
    }
    int count = db_agent_count (self->db);
    for (int64_t id = 0; id < count; id++) {
        db_fallback_t fb;
        int rc = db_state_fallback (self->db, id, server_now_ms (), &fb);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            log_error ("repair_failed", "agent=agt_%" PRId64 " why=\"no snapshot of it reads "
                       "back\" hint=\"restore %s-states from the backup\"", id, self->cfg->db);
            return -1;
        }
        if (fb.dropped) {
            self->state_fallbacks++;
            log_warn ("state_fallback", "agent=agt_%" PRId64 " version=%" PRIu64 " from_version=%"
                      PRIu64 " was_version=%" PRIu64 " rows_dropped=%u repair=1", id,
                      fb.new_version, fb.fell_back ? fb.from_version : fb.old_version,
                      fb.old_version, fb.dropped);
        }
    }
    bad = db_store_check (self->db, &chk);
    return bad == 0 ? 0 : -1;
}

//  A population is trained by one build of its game: the spec hash
//  recorded at creation must be the plugin's now (a database from before
//  hashes were recorded adopts the current one).
static int
s_pin_env (server_t *self)
{
    const char *hash = envspec_hash (self->cfg->spec);
    char value [64];
    if (db_meta_get (self->db, "env_hash", value, sizeof value) == 0) {
        if (strcmp (value, hash)) {
            log_error ("env_mismatch", "db=%s plugin=%s why=\"the population was created with "
                       "the spec hash %s; this plugin's is %s (another build of the game)\"",
                       self->cfg->db, envspec_path (self->cfg->spec), value, hash);
            return -1;
        }
    }
    else
    if (db_meta_set (self->db, "env_hash", hash))
        return -1;
    snprintf (self->env_hash, sizeof self->env_hash, "%s", hash);
    log_info ("env", "name=%s version=%s hash=%s plugin=%s", envspec_name (self->cfg->spec),
              envspec_version (self->cfg->spec), hash, envspec_path (self->cfg->spec));
    return 0;
}

static int
s_load (server_t *self)
{
    int count = db_agent_count (self->db);
    if (count < 0)
        return -1;
    uint64_t stored = db_store_segment_bytes (self->db);
    if (count == 0 && stored > 0) {
        //  Starting afresh here would recycle those segments.
        log_error ("db_empty_store_full", "db=%s states=%s-states bytes=%" PRIu64 " why=\"the "
                   "database holds no population but the state store beside it holds training "
                   "states\" hint=\"restore %s from the backup; to start a new population "
                   "instead, move %s-states away\"", self->cfg->db, self->cfg->db, stored,
                   self->cfg->db, self->cfg->db);
        return -1;
    }
    if (count == 0 && s_create_population (self))
        return -1;
    char value [256];
    char fingerprint [32];
    config_fingerprint (self->cfg, fingerprint, sizeof fingerprint);
    if (db_meta_get (self->db, "config_fingerprint", value, sizeof value) == 0
    &&  strcmp (value, fingerprint)) {
        log_error ("config_mismatch", "db=%s why=\"env, model or population size differ from "
                   "the database's (fingerprint %s, config %s)\"", self->cfg->db, value,
                   fingerprint);
        return -1;
    }
    //  Space comes back a segment at a time: on a small disk, smaller ones.
    db_set_segment_bytes (self->db, (uint64_t) self->cfg->segment_mb << 20, DB_COMPACT_AGE_S);
    if (s_check_store (self))
        return -1;
    char fallbacks [32];
    if (db_meta_get (self->db, "state_fallbacks", fallbacks, sizeof fallbacks) == 0)
        self->state_fallbacks = strtoull (fallbacks, NULL, 10);
    self->n_agents = (int) self->cfg->size;
    self->agents = calloc ((size_t) self->n_agents, sizeof *self->agents);
    if (!self->agents)
        return -1;
    db_agent_t *rows = calloc ((size_t) self->n_agents, sizeof *rows);
    int n = rows ? db_load_agents (self->db, rows, self->n_agents) : -1;
    for (int i = 0; i < n; i++)
        self->agents [i].a = rows [i];
    free (rows);
    if (n != self->n_agents) {
        log_error ("population_mismatch", "expected=%d found=%d", self->n_agents, n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (self->agents [i].a.id != i) {
            log_error ("population_ids", "index=%d id=%" PRId64, i, self->agents [i].a.id);
            return -1;
        }
    self->paused = db_meta_get (self->db, "paused", value, sizeof value) == 0
                && !strcmp (value, "1");
    if (s_pin_env (self))
        return -1;
    //  Ids go on past every id sent before (even in a batch a crash lost).
    if (db_assignment_ids_start (self->db, SERVER_ASSIGN_ID_BLOCK, &self->asg_ceiling))
        return -1;
    self->asg_ceiling_durable = self->asg_ceiling;
    //  Leases survive a restart: workers may still deliver them.
    int n_leased = s_load_leases (self);
    if (n_leased < 0)
        return -1;
    //  Snapshots beyond snapshots_keep left by an older pbtd or a lowered
    //  setting go once, now; from here on each change trims its own agent.
    db_set_lineage_keep (self->db, self->cfg->lineage_keep);
    int pruned = db_prune_snapshots (self->db, self->cfg->snapshots_keep);
    if (pruned < 0)
        return -1;
    if (pruned > 0)
        log_info ("snapshots_pruned", "rows=%d", pruned);
    db_set_retention (self->db, self->cfg->snapshots_keep, self->cfg->matches_keep);
    db_set_episode_rows (self->db, self->cfg->episode_rows);
    db_set_results_keep (self->db, self->cfg->results_keep);
    db_set_payoff_window (self->db, self->cfg->payoff_window);
    //  Keep every current state in memory if the population fits the budget.
    uint64_t state_bytes = 3ull * sizeof (float) * self->cfg->n_params + sizeof (proto_state_t);
    self->cache_states = (uint64_t) self->n_agents * state_bytes
                         <= (uint64_t) self->cfg->state_cache_mb << 20;
    int64_t results = db_count_results (self->db), evolutions = db_count_evolutions (self->db);
    if (results < 0 || evolutions < 0)
        return -1;
    self->results = (uint64_t) results;
    self->evolutions = (uint64_t) evolutions;
    for (int i = 0; i < n; i++)
        self->samples += self->agents [i].a.frames;
    log_info ("population_loaded", "agents=%d leased=%d results=%" PRIu64 " evolutions=%"
              PRIu64 " paused=%d state_cache=%d", n, n_leased, self->results, self->evolutions,
              self->paused, self->cache_states);
    return 0;
}

//  The database's leased assignments into self->leases, their agents
//  busy. Count or -1.
static int
s_load_leases (server_t *self)
{
    uint64_t ids [4096];
    int n_leased = db_assignments_leased (self->db, ids, 4096);
    if (n_leased < 0)
        return -1;
    for (int i = 0; i < n_leased; i++) {
        lease_t *lease = calloc (1, sizeof *lease);
        int rc = lease ? db_assignment_get (self->db, ids [i], &lease->a) : -1;
        if (rc) {
            log_error ("lease_load_failed", "assignment=%" PRIu64 " why=\"%s\"", ids [i],
                       rc > 0 ? "listed as leased but not found" : "see the error before");
            free (lease);
            return -1;
        }
        zlistx_add_end (self->leases, lease);
        for (uint32_t s = 0; s < lease->a.n_seats; s++) {
            agent_t *agent = s_agent (self, lease->a.seats [s].agent_id);
            if (agent && !lease->a.seats [s].frozen) {
                agent->busy = true;
                agent->assignment = lease->a.id;
            }
        }
    }
    return n_leased;
}

//  A ROUTER on endpoint. With a certificate, tcp endpoints speak CURVE and
//  zauth admits only the keys in [security] allowed_keys; an ipc control
//  socket is instead guarded by its file mode.
static zsock_t *
s_bind (server_t *self, const char *endpoint, bool control)
{
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock)
        return NULL;
    zsock_set_maxmsgsize (sock, PROTO_MAX_FRAME);
    //  Frames are bounded in time too. libzmq cannot see a partial frame,
    //  but it buffers one whole (a 60 MiB header and 48 MiB of body hold
    //  48 MiB), so a slow sender could pin memory for as long as it likes.
    //  ZMTP heartbeats bound it: pbtd pings every ivl, and a connection
    //  that sends no complete message (a pong included: it would queue
    //  behind the partial frame) within timeout of a ping is closed,
    //  freeing the buffer. So a partial frame lives at most
    //  frame_timeout_ms, and a frame that takes under half of it to arrive
    //  is never cut (README, "Failure behaviour"). Idle peers answer the
    //  pings from libzmq's I/O thread, whatever their application does.
    int half = (int) self->cfg->frame_timeout_ms / 2;
    zsock_set_heartbeat_ivl (sock, half);
    zsock_set_heartbeat_timeout (sock, half);
    zsock_set_router_mandatory (sock, 1);
    zsock_set_linger (sock, 1000);
    zsock_set_sndhwm (sock, 10000);
    bool ipc = !strncmp (endpoint, "ipc://", 6);
    if (self->cert && !ipc) {
        if (!control)
            self->worker_curve = true;
        zcert_apply (self->cert, sock);
        zsock_set_curve_server (sock, 1);
        zsock_set_zap_domain (sock, "pbt");
    }
    if (zsock_bind (sock, "%s", endpoint) < 0) {
        log_error ("bind_failed", "endpoint=%s msg=\"%s\"", endpoint, zmq_strerror (zmq_errno ()));
        zsock_destroy (&sock);
        return NULL;
    }
    if (control && ipc && chmod (endpoint + 6, (mode_t) self->cfg->control_mode) != 0) {
        log_error ("chmod_failed", "endpoint=%s msg=\"%s\"", endpoint, strerror (errno));
        zsock_destroy (&sock);
    }
    return sock;
}

//  CURVE: load pbtd's certificate and start the ZAP handler before any
//  socket binds, so no connection is ever admitted unauthenticated.
static int
s_security_start (server_t *self)
{
    if (!self->cfg->cert [0])
        return 0;
    if (!strcmp (self->cfg->allowed_keys, "*")) {
        //  CZMQ's wildcard: any key at all would get in.
        log_error ("allowed_keys_wildcard", "why=\"allowed_keys = * admits every CURVE key\" "
                   "hint=\"name a directory of the public certificates to admit\"");
        return -1;
    }
    self->cert = zcert_load (self->cfg->cert);
    if (!self->cert) {
        log_error ("cert_load_failed", "path=%s hint=\"make one with pbtctl keygen\"", self->cfg->cert);
        return -1;
    }
    self->auth = zactor_new (zauth, NULL);
    if (!self->auth)
        return -1;
    if (self->cfg->log_level == PBT_LOG_DEBUG) {
        zstr_sendx (self->auth, "VERBOSE", NULL);
        zsock_wait (self->auth);
    }
    zstr_sendx (self->auth, "CURVE", self->cfg->allowed_keys, NULL);
    zsock_wait (self->auth);
    log_info ("curve_enabled", "public_key=%s allowed_keys=%s", zcert_public_txt (self->cert),
              self->cfg->allowed_keys);
    return 0;
}

//  One pbtd per database: an exclusive flock on <db>.lock, held until exit
//  (the kernel drops it if pbtd dies). The file says who holds it.
static int
s_lock_db (server_t *self)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s.lock", self->cfg->db);
    self->lock_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (self->lock_fd < 0) {
        log_error ("db_lock_failed", "path=%s msg=\"%s\"", path, strerror (errno));
        return -1;
    }
    if (flock (self->lock_fd, LOCK_EX | LOCK_NB)) {
        char holder [32] = "";
        ssize_t n = pread (self->lock_fd, holder, sizeof holder - 1, 0);
        holder [n > 0 ? n : 0] = 0;
        holder [strcspn (holder, "\n")] = 0;
        log_error ("db_locked", "db=%s lock=%s holder_pid=%s why=\"another pbtd is running on "
                   "this database\" hint=\"stop it first, or give this one another --db\"",
                   self->cfg->db, path, holder [0] ? holder : "?");
        close (self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    char pid [32];
    int n = snprintf (pid, sizeof pid, "%d\n", (int) getpid ());
    if (ftruncate (self->lock_fd, 0) || pwrite (self->lock_fd, pid, (size_t) n, 0) != n)
        log_warn ("db_lock_pid_failed", "path=%s msg=\"%s\"", path, strerror (errno));
    return 0;
}

server_t *
server_new (config_t *cfg, int sigfd)
{
    assert (cfg);
    server_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    self->sigfd = sigfd;
    self->lock_fd = -1;
    self->started = zclock_mono ();
    self->last_metrics = self->started;
    rng_seed_stream (&self->rng, cfg->seed, 0x9b7d);
    self->env = cfg->spec ? envspec_env (cfg->spec) : NULL;
    self->peers = zhashx_new ();
    self->waiting = zlistx_new ();
    self->leases = zlistx_new ();
    self->outbox = zlistx_new ();
    self->pending = zlistx_new ();
    if (!self->env || !self->peers || !self->waiting || !self->leases || !self->outbox
    ||  !self->pending)
        goto fail;
    zhashx_set_destructor (self->peers, s_peer_destroy);
    zlistx_set_destructor (self->waiting, (zlistx_destructor_fn *) zstr_free);
    self->turn_ms = calloc (SERVER_TURN_RING, sizeof *self->turn_ms);
    if (!self->turn_ms)
        goto fail;
    if (s_lock_db (self))
        goto fail;
    self->db = db_new (cfg->db);
    if (!self->db || s_load (self))
        goto fail;
    if (db_checkpointer_start (self->db, cfg->checkpoint_ms, (uint64_t) cfg->wal_max_mb << 20))
        goto fail;
    char wal [PATH_MAX];
    if (snprintf (wal, sizeof wal, "%s-wal", cfg->db) >= (int) sizeof wal)
        goto fail;
    self->committer = committer_new (wal);
    if (!self->committer)
        goto fail;
    if (s_security_start (self))
        goto fail;
    self->reader = reader_new (cfg->db, self->n_agents, cfg->pbt.elo_initial, cfg->payoff_window);
    if (!self->reader)
        goto fail;
    self->worker = s_bind (self, cfg->worker_endpoint, false);
    self->control = s_bind (self, cfg->control_endpoint, true);
    if (!self->worker || !self->control)
        goto fail;
    if (cfg->metrics_enabled) {
        char err [512];
        self->metrics = metrics_new (cfg->metrics_listen, err, sizeof err);
        if (!self->metrics) {
            log_error ("metrics_failed", "error=\"%s\"", err);
            goto fail;
        }
    }
    //  The reader drains every queued message per wakeup (group commit).
    zsock_set_rcvtimeo (self->worker, 0);
    self->loop = zloop_new ();
    if (!self->loop)
        goto fail;
    zloop_reader (self->loop, self->worker, s_worker_readable, self);
    zloop_reader (self->loop, self->control, s_control_readable, self);
    zloop_reader (self->loop, reader_sock (self->reader), s_reader_readable, self);
    zloop_reader (self->loop, committer_sock (self->committer), s_committer_readable, self);
    if (sigfd >= 0) {
        zmq_pollitem_t item = { NULL, sigfd, ZMQ_POLLIN, 0 };
        zloop_poller (self->loop, &item, s_signal_readable, self);
    }
    zloop_timer (self->loop, cfg->housekeeping_ms, 0, s_timer, self);
    log_info ("listening", "worker=%s control=%s db=%s", cfg->worker_endpoint,
              cfg->control_endpoint, cfg->db);
    return self;
fail:
    server_destroy (&self);
    return NULL;
}

void
server_destroy (server_t **self_p)
{
    assert (self_p);
    server_t *self = *self_p;
    if (!self)
        return;
    zloop_destroy (&self->loop);
    //  Every job handed over runs before the thread ends; messages still
    //  pending (a failed drain) are never sent.
    committer_destroy (&self->committer);
    if (self->pending) {
        pending_t *p;
        while ((p = zlistx_detach (self->pending, NULL)))
            s_pending_destroy (&p);
        zlistx_destroy (&self->pending);
    }
    reader_destroy (&self->reader);
    metrics_destroy (&self->metrics);
    zsock_destroy (&self->worker);
    zsock_destroy (&self->control);
    zactor_destroy (&self->auth);
    zcert_destroy (&self->cert);
    if (self->leases) {
        lease_t *l;
        while ((l = zlistx_detach (self->leases, NULL)))
            free (l);
        zlistx_destroy (&self->leases);
    }
    if (self->outbox) {
        outmsg_t *out;
        while ((out = zlistx_detach (self->outbox, NULL)))
            s_outmsg_destroy (&out);
        zlistx_destroy (&self->outbox);
    }
    zlistx_destroy (&self->waiting);
    zhashx_destroy (&self->peers);
    free (self->turn_ms);
    db_destroy (&self->db);
    if (self->lock_fd >= 0)
        close (self->lock_fd);
    if (self->agents)
        s_cache_clear (self);
    free (self->agents);
    free (self);
    *self_p = NULL;
}

int
server_run (server_t *self)
{
#ifdef HAVE_SYSTEMD
    sd_notifyf (0, "READY=1\nSTATUS=serving %d agents", self->n_agents);
#endif
    //  Leases that ran out while pbtd was down are expired now.
    cron_run (self);
    //  zloop_start also returns when a signal interrupts its poll; the
    //  signal's byte is then read on the next turn, so loop until a
    //  handler asked to stop.
    while (!self->stopping)
        if (zloop_start (self->loop) == -1 && !self->stopping) {
            log_error ("reactor_failed", "msg=\"a handler ended the loop\"");
            break;
        }
    self->stopping = true;
#ifdef HAVE_SYSTEMD
    sd_notify (0, "STOPPING=1");
#endif
    s_commit_drain (self);
    log_info ("stopped", "results=%" PRIu64 " evolutions=%" PRIu64 " commits=%" PRIu64
              " messages=%" PRIu64 " checkpoints=%" PRIu64, self->results, self->evolutions,
              self->batches, self->batched, db_checkpoints (self->db));
    return self->wal_failed ? -1 : 0;
}
