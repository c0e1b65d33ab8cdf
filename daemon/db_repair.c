/*  db_repair: checking the state store against the database and falling back to an intact snapshot. */
#include "db_priv.h"

//  --------------------------------------------------------------------------
//  State store checks

//  Whether the record ref names reads back whole: header, length, n_params
//  and both checksums (store_read logs why not).
static bool
s_record_ok (db_t *self, const store_ref_t *ref, uint32_t n_params)
{
    //  A never-trained agent's row (seg -1, no record: its init seed is in
    //  off) has nothing to read back.
    if (ref->seg == UINT32_MAX && ref->len == 0 && n_params == 0)
        return true;
    proto_state_t st;
    if (store_read (self->store, ref, n_params, &st, NULL))
        return false;
    proto_state_free (&st);
    return true;
}

int64_t
db_store_check (db_t *self, db_store_check_t *out)
{
    memset (out, 0, sizeof *out);
    out->first_agent = -1;
    sqlite3_stmt *st = s_q (self, Q_CHK_RECORDS);
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        store_ref_t ref = {
            .seg = (uint32_t) sqlite3_column_int64 (st, 0),
            .off = (uint64_t) sqlite3_column_int64 (st, 1),
            .len = (uint32_t) sqlite3_column_int64 (st, 2),
        };
        out->records++;
        out->bytes += ref.len;
        if (s_record_ok (self, &ref, (uint32_t) sqlite3_column_int64 (st, 3)))
            continue;
        if (out->bad++ == 0) {
            out->first = ref;
            out->first_agent = sqlite3_column_int64 (st, 4);
            out->first_version = (uint64_t) sqlite3_column_int64 (st, 5);
        }
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "store_check");
        return -1;
    }
    return (int64_t) out->bad;
}

//  One snapshot row of an agent, newest first, for s_fallback.
typedef struct {
    uint64_t version;
    store_ref_t ref;
    uint32_t n_params;
    bool frozen;
} snap_row_t;

static int
s_delete_snapshot (db_t *self, int64_t agent_id, const snap_row_t *row)
{
    sqlite3_stmt *st = s_q (self, Q_CHK_SNAP_DELETE);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) row->version);
    if (s_exec (self, st, "snapshot_delete"))
        return -1;
    if (!row->frozen)
        return 0;
    st = s_q (self, Q_FROZEN_DELETE);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) row->version);
    return s_exec (self, st, "frozen_delete");
}

int
db_state_fallback (db_t *self, int64_t agent_id, int64_t now, db_fallback_t *out)
{
    memset (out, 0, sizeof *out);
    db_agent_t agent;
    if (db_load_agent (self, agent_id, &agent))
        return -1;
    out->old_version = out->new_version = agent.version;
    //  Every row of the agent, newest first (snapshots_keep + frozen +
    //  lineage: a handful, not a scan).
    snap_row_t *rows = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = s_q (self, Q_CHK_AGENT_SNAPS);
    sqlite3_bind_int64 (st, 1, agent_id);
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            snap_row_t *grown = realloc (rows, cap * sizeof *rows);
            if (!grown)
                break;
            rows = grown;
        }
        rows [n++] = (snap_row_t) {
            .version = (uint64_t) sqlite3_column_int64 (st, 0),
            .ref = { (uint32_t) sqlite3_column_int64 (st, 1),
                     (uint64_t) sqlite3_column_int64 (st, 2),
                     (uint32_t) sqlite3_column_int64 (st, 3) },
            .n_params = (uint32_t) sqlite3_column_int64 (st, 4),
            .frozen = sqlite3_column_int (st, 5) != 0,
        };
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        free (rows);
        s_fail (self, "fallback_list");
        return -1;
    }
    int ret = -1;
    if (db_op_begin (self))
        goto done;
    const snap_row_t *intact = NULL;
    bool current_ok = false;
    for (size_t i = 0; i < n; i++) {
        if (s_record_ok (self, &rows [i].ref, rows [i].n_params)) {
            if (!intact)
                intact = &rows [i];
            if (rows [i].version == agent.version)
                current_ok = true;
            continue;
        }
        out->dropped++;
        if (s_delete_snapshot (self, agent_id, &rows [i]))
            goto fail;
    }
    if (!intact) {
        //  Nothing to fall back to: leave the rows for a restore.
        db_op_rollback (self);
        out->dropped = 0;
        ret = 1;
        goto done;
    }
    if (!current_ok) {
        //  The intact state becomes a new version, so nothing handed out
        //  under the broken one can be applied over it (stale_version).
        uint64_t v = agent.version + 1;
        st = s_q (self, Q_SNAP_COPY);
        sqlite3_bind_int64 (st, 1, agent_id);
        sqlite3_bind_int64 (st, 2, (int64_t) v);
        sqlite3_bind_int64 (st, 3, now);
        sqlite3_bind_int64 (st, 4, agent_id);
        sqlite3_bind_int64 (st, 5, (int64_t) intact->version);
        if (s_exec (self, st, "fallback_copy"))
            goto fail;
        st = s_q (self, Q_CHK_AGENT_VERSION);
        sqlite3_bind_int64 (st, 1, agent_id);
        sqlite3_bind_int64 (st, 2, (int64_t) v);
        sqlite3_bind_int64 (st, 3, now);
        if (s_exec (self, st, "fallback_version"))
            goto fail;
        out->from_version = intact->version;
        out->new_version = v;
        out->fell_back = true;
    }
    if (out->dropped) {
        st = s_q (self, Q_META_ADD);
        sqlite3_bind_text (st, 1, "state_fallbacks", -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 2, "1", -1, SQLITE_STATIC);
        if (s_exec (self, st, "state_fallbacks"))
            goto fail;
    }
    if (db_op_commit (self))
        goto done;
    ret = 0;
    goto done;
fail:
    db_op_rollback (self);
done:
    free (rows);
    return ret;
}

