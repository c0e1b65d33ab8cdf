/*  db: pbtd's SQLite store. See db.h and docs/schema.md. */
#include "db.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "rng.h"
#include "store.h"

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS meta ("
    "  key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS agents ("
    "  id INTEGER PRIMARY KEY,"
    "  version INTEGER NOT NULL,"
    "  generation INTEGER NOT NULL DEFAULT 0,"
    "  parent INTEGER REFERENCES agents(id),"
    "  rating REAL NOT NULL,"
    "  matches INTEGER NOT NULL DEFAULT 0,"
    "  frames INTEGER NOT NULL DEFAULT 0,"
    "  frames_since_evolve INTEGER NOT NULL DEFAULT 0,"
    "  matches_since_evolve INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS hparams ("
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  name TEXT NOT NULL,"
    "  value REAL NOT NULL,"
    "  PRIMARY KEY (agent_id, name));"
    "CREATE TABLE IF NOT EXISTS hparam_history ("
    "  id INTEGER PRIMARY KEY,"
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  seq INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  value REAL NOT NULL,"
    "  reason TEXT NOT NULL CHECK (reason IN ('init','evolve')),"
    "  ts INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS hparam_history_agent ON hparam_history (agent_id, seq);"
    //  A snapshot's bytes live in the state store (store.h): the row
    //  names the record. Rows made by an evolution share the donor's record.
    "CREATE TABLE IF NOT EXISTS snapshots ("
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  version INTEGER NOT NULL,"
    "  seg INTEGER NOT NULL,"
    "  off INTEGER NOT NULL,"
    "  len INTEGER NOT NULL,"
    "  n_params INTEGER NOT NULL,"
    "  adam_t INTEGER NOT NULL,"
    "  frozen INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (agent_id, version));"
    "CREATE INDEX IF NOT EXISTS snapshots_record ON snapshots (seg, off);"
    "CREATE TABLE IF NOT EXISTS assignments ("
    "  id INTEGER PRIMARY KEY,"
    "  state TEXT NOT NULL CHECK (state IN ('leased','done','expired')),"
    "  kind TEXT NOT NULL CHECK (kind IN ('train','eval')),"
    "  worker TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  deadline_ms INTEGER NOT NULL,"
    "  seed INTEGER NOT NULL,"
    "  script TEXT,"
    "  script_seats INTEGER NOT NULL DEFAULT 0,"
    "  worker_key TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS assignments_state ON assignments (state);"
    "CREATE TABLE IF NOT EXISTS assignment_seats ("
    "  assignment_id INTEGER NOT NULL REFERENCES assignments(id),"
    "  slot INTEGER NOT NULL,"
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  version INTEGER NOT NULL,"
    "  train INTEGER NOT NULL,"
    "  frozen INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (assignment_id, slot));"
    "CREATE TABLE IF NOT EXISTS matches ("
    "  id INTEGER PRIMARY KEY,"
    "  assignment_id INTEGER NOT NULL REFERENCES assignments(id),"
    "  episode INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS matches_assignment ON matches (assignment_id);"
    "CREATE TABLE IF NOT EXISTS match_seats ("
    "  match_id INTEGER NOT NULL REFERENCES matches(id),"
    "  slot INTEGER NOT NULL,"
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  team INTEGER NOT NULL,"
    "  score REAL NOT NULL,"
    "  rating_after REAL NOT NULL,"
    "  frozen_version INTEGER,"
    "  PRIMARY KEY (match_id, slot));"
    "CREATE INDEX IF NOT EXISTS match_seats_agent ON match_seats (agent_id, match_id);"
    "CREATE TABLE IF NOT EXISTS evolutions ("
    "  id INTEGER PRIMARY KEY,"
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  donor_id INTEGER NOT NULL REFERENCES agents(id),"
    "  donor_version INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  frames INTEGER NOT NULL,"
    "  old_version INTEGER NOT NULL,"
    "  new_version INTEGER NOT NULL,"
    "  generation INTEGER NOT NULL,"
    "  old_hparams TEXT NOT NULL,"
    "  new_hparams TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS evolutions_agent ON evolutions (agent_id, id);"
    "CREATE INDEX IF NOT EXISTS evolutions_donor ON evolutions (donor_id, donor_version);"
    "CREATE TABLE IF NOT EXISTS frozen ("
    "  agent_id INTEGER NOT NULL REFERENCES agents(id),"
    "  version INTEGER NOT NULL,"
    "  rating REAL NOT NULL,"
    "  rating_at_freeze REAL NOT NULL,"
    "  matches INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (agent_id, version));"
    "CREATE TABLE IF NOT EXISTS metrics ("
    "  ts INTEGER NOT NULL,"
    "  results INTEGER NOT NULL,"
    "  samples INTEGER NOT NULL,"
    "  evolutions INTEGER NOT NULL);"
    //  Per result and seat: the aggregates history is built from.
    "CREATE TABLE IF NOT EXISTS result_seats ("
    "  assignment_id INTEGER NOT NULL,"
    "  slot INTEGER NOT NULL,"
    "  agent_id INTEGER NOT NULL,"
    "  frozen_version INTEGER,"
    "  team INTEGER NOT NULL,"
    "  opponent TEXT NOT NULL,"
    "  episodes INTEGER NOT NULL,"
    "  wins INTEGER NOT NULL,"
    "  draws INTEGER NOT NULL,"
    "  losses INTEGER NOT NULL,"
    "  score_sum REAL NOT NULL,"
    "  rating_before REAL NOT NULL,"
    "  rating_after REAL NOT NULL,"
    "  frames INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL,"
    "  wall_ms INTEGER NOT NULL,"
    "  pop_frames INTEGER NOT NULL,"
    "  PRIMARY KEY (assignment_id, slot)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS result_seats_agent ON result_seats (agent_id, assignment_id);"
    //  Series (db.h): one row per (agent or -1, metric), its points by
    //  resolution level.
    "CREATE TABLE IF NOT EXISTS series ("
    "  id INTEGER PRIMARY KEY,"
    "  agent_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  UNIQUE (agent_id, name));"
    "CREATE TABLE IF NOT EXISTS series_points ("
    "  series_id INTEGER NOT NULL REFERENCES series(id),"
    "  level INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  t0_ms INTEGER NOT NULL,"
    "  t_ms INTEGER NOT NULL,"
    "  frames INTEGER NOT NULL,"
    "  samples INTEGER NOT NULL,"
    "  weight REAL NOT NULL,"
    "  mean REAL NOT NULL,"
    "  lo REAL NOT NULL,"
    "  hi REAL NOT NULL,"
    "  last REAL NOT NULL,"
    "  label TEXT,"
    "  PRIMARY KEY (series_id, level, seq)) WITHOUT ROWID;"
    //  Payoff counters (db.h): whole run, and the recent window's two buckets.
    "CREATE TABLE IF NOT EXISTS payoff ("
    "  agent_id INTEGER NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  opp_id INTEGER NOT NULL,"
    "  opp_version INTEGER NOT NULL,"
    "  episodes INTEGER NOT NULL, wins INTEGER NOT NULL, draws INTEGER NOT NULL,"
    "  losses INTEGER NOT NULL, score REAL NOT NULL,"
    "  cur_episodes INTEGER NOT NULL, cur_wins INTEGER NOT NULL, cur_draws INTEGER NOT NULL,"
    "  cur_losses INTEGER NOT NULL, cur_score REAL NOT NULL,"
    "  prev_episodes INTEGER NOT NULL, prev_wins INTEGER NOT NULL, prev_draws INTEGER NOT NULL,"
    "  prev_losses INTEGER NOT NULL, prev_score REAL NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (agent_id, version, opp_id, opp_version)) WITHOUT ROWID;";

#define AGENT_COLS "id, version, generation, parent, rating, matches, frames, " \
                   "frames_since_evolve, matches_since_evolve, created_at, updated_at"

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

static const char *s_sql [Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT op",
    [Q_RELEASE] = "RELEASE op",
    [Q_ROLLBACK_TO] = "ROLLBACK TO op",
    //  The ring: an agent keeps its snapshots_keep newest versions. Only
    //  the agent's current version can be in a lease (a busy agent is
    //  neither trained nor evolved by anyone else), and keep >= 1, so this
    //  never removes a leased snapshot.
    [Q_SNAP_RING] = "DELETE FROM snapshots WHERE agent_id = ?1 AND version <= ?2 AND frozen = 0 "
                    "AND NOT (?3 AND EXISTS (SELECT 1 FROM evolutions e WHERE "
                    "e.donor_id = snapshots.agent_id AND e.donor_version = snapshots.version))",
    [Q_MATCH_MIN] = "SELECT COALESCE(MIN(id), 1) - 1 FROM matches",
    [Q_ASG_MIN] = "SELECT COALESCE(MIN(id), 1) - 1 FROM assignments",
    [Q_MSEAT_CUT] = "DELETE FROM match_seats WHERE match_id > ?1 AND match_id <= ?2",
    [Q_MATCH_CUT] = "DELETE FROM matches WHERE id > ?1 AND id <= ?2",
    [Q_MATCH_OLDEST_ASG] = "SELECT MIN(assignment_id) FROM matches",
    [Q_MATCH_ASG_SPAN] = "SELECT MIN(id), MAX(id) FROM matches WHERE assignment_id = "
                         "(SELECT assignment_id FROM matches WHERE id = ?1)",
    [Q_MATCH_ASGS] = "SELECT DISTINCT assignment_id FROM matches WHERE id > ?1 AND id <= ?2",
    [Q_ASG_DONE_ONE] = "SELECT COUNT(*) FROM assignments WHERE id = ?1 AND state = 'done'",
    [Q_ASEAT_DEL_ONE] = "DELETE FROM assignment_seats WHERE assignment_id = ?1",
    [Q_ASG_DEL_ONE] = "DELETE FROM assignments WHERE id = ?1",
    //  The sweep below the oldest kept match's assignment: none of these
    //  has a kept match; leased ones stay.
    [Q_ASEAT_CUT] = "DELETE FROM assignment_seats WHERE assignment_id > ?1 AND assignment_id <= ?2 "
                    "AND assignment_id IN (SELECT id FROM assignments WHERE id > ?1 AND id <= ?2 "
                    "AND state != 'leased')",
    [Q_ASG_CUT_DONE] = "SELECT COUNT(*) FROM assignments WHERE id > ?1 AND id <= ?2 AND state = 'done'",
    [Q_ASG_CUT] = "DELETE FROM assignments WHERE id > ?1 AND id <= ?2 AND state != 'leased'",
    [Q_META_ADD] = "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE "
                   "SET value = CAST(CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER) AS TEXT)",
    [Q_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [Q_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [Q_AGENT_COUNT] = "SELECT COUNT(*) FROM agents",
    [Q_AGENT_INSERT] = "INSERT INTO agents (id, version, generation, parent, rating, created_at, "
                       "updated_at) VALUES (?1, ?2, 0, NULL, ?3, ?4, ?4)",
    [Q_AGENT_GET] = "SELECT " AGENT_COLS " FROM agents WHERE id = ?1",
    [Q_AGENT_ALL] = "SELECT " AGENT_COLS " FROM agents ORDER BY id",
    [Q_HP_GET] = "SELECT name, value FROM hparams WHERE agent_id = ?1 ORDER BY rowid",
    [Q_HP_DEL] = "DELETE FROM hparams WHERE agent_id = ?1",
    [Q_HP_INSERT] = "INSERT INTO hparams (agent_id, name, value) VALUES (?1, ?2, ?3)",
    [Q_HH_INSERT] = "INSERT INTO hparam_history (agent_id, seq, name, value, reason, ts) "
                    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_HH_NEXTSEQ] = "SELECT COALESCE(MAX(seq) + 1, 0) FROM hparam_history WHERE agent_id = ?1",
    [Q_SNAP_INSERT] = "INSERT INTO snapshots (agent_id, version, seg, off, len, n_params, adam_t, "
                      "frozen, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
    [Q_SNAP_GET] = "SELECT seg, off, len, n_params, adam_t FROM snapshots "
                   "WHERE agent_id = ?1 AND version = ?2",
    [Q_SNAP_COPY] = "INSERT INTO snapshots (agent_id, version, seg, off, len, n_params, adam_t, "
                    "frozen, created_at) SELECT ?1, ?2, seg, off, len, n_params, adam_t, 0, ?3 "
                    "FROM snapshots WHERE agent_id = ?4 AND version = ?5",
    //  State store collection: what each segment still holds, and moving
    //  a record (every row that shares it) to a new place.
    [Q_SNAP_SEG_LIVE] = "SELECT COUNT(*), COALESCE(SUM(len), 0) FROM snapshots WHERE seg = ?1",
    [Q_SNAP_SEG_RECORDS] = "SELECT DISTINCT off, len FROM snapshots WHERE seg = ?1 ORDER BY off",
    [Q_SNAP_MOVE] = "UPDATE snapshots SET seg = ?3, off = ?4 WHERE seg = ?1 AND off = ?2",
    [Q_SNAP_PRUNE] = "DELETE FROM snapshots WHERE frozen = 0 AND version <= "
                     "(SELECT a.version FROM agents a WHERE a.id = snapshots.agent_id) - ?1 "
                     "AND NOT EXISTS (SELECT 1 FROM assignment_seats s JOIN assignments x "
                     "ON x.id = s.assignment_id WHERE x.state = 'leased' "
                     "AND s.agent_id = snapshots.agent_id AND s.version = snapshots.version) "
                     "AND NOT (?2 AND EXISTS (SELECT 1 FROM evolutions e WHERE "
                     "e.donor_id = snapshots.agent_id AND e.donor_version = snapshots.version))",
    [Q_ASG_NEXTID] = "SELECT COALESCE(MAX(id), 0) + 1 FROM assignments",
    [Q_ASG_INSERT] = "INSERT INTO assignments (id, state, kind, worker, created_at, deadline_ms, "
                     "seed, script, script_seats, worker_key) "
                     "VALUES (?1, 'leased', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [Q_SEAT_INSERT] = "INSERT INTO assignment_seats (assignment_id, slot, agent_id, version, "
                      "train, frozen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_ASG_GET] = "SELECT state, kind, worker, created_at, deadline_ms, seed, script, "
                  "script_seats, worker_key FROM assignments WHERE id = ?1",
    [Q_SEATS_GET] = "SELECT slot, agent_id, version, train, frozen FROM assignment_seats "
                    "WHERE assignment_id = ?1 ORDER BY rowid",
    [Q_ASG_LEASED] = "SELECT id FROM assignments WHERE state = 'leased' ORDER BY id",
    [Q_ASG_RENEW] = "UPDATE assignments SET deadline_ms = ?2 WHERE id = ?1 AND state = 'leased'",
    [Q_ASG_SETSTATE] = "UPDATE assignments SET state = ?2 WHERE id = ?1 AND state = 'leased'",
    [Q_AGENT_TRAINED] = "UPDATE agents SET version = ?2, frames = frames + ?3, "
                        "frames_since_evolve = frames_since_evolve + ?3, updated_at = ?4 "
                        "WHERE id = ?1",
    [Q_AGENT_RATED] = "UPDATE agents SET rating = ?2, matches = matches + ?4, "
                      "matches_since_evolve = matches_since_evolve + ?4, updated_at = ?3 "
                      "WHERE id = ?1",
    [Q_MATCH_INSERT] = "INSERT INTO matches (assignment_id, episode, ts) VALUES (?1, ?2, ?3)",
    [Q_MSEAT_INSERT] = "INSERT INTO match_seats (match_id, slot, agent_id, team, score, "
                       "rating_after, frozen_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_AGENT_EVOLVED] = "UPDATE agents SET version = ?2, generation = generation + 1, "
                        "parent = ?3, frames_since_evolve = 0, matches_since_evolve = 0, "
                        "updated_at = ?4 WHERE id = ?1",
    [Q_EVO_INSERT] = "INSERT INTO evolutions (agent_id, donor_id, donor_version, ts, frames, "
                     "old_version, new_version, generation, old_hparams, new_hparams) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [Q_METRICS_INSERT] = "INSERT INTO metrics (ts, results, samples, evolutions) "
                         "VALUES (?1, ?2, ?3, ?4)",
    [Q_COUNT_RESULTS] = "SELECT COUNT(*) FROM assignments WHERE state = 'done'",
    [Q_COUNT_EVOS] = "SELECT COUNT(*) FROM evolutions",
    [Q_HIST_HP] = "SELECT seq, name, value FROM hparam_history WHERE agent_id = ?1 "
                  "ORDER BY seq, id",
    //  A scripted team has no seat rows: it shows as script:<name>.
    [Q_HIST_EVOS] = "SELECT frames FROM evolutions WHERE agent_id = ?1 ORDER BY id",
    [Q_LINEAGE] = "SELECT id, donor_id, donor_version, ts, frames, old_version, new_version, "
                  "generation, old_hparams, new_hparams FROM evolutions WHERE agent_id = ?1 "
                  "ORDER BY id DESC",
    [Q_DONOR_EVO] = "SELECT MAX(id) FROM evolutions WHERE agent_id = ?1 AND id < ?2",
    [Q_METRICS_RECENT] = "SELECT ts, results, samples, evolutions FROM "
                         "(SELECT rowid AS r, * FROM metrics ORDER BY rowid DESC LIMIT ?1) ORDER BY r",
    //  Frozen past snapshots (PFSP opponents). Freezing only flips the
    //  snapshot's flag (its bytes never change); retention skips frozen rows.
    [Q_FROZEN_SET] = "UPDATE snapshots SET frozen = ?3 WHERE agent_id = ?1 AND version = ?2",
    [Q_FROZEN_INSERT] = "INSERT INTO frozen (agent_id, version, rating, rating_at_freeze, matches, "
                        "created_at) VALUES (?1, ?2, ?3, ?3, 0, ?4)",
    [Q_FROZEN_COUNT_AGENT] = "SELECT COUNT(*) FROM frozen WHERE agent_id = ?1",
    //  Oldest one no leased assignment plays against.
    [Q_FROZEN_OLDEST] = "SELECT f.version, f.rating - f.rating_at_freeze FROM frozen f "
                        "WHERE f.agent_id = ?1 AND NOT EXISTS (SELECT 1 FROM assignment_seats s "
                        "JOIN assignments x ON x.id = s.assignment_id WHERE x.state = 'leased' "
                        "AND s.frozen = 1 AND s.agent_id = f.agent_id AND s.version = f.version) "
                        "ORDER BY f.version LIMIT 1",
    [Q_FROZEN_DELETE] = "DELETE FROM frozen WHERE agent_id = ?1 AND version = ?2",
    [Q_FROZEN_DRIFT_ADD] = "INSERT INTO meta (key, value) VALUES ('frozen_evicted_drift', "
                           "printf('%!.17g', ?1)) ON CONFLICT (key) DO UPDATE SET value = "
                           "printf('%!.17g', CAST(value AS REAL) + ?1)",
    [Q_FROZEN_GET] = "SELECT rating FROM frozen WHERE agent_id = ?1 AND version = ?2",
    [Q_FROZEN_RATED] = "UPDATE frozen SET rating = ?3, matches = matches + ?4 "
                       "WHERE agent_id = ?1 AND version = ?2",
    [Q_FROZEN_ALL] = "SELECT agent_id, version, rating FROM frozen ORDER BY agent_id, version",
    [Q_FROZEN_COUNT] = "SELECT COUNT(*) FROM frozen",
    [Q_RSEAT_INSERT] = "INSERT INTO result_seats (assignment_id, slot, agent_id, frozen_version, "
                       "team, opponent, episodes, wins, draws, losses, score_sum, rating_before, "
                       "rating_after, frames, ts, wall_ms, pop_frames) VALUES (?1, ?2, ?3, ?4, ?5, "
                       "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    [Q_RSEAT_DEL_ONE] = "DELETE FROM result_seats WHERE assignment_id = ?1",
    [Q_RSEAT_CUT] = "DELETE FROM result_seats WHERE assignment_id > ?1 AND assignment_id <= ?2 "
                    "AND assignment_id IN (SELECT id FROM assignments WHERE id > ?1 AND id <= ?2 "
                    "AND state != 'leased')",
    [Q_POP_FRAMES] = "SELECT COALESCE(SUM(frames), 0) FROM agents",
    [Q_ASG_DONE_RANGE] = "SELECT COUNT(*) FROM assignments WHERE id > ?1 AND id <= ?2 "
                         "AND state = 'done'",
    [Q_MSEAT_CUT_ASG] = "DELETE FROM match_seats WHERE match_id IN (SELECT id FROM matches "
                        "WHERE assignment_id > ?1 AND assignment_id <= ?2)",
    [Q_MATCH_CUT_ASG] = "DELETE FROM matches WHERE assignment_id > ?1 AND assignment_id <= ?2",
    //  Newest results first, below a cursor (an assignment id).
    [Q_RESULTS_RECENT] = "SELECT DISTINCT r.assignment_id, r.ts, a.script FROM result_seats r "
                         "LEFT JOIN assignments a ON a.id = r.assignment_id "
                         "WHERE r.assignment_id < ?2 ORDER BY r.assignment_id DESC LIMIT ?1",
    [Q_RSEATS_GET] = "SELECT slot, agent_id, frozen_version, team, opponent, episodes, wins, "
                     "draws, losses, score_sum, rating_before, rating_after, frames, wall_ms, "
                     "pop_frames FROM result_seats WHERE assignment_id = ?1 ORDER BY slot",
    //  Series (db.h). Level 0 always holds the newest point, so its
    //  largest seq is the series' largest.
    [Q_SER_ID] = "SELECT id FROM series WHERE agent_id = ?1 AND name = ?2",
    [Q_SER_NEW] = "INSERT INTO series (agent_id, name) VALUES (?1, ?2)",
    [Q_SER_SEQ] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM series_points "
                  "WHERE series_id = ?1 AND level = 0",
    [Q_SER_PUT] = "INSERT INTO series_points (series_id, level, seq, t0_ms, t_ms, frames, "
                  "samples, weight, mean, lo, hi, last, label) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [Q_SER_LEVEL_N] = "SELECT COUNT(*) FROM series_points WHERE series_id = ?1 AND level = ?2",
    [Q_SER_OLDEST2] = "SELECT seq, t0_ms, t_ms, frames, samples, weight, mean, lo, hi, last, "
                      "label FROM series_points WHERE series_id = ?1 AND level = ?2 "
                      "ORDER BY seq LIMIT 2",
    [Q_SER_DEL] = "DELETE FROM series_points WHERE series_id = ?1 AND level = ?2 AND seq <= ?3",
    [Q_SER_READ] = "SELECT t0_ms, t_ms, frames, level, samples, weight, mean, lo, hi, last, label "
                   "FROM series_points WHERE series_id = ?1 ORDER BY level DESC, seq "
                   "LIMIT ?3 OFFSET ?2",
    [Q_SER_COUNT] = "SELECT COUNT(*) FROM series_points WHERE series_id = ?1",
    [Q_SER_NAMES] = "SELECT name FROM series WHERE agent_id = ?1 ORDER BY name",
    //  Payoff (db.h). SET expressions see the row as it was, so the
    //  bucket that is full moves to prev and cur restarts from this delta.
    [Q_PAYOFF_ADD] = "INSERT INTO payoff (agent_id, version, opp_id, opp_version, episodes, wins, "
        "draws, losses, score, cur_episodes, cur_wins, cur_draws, cur_losses, cur_score, "
        "prev_episodes, prev_wins, prev_draws, prev_losses, prev_score, updated_at) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?5, ?6, ?7, ?8, ?9, 0, 0, 0, 0, 0, ?11) "
        "ON CONFLICT (agent_id, version, opp_id, opp_version) DO UPDATE SET "
        "episodes = episodes + ?5, wins = wins + ?6, draws = draws + ?7, losses = losses + ?8, "
        "score = score + ?9, "
        "prev_episodes = CASE WHEN cur_episodes >= ?10 THEN cur_episodes ELSE prev_episodes END, "
        "prev_wins = CASE WHEN cur_episodes >= ?10 THEN cur_wins ELSE prev_wins END, "
        "prev_draws = CASE WHEN cur_episodes >= ?10 THEN cur_draws ELSE prev_draws END, "
        "prev_losses = CASE WHEN cur_episodes >= ?10 THEN cur_losses ELSE prev_losses END, "
        "prev_score = CASE WHEN cur_episodes >= ?10 THEN cur_score ELSE prev_score END, "
        "cur_episodes = CASE WHEN cur_episodes >= ?10 THEN 0 ELSE cur_episodes END + ?5, "
        "cur_wins = CASE WHEN cur_episodes >= ?10 THEN 0 ELSE cur_wins END + ?6, "
        "cur_draws = CASE WHEN cur_episodes >= ?10 THEN 0 ELSE cur_draws END + ?7, "
        "cur_losses = CASE WHEN cur_episodes >= ?10 THEN 0 ELSE cur_losses END + ?8, "
        "cur_score = CASE WHEN cur_episodes >= ?10 THEN 0 ELSE cur_score END + ?9, "
        "updated_at = ?11",
    [Q_PAYOFF_ALL] = "SELECT agent_id, version, opp_id, opp_version, episodes, wins, draws, losses, "
        "score, cur_episodes + prev_episodes, cur_wins + prev_wins, cur_draws + prev_draws, "
        "cur_losses + prev_losses, cur_score + prev_score, updated_at FROM payoff "
        "ORDER BY agent_id, version, opp_id, opp_version",
    //  State store checks and falling back to an intact snapshot.
    [Q_CHK_RECORDS] = "SELECT seg, off, len, MIN(n_params), MIN(agent_id), MIN(version) "
                      "FROM snapshots WHERE seg >= 0 GROUP BY seg, off, len ORDER BY seg, off",
    [Q_CHK_AGENT_SNAPS] = "SELECT version, seg, off, len, n_params, frozen FROM snapshots "
                          "WHERE agent_id = ?1 ORDER BY version DESC",
    [Q_CHK_SNAP_DELETE] = "DELETE FROM snapshots WHERE agent_id = ?1 AND version = ?2",
    [Q_CHK_AGENT_VERSION] = "UPDATE agents SET version = ?2, updated_at = ?3 WHERE id = ?1",
};

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

static int s_series_append (db_t *self, int64_t agent, const char *name, int64_t t_ms,
                            uint64_t frames, double value, double weight, const char *label);
static int s_payoff_add (db_t *self, int64_t agent, uint64_t version, int64_t opp,
                         uint64_t opp_version, const db_wdl_t *d, int64_t now);

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
} s_result_t;
static int s_result_seat (db_t *self, const db_assignment_t *a, const proto_result_t *r,
                          const s_result_t *res, uint32_t i, int64_t pop_frames, int64_t now);

//  --------------------------------------------------------------------------
//  Statement helpers: every call resets the statement so the next use
//  starts clean, whatever happened.

static sqlite3_stmt *
s_q (db_t *self, query_t q)
{
    sqlite3_stmt *st = self->q [q];
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    return st;
}

static void
s_fail (db_t *self, const char *what)
{
    log_error ("db_error", "op=%s rc=%d msg=\"%s\"", what, sqlite3_errcode (self->handle),
               sqlite3_errmsg (self->handle));
}

//  Step a statement that returns no rows. 0 or -1.
static int
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
static int
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

//  In a batch, a failed statement may have made SQLite roll back the whole
//  transaction (I/O error, disk full): then the batch is lost, and a
//  SAVEPOINT must not silently open a fresh transaction.
static void
s_batch_check (db_t *self)
{
    if (self->batch && sqlite3_get_autocommit (self->handle))
        self->batch_failed = true;
}

static int
s_begin (db_t *self)
{
    if (self->batch) {
        s_batch_check (self);
        if (self->batch_failed)
            return -1;
        return s_exec (self, s_q (self, Q_SAVEPOINT), "savepoint");
    }
    return s_exec (self, s_q (self, Q_BEGIN), "begin");
}

static int
s_commit (db_t *self)
{
    if (self->batch) {
        //  Part of the batch: durable when the batch commits.
        if (s_exec (self, s_q (self, Q_RELEASE), "release")) {
            s_batch_check (self);
            return -1;
        }
        return 0;
    }
    //  States first: the rows about to commit name them.
    if (store_sync (self->store)) {
        s_exec (self, s_q (self, Q_ROLLBACK), "rollback");
        return -1;
    }
    if (s_exec (self, s_q (self, Q_COMMIT), "commit")) {
        //  A failed COMMIT may leave the transaction open; end it.
        if (!sqlite3_get_autocommit (self->handle))
            s_exec (self, s_q (self, Q_ROLLBACK), "rollback");
        return -1;
    }
    return 0;
}

static void
s_rollback (db_t *self)
{
    if (self->batch) {
        s_batch_check (self);
        if (self->batch_failed)
            return;
        //  Undo this change only; the batch's other changes stay.
        if (s_exec (self, s_q (self, Q_ROLLBACK_TO), "rollback_to")
        ||  s_exec (self, s_q (self, Q_RELEASE), "release"))
            s_batch_check (self);
        return;
    }
    if (!sqlite3_get_autocommit (self->handle))
        s_exec (self, s_q (self, Q_ROLLBACK), "rollback");
}

static int
s_pragma (db_t *self, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec (self->handle, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error ("db_error", "op=\"%s\" msg=\"%s\"", sql, msg ? msg : "?");
        sqlite3_free (msg);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------

//  Schema 3 -> 4: every snapshot's blobs into the store, its row into the
//  new table, inside db_new's upgrade transaction.
static int
s_migrate_states (db_t *self)
{
    sqlite3_stmt *get = NULL, *put = NULL;
    int ret = -1, rc;
    if (sqlite3_prepare_v2 (self->handle, "SELECT agent_id, version, params, adam_m, adam_v, "
                            "adam_t, frozen, created_at FROM snapshots_v3", -1, &get, NULL)
    ||  sqlite3_prepare_v2 (self->handle, "INSERT INTO snapshots (agent_id, version, seg, off, "
                            "len, n_params, adam_t, frozen, created_at) VALUES "
                            "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", -1, &put, NULL)) {
        s_fail (self, "migrate_prepare");
        goto cleanup;
    }
    uint64_t moved = 0;
    while ((rc = sqlite3_step (get)) == SQLITE_ROW) {
        int64_t agent = sqlite3_column_int64 (get, 0);
        uint64_t version = (uint64_t) sqlite3_column_int64 (get, 1);
        int bytes = sqlite3_column_bytes (get, 2);
        if (bytes <= 0 || bytes % 4 || sqlite3_column_bytes (get, 3) != bytes
        ||  sqlite3_column_bytes (get, 4) != bytes) {
            log_error ("db_migrate_corrupt", "agent=%" PRId64 " version=%" PRIu64
                       " why=\"params, adam_m and adam_v differ in size\"", agent, version);
            goto cleanup;
        }
        proto_state_t state = {
            .n_params = (uint32_t) bytes / 4,
            .params = (float *) sqlite3_column_blob (get, 2),
            .adam_m = (float *) sqlite3_column_blob (get, 3),
            .adam_v = (float *) sqlite3_column_blob (get, 4),
            .adam_t = (uint64_t) sqlite3_column_int64 (get, 5),
        };
        store_ref_t ref;
        if (store_append (self->store, agent, version, &state, &ref))
            goto cleanup;
        sqlite3_bind_int64 (put, 1, agent);
        sqlite3_bind_int64 (put, 2, (int64_t) version);
        sqlite3_bind_int64 (put, 3, ref.seg);
        sqlite3_bind_int64 (put, 4, (int64_t) ref.off);
        sqlite3_bind_int64 (put, 5, ref.len);
        sqlite3_bind_int64 (put, 6, state.n_params);
        sqlite3_bind_int64 (put, 7, (int64_t) state.adam_t);
        sqlite3_bind_int64 (put, 8, sqlite3_column_int64 (get, 6));
        sqlite3_bind_int64 (put, 9, sqlite3_column_int64 (get, 7));
        rc = sqlite3_step (put);
        sqlite3_reset (put);
        if (rc != SQLITE_DONE) {
            s_fail (self, "migrate_insert");
            goto cleanup;
        }
        moved++;
    }
    if (rc != SQLITE_DONE) {
        s_fail (self, "migrate_read");
        goto cleanup;
    }
    if (s_pragma (self, "DROP TABLE snapshots_v3"))
        goto cleanup;
    log_info ("db_migrated_states", "snapshots=%" PRIu64, moved);
    ret = 0;
cleanup:
    sqlite3_finalize (get);
    sqlite3_finalize (put);
    return ret;
}

static int
s_prepare_all (db_t *self)
{
    for (int i = 0; i < Q_COUNT; i++) {
        assert (s_sql [i]);
        if (self->q [i])
            continue;
        if (sqlite3_prepare_v3 (self->handle, s_sql [i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->q [i], NULL) != SQLITE_OK) {
            log_error ("db_prepare_failed", "sql=\"%s\" msg=\"%s\"", s_sql [i],
                       sqlite3_errmsg (self->handle));
            return -1;
        }
    }
    return 0;
}

//  Schema 4 -> 5, one result being carried over: its seats' aggregates.
typedef struct {
    int64_t assignment, ts, created_at;
    char script [PROTO_MAX_NAME];
    db_assignment_t a;                  // seats (slot order), from the rows
    s_result_t res;
    bool seen [PROTO_MAX_AGENTS];
    double ep_score [PROTO_MAX_AGENTS]; // the current episode's scores
    int64_t match;                      // the current episode
} s_carry_t;

//  Close the current episode: each seat's win, draw or loss by team score
//  (a scripted team has no rows: the games are zero-sum, so it scored
//  minus the agents' team).
static void
s_carry_episode (s_carry_t *c)
{
    if (!c->match)
        return;
    double team_sum [2] = { 0, 0 };
    bool other = false;
    for (uint32_t i = 0; i < c->a.n_seats; i++)
        if (c->seen [i]) {
            team_sum [c->res.team [i] != 0] += c->ep_score [i];
            other = other || c->res.team [i] != c->res.team [0];
        }
    for (uint32_t i = 0; i < c->a.n_seats; i++) {
        if (!c->seen [i])
            continue;
        double my = team_sum [c->res.team [i] != 0];
        double their = other ? team_sum [c->res.team [i] == 0] : -my;
        db_wdl_t *w = &c->res.wdl [i];
        w->episodes++;
        w->wins += my > their;
        w->draws += my == their;
        w->losses += my < their;
        w->score_sum += c->ep_score [i];
        c->seen [i] = false;
    }
    c->match = 0;
}

//  Write one carried-over result (as s_result_record does, without
//  counters: agents and frozen rows already hold them). Ratings before
//  come from the agent's previous result in the file, or, for its first,
//  its rating after that result's first episode.
static int
s_carry_flush (db_t *self, s_carry_t *c, double *last_rating, int64_t pop_frames)
{
    s_carry_episode (c);
    if (!c->assignment)
        return 0;
    c->a.id = (uint64_t) c->assignment;
    c->a.created_at = c->created_at;
    snprintf (c->a.script, sizeof c->a.script, "%s", c->script);
    for (uint32_t i = 0; i < c->a.n_seats; i++) {
        const db_seat_t *s = &c->a.seats [i];
        if (!s->frozen && s->agent_id >= 0 && s->agent_id < 4096
        &&  !isnan (last_rating [s->agent_id]))
            c->res.before [i] = last_rating [s->agent_id];
        if (!s->frozen && s->agent_id >= 0 && s->agent_id < 4096)
            last_rating [s->agent_id] = c->res.rating [i];
    }
    c->res.scripted = true;             // no counters move: they are already right
    for (uint32_t i = 0; i < c->a.n_seats; i++) {
        proto_result_t r = { 0 };
        if (s_result_seat (self, &c->a, &r, &c->res, i, pop_frames, c->ts))
            return -1;
    }
    memset (c, 0, sizeof *c);
    return 0;
}

//  Schema 4 -> 5: the per-episode rows a version 4 file kept (the
//  matches_keep window) become per-result aggregates, series points and
//  payoff counters, inside db_new's upgrade transaction. The episode rows
//  stay; result retention deletes them with their results. Population
//  frames were not recorded per result before: each carried point gets an
//  estimate, the current total scaled by its time since the run began.
static int
s_migrate_history (db_t *self)
{
    sqlite3_stmt *get = NULL;
    int ret = -1, rc;
    int64_t total = 0, t_first = 0, t_last = 0, n = 0;
    double *last_rating = malloc (4096 * sizeof *last_rating);
    s_carry_t *c = calloc (1, sizeof *c);
    if (!last_rating || !c)
        goto cleanup;
    for (int i = 0; i < 4096; i++)
        last_rating [i] = NAN;
    if (s_int (self, s_q (self, Q_POP_FRAMES), &total, "migrate_frames") < 0)
        goto cleanup;
    char created [32];
    if (sqlite3_prepare_v2 (self->handle, "SELECT MIN(ts), MAX(ts) FROM matches", -1, &get, NULL)
    ||  sqlite3_step (get) != SQLITE_ROW) {
        s_fail (self, "migrate_span");
        goto cleanup;
    }
    t_first = sqlite3_column_int64 (get, 0);
    t_last = sqlite3_column_int64 (get, 1);
    sqlite3_finalize (get);
    get = NULL;
    if (db_meta_get (self, "created_at", created, sizeof created) == 0)
        t_first = strtoll (created, NULL, 10);
    //  Rows in insertion order: episode by episode, seats in slot order.
    if (sqlite3_prepare_v2 (self->handle, "SELECT m.assignment_id, m.id, m.ts, s.slot, s.agent_id, "
                            "s.team, s.score, s.rating_after, s.frozen_version, a.script, "
                            "a.created_at FROM match_seats s JOIN matches m ON m.id = s.match_id "
                            "LEFT JOIN assignments a ON a.id = m.assignment_id ORDER BY s.rowid",
                            -1, &get, NULL)) {
        s_fail (self, "migrate_prepare");
        goto cleanup;
    }
    while ((rc = sqlite3_step (get)) == SQLITE_ROW) {
        int64_t asg = sqlite3_column_int64 (get, 0), match = sqlite3_column_int64 (get, 1);
        int64_t ts = sqlite3_column_int64 (get, 2);
        if (asg != c->assignment) {
            int64_t frames = t_last > t_first ? (int64_t) ((double) total * (double) (c->ts - t_first)
                                                           / (double) (t_last - t_first)) : total;
            if (s_carry_flush (self, c, last_rating, frames < 0 ? 0 : frames))
                goto cleanup;
            c->assignment = asg;
            c->created_at = sqlite3_column_int64 (get, 10);
            if (sqlite3_column_type (get, 9) == SQLITE_TEXT)
                snprintf (c->script, sizeof c->script, "%s", (const char *) sqlite3_column_text (get, 9));
            n++;
        }
        if (match != c->match) {
            s_carry_episode (c);
            c->match = match;
        }
        c->ts = ts;
        uint32_t slot = (uint32_t) sqlite3_column_int64 (get, 3);
        uint32_t i = 0;
        while (i < c->a.n_seats && c->a.seats [i].slot != slot)
            i++;
        if (i == c->a.n_seats) {
            if (i == PROTO_MAX_AGENTS)
                continue;           // more seats than any result can have: not ours
            c->a.n_seats++;
            db_seat_t *s = &c->a.seats [i];
            s->slot = slot;
            s->agent_id = sqlite3_column_int64 (get, 4);
            s->frozen = sqlite3_column_type (get, 8) != SQLITE_NULL;
            s->version = s->frozen ? (uint64_t) sqlite3_column_int64 (get, 8) : 0;
            c->res.team [i] = (int) sqlite3_column_int64 (get, 5);
            c->res.before [i] = sqlite3_column_double (get, 7);
            c->res.n_seats = c->a.n_seats;
        }
        c->seen [i] = true;
        c->ep_score [i] = sqlite3_column_double (get, 6);
        c->res.rating [i] = sqlite3_column_double (get, 7);
    }
    if (rc != SQLITE_DONE) {
        s_fail (self, "migrate_read");
        goto cleanup;
    }
    if (s_carry_flush (self, c, last_rating, total))
        goto cleanup;
    log_info ("db_migrated_history", "results=%" PRId64, n);
    ret = 0;
cleanup:
    sqlite3_finalize (get);
    free (last_rating);
    free (c);
    return ret;
}

//  assignments.worker_key (the CURVE key an assignment is bound to) came
//  within schema 4: added in place where absent, as IF NOT EXISTS does
//  for indexes.
static int
s_add_worker_key (db_t *self)
{
    sqlite3_stmt *st = NULL;
    int have = -1;
    if (sqlite3_prepare_v2 (self->handle, "SELECT COUNT(*) FROM pragma_table_info('assignments') "
                            "WHERE name = 'worker_key'", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        have = sqlite3_column_int (st, 0);
    sqlite3_finalize (st);
    if (have < 0) {
        s_fail (self, "worker_key_check");
        return -1;
    }
    return have ? 0 : s_pragma (self, "ALTER TABLE assignments ADD COLUMN worker_key TEXT "
                                      "NOT NULL DEFAULT ''");
}

db_t *
db_new (const char *path)
{
    assert (path);
    db_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->path = strdup (path);
    if (!self->path)
        goto fail;
    if (sqlite3_open_v2 (path, &self->handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                         | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error ("db_open_failed", "path=%s msg=\"%s\"", path,
                   self->handle ? sqlite3_errmsg (self->handle) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes (self->handle, 1);
    //  Training states live in the store beside the file (store.h).
    char *dir = NULL;
    if (asprintf (&dir, "%s-states", path) < 0)
        goto fail;
    self->store = store_new (dir, DB_SEGMENT_BYTES);
    self->compact_age_s = DB_COMPACT_AGE_S;
    self->payoff_window = DB_PAYOFF_WINDOW;
    self->results_keep = DB_RESULTS_KEEP;
    free (dir);
    if (!self->store)
        goto fail;
    //  journal_size_limit: a WAL that grew under a burst is truncated back
    //  when it restarts.
    if (s_pragma (self, "PRAGMA busy_timeout = 5000")
    ||  s_pragma (self, "PRAGMA journal_mode = WAL")
    ||  s_pragma (self, "PRAGMA journal_size_limit = 67108864")
    //  Each change in a batch is a SAVEPOINT, and SQLite keeps a page's
    //  pre-savepoint image in a statement journal: in memory, not as a
    //  temporary file write per page (measured, that was 10 of every 12
    //  page writes).
    ||  s_pragma (self, "PRAGMA temp_store = MEMORY")
    ||  s_pragma (self, "PRAGMA synchronous = FULL")
    ||  s_pragma (self, "PRAGMA foreign_keys = ON"))
        goto fail;

    //  Schema: versioned by user_version, created if absent.
    sqlite3_stmt *st = NULL;
    int64_t version = -1;
    if (sqlite3_prepare_v2 (self->handle, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        version = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    if (version < 0) {
        s_fail (self, "user_version");
        goto fail;
    }
    if (version > DB_SCHEMA_VERSION) {
        log_error ("db_schema_too_new", "path=%s version=%" PRId64 " supported=%d",
                   path, version, DB_SCHEMA_VERSION);
        goto fail;
    }
    //  Version 1 lacked only the matches_assignment index (needed to delete
    //  old assignments with foreign keys on): the IF NOT EXISTS schema
    //  script upgrades it in place.
    //  Version 3 lacked the assignments' script columns, and kept
    //  training states as blobs in the snapshots table:
    //  they move into the store (s_migrate_states); the freed pages stay
    //  in the file until a VACUUM (docs/schema.md).
    //  Version 4 kept history only as per-episode rows: they become
    //  per-result aggregates, series points and payoff counters
    //  (s_migrate_history), with the statements prepared for it.
    //  Version 2 lacked the frozen table and the frozen seat columns
    //  (PFSP over frozen snapshots): the columns are added in place (an
    //  existing table ignores CREATE TABLE IF NOT EXISTS).
    if (version < DB_SCHEMA_VERSION) {
        char sql [64];
        snprintf (sql, sizeof sql, "PRAGMA user_version = %d", DB_SCHEMA_VERSION);
        if (s_pragma (self, "BEGIN IMMEDIATE"))
            goto fail;
        bool upgrade = version >= 1 && version < 3;
        bool move_states = version >= 1 && version < 4;
        bool carry_history = version >= 1 && version < 5;
        if ((move_states && (s_pragma (self, "ALTER TABLE snapshots RENAME TO snapshots_v3")
                         ||  s_pragma (self, "ALTER TABLE assignments ADD COLUMN script TEXT")
                         ||  s_pragma (self, "ALTER TABLE assignments ADD COLUMN script_seats "
                                             "INTEGER NOT NULL DEFAULT 0")))
        ||  (upgrade && (s_pragma (self, "ALTER TABLE assignment_seats ADD COLUMN "
                                         "frozen INTEGER NOT NULL DEFAULT 0")
                     ||  s_pragma (self, "ALTER TABLE match_seats ADD COLUMN "
                                         "frozen_version INTEGER")))
        ||  s_pragma (self, s_schema)
        ||  s_add_worker_key (self)
        ||  (move_states && s_migrate_states (self))
        ||  (carry_history && (s_prepare_all (self) || s_migrate_history (self)))
        ||  s_pragma (self, sql)
        ||  store_sync (self->store)) {
            s_pragma (self, "ROLLBACK");
            goto fail;
        }
        if (s_pragma (self, "COMMIT"))
            goto fail;
    }
    else
    if (s_pragma (self, s_schema) || s_add_worker_key (self))
        goto fail;              // an index or column added within a version: added here
    if (s_prepare_all (self))
        goto fail;
    if (s_int (self, s_q (self, Q_MATCH_MIN), &self->match_cut, "match_min")
    ||  s_int (self, s_q (self, Q_ASG_MIN), &self->asg_cut, "assignment_min"))
        goto fail;
    return self;
fail:
    db_destroy (&self);
    return NULL;
}

db_t *
db_new_reader (const char *path)
{
    assert (path);
    db_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->path = strdup (path);
    self->payoff_window = DB_PAYOFF_WINDOW;
    if (!self->path)
        goto fail;
    //  Read-only, no state store: WAL lets this connection read committed
    //  data while pbtd's own connection writes.
    if (sqlite3_open_v2 (path, &self->handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL)
        != SQLITE_OK) {
        log_error ("db_open_failed", "path=%s reader=1 msg=\"%s\"", path,
                   self->handle ? sqlite3_errmsg (self->handle) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes (self->handle, 1);
    if (s_pragma (self, "PRAGMA busy_timeout = 5000")
    ||  s_pragma (self, "PRAGMA temp_store = MEMORY")
    ||  s_prepare_all (self))
        goto fail;
    return self;
fail:
    db_destroy (&self);
    return NULL;
}

int
db_read_begin (db_t *self)
{
    return s_pragma (self, "BEGIN");
}

void
db_read_end (db_t *self)
{
    if (!sqlite3_get_autocommit (self->handle))
        s_pragma (self, "COMMIT");
}

void
db_destroy (db_t **self_p)
{
    assert (self_p);
    db_t *self = *self_p;
    if (!self)
        return;
    if (self->ckpt_running) {
        pthread_mutex_lock (&self->ckpt_mutex);
        self->ckpt_stop = true;
        pthread_cond_signal (&self->ckpt_cond);
        pthread_mutex_unlock (&self->ckpt_mutex);
        pthread_join (self->ckpt_thread, NULL);
        pthread_mutex_destroy (&self->ckpt_mutex);
        pthread_cond_destroy (&self->ckpt_cond);
    }
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize (self->q [i]);
    if (self->handle && sqlite3_close (self->handle) != SQLITE_OK)
        log_error ("db_close_failed", "msg=\"%s\"", sqlite3_errmsg (self->handle));
    store_destroy (&self->store);
    free (self->path);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Group commit

int
db_batch_begin (db_t *self)
{
    assert (!self->batch);
    if (s_exec (self, s_q (self, Q_BEGIN), "batch_begin"))
        return -1;
    self->batch = true;
    self->batch_failed = false;
    return 0;
}

int
db_batch_commit (db_t *self)
{
    assert (self->batch);
    s_batch_check (self);
    self->batch = false;
    if (self->batch_failed) {
        log_error ("db_batch_lost", "why=\"SQLite rolled the transaction back\"");
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

//  Off-reactor group commit (committer.h). The batch's COMMIT runs at
//  synchronous=NORMAL (the WAL written, not fsynced); every other
//  transaction keeps FULL. SQLite refuses to change the level inside a
//  transaction, hence here, around the batch.
int
db_batch_begin_nosync (db_t *self)
{
    if (s_pragma (self, "PRAGMA synchronous = NORMAL"))
        return -1;
    if (db_batch_begin (self)) {
        s_pragma (self, "PRAGMA synchronous = FULL");
        return -1;
    }
    return 0;
}

int
db_batch_sync_begin (db_t *self, int *fd)
{
    assert (self->batch);
    return store_sync_begin (self->store, fd);
}

void
db_batch_sync_end (db_t *self, bool ok)
{
    store_sync_end (self->store, ok);
}

int
db_batch_commit_nosync (db_t *self)
{
    assert (self->batch);
    s_batch_check (self);
    self->batch = false;
    int rc = 0;
    if (self->batch_failed) {
        log_error ("db_batch_lost", "why=\"SQLite rolled the transaction back\"");
        s_rollback (self);
        rc = -1;
    }
    else
    if (s_exec (self, s_q (self, Q_COMMIT), "commit")) {
        if (!sqlite3_get_autocommit (self->handle))
            s_exec (self, s_q (self, Q_ROLLBACK), "rollback");
        rc = -1;
    }
    //  Logged if it fails; the next batch sets NORMAL again anyway, and a
    //  connection left at NORMAL only delays other commits' durability.
    s_pragma (self, "PRAGMA synchronous = FULL");
    return rc;
}

void
db_batch_rollback (db_t *self)
{
    assert (self->batch);
    self->batch = false;
    s_rollback (self);
    s_pragma (self, "PRAGMA synchronous = FULL");
}

bool
db_in_batch (db_t *self)
{
    return self->batch;
}

void
db_set_retention (db_t *self, uint32_t snapshots_keep, uint64_t matches_keep)
{
    self->snapshots_keep = snapshots_keep;
    self->matches_keep = matches_keep;
}

void
db_set_episode_rows (db_t *self, bool on)
{
    self->episode_rows = on;
}

void
db_set_results_keep (db_t *self, uint64_t results_keep)
{
    self->results_keep = results_keep;
}

void
db_set_lineage_keep (db_t *self, bool keep)
{
    self->lineage_keep = keep;
}

void
db_set_frozen_keep (db_t *self, uint32_t frozen_keep)
{
    self->frozen_keep = frozen_keep;
}

//  --------------------------------------------------------------------------
//  Checkpointer: a thread with its own connection copies committed WAL
//  frames into the database file (PASSIVE: it never blocks the writer),
//  so the reactor never pays for a checkpoint inline. SQLite restarts the
//  WAL from its beginning once a checkpoint has caught up; if the writer
//  outruns the checkpointer and the WAL passes wal_max, one TRUNCATE
//  checkpoint waits for a gap between the writer's transactions.

static int64_t
s_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (int64_t) st.st_size : 0;
}

static void *
s_checkpointer (void *arg)
{
    db_t *self = arg;
    sqlite3 *h = NULL;
    char wal [4096];
    snprintf (wal, sizeof wal, "%s-wal", self->path);
    if (sqlite3_open_v2 (self->path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)
        != SQLITE_OK) {
        log_error ("checkpointer_open_failed", "path=%s", self->path);
        sqlite3_close (h);
        return NULL;
    }
    sqlite3_busy_timeout (h, 2000);
    //  A connection opens the WAL on its first read; until then a
    //  checkpoint on it is a no-op.
    if (sqlite3_exec (h, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK)
        log_warn ("checkpointer_read_failed", "msg=\"%s\"", sqlite3_errmsg (h));
    pthread_mutex_lock (&self->ckpt_mutex);
    bool behind = false;
    while (!self->ckpt_stop) {
        //  SQLite restarts the WAL only when a write transaction begins
        //  with every frame backfilled; a pass that ended behind the
        //  writer goes again at once to catch it between two commits.
        if (behind) {
            pthread_mutex_unlock (&self->ckpt_mutex);
            sched_yield ();
            pthread_mutex_lock (&self->ckpt_mutex);
            if (self->ckpt_stop)
                break;
            goto pass;
        }
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long) (self->ckpt_ms % 1000) * 1000000L;
        ts.tv_sec += self->ckpt_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait (&self->ckpt_cond, &self->ckpt_mutex, &ts);
        if (self->ckpt_stop)
            break;
pass:
        pthread_mutex_unlock (&self->ckpt_mutex);
        int mode = s_file_size (wal) > self->wal_max ? SQLITE_CHECKPOINT_TRUNCATE
                                                     : SQLITE_CHECKPOINT_PASSIVE;
        int log_frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2 (h, NULL, mode, &log_frames, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn ("checkpoint_failed", "rc=%d msg=\"%s\"", rc, sqlite3_errmsg (h));
        else
        if (mode == SQLITE_CHECKPOINT_TRUNCATE)
            log_info ("checkpoint_truncate", "rc=%d frames=%d", rc, log_frames);
        behind = rc == SQLITE_OK && done >= 0 && done < log_frames;
        pthread_mutex_lock (&self->ckpt_mutex);
        self->checkpoints++;
        self->checkpoint_frames += done > 0 ? (uint64_t) done : 0;
    }
    pthread_mutex_unlock (&self->ckpt_mutex);
    //  Last one on the way out: a clean stop leaves a small WAL.
    sqlite3_wal_checkpoint_v2 (h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    sqlite3_close (h);
    return NULL;
}

int
db_wal_catch_up (db_t *self, int64_t min_bytes)
{
    assert (!self->batch);
    char wal [4096];
    snprintf (wal, sizeof wal, "%s-wal", self->path);
    if (s_file_size (wal) < min_bytes)
        return 0;
    //  The writer is always between two of its own transactions here, so
    //  once this pass has copied the few frames the checkpointer thread
    //  has not, the next BEGIN starts the WAL over from its beginning.
    int log_frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2 (self->handle, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                        &log_frames, &done);
    if (rc == SQLITE_BUSY)
        return 0;               // the thread is mid-pass: next time
    if (rc != SQLITE_OK) {
        s_fail (self, "wal_catch_up");
        return -1;
    }
    return done >= 0 && done == log_frames ? 1 : 0;
}

int
db_checkpointer_start (db_t *self, uint32_t interval_ms, uint64_t wal_max_bytes)
{
    assert (!self->ckpt_running);
    assert (interval_ms > 0);
    self->ckpt_ms = interval_ms;
    self->wal_max = (int64_t) wal_max_bytes;
    self->ckpt_stop = false;
    //  The thread does every checkpoint from now on.
    if (s_pragma (self, "PRAGMA wal_autocheckpoint = 0"))
        return -1;
    if (pthread_mutex_init (&self->ckpt_mutex, NULL))
        return -1;
    if (pthread_cond_init (&self->ckpt_cond, NULL)) {
        pthread_mutex_destroy (&self->ckpt_mutex);
        return -1;
    }
    if (pthread_create (&self->ckpt_thread, NULL, s_checkpointer, self)) {
        pthread_cond_destroy (&self->ckpt_cond);
        pthread_mutex_destroy (&self->ckpt_mutex);
        s_pragma (self, "PRAGMA wal_autocheckpoint = 1000");
        return -1;
    }
    self->ckpt_running = true;
    return 0;
}

uint64_t
db_checkpoints (db_t *self)
{
    if (!self->ckpt_running)
        return 0;
    pthread_mutex_lock (&self->ckpt_mutex);
    uint64_t n = self->checkpoints;
    pthread_mutex_unlock (&self->ckpt_mutex);
    return n;
}

int
db_integrity_check (db_t *self)
{
    sqlite3_stmt *st = NULL;
    int ok = 0;
    if (sqlite3_prepare_v2 (self->handle, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW) {
        const char *r = (const char *) sqlite3_column_text (st, 0);
        ok = r && strcmp (r, "ok") == 0;
        if (!ok)
            log_error ("db_integrity", "result=\"%s\"", r ? r : "?");
    }
    sqlite3_finalize (st);
    return ok ? 0 : -1;
}

int
db_meta_get (db_t *self, const char *key, char *out, size_t out_len)
{
    sqlite3_stmt *st = s_q (self, Q_META_GET);
    sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step (st);
    int ret;
    if (rc == SQLITE_ROW) {
        snprintf (out, out_len, "%s", (const char *) sqlite3_column_text (st, 0));
        ret = 0;
    }
    else
    if (rc == SQLITE_DONE)
        ret = 1;
    else {
        s_fail (self, "meta_get");
        ret = -1;
    }
    sqlite3_reset (st);
    return ret;
}

static int
s_meta_set (db_t *self, const char *key, const char *value)
{
    sqlite3_stmt *st = s_q (self, Q_META_SET);
    sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 2, value, -1, SQLITE_STATIC);
    return s_exec (self, st, "meta_set");
}

int
db_meta_set (db_t *self, const char *key, const char *value)
{
    if (s_begin (self))
        return -1;
    if (s_meta_set (self, key, value)) {
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

int
db_agent_count (db_t *self)
{
    int64_t n = 0;
    return s_int (self, s_q (self, Q_AGENT_COUNT), &n, "agent_count") == 0 ? (int) n : -1;
}

static int
s_hparams_write (db_t *self, int64_t id, const proto_kvs_t *hp, const char *reason,
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

static int
s_snapshot_insert (db_t *self, int64_t id, uint64_t version, const proto_state_t *state,
                   int64_t now)
{
    //  The bytes go to the store first; the row naming them commits only
    //  after store_sync (s_commit), so a committed row never names bytes
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
#   error "db.c stores float32 vectors in host order and expects little-endian"
#endif

int
db_create_population (db_t *self, int n, const db_agent_t *agents,
                      const proto_state_t *states, const char *const *meta_kv, int64_t now)
{
    if (s_begin (self))
        return -1;
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = s_q (self, Q_AGENT_INSERT);
        sqlite3_bind_int64 (st, 1, agents [i].id);
        sqlite3_bind_int64 (st, 2, 1);
        sqlite3_bind_double (st, 3, agents [i].rating);
        sqlite3_bind_int64 (st, 4, now);
        if (s_exec (self, st, "agent_insert")
        ||  s_snapshot_insert (self, agents [i].id, 1, &states [i], now)
        ||  s_hparams_write (self, agents [i].id, &agents [i].hparams, "init", 0, now))
            goto fail;
    }
    for (int i = 0; meta_kv && meta_kv [i]; i += 2)
        if (s_meta_set (self, meta_kv [i], meta_kv [i + 1]))
            goto fail;
    return s_commit (self);
fail:
    s_rollback (self);
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
    if (s_begin (self))
        return -1;
    int64_t id = 0;
    if (s_int (self, s_q (self, Q_ASG_NEXTID), &id, "assignment_nextid"))
        goto fail;
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
    if (s_commit (self))
        return -1;
    a->id = (uint64_t) id;
    a->seed = seed;
    snprintf (a->state, sizeof a->state, "leased");
    return 0;
fail:
    s_rollback (self);
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
    if (s_begin (self))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_ASG_RENEW);
    sqlite3_bind_int64 (st, 1, (int64_t) id);
    sqlite3_bind_int64 (st, 2, deadline_ms);
    if (s_exec (self, st, "assignment_renew")) {
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

static int
s_set_state (db_t *self, uint64_t id, const char *state)
{
    sqlite3_stmt *st = s_q (self, Q_ASG_SETSTATE);
    sqlite3_bind_int64 (st, 1, (int64_t) id);
    sqlite3_bind_text (st, 2, state, -1, SQLITE_STATIC);
    return s_exec (self, st, "assignment_state");
}

int
db_assignment_expire (db_t *self, uint64_t id)
{
    if (s_begin (self))
        return -1;
    if (s_set_state (self, id, "expired")) {
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

//  --------------------------------------------------------------------------
//  Results

//  Drop agent_id's snapshots older than its snapshots_keep newest, given
//  its new current version: one or two rows per change, not a sweep.
static int
s_snapshot_ring (db_t *self, int64_t agent_id, uint64_t current)
{
    if (self->snapshots_keep == 0 || current <= self->snapshots_keep)
        return 0;
    sqlite3_stmt *st = s_q (self, Q_SNAP_RING);
    sqlite3_bind_int64 (st, 1, agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) (current - self->snapshots_keep));
    sqlite3_bind_int (st, 3, self->lineage_keep);
    return s_exec (self, st, "snapshot_ring");
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
static int
s_match_retention (db_t *self, int64_t last_id, uint32_t n)
{
    if (self->matches_keep == 0 || last_id <= (int64_t) self->matches_keep)
        return 0;
    int64_t cut = last_id - (int64_t) self->matches_keep;
    int64_t lo = self->match_cut, hi = lo + 2 * (int64_t) n + 1024;
    int64_t done = 0, v;
    int rc;
    sqlite3_stmt *st;
    if (hi > cut)
        hi = cut;
    if (hi > lo) {
        //  Never split an assignment: if match hi+1 shares hi's assignment,
        //  stop before that assignment (or, for a single huge one, take it
        //  whole if it ends inside the cut).
        st = s_q (self, Q_MATCH_ASG_SPAN);
        sqlite3_bind_int64 (st, 1, hi + 1);
        int64_t first = 0, final = 0;
        rc = sqlite3_step (st);
        if (rc == SQLITE_ROW && sqlite3_column_type (st, 0) != SQLITE_NULL) {
            first = sqlite3_column_int64 (st, 0);
            final = sqlite3_column_int64 (st, 1);
        }
        sqlite3_reset (st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            s_fail (self, "match_assignment_span");
            return -1;
        }
        if (first && first <= hi)
            hi = first - 1 > lo ? first - 1 : final <= cut ? final : lo;
    }
    if (hi > lo) {
        //  The assignments those matches belong to (bounded by hi - lo).
        int64_t *ids = malloc ((size_t) (hi - lo) * sizeof *ids);
        size_t n_ids = 0;
        if (!ids)
            return -1;
        st = s_q (self, Q_MATCH_ASGS);
        sqlite3_bind_int64 (st, 1, lo);
        sqlite3_bind_int64 (st, 2, hi);
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
        for (size_t k = 0; rc == 0 && k < n_ids; k++) {
            st = s_q (self, Q_ASG_DONE_ONE);
            sqlite3_bind_int64 (st, 1, ids [k]);
            v = 0;
            if (s_int (self, st, &v, "assignment_done") < 0) {
                rc = -1;
                break;
            }
            done += v;
            st = s_q (self, Q_RSEAT_DEL_ONE);
            sqlite3_bind_int64 (st, 1, ids [k]);
            rc = s_exec (self, st, "result_seats_delete");
            if (rc == 0) {
                st = s_q (self, Q_ASEAT_DEL_ONE);
                sqlite3_bind_int64 (st, 1, ids [k]);
                rc = s_exec (self, st, "assignment_seats_delete");
            }
            if (rc == 0) {
                st = s_q (self, Q_ASG_DEL_ONE);
                sqlite3_bind_int64 (st, 1, ids [k]);
                rc = s_exec (self, st, "assignment_delete");
            }
        }
        free (ids);
        if (rc)
            return -1;
        //  If the batch is lost after all, the rows below the cursor stay
        //  until a restart recomputes it from MIN(id): a few rows kept too
        //  long, never one deleted too early.
        self->match_cut = hi;
    }
    //  Assignments without matches, older than every kept match's.
    int64_t oldest = 0;
    rc = s_int (self, s_q (self, Q_MATCH_OLDEST_ASG), &oldest, "match_oldest");
    if (rc < 0)
        return -1;
    int64_t top = self->asg_cut + 64;
    if (rc == 0 && top > oldest - 1)
        top = oldest - 1;
    if (rc == 0 && top > self->asg_cut) {
        st = s_q (self, Q_ASG_CUT_DONE);
        sqlite3_bind_int64 (st, 1, self->asg_cut);
        sqlite3_bind_int64 (st, 2, top);
        v = 0;
        if (s_int (self, st, &v, "assignments_cut_done"))
            return -1;
        done += v;
        st = s_q (self, Q_RSEAT_CUT);
        sqlite3_bind_int64 (st, 1, self->asg_cut);
        sqlite3_bind_int64 (st, 2, top);
        if (s_exec (self, st, "result_seats_cut"))
            return -1;
        st = s_q (self, Q_ASEAT_CUT);
        sqlite3_bind_int64 (st, 1, self->asg_cut);
        sqlite3_bind_int64 (st, 2, top);
        if (s_exec (self, st, "assignment_seats_cut"))
            return -1;
        st = s_q (self, Q_ASG_CUT);
        sqlite3_bind_int64 (st, 1, self->asg_cut);
        sqlite3_bind_int64 (st, 2, top);
        if (s_exec (self, st, "assignments_cut"))
            return -1;
        self->asg_cut = top;
    }
    //  Results stay countable after their rows are gone.
    if (done > 0) {
        char text [32];
        snprintf (text, sizeof text, "%" PRId64, done);
        st = s_q (self, Q_META_ADD);
        sqlite3_bind_text (st, 1, "results_pruned", -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 2, text, -1, SQLITE_TRANSIENT);
        if (s_exec (self, st, "results_pruned"))
            return -1;
    }
    return 0;
}

//  Result retention without episode rows: the newest results_keep
//  assignments keep their rows (result_seats, seats, and any episode rows
//  an older pbtd left); older ones go, at most 64 assignment ids per
//  result, so the work per result stays bounded while a backlog (after
//  lowering results_keep, or an upgraded file) is worked off. Leased ones
//  stay. Counters and series are untouched; 'done' ones deleted are added
//  to meta results_pruned.
static int
s_result_retention (db_t *self, int64_t asg_id)
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
    if (done > 0) {
        char text [32];
        snprintf (text, sizeof text, "%" PRId64, done);
        st = s_q (self, Q_META_ADD);
        sqlite3_bind_text (st, 1, "results_pruned", -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 2, text, -1, SQLITE_TRANSIENT);
        if (s_exec (self, st, "results_pruned"))
            return -1;
    }
    return 0;
}


//  Teams, ratings before, and each seat's wins/draws/losses and score sum.
//  -1 if the seats do not form two teams.
static int
s_result_prepare (const db_assignment_t *a, const proto_result_t *r, int n_teams,
                  const db_agent_t *agents, s_result_t *res)
{
    memset (res, 0, sizeof *res);
    res->n_seats = a->n_seats;
    res->scripted = a->script [0] != 0;
    int per_team = (n_teams > 1 && a->n_seats > 2) ? (int) a->n_seats / n_teams : 1;
    for (uint32_t i = 0; i < a->n_seats; i++) {
        res->team [i] = (int) a->seats [i].slot / per_team;
        res->before [i] = res->rating [i] = agents [i].rating;
    }
    for (uint32_t i = 0; i < a->n_seats; i++)
        if (res->team [i] == 0)
            res->idx [res->n_a++] = (int) i;
    for (uint32_t i = 0; i < a->n_seats; i++)
        if (res->team [i] != 0)
            res->idx [res->n_a + res->n_b++] = (int) i;
    if (res->n_a == 0 || res->n_b == 0)
        return -1;
    for (uint32_t ep = 0; ep < r->n_episodes; ep++) {
        const float *sc = &r->scores [(size_t) ep * a->n_seats];
        double total = 0, mine [PROTO_MAX_AGENTS] = { 0 };
        for (uint32_t i = 0; i < a->n_seats; i++) {
            total += sc [i];
            mine [res->team [i] != 0] += sc [i];
        }
        for (uint32_t i = 0; i < a->n_seats; i++) {
            double my = mine [res->team [i] != 0], their = total - my;
            db_wdl_t *w = &res->wdl [i];
            w->episodes++;
            w->wins += my > their;
            w->draws += my == their;
            w->losses += my < their;
            w->score_sum += sc [i];
        }
    }
    return 0;
}

//  The rating rule for one result is pbt_rate_result's (rating = result:
//  one update from the result's aggregate; rating = episode: the seed's
//  update per episode), from res->before into res->rating. ep_ratings
//  (n_episodes x n_seats, may be NULL: per-episode rows are opt-in) gets
//  every seat's rating after each episode under the per-episode rule, and
//  the ratings after the result under the result rule.
static void
s_result_ratings (const pbt_config_t *pbt, s_result_t *res, const proto_result_t *r,
                  double *ep_ratings)
{
    int n = (int) res->n_seats;
    if (ep_ratings && pbt->rating == PBT_RATING_EPISODE)
        for (uint32_t ep = 0; ep < r->n_episodes; ep++) {
            pbt_rate_result (pbt, res->rating, res->team, n, &r->scores [(size_t) ep * n], 1);
            memcpy (&ep_ratings [(size_t) ep * n], res->rating, (size_t) n * sizeof *res->rating);
        }
    else {
        pbt_rate_result (pbt, res->rating, res->team, n, r->scores, r->n_episodes);
        for (uint32_t ep = 0; ep_ratings && ep < r->n_episodes; ep++)
            memcpy (&ep_ratings [(size_t) ep * n], res->rating, (size_t) n * sizeof *res->rating);
    }
}

//  "agt_3", "agt_3@v7" (a frozen snapshot) or "script:random", joined by
//  '+' for every seat on the other team(s) of seat i.
static void
s_opponent_label (const db_assignment_t *a, const s_result_t *res, uint32_t i,
                  char *out, size_t len)
{
    size_t n = 0;
    bool script = false;
    out [0] = 0;
    for (uint32_t j = 0; j < a->n_seats && n < len; j++) {
        const db_seat_t *s = &a->seats [j];
        if (res->team [j] == res->team [i] || (s->agent_id < 0 && script))
            continue;
        if (s->agent_id < 0) {
            script = true;
            n += (size_t) snprintf (out + n, len - n, "%sscript:%s", n ? "+" : "", a->script);
        }
        else
        if (s->frozen)
            n += (size_t) snprintf (out + n, len - n, "%sagt_%" PRId64 "@v%" PRIu64, n ? "+" : "",
                                    s->agent_id, s->version);
        else
            n += (size_t) snprintf (out + n, len - n, "%sagt_%" PRId64, n ? "+" : "", s->agent_id);
    }
    //  A scripted team whose seats are not listed (carried over from
    //  episode rows, which never had them).
    if (!n && a->script [0])
        snprintf (out, len, "script:%s", a->script);
}

//  One seat's counters and its result_seats row, series points and payoff
//  cells.
static int
s_result_seat (db_t *self, const db_assignment_t *a, const proto_result_t *r,
               const s_result_t *res, uint32_t i, int64_t pop_frames, int64_t now)
{
    const db_seat_t *s = &a->seats [i];
    const db_wdl_t *w = &res->wdl [i];
    sqlite3_stmt *st;
    if (!res->scripted && w->episodes) {
        st = s_q (self, s->frozen ? Q_FROZEN_RATED : Q_AGENT_RATED);
        sqlite3_bind_int64 (st, 1, s->agent_id);
        if (s->frozen) {
            sqlite3_bind_int64 (st, 2, (int64_t) s->version);
            sqlite3_bind_double (st, 3, res->rating [i]);
        }
        else {
            sqlite3_bind_double (st, 2, res->rating [i]);
            sqlite3_bind_int64 (st, 3, now);
        }
        sqlite3_bind_int64 (st, 4, (int64_t) w->episodes);
        if (s_exec (self, st, "agent_rated"))
            return -1;
    }
    char opp [256];
    s_opponent_label (a, res, i, opp, sizeof opp);
    st = s_q (self, Q_RSEAT_INSERT);
    sqlite3_bind_int64 (st, 1, (int64_t) a->id);
    sqlite3_bind_int64 (st, 2, s->slot);
    sqlite3_bind_int64 (st, 3, s->agent_id);
    if (s->frozen)
        sqlite3_bind_int64 (st, 4, (int64_t) s->version);
    else
        sqlite3_bind_null (st, 4);
    sqlite3_bind_int (st, 5, res->team [i]);
    sqlite3_bind_text (st, 6, opp, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (st, 7, (int64_t) w->episodes);
    sqlite3_bind_int64 (st, 8, (int64_t) w->wins);
    sqlite3_bind_int64 (st, 9, (int64_t) w->draws);
    sqlite3_bind_int64 (st, 10, (int64_t) w->losses);
    sqlite3_bind_double (st, 11, w->score_sum);
    sqlite3_bind_double (st, 12, res->before [i]);
    sqlite3_bind_double (st, 13, res->rating [i]);
    sqlite3_bind_int64 (st, 14, s->frozen ? 0 : (int64_t) r->seats [i].frames);
    sqlite3_bind_int64 (st, 15, now);
    sqlite3_bind_int64 (st, 16, now - a->created_at);
    sqlite3_bind_int64 (st, 17, pop_frames);
    if (s_exec (self, st, "result_seat_insert"))
        return -1;
    if (w->episodes && !s->frozen) {
        double n = (double) w->episodes;
        if (s_series_append (self, s->agent_id, "score", now, (uint64_t) pop_frames,
                             w->score_sum / n, n, opp)
        ||  s_series_append (self, s->agent_id, "rating", now, (uint64_t) pop_frames,
                             res->rating [i], n, opp))
            return -1;
    }
    for (uint32_t j = 0; w->episodes && j < a->n_seats; j++) {
        const db_seat_t *o = &a->seats [j];
        if (res->team [j] == res->team [i] || o->agent_id < 0)
            continue;
        if (s_payoff_add (self, s->agent_id, s->frozen ? s->version : 0, o->agent_id,
                          o->frozen ? o->version : 0, w, now))
            return -1;
    }
    return 0;
}

//  Everything a valid result records after training: per seat the rating,
//  counters, result_seats row, series and payoff; with episode rows on,
//  one matches row per episode and one match_seats row per seat.
static int
s_result_record (db_t *self, const db_assignment_t *a, const proto_result_t *r,
                 s_result_t *res, const double *ep_ratings, int64_t now)
{
    int64_t pop_frames = 0;
    if (s_int (self, s_q (self, Q_POP_FRAMES), &pop_frames, "population_frames"))
        return -1;
    for (uint32_t i = 0; i < a->n_seats; i++)
        if (a->seats [i].agent_id >= 0 && s_result_seat (self, a, r, res, i, pop_frames, now))
            return -1;
    for (uint32_t ep = 0; ep_ratings && ep < r->n_episodes; ep++) {
        const float *sc = &r->scores [(size_t) ep * a->n_seats];
        sqlite3_stmt *st = s_q (self, Q_MATCH_INSERT);
        sqlite3_bind_int64 (st, 1, (int64_t) a->id);
        sqlite3_bind_int64 (st, 2, ep);
        sqlite3_bind_int64 (st, 3, now);
        if (s_exec (self, st, "match_insert"))
            return -1;
        res->last_match = sqlite3_last_insert_rowid (self->handle);
        for (uint32_t i = 0; i < a->n_seats; i++) {
            if (a->seats [i].agent_id < 0)
                continue;       // the script is in the assignment row
            st = s_q (self, Q_MSEAT_INSERT);
            sqlite3_bind_int64 (st, 1, res->last_match);
            sqlite3_bind_int64 (st, 2, a->seats [i].slot);
            sqlite3_bind_int64 (st, 3, a->seats [i].agent_id);
            sqlite3_bind_int (st, 4, res->team [i]);
            sqlite3_bind_double (st, 5, sc [i]);
            sqlite3_bind_double (st, 6, ep_ratings [(size_t) ep * a->n_seats + i]);
            if (a->seats [i].frozen)
                sqlite3_bind_int64 (st, 7, (int64_t) a->seats [i].version);
            else
                sqlite3_bind_null (st, 7);
            if (s_exec (self, st, "match_seat_insert"))
                return -1;
        }
    }
    return 0;
}

#define S_REJECT(c, ...) do { code = (c); snprintf (err, err_len, __VA_ARGS__); goto reject; } while (0)

static int s_series_append (db_t *self, int64_t agent, const char *name, int64_t t_ms,
                            uint64_t frames, double value, double weight, const char *label);

//  Training statistics (proto_stats.h) come only from seats that trained,
//  and in range: the decoder checked the ranges already, this holds for
//  results built in process too. 0, or -1 with err naming seat and field.
static int
s_stats_refuse (const db_assignment_t *a, const proto_result_t *r, char *err, size_t err_len)
{
    for (uint32_t i = 0; i < a->n_seats; i++) {
        const proto_outcome_t *o = &r->seats [i];
        const db_seat_t *s = &a->seats [i];
        if (!o->has_stats || o->stats.have == 0)
            continue;
        if (!s->train || a->eval || s->frozen || s->agent_id < 0) {
            snprintf (err, err_len, "seats[%u].stats: sent for a seat that did not train "
                      "(%s)", i, s->agent_id < 0 ? "scripted" : s->frozen ? "frozen snapshot"
                      : "evaluation");
            return -1;
        }
        char why [160];
        if (proto_stats_check (&o->stats, why, sizeof why)) {
            snprintf (err, err_len, "seats[%u].stats.%s", i, why);
            return -1;
        }
    }
    return 0;
}

//  One point per statistic a trained seat sent, in the series store at
//  the result's time and the population's frames after it; weighed by the
//  count its mean is over, so merged points stay exact means; labelled
//  with the opponents ("population" or the script's name). A statistic
//  not sent makes no point.
static int
s_stats_apply (db_t *self, const db_assignment_t *a, const proto_result_t *r, int64_t now)
{
    int64_t pop_frames = -1;
    for (uint32_t i = 0; i < a->n_seats; i++) {
        const proto_stats_t *st = &r->seats [i].stats;
        if (!r->seats [i].has_stats || st->have == 0)
            continue;
        if (pop_frames < 0 && s_int (self, s_q (self, Q_POP_FRAMES), &pop_frames, "pop_frames"))
            return -1;
        for (int k = 0; k < PROTO_STAT_COUNT; k++)
            if (proto_stats_has (st, (proto_stat_id_t) k)
            &&  s_series_append (self, a->seats [i].agent_id, proto_stat_defs [k].name, now,
                                 (uint64_t) pop_frames, st->value [k],
                                 st->count [proto_stat_defs [k].over],
                                 a->script [0] ? a->script : "population"))
                return -1;
    }
    return 0;
}

proto_code_t
db_apply_result (db_t *self, const proto_result_t *r, uint32_t n_params, int n_teams,
                 const pbt_config_t *pbt, int64_t now, db_applied_t *applied,
                 char *err, size_t err_len)
{
    proto_code_t code = PROTO_E_INTERNAL;
    db_assignment_t a;
    memset (applied, 0, sizeof *applied);
    snprintf (err, err_len, "database error");
    if (s_begin (self))
        return PROTO_E_INTERNAL;
    int rc = db_assignment_get (self, r->assignment_id, &a);
    if (rc < 0)
        goto fail;
    if (rc == 1)
        S_REJECT (PROTO_E_UNKNOWN, "assignment %" PRIu64 " does not exist", r->assignment_id);
    if (!strcmp (a.state, "done"))
        S_REJECT (PROTO_E_DUPLICATE, "assignment %" PRIu64 " was already applied", a.id);
    if (!strcmp (a.state, "expired"))
        S_REJECT (PROTO_E_EXPIRED, "assignment %" PRIu64 " expired", a.id);
    if (now > a.deadline_ms) {
        //  Late: the lease is over even if housekeeping has not run yet.
        //  Record that, so the agents are free and a retry sees 'expired'.
        if (s_set_state (self, a.id, "expired") || s_commit (self))
            goto fail;
        snprintf (err, err_len, "assignment %" PRIu64 " expired %" PRId64 " ms ago",
                  a.id, now - a.deadline_ms);
        return PROTO_E_EXPIRED;
    }
    if (r->n_seats != a.n_seats)
        S_REJECT (PROTO_E_FIELD, "result has %u seats, assignment %" PRIu64 " has %u",
                  r->n_seats, a.id, a.n_seats);
    db_agent_t agents [PROTO_MAX_AGENTS];
    for (uint32_t i = 0; i < a.n_seats; i++) {
        const proto_outcome_t *o = &r->seats [i];
        const db_seat_t *s = &a.seats [i];
        if (o->id != s->agent_id)
            S_REJECT (PROTO_E_FIELD, "seats[%u].id is %" PRId64 ", assigned %s%" PRId64,
                      i, o->id, s->agent_id < 0 ? "a script, " : "agt_", s->agent_id);
        if (s->agent_id < 0) {
            memset (&agents [i], 0, sizeof agents [i]);
            continue;           // a scripted seat: nothing of it is stored
        }
        if (db_load_agent (self, s->agent_id, &agents [i]) != 0)
            goto fail;
        if (s->frozen) {
            //  A frozen past snapshot: its version is the frozen one (the
            //  live agent moved on), its rating the frozen row's.
            if (o->version != s->version)
                S_REJECT (PROTO_E_STALE, "seats[%u] agt_%" PRId64 ": result version %" PRIu64
                          ", assigned frozen %" PRIu64, i, s->agent_id, o->version, s->version);
            sqlite3_stmt *st = s_q (self, Q_FROZEN_GET);
            sqlite3_bind_int64 (st, 1, s->agent_id);
            sqlite3_bind_int64 (st, 2, (int64_t) s->version);
            int rc2 = sqlite3_step (st);
            if (rc2 == SQLITE_ROW)
                agents [i].rating = sqlite3_column_double (st, 0);
            sqlite3_reset (st);
            if (rc2 == SQLITE_DONE)
                S_REJECT (PROTO_E_STALE, "seats[%u] agt_%" PRId64 "@%" PRIu64 " is no longer "
                          "frozen", i, s->agent_id, s->version);
            if (rc2 != SQLITE_ROW)
                goto fail;
            continue;
        }
        if (o->version != s->version || agents [i].version != s->version)
            S_REJECT (PROTO_E_STALE, "seats[%u] agt_%" PRId64 ": result version %" PRIu64
                      ", assigned %" PRIu64 ", current %" PRIu64, i, s->agent_id,
                      o->version, s->version, agents [i].version);
        if (s->train && !a.eval) {
            if (o->state.n_params != n_params || !o->state.params || !o->state.adam_m
            ||  !o->state.adam_v)
                S_REJECT (PROTO_E_BAD_STATE_DATA, "seats[%u] agt_%" PRId64 ": %u params, "
                          "model has %u", i, s->agent_id, o->state.n_params, n_params);
            char why [128];
            if (proto_state_check (&o->state, why, sizeof why))
                S_REJECT (PROTO_E_BAD_STATE_DATA, "seats[%u].state agt_%" PRId64 ": %s",
                          i, s->agent_id, why);
        }
    }
    char why [PROTO_MAX_TEXT];
    if (s_stats_refuse (&a, r, why, sizeof why))
        S_REJECT (PROTO_E_FIELD, "%s", why);
    //  Only trained seats return a state: one anywhere else would be
    //  dropped unread, so it is refused rather than silently ignored.
    for (uint32_t i = 0; i < a.n_seats; i++) {
        const db_seat_t *s = &a.seats [i];
        bool trained = s->train && !a.eval && !s->frozen && s->agent_id >= 0;
        if (!trained && r->seats [i].state.n_params > 0)
            S_REJECT (PROTO_E_FIELD, "seats[%u].state: the seat was not trained (%s), "
                      "it returns no state", i, s->agent_id < 0 ? "a script"
                      : s->frozen ? "a frozen snapshot" : a.eval ? "an evaluation" : "train false");
    }
    if (r->n_episodes && !r->scores)
        S_REJECT (PROTO_E_FIELD, "scores missing for %u episodes", r->n_episodes);
    for (uint64_t k = 0; k < (uint64_t) r->n_episodes * a.n_seats; k++)
        if (!isfinite (r->scores [k]))
            S_REJECT (PROTO_E_FIELD, "scores[%" PRIu64 "] is not finite", k);

    //  Valid: apply. Training first (new snapshot versions).
    for (uint32_t i = 0; i < a.n_seats; i++) {
        const db_seat_t *s = &a.seats [i];
        if (!s->train || a.eval || s->frozen || s->agent_id < 0)
            continue;
        const proto_outcome_t *o = &r->seats [i];
        if (s_snapshot_insert (self, s->agent_id, s->version + 1, &o->state, now)
        ||  s_snapshot_ring (self, s->agent_id, s->version + 1))
            goto fail;
        sqlite3_stmt *st = s_q (self, Q_AGENT_TRAINED);
        sqlite3_bind_int64 (st, 1, s->agent_id);
        sqlite3_bind_int64 (st, 2, (int64_t) s->version + 1);
        sqlite3_bind_int64 (st, 3, (int64_t) o->frames);
        sqlite3_bind_int64 (st, 4, now);
        if (s_exec (self, st, "agent_trained"))
            goto fail;
        applied->frames += o->frames;
    }
    //  Ratings, then everything recorded about the result.
    s_result_t res;
    if (s_result_prepare (&a, r, n_teams, agents, &res))
        S_REJECT (PROTO_E_FIELD, "assignment %" PRIu64 " does not have two teams", a.id);
    double *ep_ratings = NULL;
    if (self->episode_rows && r->n_episodes) {
        ep_ratings = malloc ((size_t) r->n_episodes * a.n_seats * sizeof *ep_ratings);
        if (!ep_ratings)
            goto fail;
    }
    //  Against a scripted team ratings stay: Elo measures the population
    //  against itself. The episodes are recorded all the same.
    if (!res.scripted)
        s_result_ratings (pbt, &res, r, ep_ratings);
    else
    for (size_t k = 0; ep_ratings && k < (size_t) r->n_episodes * a.n_seats; k++)
        ep_ratings [k] = res.before [k % a.n_seats];
    int rc_apply = s_result_record (self, &a, r, &res, ep_ratings, now);
    free (ep_ratings);
    if (rc_apply || s_stats_apply (self, &a, r, now))
        goto fail;
    applied->episodes = r->n_episodes;
    if (s_set_state (self, a.id, "done"))
        goto fail;
    if (self->episode_rows) {
        if (r->n_episodes && s_match_retention (self, res.last_match, r->n_episodes))
            goto fail;
    }
    else
    if (s_result_retention (self, (int64_t) a.id))
        goto fail;
    if (s_commit (self))
        goto fail;
    return PROTO_OK;
reject:
    s_rollback (self);
    return code;
fail:
    s_rollback (self);
    memset (applied, 0, sizeof *applied);
    snprintf (err, err_len, "database error applying assignment %" PRIu64, r->assignment_id);
    return PROTO_E_INTERNAL;
}

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
    if (s_begin (self))
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
    ||  s_snapshot_ring (self, agent_id, new_version))
        goto fail;
    int64_t seq = 0;
    st = s_q (self, Q_HH_NEXTSEQ);
    sqlite3_bind_int64 (st, 1, agent_id);
    if (s_int (self, st, &seq, "hparam_history_nextseq")
    ||  s_hparams_write (self, agent_id, new_hp, "evolve", seq, now))
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
    return s_commit (self);
fail:
    s_rollback (self);
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
//  Housekeeping

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
    if (s_begin (self))
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
    if (s_commit (self))
        goto done;
    self->gc_moved += n;
    log_info ("store_compacted", "seg=%" PRIu32 " records=%zu", seg, n);
    ret = 0;
    goto done;
fail:
    s_rollback (self);
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
    if (s_begin (self))
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
        s_rollback (self);
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
    if (s_commit (self))
        goto done;
    ret = 0;
    goto done;
fail:
    s_rollback (self);
done:
    free (rows);
    return ret;
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
    if (s_begin (self))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_SNAP_PRUNE);
    sqlite3_bind_int64 (st, 1, keep);
    sqlite3_bind_int (st, 2, self->lineage_keep);
    if (s_exec (self, st, "snapshot_prune")) {
        s_rollback (self);
        return -1;
    }
    int n = sqlite3_changes (self->handle);
    return s_commit (self) ? -1 : n;
}

int
db_metrics_append (db_t *self, int64_t ts, uint64_t results, uint64_t samples,
                   uint64_t evolutions)
{
    if (s_begin (self))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_METRICS_INSERT);
    sqlite3_bind_int64 (st, 1, ts);
    sqlite3_bind_int64 (st, 2, (int64_t) results);
    sqlite3_bind_int64 (st, 3, (int64_t) samples);
    sqlite3_bind_int64 (st, 4, (int64_t) evolutions);
    if (s_exec (self, st, "metrics_insert")) {
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

int64_t
db_count_results (db_t *self)
{
    int64_t n = 0;
    if (s_int (self, s_q (self, Q_COUNT_RESULTS), &n, "count_results") != 0)
        return -1;
    char pruned [32];
    int rc = db_meta_get (self, "results_pruned", pruned, sizeof pruned);
    if (rc < 0)
        return -1;
    return rc == 0 ? n + strtoll (pruned, NULL, 10) : n;
}

int64_t
db_count_evolutions (db_t *self)
{
    int64_t n = 0;
    return s_int (self, s_q (self, Q_COUNT_EVOS), &n, "count_evolutions") == 0 ? n : -1;
}

//  --------------------------------------------------------------------------
//  Series (db.h)

//  The series' id, created if absent (create false: 1 if absent). 0 or -1.
static int
s_series_id (db_t *self, int64_t agent, const char *name, bool create, int64_t *id)
{
    sqlite3_stmt *st = s_q (self, Q_SER_ID);
    sqlite3_bind_int64 (st, 1, agent);
    sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
    int rc = s_int (self, st, id, "series_id");
    if (rc != 1 || !create)
        return rc;
    st = s_q (self, Q_SER_NEW);
    sqlite3_bind_int64 (st, 1, agent);
    sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
    if (s_exec (self, st, "series_new"))
        return -1;
    *id = sqlite3_last_insert_rowid (self->handle);
    return 0;
}

static int
s_point_put (db_t *self, int64_t sid, uint32_t level, int64_t seq, const db_point_t *p)
{
    sqlite3_stmt *st = s_q (self, Q_SER_PUT);
    sqlite3_bind_int64 (st, 1, sid);
    sqlite3_bind_int64 (st, 2, level);
    sqlite3_bind_int64 (st, 3, seq);
    sqlite3_bind_int64 (st, 4, p->t0_ms);
    sqlite3_bind_int64 (st, 5, p->t_ms);
    sqlite3_bind_int64 (st, 6, (int64_t) p->frames);
    sqlite3_bind_int64 (st, 7, (int64_t) p->samples);
    sqlite3_bind_double (st, 8, p->weight);
    sqlite3_bind_double (st, 9, p->mean);
    sqlite3_bind_double (st, 10, p->lo);
    sqlite3_bind_double (st, 11, p->hi);
    sqlite3_bind_double (st, 12, p->last);
    if (p->label [0])
        sqlite3_bind_text (st, 13, p->label, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (st, 13);
    return s_exec (self, st, "series_put");
}

//  A point row (columns from col: t0_ms, t_ms, frames, level or skipped,
//  samples, weight, mean, lo, hi, last, label).
static void
s_point_row (sqlite3_stmt *st, int col, bool has_level, db_point_t *p)
{
    memset (p, 0, sizeof *p);
    p->t0_ms = sqlite3_column_int64 (st, col++);
    p->t_ms = sqlite3_column_int64 (st, col++);
    p->frames = (uint64_t) sqlite3_column_int64 (st, col++);
    if (has_level)
        p->level = (uint32_t) sqlite3_column_int64 (st, col++);
    p->samples = (uint64_t) sqlite3_column_int64 (st, col++);
    p->weight = sqlite3_column_double (st, col++);
    p->mean = sqlite3_column_double (st, col++);
    p->lo = sqlite3_column_double (st, col++);
    p->hi = sqlite3_column_double (st, col++);
    p->last = sqlite3_column_double (st, col++);
    if (sqlite3_column_type (st, col) == SQLITE_TEXT)
        snprintf (p->label, sizeof p->label, "%s", (const char *) sqlite3_column_text (st, col));
}

//  While a level holds more than DB_SERIES_LEVEL_POINTS points, merge its
//  two oldest into one point of the next level. An append overflows level
//  0 by one point, so each level merges at most once per append.
static int
s_series_settle (db_t *self, int64_t sid)
{
    for (uint32_t level = 0; level + 1 < DB_SERIES_MAX_LEVELS; level++) {
        int64_t n = 0;
        sqlite3_stmt *st = s_q (self, Q_SER_LEVEL_N);
        sqlite3_bind_int64 (st, 1, sid);
        sqlite3_bind_int64 (st, 2, level);
        if (s_int (self, st, &n, "series_level_count"))
            return -1;
        if (n <= DB_SERIES_LEVEL_POINTS)
            return 0;
        db_point_t p [2];
        int64_t seq [2];
        int got = 0, rc;
        st = s_q (self, Q_SER_OLDEST2);
        sqlite3_bind_int64 (st, 1, sid);
        sqlite3_bind_int64 (st, 2, level);
        while (got < 2 && (rc = sqlite3_step (st)) == SQLITE_ROW) {
            seq [got] = sqlite3_column_int64 (st, 0);
            s_point_row (st, 1, false, &p [got]);
            got++;
        }
        sqlite3_reset (st);
        if (got < 2) {
            s_fail (self, "series_oldest");
            return -1;
        }
        db_point_t m = p [1];
        m.t0_ms = p [0].t0_ms;
        m.samples = p [0].samples + p [1].samples;
        m.weight = p [0].weight + p [1].weight;
        m.mean = (p [0].mean * p [0].weight + p [1].mean * p [1].weight) / m.weight;
        m.lo = fmin (p [0].lo, p [1].lo);
        m.hi = fmax (p [0].hi, p [1].hi);
        if (strcmp (p [0].label, p [1].label))
            m.label [0] = 0;
        st = s_q (self, Q_SER_DEL);
        sqlite3_bind_int64 (st, 1, sid);
        sqlite3_bind_int64 (st, 2, level);
        sqlite3_bind_int64 (st, 3, seq [1]);
        if (s_exec (self, st, "series_delete")
        ||  s_point_put (self, sid, level + 1, seq [1], &m))
            return -1;
    }
    return 0;
}

//  Append inside the caller's transaction.
static int
s_series_append (db_t *self, int64_t agent, const char *name, int64_t t_ms, uint64_t frames,
                 double value, double weight, const char *label)
{
    if (!name || !*name || strlen (name) >= DB_SERIES_NAME_MAX || !isfinite (value)
    ||  !isfinite (weight) || !(weight > 0)) {
        log_error ("series_refused", "agent=%" PRId64 " name=\"%s\" value=%g weight=%g "
                   "why=\"name 1..63 bytes, value finite, weight finite and > 0\"",
                   agent, name ? name : "", value, weight);
        return -1;
    }
    int64_t sid = 0, seq = 0;
    if (s_series_id (self, agent, name, true, &sid))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_SER_SEQ);
    sqlite3_bind_int64 (st, 1, sid);
    if (s_int (self, st, &seq, "series_seq"))
        return -1;
    db_point_t p = {
        .t0_ms = t_ms, .t_ms = t_ms, .frames = frames, .samples = 1, .weight = weight,
        .mean = value, .lo = value, .hi = value, .last = value,
    };
    if (label)
        snprintf (p.label, sizeof p.label, "%s", label);
    if (s_point_put (self, sid, 0, seq, &p))
        return -1;
    return s_series_settle (self, sid);
}

int
db_series_append (db_t *self, int64_t agent, const char *name, int64_t t_ms, uint64_t frames,
                  double value, double weight, const char *label)
{
    if (s_begin (self))
        return -1;
    if (s_series_append (self, agent, name, t_ms, frames, value, weight, label)) {
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

int
db_series_read (db_t *self, int64_t agent, const char *name, int64_t offset,
                db_point_t *out, int max, int64_t *total)
{
    int64_t sid = 0, n = 0;
    if (total)
        *total = 0;
    int rc = s_series_id (self, agent, name, false, &sid);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return 0;
    sqlite3_stmt *st = s_q (self, Q_SER_COUNT);
    sqlite3_bind_int64 (st, 1, sid);
    if (s_int (self, st, &n, "series_count"))
        return -1;
    if (total)
        *total = n;
    st = s_q (self, Q_SER_READ);
    sqlite3_bind_int64 (st, 1, sid);
    sqlite3_bind_int64 (st, 2, offset < 0 ? 0 : offset);
    sqlite3_bind_int64 (st, 3, max);
    int got = 0;
    while (got < max && (rc = sqlite3_step (st)) == SQLITE_ROW)
        s_point_row (st, 0, true, &out [got++]);
    if (got < max && rc != SQLITE_DONE) {
        sqlite3_reset (st);
        s_fail (self, "series_read");
        return -1;
    }
    sqlite3_reset (st);
    return got;
}

int
db_series_names (db_t *self, int64_t agent, char names [][DB_SERIES_NAME_MAX], int max)
{
    sqlite3_stmt *st = s_q (self, Q_SER_NAMES);
    sqlite3_bind_int64 (st, 1, agent);
    int n = 0, rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW)
        snprintf (names [n++], DB_SERIES_NAME_MAX, "%s", (const char *) sqlite3_column_text (st, 0));
    sqlite3_reset (st);
    if (n < max && rc != SQLITE_DONE) {
        s_fail (self, "series_names");
        return -1;
    }
    return n;
}

//  --------------------------------------------------------------------------
//  Payoff (db.h)

void
db_set_payoff_window (db_t *self, uint64_t episodes)
{
    self->payoff_window = episodes ? episodes : 1;
}

static int
s_payoff_add (db_t *self, int64_t agent, uint64_t version, int64_t opp, uint64_t opp_version,
              const db_wdl_t *d, int64_t now)
{
    sqlite3_stmt *st = s_q (self, Q_PAYOFF_ADD);
    sqlite3_bind_int64 (st, 1, agent);
    sqlite3_bind_int64 (st, 2, (int64_t) version);
    sqlite3_bind_int64 (st, 3, opp);
    sqlite3_bind_int64 (st, 4, (int64_t) opp_version);
    sqlite3_bind_int64 (st, 5, (int64_t) d->episodes);
    sqlite3_bind_int64 (st, 6, (int64_t) d->wins);
    sqlite3_bind_int64 (st, 7, (int64_t) d->draws);
    sqlite3_bind_int64 (st, 8, (int64_t) d->losses);
    sqlite3_bind_double (st, 9, d->score_sum);
    sqlite3_bind_int64 (st, 10, (int64_t) self->payoff_window);
    sqlite3_bind_int64 (st, 11, now);
    return s_exec (self, st, "payoff_add");
}

int
db_payoff_add (db_t *self, int64_t agent, uint64_t version, int64_t opp, uint64_t opp_version,
               const db_wdl_t *delta, int64_t now)
{
    if (!isfinite (delta->score_sum)
    ||  delta->wins + delta->draws + delta->losses != delta->episodes) {
        log_error ("payoff_refused", "agent=%" PRId64 " opp=%" PRId64 " why=\"wins + draws + "
                   "losses must equal episodes, score finite\"", agent, opp);
        return -1;
    }
    if (s_begin (self))
        return -1;
    if (s_payoff_add (self, agent, version, opp, opp_version, delta, now)) {
        s_rollback (self);
        return -1;
    }
    return s_commit (self);
}

int
db_payoff_list (db_t *self, db_payoff_t *out, int max)
{
    sqlite3_stmt *st = s_q (self, Q_PAYOFF_ALL);
    int n = 0, rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        db_payoff_t *c = &out [n++];
        c->agent = sqlite3_column_int64 (st, 0);
        c->version = (uint64_t) sqlite3_column_int64 (st, 1);
        c->opp = sqlite3_column_int64 (st, 2);
        c->opp_version = (uint64_t) sqlite3_column_int64 (st, 3);
        db_wdl_t *w [2] = { &c->all, &c->recent };
        for (int k = 0; k < 2; k++) {
            w [k]->episodes = (uint64_t) sqlite3_column_int64 (st, 4 + 5 * k);
            w [k]->wins = (uint64_t) sqlite3_column_int64 (st, 5 + 5 * k);
            w [k]->draws = (uint64_t) sqlite3_column_int64 (st, 6 + 5 * k);
            w [k]->losses = (uint64_t) sqlite3_column_int64 (st, 7 + 5 * k);
            w [k]->score_sum = sqlite3_column_double (st, 8 + 5 * k);
        }
        c->updated_at = sqlite3_column_int64 (st, 14);
    }
    sqlite3_reset (st);
    if (n < max && rc != SQLITE_DONE) {
        s_fail (self, "payoff_list");
        return -1;
    }
    return n;
}

//  --------------------------------------------------------------------------
//  Control queries

static void
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t n = strlen (s);
    msgpack_pack_str (pk, n);
    msgpack_pack_str_body (pk, s, n);
}

static void
s_pack_agent_name (msgpack_packer *pk, int64_t id)
{
    char name [32];
    snprintf (name, sizeof name, "agt_%" PRId64, id);
    s_pack_str (pk, name);
}

//  Parse the {"name":value,...} text s_hp_json wrote and pack it as a map.
static void
s_pack_hp_json (msgpack_packer *pk, const char *json)
{
    proto_kvs_t hp = { 0 };
    const char *p = json;
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
        proto_kvs_set (&hp, name, v);
        p = end;
        if (*p == ',')
            p++;
    }
    msgpack_pack_map (pk, hp.count);
    for (uint32_t i = 0; i < hp.count; i++) {
        s_pack_str (pk, hp.items [i].name);
        msgpack_pack_double (pk, hp.items [i].value);
    }
}

//  hyperparameters: name -> [value per history seq], in first-seen order.
static int
s_pack_hparam_history (db_t *self, msgpack_packer *pk, int64_t id)
{
    proto_kvs_t names = { 0 };
    int rc;
    sqlite3_stmt *st = s_q (self, Q_HIST_HP);
    sqlite3_bind_int64 (st, 1, id);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        if (!proto_kvs_has (&names, (const char *) sqlite3_column_text (st, 1)))
            proto_kvs_set (&names, (const char *) sqlite3_column_text (st, 1), 0);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE)
        return -1;
    msgpack_pack_map (pk, names.count);
    for (uint32_t k = 0; k < names.count; k++) {
        s_pack_str (pk, names.items [k].name);
        //  Count first (MessagePack arrays are length-prefixed).
        uint32_t n = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1)
                msgpack_pack_array (pk, n);
            st = s_q (self, Q_HIST_HP);
            sqlite3_bind_int64 (st, 1, id);
            uint32_t got = 0;
            while ((rc = sqlite3_step (st)) == SQLITE_ROW)
                if (!strcmp ((const char *) sqlite3_column_text (st, 1), names.items [k].name)) {
                    if (pass == 0)
                        n++;
                    else
                    if (got++ < n)
                        msgpack_pack_double (pk, sqlite3_column_double (st, 2));
                }
            sqlite3_reset (st);
            for (; pass == 1 && got < n; got++)
                msgpack_pack_nil (pk);
            if (rc != SQLITE_DONE)
                return -1;
        }
    }
    return 0;
}

//  step: 0, then the agent's total frames at each evolution.
static int
s_pack_steps (db_t *self, msgpack_packer *pk, int64_t id)
{
    uint32_t n_evo = 0;
    int rc;
    sqlite3_stmt *st = s_q (self, Q_HIST_EVOS);
    sqlite3_bind_int64 (st, 1, id);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        n_evo++;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE)
        return -1;
    msgpack_pack_array (pk, n_evo + 1);
    msgpack_pack_uint64 (pk, 0);
    st = s_q (self, Q_HIST_EVOS);
    sqlite3_bind_int64 (st, 1, id);
    uint32_t got = 0;
    while (got < n_evo && sqlite3_step (st) == SQLITE_ROW) {
        msgpack_pack_int64 (pk, sqlite3_column_int64 (st, 0));
        got++;
    }
    sqlite3_reset (st);
    for (; got < n_evo; got++)
        msgpack_pack_nil (pk);
    return 0;
}

//  One agent's history in the seed's shape (see db.h), from its "score"
//  and "rating" series: they are appended together, so they merge alike
//  and their points correspond one to one.
static int
s_pack_history_one (db_t *self, msgpack_packer *pk, int64_t id, double elo_initial,
                    int64_t offset, int limit, db_point_t *score, db_point_t *rating)
{
    int64_t total = 0, total_r = 0;
    int n = db_series_read (self, id, "score", offset, score, limit, &total);
    int m = db_series_read (self, id, "rating", offset, rating, limit, &total_r);
    if (n < 0 || m < 0)
        return -1;
    if (m != n || total_r != total) {
        log_error ("db_history_misaligned", "agent=%" PRId64 " score=%" PRId64 " rating=%" PRId64,
                   id, total, total_r);
        return -1;
    }
    db_agent_t agent;
    if (db_load_agent (self, id, &agent) != 0)
        return -1;
    bool merged = false;
    for (int k = 0; k < n; k++)
        merged = merged || score [k].level > 0;
    msgpack_pack_map (pk, 9);
    s_pack_str (pk, "hyperparameters");
    if (s_pack_hparam_history (self, pk, id))
        return -1;
    //  Entry 0 is the seed's placeholder before any result.
    s_pack_str (pk, "opponent");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    s_pack_str (pk, "NA");
    for (int k = 0; k < n; k++)
        s_pack_str (pk, score [k].label [0] ? score [k].label : "mixed");
    s_pack_str (pk, "score");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_double (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, score [k].mean);
    s_pack_str (pk, "rating");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_double (pk, elo_initial);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, rating [k].last);
    s_pack_str (pk, "step");
    if (s_pack_steps (self, pk, id))
        return -1;
    s_pack_str (pk, "ts");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_int64 (pk, agent.created_at);
    for (int k = 0; k < n; k++)
        msgpack_pack_int64 (pk, score [k].t_ms);
    s_pack_str (pk, "frames");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_uint64 (pk, score [k].frames);
    s_pack_str (pk, "episodes");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, score [k].weight);
    s_pack_str (pk, "page");
    msgpack_pack_map (pk, 6);
    s_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    s_pack_str (pk, "count");
    msgpack_pack_int64 (pk, n);
    s_pack_str (pk, "total");
    msgpack_pack_int64 (pk, total);
    s_pack_str (pk, "more");
    if (offset + n < total)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "downsampled");
    if (merged)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "results");
    uint64_t results = 0;
    for (int k = 0; k < n; k++)
        results += score [k].samples;
    msgpack_pack_uint64 (pk, results);
    return 0;
}

int
db_pack_history (db_t *self, msgpack_packer *pk, int64_t agent_id, int n_agents,
                 double elo_initial, int64_t offset, int64_t limit, char *err, size_t err_len)
{
    int64_t first = agent_id >= 0 ? agent_id : 0;
    int64_t final = agent_id >= 0 ? agent_id : n_agents - 1;
    int64_t agents = final - first + 1;
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "history: offset must be >= 0 and limit >= 1 (got offset %"
                  PRId64 ", limit %" PRId64 ")", offset, limit);
        return 1;
    }
    //  The reply is bounded whatever was asked: at most DB_HISTORY_REPLY_POINTS
    //  points in all (each entry's page says whether more follow).
    int64_t cap = DB_HISTORY_REPLY_POINTS / (agents > 0 ? agents : 1);
    int per = (int) (limit < cap ? limit : cap < 1 ? 1 : cap);
    int64_t longest = 0;
    for (int64_t id = first; id <= final; id++) {
        int64_t sid = 0, n = 0;
        int rc = s_series_id (self, id, "score", false, &sid);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            sqlite3_stmt *st = s_q (self, Q_SER_COUNT);
            sqlite3_bind_int64 (st, 1, sid);
            if (s_int (self, st, &n, "series_count"))
                return -1;
        }
        longest = n > longest ? n : longest;
    }
    if (offset > 0 && offset >= longest) {
        snprintf (err, err_len, "history: offset %" PRId64 " is past the end (%s%" PRId64
                  " entries after the first)", offset, agent_id >= 0 ? "" : "longest: ", longest);
        return 1;
    }
    db_point_t *score = malloc ((size_t) per * sizeof *score);
    db_point_t *rating = malloc ((size_t) per * sizeof *rating);
    int ret = score && rating ? 0 : -1;
    if (ret == 0)
        msgpack_pack_map (pk, (uint32_t) agents);
    for (int64_t id = first; ret == 0 && id <= final; id++) {
        s_pack_agent_name (pk, id);
        ret = s_pack_history_one (self, pk, id, elo_initial, offset, per, score, rating);
    }
    free (score);
    free (rating);
    if (ret)
        s_fail (self, "history");
    return ret;
}

//  series: the points of one series, or the names of an agent's series.
int
db_pack_series (db_t *self, msgpack_packer *pk, int64_t agent, const char *name,
                int64_t offset, int64_t limit, char *err, size_t err_len)
{
    if (!name || !*name) {
        char names [256][DB_SERIES_NAME_MAX];
        int n = db_series_names (self, agent, names, 256);
        if (n < 0)
            return -1;
        msgpack_pack_map (pk, 1);
        s_pack_str (pk, "names");
        msgpack_pack_array (pk, (uint32_t) n);
        for (int k = 0; k < n; k++)
            s_pack_str (pk, names [k]);
        return 0;
    }
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "series: offset must be >= 0 and limit >= 1");
        return 1;
    }
    if (limit > DB_HISTORY_REPLY_POINTS)
        limit = DB_HISTORY_REPLY_POINTS;
    db_point_t *p = malloc ((size_t) limit * sizeof *p);
    if (!p)
        return -1;
    int64_t total = 0;
    int n = db_series_read (self, agent, name, offset, p, (int) limit, &total);
    if (n < 0) {
        free (p);
        return -1;
    }
    if (total == 0 || (offset > 0 && offset >= total)) {
        free (p);
        if (total == 0)
            snprintf (err, err_len, "series: no series '%s' for %s%" PRId64, name,
                      agent < 0 ? "the population " : "agt_", agent);
        else
            snprintf (err, err_len, "series: offset %" PRId64 " is past the end (%" PRId64
                      " points)", offset, total);
        return 1;
    }
    msgpack_pack_map (pk, 7);
    s_pack_str (pk, "agent");
    if (agent < 0)
        s_pack_str (pk, "population");
    else
        s_pack_agent_name (pk, agent);
    s_pack_str (pk, "name");
    s_pack_str (pk, name);
    s_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    s_pack_str (pk, "total");
    msgpack_pack_int64 (pk, total);
    s_pack_str (pk, "more");
    if (offset + n < total)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "level_points");
    msgpack_pack_int64 (pk, DB_SERIES_LEVEL_POINTS);
    s_pack_str (pk, "points");
    msgpack_pack_array (pk, (uint32_t) n);
    for (int k = 0; k < n; k++) {
        msgpack_pack_map (pk, 11);
        s_pack_str (pk, "t0_ms");
        msgpack_pack_int64 (pk, p [k].t0_ms);
        s_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, p [k].t_ms);
        s_pack_str (pk, "frames");
        msgpack_pack_uint64 (pk, p [k].frames);
        s_pack_str (pk, "level");
        msgpack_pack_uint32 (pk, p [k].level);
        s_pack_str (pk, "samples");
        msgpack_pack_uint64 (pk, p [k].samples);
        s_pack_str (pk, "weight");
        msgpack_pack_double (pk, p [k].weight);
        s_pack_str (pk, "mean");
        msgpack_pack_double (pk, p [k].mean);
        s_pack_str (pk, "lo");
        msgpack_pack_double (pk, p [k].lo);
        s_pack_str (pk, "hi");
        msgpack_pack_double (pk, p [k].hi);
        s_pack_str (pk, "last");
        msgpack_pack_double (pk, p [k].last);
        s_pack_str (pk, "label");
        if (p [k].label [0])
            s_pack_str (pk, p [k].label);
        else
            msgpack_pack_nil (pk);
    }
    free (p);
    return 0;
}

static void
s_pack_wdl (msgpack_packer *pk, const db_wdl_t *w)
{
    msgpack_pack_map (pk, 6);
    s_pack_str (pk, "episodes");
    msgpack_pack_uint64 (pk, w->episodes);
    s_pack_str (pk, "wins");
    msgpack_pack_uint64 (pk, w->wins);
    s_pack_str (pk, "draws");
    msgpack_pack_uint64 (pk, w->draws);
    s_pack_str (pk, "losses");
    msgpack_pack_uint64 (pk, w->losses);
    s_pack_str (pk, "score_sum");
    msgpack_pack_double (pk, w->score_sum);
    s_pack_str (pk, "mean_score");
    if (w->episodes)
        msgpack_pack_double (pk, w->score_sum / (double) w->episodes);
    else
        msgpack_pack_nil (pk);
}

//  payoff: every cell of the payoff matrix, counters as kept.
int
db_pack_payoff (db_t *self, msgpack_packer *pk, int64_t offset, int64_t limit,
                char *err, size_t err_len)
{
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "payoff: offset must be >= 0 and limit >= 1");
        return 1;
    }
    if (limit > DB_HISTORY_REPLY_POINTS)
        limit = DB_HISTORY_REPLY_POINTS;
    int64_t want = offset + limit;
    db_payoff_t *cells = malloc ((size_t) (want + 1) * sizeof *cells);
    if (!cells)
        return -1;
    int n = db_payoff_list (self, cells, (int) want + 1);
    if (n < 0) {
        free (cells);
        return -1;
    }
    if (offset > 0 && offset >= n) {
        free (cells);
        snprintf (err, err_len, "payoff: offset %" PRId64 " is past the end (%d cells)", offset, n);
        return 1;
    }
    bool more = n > want;
    int last = n > want ? (int) want : n;
    msgpack_pack_map (pk, 4);
    s_pack_str (pk, "window");
    msgpack_pack_uint64 (pk, self->payoff_window);
    s_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    s_pack_str (pk, "more");
    if (more)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "cells");
    msgpack_pack_array (pk, (uint32_t) (last - offset));
    for (int k = (int) offset; k < last; k++) {
        const db_payoff_t *c = &cells [k];
        msgpack_pack_map (pk, 7);
        s_pack_str (pk, "agent");
        s_pack_agent_name (pk, c->agent);
        s_pack_str (pk, "version");
        msgpack_pack_uint64 (pk, c->version);
        s_pack_str (pk, "opp");
        s_pack_agent_name (pk, c->opp);
        s_pack_str (pk, "opp_version");
        msgpack_pack_uint64 (pk, c->opp_version);
        s_pack_str (pk, "all");
        s_pack_wdl (pk, &c->all);
        s_pack_str (pk, "recent");
        s_pack_wdl (pk, &c->recent);
        s_pack_str (pk, "updated_at");
        msgpack_pack_int64 (pk, c->updated_at);
    }
    free (cells);
    return 0;
}

int
db_pack_lineage (db_t *self, msgpack_packer *pk, int64_t agent_id)
{
    int rc;
    uint32_t n = 0;
    sqlite3_stmt *st = s_q (self, Q_LINEAGE);
    sqlite3_bind_int64 (st, 1, agent_id);
    //  Bounded reply: the newest DB_LINEAGE_REPLY_MAX evolutions.
    while (n < DB_LINEAGE_REPLY_MAX && (rc = sqlite3_step (st)) == SQLITE_ROW)
        n++;
    if (n == DB_LINEAGE_REPLY_MAX)
        rc = SQLITE_DONE;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "lineage");
        return -1;
    }
    //  Collect rows first: the donor lookup reuses another statement.
    typedef struct {
        int64_t id, donor, donor_version, ts, frames, old_v, new_v, gen, donor_evo;
        char old_hp [PROTO_MAX_KV * 80], new_hp [PROTO_MAX_KV * 80];
    } row_t;
    row_t *rows = calloc (n ? n : 1, sizeof *rows);
    if (!rows)
        return -1;
    st = s_q (self, Q_LINEAGE);
    sqlite3_bind_int64 (st, 1, agent_id);
    uint32_t got = 0;
    while (got < n && sqlite3_step (st) == SQLITE_ROW) {
        row_t *r = &rows [got++];
        r->id = sqlite3_column_int64 (st, 0);
        r->donor = sqlite3_column_int64 (st, 1);
        r->donor_version = sqlite3_column_int64 (st, 2);
        r->ts = sqlite3_column_int64 (st, 3);
        r->frames = sqlite3_column_int64 (st, 4);
        r->old_v = sqlite3_column_int64 (st, 5);
        r->new_v = sqlite3_column_int64 (st, 6);
        r->gen = sqlite3_column_int64 (st, 7);
        snprintf (r->old_hp, sizeof r->old_hp, "%s", (const char *) sqlite3_column_text (st, 8));
        snprintf (r->new_hp, sizeof r->new_hp, "%s", (const char *) sqlite3_column_text (st, 9));
    }
    sqlite3_reset (st);
    for (uint32_t i = 0; i < got; i++) {
        st = s_q (self, Q_DONOR_EVO);
        sqlite3_bind_int64 (st, 1, rows [i].donor);
        sqlite3_bind_int64 (st, 2, rows [i].id);
        rows [i].donor_evo = -1;
        if (s_int (self, st, &rows [i].donor_evo, "donor_evolution") < 0) {
            free (rows);
            return -1;
        }
    }
    msgpack_pack_map (pk, 2);
    s_pack_str (pk, "agent");
    s_pack_agent_name (pk, agent_id);
    s_pack_str (pk, "evolutions");
    msgpack_pack_array (pk, got);
    for (uint32_t i = 0; i < got; i++) {
        row_t *r = &rows [i];
        msgpack_pack_map (pk, 11);
        s_pack_str (pk, "id");
        msgpack_pack_int64 (pk, r->id);
        s_pack_str (pk, "donor");
        s_pack_agent_name (pk, r->donor);
        s_pack_str (pk, "donor_version");
        msgpack_pack_int64 (pk, r->donor_version);
        //  The donor's own latest evolution before this one: follow it with
        //  lineage on the donor to trace where these weights came from.
        s_pack_str (pk, "donor_evolution");
        if (r->donor_evo >= 0)
            msgpack_pack_int64 (pk, r->donor_evo);
        else
            msgpack_pack_nil (pk);
        s_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, r->ts);
        s_pack_str (pk, "frames");
        msgpack_pack_int64 (pk, r->frames);
        s_pack_str (pk, "old_version");
        msgpack_pack_int64 (pk, r->old_v);
        s_pack_str (pk, "new_version");
        msgpack_pack_int64 (pk, r->new_v);
        s_pack_str (pk, "generation");
        msgpack_pack_int64 (pk, r->gen);
        s_pack_str (pk, "old_hparams");
        s_pack_hp_json (pk, r->old_hp);
        s_pack_str (pk, "new_hparams");
        s_pack_hp_json (pk, r->new_hp);
    }
    free (rows);
    return 0;
}

int
db_pack_matches (db_t *self, msgpack_packer *pk, int limit, int64_t before)
{
    typedef struct { int64_t id, ts; char script [PROTO_MAX_NAME]; } row_t;
    if (limit < 1)
        limit = 1;
    if (limit > 1000)
        limit = 1000;
    row_t *rows = malloc ((size_t) limit * sizeof *rows);
    if (!rows)
        return -1;
    int n = 0, rc = SQLITE_DONE;
    sqlite3_stmt *st = s_q (self, Q_RESULTS_RECENT);
    sqlite3_bind_int (st, 1, limit);
    sqlite3_bind_int64 (st, 2, before > 0 ? before : INT64_MAX);
    while (n < limit && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        rows [n].id = sqlite3_column_int64 (st, 0);
        rows [n].ts = sqlite3_column_int64 (st, 1);
        rows [n].script [0] = 0;
        if (sqlite3_column_type (st, 2) == SQLITE_TEXT)
            snprintf (rows [n].script, sizeof rows [n].script, "%s",
                      (const char *) sqlite3_column_text (st, 2));
        n++;
    }
    sqlite3_reset (st);
    if (n < limit && rc != SQLITE_DONE) {
        free (rows);
        s_fail (self, "matches");
        return -1;
    }
    msgpack_pack_array (pk, (uint32_t) n);
    for (int i = 0; i < n; i++) {
        struct {
            int64_t slot, agent, frozen, team, episodes, wins, draws, losses, frames, wall_ms, pop;
            double score, before, after;
            char opp [256];
        } seats [PROTO_MAX_AGENTS];
        int k = 0;
        int64_t episodes = 0;
        st = s_q (self, Q_RSEATS_GET);
        sqlite3_bind_int64 (st, 1, rows [i].id);
        while (k < PROTO_MAX_AGENTS && (rc = sqlite3_step (st)) == SQLITE_ROW) {
            seats [k].slot = sqlite3_column_int64 (st, 0);
            seats [k].agent = sqlite3_column_int64 (st, 1);
            seats [k].frozen = sqlite3_column_type (st, 2) == SQLITE_NULL ? 0
                             : sqlite3_column_int64 (st, 2);
            seats [k].team = sqlite3_column_int64 (st, 3);
            snprintf (seats [k].opp, sizeof seats [k].opp, "%s", (const char *) sqlite3_column_text (st, 4));
            seats [k].episodes = sqlite3_column_int64 (st, 5);
            seats [k].wins = sqlite3_column_int64 (st, 6);
            seats [k].draws = sqlite3_column_int64 (st, 7);
            seats [k].losses = sqlite3_column_int64 (st, 8);
            seats [k].score = sqlite3_column_double (st, 9);
            seats [k].before = sqlite3_column_double (st, 10);
            seats [k].after = sqlite3_column_double (st, 11);
            seats [k].frames = sqlite3_column_int64 (st, 12);
            seats [k].wall_ms = sqlite3_column_int64 (st, 13);
            seats [k].pop = sqlite3_column_int64 (st, 14);
            if (seats [k].episodes > episodes)
                episodes = seats [k].episodes;
            k++;
        }
        sqlite3_reset (st);
        msgpack_pack_map (pk, 8);
        s_pack_str (pk, "id");
        msgpack_pack_int64 (pk, rows [i].id);
        s_pack_str (pk, "assignment");
        msgpack_pack_int64 (pk, rows [i].id);
        //  The scripted team's policy, nil in population play.
        s_pack_str (pk, "script");
        if (rows [i].script [0])
            s_pack_str (pk, rows [i].script);
        else
            msgpack_pack_nil (pk);
        s_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, rows [i].ts);
        s_pack_str (pk, "episodes");
        msgpack_pack_int64 (pk, episodes);
        s_pack_str (pk, "wall_ms");
        msgpack_pack_int64 (pk, k ? seats [0].wall_ms : 0);
        s_pack_str (pk, "population_frames");
        msgpack_pack_int64 (pk, k ? seats [0].pop : 0);
        s_pack_str (pk, "seats");
        msgpack_pack_array (pk, (uint32_t) k);
        for (int j = 0; j < k; j++) {
            msgpack_pack_map (pk, 13);
            s_pack_str (pk, "slot");
            msgpack_pack_int64 (pk, seats [j].slot);
            s_pack_str (pk, "agent");
            s_pack_agent_name (pk, seats [j].agent);
            s_pack_str (pk, "frozen_version");
            if (seats [j].frozen)
                msgpack_pack_int64 (pk, seats [j].frozen);
            else
                msgpack_pack_nil (pk);
            s_pack_str (pk, "team");
            msgpack_pack_int64 (pk, seats [j].team);
            s_pack_str (pk, "opponent");
            s_pack_str (pk, seats [j].opp);
            s_pack_str (pk, "episodes");
            msgpack_pack_int64 (pk, seats [j].episodes);
            s_pack_str (pk, "wins");
            msgpack_pack_int64 (pk, seats [j].wins);
            s_pack_str (pk, "draws");
            msgpack_pack_int64 (pk, seats [j].draws);
            s_pack_str (pk, "losses");
            msgpack_pack_int64 (pk, seats [j].losses);
            //  Mean score per episode (the sum is score * episodes).
            s_pack_str (pk, "score");
            msgpack_pack_double (pk, seats [j].episodes ? seats [j].score / (double) seats [j].episodes : 0);
            s_pack_str (pk, "rating_before");
            msgpack_pack_double (pk, seats [j].before);
            s_pack_str (pk, "rating_after");
            msgpack_pack_double (pk, seats [j].after);
            s_pack_str (pk, "frames");
            msgpack_pack_int64 (pk, seats [j].frames);
        }
    }
    free (rows);
    return 0;
}

int
db_pack_metrics (db_t *self, msgpack_packer *pk, int64_t limit)
{
    //  Count first: MessagePack arrays are length-prefixed.
    sqlite3_stmt *st = s_q (self, Q_METRICS_RECENT);
    sqlite3_bind_int64 (st, 1, limit);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        n++;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "metrics");
        return -1;
    }
    msgpack_pack_array (pk, n);
    sqlite3_bind_int64 (st, 1, limit);
    uint32_t got = 0;
    while (got < n && sqlite3_step (st) == SQLITE_ROW) {
        msgpack_pack_map (pk, 4);
        static const char *keys [4] = { "ts", "results", "samples", "evolutions" };
        for (int c = 0; c < 4; c++) {
            s_pack_str (pk, keys [c]);
            msgpack_pack_int64 (pk, sqlite3_column_int64 (st, c));
        }
        got++;
    }
    sqlite3_reset (st);
    for (; got < n; got++)
        msgpack_pack_nil (pk);
    return 0;
}
