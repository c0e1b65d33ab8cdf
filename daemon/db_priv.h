/*  db_priv: what the db*.c files share and nothing else includes (db.h is the interface). */
#ifndef PBTD_DB_PRIV_H
#define PBTD_DB_PRIV_H

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "store.h"

//  Every statement pbtd runs, prepared once at open (db.c's s_sql holds
//  the SQL, with a comment on the ones that need one).
typedef enum {
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
    Q_SNAP_RING, Q_MATCH_MIN, Q_ASG_MIN, Q_MSEAT_CUT, Q_MATCH_CUT, Q_MATCH_OLDEST_ASG,
    Q_ASEAT_CUT, Q_ASG_CUT_DONE, Q_ASG_CUT, Q_META_ADD, Q_MATCH_ASG_SPAN, Q_MATCH_ASGS,
    Q_ASG_DONE_ONE, Q_ASEAT_DEL_ONE, Q_ASG_DEL_ONE,
    Q_META_GET, Q_META_SET,
    Q_AGENT_COUNT, Q_AGENT_INSERT, Q_AGENT_GET, Q_AGENT_ALL,
    Q_HP_GET, Q_HP_DEL, Q_HP_INSERT, Q_HH_INSERT, Q_HH_NEXTSEQ,
    Q_SNAP_INSERT, Q_SNAP_GET, Q_SNAP_COPY, Q_SNAP_PRUNE,
    Q_SNAP_SEG_LIVE, Q_SNAP_SEG_RECORDS, Q_SNAP_MOVE,
    Q_ASG_NEXTID, Q_ASG_INSERT, Q_SEAT_INSERT, Q_ASG_GET, Q_SEATS_GET, Q_ASG_LEASED,
    Q_ASG_RENEW, Q_ASG_SETSTATE,
    Q_AGENT_TRAINED, Q_AGENT_RATED, Q_MATCH_INSERT, Q_MSEAT_INSERT,
    Q_AGENT_EVOLVED, Q_EVO_INSERT, Q_METRICS_INSERT,
    Q_COUNT_RESULTS, Q_COUNT_EVOS,
    Q_HIST_HP, Q_HIST_EVOS, Q_LINEAGE, Q_DONOR_EVO, Q_METRICS_RECENT,
    Q_FROZEN_SET, Q_FROZEN_INSERT, Q_FROZEN_COUNT_AGENT, Q_FROZEN_OLDEST, Q_FROZEN_DELETE,
    Q_FROZEN_DRIFT_ADD, Q_FROZEN_GET, Q_FROZEN_RATED, Q_FROZEN_ALL, Q_FROZEN_COUNT,
    Q_SER_ID, Q_SER_NEW, Q_SER_SEQ, Q_SER_PUT, Q_SER_LEVEL_N, Q_SER_OLDEST2, Q_SER_DEL,
    Q_SER_READ, Q_SER_COUNT, Q_SER_NAMES,
    Q_PAYOFF_ADD, Q_PAYOFF_ALL,
    Q_RSEAT_INSERT, Q_RSEAT_DEL_ONE, Q_RSEAT_CUT, Q_POP_FRAMES, Q_ASG_DONE_RANGE,
    Q_MSEAT_CUT_ASG, Q_MATCH_CUT_ASG, Q_RESULTS_RECENT, Q_RSEATS_GET,
    Q_CHK_RECORDS, Q_CHK_AGENT_SNAPS, Q_CHK_SNAP_DELETE, Q_CHK_AGENT_VERSION,
    Q_COUNT
} query_t;

struct _db_t {
    sqlite3 *handle;
    char *path;
    store_t *store;                 // training states (store.h)
    uint64_t gc_moved;              // records moved by compaction
    int64_t compact_age_s;          // segments younger than this are not compacted
    sqlite3_stmt *q [Q_COUNT];
    //  Group commit: inside a batch every logical change is a SAVEPOINT of
    //  the one open transaction instead of a transaction of its own.
    bool batch;
    bool batch_failed;              // SQLite dropped the batch's transaction
    //  Retention (0 = keep everything).
    uint32_t snapshots_keep;
    uint64_t matches_keep;
    bool lineage_keep;              // keep every snapshot an evolution copied
    uint32_t frozen_keep;           // frozen snapshots per agent at an evolution (0: none)
    uint64_t payoff_window;         // episodes per recent bucket of a payoff cell
    bool episode_rows;              // also write matches/match_seats (one row per episode)
    uint64_t results_keep;          // results (assignments) kept without episode rows (0 = all)
    int64_t match_cut;              // every match id <= this is deleted
    int64_t asg_cut;                // every unleased assignment id <= this is deleted
    int64_t asg_next;               // the lowest id a new assignment may take (never reused)
    //  The checkpointer thread and its own connection.
    pthread_t ckpt_thread;
    bool ckpt_running;
    pthread_mutex_t ckpt_mutex;
    pthread_cond_t ckpt_cond;
    bool ckpt_stop;
    uint32_t ckpt_ms;
    int64_t wal_max;
    uint64_t checkpoints, checkpoint_frames;
};

//  What one result says, per seat, before anything is written.
typedef struct {
    uint32_t n_seats;
    int team [PROTO_MAX_AGENTS];
    int idx [PROTO_MAX_AGENTS];         // seats, team 0's first (the team Elo order)
    int n_a, n_b;                       // seats on team 0, on the other team
    bool scripted;
    double before [PROTO_MAX_AGENTS];   // ratings before the result
    double rating [PROTO_MAX_AGENTS];   // ...and after it
    db_wdl_t wdl [PROTO_MAX_AGENTS];    // per seat, by team score
    int64_t last_match;                 // the last episode row written (episode rows only)
} db_tally_t;

//  --------------------------------------------------------------------------
//  Statement helpers: every call resets the statement so the next use
//  starts clean, whatever happened. Static inline, so every db*.c file
//  calls them by the short names db.c's transaction code uses.

static inline sqlite3_stmt *
s_q (db_t *self, query_t q)
{
    sqlite3_stmt *st = self->q [q];
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    return st;
}

static inline void
s_fail (db_t *self, const char *what)
{
    log_error ("db_error", "op=%s rc=%d msg=\"%s\"", what, sqlite3_errcode (self->handle),
               sqlite3_errmsg (self->handle));
}

//  Step a statement that returns no rows. 0 or -1.
static inline int
s_exec (db_t *self, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step (st);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, what);
        return -1;
    }
    return 0;
}

//  Run a single-integer query. 0 (value set), 1 no row/NULL, -1 error.
static inline int
s_int (db_t *self, sqlite3_stmt *st, int64_t *out, const char *what)
{
    int rc = sqlite3_step (st);
    int ret;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type (st, 0) == SQLITE_NULL)
            ret = 1;
        else {
            *out = sqlite3_column_int64 (st, 0);
            ret = 0;
        }
    }
    else
    if (rc == SQLITE_DONE)
        ret = 1;
    else {
        s_fail (self, what);
        ret = -1;
    }
    sqlite3_reset (st);
    return ret;
}


//  --------------------------------------------------------------------------
//  Calls from one db*.c file into another. The *_in functions join the
//  caller's open transaction (or savepoint) instead of making their own.

//  db.c: a logical change's transaction (a savepoint inside a batch).
int db_op_begin (db_t *self);
int db_op_commit (db_t *self);
void db_op_rollback (db_t *self);
//  Run SQL text with no parameters (pragmas, DDL). 0 or -1 (logged).
int db_pragma (db_t *self, const char *sql);
int db_meta_set_in (db_t *self, const char *key, const char *value);

//  db_migrate.c: upgrades from older schema versions (db_new).
int db_migrate_states (db_t *self);
int db_migrate_history (db_t *self);
int db_migrate_worker_key (db_t *self);

//  db_ckpt.c: stop and join the checkpointer thread if it runs.
void db_checkpointer_stop (db_t *self);

//  db_agents.c
int db_hparams_write (db_t *self, int64_t id, const proto_kvs_t *hp, const char *reason,
                      int64_t seq, int64_t now);
int db_snapshot_insert (db_t *self, int64_t id, uint64_t version, const proto_state_t *state,
                        int64_t now);
int db_assignment_set_state (db_t *self, uint64_t id, const char *state);

//  db_retention.c: bounded work per change.
int db_snapshot_ring (db_t *self, int64_t agent_id, uint64_t current);
int db_match_retention (db_t *self, int64_t last_id, uint32_t n);
int db_result_retention (db_t *self, int64_t asg_id);

//  db_result.c: one seat's counters and rows (also for carried-over results).
int db_result_seat (db_t *self, const db_assignment_t *a, const proto_result_t *r,
                    const db_tally_t *res, uint32_t i, int64_t pop_frames, int64_t now);

//  db_series.c
int db_series_append_in (db_t *self, int64_t agent, const char *name, int64_t t_ms,
                         uint64_t frames, double value, double weight, const char *label);
int db_payoff_add_in (db_t *self, int64_t agent, uint64_t version, int64_t opp,
                      uint64_t opp_version, const db_wdl_t *d, int64_t now);

#endif
