/*  match_run end to end: real PPO training runs on rps against scripted
    opponents must reach near-optimal play, runs must be reproducible from
    the seed, and bad assignments must be refused with a reason. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "nn.h"
#include "rng.h"
#include "settings.h"

//  An rps assignment: seat 0 a fresh agent (trained), seat 1 the script.
static void
s_assign (proto_assign_t *a, const char *script, bool obs_both, int iterations, uint64_t seed)
{
    memset (a, 0, sizeof *a);
    a->assignment_id = 7;
    a->seed = seed;
    strcpy (a->env, "rps");
    if (obs_both)
        proto_kvs_set (&a->env_options, "obs_both", 1);
    proto_kvs_set (&a->ppo, "iterations", iterations);
    //  64 environments: what these learning runs were measured with.
    proto_kvs_set (&a->ppo, "n_envs", 64);
    a->model = (proto_model_t) { .obs_dim = obs_both ? 6 : 3, .n_actions = 3, .n_hidden = 2,
                                 .hidden = { 64, 64 } };
    strcpy (a->model.activation, "tanh");
    nn_arch_t arch;
    char err [128];
    cr_assert_eq (nn_arch_from_proto (&arch, &a->model, err, sizeof err), 0, "%s", err);
    a->n_seats = 2;
    proto_seat_t *s0 = &a->seats [0];
    s0->id = 1;
    s0->version = 3;
    s0->slot = 0;
    s0->train = true;
    cr_assert_eq (proto_state_alloc (&s0->state, (uint32_t) nn_param_count (&arch)), 0);
    rng_t rng;
    rng_seed (&rng, seed + 100);
    nn_init (&arch, s0->state.params, &rng);
    proto_seat_t *s1 = &a->seats [1];
    s1->id = -1;
    s1->slot = 1;
    strcpy (s1->script, script);
}

static void
s_assign_free (proto_assign_t *a)
{
    for (uint32_t s = 0; s < a->n_seats; s++)
        proto_state_free (&a->seats [s].state);
}

//  Mean episode score of seat 0 over a result.
static double
s_mean_score (const proto_result_t *r)
{
    double s = 0;
    for (uint32_t e = 0; e < r->n_episodes; e++)
        s += r->scores [e * r->n_seats];
    return r->n_episodes ? s / r->n_episodes : -99;
}

//  Train seat 0 against `script`, then evaluate the trained weights (frozen)
//  in a separate match; returns the evaluation's mean score.
static double
s_train_and_eval (const char *script, bool obs_both, int iterations, double lr)
{
    proto_assign_t a;
    s_assign (&a, script, obs_both, iterations, 42);
    proto_kvs_set (&a.seats [0].hparams, "lr", lr);
    proto_result_t r;
    char err [256];
    cr_assert_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq (r.seats [0].state.n_params, a.seats [0].state.n_params);
    cr_expect_eq (r.seats [0].frames, (uint64_t) 64 * 128 * iterations);
    cr_expect_eq (r.seats [0].state.adam_t, (uint64_t) 16 * iterations);
    cr_expect_eq (r.seats [0].version, 3);
    cr_expect_eq (r.seats [1].id, -1);
    cr_expect_eq (r.seats [1].state.n_params, 0);
    //  Evaluate: same net, frozen, new seed.
    memcpy (a.seats [0].state.params, r.seats [0].state.params,
            sizeof (float) * a.seats [0].state.n_params);
    a.seats [0].train = false;
    a.seed = 4242;
    proto_kvs_set (&a.ppo, "iterations", 1);
    proto_result_t ev;
    cr_assert_eq (match_run (&a, &ev, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_eq (ev.seats [0].frames, 0);
    cr_expect_eq (ev.seats [0].state.n_params, 0);
    cr_expect_eq (ev.n_episodes, 64 * (128 / 10));   // 12 whole episodes per env
    double before = s_mean_score (&r), after = s_mean_score (&ev);
    cr_log_info ("vs %s (obs_both=%d): mean score during training %.3f, evaluation %.3f over %u episodes",
                 script, obs_both, before, after, ev.n_episodes);
    match_result_clear (&r);
    match_result_clear (&ev);
    s_assign_free (&a);
    return after;
}

Test (learn, beats_always_same, .timeout = 60)
{
    //  Round 1 is blind, so 9 is the best expected score per 10 rounds.
    double score = s_train_and_eval ("always-same", false, 40, 1e-3);
    cr_expect (score >= 8.0, "mean score %.3f vs always-same", score);
}

Test (learn, beats_beat_last_with_obs_both, .timeout = 60)
{
    //  Seeing its own previous move, the agent can predict every round: 10 is the best.
    double score = s_train_and_eval ("beat-last", true, 40, 1e-3);
    cr_expect (score >= 8.0, "mean score %.3f vs beat-last", score);
}

Test (learn, deterministic_from_seed)
{
    proto_assign_t a;
    s_assign (&a, "random", false, 2, 9);
    proto_result_t r1, r2, r3;
    char err [256];
    cr_assert_eq (match_run (&a, &r1, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq (match_run (&a, &r2, NULL, NULL, err, sizeof err), 0, "%s", err);
    size_t n = r1.seats [0].state.n_params;
    cr_assert (n > 0);
    cr_expect (memcmp (r1.seats [0].state.params, r2.seats [0].state.params, n * sizeof (float)) == 0);
    cr_expect (memcmp (r1.seats [0].state.adam_m, r2.seats [0].state.adam_m, n * sizeof (float)) == 0);
    cr_expect (memcmp (r1.seats [0].state.adam_v, r2.seats [0].state.adam_v, n * sizeof (float)) == 0);
    cr_assert_eq (r1.n_episodes, r2.n_episodes);
    cr_expect (memcmp (r1.scores, r2.scores, sizeof (float) * r1.n_episodes * 2) == 0);
    //  Training moved the weights; another seed trains differently.
    cr_expect (memcmp (r1.seats [0].state.params, a.seats [0].state.params, n * sizeof (float)) != 0);
    a.seed = 10;
    cr_assert_eq (match_run (&a, &r3, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect (memcmp (r1.seats [0].state.params, r3.seats [0].state.params, n * sizeof (float)) != 0);
    match_result_clear (&r1);
    match_result_clear (&r2);
    match_result_clear (&r3);
    s_assign_free (&a);
}

Test (learn, self_play_zero_sum)
{
    //  Two trained agents: each episode's scores cancel, both states come back.
    proto_assign_t a;
    s_assign (&a, "random", false, 1, 5);
    proto_seat_t *s1 = &a.seats [1];
    s1->id = 2;
    s1->train = true;
    cr_assert_eq (proto_state_alloc (&s1->state, a.seats [0].state.n_params), 0);
    memcpy (s1->state.params, a.seats [0].state.params, sizeof (float) * s1->state.n_params);
    proto_kvs_set (&a.ppo, "n_envs", 16);
    proto_kvs_set (&a.ppo, "n_steps", 20);
    proto_result_t r;
    char err [256];
    cr_assert_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_eq (r.n_episodes, 16 * 20 / 10);
    for (uint32_t e = 0; e < r.n_episodes; e++)
        cr_expect_eq (r.scores [2 * e] + r.scores [2 * e + 1], 0.0f);
    cr_expect (r.seats [0].state.n_params > 0 && r.seats [1].state.n_params > 0);
    cr_expect_eq (r.seats [1].frames, 16 * 20);
    cr_expect (r.samples_per_s > 0 && r.seconds > 0);
    match_result_clear (&r);
    s_assign_free (&a);
}

static bool
s_stop_after_one (void *arg, uint64_t frames_done)
{
    uint64_t *seen = arg;
    *seen = frames_done;
    return false;
}

Test (learn, abort_from_progress)
{
    proto_assign_t a;
    s_assign (&a, "random", false, 5, 1);
    proto_kvs_set (&a.ppo, "n_envs", 8);
    proto_kvs_set (&a.ppo, "n_steps", 16);
    proto_result_t r;
    char err [256] = "";
    uint64_t seen = 0;
    cr_assert_eq (match_run (&a, &r, s_stop_after_one, &seen, err, sizeof err), -1);
    cr_expect_str_eq (err, "aborted");
    cr_expect_eq (seen, 8 * 16);
    cr_expect_null (r.scores);
    cr_expect_eq (r.seats [0].state.n_params, 0);
    s_assign_free (&a);
}

Test (learn, refuses_bad_assignments)
{
    proto_assign_t a;
    s_assign (&a, "random", false, 1, 1);
    proto_result_t r;
    char err [256];
    a.seats [0].state.n_params -= 1;
    cr_expect_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "params"), "%s", err);
    a.seats [0].state.n_params += 1;
    strcpy (a.seats [1].script, "paper-only");
    cr_expect_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "paper-only"), "%s", err);
    strcpy (a.seats [1].script, "random");
    proto_kvs_set (&a.ppo, "minibatches", 3);
    cr_expect_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "minibatches"), "%s", err);
    proto_kvs_set (&a.ppo, "minibatches", 4);
    proto_kvs_set (&a.env_options, "rounds", 3);
    cr_expect_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "rounds"), "%s", err);
    a.env_options.count = 0;
    strcpy (a.env, "chess");
    cr_expect_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "chess"), "%s", err);
    s_assign_free (&a);
}

Test (learn, seat_statistics)
{
    //  Self-play for 2 iterations of 16 envs x 20 steps, rps episodes of
    //  10 rounds: 64 episodes, each exactly 10 decisions long; zero-sum,
    //  so the two seats' game returns cancel and equal the mean score; rps
    //  has no shaping; 2 iterations x 4 epochs x 4 minibatches = 32 updates.
    proto_assign_t a;
    s_assign (&a, "random", false, 2, 11);
    proto_seat_t *s1 = &a.seats [1];
    s1->id = 2;
    s1->train = true;
    cr_assert_eq (proto_state_alloc (&s1->state, a.seats [0].state.n_params), 0);
    memcpy (s1->state.params, a.seats [0].state.params, sizeof (float) * s1->state.n_params);
    proto_kvs_set (&a.ppo, "n_envs", 16);
    proto_kvs_set (&a.ppo, "n_steps", 20);
    proto_kvs_set (&a.seats [0].hparams, "lr", 0.003);
    proto_result_t r;
    char err [256];
    cr_assert_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
    double score0 = 0;
    for (uint32_t e = 0; e < r.n_episodes; e++)
        score0 += r.scores [2 * e];
    score0 /= r.n_episodes;
    for (int s = 0; s < 2; s++) {
        const proto_stats_t *st = &r.seats [s].stats;
        cr_assert (r.seats [s].has_stats, "seat %d has no stats", s);
        cr_expect_eq (st->count [PROTO_STAT_PER_EPISODE], 64);
        cr_expect_eq (st->count [PROTO_STAT_PER_UPDATE], 32);
        cr_expect_eq (st->value [PROTO_STAT_EPISODE_LENGTH], 10.0);
        cr_expect_eq (st->value [PROTO_STAT_SHAPED_RETURN], 0.0);
        cr_expect_float_eq (st->value [PROTO_STAT_GAME_RETURN], s == 0 ? score0 : -score0, 1e-9);
        cr_expect (st->value [PROTO_STAT_ENTROPY] > 0 && st->value [PROTO_STAT_ENTROPY] <= log (3.0) + 1e-6);
        cr_expect (proto_stats_has (st, PROTO_STAT_EXPLAINED_VARIANCE));
        cr_expect_eq (st->count [PROTO_STAT_PER_ITERATION], 2);
    }
    //  The lr each seat trained with: its own hparam, else the worker's default.
    cr_expect_eq (r.seats [0].stats.value [PROTO_STAT_LR], (double) 0.003f);
    cr_expect_eq (r.seats [1].stats.value [PROTO_STAT_LR], (double) 2.5e-4f);
    match_result_clear (&r);
    //  Against a script: only the trained seat reports.
    s1->id = -1;
    s1->train = false;
    proto_state_free (&s1->state);
    cr_assert_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect (r.seats [0].has_stats && !r.seats [1].has_stats);
    match_result_clear (&r);
    //  Not training (evaluation): nothing to report.
    a.seats [0].train = false;
    cr_assert_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect (!r.seats [0].has_stats);
    match_result_clear (&r);
    s_assign_free (&a);
}

//  ---------------------------------------------------------------------
//  The worker's checks are lib/settings.c's: a value just outside a key's
//  range is refused with the key's name, and a key an assignment leaves
//  out takes the table's default (the one pbtd sends).

//  Just outside [min, max] on the side `above`, or NAN if unbounded there.
static double
s_outside (const setting_t *s, bool above)
{
    if (s->type == SETTING_BOOL)
        return above ? 2 : -1;
    double bound = above ? s->max : s->min;
    if (fabs (bound) >= 1e15)
        return NAN;
    double step = s->type == SETTING_INT ? 1 : fmax (1e-6, fabs (bound) * 1e-6);
    return above ? bound + step : bound - step;
}

Test (learn, worker_refuses_what_the_table_refuses)
{
    int checked = 0;
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        bool seat = !strcmp (s->section, "hparam");
        if (!seat && strcmp (s->section, "ppo"))
            continue;
        for (int above = 0; above < 2; above++) {
            double v = s_outside (s, above);
            if (isnan (v))
                continue;
            proto_assign_t a;
            s_assign (&a, "random", false, 1, 5);
            proto_kvs_set (&a.ppo, "n_envs", 2);
            proto_kvs_set (&a.ppo, "n_steps", 10);
            proto_kvs_set (&a.ppo, "minibatches", 1);
            proto_kvs_set (seat ? &a.seats [0].hparams : &a.ppo, s->name, v);
            proto_result_t r;
            char err [256] = "";
            int rc = match_run (&a, &r, NULL, NULL, err, sizeof err);
            if (rc == 0)
                match_result_clear (&r);
            cr_expect_eq (rc, -1, "%s.%s = %g was accepted", s->section, s->name, v);
            cr_expect (strstr (err, s->name), "%s.%s = %g: '%s' does not name it",
                       s->section, s->name, v, err);
            s_assign_free (&a);
            checked++;
        }
    }
    //  9 [ppo] keys and 5 hyperparameters, each just below and just above.
    cr_expect_eq (checked, 28);
}

Test (learn, worker_defaults_are_the_tables)
{
    //  The run pbtd's embedded default asks for: 32 envs x 128 steps x 8
    //  iterations, when the assignment carries no [ppo] key at all.
    proto_assign_t a;
    s_assign (&a, "random", false, 1, 5);
    memset (&a.ppo, 0, sizeof a.ppo);
    proto_result_t r;
    char err [256];
    cr_assert_eq (match_run (&a, &r, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_eq (r.seats [0].frames, 32 * 128 * 8);
    cr_expect_eq (r.seats [0].frames, (uint64_t) (settings_default ("ppo", "n_envs")
                  * settings_default ("ppo", "n_steps") * settings_default ("ppo", "iterations")));
    match_result_clear (&r);
    s_assign_free (&a);
}
