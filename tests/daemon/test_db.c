//  The database layer (db.h) against real SQLite files in a temporary directory.
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"

#define NP 10

static char s_dir [256];
static char s_path [300];

static void
s_setup (void)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/pbt-test-db-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    snprintf (s_path, sizeof s_path, "%s/pbt.db", s_dir);
}

static void
s_teardown (void)
{
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

//  One integer from SQL run on a separate connection.
static int64_t
s_sql_int (const char *sql)
{
    sqlite3 *h;
    cr_assert_eq (sqlite3_open (s_path, &h), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq (sqlite3_prepare_v2 (h, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq (sqlite3_step (st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    sqlite3_close (h);
    return v;
}

static void
s_sql_exec (const char *sql)
{
    sqlite3 *h;
    cr_assert_eq (sqlite3_open (s_path, &h), SQLITE_OK);
    cr_assert_eq (sqlite3_exec (h, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sql);
    sqlite3_close (h);
}

static void
s_fill_state (proto_state_t *st, float base)
{
    cr_assert_eq (proto_state_alloc (st, NP), 0);
    for (int i = 0; i < NP; i++) {
        st->params [i] = base + i;
        st->adam_m [i] = base + 100 + i;
        st->adam_v [i] = base + 200 + i;
    }
    st->adam_t = (uint64_t) base;
}

//  Four agents, states k*1000, hparams lr = 0.001*(k+1), gamma 0.99.
static db_t *
s_population (void)
{
    db_t *db = db_new (s_path);
    cr_assert_not_null (db);
    db_agent_t agents [4];
    proto_state_t states [4];
    memset (agents, 0, sizeof agents);
    for (int k = 0; k < 4; k++) {
        agents [k].id = k;
        agents [k].rating = 0;
        proto_kvs_set (&agents [k].hparams, "lr", 0.001 * (k + 1));
        proto_kvs_set (&agents [k].hparams, "gamma", 0.99);
        s_fill_state (&states [k], 1000.0f * k);
    }
    const char *meta [] = { "seed", "7", NULL };
    //  Most tests look at the per-episode rows; the aggregates' tests
    //  compare against them.
    db_set_episode_rows (db, true);
    cr_assert_eq (db_create_population (db, 4, agents, states, meta, 1000), 0);
    for (int k = 0; k < 4; k++)
        proto_state_free (&states [k]);
    return db;
}

static uint64_t
s_assign (db_t *db, int64_t a, uint64_t va, int64_t b, uint64_t vb, int64_t deadline)
{
    db_assignment_t as;
    memset (&as, 0, sizeof as);
    snprintf (as.worker, sizeof as.worker, "test");
    as.created_at = 1000;
    as.deadline_ms = deadline;
    as.n_seats = 2;
    as.seats [0] = (db_seat_t) { .agent_id = a, .version = va, .slot = 0, .train = true };
    as.seats [1] = (db_seat_t) { .agent_id = b, .version = vb, .slot = 1, .train = true };
    cr_assert_eq (db_assignment_create (db, &as, 42), 0);
    return as.id;
}

//  A result for a 2-seat assignment: new states base 5000+, 2 episodes,
//  seat 0 wins the first, seat 1 the second.
typedef struct {
    proto_result_t r;
    float scores [4];
} result_t;

static void
s_result (result_t *res, uint64_t id, int64_t a, uint64_t va, int64_t b, uint64_t vb)
{
    memset (res, 0, sizeof *res);
    proto_result_t *r = &res->r;
    r->assignment_id = id;
    r->n_seats = 2;
    r->seats [0].id = a;
    r->seats [0].version = va;
    r->seats [0].frames = 640;
    s_fill_state (&r->seats [0].state, 5000);
    r->seats [1].id = b;
    r->seats [1].version = vb;
    r->seats [1].frames = 640;
    s_fill_state (&r->seats [1].state, 6000);
    r->n_episodes = 2;
    res->scores [0] = 3;
    res->scores [1] = -3;
    res->scores [2] = -1;
    res->scores [3] = 2;
    r->scores = res->scores;
}

static void
s_result_free (result_t *res)
{
    proto_state_free (&res->r.seats [0].state);
    proto_state_free (&res->r.seats [1].state);
}

static pbt_config_t
s_pbt (void)
{
    pbt_config_t pbt;
    memset (&pbt, 0, sizeof pbt);
    pbt.elo_k = 16;
    return pbt;
}

//  `times` results for agents a and b at their current versions; seat 0's
//  new params [0] is 100 a + its old version.
static void
s_train (db_t *db, int64_t a, int64_t b, int times)
{
    pbt_config_t pbt = s_pbt ();
    char err [256];
    db_applied_t ap;
    for (int k = 0; k < times; k++) {
        db_agent_t x, y;
        cr_assert_eq (db_load_agent (db, a, &x), 0);
        cr_assert_eq (db_load_agent (db, b, &y), 0);
        uint64_t id = s_assign (db, a, x.version, b, y.version, 1LL << 60);
        result_t res;
        s_result (&res, id, a, x.version, b, y.version);
        res.r.seats [0].state.params [0] = (float) (100 * a + x.version);
        cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err),
                      PROTO_OK, "%s", err);
        s_result_free (&res);
    }
}

TestSuite (db, .init = s_setup, .fini = s_teardown, .timeout = 30);

Test (db, create_reopen_schema)
{
    db_t *db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (db_agent_count (db), 0);
    db_destroy (&db);
    cr_assert_null (db);
    cr_assert_eq (s_sql_int ("PRAGMA user_version"), DB_SCHEMA_VERSION);
    db = s_population ();
    db_destroy (&db);

    db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (db_agent_count (db), 4);
    db_agent_t agents [8];
    cr_assert_eq (db_load_agents (db, agents, 8), 4);
    for (int k = 0; k < 4; k++) {
        cr_assert_eq (agents [k].id, k);
        cr_assert_eq (agents [k].version, 1);
        cr_assert_eq (agents [k].parent, -1);
        cr_assert_eq (agents [k].hparams.count, 2);
        cr_assert_float_eq (proto_kvs_get (&agents [k].hparams, "lr", -1), 0.001 * (k + 1), 1e-15);
    }
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 2, 1, &st), 0);
    cr_assert_eq (st.n_params, NP);
    cr_assert_eq (st.params [3], 2003.0f);
    cr_assert_eq (st.adam_v [9], 2209.0f);
    cr_assert_eq (st.adam_t, 2000);
    proto_state_free (&st);
    cr_assert_eq (db_load_state (db, 2, 9, &st), 1);
    char v [32];
    cr_assert_eq (db_meta_get (db, "seed", v, sizeof v), 0);
    cr_assert_str_eq (v, "7");
    cr_assert_eq (db_meta_get (db, "nope", v, sizeof v), 1);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM hparam_history WHERE reason = 'init' AND seq = 0"), 8);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

Test (db, refuses_newer_schema)
{
    db_t *db = db_new (s_path);
    cr_assert_not_null (db);
    db_destroy (&db);
    s_sql_exec ("PRAGMA user_version = 99");
    cr_assert_null (db_new (s_path));
}

Test (db, result_applies_everything)
{
    db_t *db = s_population ();
    pbt_config_t pbt = s_pbt ();
    pbt.rating = PBT_RATING_EPISODE;        // the seed's rule, episode by episode
    uint64_t id = s_assign (db, 0, 1, 3, 1, 1LL << 60);
    result_t res;
    s_result (&res, id, 0, 1, 3, 1);
    char err [256];
    db_applied_t ap;
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
    cr_assert_eq (ap.frames, 1280);
    cr_assert_eq (ap.episodes, 2);

    //  Elo by hand, K=16: episode 1 equal ratings, seat 0 wins: +-8.
    //  Episode 2: seat 0 (8) loses to seat 1 (-8): E = 1/(1+10^(-16/400)).
    double e = 1.0 / (1.0 + pow (10.0, -16.0 / 400.0));
    double r0 = 8 - 16 * e, r1 = -8 + 16 * e;
    db_agent_t a0, a3;
    cr_assert_eq (db_load_agent (db, 0, &a0), 0);
    cr_assert_eq (db_load_agent (db, 3, &a3), 0);
    cr_assert_float_eq (a0.rating, r0, 1e-9);
    cr_assert_float_eq (a3.rating, r1, 1e-9);
    cr_assert_eq (a0.version, 2);
    cr_assert_eq (a0.frames, 640);
    cr_assert_eq (a0.frames_since_evolve, 640);
    cr_assert_eq (a0.matches, 2);
    cr_assert_eq (a3.matches_since_evolve, 2);
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 3, 2, &st), 0);
    cr_assert_eq (st.params [0], 6000.0f);
    cr_assert_eq (st.adam_m [1], 6101.0f);
    proto_state_free (&st);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM match_seats"), 4);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments WHERE state = 'done'"), 1);

    //  Again: duplicate, and nothing moves.
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_DUPLICATE);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 2);
    res.r.assignment_id = 999;
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_UNKNOWN);
    s_result_free (&res);
    cr_assert_eq (db_count_results (db), 1);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

//  A match against a scripted team (4 seats, agents 0 and 2 on team 1,
//  the "chaser" script on team 0): the assignment round-trips with its
//  script seats in slot order; the result trains both agents and records
//  the episodes, but moves no rating and counts no rated match; a result
//  that puts an agent where the script was is refused.
Test (db, scripted_match_trains_but_is_unrated)
{
    db_t *db = s_population ();
    pbt_config_t pbt = s_pbt ();
    db_assignment_t as;
    memset (&as, 0, sizeof as);
    snprintf (as.worker, sizeof as.worker, "test");
    as.created_at = 1000;
    as.deadline_ms = 1LL << 60;
    as.n_seats = 4;
    snprintf (as.script, sizeof as.script, "chaser");
    for (uint32_t s = 0; s < 4; s++) {
        as.seats [s].slot = s;
        as.seats [s].agent_id = -1;
        snprintf (as.seats [s].script, sizeof as.seats [s].script, "chaser");
    }
    as.seats [2] = (db_seat_t) { .agent_id = 0, .version = 1, .slot = 2, .train = true };
    as.seats [3] = (db_seat_t) { .agent_id = 2, .version = 1, .slot = 3, .train = true };
    cr_assert_eq (db_assignment_create (db, &as, 42), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignment_seats"), 2);
    db_assignment_t got;
    cr_assert_eq (db_assignment_get (db, as.id, &got), 0);
    cr_assert_eq (got.n_seats, 4);
    cr_assert_str_eq (got.script, "chaser");
    for (uint32_t s = 0; s < 4; s++)
        cr_assert_eq (got.seats [s].slot, s);
    cr_assert_eq (got.seats [0].agent_id, -1);
    cr_assert_str_eq (got.seats [1].script, "chaser");
    cr_assert_eq (got.seats [2].agent_id, 0);
    cr_assert_eq (got.seats [3].agent_id, 2);
    cr_assert (got.seats [3].train);

    proto_result_t r;
    memset (&r, 0, sizeof r);
    r.assignment_id = as.id;
    r.n_seats = 4;
    float scores [8] = { 1, 1, -1, -1,   -1, -1, 1, 1 };
    r.n_episodes = 2;
    r.scores = scores;
    for (uint32_t s = 0; s < 4; s++)
        r.seats [s].id = -1;
    r.seats [2].id = 0;
    r.seats [2].version = 1;
    r.seats [2].frames = 400;
    s_fill_state (&r.seats [2].state, 7000);
    r.seats [3].id = 2;
    r.seats [3].version = 1;
    r.seats [3].frames = 400;
    s_fill_state (&r.seats [3].state, 8000);
    char err [256];
    db_applied_t ap;
    //  An agent id where the script sat: refused, naming the seat.
    r.seats [1].id = 3;
    cr_assert_eq (db_apply_result (db, &r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_FIELD);
    cr_assert (strstr (err, "seats[1]"), "%s", err);
    r.seats [1].id = -1;
    cr_assert_eq (db_apply_result (db, &r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
    cr_assert_eq (ap.frames, 800);
    cr_assert_eq (ap.episodes, 2);
    db_agent_t a0, a2;
    cr_assert_eq (db_load_agent (db, 0, &a0), 0);
    cr_assert_eq (db_load_agent (db, 2, &a2), 0);
    cr_assert_eq (a0.version, 2);
    cr_assert_eq (a2.frames, 400);
    cr_assert_float_eq (a0.rating, 0, 0);
    cr_assert_float_eq (a2.rating, 0, 0);
    cr_assert_eq (a0.matches, 0);
    cr_assert_eq (a2.matches_since_evolve, 0);
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 2, 2, &st), 0);
    cr_assert_eq (st.params [0], 8000.0f);
    proto_state_free (&st);
    //  Episodes recorded, agent seats only, team 1's scores.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM match_seats"), 4);
    cr_assert_eq (s_sql_int ("SELECT SUM(score) FROM match_seats WHERE team = 1"), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM match_seats WHERE team = 0"), 0);
    proto_state_free (&r.seats [2].state);
    proto_state_free (&r.seats [3].state);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

//  Each rejected result leaves every table as it was.
Test (db, result_rejections_change_nothing)
{
    db_t *db = s_population ();
    pbt_config_t pbt = s_pbt ();
    char err [256];
    db_applied_t ap;
    const char *probe = "SELECT (SELECT COUNT(*) FROM snapshots) * 1000000 + "
                        "(SELECT COUNT(*) FROM matches) * 1000 + "
                        "(SELECT SUM(version) + SUM(matches) + SUM(frames) FROM agents)";
    int64_t before = s_sql_int (probe);

    //  Stale: the result claims version 7.
    uint64_t id = s_assign (db, 1, 1, 2, 1, 1LL << 60);
    result_t res;
    s_result (&res, id, 1, 1, 2, 7);
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_STALE);
    cr_assert (strstr (err, "version"), "%s", err);
    s_result_free (&res);

    //  NaN in the second seat's Adam moment: the first seat must not land.
    s_result (&res, id, 1, 1, 2, 1);
    res.r.seats [1].state.adam_v [4] = NAN;
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_BAD_STATE_DATA);
    res.r.seats [1].state.adam_v [4] = 1;
    //  Wrong size.
    cr_assert_eq (db_apply_result (db, &res.r, NP + 1, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_BAD_STATE_DATA);
    //  Seats swapped.
    res.r.seats [0].id = 2;
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_FIELD);
    res.r.seats [0].id = 1;
    //  Infinite score.
    res.scores [2] = INFINITY;
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_FIELD);
    res.scores [2] = 0;
    cr_assert_eq (s_sql_int (probe), before);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments WHERE state = 'leased'"), 1);

    //  Stale because the agent moved on: a second assignment of agent 1 at
    //  version 1 after the first one's result made it version 2.
    uint64_t id2 = s_assign (db, 1, 1, 0, 1, 1LL << 60);
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
    int64_t after_first = s_sql_int (probe);
    result_t res2;
    s_result (&res2, id2, 1, 1, 0, 1);
    cr_assert_eq (db_apply_result (db, &res2.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_STALE);
    cr_assert_eq (s_sql_int (probe), after_first);

    //  Past the deadline: expired, and recorded as such.
    uint64_t id3 = s_assign (db, 3, 1, 0, 1, 4000);
    result_t res3;
    s_result (&res3, id3, 3, 1, 0, 1);
    cr_assert_eq (db_apply_result (db, &res3.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_E_EXPIRED);
    db_assignment_t a;
    cr_assert_eq (db_assignment_get (db, id3, &a), 0);
    cr_assert_str_eq (a.state, "expired");
    cr_assert_eq (db_apply_result (db, &res3.r, NP, 2, &pbt, 3000, &ap, err, sizeof err), PROTO_E_EXPIRED);
    cr_assert_eq (s_sql_int (probe), after_first);
    s_result_free (&res);
    s_result_free (&res2);
    s_result_free (&res3);
    db_destroy (&db);
}

Test (db, leases_renew_expire_and_list)
{
    db_t *db = s_population ();
    uint64_t a = s_assign (db, 0, 1, 1, 1, 100);
    uint64_t b = s_assign (db, 2, 1, 3, 1, 200);
    cr_assert_eq (b, a + 1);
    uint64_t ids [8];
    cr_assert_eq (db_assignments_leased (db, ids, 8), 2);
    cr_assert_eq (ids [0], a);
    cr_assert_eq (db_assignment_renew (db, a, 12345), 0);
    db_assignment_t as;
    cr_assert_eq (db_assignment_get (db, a, &as), 0);
    cr_assert_eq (as.deadline_ms, 12345);
    cr_assert_eq (as.n_seats, 2);
    cr_assert_eq (as.seats [1].agent_id, 1);
    cr_assert (as.seats [1].train);
    cr_assert_eq (db_assignment_expire (db, a), 0);
    cr_assert_eq (db_assignments_leased (db, ids, 8), 1);
    cr_assert_eq (ids [0], b);
    //  The seed depends on the id, so two assignments differ.
    db_assignment_t bs;
    cr_assert_eq (db_assignment_get (db, b, &bs), 0);
    cr_assert_neq (as.seed, bs.seed);
    db_destroy (&db);
}

Test (db, snapshot_retention)
{
    db_t *db = s_population ();
    pbt_config_t pbt = s_pbt ();
    char err [256];
    db_applied_t ap;
    //  Five results for agents 0 and 1: versions 1..6.
    for (uint64_t v = 1; v <= 5; v++) {
        uint64_t id = s_assign (db, 0, v, 1, v, 1LL << 60);
        result_t res;
        s_result (&res, id, 0, v, 1, v);
        cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
        s_result_free (&res);
    }
    s_sql_exec ("UPDATE snapshots SET frozen = 1 WHERE agent_id = 0 AND version = 2");
    //  A leased assignment pins agent 2's version 1 (which is current anyway).
    s_assign (db, 2, 1, 3, 1, 1LL << 60);
    //  Current version 6, keep 2: versions <= 4 go, except the frozen one.
    cr_assert_eq (db_prune_snapshots (db, 2), 7);
    //  Kept: agent 0 {2 (frozen), 5, 6}, agent 1 {5, 6}, agents 2, 3 {1}.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id = 0"), 3);
    cr_assert_eq (s_sql_int ("SELECT MIN(version) FROM snapshots WHERE agent_id = 1"), 5);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id IN (2, 3)"), 2);
    cr_assert_eq (db_prune_snapshots (db, 2), 0);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

Test (db, evolution_is_atomic)
{
    db_t *db = s_population ();
    proto_kvs_t hp = { 0 };
    proto_kvs_set (&hp, "lr", 0.5);
    proto_kvs_set (&hp, "gamma", 0.95);
    cr_assert_eq (db_evolve (db, 1, 3, &hp, 7000), 0);
    db_agent_t a;
    cr_assert_eq (db_load_agent (db, 1, &a), 0);
    cr_assert_eq (a.version, 2);
    cr_assert_eq (a.generation, 1);
    cr_assert_eq (a.parent, 3);
    cr_assert_float_eq (proto_kvs_get (&a.hparams, "lr", 0), 0.5, 1e-15);
    //  The weights and Adam state are the donor's (agent 3, base 3000).
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 1, 2, &st), 0);
    cr_assert_eq (st.params [5], 3005.0f);
    cr_assert_eq (st.adam_m [5], 3105.0f);
    cr_assert_eq (st.adam_t, 3000);
    proto_state_free (&st);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM hparam_history WHERE agent_id = 1 AND seq = 1 AND reason = 'evolve'"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM evolutions WHERE agent_id = 1 AND donor_id = 3 AND new_version = 2"), 1);

    //  Donor's current snapshot missing: the evolution fails as a whole.
    s_sql_exec ("DELETE FROM snapshots WHERE agent_id = 2");
    proto_kvs_set (&hp, "lr", 0.25);
    cr_assert_neq (db_evolve (db, 0, 2, &hp, 8000), 0);
    cr_assert_eq (db_load_agent (db, 0, &a), 0);
    cr_assert_eq (a.version, 1);
    cr_assert_eq (a.generation, 0);
    cr_assert_float_eq (proto_kvs_get (&a.hparams, "lr", 0), 0.001, 1e-15);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM hparam_history WHERE agent_id = 0"), 2);
    cr_assert_eq (db_count_evolutions (db), 1);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

//  Group commit: a batch's changes are invisible to other connections until
//  db_batch_commit, and a refused result inside it is undone alone.
Test (db, batch_isolates_each_change_and_commits_once)
{
    db_t *db = s_population ();
    pbt_config_t pbt = s_pbt ();
    char err [256];
    db_applied_t ap;
    uint64_t a = s_assign (db, 0, 1, 1, 1, 1LL << 60);
    uint64_t b = s_assign (db, 2, 1, 3, 1, 1LL << 60);
    cr_assert_eq (db_batch_begin (db), 0);
    cr_assert (db_in_batch (db));
    result_t ra, rb;
    s_result (&ra, a, 0, 1, 1, 1);
    s_result (&rb, b, 2, 1, 3, 1);
    cr_assert_eq (db_apply_result (db, &ra.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
    //  b's second seat has a NaN: refused, and only b is undone.
    rb.r.seats [1].state.params [2] = NAN;
    cr_assert_eq (db_apply_result (db, &rb.r, NP, 2, &pbt, 5000, &ap, err, sizeof err),
                  PROTO_E_BAD_STATE_DATA);
    //  A stale copy of a: refused (a is done inside the batch already).
    cr_assert_eq (db_apply_result (db, &ra.r, NP, 2, &pbt, 5000, &ap, err, sizeof err),
                  PROTO_E_DUPLICATE);
    //  A new assignment in the same batch.
    uint64_t c = s_assign (db, 0, 2, 1, 2, 1LL << 60);
    cr_assert_eq (c, b + 1);
    //  The batch sees its own writes...
    db_agent_t ag;
    cr_assert_eq (db_load_agent (db, 0, &ag), 0);
    cr_assert_eq (ag.version, 2);
    //  ...another connection sees none of them before the commit.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments"), 2);
    cr_assert_eq (s_sql_int ("SELECT version FROM agents WHERE id = 0"), 1);
    cr_assert_eq (db_batch_commit (db), 0);
    cr_assert_not (db_in_batch (db));
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments"), 3);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments WHERE state = 'leased'"), 2);
    cr_assert_eq (s_sql_int ("SELECT version FROM agents WHERE id = 0"), 2);
    cr_assert_eq (s_sql_int ("SELECT version * 10 + matches FROM agents WHERE id = 2"), 10);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id IN (2, 3)"), 2);
    //  b can still be applied (with good data) after the batch.
    rb.r.seats [1].state.params [2] = 1;
    cr_assert_eq (db_apply_result (db, &rb.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
    s_result_free (&ra);
    s_result_free (&rb);
    cr_assert_eq (db_count_results (db), 2);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

//  The per-change ring: each result and evolution trims its own agent to
//  the newest `keep` versions (frozen ones stay), no sweep needed.
Test (db, snapshot_ring_per_change)
{
    db_t *db = s_population ();
    db_set_retention (db, 2, 0);
    pbt_config_t pbt = s_pbt ();
    char err [256];
    db_applied_t ap;
    for (uint64_t v = 1; v <= 5; v++) {
        uint64_t id = s_assign (db, 0, v, 1, v, 1LL << 60);
        result_t res;
        s_result (&res, id, 0, v, 1, v);
        cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
        s_result_free (&res);
        if (v == 1)
            s_sql_exec ("UPDATE snapshots SET frozen = 1 WHERE agent_id = 0 AND version = 2");
    }
    //  Versions 1..6 were written; keep 2 -> {5, 6}, plus frozen 2 for agent 0.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id = 0"), 3);
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM snapshots WHERE agent_id = 0"), 2 + 5 + 6);
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM snapshots WHERE agent_id = 1"), 5 + 6);
    //  Evolutions: agent 2 takes agent 0's v6 as its v2, then v3.
    proto_kvs_t hp = { 0 };
    proto_kvs_set (&hp, "lr", 0.5);
    cr_assert_eq (db_evolve (db, 2, 0, &hp, 7000), 0);
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM snapshots WHERE agent_id = 2"), 1 + 2);
    cr_assert_eq (db_evolve (db, 2, 1, &hp, 7001), 0);
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM snapshots WHERE agent_id = 2"), 2 + 3);
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 2, 3, &st), 0);
    cr_assert_eq (st.params [0], 6000.0f);      // agent 1's last trained state
    proto_state_free (&st);
    //  The sweep finds nothing left to do.
    cr_assert_eq (db_prune_snapshots (db, 2), 0);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

//  State store collection: with tiny segments, a long run leaves only the
//  segments rows still name; a frozen snapshot alone in an old segment is
//  moved (and still reads back exactly), and its old segment goes.
static int
s_files (const char *pattern_dir_suffix, const char *prefix)
{
    char cmd [600];
    snprintf (cmd, sizeof cmd, "ls '%s%s' | grep -c '^%s' > '%s/count'", s_path,
              pattern_dir_suffix, prefix, s_dir);
    if (system (cmd) < 0)
        return -1;
    snprintf (cmd, sizeof cmd, "%s/count", s_dir);
    FILE *f = fopen (cmd, "r");
    int n = -1;
    if (f && fscanf (f, "%d", &n) != 1)
        n = -1;
    if (f)
        fclose (f);
    return n;
}

static void
s_assert_param (db_t *db, int64_t agent, uint64_t version, int i, float want)
{
    proto_state_t st;
    cr_assert_eq (db_load_state (db, agent, version, &st), 0, "agt_%lld@%llu",
                  (long long) agent, (unsigned long long) version);
    cr_assert_eq (st.params [i], want, "agt_%lld@%llu params[%d] = %g, want %g",
                  (long long) agent, (unsigned long long) version, i, st.params [i], want);
    proto_state_free (&st);
}

Test (db, store_collection_drops_and_compacts_segments)
{
    db_t *db = s_population ();
    db_set_retention (db, 2, 0);
    //  Records are 48 + 12 * NP = 168 bytes: six to a segment.
    db_set_segment_bytes (db, 1024, 0);
    s_sql_exec ("UPDATE snapshots SET frozen = 1 WHERE agent_id = 0 AND version = 1");
    s_train (db, 0, 1, 30);
    //  Version 30 will be alone in its segment once retention has run on.
    s_sql_exec ("UPDATE snapshots SET frozen = 1 WHERE agent_id = 0 AND version = 30");
    s_train (db, 0, 1, 30);
    int before = s_files ("-states", "seg-");
    cr_assert_gt (before, 15, "%d segments", before);
    cr_assert_gt (db_store_gc (db, 1 << 20), 0);
    //  Live: agents 2 and 3 (v1), agents 0 and 1 (v60, v61), agent 0's
    //  frozen v1 and v30: all now in a few segments, the pool holds at most 4.
    int after = s_files ("-states", "seg-");
    cr_assert_leq (after, 6, "%d segments left", after);
    cr_assert_leq (s_files ("-states", "pool-"), 4);
    cr_assert_gt (db_store_moved (db), 0);
    //  Every row reads back its own bytes: agent 0's first state, version
    //  30 (written by result 29, then moved), the newest, an untouched one.
    s_assert_param (db, 0, 1, 5, 5.0f);
    s_assert_param (db, 0, 30, 0, 29.0f);
    s_assert_param (db, 0, 61, 0, 60.0f);
    s_assert_param (db, 3, 1, 0, 3000.0f);
    //  Nothing left to do: a second pass deletes nothing.
    cr_assert_eq (db_store_gc (db, 1 << 20), 0);
    db_destroy (&db);
    //  After a reopen (a new active segment; the pool is reused) every
    //  row still reads.
    db = db_new (s_path);
    cr_assert_not_null (db);
    s_assert_param (db, 0, 1, 5, 5.0f);
    s_assert_param (db, 1, 61, 0, 6000.0f);
    db_destroy (&db);
}

//  Lineage retention: with lineage_keep the version an evolution copied
//  outlives snapshots_keep (its weights stay readable); without it the
//  ring deletes it like any other.
Test (db, lineage_keep_keeps_copied_versions)
{
    db_t *db = s_population ();
    db_set_retention (db, 1, 0);
    proto_kvs_t hp = { 0 };
    proto_kvs_set (&hp, "lr", 0.5);
    //  Without: agent 2 copies agent 0's v2; three more results delete it.
    s_train (db, 0, 1, 1);
    cr_assert_eq (db_evolve (db, 2, 0, &hp, 7000), 0);
    s_train (db, 0, 1, 3);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id = 0 AND version = 2"), 0);
    //  With: agent 3 copies agent 1's current version, which survives.
    db_set_lineage_keep (db, true);
    db_agent_t donor;
    cr_assert_eq (db_load_agent (db, 1, &donor), 0);
    cr_assert_eq (db_evolve (db, 3, 1, &hp, 7001), 0);
    s_train (db, 0, 1, 3);
    char sql [200];
    snprintf (sql, sizeof sql, "SELECT COUNT(*) FROM snapshots WHERE agent_id = 1 AND version = %llu",
              (unsigned long long) donor.version);
    cr_assert_eq (s_sql_int (sql), 1);
    //  ...while the versions no evolution copied still go (keep 1).
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id = 1"), 2);
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 1, donor.version, &st), 0);
    proto_state_free (&st);
    //  The start-up sweep honours it too.
    cr_assert_eq (db_prune_snapshots (db, 1), 0);
    cr_assert_eq (s_sql_int (sql), 1);
    db_set_lineage_keep (db, false);
    cr_assert_eq (db_prune_snapshots (db, 1), 1);
    cr_assert_eq (s_sql_int (sql), 0);
    db_destroy (&db);
}

//  Match retention: the newest matches_keep match rows stay, older ones go
//  with their seats and (once no kept match refers to them) assignments;
//  leased assignments, agents' counters and the results total are kept.
Test (db, match_retention_keeps_a_window)
{
    db_t *db = s_population ();
    db_set_retention (db, 0, 5);
    pbt_config_t pbt = s_pbt ();
    char err [256];
    db_applied_t ap;
    uint64_t leased = s_assign (db, 2, 1, 3, 1, 1LL << 60);
    cr_assert_eq (leased, 1);
    //  Six results of two episodes: assignments 2..7, matches 1..12
    //  (assignment k+1 has matches 2k-1 and 2k).
    for (uint64_t v = 1; v <= 6; v++) {
        uint64_t id = s_assign (db, 0, v, 1, v, 1LL << 60);
        cr_assert_eq (id, v + 1);
        result_t res;
        s_result (&res, id, 0, v, 1, v);
        cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
        s_result_free (&res);
    }
    //  The newest 5 are matches 8..12, but match 7 shares assignment 5 with
    //  match 8 and assignments go whole: kept 7..12 and their 12 seats.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 6);
    cr_assert_eq (s_sql_int ("SELECT MIN(id) FROM matches"), 7);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM match_seats"), 12);
    //  Assignments 2..4 are gone with their matches, 1 (leased) stays.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments"), 4);
    cr_assert_eq (s_sql_int ("SELECT MIN(id) FROM assignments WHERE state = 'done'"), 5);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignment_seats WHERE assignment_id < 5"), 2);
    cr_assert_eq (s_sql_int ("SELECT state = 'leased' FROM assignments WHERE id = 1"), 1);
    //  Counters are exact: 12 episodes each, 6 results in all.
    cr_assert_eq (s_sql_int ("SELECT matches FROM agents WHERE id = 0"), 12);
    cr_assert_eq (db_count_results (db), 6);
    //  The oldest assignment finishes last: its matches (13, 14) are the
    //  newest, so it stays although its id is below every deleted one.
    result_t late;
    s_result (&late, leased, 2, 1, 3, 1);
    cr_assert_eq (db_apply_result (db, &late.r, NP, 2, &pbt, 5000, &ap, err, sizeof err), PROTO_OK, "%s", err);
    s_result_free (&late);
    //  last 14, keep 5: the cut stops before assignment 6 (matches 9, 10).
    cr_assert_eq (s_sql_int ("SELECT MIN(id) FROM matches"), 9);
    //  Assignments 1 (late), 6 and 7 remain.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments"), 3);
    cr_assert_eq (s_sql_int ("SELECT SUM(id) FROM assignments"), 1 + 6 + 7);
    cr_assert_eq (db_count_results (db), 7);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
    //  After a restart too.
    db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (db_count_results (db), 7);
    db_destroy (&db);
}

//  The checkpointer thread copies the WAL into the database file. A copy
//  of the file alone (no WAL) shows what was backfilled: a population that
//  small would otherwise sit in the WAL (autocheckpoint needs 1000 frames).
Test (db, checkpointer_backfills_the_file)
{
    db_t *db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (db_checkpointer_start (db, 1, 1ull << 30), 0);
    db_agent_t agents [4];
    proto_state_t states [4];
    memset (agents, 0, sizeof agents);
    for (int k = 0; k < 4; k++) {
        agents [k].id = k;
        proto_kvs_set (&agents [k].hparams, "lr", 0.001);
        s_fill_state (&states [k], 1000.0f * k);
    }
    cr_assert_eq (db_create_population (db, 4, agents, states, NULL, 1000), 0);
    for (int k = 0; k < 4; k++)
        proto_state_free (&states [k]);
    //  Two passes after the commit (the test's timeout bounds the wait).
    uint64_t n0 = db_checkpoints (db);
    while (db_checkpoints (db) < n0 + 2)
        usleep (1000);
    char cmd [700];
    snprintf (cmd, sizeof cmd, "cp '%s' '%s/copy.db'", s_path, s_dir);
    cr_assert_eq (system (cmd), 0);
    char copy [300];
    snprintf (copy, sizeof copy, "%s/copy.db", s_dir);
    sqlite3 *h;
    cr_assert_eq (sqlite3_open (copy, &h), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq (sqlite3_prepare_v2 (h, "SELECT COUNT(*) FROM agents", -1, &st, NULL), SQLITE_OK,
                  "%s", sqlite3_errmsg (h));
    cr_assert_eq (sqlite3_step (st), SQLITE_ROW);
    cr_assert_eq (sqlite3_column_int (st, 0), 4);
    sqlite3_finalize (st);
    sqlite3_close (h);
    cr_assert_eq (db_agent_count (db), 4);
    db_destroy (&db);
}

static double
s_sql_double (const char *sql)
{
    sqlite3 *h;
    cr_assert_eq (sqlite3_open (s_path, &h), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq (sqlite3_prepare_v2 (h, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq (sqlite3_step (st), SQLITE_ROW, "%s", sql);
    double v = sqlite3_column_double (st, 0);
    sqlite3_finalize (st);
    sqlite3_close (h);
    return v;
}

Test (db, frozen_snapshots_freeze_cap_and_play)
{
    db_t *db = s_population ();
    db_set_retention (db, 1, 0);
    db_set_frozen_keep (db, 2);
    proto_kvs_t hp = { 0 };
    proto_kvs_set (&hp, "lr", 0.5);
    //  agt_0 evolves from agt_1 three times: v1, v2, v3 are frozen in turn
    //  (v2 at rating 50), the cap of 2 forgets v1, whose row retention
    //  (snapshots_keep 1) then deletes.
    cr_assert_eq (db_evolve (db, 0, 1, &hp, 2000), 0);
    s_sql_exec ("UPDATE agents SET rating = 50 WHERE id = 0");
    cr_assert_eq (db_evolve (db, 0, 1, &hp, 2001), 0);
    cr_assert_eq (db_evolve (db, 0, 1, &hp, 2002), 0);
    cr_assert_eq (s_sql_int ("SELECT version FROM agents WHERE id = 0"), 4);
    cr_assert_eq (db_frozen_count (db), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM frozen WHERE agent_id = 0 AND version IN (2, 3)"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id = 0 AND version = 1"), 0);
    cr_assert_eq (s_sql_int ("SELECT group_concat(version, '') FROM (SELECT version FROM snapshots "
                             "WHERE agent_id = 0 AND frozen = 1 ORDER BY version)"), 23);
    cr_assert_float_eq (s_sql_double ("SELECT rating FROM frozen WHERE agent_id = 0 AND version = 2"),
                        50, 1e-12);
    cr_assert_float_eq (s_sql_double ("SELECT rating_at_freeze FROM frozen WHERE version = 3"), 50, 1e-12);
    db_frozen_t fz [8];
    cr_assert_eq (db_frozen_list (db, fz, 8), 2);
    cr_assert_eq (fz [0].agent_id, 0);
    cr_assert_eq (fz [0].version, 2);
    cr_assert_eq (fz [1].version, 3);

    //  agt_1 (live, v1, rating 0) against agt_0@v2 (frozen, 50).
    db_assignment_t as;
    memset (&as, 0, sizeof as);
    snprintf (as.worker, sizeof as.worker, "test");
    as.created_at = 1000;
    as.deadline_ms = 1000000000000;
    as.n_seats = 2;
    as.seats [0] = (db_seat_t) { .agent_id = 1, .version = 1, .slot = 0, .train = true, .frozen = false };
    as.seats [1] = (db_seat_t) { .agent_id = 0, .version = 2, .slot = 1, .train = false, .frozen = true };
    cr_assert_eq (db_assignment_create (db, &as, 42), 0);
    db_assignment_t got;
    cr_assert_eq (db_assignment_get (db, as.id, &got), 0);
    cr_assert (got.seats [1].frozen && !got.seats [0].frozen);
    pbt_config_t pbt = s_pbt ();
    result_t res;
    db_applied_t applied;
    char err [256];
    //  A wrong frozen version is stale and changes nothing.
    s_result (&res, as.id, 1, 1, 0, 3);
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 3000, &applied, err, sizeof err),
                  PROTO_E_STALE);
    res.r.seats [1].version = 2;
    //  The frozen seat did not train: a state for it is refused, not ignored.
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 3000, &applied, err, sizeof err),
                  PROTO_E_FIELD);
    cr_assert (strstr (err, "seats[1].state") && strstr (err, "frozen"), "%s", err);
    proto_state_free (&res.r.seats [1].state);
    cr_assert_eq (db_apply_result (db, &res.r, NP, 2, &pbt, 3000, &applied, err, sizeof err),
                  PROTO_OK, "%s", err);
    s_result_free (&res);
    //  One update from the result (K = 16): one win, one loss, s = 1/2
    //  against E(0, 50) = 1/(1+10^(50/400)).
    double live = 0, snap = 50;
    double e = 1.0 / (1.0 + pow (10.0, 50.0 / 400.0));
    live += 16 * (0.5 - e);
    snap -= 16 * (0.5 - e);
    cr_assert_eq (applied.frames, 640, "only the live seat's frames count");
    cr_assert_float_eq (s_sql_double ("SELECT rating FROM agents WHERE id = 1"), live, 1e-9);
    cr_assert_float_eq (s_sql_double ("SELECT rating FROM frozen WHERE agent_id = 0 AND version = 2"),
                        snap, 1e-9);
    cr_assert_eq (s_sql_int ("SELECT matches FROM frozen WHERE agent_id = 0 AND version = 2"), 2);
    //  The snapshot's live agent is untouched: version, rating, matches.
    cr_assert_eq (s_sql_int ("SELECT version FROM agents WHERE id = 0"), 4);
    cr_assert_eq (s_sql_int ("SELECT matches FROM agents WHERE id = 0"), 0);
    cr_assert_float_eq (s_sql_double ("SELECT rating FROM agents WHERE id = 0"), 50, 1e-12);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE agent_id = 0 AND version = 5"), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM match_seats WHERE agent_id = 0 AND frozen_version = 2"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM match_seats WHERE agent_id = 0 "
                             "AND frozen_version IS NULL"), 0);
    //  Its bytes are the donor's v1 state (base 1000), unchanged.
    proto_state_t st;
    cr_assert_eq (db_load_state (db, 0, 2, &st), 0);
    cr_assert_eq (st.params [3], 1003.0f);
    cr_assert_eq (st.adam_v [9], 1209.0f);
    proto_state_free (&st);

    //  A lease on agt_0@v3 protects it: the next evictions take v2, then v4.
    memset (&as, 0, sizeof as);
    snprintf (as.worker, sizeof as.worker, "test");
    as.deadline_ms = 1000000000000;
    as.n_seats = 2;
    as.seats [0] = (db_seat_t) { .agent_id = 2, .version = 1, .slot = 0, .train = true, .frozen = false };
    as.seats [1] = (db_seat_t) { .agent_id = 0, .version = 3, .slot = 1, .train = false, .frozen = true };
    cr_assert_eq (db_assignment_create (db, &as, 42), 0);
    cr_assert_eq (db_evolve (db, 0, 1, &hp, 2003), 0);
    cr_assert_eq (s_sql_int ("SELECT group_concat(version, '') FROM "
                             "(SELECT version FROM frozen WHERE agent_id = 0 ORDER BY version)"), 34);
    //  v2's drift (snap - 50) went to meta when it was forgotten.
    cr_assert_float_eq (s_sql_double ("SELECT CAST(value AS REAL) FROM meta "
                                      "WHERE key = 'frozen_evicted_drift'"), snap - 50, 1e-9);
    cr_assert_eq (db_evolve (db, 0, 1, &hp, 2004), 0);
    cr_assert_eq (s_sql_int ("SELECT group_concat(version, '') FROM "
                             "(SELECT version FROM frozen WHERE agent_id = 0 ORDER BY version)"), 35);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM snapshots WHERE frozen = 1"), 2);
    //  frozen_keep 0: evolutions freeze nothing.
    db_set_frozen_keep (db, 0);
    cr_assert_eq (db_evolve (db, 2, 1, &hp, 2005), 0);
    cr_assert_eq (db_frozen_count (db), 2);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}

//  Turn the snapshots table back into schema 3's, states as blobs
//  (agent k: params 5000k + 0.25 + i, Adam m and v offset by 7 and 9,
//  adam_t 40 + k), drop the assignments' script columns, and forget the
//  state store.
static void
s_snapshots_v3 (void)
{
    s_sql_exec ("ALTER TABLE assignments DROP COLUMN script; "
                "ALTER TABLE assignments DROP COLUMN script_seats; "
                "DROP TABLE snapshots; CREATE TABLE snapshots ("
                "agent_id INTEGER NOT NULL REFERENCES agents(id), version INTEGER NOT NULL, "
                "params BLOB NOT NULL, adam_m BLOB NOT NULL, adam_v BLOB NOT NULL, "
                "adam_t INTEGER NOT NULL, frozen INTEGER NOT NULL DEFAULT 0, "
                "created_at INTEGER NOT NULL, PRIMARY KEY (agent_id, version))");
    sqlite3 *h;
    cr_assert_eq (sqlite3_open (s_path, &h), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq (sqlite3_prepare_v2 (h, "INSERT INTO snapshots VALUES (?1, 1, ?2, ?3, ?4, ?5, 0, 7)",
                                      -1, &st, NULL), SQLITE_OK);
    for (int k = 0; k < 4; k++) {
        float p [NP], m [NP], v [NP];
        for (int i = 0; i < NP; i++) {
            p [i] = 5000.0f * k + 0.25f + i;
            m [i] = p [i] + 7;
            v [i] = p [i] + 9;
        }
        sqlite3_bind_int (st, 1, k);
        sqlite3_bind_blob (st, 2, p, sizeof p, SQLITE_TRANSIENT);
        sqlite3_bind_blob (st, 3, m, sizeof m, SQLITE_TRANSIENT);
        sqlite3_bind_blob (st, 4, v, sizeof v, SQLITE_TRANSIENT);
        sqlite3_bind_int (st, 5, 40 + k);
        cr_assert_eq (sqlite3_step (st), SQLITE_DONE);
        sqlite3_reset (st);
    }
    sqlite3_finalize (st);
    sqlite3_close (h);
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s-states'", s_path);
    cr_assert_eq (system (cmd), 0);
}

static void
s_assert_v3_states_moved (db_t *db)
{
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM pragma_table_info('snapshots') "
                             "WHERE name = 'params'"), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM pragma_table_info('assignments') "
                             "WHERE name IN ('script', 'script_seats')"), 2);
    for (int k = 0; k < 4; k++) {
        proto_state_t st;
        cr_assert_eq (db_load_state (db, k, 1, &st), 0, "agent %d", k);
        cr_assert_eq (st.n_params, NP);
        for (int i = 0; i < NP; i++) {
            float p = 5000.0f * k + 0.25f + i;
            cr_assert_eq (st.params [i], p);
            cr_assert_eq (st.adam_m [i], p + 7);
            cr_assert_eq (st.adam_v [i], p + 9);
        }
        cr_assert_eq (st.adam_t, 40u + (unsigned) k);
        proto_state_free (&st);
    }
}

Test (db, upgrades_schema_v3_moving_states_to_the_store)
{
    db_t *db = s_population ();
    db_destroy (&db);
    s_snapshots_v3 ();
    s_sql_exec ("PRAGMA user_version = 3");
    db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (s_sql_int ("PRAGMA user_version"), DB_SCHEMA_VERSION);
    s_assert_v3_states_moved (db);
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
    //  And it stays so across a reopen (the rows and bytes were durable).
    db = db_new (s_path);
    cr_assert_not_null (db);
    s_assert_v3_states_moved (db);
    db_destroy (&db);
}

Test (db, upgrades_schema_v2_in_place)
{
    db_t *db = s_population ();
    db_destroy (&db);
    //  Make it a version 2 file: no frozen table, no frozen seat columns,
    //  states as blobs.
    s_snapshots_v3 ();
    s_sql_exec ("DROP TABLE frozen; ALTER TABLE assignment_seats DROP COLUMN frozen; "
                "ALTER TABLE match_seats DROP COLUMN frozen_version; PRAGMA user_version = 2");
    db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (s_sql_int ("PRAGMA user_version"), DB_SCHEMA_VERSION);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM pragma_table_info('assignment_seats') "
                             "WHERE name = 'frozen'"), 1);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM pragma_table_info('match_seats') "
                             "WHERE name = 'frozen_version'"), 1);
    cr_assert_eq (db_frozen_count (db), 0);
    cr_assert_eq (db_agent_count (db), 4);
    uint64_t id = s_assign (db, 0, 1, 1, 1, 1000000000000);
    db_assignment_t got;
    cr_assert_eq (db_assignment_get (db, id, &got), 0);
    cr_assert (!got.seats [0].frozen && !got.seats [1].frozen);
    cr_assert_eq (db_integrity_check (db), 0);
    s_assert_v3_states_moved (db);
    db_destroy (&db);
}

//  Series: recent samples at full resolution, older ones merged pairwise
//  level by level; nothing is lost from the totals, the whole span is
//  covered and the size stays within the documented bound.
Test (db, series_merge_bounded_and_exact)
{
    db_t *db = s_population ();
    const int n = 5000;
    double sum = 0, wsum = 0;
    for (int i = 1; i <= n; i++) {
        double v = (i % 7) - 3.0, w = 1 + i % 3;
        sum += v * w;
        wsum += w;
        cr_assert_eq (db_series_append (db, 2, "score", 1000 + i, (uint64_t) i * 10, v, w,
                                        i <= 300 ? "agt_1" : "agt_3"), 0);
    }
    static db_point_t p [4096];
    int64_t total = 0;
    int got = db_series_read (db, 2, "score", 0, p, 4096, &total);
    cr_assert_eq (got, total);
    //  Bound: at most 128 points per level, log2(5000/128) + 2 levels.
    cr_assert_leq (got, DB_SERIES_LEVEL_POINTS * (int) (log2 (n / (double) DB_SERIES_LEVEL_POINTS) + 2));
    cr_assert_gt (got, DB_SERIES_LEVEL_POINTS * 4);
    uint64_t samples = 0;
    double acc = 0, weight = 0;
    for (int k = 0; k < got; k++) {
        samples += p [k].samples;
        acc += p [k].mean * p [k].weight;
        weight += p [k].weight;
        cr_assert_leq (p [k].lo, p [k].mean + 1e-12);
        cr_assert_geq (p [k].hi, p [k].mean - 1e-12);
        cr_assert_eq (p [k].frames, (uint64_t) (p [k].t_ms - 1000) * 10);
        if (k > 0) {
            //  Oldest first, contiguous: each point starts right after the previous one.
            cr_assert_eq (p [k].t0_ms, p [k - 1].t_ms + 1, "point %d", k);
            cr_assert_geq (p [k - 1].level, p [k].level);
        }
        cr_assert_eq (p [k].samples, 1ull << p [k].level);
    }
    cr_assert_eq (p [0].t0_ms, 1001);
    cr_assert_eq (p [got - 1].t_ms, 1000 + n);
    cr_assert_eq (samples, (uint64_t) n);
    cr_assert_float_eq (weight, wsum, 1e-9);
    cr_assert_float_eq (acc, sum, 1e-6);
    //  The newest 127 samples are points of their own, with their values.
    for (int k = 0; k < DB_SERIES_LEVEL_POINTS - 1; k++) {
        const db_point_t *q = &p [got - 1 - k];
        int i = n - k;
        cr_assert_eq (q->level, 0);
        cr_assert_float_eq (q->mean, (i % 7) - 3.0, 1e-12);
        cr_assert_str_eq (q->label, "agt_3");
    }
    //  Labels survive a merge only when every sample had the same one.
    cr_assert_str_eq (p [0].label, "agt_1");
    bool mixed = false;
    for (int k = 0; k < got; k++)
        mixed = mixed || (p [k].label [0] == 0 && p [k].t0_ms <= 1300 && p [k].t_ms > 1300);
    cr_assert (mixed);
    //  Paging: an offset skips points in the same order.
    db_point_t q [3];
    cr_assert_eq (db_series_read (db, 2, "score", got - 2, q, 3, &total), 2);
    cr_assert_eq (q [1].t_ms, p [got - 1].t_ms);
    //  Unknown series: no points; bad samples are refused and change nothing.
    cr_assert_eq (db_series_read (db, 2, "nope", 0, q, 3, &total), 0);
    cr_assert_eq (total, 0);
    cr_assert_eq (db_series_append (db, 2, "score", 9999, 1, NAN, 1, NULL), -1);
    cr_assert_eq (db_series_append (db, 2, "score", 9999, 1, 1, 0, NULL), -1);
    cr_assert_eq (db_series_read (db, 2, "score", 0, p, 4096, &total), got);
    //  Population-wide series and names.
    cr_assert_eq (db_series_append (db, DB_SERIES_POPULATION, "samples_per_s", 5, 5, 1e5, 1, NULL), 0);
    char names [4][DB_SERIES_NAME_MAX];
    cr_assert_eq (db_series_names (db, DB_SERIES_POPULATION, names, 4), 1);
    cr_assert_str_eq (names [0], "samples_per_s");
    cr_assert_eq (db_series_names (db, 2, names, 4), 1);
    cr_assert_str_eq (names [0], "score");
    db_destroy (&db);
}

//  Payoff counters: whole run, and a recent window of one to two buckets.
Test (db, payoff_counters_and_recent_window)
{
    db_t *db = s_population ();
    db_set_payoff_window (db, 10);
    db_wdl_t d = { .episodes = 4, .wins = 2, .draws = 1, .losses = 1, .score_sum = 3 };
    for (int k = 0; k < 7; k++)
        cr_assert_eq (db_payoff_add (db, 0, 0, 1, 0, &d, 100 + k), 0);
    db_wdl_t frozen = { .episodes = 2, .wins = 0, .draws = 0, .losses = 2, .score_sum = -4 };
    cr_assert_eq (db_payoff_add (db, 0, 0, 1, 7, &frozen, 200), 0);
    db_wdl_t bad = { .episodes = 3, .wins = 1 };
    cr_assert_eq (db_payoff_add (db, 0, 0, 1, 0, &bad, 300), -1);
    db_payoff_t cells [8];
    cr_assert_eq (db_payoff_list (db, cells, 8), 2);
    cr_assert_eq (cells [0].opp_version, 0);
    cr_assert_eq (cells [0].all.episodes, 28);
    cr_assert_eq (cells [0].all.wins, 14);
    cr_assert_float_eq (cells [0].all.score_sum, 21, 1e-12);
    //  Buckets of 4, 8, 12 (full: >= 10) -> prev 12, cur 4, 8, 12 -> prev 12,
    //  cur 4: recent = 16 episodes, between one and two windows.
    cr_assert_eq (cells [0].recent.episodes, 16);
    cr_assert_eq (cells [0].recent.wins, 8);
    cr_assert_eq (cells [0].recent.draws + cells [0].recent.losses, 8);
    cr_assert_eq (cells [0].updated_at, 106);
    cr_assert_eq (cells [1].opp_version, 7);
    cr_assert_eq (cells [1].all.losses, 2);
    db_destroy (&db);
}

//  Raw per-episode rows against the aggregates, as SQL on the file.
static const char *s_agg_mismatch =
    "SELECT COUNT(*) FROM result_seats r WHERE "
    "r.episodes != (SELECT COUNT(*) FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot) "
    "OR abs(r.score_sum - (SELECT SUM(s.score) FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot)) > 1e-9 "
    "OR r.rating_after != (SELECT s.rating_after FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot ORDER BY m.id DESC LIMIT 1) "
    "OR r.wins != (SELECT COUNT(*) FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot AND s.score > "
    "  (SELECT SUM(o.score) FROM match_seats o WHERE o.match_id = s.match_id AND o.team != s.team)) "
    "OR r.losses != (SELECT COUNT(*) FROM match_seats s JOIN matches m ON m.id = s.match_id "
    "  WHERE m.assignment_id = r.assignment_id AND s.slot = r.slot AND s.score < "
    "  (SELECT SUM(o.score) FROM match_seats o WHERE o.match_id = s.match_id AND o.team != s.team))";

static const char *s_payoff_mismatch =
    "SELECT COUNT(*) FROM payoff p WHERE p.episodes != (SELECT COUNT(*) FROM match_seats s "
    "JOIN match_seats o ON o.match_id = s.match_id AND o.team != s.team "
    "WHERE s.agent_id = p.agent_id AND COALESCE(s.frozen_version, 0) = p.version "
    "AND o.agent_id = p.opp_id AND COALESCE(o.frozen_version, 0) = p.opp_version) "
    "OR p.wins != (SELECT COUNT(*) FROM match_seats s "
    "JOIN match_seats o ON o.match_id = s.match_id AND o.team != s.team "
    "WHERE s.agent_id = p.agent_id AND COALESCE(s.frozen_version, 0) = p.version "
    "AND o.agent_id = p.opp_id AND COALESCE(o.frozen_version, 0) = p.opp_version AND s.score > o.score)";

//  The aggregates a result writes equal what its episode rows say; the
//  series hold one point per result per agent until they merge.
Test (db, aggregates_equal_episode_rows)
{
    db_t *db = s_population ();
    s_train (db, 0, 1, 5);
    s_train (db, 2, 0, 3);
    s_train (db, 3, 2, 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats"), 20);
    cr_assert_eq (s_sql_int (s_agg_mismatch), 0);
    cr_assert_eq (s_sql_int (s_payoff_mismatch), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM payoff"), 6);
    //  agents.matches equals the episodes of its live seats.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM agents g WHERE g.matches != (SELECT SUM(episodes) "
                             "FROM result_seats WHERE agent_id = g.id AND frozen_version IS NULL)"), 0);
    db_point_t p [16];
    int64_t total;
    cr_assert_eq (db_series_read (db, 0, "rating", 0, p, 16, &total), 8);
    db_agent_t a0;
    cr_assert_eq (db_load_agent (db, 0, &a0), 0);
    cr_assert_float_eq (p [7].last, a0.rating, 1e-12);
    cr_assert_str_eq (p [7].label, "agt_2");
    cr_assert_str_eq (p [0].label, "agt_1");
    cr_assert_eq (db_series_read (db, 0, "score", 0, p, 16, &total), 8);
    cr_assert_float_eq (p [0].mean, (3 - 1) / 2.0, 1e-12);
    cr_assert_float_eq (p [0].weight, 2, 1e-12);
    db_destroy (&db);
}

//  Without episode rows a result writes only its aggregates, and results
//  beyond results_keep go with their seats; counters stay exact.
Test (db, results_keep_without_episode_rows)
{
    db_t *db = s_population ();
    db_set_episode_rows (db, false);
    db_set_results_keep (db, 3);
    s_train (db, 0, 1, 6);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments"), 3);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats"), 6);
    cr_assert_eq (s_sql_int ("SELECT MIN(assignment_id) FROM result_seats"), 4);
    cr_assert_eq (db_count_results (db), 6);
    cr_assert_eq (s_sql_int ("SELECT matches FROM agents WHERE id = 0"), 12);
    cr_assert_eq (s_sql_int ("SELECT episodes FROM payoff WHERE agent_id = 0 AND opp_id = 1"), 12);
    db_point_t p [16];
    int64_t total;
    cr_assert_eq (db_series_read (db, 1, "score", 0, p, 16, &total), 6);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
    db_destroy (&db);
}

//  A version 4 file (episode rows only) upgrades to aggregates, series
//  and payoff equal to what version 5 writes for the same results.
Test (db, upgrades_schema_v4_carrying_history_over)
{
    db_t *db = s_population ();
    s_train (db, 0, 1, 4);
    s_train (db, 2, 3, 3);
    s_train (db, 1, 2, 2);
    db_destroy (&db);
    int64_t want_rows = s_sql_int ("SELECT COUNT(*) FROM result_seats");
    int64_t want_eps = s_sql_int ("SELECT SUM(episodes) FROM payoff");
    s_sql_exec ("CREATE TABLE want AS SELECT assignment_id, slot, agent_id, team, opponent, episodes, "
                "wins, draws, losses, score_sum, rating_after, ts FROM result_seats");
    s_sql_exec ("DROP TABLE result_seats; DROP TABLE series_points; DROP TABLE series; "
                "DROP TABLE payoff; PRAGMA user_version = 4");
    db = db_new (s_path);
    cr_assert_not_null (db);
    cr_assert_eq (s_sql_int ("PRAGMA user_version"), DB_SCHEMA_VERSION);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats"), want_rows);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM want w JOIN result_seats r USING "
                             "(assignment_id, slot, agent_id, team, opponent, episodes, wins, draws, "
                             "losses, score_sum, rating_after, ts)"), want_rows);
    cr_assert_eq (s_sql_int (s_agg_mismatch), 0);
    cr_assert_eq (s_sql_int (s_payoff_mismatch), 0);
    cr_assert_eq (s_sql_int ("SELECT SUM(episodes) FROM payoff"), want_eps);
    //  Every agent's history: one point per result it played.
    for (int64_t agent = 0; agent < 4; agent++) {
        char sql [128];
        snprintf (sql, sizeof sql, "SELECT COUNT(*) FROM want WHERE agent_id = %" PRId64, agent);
        db_point_t p [16];
        int64_t total;
        cr_assert_eq (db_series_read (db, agent, "rating", 0, p, 16, &total), s_sql_int (sql));
        db_agent_t a;
        cr_assert_eq (db_load_agent (db, agent, &a), 0);
        cr_assert_float_eq (p [total - 1].last, a.rating, 1e-12);
    }
    cr_assert_eq (db_integrity_check (db), 0);
    db_destroy (&db);
}
