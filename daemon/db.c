/*  db: opening the database, its schema and prepared statements, transactions and batches, meta. */
#include "db_priv.h"

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

//  The other db_*.c files (db_priv.h) reach this file's transaction
//  helpers through these, so the helpers themselves stay as they are.

int
db_op_begin (db_t *self)
{
    return s_begin (self);
}

int
db_op_commit (db_t *self)
{
    return s_commit (self);
}

void
db_op_rollback (db_t *self)
{
    s_rollback (self);
}

int
db_pragma (db_t *self, const char *sql)
{
    return s_pragma (self, sql);
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
    //  they move into the store (db_migrate_states); the freed pages stay
    //  in the file until a VACUUM (docs/schema.md).
    //  Version 4 kept history only as per-episode rows: they become
    //  per-result aggregates, series points and payoff counters
    //  (db_migrate_history), with the statements prepared for it.
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
        ||  db_migrate_worker_key (self)
        ||  (move_states && db_migrate_states (self))
        ||  (carry_history && (s_prepare_all (self) || db_migrate_history (self)))
        ||  s_pragma (self, sql)
        ||  store_sync (self->store)) {
            s_pragma (self, "ROLLBACK");
            goto fail;
        }
        if (s_pragma (self, "COMMIT"))
            goto fail;
    }
    else
    if (s_pragma (self, s_schema) || db_migrate_worker_key (self))
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
    db_checkpointer_stop (self);
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

int
db_meta_set_in (db_t *self, const char *key, const char *value)
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
    if (db_meta_set_in (self, key, value)) {
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

int64_t
db_metrics_recent (db_t *self, int64_t limit, db_metrics_t **out)
{
    db_metrics_t *rows = NULL;
    int64_t n = 0, cap = 0;
    int rc;
    sqlite3_stmt *st = s_q (self, Q_METRICS_RECENT);
    sqlite3_bind_int64 (st, 1, limit);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            db_metrics_t *grown = realloc (rows, (size_t) cap * sizeof *rows);
            if (!grown)
                break;
            rows = grown;
        }
        rows [n++] = (db_metrics_t) {
            sqlite3_column_int64 (st, 0), sqlite3_column_int64 (st, 1),
            sqlite3_column_int64 (st, 2), sqlite3_column_int64 (st, 3)
        };
    }
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "metrics");
        free (rows);
        return -1;
    }
    *out = rows;
    return n;
}
