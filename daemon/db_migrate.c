/*  db_migrate: schema upgrades of older database files, run inside db_new's upgrade transaction. */
#include "db_priv.h"

#include <math.h>

//  Schema 3 -> 4: every snapshot's blobs into the store, its row into the
//  new table, inside db_new's upgrade transaction.
int
db_migrate_states (db_t *self)
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
    if (db_pragma (self, "DROP TABLE snapshots_v3"))
        goto cleanup;
    log_info ("db_migrated_states", "snapshots=%" PRIu64, moved);
    ret = 0;
cleanup:
    sqlite3_finalize (get);
    sqlite3_finalize (put);
    return ret;
}

//  Schema 4 -> 5, one result being carried over: its seats' aggregates.
typedef struct {
    int64_t assignment, ts, created_at;
    char script [PROTO_MAX_NAME];
    db_assignment_t a;                  // seats (slot order), from the rows
    db_tally_t res;
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
        if (db_result_seat (self, &c->a, &r, &c->res, i, pop_frames, c->ts))
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
int
db_migrate_history (db_t *self)
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
int
db_migrate_worker_key (db_t *self)
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
    return have ? 0 : db_pragma (self, "ALTER TABLE assignments ADD COLUMN worker_key TEXT "
                                      "NOT NULL DEFAULT ''");
}

