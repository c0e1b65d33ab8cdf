/*  db: pbtd's durable state in SQLite. docs/schema.md documents the schema.

    WAL with synchronous=FULL, so a commit that returned is on disk before
    pbtd acknowledges anything. Every logical change (one result, one
    evolution, one new assignment) is all-or-nothing: its own BEGIN
    IMMEDIATE transaction, or, inside a batch (group commit, see
    db_batch_begin), a SAVEPOINT of the batch's one transaction, so a
    refused or failed change is undone alone and the rest of the batch
    still commits. Every statement is prepared once at open and takes
    bound parameters only. All timestamps are wall-clock milliseconds since the
    Unix epoch, so lease deadlines survive a restart.
*/
#ifndef PBTD_DB_H
#define PBTD_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "pbt.h"
#include "proto.h"
#include "store.h"

#define DB_SCHEMA_VERSION 5

//  State store segments roll over at this size (store.h).
#define DB_SEGMENT_BYTES (64ull << 20)
//  ...and a segment is compacted only once it is this many seconds old.
#define DB_COMPACT_AGE_S 300

typedef struct _db_t db_t;

//  One agent's row plus its current hyperparameters.
typedef struct {
    int64_t id;
    uint64_t version;
    uint64_t generation;
    int64_t parent;                 // donor of the last evolution, -1 if none
    double rating;
    uint64_t matches;
    uint64_t frames;
    uint64_t frames_since_evolve;
    uint64_t matches_since_evolve;
    int64_t created_at;
    int64_t updated_at;
    proto_kvs_t hparams;
} db_agent_t;

typedef struct {
    int64_t agent_id;               // -1: a scripted seat
    uint64_t version;
    uint32_t slot;
    bool train;
    bool frozen;                    // a frozen past snapshot of agent_id (never trains)
    char script [PROTO_MAX_NAME];   // the scripted policy of a seat with agent_id -1
} db_seat_t;

//  A frozen past snapshot: a PFSP opponent with its own rating.
typedef struct {
    int64_t agent_id;
    uint64_t version;
    double rating;
} db_frozen_t;

typedef struct {
    uint64_t id;
    char state [16];                // "leased", "done", "expired"
    bool eval;                      // kind 'eval' (no seat trains)
    char worker [PROTO_MAX_TEXT];
    //  The CURVE public key (Z85) of the peer it was given to, "" without
    //  CURVE: results and heartbeats are taken from that worker only.
    char worker_key [64];
    int64_t created_at;
    int64_t deadline_ms;
    uint64_t seed;
    uint32_t n_seats;
    db_seat_t seats [PROTO_MAX_AGENTS];     // in slot order, as in the assign and the result
    //  A match against a scripted team: script names the policy of every
    //  seat with agent_id -1 (rows exist only for agent seats; the
    //  assignment row keeps the script and how many seats it plays).
    char script [PROTO_MAX_NAME];
} db_assignment_t;

//  What applying a result changed, for the caller's cache and counters.
typedef struct {
    uint64_t frames;                // frames trained, summed over seats
    uint32_t episodes;
} db_applied_t;

//  Open or create the database at path; NULL (logged) on failure.
db_t *db_new (const char *path);
void db_destroy (db_t **self_p);

//  Group commit. Between db_batch_begin and db_batch_commit every db_*
//  write joins one transaction (each as its own SAVEPOINT); the commit
//  makes them all durable with one fsync. Nothing the batch did may be
//  acknowledged before db_batch_commit returned 0; on -1 none of it
//  happened (the caller must forget what it cached). Reads inside a batch
//  see the batch's changes. 0 or -1.
int db_batch_begin (db_t *self);
int db_batch_commit (db_t *self);
bool db_in_batch (db_t *self);

//  Group commit with the fsyncs on another thread (committer.h), in this
//  order: db_batch_begin_nosync; the batch's changes; db_batch_sync_begin
//  gives a descriptor of the state store to fdatasync (-1: nothing to
//  sync; the call fails if an earlier store sync failed); once that sync
//  is done, db_batch_sync_end reports it and, if it succeeded,
//  db_batch_commit_nosync commits without an fsync (else
//  db_batch_rollback). The batch is durable only once the WAL file
//  (<path>-wal) has been fsynced after that commit. So states are durable
//  before any row naming them reaches the WAL. 0 or -1.
int db_batch_begin_nosync (db_t *self);
int db_batch_sync_begin (db_t *self, int *fd);
void db_batch_sync_end (db_t *self, bool ok);
int db_batch_commit_nosync (db_t *self);
void db_batch_rollback (db_t *self);

//  Retention applied inside each change (bounded work, no sweeps):
//  snapshots_keep newest snapshot versions per agent (plus frozen ones;
//  0 = keep all), and the newest matches_keep match rows (episodes) with
//  the assignments they belong to (0 = keep all).
void db_set_retention (db_t *self, uint32_t snapshots_keep, uint64_t matches_keep);

//  Per-episode rows (matches, match_seats): off by default; history,
//  matches and the payoff matrix read the per-result aggregates. With
//  them on, matches_keep bounds them (and the results they belong to).
void db_set_episode_rows (db_t *self, bool on);
//  Without episode rows: the newest results_keep results (assignments,
//  their seats and result_seats rows) are kept (0 = all; default
//  DB_RESULTS_KEEP). Counters, series and payoff cover the whole run.
#define DB_RESULTS_KEEP 100000
void db_set_results_keep (db_t *self, uint64_t results_keep);

//  Lineage retention: true keeps every snapshot an evolution copied (the
//  donor's version named in evolutions), beyond snapshots_keep, so the
//  weights behind every step of the lineage stay readable. Default false.
void db_set_lineage_keep (db_t *self, bool keep);

//  Frozen past snapshots kept per agent (PFSP). When > 0, db_evolve
//  first freezes the agent's current snapshot (table frozen, at its
//  current rating) and forgets its oldest over the cap. 0 (the default):
//  no freezing.
void db_set_frozen_keep (db_t *self, uint32_t frozen_keep);

//  Every frozen snapshot, ordered by agent and version, into out[0..max);
//  count or -1.
int db_frozen_list (db_t *self, db_frozen_t *out, int max);
//  Frozen snapshots stored; -1 on error.
int64_t db_frozen_count (db_t *self);

//  Start a thread that checkpoints the WAL into the database file every
//  interval_ms (PASSIVE, never blocking the writer; TRUNCATE once the WAL
//  is over wal_max_bytes) and turn SQLite's inline autocheckpoint off.
//  db_destroy stops it. 0 or -1.
int db_checkpointer_start (db_t *self, uint32_t interval_ms, uint64_t wal_max_bytes);
//  Checkpoint passes the thread has run (0 if not started).
uint64_t db_checkpoints (db_t *self);

//  PRAGMA integrity_check == "ok"; returns 0 or -1.
int db_integrity_check (db_t *self);

//  meta table. get: 0 found, 1 absent, -1 error. set: own transaction.
int db_meta_get (db_t *self, const char *key, char *out, size_t out_len);
int db_meta_set (db_t *self, const char *key, const char *value);

//  Agents stored; -1 on error.
int db_agent_count (db_t *self);

//  Create agents 0..n-1 with states[i] (snapshot version 1), ratings and
//  hparams from agents[i], 'init' history rows, and meta entries, in one
//  transaction. Returns 0 or -1.
int db_create_population (db_t *self, int n, const db_agent_t *agents,
                          const proto_state_t *states, const char *const *meta_kv,
                          int64_t now);

//  Load every agent ordered by id into agents[0..max); returns count or -1.
int db_load_agents (db_t *self, db_agent_t *agents, int max);
//  Load one agent; 0, 1 absent, -1 error.
int db_load_agent (db_t *self, int64_t id, db_agent_t *agent);

//  Load a snapshot (malloc'd vectors; free with proto_state_free).
//  0, 1 absent, -1 error.
int db_load_state (db_t *self, int64_t agent_id, uint64_t version, proto_state_t *state);

//  Record a new leased assignment (id chosen here, seed derived from
//  base_seed and the id) with its seats. Fills a->id and a->seed.
int db_assignment_create (db_t *self, db_assignment_t *a, uint64_t base_seed);
//  Assignment ids are never reused, even across a crash that lost
//  assignments pbtd had already sent (server.c sends them before their
//  batch is durable). meta.assign_id_ceiling bounds every id ever sent:
//  at start ids continue from it (or from the highest recorded, if
//  higher) and a new ceiling `block` further on is written durably
//  (*ceiling). db_assignment_ids_reserve writes a later ceiling, in the
//  open batch or its own transaction.
int db_assignment_ids_start (db_t *self, uint64_t block, uint64_t *ceiling);
int db_assignment_ids_reserve (db_t *self, uint64_t ceiling);
//  0, 1 absent, -1 error.
int db_assignment_get (db_t *self, uint64_t id, db_assignment_t *a);
//  Ids of leased assignments, ascending, into ids[0..max); count or -1.
int db_assignments_leased (db_t *self, uint64_t *ids, int max);
int db_assignment_renew (db_t *self, uint64_t id, int64_t deadline_ms);
//  Mark a leased assignment expired (no-op if not leased).
int db_assignment_expire (db_t *self, uint64_t id);

//  Validate and apply a result in one transaction: the assignment must be
//  leased and before its deadline (else it is marked expired), the seats'
//  ids and versions must match the assignment and the agents, trained
//  seats must carry n_params finite floats, scores must be finite. Then
//  new snapshots (version+1), frames, per-episode Elo (team 0 against
//  the other teams, by envspec_team_of), match rows and the assignment
//  marked done.
//  A frozen seat must still be frozen at its version; it writes no state,
//  and its episodes rate the frozen row (zero-sum with the live agent).
//  Returns PROTO_OK or the error code (nothing changed) with err.
proto_code_t db_apply_result (db_t *self, const proto_result_t *result, uint32_t n_params,
                              int n_teams, const pbt_config_t *pbt, int64_t now,
                              db_applied_t *applied, char *err, size_t err_len);

//  Evolve agent from donor in one transaction: the donor's current
//  snapshot becomes the agent's version+1, hparams replaced by new_hp,
//  generation+1, parent=donor, *_since_evolve reset, history and
//  evolutions rows; first, with db_set_frozen_keep > 0, the agent's
//  current snapshot is frozen. Returns 0 or -1.
int db_evolve (db_t *self, int64_t agent_id, int64_t donor_id, const proto_kvs_t *new_hp,
               int64_t now);

//  Delete unfrozen snapshots more than keep versions behind the agent's
//  current one (never one a leased assignment uses), all agents in one
//  sweep: pbtd runs it once at start (for a lowered snapshots_keep);
//  steady state is the per-change ring (db_set_retention). Deleted count
//  or -1.
int db_prune_snapshots (db_t *self, uint32_t keep);

//  Reclaim state store space (outside a batch): delete segments no row
//  names, and move the records still named out of segments less than a
//  quarter alive, at most max_move_bytes of them per call, so those go
//  too. Returns how many segments it deleted, -1 (logged) on error.
int db_store_gc (db_t *self, uint64_t max_move_bytes);

//  Bytes of training states on disk (every segment), and how many records
//  compaction has moved since open.
uint64_t db_store_bytes (db_t *self);
//  Bytes in the state store's segment files (0: no state was ever kept).
uint64_t db_store_segment_bytes (db_t *self);

//  What db_store_check found.
typedef struct {
    uint64_t records, bytes;        // distinct records the rows name, their bytes
    uint64_t bad;                   // records that do not read back whole
    store_ref_t first;              // the first bad one, and a row naming it
    int64_t first_agent;
    uint64_t first_version;
} db_store_check_t;

//  Read back every record a snapshot row names (header, length and both
//  checksums). Returns the number of bad records (0: the store matches
//  the database) or -1 on a database error.
int64_t db_store_check (db_t *self, db_store_check_t *out);

//  What db_state_fallback did.
typedef struct {
    bool fell_back;                 // the current state was unreadable: new_version holds from_version's
    uint64_t old_version, new_version, from_version;
    uint32_t dropped;               // rows naming unreadable records, deleted
} db_fallback_t;

//  Some of agent_id's snapshots do not read back: delete the rows that
//  name unreadable records and, if its current one is among them, make
//  its newest intact snapshot (kept, frozen or lineage) its state again as
//  a new version. Counted in meta state_fallbacks. 0 done, 1 no intact
//  snapshot left (nothing changed), -1 error.
int db_state_fallback (db_t *self, int64_t agent_id, int64_t now, db_fallback_t *out);

//  Segments the state store has started since open: a change means one
//  more may now be free to retire.
uint64_t db_store_segments_started (db_t *self);

//  Roll the state store's segments over at this size from now on, and
//  compact segments once they are this old (defaults DB_SEGMENT_BYTES,
//  DB_COMPACT_AGE_S).
void db_set_segment_bytes (db_t *self, uint64_t bytes, int64_t compact_age_s);

//  If the WAL has grown past min_bytes, copy what is left of it into the
//  database from pbtd's own connection (outside a batch), so the next
//  write transaction starts the WAL over. Under steady load the
//  checkpointer thread alone rarely gets the WAL restarted: the writer
//  appends between every pass. 1 caught up, 0 not now, -1 error.
int db_wal_catch_up (db_t *self, int64_t min_bytes);
uint64_t db_store_moved (db_t *self);

int db_metrics_append (db_t *self, int64_t ts, uint64_t results, uint64_t samples,
                       uint64_t evolutions);

//  Totals: results applied (assignments done, including those whose rows
//  retention deleted), evolutions; -1 on error.
int64_t db_count_results (db_t *self);
int64_t db_count_evolutions (db_t *self);

//  --------------------------------------------------------------------------
//  Series: bounded, multi-resolution time series of any metric.
//
//  A series is (agent, metric name) -> points; agent is an agent id, or
//  DB_SERIES_POPULATION for a population-wide metric. Every point carries
//  the wall-clock time (ms since the epoch) and the population's total
//  frames at that moment, so series of different agents share one x axis
//  (time or frames). A sample appended is a point at full resolution
//  (level 0). Each level keeps at most DB_SERIES_LEVEL_POINTS points: when
//  a level overflows, its two oldest points merge into one point of the
//  next level (count-weighted mean, min, max, newest value, summed weight
//  and sample count, the newer point's time and frames, the label if both
//  had the same one). So a point at level L stands for about 2^L samples,
//  recent samples stay at full resolution, and a series of N samples has
//  at most DB_SERIES_LEVEL_POINTS * (log2 (N / DB_SERIES_LEVEL_POINTS) + 2)
//  points: about 2,300 for a billion samples. Appending costs amortized one
//  merge. Points read oldest first: by level descending, then by sequence.

#define DB_SERIES_POPULATION    (-1)
#define DB_SERIES_LEVEL_POINTS  128
#define DB_SERIES_MAX_LEVELS    48
#define DB_SERIES_NAME_MAX      64

typedef struct {
    int64_t t0_ms;                  // wall clock of the oldest sample merged in
    int64_t t_ms;                   // ...and of the newest
    uint64_t frames;                // population total frames at the newest sample
    uint32_t level;                 // 0: one sample; L: about 2^L samples
    uint64_t samples;               // samples merged into this point
    double weight;                  // their summed weight (e.g. episodes)
    double mean;                    // weight-weighted mean of their values
    double lo, hi;                  // smallest and largest value
    double last;                    // the newest sample's value
    char label [DB_SERIES_NAME_MAX];    // shared label of every sample, else ""
} db_point_t;

//  Append one sample to (agent, name), created on first use: value and
//  weight finite, weight > 0; label may be NULL. Joins the open batch or
//  transaction as its own savepoint, else its own transaction. 0 or -1.
int db_series_append (db_t *self, int64_t agent, const char *name, int64_t t_ms,
                      uint64_t frames, double value, double weight, const char *label);
//  Points of (agent, name), oldest first, skipping `offset`, at most max
//  into out. Returns the number read (0 for an unknown series) or -1;
//  *total (may be NULL) gets how many points the series has.
int db_series_read (db_t *self, int64_t agent, const char *name, int64_t offset,
                    db_point_t *out, int max, int64_t *total);
//  Names of agent's series (DB_SERIES_POPULATION: the population's), in
//  name order, into names[0..max); count or -1.
int db_series_names (db_t *self, int64_t agent, char names [][DB_SERIES_NAME_MAX], int max);

//  --------------------------------------------------------------------------
//  Payoff: counters of every pairing, never derived from a scan.
//
//  One cell per (agent, version, opponent, opponent version): version 0
//  is the live agent (all its versions together), a version > 0 the
//  frozen snapshot agent@version. Each side of every rated or trained
//  episode between agents (scripted teams are not cells) counts from its
//  own side: episodes, wins, draws, losses (by team score) and the sum of
//  its own score. `all` covers the whole run. `recent` is two buckets:
//  when the current one holds the window's episodes (db_set_payoff_window,
//  default DB_PAYOFF_WINDOW) it becomes the previous one and a new one
//  starts; recent = previous + current, so once a pairing has played a
//  window's worth it always covers between one and two windows of its most
//  recent episodes (plus at most one result).

#define DB_PAYOFF_WINDOW 20000

typedef struct {
    uint64_t episodes, wins, draws, losses;
    double score_sum;
} db_wdl_t;

typedef struct {
    int64_t agent;
    uint64_t version;               // 0: the live agent; else a frozen snapshot
    int64_t opp;
    uint64_t opp_version;
    db_wdl_t all, recent;
    int64_t updated_at;
} db_payoff_t;

void db_set_payoff_window (db_t *self, uint64_t episodes);
//  Add delta to a cell (created on first use). Joins the open batch or
//  transaction as its own savepoint, else its own transaction. 0 or -1.
int db_payoff_add (db_t *self, int64_t agent, uint64_t version, int64_t opp,
                   uint64_t opp_version, const db_wdl_t *delta, int64_t now);
//  Every cell, ordered by agent, version, opponent, opponent version, into
//  out[0..max); count or -1.
int db_payoff_list (db_t *self, db_payoff_t *out, int max);

//  --------------------------------------------------------------------------
//  Reads for the control queries. ctl_reply.h packs them as MessagePack
//  bodies; pbtd runs them on a read-only connection off the reactor.

//  A read-only connection to the database at path (which must exist, at
//  the current schema): for queries only, never for writes or states.
db_t *db_new_reader (const char *path);
//  One consistent snapshot for several queries on a reader: 0 or -1.
int db_read_begin (db_t *self);
void db_read_end (db_t *self);

//  Points the series (agent, name) has: 0 for an unknown series, -1 on error.
int64_t db_series_count (db_t *self, int64_t agent, const char *name);
//  Episodes per recent bucket of a payoff cell (db_set_payoff_window).
uint64_t db_payoff_window (db_t *self);

//  One value in an agent's hyperparameter history: seq 0 is the initial
//  set, each evolution adds the next seq.
typedef struct {
    int64_t seq;
    char name [PROTO_MAX_NAME];
    double value;
} db_hparam_t;

//  Every row of agent's hyperparameter history, by seq, into *out
//  (malloc'd, the caller frees it; NULL when none); count or -1.
int64_t db_hparam_history (db_t *self, int64_t agent, db_hparam_t **out);

//  The agent's total frames at each of its evolutions, oldest first, into
//  *out (malloc'd, the caller frees it); count or -1.
int64_t db_evolution_frames (db_t *self, int64_t agent, int64_t **out);

//  One evolution as lineage shows it.
typedef struct {
    int64_t id, donor, donor_version, ts, frames, old_version, new_version, generation;
    int64_t donor_evolution;        // the donor's latest evolution before this one, -1: none
    proto_kvs_t old_hparams, new_hparams;
} db_evolution_t;

//  The agent's newest evolutions (at most max), newest first, into *out
//  (malloc'd, the caller frees it); count or -1.
int db_lineage (db_t *self, int64_t agent, int max, db_evolution_t **out);

//  One applied result (its assignment) and each seat's aggregates.
typedef struct {
    int64_t id, ts;
    char script [PROTO_MAX_NAME];   // the scripted team's policy, "" in population play
} db_result_row_t;

typedef struct {
    int64_t slot, agent;
    int64_t frozen_version;         // 0: the live agent
    int64_t team;
    char opponent [256];
    int64_t episodes, wins, draws, losses;
    double score_sum, rating_before, rating_after;
    int64_t frames, wall_ms, pop_frames;
} db_result_seat_t;

//  The newest results (at most max) with an assignment id below before,
//  newest first; count or -1.
int db_results_recent (db_t *self, int64_t before, db_result_row_t *out, int max);
//  The seats of the result of assignment id, by slot, into out[0..max);
//  count or -1.
int db_result_seats (db_t *self, int64_t id, db_result_seat_t *out, int max);

//  One row housekeeping appended (db_metrics_append): cumulative counters.
typedef struct {
    int64_t ts, results, samples, evolutions;
} db_metrics_t;

//  The last limit rows, oldest first, into *out (malloc'd, the caller
//  frees it); count or -1.
int64_t db_metrics_recent (db_t *self, int64_t limit, db_metrics_t **out);

#endif
