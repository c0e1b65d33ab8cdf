/*  db_result: validating a worker's result and applying it: new snapshots, team Elo ratings, result rows, series and payoff. */
#include "db_priv.h"

#include <math.h>

#include "envspec.h"

//  Teams, ratings before, and each seat's wins/draws/losses and score sum.
//  -1 if the seats do not form two teams.
static int
s_result_prepare (const db_assignment_t *a, const proto_result_t *r, int n_teams,
                  const db_agent_t *agents, db_tally_t *res)
{
    memset (res, 0, sizeof *res);
    res->n_seats = a->n_seats;
    res->scripted = a->script [0] != 0;
    if (n_teams < 1 || a->n_seats % (uint32_t) n_teams != 0)
        return -1;
    for (uint32_t i = 0; i < a->n_seats; i++) {
        if (a->seats [i].slot >= a->n_seats)
            return -1;
        res->team [i] = envspec_team_of ((int) a->n_seats, n_teams, (int) a->seats [i].slot);
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
s_result_ratings (const pbt_config_t *pbt, db_tally_t *res, const proto_result_t *r,
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
s_opponent_label (const db_assignment_t *a, const db_tally_t *res, uint32_t i,
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
int
db_result_seat (db_t *self, const db_assignment_t *a, const proto_result_t *r,
                const db_tally_t *res, uint32_t i, int64_t pop_frames, int64_t now)
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
        if (db_series_append_in (self, s->agent_id, "score", now, (uint64_t) pop_frames,
                                 w->score_sum / n, n, opp)
        ||  db_series_append_in (self, s->agent_id, "rating", now, (uint64_t) pop_frames,
                                 res->rating [i], n, opp))
            return -1;
    }
    for (uint32_t j = 0; w->episodes && j < a->n_seats; j++) {
        const db_seat_t *o = &a->seats [j];
        if (res->team [j] == res->team [i] || o->agent_id < 0)
            continue;
        if (db_payoff_add_in (self, s->agent_id, s->frozen ? s->version : 0, o->agent_id,
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
                 db_tally_t *res, const double *ep_ratings, int64_t now)
{
    int64_t pop_frames = 0;
    if (s_int (self, s_q (self, Q_POP_FRAMES), &pop_frames, "population_frames"))
        return -1;
    for (uint32_t i = 0; i < a->n_seats; i++)
        if (a->seats [i].agent_id >= 0 && db_result_seat (self, a, r, res, i, pop_frames, now))
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
            &&  db_series_append_in (self, a->seats [i].agent_id, proto_stat_defs [k].name, now,
                                     (uint64_t) pop_frames, st->value [k],
                                     st->count [proto_stat_defs [k].over],
                                     a->script [0] ? a->script : "population"))
                return -1;
    }
    return 0;
}

#define S_REFUSE(c, ...) do { snprintf (err, err_len, __VA_ARGS__); return (c); } while (0)

//  A frozen seat plays a past snapshot at its version (the live agent
//  moved on), rated by the frozen row: PROTO_OK with its rating, a refusal
//  (err set), or PROTO_E_INTERNAL on a database error.
static proto_code_t
s_check_frozen (db_t *self, const db_seat_t *s, const proto_outcome_t *o, uint32_t i,
                double *rating, char *err, size_t err_len)
{
    if (o->version != s->version)
        S_REFUSE (PROTO_E_STALE, "seats[%u] agt_%" PRId64 ": result version %" PRIu64
                  ", assigned frozen %" PRIu64, i, s->agent_id, o->version, s->version);
    sqlite3_stmt *st = s_q (self, Q_FROZEN_GET);
    sqlite3_bind_int64 (st, 1, s->agent_id);
    sqlite3_bind_int64 (st, 2, (int64_t) s->version);
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW)
        *rating = sqlite3_column_double (st, 0);
    sqlite3_reset (st);
    if (rc == SQLITE_DONE)
        S_REFUSE (PROTO_E_STALE, "seats[%u] agt_%" PRId64 "@%" PRIu64 " is no longer "
                  "frozen", i, s->agent_id, s->version);
    return rc == SQLITE_ROW ? PROTO_OK : PROTO_E_INTERNAL;
}

//  Each seat against the assignment and the agents (loaded into agents):
//  PROTO_OK, a refusal (err set), or PROTO_E_INTERNAL on a database error.
static proto_code_t
s_check_seats (db_t *self, const db_assignment_t *a, const proto_result_t *r, uint32_t n_params,
               db_agent_t *agents, char *err, size_t err_len)
{
    for (uint32_t i = 0; i < a->n_seats; i++) {
        const proto_outcome_t *o = &r->seats [i];
        const db_seat_t *s = &a->seats [i];
        if (o->id != s->agent_id)
            S_REFUSE (PROTO_E_FIELD, "seats[%u].id is %" PRId64 ", assigned %s%" PRId64,
                      i, o->id, s->agent_id < 0 ? "a script, " : "agt_", s->agent_id);
        if (s->agent_id < 0) {
            memset (&agents [i], 0, sizeof agents [i]);
            continue;           // a scripted seat: nothing of it is stored
        }
        if (db_load_agent (self, s->agent_id, &agents [i]) != 0)
            return PROTO_E_INTERNAL;
        if (s->frozen) {
            proto_code_t code = s_check_frozen (self, s, o, i, &agents [i].rating, err, err_len);
            if (code != PROTO_OK)
                return code;
            continue;
        }
        if (o->version != s->version || agents [i].version != s->version)
            S_REFUSE (PROTO_E_STALE, "seats[%u] agt_%" PRId64 ": result version %" PRIu64
                      ", assigned %" PRIu64 ", current %" PRIu64, i, s->agent_id,
                      o->version, s->version, agents [i].version);
        if (s->train && !a->eval) {
            if (o->state.n_params != n_params || !o->state.params || !o->state.adam_m
            ||  !o->state.adam_v)
                S_REFUSE (PROTO_E_BAD_STATE_DATA, "seats[%u] agt_%" PRId64 ": %u params, "
                          "model has %u", i, s->agent_id, o->state.n_params, n_params);
            char why [128];
            if (proto_state_check (&o->state, why, sizeof why))
                S_REFUSE (PROTO_E_BAD_STATE_DATA, "seats[%u].state agt_%" PRId64 ": %s",
                          i, s->agent_id, why);
        }
    }
    return PROTO_OK;
}

//  The rest of the result: statistics, states only from trained seats,
//  finite scores. PROTO_OK or a refusal (err set).
static proto_code_t
s_check_payload (const db_assignment_t *a, const proto_result_t *r, char *err, size_t err_len)
{
    char why [PROTO_MAX_TEXT];
    if (s_stats_refuse (a, r, why, sizeof why))
        S_REFUSE (PROTO_E_FIELD, "%s", why);
    //  Only trained seats return a state: one anywhere else would be
    //  dropped unread, so it is refused rather than silently ignored.
    for (uint32_t i = 0; i < a->n_seats; i++) {
        const db_seat_t *s = &a->seats [i];
        bool trained = s->train && !a->eval && !s->frozen && s->agent_id >= 0;
        if (!trained && r->seats [i].state.n_params > 0)
            S_REFUSE (PROTO_E_FIELD, "seats[%u].state: the seat was not trained (%s), "
                      "it returns no state", i, s->agent_id < 0 ? "a script"
                      : s->frozen ? "a frozen snapshot" : a->eval ? "an evaluation" : "train false");
    }
    if (r->n_episodes && !r->scores)
        S_REFUSE (PROTO_E_FIELD, "scores missing for %u episodes", r->n_episodes);
    for (uint64_t k = 0; k < (uint64_t) r->n_episodes * a->n_seats; k++)
        if (!isfinite (r->scores [k]))
            S_REFUSE (PROTO_E_FIELD, "scores[%" PRIu64 "] is not finite", k);
    return PROTO_OK;
}

//  Training: each trained seat's new snapshot (version+1) and frames.
static int
s_result_train (db_t *self, const db_assignment_t *a, const proto_result_t *r, int64_t now,
                db_applied_t *applied)
{
    for (uint32_t i = 0; i < a->n_seats; i++) {
        const db_seat_t *s = &a->seats [i];
        if (!s->train || a->eval || s->frozen || s->agent_id < 0)
            continue;
        const proto_outcome_t *o = &r->seats [i];
        if (db_snapshot_insert (self, s->agent_id, s->version + 1, &o->state, now)
        ||  db_snapshot_ring (self, s->agent_id, s->version + 1))
            return -1;
        sqlite3_stmt *st = s_q (self, Q_AGENT_TRAINED);
        sqlite3_bind_int64 (st, 1, s->agent_id);
        sqlite3_bind_int64 (st, 2, (int64_t) s->version + 1);
        sqlite3_bind_int64 (st, 3, (int64_t) o->frames);
        sqlite3_bind_int64 (st, 4, now);
        if (s_exec (self, st, "agent_trained"))
            return -1;
        applied->frames += o->frames;
    }
    return 0;
}

//  Ratings, then everything recorded about the result.
static int
s_result_rate (db_t *self, const pbt_config_t *pbt, const db_assignment_t *a,
               const proto_result_t *r, db_tally_t *res, int64_t now)
{
    double *ep_ratings = NULL;
    if (self->episode_rows && r->n_episodes) {
        ep_ratings = malloc ((size_t) r->n_episodes * a->n_seats * sizeof *ep_ratings);
        if (!ep_ratings)
            return -1;
    }
    //  Against a scripted team ratings stay: Elo measures the population
    //  against itself. The episodes are recorded all the same.
    if (!res->scripted)
        s_result_ratings (pbt, res, r, ep_ratings);
    else
    for (size_t k = 0; ep_ratings && k < (size_t) r->n_episodes * a->n_seats; k++)
        ep_ratings [k] = res->before [k % a->n_seats];
    int rc_apply = s_result_record (self, a, r, res, ep_ratings, now);
    free (ep_ratings);
    return rc_apply || s_stats_apply (self, a, r, now) ? -1 : 0;
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
    if (db_op_begin (self))
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
        if (db_assignment_set_state (self, a.id, "expired") || db_op_commit (self))
            goto fail;
        snprintf (err, err_len, "assignment %" PRIu64 " expired %" PRId64 " ms ago",
                  a.id, now - a.deadline_ms);
        return PROTO_E_EXPIRED;
    }
    if (r->n_seats != a.n_seats)
        S_REJECT (PROTO_E_FIELD, "result has %u seats, assignment %" PRIu64 " has %u",
                  r->n_seats, a.id, a.n_seats);
    db_agent_t agents [PROTO_MAX_AGENTS];
    code = s_check_seats (self, &a, r, n_params, agents, err, err_len);
    if (code == PROTO_OK)
        code = s_check_payload (&a, r, err, err_len);
    if (code == PROTO_E_INTERNAL)
        goto fail;
    if (code != PROTO_OK)
        goto reject;

    //  Valid: apply. Training first (new snapshot versions).
    if (s_result_train (self, &a, r, now, applied))
        goto fail;
    db_tally_t res;
    if (s_result_prepare (&a, r, n_teams, agents, &res))
        S_REJECT (PROTO_E_FIELD, "assignment %" PRIu64 " does not have two teams", a.id);
    if (s_result_rate (self, pbt, &a, r, &res, now))
        goto fail;
    applied->episodes = r->n_episodes;
    if (db_assignment_set_state (self, a.id, "done"))
        goto fail;
    if (self->episode_rows) {
        if (r->n_episodes && db_match_retention (self, res.last_match, r->n_episodes))
            goto fail;
    }
    else
    if (db_result_retention (self, (int64_t) a.id))
        goto fail;
    if (db_op_commit (self))
        goto fail;
    return PROTO_OK;
reject:
    db_op_rollback (self);
    return code;
fail:
    db_op_rollback (self);
    memset (applied, 0, sizeof *applied);
    snprintf (err, err_len, "database error applying assignment %" PRIu64, r->assignment_id);
    return PROTO_E_INTERNAL;
}

//  --------------------------------------------------------------------------
//  Reading results back (the matches query)

int
db_results_recent (db_t *self, int64_t before, db_result_row_t *out, int max)
{
    int n = 0, rc = SQLITE_DONE;
    sqlite3_stmt *st = s_q (self, Q_RESULTS_RECENT);
    sqlite3_bind_int (st, 1, max);
    sqlite3_bind_int64 (st, 2, before);
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        out [n].id = sqlite3_column_int64 (st, 0);
        out [n].ts = sqlite3_column_int64 (st, 1);
        out [n].script [0] = 0;
        if (sqlite3_column_type (st, 2) == SQLITE_TEXT)
            snprintf (out [n].script, sizeof out [n].script, "%s",
                      (const char *) sqlite3_column_text (st, 2));
        n++;
    }
    sqlite3_reset (st);
    if (n < max && rc != SQLITE_DONE) {
        s_fail (self, "matches");
        return -1;
    }
    return n;
}

int
db_result_seats (db_t *self, int64_t id, db_result_seat_t *out, int max)
{
    int k = 0, rc = SQLITE_DONE;
    sqlite3_stmt *st = s_q (self, Q_RSEATS_GET);
    sqlite3_bind_int64 (st, 1, id);
    while (k < max && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        db_result_seat_t *s = &out [k++];
        s->slot = sqlite3_column_int64 (st, 0);
        s->agent = sqlite3_column_int64 (st, 1);
        s->frozen_version = sqlite3_column_type (st, 2) == SQLITE_NULL ? 0
                          : sqlite3_column_int64 (st, 2);
        s->team = sqlite3_column_int64 (st, 3);
        snprintf (s->opponent, sizeof s->opponent, "%s", (const char *) sqlite3_column_text (st, 4));
        s->episodes = sqlite3_column_int64 (st, 5);
        s->wins = sqlite3_column_int64 (st, 6);
        s->draws = sqlite3_column_int64 (st, 7);
        s->losses = sqlite3_column_int64 (st, 8);
        s->score_sum = sqlite3_column_double (st, 9);
        s->rating_before = sqlite3_column_double (st, 10);
        s->rating_after = sqlite3_column_double (st, 11);
        s->frames = sqlite3_column_int64 (st, 12);
        s->wall_ms = sqlite3_column_int64 (st, 13);
        s->pop_frames = sqlite3_column_int64 (st, 14);
    }
    sqlite3_reset (st);
    if (k < max && rc != SQLITE_DONE) {
        s_fail (self, "result_seats");
        return -1;
    }
    return k;
}
