/*  db_retention: bounded deletion of old snapshots, results and episode rows, and state store collection. */
#include "db_priv.h"

//  Drop agent_id's snapshots older than its snapshots_keep newest, given
//  its new current version: one or two rows per change, not a sweep.
int
db_snapshot_ring (db_t *self, int64_t agent_id, uint64_t current)
{
    if (self->snapshots_keep == 0 || current <= self->snapshots_keep)
        return 0;
    sqlite3_stmt *st = s_q (self, Q_SNAP_RING);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) (current - self->snapshots_keep));
    sqlite3_bind_int (st, 3, self->lineage_keep);
    return s_exec (self, st, "snapshot_ring");
}

//  Done results whose rows retention deleted stay countable (meta
//  results_pruned, which db_count_results adds).
static int
s_results_pruned (db_t *self, int64_t done)
{
    if (done <= 0)
        return 0;
    char text [32];
    snprintf (text, sizeof text, "%" PRId64, done);
    sqlite3_stmt *st = s_q (self, Q_META_ADD);
    sqlite3_bind_text (st, 1, "results_pruned", -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 2, text, -1, SQLITE_TRANSIENT);
    return s_exec (self, st, "results_pruned");
}

//  Never split an assignment: if match hi+1 shares hi's assignment, stop
//  before that assignment (or, for a single huge one, take it whole if it
//  ends inside the cut). 0 (*hi adjusted) or -1.
static int
s_match_cut_whole (db_t *self, int64_t lo, int64_t cut, int64_t *hi)
{
    sqlite3_stmt *st = s_q (self, Q_MATCH_ASG_SPAN);
    sqlite3_bind_int64 (st, 1, *hi + 1);
    int64_t first = 0, final = 0;
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW && sqlite3_column_type (st, 0) != SQLITE_NULL) {
        first = sqlite3_column_int64 (st, 0);
        final = sqlite3_column_int64 (st, 1);
    }
    sqlite3_reset (st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        s_fail (self, "match_assignment_span");
        return -1;
    }
    if (first && first <= *hi)
        *hi = first - 1 > lo ? first - 1 : final <= cut ? final : lo;
    return 0;
}

//  Delete one assignment whose matches went: its result seats, seats and
//  row; *done counts it if it was 'done'. 0 or -1.
static int
s_match_cut_assignment (db_t *self, int64_t id, int64_t *done)
{
    int64_t v = 0;
    sqlite3_stmt *st = s_q (self, Q_ASG_DONE_ONE);
    sqlite3_bind_int64 (st, 1, id);
    if (s_int (self, st, &v, "assignment_done") < 0)
        return -1;
    *done += v;
    st = s_q (self, Q_RSEAT_DEL_ONE);
    sqlite3_bind_int64 (st, 1, id);
    int rc = s_exec (self, st, "result_seats_delete");
    if (rc == 0) {
        st = s_q (self, Q_ASEAT_DEL_ONE);
        sqlite3_bind_int64 (st, 1, id);
        rc = s_exec (self, st, "assignment_seats_delete");
    }
    if (rc == 0) {
        st = s_q (self, Q_ASG_DEL_ONE);
        sqlite3_bind_int64 (st, 1, id);
        rc = s_exec (self, st, "assignment_delete");
    }
    return rc;
}

//  Delete matches lo+1..hi, their seats, and the assignments they belong
//  to. 0 or -1.
static int
s_match_cut (db_t *self, int64_t lo, int64_t hi, int64_t *done)
{
    //  The assignments those matches belong to (bounded by hi - lo).
    int64_t *ids = malloc ((size_t) (hi - lo) * sizeof *ids);
    size_t n_ids = 0;
    if (!ids)
        return -1;
    sqlite3_stmt *st = s_q (self, Q_MATCH_ASGS);
    sqlite3_bind_int64 (st, 1, lo);
    sqlite3_bind_int64 (st, 2, hi);
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW && n_ids < (size_t) (hi - lo))
        ids [n_ids++] = sqlite3_column_int64 (st, 0);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        free (ids);
        s_fail (self, "match_assignments");
        return -1;
    }
    st = s_q (self, Q_MSEAT_CUT);
    sqlite3_bind_int64 (st, 1, lo);
    sqlite3_bind_int64 (st, 2, hi);
    rc = s_exec (self, st, "match_seats_cut");
    if (rc == 0) {
        st = s_q (self, Q_MATCH_CUT);
        sqlite3_bind_int64 (st, 1, lo);
        sqlite3_bind_int64 (st, 2, hi);
        rc = s_exec (self, st, "matches_cut");
    }
    for (size_t k = 0; rc == 0 && k < n_ids; k++)
        rc = s_match_cut_assignment (self, ids [k], done);
    free (ids);
    return rc ? -1 : 0;
}

//  Up to 64 assignments without matches (expired leases), older than
//  every kept match's; leased ones stay. 0 or -1.
static int
s_match_cut_unmatched (db_t *self, int64_t *done)
{
    int64_t oldest = 0, v = 0;
    int rc = s_int (self, s_q (self, Q_MATCH_OLDEST_ASG), &oldest, "match_oldest");
    if (rc < 0)
        return -1;
    int64_t top = self->asg_cut + 64;
    if (rc == 0 && top > oldest - 1)
        top = oldest - 1;
    if (rc != 0 || top <= self->asg_cut)
        return 0;
    sqlite3_stmt *st = s_q (self, Q_ASG_CUT_DONE);
    sqlite3_bind_int64 (st, 1, self->asg_cut);
    sqlite3_bind_int64 (st, 2, top);
    if (s_int (self, st, &v, "assignments_cut_done"))
        return -1;
    *done += v;
    static const struct { query_t q; const char *what; } cuts [] = {
        { Q_RSEAT_CUT, "result_seats_cut" }, { Q_ASEAT_CUT, "assignment_seats_cut" },
        { Q_ASG_CUT, "assignments_cut" }
    };
    for (size_t k = 0; k < sizeof cuts / sizeof cuts [0]; k++) {
        st = s_q (self, cuts [k].q);
        sqlite3_bind_int64 (st, 1, self->asg_cut);
        sqlite3_bind_int64 (st, 2, top);
        if (s_exec (self, st, cuts [k].what))
            return -1;
    }
    self->asg_cut = top;
    return 0;
}

//  Match history retention: keep (at least) the newest matches_keep match
//  rows, i.e. episodes. Called after a result added n matches ending at
//  last_id. Matches go a whole assignment at a time (one result's matches
//  have consecutive ids) together with that assignment and its seats, so
//  an assignment is either entirely kept or entirely gone; at most
//  2n + 1024 matches per call, so the work per result stays bounded even
//  while a backlog (after lowering matches_keep) is worked off. Then up to
//  64 assignments that never had matches (expired leases) below the
//  oldest kept match's assignment go too; leased ones stay. Agents'
//  counters and ratings live in agents and are untouched; the number of
//  'done' assignments deleted is added to meta results_pruned.
int
db_match_retention (db_t *self, int64_t last_id, uint32_t n)
{
    if (self->matches_keep == 0 || last_id <= (int64_t) self->matches_keep)
        return 0;
    int64_t cut = last_id - (int64_t) self->matches_keep;
    int64_t lo = self->match_cut, hi = lo + 2 * (int64_t) n + 1024;
    int64_t done = 0;
    if (hi > cut)
        hi = cut;
    if (hi > lo && s_match_cut_whole (self, lo, cut, &hi))
        return -1;
    if (hi > lo) {
        if (s_match_cut (self, lo, hi, &done))
            return -1;
        //  If the batch is lost after all, the rows below the cursor stay
        //  until a restart recomputes it from MIN(id): a few rows kept too
        //  long, never one deleted too early.
        self->match_cut = hi;
    }
    if (s_match_cut_unmatched (self, &done))
        return -1;
    return s_results_pruned (self, done);
}

//  Result retention without episode rows: the newest results_keep
//  assignments keep their rows (result_seats, seats, and any episode rows
//  an older pbtd left); older ones go, at most 64 assignment ids per
//  result, so the work per result stays bounded while a backlog (after
//  lowering results_keep, or an upgraded file) is worked off. Leased ones
//  stay. Counters and series are untouched; 'done' ones deleted are added
//  to meta results_pruned.
int
db_result_retention (db_t *self, int64_t asg_id)
{
    if (self->results_keep == 0 || asg_id <= (int64_t) self->results_keep)
        return 0;
    int64_t lo = self->asg_cut, hi = asg_id - (int64_t) self->results_keep;
    if (hi > lo + 64)
        hi = lo + 64;
    if (hi <= lo)
        return 0;
    int64_t done = 0;
    sqlite3_stmt *st = s_q (self, Q_ASG_DONE_RANGE);
    sqlite3_bind_int64 (st, 1, lo);
    sqlite3_bind_int64 (st, 2, hi);
    if (s_int (self, st, &done, "assignments_done_range"))
        return -1;
    static const query_t cuts [] = { Q_MSEAT_CUT_ASG, Q_MATCH_CUT_ASG, Q_RSEAT_CUT, Q_ASEAT_CUT,
                                     Q_ASG_CUT };
    for (size_t k = 0; k < sizeof cuts / sizeof cuts [0]; k++) {
        st = s_q (self, cuts [k]);
        sqlite3_bind_int64 (st, 1, lo);
        sqlite3_bind_int64 (st, 2, hi);
        if (s_exec (self, st, "result_retention"))
            return -1;
    }
    self->asg_cut = hi;
    return s_results_pruned (self, done);
}

//  --------------------------------------------------------------------------
//  State store collection

//  Move every record rows still name out of seg into the active segment,
//  in one transaction; the caller deletes seg after it committed.
static int
s_store_compact (db_t *self, uint32_t seg)
{
    typedef struct { uint64_t off; uint32_t len; } rec_t;
    rec_t *recs = NULL;
    size_t n = 0, cap = 0;
    int ret = -1, rc;
    sqlite3_stmt *st = s_q (self, Q_SNAP_SEG_RECORDS);
    sqlite3_bind_int64 (st, 1, seg);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            rec_t *grown = realloc (recs, cap * sizeof *recs);
            if (!grown)
                break;
            recs = grown;
        }
        recs [n].off = (uint64_t) sqlite3_column_int64 (st, 0);
        recs [n].len = (uint32_t) sqlite3_column_int64 (st, 1);
        n++;
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "store_gc_records");
        free (recs);
        return -1;
    }
    if (db_op_begin (self))
        goto done;
    for (size_t i = 0; i < n; i++) {
        store_ref_t from = { seg, recs [i].off, recs [i].len }, to;
        if (store_copy (self->store, &from, &to))
            goto fail;
        st = s_q (self, Q_SNAP_MOVE);
        sqlite3_bind_int64 (st, 1, seg);
        sqlite3_bind_int64 (st, 2, (int64_t) from.off);
        sqlite3_bind_int64 (st, 3, to.seg);
        sqlite3_bind_int64 (st, 4, (int64_t) to.off);
        if (s_exec (self, st, "store_gc_move"))
            goto fail;
    }
    if (db_op_commit (self))
        goto done;
    self->gc_moved += n;
    log_info ("store_compacted", "seg=%" PRIu32 " records=%zu", seg, n);
    ret = 0;
    goto done;
fail:
    db_op_rollback (self);
done:
    free (recs);
    return ret;
}

int
db_store_gc (db_t *self, uint64_t max_move_bytes)
{
    assert (!self->batch);
    enum { MAX_SEGS = 4096 };
    uint32_t *ids = malloc (MAX_SEGS * sizeof *ids);
    if (!ids)
        return -1;
    int n = store_segments (self->store, ids, MAX_SEGS);
    int dropped = n < 0 ? -1 : 0;
    uint64_t moved = 0;
    uint32_t active = store_active (self->store);
    for (int i = 0; i < n && ids [i] < active; i++) {
        uint32_t seg = ids [i];
        sqlite3_stmt *st = s_q (self, Q_SNAP_SEG_LIVE);
        sqlite3_bind_int64 (st, 1, seg);
        int64_t rows = -1, live = 0;
        if (sqlite3_step (st) == SQLITE_ROW) {
            rows = sqlite3_column_int64 (st, 0);
            live = sqlite3_column_int64 (st, 1);
        }
        sqlite3_reset (st);
        if (rows < 0) {
            s_fail (self, "store_gc_live");
            dropped = -1;
            break;
        }
        if (rows == 0) {
            //  No committed row names it (and no uncommitted one can: a
            //  new row always names the active segment, or an existing row's record).
            if (store_drop (self->store, seg) == 0)
                dropped++;
            continue;
        }
        //  Mostly dead and old (frozen opponents and pinned snapshots keep
        //  a few records alive for a long time; in a young segment the
        //  stragglers are current states that the next results free):
        //  move what lives, drop the rest.
        int64_t age_s = 0;
        int64_t size = store_segment_size (self->store, seg, &age_s);
        if (size <= 0 || live * 4 > size || age_s < self->compact_age_s
        ||  moved + (uint64_t) live > max_move_bytes)
            continue;
        int r = s_store_compact (self, seg);
        if (r < 0) {
            dropped = -1;
            break;
        }
        moved += (uint64_t) live;
        if (store_drop (self->store, seg) == 0)
            dropped++;
    }
    free (ids);
    return dropped;
}

uint64_t
db_store_bytes (db_t *self)
{
    return store_bytes (self->store);
}

uint64_t
db_store_segment_bytes (db_t *self)
{
    return store_segment_bytes (self->store);
}

void
db_set_segment_bytes (db_t *self, uint64_t bytes, int64_t compact_age_s)
{
    store_set_segment_bytes (self->store, bytes);
    self->compact_age_s = compact_age_s;
}

uint64_t
db_store_segments_started (db_t *self)
{
    return store_started (self->store);
}

uint64_t
db_store_moved (db_t *self)
{
    return self->gc_moved;
}

int
db_prune_snapshots (db_t *self, uint32_t keep)
{
    if (db_op_begin (self))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_SNAP_PRUNE);
    sqlite3_bind_int64 (st, 1, keep);
    sqlite3_bind_int (st, 2, self->lineage_keep);
    if (s_exec (self, st, "snapshot_prune")) {
        db_op_rollback (self);
        return -1;
    }
    int n = sqlite3_changes (self->handle);
    return db_op_commit (self) ? -1 : n;
}

