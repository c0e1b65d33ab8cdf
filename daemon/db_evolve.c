/*  db_evolve: evolutions (exploit and explore), their lineage, and the frozen past snapshots they leave. */
#include "db_priv.h"

//  --------------------------------------------------------------------------
//  Evolution

static void
s_hp_json (const proto_kvs_t *hp, char *out, size_t out_len)
{
    size_t n = 0;
    n += snprintf (out + n, out_len - n, "{");
    for (uint32_t i = 0; i < hp->count && n < out_len; i++)
        n += snprintf (out + n, out_len - n, "%s\"%s\":%.17g", i ? "," : "",
                       hp->items [i].name, hp->items [i].value);
    if (n < out_len)
        snprintf (out + n, out_len - n, "}");
}

//  Freeze the agent's current (pre-evolution) snapshot, its past self, at
//  its current rating; then forget the oldest frozen ones over frozen_keep
//  (unfrozen, so retention deletes them), never one a leased assignment
//  plays against. An evicted snapshot's rating drift (rating - rating at
//  freeze) goes to meta frozen_evicted_drift so the Elo sum stays checkable.
static int
s_freeze (db_t *self, const db_agent_t *agent, int64_t now)
{
    sqlite3_stmt *st = s_q (self, Q_FROZEN_SET);
    sqlite3_bind_int64 (st, 1, agent->id);
    sqlite3_bind_int64 (st, 2, (int64_t) agent->version);
    sqlite3_bind_int (st, 3, 1);
    if (s_exec (self, st, "frozen_set"))
        return -1;
    if (sqlite3_changes (self->handle) != 1) {
        log_error ("db_freeze_no_snapshot", "agent=%" PRId64 " version=%" PRIu64,
                   agent->id, agent->version);
        return -1;
    }
    st = s_q (self, Q_FROZEN_INSERT);
    sqlite3_bind_int64 (st, 1, agent->id);
    sqlite3_bind_int64 (st, 2, (int64_t) agent->version);
    sqlite3_bind_double (st, 3, agent->rating);
    sqlite3_bind_int64 (st, 4, now);
    if (s_exec (self, st, "frozen_insert"))
        return -1;
    for (;;) {
        int64_t n = 0;
        st = s_q (self, Q_FROZEN_COUNT_AGENT);
        sqlite3_bind_int64 (st, 1, agent->id);
        if (s_int (self, st, &n, "frozen_count_agent"))
            return -1;
        if (n <= (int64_t) self->frozen_keep)
            return 0;
        st = s_q (self, Q_FROZEN_OLDEST);
        sqlite3_bind_int64 (st, 1, agent->id);
        int rc = sqlite3_step (st);
        int64_t version = rc == SQLITE_ROW ? sqlite3_column_int64 (st, 0) : 0;
        double drift = rc == SQLITE_ROW ? sqlite3_column_double (st, 1) : 0;
        sqlite3_reset (st);
        if (rc == SQLITE_DONE)
            return 0;           // all in leases: over the cap until the next evolution
        if (rc != SQLITE_ROW) {
            s_fail (self, "frozen_oldest");
            return -1;
        }
        st = s_q (self, Q_FROZEN_SET);
        sqlite3_bind_int64 (st, 1, agent->id);
        sqlite3_bind_int64 (st, 2, version);
        sqlite3_bind_int (st, 3, 0);
        if (s_exec (self, st, "frozen_unset"))
            return -1;
        st = s_q (self, Q_FROZEN_DELETE);
        sqlite3_bind_int64 (st, 1, agent->id);
        sqlite3_bind_int64 (st, 2, version);
        if (s_exec (self, st, "frozen_delete"))
            return -1;
        st = s_q (self, Q_FROZEN_DRIFT_ADD);
        sqlite3_bind_double (st, 1, drift);
        if (s_exec (self, st, "frozen_drift_add"))
            return -1;
    }
}

int
db_evolve (db_t *self, int64_t agent_id, int64_t donor_id, const proto_kvs_t *new_hp,
           int64_t now)
{
    db_agent_t agent, donor;
    char old_json [PROTO_MAX_KV * 80], new_json [PROTO_MAX_KV * 80];
    if (db_op_begin (self))
        return -1;
    if (db_load_agent (self, agent_id, &agent) || db_load_agent (self, donor_id, &donor))
        goto fail;
    if (self->frozen_keep > 0 && s_freeze (self, &agent, now))
        goto fail;
    uint64_t new_version = agent.version + 1;
    sqlite3_stmt *st = s_q (self, Q_SNAP_COPY);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) new_version);
    sqlite3_bind_int64 (st, 3, now);
    sqlite3_bind_int64 (st, 4, donor_id);
    sqlite3_bind_int64 (st, 5, (int64_t) donor.version);
    if (s_exec (self, st, "snapshot_copy"))
        goto fail;
    if (sqlite3_changes (self->handle) != 1) {
        log_error ("db_evolve_no_snapshot", "donor=%" PRId64 " version=%" PRIu64,
                   donor_id, donor.version);
        goto fail;
    }
    st = s_q (self, Q_AGENT_EVOLVED);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) new_version);
    sqlite3_bind_int64 (st, 3, donor_id);
    sqlite3_bind_int64 (st, 4, now);
    if (s_exec (self, st, "agent_evolved")
    ||  db_snapshot_ring (self, agent_id, new_version))
        goto fail;
    int64_t seq = 0;
    st = s_q (self, Q_HH_NEXTSEQ);
    sqlite3_bind_int64 (st, 1, agent_id);
    if (s_int (self, st, &seq, "hparam_history_nextseq")
    ||  db_hparams_write (self, agent_id, new_hp, "evolve", seq, now))
        goto fail;
    s_hp_json (&agent.hparams, old_json, sizeof old_json);
    s_hp_json (new_hp, new_json, sizeof new_json);
    st = s_q (self, Q_EVO_INSERT);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, donor_id);
    sqlite3_bind_int64 (st, 3, (int64_t) donor.version);
    sqlite3_bind_int64 (st, 4, now);
    sqlite3_bind_int64 (st, 5, (int64_t) agent.frames);
    sqlite3_bind_int64 (st, 6, (int64_t) agent.version);
    sqlite3_bind_int64 (st, 7, (int64_t) new_version);
    sqlite3_bind_int64 (st, 8, (int64_t) agent.generation + 1);
    sqlite3_bind_text (st, 9, old_json, -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 10, new_json, -1, SQLITE_STATIC);
    if (s_exec (self, st, "evolution_insert"))
        goto fail;
    return db_op_commit (self);
fail:
    db_op_rollback (self);
    return -1;
}

int
db_frozen_list (db_t *self, db_frozen_t *out, int max)
{
    sqlite3_stmt *st = s_q (self, Q_FROZEN_ALL);
    int n = 0, rc;
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        out [n].agent_id = sqlite3_column_int64 (st, 0);
        out [n].version = (uint64_t) sqlite3_column_int64 (st, 1);
        out [n].rating = sqlite3_column_double (st, 2);
        n++;
    }
    if (n < max && rc != SQLITE_DONE) {
        sqlite3_reset (st);
        s_fail (self, "frozen_list");
        return -1;
    }
    sqlite3_reset (st);
    return n;
}

int64_t
db_frozen_count (db_t *self)
{
    int64_t n = 0;
    return s_int (self, s_q (self, Q_FROZEN_COUNT), &n, "frozen_count") == 0 ? n : -1;
}

//  --------------------------------------------------------------------------
//  Reading the lineage back

//  Parse the {"name":value,...} text s_hp_json wrote.
static void
s_hp_parse (const char *json, proto_kvs_t *hp)
{
    memset (hp, 0, sizeof *hp);
    const char *p = json ? json : "";
    if (*p == '{')
        p++;
    while (*p == '"') {
        const char *q = strchr (p + 1, '"');
        if (!q || q [1] != ':')
            break;
        char name [PROTO_MAX_NAME];
        snprintf (name, sizeof name, "%.*s", (int) (q - p - 1), p + 1);
        char *end;
        double v = strtod (q + 2, &end);
        proto_kvs_set (hp, name, v);
        p = end;
        if (*p == ',')
            p++;
    }
}

int64_t
db_evolution_frames (db_t *self, int64_t agent, int64_t **out)
{
    int64_t *frames = NULL;
    int64_t n = 0, cap = 0;
    int rc;
    sqlite3_stmt *st = s_q (self, Q_HIST_EVOS);
    sqlite3_bind_int64 (st, 1, agent);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *grown = realloc (frames, (size_t) cap * sizeof *frames);
            if (!grown)
                break;
            frames = grown;
        }
        frames [n++] = sqlite3_column_int64 (st, 0);
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "evolution_frames");
        free (frames);
        return -1;
    }
    *out = frames;
    return n;
}

//  One lineage row from Q_LINEAGE's current row.
static void
s_evolution_row (sqlite3_stmt *st, db_evolution_t *r)
{
    r->id = sqlite3_column_int64 (st, 0);
    r->donor = sqlite3_column_int64 (st, 1);
    r->donor_version = sqlite3_column_int64 (st, 2);
    r->ts = sqlite3_column_int64 (st, 3);
    r->frames = sqlite3_column_int64 (st, 4);
    r->old_version = sqlite3_column_int64 (st, 5);
    r->new_version = sqlite3_column_int64 (st, 6);
    r->generation = sqlite3_column_int64 (st, 7);
    s_hp_parse ((const char *) sqlite3_column_text (st, 8), &r->old_hparams);
    s_hp_parse ((const char *) sqlite3_column_text (st, 9), &r->new_hparams);
    r->donor_evolution = -1;
}

int
db_lineage (db_t *self, int64_t agent, int max, db_evolution_t **out)
{
    int n = 0, rc = SQLITE_DONE;
    sqlite3_stmt *st = s_q (self, Q_LINEAGE);
    sqlite3_bind_int64 (st, 1, agent);
    //  Count first, to allocate once.
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW)
        n++;
    if (n == max)
        rc = SQLITE_DONE;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "lineage");
        return -1;
    }
    db_evolution_t *rows = calloc (n ? (size_t) n : 1, sizeof *rows);
    if (!rows)
        return -1;
    //  Collect rows first: the donor lookup reuses another statement.
    st = s_q (self, Q_LINEAGE);
    sqlite3_bind_int64 (st, 1, agent);
    int got = 0;
    while (got < n && sqlite3_step (st) == SQLITE_ROW)
        s_evolution_row (st, &rows [got++]);
    sqlite3_reset (st);
    for (int i = 0; i < got; i++) {
        st = s_q (self, Q_DONOR_EVO);
        sqlite3_bind_int64 (st, 1, rows [i].donor);
        sqlite3_bind_int64 (st, 2, rows [i].id);
        if (s_int (self, st, &rows [i].donor_evolution, "donor_evolution") < 0) {
            free (rows);
            return -1;
        }
    }
    *out = rows;
    return got;
}
