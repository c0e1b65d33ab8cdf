/*  db_agents: agents, their hyperparameters and snapshots, and the assignments (leases) that use them. */
#include "db_priv.h"

#include "rng.h"

int
db_hparams_write (db_t *self, int64_t id, const proto_kvs_t *hp, const char *reason,
                  int64_t seq, int64_t now)
{
    sqlite3_stmt *st = s_q (self, Q_HP_DEL);
    sqlite3_bind_int64 (st, 1, id);
    if (s_exec (self, st, "hparams_delete"))
        return -1;
    for (uint32_t k = 0; k < hp->count; k++) {
        st = s_q (self, Q_HP_INSERT);
        sqlite3_bind_int64 (st, 1, id);
        sqlite3_bind_text (st, 2, hp->items [k].name, -1, SQLITE_STATIC);
        sqlite3_bind_double (st, 3, hp->items [k].value);
        if (s_exec (self, st, "hparams_insert"))
            return -1;
        st = s_q (self, Q_HH_INSERT);
        sqlite3_bind_int64 (st, 1, id);
        sqlite3_bind_int64 (st, 2, seq);
        sqlite3_bind_text (st, 3, hp->items [k].name, -1, SQLITE_STATIC);
        sqlite3_bind_double (st, 4, hp->items [k].value);
        sqlite3_bind_text (st, 5, reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 6, now);
        if (s_exec (self, st, "hparam_history_insert"))
            return -1;
    }
    return 0;
}

int
db_snapshot_insert (db_t *self, int64_t id, uint64_t version, const proto_state_t *state,
                    int64_t now)
{
    //  The bytes go to the store first; the row naming them commits only
    //  after store_sync (db_op_commit), so a committed row never names bytes
    //  a crash could lose.
    //  No weights yet (a new agent): no record; seg -1 marks the row and
    //  off keeps the init seed, so an evolution's row copy inherits it.
    store_ref_t ref = { .len = 0 };
    int64_t seg = -1, off = (int64_t) state->init_seed;
    if (state->n_params > 0) {
        if (store_append (self->store, id, version, state, &ref))
            return -1;
        seg = ref.seg;
        off = (int64_t) ref.off;
    }
    sqlite3_stmt *st = s_q (self, Q_SNAP_INSERT);
    sqlite3_bind_int64 (st, 1, id);
    sqlite3_bind_int64 (st, 2, (int64_t) version);
    sqlite3_bind_int64 (st, 3, seg);
    sqlite3_bind_int64 (st, 4, off);
    sqlite3_bind_int64 (st, 5, ref.len);
    sqlite3_bind_int64 (st, 6, state->n_params);
    sqlite3_bind_int64 (st, 7, (int64_t) state->adam_t);
    sqlite3_bind_int64 (st, 8, now);
    return s_exec (self, st, "snapshot_insert");
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#   error "db_agents.c stores float32 vectors in host order and expects little-endian"
#endif

int
db_create_population (db_t *self, int n, const db_agent_t *agents,
                      const proto_state_t *states, const char *const *meta_kv, int64_t now)
{
    if (db_op_begin (self))
        return -1;
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = s_q (self, Q_AGENT_INSERT);
        sqlite3_bind_int64 (st, 1, agents [i].id);
        sqlite3_bind_int64 (st, 2, 1);
        sqlite3_bind_double (st, 3, agents [i].rating);
        sqlite3_bind_int64 (st, 4, now);
        if (s_exec (self, st, "agent_insert")
        ||  db_snapshot_insert (self, agents [i].id, 1, &states [i], now)
        ||  db_hparams_write (self, agents [i].id, &agents [i].hparams, "init", 0, now))
            goto fail;
    }
    for (int i = 0; meta_kv && meta_kv [i]; i += 2)
        if (db_meta_set_in (self, meta_kv [i], meta_kv [i + 1]))
            goto fail;
    return db_op_commit (self);
fail:
    db_op_rollback (self);
    return -1;
}

static void
s_agent_row (sqlite3_stmt *st, db_agent_t *a)
{
    memset (a, 0, sizeof *a);
    a->id = sqlite3_column_int64 (st, 0);
    a->version = (uint64_t) sqlite3_column_int64 (st, 1);
    a->generation = (uint64_t) sqlite3_column_int64 (st, 2);
    a->parent = sqlite3_column_type (st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int64 (st, 3);
    a->rating = sqlite3_column_double (st, 4);
    a->matches = (uint64_t) sqlite3_column_int64 (st, 5);
    a->frames = (uint64_t) sqlite3_column_int64 (st, 6);
    a->frames_since_evolve = (uint64_t) sqlite3_column_int64 (st, 7);
    a->matches_since_evolve = (uint64_t) sqlite3_column_int64 (st, 8);
    a->created_at = sqlite3_column_int64 (st, 9);
    a->updated_at = sqlite3_column_int64 (st, 10);
}

static int
s_load_hparams (db_t *self, int64_t id, proto_kvs_t *hp)
{
    memset (hp, 0, sizeof *hp);
    sqlite3_stmt *st = s_q (self, Q_HP_GET);
    sqlite3_bind_int64 (st, 1, id);
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        proto_kvs_set (hp, (const char *) sqlite3_column_text (st, 0),
                       sqlite3_column_double (st, 1));
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "hparams_get");
        return -1;
    }
    return 0;
}

int
db_load_agents (db_t *self, db_agent_t *agents, int max)
{
    sqlite3_stmt *st = s_q (self, Q_AGENT_ALL);
    int n = 0, rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW && n < max)
        s_agent_row (st, &agents [n++]);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        s_fail (self, "agents_all");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (s_load_hparams (self, agents [i].id, &agents [i].hparams))
            return -1;
    return n;
}

int
db_load_agent (db_t *self, int64_t id, db_agent_t *agent)
{
    sqlite3_stmt *st = s_q (self, Q_AGENT_GET);
    sqlite3_bind_int64 (st, 1, id);
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW)
        s_agent_row (st, agent);
    sqlite3_reset (st);
    if (rc == SQLITE_DONE)
        return 1;
    if (rc != SQLITE_ROW) {
        s_fail (self, "agent_get");
        return -1;
    }
    return s_load_hparams (self, id, &agent->hparams);
}

int
db_load_state (db_t *self, int64_t agent_id, uint64_t version, proto_state_t *state)
{
    memset (state, 0, sizeof *state);
    sqlite3_stmt *st = s_q (self, Q_SNAP_GET);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) version);
    int rc = sqlite3_step (st);
    int ret = -1;
    if (rc == SQLITE_DONE) {
        ret = 1;
        goto cleanup;
    }
    if (rc != SQLITE_ROW) {
        s_fail (self, "snapshot_get");
        goto cleanup;
    }
    store_ref_t ref = {
        .seg = (uint32_t) sqlite3_column_int64 (st, 0),
        .off = (uint64_t) sqlite3_column_int64 (st, 1),
        .len = (uint32_t) sqlite3_column_int64 (st, 2),
    };
    uint32_t n_params = (uint32_t) sqlite3_column_int64 (st, 3);
    uint64_t adam_t = (uint64_t) sqlite3_column_int64 (st, 4);
    bool unborn = sqlite3_column_int64 (st, 0) == -1;
    sqlite3_reset (st);
    if (unborn) {
        //  Never trained: the worker makes the weights from the seed.
        memset (state, 0, sizeof *state);
        state->init_seed = ref.off;
    }
    else
    if (store_read (self->store, &ref, n_params, state, NULL)) {
        log_error ("db_snapshot_corrupt", "agent=%" PRId64 " version=%" PRIu64, agent_id, version);
        goto cleanup;
    }
    //  Evolution copies share a record written under the donor's id and
    //  version; the row's own Adam step count is the one that counts.
    state->adam_t = adam_t;
    ret = 0;
cleanup:
    sqlite3_reset (st);
    return ret;
}

//  --------------------------------------------------------------------------
//  Assignments

int
db_assignment_create (db_t *self, db_assignment_t *a, uint64_t base_seed)
{
    if (db_op_begin (self))
        return -1;
    int64_t id = 0;
    if (s_int (self, s_q (self, Q_ASG_NEXTID), &id, "assignment_nextid"))
        goto fail;
    if (id < self->asg_next)
        id = self->asg_next;    // past ids sent in batches that were lost
    rng_t rng;
    rng_seed_stream (&rng, base_seed, (uint64_t) id);
    //  SQLite integers are signed: keep seeds in 63 bits so they round-trip.
    uint64_t seed = rng_next (&rng) >> 1;
    sqlite3_stmt *st = s_q (self, Q_ASG_INSERT);
    sqlite3_bind_int64 (st, 1, id);
    sqlite3_bind_text (st, 2, a->eval ? "eval" : "train", -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 3, a->worker, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 4, a->created_at);
    sqlite3_bind_int64 (st, 5, a->deadline_ms);
    sqlite3_bind_int64 (st, 6, (int64_t) seed);
    uint32_t script_seats = 0;
    for (uint32_t i = 0; i < a->n_seats; i++)
        script_seats += a->seats [i].agent_id < 0;
    assert (script_seats == 0 || a->script [0]);
    if (script_seats)
        sqlite3_bind_text (st, 7, a->script, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (st, 7);
    sqlite3_bind_int64 (st, 8, script_seats);
    sqlite3_bind_text (st, 9, a->worker_key, -1, SQLITE_STATIC);
    if (s_exec (self, st, "assignment_insert"))
        goto fail;
    for (uint32_t i = 0; i < a->n_seats; i++) {
        if (a->seats [i].agent_id < 0)
            continue;
        st = s_q (self, Q_SEAT_INSERT);
        sqlite3_bind_int64 (st, 1, id);
        sqlite3_bind_int64 (st, 2, a->seats [i].slot);
        sqlite3_bind_int64 (st, 3, a->seats [i].agent_id);
        sqlite3_bind_int64 (st, 4, (int64_t) a->seats [i].version);
        sqlite3_bind_int (st, 5, a->seats [i].train);
        sqlite3_bind_int (st, 6, a->seats [i].frozen);
        if (s_exec (self, st, "seat_insert"))
            goto fail;
    }
    if (db_op_commit (self))
        return -1;
    self->asg_next = id + 1;    // a rolled-back batch does not give its ids back
    a->id = (uint64_t) id;
    a->seed = seed;
    snprintf (a->state, sizeof a->state, "leased");
    return 0;
fail:
    db_op_rollback (self);
    return -1;
}

int
db_assignment_get (db_t *self, uint64_t id, db_assignment_t *a)
{
    memset (a, 0, sizeof *a);
    int64_t script_seats = 0;
    sqlite3_stmt *st = s_q (self, Q_ASG_GET);
    sqlite3_bind_int64 (st, 1, (int64_t) id);
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW) {
        a->id = id;
        snprintf (a->state, sizeof a->state, "%s", (const char *) sqlite3_column_text (st, 0));
        a->eval = strcmp ((const char *) sqlite3_column_text (st, 1), "eval") == 0;
        snprintf (a->worker, sizeof a->worker, "%s", (const char *) sqlite3_column_text (st, 2));
        a->created_at = sqlite3_column_int64 (st, 3);
        a->deadline_ms = sqlite3_column_int64 (st, 4);
        a->seed = (uint64_t) sqlite3_column_int64 (st, 5);
        if (sqlite3_column_type (st, 6) == SQLITE_TEXT)
            snprintf (a->script, sizeof a->script, "%s", (const char *) sqlite3_column_text (st, 6));
        script_seats = sqlite3_column_int64 (st, 7);
        snprintf (a->worker_key, sizeof a->worker_key, "%s",
                  (const char *) sqlite3_column_text (st, 8));
    }
    sqlite3_reset (st);
    if (rc == SQLITE_DONE)
        return 1;
    if (rc != SQLITE_ROW) {
        s_fail (self, "assignment_get");
        return -1;
    }
    st = s_q (self, Q_SEATS_GET);
    sqlite3_bind_int64 (st, 1, (int64_t) id);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW && a->n_seats < PROTO_MAX_AGENTS) {
        db_seat_t *s = &a->seats [a->n_seats++];
        s->slot = (uint32_t) sqlite3_column_int64 (st, 0);
        s->agent_id = sqlite3_column_int64 (st, 1);
        s->version = (uint64_t) sqlite3_column_int64 (st, 2);
        s->train = sqlite3_column_int (st, 3) != 0;
        s->frozen = sqlite3_column_int (st, 4) != 0;
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        s_fail (self, "seats_get");
        return -1;
    }
    if (script_seats > 0) {
        //  The scripted seats take the slots no agent has, all in slot order.
        uint32_t total = a->n_seats + (uint32_t) script_seats;
        if (total > PROTO_MAX_AGENTS || !a->script [0]) {
            log_error ("db_assignment_corrupt", "assignment=%" PRIu64 " script_seats=%" PRId64,
                       id, script_seats);
            return -1;
        }
        db_seat_t agents [PROTO_MAX_AGENTS];
        uint32_t n_agents = a->n_seats;
        memcpy (agents, a->seats, sizeof agents);
        a->n_seats = 0;
        for (uint32_t slot = 0; slot < total; slot++) {
            db_seat_t *s = &a->seats [a->n_seats++];
            memset (s, 0, sizeof *s);
            uint32_t k = 0;
            while (k < n_agents && agents [k].slot != slot)
                k++;
            if (k < n_agents)
                *s = agents [k];
            else {
                s->agent_id = -1;
                s->slot = slot;
                snprintf (s->script, sizeof s->script, "%s", a->script);
            }
        }
    }
    return 0;
}

int
db_assignments_leased (db_t *self, uint64_t *ids, int max)
{
    sqlite3_stmt *st = s_q (self, Q_ASG_LEASED);
    int n = 0, rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW && n < max)
        ids [n++] = (uint64_t) sqlite3_column_int64 (st, 0);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        s_fail (self, "assignments_leased");
        return -1;
    }
    return n;
}

int
db_assignment_renew (db_t *self, uint64_t id, int64_t deadline_ms)
{
    if (db_op_begin (self))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_ASG_RENEW);
    sqlite3_bind_int64 (st, 1, (int64_t) id);
    sqlite3_bind_int64 (st, 2, deadline_ms);
    if (s_exec (self, st, "assignment_renew")) {
        db_op_rollback (self);
        return -1;
    }
    return db_op_commit (self);
}

int
db_assignment_set_state (db_t *self, uint64_t id, const char *state)
{
    sqlite3_stmt *st = s_q (self, Q_ASG_SETSTATE);
    sqlite3_bind_int64 (st, 1, (int64_t) id);
    sqlite3_bind_text (st, 2, state, -1, SQLITE_STATIC);
    return s_exec (self, st, "assignment_state");
}

int
db_assignment_expire (db_t *self, uint64_t id)
{
    if (db_op_begin (self))
        return -1;
    if (db_assignment_set_state (self, id, "expired")) {
        db_op_rollback (self);
        return -1;
    }
    return db_op_commit (self);
}

int64_t
db_hparam_history (db_t *self, int64_t agent, db_hparam_t **out)
{
    db_hparam_t *rows = NULL;
    int64_t n = 0, cap = 0;
    int rc;
    sqlite3_stmt *st = s_q (self, Q_HIST_HP);
    sqlite3_bind_int64 (st, 1, agent);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            db_hparam_t *grown = realloc (rows, (size_t) cap * sizeof *rows);
            if (!grown)
                break;
            rows = grown;
        }
        rows [n].seq = sqlite3_column_int64 (st, 0);
        snprintf (rows [n].name, sizeof rows [n].name, "%s",
                  (const char *) sqlite3_column_text (st, 1));
        rows [n].value = sqlite3_column_double (st, 2);
        n++;
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "hparam_history");
        free (rows);
        return -1;
    }
    *out = rows;
    return n;
}

int
db_assignment_ids_start (db_t *self, uint64_t block, uint64_t *ceiling)
{
    char text [32];
    int rc = db_meta_get (self, "assign_id_ceiling", text, sizeof text);
    if (rc < 0)
        return -1;
    int64_t floor = rc == 0 ? strtoll (text, NULL, 10) : 0;
    int64_t next = 0;
    if (s_int (self, s_q (self, Q_ASG_NEXTID), &next, "assignment_nextid"))
        return -1;
    if (next > floor)
        floor = next;
    if (floor > self->asg_next)
        self->asg_next = floor;
    if (db_assignment_ids_reserve (self, (uint64_t) floor + block))
        return -1;
    *ceiling = (uint64_t) floor + block;
    return 0;
}

int
db_assignment_ids_reserve (db_t *self, uint64_t ceiling)
{
    char text [32];
    snprintf (text, sizeof text, "%" PRIu64, ceiling);
    return db_meta_set (self, "assign_id_ceiling", text);
}
