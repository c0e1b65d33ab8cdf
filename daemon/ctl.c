/*  ctl: pbtd's control commands (the "ctl" message on the control
    endpoint). Every reply body is one MessagePack value; docs/schema.md
    ("Control commands") lists the commands and their body shapes.
*/
#include "server_priv.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_reply.h"
#include "log.h"
#include "meta.h"

//  "agt_3" or "3" -> 3; -1 if malformed or out of range.
static int64_t
s_parse_agent (server_t *self, const char *s)
{
    if (!strncmp (s, "agt_", 4))
        s += 4;
    char *end;
    long long v = strtoll (s, &end, 10);
    if (end == s || *end || v < 0 || v >= self->n_agents)
        return -1;
    return v;
}

static int
s_cmp_float (const void *a, const void *b)
{
    float x = *(const float *) a, y = *(const float *) b;
    return x < y ? -1 : x > y;
}

//  p50, p99 and max of pbtd's assignment turnaround over the ring.
static void
s_turnaround (server_t *self, msgpack_packer *pk)
{
    uint32_t n = self->turn_n;
    float *v = n ? malloc (n * sizeof *v) : NULL;
    msgpack_pack_map (pk, 4);
    ctl_pack_str (pk, "n");
    msgpack_pack_uint32 (pk, v ? n : 0);
    if (v) {
        memcpy (v, self->turn_ms, n * sizeof *v);
        qsort (v, n, sizeof *v, s_cmp_float);
    }
    const char *names [3] = { "p50", "p99", "max" };
    double q [3] = { 0.50, 0.99, 1.0 };
    for (int k = 0; k < 3; k++) {
        ctl_pack_str (pk, names [k]);
        if (v)
            msgpack_pack_double (pk, v [(uint32_t) (q [k] * (n - 1) + 0.5)]);
        else
            msgpack_pack_nil (pk);
    }
    free (v);
}

//  The meta-game's Nash weight and score of live agent id (nil if it is
//  not a player yet).
static void
s_nash_of (msgpack_packer *pk, const meta_nash_t *m, int64_t id, bool weight)
{
    for (int i = 0; i < m->n; i++)
        if (m->players [i].agent == id && m->players [i].version == 0) {
            msgpack_pack_double (pk, weight ? m->players [i].weight : m->players [i].score);
            return;
        }
    msgpack_pack_nil (pk);
}

static void
s_status (server_t *self, msgpack_packer *pk)
{
    //  Nash over the payoff counters, for each agent's weight and the
    //  recommendation (none before any games).
    meta_nash_t m;
    char merr [PROTO_MAX_TEXT];
    if (meta_nash (self->db, self->n_agents, &m, merr, sizeof merr) < 0)
        log_warn ("nash_failed", "error=\"%s\"", merr);
    msgpack_pack_map (pk, 18);
    ctl_pack_str (pk, "agents");
    msgpack_pack_array (pk, (uint32_t) self->n_agents);
    for (int i = 0; i < self->n_agents; i++) {
        const agent_t *ag = &self->agents [i];
        const db_agent_t *a = &ag->a;
        msgpack_pack_map (pk, 14);
        ctl_pack_str (pk, "id");
        ctl_pack_agent_name (pk, a->id);
        ctl_pack_str (pk, "rating");
        msgpack_pack_double (pk, a->rating);
        ctl_pack_str (pk, "nash_weight");
        s_nash_of (pk, &m, a->id, true);
        ctl_pack_str (pk, "nash_score");
        s_nash_of (pk, &m, a->id, false);
        ctl_pack_str (pk, "matches");
        msgpack_pack_uint64 (pk, a->matches);
        ctl_pack_str (pk, "frames");
        msgpack_pack_uint64 (pk, a->frames);
        ctl_pack_str (pk, "lr");
        msgpack_pack_double (pk, proto_kvs_get (&a->hparams, "lr", 0));
        ctl_pack_str (pk, "gamma");
        msgpack_pack_double (pk, proto_kvs_get (&a->hparams, "gamma", 0));
        ctl_pack_str (pk, "generation");
        msgpack_pack_uint64 (pk, a->generation);
        ctl_pack_str (pk, "parent");
        if (a->parent >= 0)
            ctl_pack_agent_name (pk, a->parent);
        else
            msgpack_pack_nil (pk);
        ctl_pack_str (pk, "busy");
        if (ag->busy)
            msgpack_pack_true (pk);
        else
            msgpack_pack_false (pk);
        ctl_pack_str (pk, "version");
        msgpack_pack_uint64 (pk, a->version);
        ctl_pack_str (pk, "assignment");
        if (ag->assignment)
            msgpack_pack_uint64 (pk, ag->assignment);
        else
            msgpack_pack_nil (pk);
        ctl_pack_str (pk, "hparams");
        ctl_pack_kvs (pk, &a->hparams);
    }
    ctl_pack_str (pk, "workers");
    msgpack_pack_uint64 (pk, zhashx_size (self->peers));
    ctl_pack_str (pk, "samples_per_s");
    msgpack_pack_double (pk, server_samples_per_s (self));
    ctl_pack_str (pk, "results");
    msgpack_pack_uint64 (pk, self->results);
    ctl_pack_str (pk, "evolutions");
    msgpack_pack_uint64 (pk, self->evolutions);
    ctl_pack_str (pk, "samples");
    msgpack_pack_uint64 (pk, self->samples);
    ctl_pack_str (pk, "frozen_snapshots");
    int64_t frozen = db_frozen_count (self->db);
    msgpack_pack_int64 (pk, frozen > 0 ? frozen : 0);
    ctl_pack_str (pk, "assignments_in_flight");
    msgpack_pack_uint32 (pk, server_leases_in_flight (self));
    ctl_pack_str (pk, "paused");
    if (self->paused)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    ctl_pack_str (pk, "env");
    ctl_pack_str (pk, self->cfg->env);
    //  What a worker's hello must announce for this game (PROTOCOL.md §8).
    ctl_pack_str (pk, "env_hash");
    ctl_pack_str (pk, self->env_hash);
    ctl_pack_str (pk, "assign_turnaround_ms");
    s_turnaround (self, pk);
    //  Housekeeping ticks: a control call that stalled the reactor would
    //  show as a tick count that did not move and a large slip.
    ctl_pack_str (pk, "housekeeping");
    msgpack_pack_map (pk, 4);
    ctl_pack_str (pk, "ticks");
    msgpack_pack_uint64 (pk, self->ticks);
    ctl_pack_str (pk, "period_ms");
    msgpack_pack_uint32 (pk, self->cfg->housekeeping_ms);
    ctl_pack_str (pk, "slip_ms_max");
    msgpack_pack_double (pk, self->tick_slip_ms_max);
    ctl_pack_str (pk, "slip_ms_last");
    msgpack_pack_double (pk, self->tick_slip_ms_last);
    ctl_pack_str (pk, "reader");
    msgpack_pack_map (pk, 2);
    ctl_pack_str (pk, "served");
    msgpack_pack_uint64 (pk, self->reader ? reader_served (self->reader) : 0);
    ctl_pack_str (pk, "in_flight");
    msgpack_pack_uint32 (pk, self->reader ? reader_in_flight (self->reader) : 0);
    //  Damaged state records: agents that fell back to an intact snapshot
    //  (all time), and agents left out of matches for want of one.
    ctl_pack_str (pk, "state_fallbacks");
    msgpack_pack_uint64 (pk, self->state_fallbacks);
    ctl_pack_str (pk, "agents_unreadable");
    uint32_t unreadable = 0;
    for (int i = 0; i < self->n_agents; i++)
        unreadable += self->agents [i].unreadable;
    msgpack_pack_uint32 (pk, unreadable);
    ctl_pack_str (pk, "recommended");
    if (m.recommended >= 0)
        ctl_pack_agent_name (pk, m.recommended);
    else
        msgpack_pack_nil (pk);
    ctl_pack_str (pk, "nash_ms");
    msgpack_pack_double (pk, m.ms);
    meta_nash_clear (&m);
}

//  nash: the meta-game's equilibrium over agents and kept snapshots.
static void
s_nash (server_t *self, msgpack_packer *pk, char *err, size_t err_len)
{
    meta_nash_t m;
    if (meta_nash (self->db, self->n_agents, &m, err, err_len) != 0) {
        meta_nash_clear (&m);
        return;
    }
    msgpack_pack_map (pk, 6);
    ctl_pack_str (pk, "snapshots_left_out");
    msgpack_pack_int32 (pk, m.snapshots_left_out);
    ctl_pack_str (pk, "players");
    msgpack_pack_array (pk, (uint32_t) m.n);
    for (int i = 0; i < m.n; i++) {
        const meta_player_t *p = &m.players [i];
        char name [48];
        if (p->version)
            snprintf (name, sizeof name, "agt_%" PRId64 "@%" PRIu64, p->agent, p->version);
        else
            snprintf (name, sizeof name, "agt_%" PRId64, p->agent);
        msgpack_pack_map (pk, 5);
        ctl_pack_str (pk, "id");
        ctl_pack_str (pk, name);
        ctl_pack_str (pk, "frozen");
        if (p->version)
            msgpack_pack_true (pk);
        else
            msgpack_pack_false (pk);
        ctl_pack_str (pk, "weight");
        msgpack_pack_double (pk, p->weight);
        ctl_pack_str (pk, "score");
        msgpack_pack_double (pk, p->score);
        ctl_pack_str (pk, "episodes");
        msgpack_pack_uint64 (pk, p->episodes);
    }
    ctl_pack_str (pk, "recommended");
    if (m.recommended >= 0)
        ctl_pack_agent_name (pk, m.recommended);
    else
        msgpack_pack_nil (pk);
    ctl_pack_str (pk, "gap");
    msgpack_pack_double (pk, m.gap);
    ctl_pack_str (pk, "episodes");
    msgpack_pack_uint64 (pk, m.episodes);
    ctl_pack_str (pk, "ms");
    msgpack_pack_double (pk, m.ms);
    meta_nash_clear (&m);
}

static void
s_workers (server_t *self, msgpack_packer *pk)
{
    int64_t now = zclock_mono ();
    msgpack_pack_array (pk, (uint32_t) zhashx_size (self->peers));
    for (peer_t *p = zhashx_first (self->peers); p; p = zhashx_next (self->peers)) {
        msgpack_pack_map (pk, 13);
        ctl_pack_str (pk, "worker_id");
        ctl_pack_str (pk, p->worker_id);
        ctl_pack_str (pk, "host");
        ctl_pack_str (pk, p->host);
        ctl_pack_str (pk, "pid");
        msgpack_pack_uint32 (pk, p->pid);
        ctl_pack_str (pk, "software");
        ctl_pack_str (pk, p->software);
        ctl_pack_str (pk, "assignment");
        if (p->assignment)
            msgpack_pack_uint64 (pk, p->assignment);
        else
            msgpack_pack_nil (pk);
        ctl_pack_str (pk, "frames_done");
        msgpack_pack_uint64 (pk, p->frames_done);
        ctl_pack_str (pk, "waiting");
        if (p->parked)
            msgpack_pack_true (pk);
        else
            msgpack_pack_false (pk);
        ctl_pack_str (pk, "samples_per_s");
        msgpack_pack_double (pk, p->samples_per_s);
        ctl_pack_str (pk, "last_seen_ms_ago");
        msgpack_pack_int64 (pk, now - p->last_seen);
        ctl_pack_str (pk, "held");
        msgpack_pack_uint32 (pk, server_peer_held (self, p));
        //  Compute time / wall time, from the worker's own counters over
        //  the last 15-30 s (nil until it sends them).
        ctl_pack_str (pk, "duty_cycle");
        double duty = server_peer_duty (p);
        if (duty < 0)
            msgpack_pack_nil (pk);
        else
            msgpack_pack_double (pk, duty);
        ctl_pack_str (pk, "busy_ms");
        msgpack_pack_uint64 (pk, p->duty_last.busy_ms);
        ctl_pack_str (pk, "uptime_ms");
        msgpack_pack_uint64 (pk, p->duty_last.uptime_ms);
    }
}

static int
s_agent_state (server_t *self, msgpack_packer *pk, int64_t id, uint64_t version,
               char *err, size_t err_len)
{
    const agent_t *ag = &self->agents [id];
    //  An older version is served if it is still kept (snapshots_keep,
    //  frozen, lineage_keep); hparams and rating stay the agent's current.
    if (version == 0)
        version = ag->a.version;
    proto_state_t state;
    if (version > ag->a.version || db_load_state (self->db, id, version, &state)) {
        snprintf (err, err_len, "no snapshot for agt_%" PRId64 " version %" PRIu64 " (current "
                  "%" PRIu64 "; older ones are kept per snapshots_keep, frozen_keep and "
                  "lineage_keep)", id, version, ag->a.version);
        return -1;
    }
    const proto_model_t *m = &self->cfg->model;
    //  An agent never trained has no weights yet: init_seed says how the
    //  worker (and pbtctl) make them, and params is empty.
    msgpack_pack_map (pk, 14);
    ctl_pack_str (pk, "init_seed");
    msgpack_pack_uint64 (pk, state.init_seed);
    ctl_pack_str (pk, "agent");
    ctl_pack_agent_name (pk, id);
    ctl_pack_str (pk, "version");
    msgpack_pack_uint64 (pk, version);
    ctl_pack_str (pk, "generation");
    msgpack_pack_uint64 (pk, ag->a.generation);
    ctl_pack_str (pk, "model");
    msgpack_pack_map (pk, 4);
    ctl_pack_str (pk, "obs_dim");
    msgpack_pack_uint32 (pk, m->obs_dim);
    ctl_pack_str (pk, "n_actions");
    msgpack_pack_uint32 (pk, m->n_actions);
    ctl_pack_str (pk, "hidden");
    msgpack_pack_array (pk, m->n_hidden);
    for (uint32_t i = 0; i < m->n_hidden; i++)
        msgpack_pack_uint32 (pk, m->hidden [i]);
    ctl_pack_str (pk, "activation");
    ctl_pack_str (pk, m->activation);
    ctl_pack_str (pk, "env");
    ctl_pack_str (pk, self->cfg->env);
    ctl_pack_str (pk, "env_options");
    ctl_pack_kvs (pk, &self->cfg->env_options);
    ctl_pack_str (pk, "hparams");
    ctl_pack_kvs (pk, &ag->a.hparams);
    ctl_pack_str (pk, "rating");
    msgpack_pack_double (pk, ag->a.rating);
    ctl_pack_str (pk, "frames");
    msgpack_pack_uint64 (pk, ag->a.frames);
    ctl_pack_str (pk, "matches");
    msgpack_pack_uint64 (pk, ag->a.matches);
    ctl_pack_str (pk, "n_params");
    msgpack_pack_uint32 (pk, state.n_params);
    ctl_pack_str (pk, "adam_t");
    msgpack_pack_uint64 (pk, state.adam_t);
    //  float32 little-endian, nn.h layout (this host is little-endian).
    ctl_pack_str (pk, "params");
    msgpack_pack_bin (pk, state.n_params * sizeof (float));
    msgpack_pack_bin_body (pk, state.params, state.n_params * sizeof (float));
    proto_state_free (&state);
    return 0;
}

//  Admin commands change the run. With an admin token configured they need
//  it; without one they are only taken on an ipc:// control endpoint, whose
//  file mode already decides who may connect.
static bool
s_admin_ok (server_t *self, const proto_ctl_t *ctl, char *err, size_t err_len)
{
    const char *want = self->cfg->admin_token;
    if (want [0]) {
        //  Compare in constant time: the token is a secret.
        size_t n = strlen (want), m = strlen (ctl->token);
        unsigned diff = (unsigned) (n ^ m);
        for (size_t i = 0; i < n; i++)
            diff |= (unsigned char) want [i] ^ (unsigned char) (i < m ? ctl->token [i] : 0);
        if (diff) {
            snprintf (err, err_len, "'%s' is an admin command: it needs the admin token "
                      "(set PBTCTL_TOKEN)", ctl->cmd);
            return false;
        }
        return true;
    }
    if (strncmp (self->cfg->control_endpoint, "ipc://", 6)) {
        snprintf (err, err_len, "'%s' is an admin command: configure [security] admin_token_file, "
                  "or use an ipc:// control endpoint", ctl->cmd);
        return false;
    }
    return true;
}

void
ctl_handle (server_t *self, const proto_ctl_t *ctl, proto_ctl_reply_t *reply)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    char err [PROTO_MAX_TEXT] = "";
    char agent [PROTO_MAX_NAME] = "";
    const uint8_t *args = ctl->args;
    size_t args_len = ctl->args_len;
    int64_t id = -1;
    bool has_agent = proto_args_str (args, args_len, "agent", agent, sizeof agent) == 0;
    if (has_agent && (id = s_parse_agent (self, agent)) < 0)
        snprintf (err, sizeof err, "no agent '%s' (agt_0..agt_%d)", agent, self->n_agents - 1);
    else
    if (!strcmp (ctl->cmd, "status"))
        s_status (self, &pk);
    else
    if (!strcmp (ctl->cmd, "workers"))
        s_workers (self, &pk);
    else
    if (!strcmp (ctl->cmd, "nash"))
        s_nash (self, &pk, err, sizeof err);
    else
    if ((!strcmp (ctl->cmd, "pause") || !strcmp (ctl->cmd, "resume"))
    &&  !s_admin_ok (self, ctl, err, sizeof err))
        ;   // refused: err says why
    else
    if (!strcmp (ctl->cmd, "pause") || !strcmp (ctl->cmd, "resume")) {
        bool pause = ctl->cmd [0] == 'p';
        if (db_meta_set (self->db, "paused", pause ? "1" : "0"))
            snprintf (err, sizeof err, "database error");
        else {
            self->paused = pause;
            log_info (pause ? "paused" : "resumed", NULL);
            msgpack_pack_map (&pk, 1);
            ctl_pack_str (&pk, "paused");
            if (pause)
                msgpack_pack_true (&pk);
            else
                msgpack_pack_false (&pk);
            if (!pause) {
                server_batch_begin (self);
                server_dispatch (self);
                server_batch_end (self);
            }
        }
    }
    else
    if (!strcmp (ctl->cmd, "agent_state")) {
        if (!has_agent)
            snprintf (err, sizeof err, "agent_state needs agent (e.g. agt_0)");
        else
            s_agent_state (self, &pk, id, (uint64_t) proto_args_int (args, args_len, "version", 0),
                           err, sizeof err);
    }
    else
        snprintf (err, sizeof err, "unknown command '%s'", ctl->cmd);

    memset (reply, 0, sizeof *reply);
    if (err [0]) {
        reply->ok = false;
        snprintf (reply->error, sizeof reply->error, "%s", err);
        msgpack_sbuffer_destroy (&sbuf);
        log_info ("ctl", "cmd=%s ok=0 error=\"%s\"", ctl->cmd, err);
        return;
    }
    reply->ok = true;
    reply->body = (uint8_t *) sbuf.data;    // malloc'd by msgpack_sbuffer
    reply->body_len = sbuf.size;
    log_debug ("ctl", "cmd=%s ok=1 bytes=%zu", ctl->cmd, sbuf.size);
}
