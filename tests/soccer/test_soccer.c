/*  Tests for env_soccer: physics invariants, hand-worked collisions and
    shaping values, determinism, episode ends, observation layout/mirroring,
    scripts and the SVG replay. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "soccer.h"
#include "proto.h"
#include "rng.h"

#define D SOCCER_OBS_DIM

//  The game linked in, checked and run exactly as its plugin would be.
static const pbt_env_t *C = &pbt_env_entry;
static char err_ [512];
#define E_ err_, sizeof err_

static const envspec_t *
s_spec (void)
{
    static envspec_t *spec;
    if (!spec)
        spec = envspec_wrap (&pbt_env_entry, "envs/soccer.c", E_);
    cr_assert (spec, "%s", err_);
    return spec;
}

typedef struct {
    int n;
    env_vec_t *vec;
    float *obs, *rew, *shp, *scores;
    uint8_t *term;
    int32_t *act;
} run_t;

static run_t
s_run_new (int n_envs, uint64_t seed, const proto_kvs_t *opts)
{
    run_t r = { .n = n_envs };
    r.vec = env_vec_new (s_spec (), n_envs, seed, opts, E_);
    cr_assert_not_null (r.vec);
    r.obs = calloc ((size_t) n_envs * 4 * D, sizeof (float));
    r.rew = calloc ((size_t) n_envs * 4, sizeof (float));
    r.shp = calloc ((size_t) n_envs * 4 * 2, sizeof (float));
    r.scores = calloc ((size_t) n_envs * 4, sizeof (float));
    r.term = calloc ((size_t) n_envs, 1);
    r.act = calloc ((size_t) n_envs * 4, sizeof (int32_t));
    cr_assert_eq (env_vec_reset (r.vec, r.obs, E_), 0, "%s", err_);
    return r;
}

static void
s_run_step (run_t *r)
{
    cr_assert_eq (env_vec_step (r->vec, r->act, r->obs, r->rew, r->shp, r->term, r->scores, E_), 0, "%s", err_);
}

static void
s_run_free (run_t *r)
{
    env_vec_destroy (&r->vec);
    cr_assert_null (r->vec);
    free (r->obs); free (r->rew); free (r->shp); free (r->scores); free (r->term); free (r->act);
}

static proto_kvs_t
s_fixed_field (void)
{
    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "random_field", 0);
    return o;
}

//  A 24 x 18 field with everyone at rest, far from the centre: players at
//  the four corners' neighbourhood, the ball at the centre spot.
static soccer_state_t
s_quiet_state (void)
{
    soccer_state_t s = { .w = 24, .h = 18 };
    float px [4] = { -9, -9, 9, 9 }, py [4] = { -6, 6, -6, 6 };
    for (int i = 0; i < 4; i++) {
        s.x [i] = px [i];
        s.y [i] = py [i];
    }
    return s;
}

Test (soccer, class_metadata)
{
    cr_assert_str_eq (C->name, "soccer");
    cr_assert_eq (C->n_players, 4);
    cr_assert_eq (C->n_teams, 2);
    cr_assert_eq (C->n_actions, 18);
    cr_assert_eq (C->n_shaping, 2);
    cr_assert_str_eq (C->shaping_names [0], "vel_to_ball");
    cr_assert_str_eq (C->shaping_names [1], "vel_ball_to_goal");
    cr_assert_str_eq (C->scripts [0], "random");
    cr_assert_str_eq (C->scripts [1], "chaser");
    cr_assert_eq (C->n_scripts, 2);
    cr_assert_eq (envspec_obs_dim (s_spec (), NULL), 28);
}

Test (soccer, options_checked)
{
    char err [256];
    proto_kvs_t o = { 0 };
    cr_assert_eq (envspec_options (s_spec (), &o, NULL, err, sizeof err), 0);
    proto_kvs_set (&o, "episode_steps", 100);
    proto_kvs_set (&o, "random_field", 0);
    cr_assert_eq (envspec_options (s_spec (), &o, NULL, err, sizeof err), 0);
    proto_kvs_set (&o, "field_min_w", 20);
    cr_assert_eq (envspec_options (s_spec (), &o, NULL, err, sizeof err), -1);
    cr_assert (strstr (err, "field_min_w"), "error names the key: %s", err);
    cr_assert_null (env_vec_new (s_spec (), 1, 1, &o, E_));

    proto_kvs_t bad = { 0 };
    proto_kvs_set (&bad, "episode_steps", 0.5);
    cr_assert_eq (envspec_options (s_spec (), &bad, NULL, err, sizeof err), -1);
    cr_assert (strstr (err, "episode_steps"));
    proto_kvs_t bad2 = { 0 };
    proto_kvs_set (&bad2, "random_field", 2);
    cr_assert_eq (envspec_options (s_spec (), &bad2, NULL, err, sizeof err), -1);
    cr_assert (strstr (err, "random_field"));
    double repeats [] = { 0, 1.5, 101, -4 };
    for (int i = 0; i < 4; i++) {
        proto_kvs_t bad3 = { 0 };
        proto_kvs_set (&bad3, "action_repeat", repeats [i]);
        cr_assert_eq (envspec_options (s_spec (), &bad3, NULL, err, sizeof err), -1, "%g", repeats [i]);
        cr_assert (strstr (err, "action_repeat"));
    }
    proto_kvs_t ok = { 0 };
    proto_kvs_set (&ok, "action_repeat", 100);
    cr_assert_eq (envspec_options (s_spec (), &ok, NULL, err, sizeof err), 0);
}

//  action_repeat=4: one step is exactly four ticks of the same actions in
//  an env without repeat (same seed, so the same episodes), shaping is the
//  mean of the four ticks', and a goal in the middle of a step ends it
//  there. Team 0 plays chaser so that goals happen.
Test (soccer, action_repeat_is_repeated_ticks)
{
    proto_kvs_t o4 = { 0 };
    proto_kvs_set (&o4, "action_repeat", 4);
    run_t a = s_run_new (1, 11, &o4), b = s_run_new (1, 11, NULL);
    cr_assert_eq (memcmp (a.obs, b.obs, 4 * D * sizeof (float)), 0);
    int goals = 0, short_steps = 0;
    for (int t = 0; t < 3000; t++) {
        cr_assert_eq (env_vec_script_act (a.vec, 1, 0, a.act, E_), 0, "%s", err_);
        cr_assert_eq (env_vec_script_act (a.vec, 1, 1, a.act, E_), 0, "%s", err_);
        cr_assert_eq (env_vec_script_act (a.vec, 0, 2, a.act, E_), 0, "%s", err_);
        cr_assert_eq (env_vec_script_act (a.vec, 0, 3, a.act, E_), 0, "%s", err_);
        memcpy (b.act, a.act, 4 * sizeof (int32_t));
        s_run_step (&a);
        float mean [8] = { 0 };
        int ticks = 0;
        do {
            s_run_step (&b);
            for (int c = 0; c < 8; c++)
                mean [c] += b.shp [c];
            ticks++;
        } while (!b.term [0] && ticks < 4);
        cr_assert_eq (a.term [0], b.term [0], "t=%d", t);
        cr_assert_eq (memcmp (a.obs, b.obs, 4 * D * sizeof (float)), 0, "t=%d", t);
        cr_assert_eq (memcmp (a.rew, b.rew, 4 * sizeof (float)), 0, "t=%d", t);
        for (int c = 0; c < 8; c++)
            cr_assert_float_eq (a.shp [c], mean [c] / ticks, 1e-5, "t=%d c=%d", t, c);
        if (a.term [0]) {
            cr_assert_eq (memcmp (a.scores, b.scores, 4 * sizeof (float)), 0);
            goals += a.rew [0] != 0;
            short_steps += ticks < 4;
        }
        soccer_state_t sa, sb;
        soccer_debug_get_state (env_vec_self (a.vec), 0, &sa);
        soccer_debug_get_state (env_vec_self (b.vec), 0, &sb);
        cr_assert_eq (sa.step, sb.step);
    }
    //  Chaser against random scores every few hundred ticks; most goals
    //  fall on a tick other than a step's last.
    cr_assert (goals >= 10, "goals=%d", goals);
    cr_assert (short_steps >= 3, "short_steps=%d", short_steps);
    s_run_free (&a);
    s_run_free (&b);
}

//  The time limit counts ticks: 50 ticks with repeat 4 are 12 full steps
//  (48 ticks) and a 13th of 2 ticks.
Test (soccer, action_repeat_time_limit_in_ticks)
{
    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "action_repeat", 4);
    proto_kvs_set (&o, "episode_steps", 50);
    run_t r = s_run_new (1, 3, &o);
    for (int t = 1; t <= 13; t++) {
        s_run_step (&r);
        cr_assert_eq (r.term [0], t == 13, "t=%d", t);
        if (t == 12)
            cr_assert_float_eq (r.obs [26], 48.0f / 50.0f, 1e-6);
    }
    cr_assert_float_eq (r.obs [26], 0, 0);
    s_run_free (&r);
}

//  Ball rolling fast into a goal mouth ends the episode with +1/-1.
static void
s_goal_case (float dir)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (2, 7, &o);
    soccer_state_t s = s_quiet_state ();
    s.x [4] = dir * 10.0f;
    s.y [4] = 1.0f;                 // inside the mouth (half width 2.7 m)
    s.vx [4] = dir * 10.0f;
    soccer_debug_set_state (env_vec_self (r.vec), 1, &s);
    float want0 = dir > 0 ? 1.0f : -1.0f;
    int steps = 0;
    while (!r.term [1] && steps < 40) {
        s_run_step (&r);
        steps++;
    }
    //  2 m at ~10 m/s is 8 or 9 steps of 0.025 s.
    cr_assert (r.term [1], "goal ended the episode");
    cr_assert (steps >= 7 && steps <= 10, "steps=%d", steps);
    cr_assert_float_eq (r.rew [4 + 0], want0, 0);
    cr_assert_float_eq (r.rew [4 + 1], want0, 0);
    cr_assert_float_eq (r.rew [4 + 2], -want0, 0);
    cr_assert_float_eq (r.rew [4 + 3], -want0, 0);
    for (int p = 0; p < 4; p++)
        cr_assert_float_eq (r.scores [4 + p], r.rew [4 + p], 0);
    //  Auto-reset: the new episode starts at step 0 with the ball in play.
    soccer_state_t after;
    soccer_debug_get_state (env_vec_self (r.vec), 1, &after);
    cr_assert_eq (after.step, 0);
    cr_assert_float_eq (after.x [4], 0, 0);
    cr_assert_float_eq (r.obs [(4 + 0) * D + 26], 0, 0);
    s_run_free (&r);
}

Test (soccer, goal_plus_x_team0_scores) { s_goal_case (1.0f); }
Test (soccer, goal_minus_x_team1_scores) { s_goal_case (-1.0f); }

//  full_time = 1: a goal pays its +-1 at once and play restarts from a
//  kick-off on the same field and clock; the episode ends at the time
//  limit, scoring the goal difference (+2 - 1 = +1 here).
Test (soccer, full_time_restarts_after_goals_and_scores_the_difference)
{
    proto_kvs_t o = s_fixed_field ();
    proto_kvs_set (&o, "full_time", 1);
    proto_kvs_set (&o, "episode_steps", 200);
    run_t r = s_run_new (1, 7, &o);
    float dirs [3] = { 1.0f, -1.0f, 1.0f };
    float sum = 0;
    int steps = 0, goals = 0;
    for (int k = 0; k < 3; k++) {
        soccer_state_t s;
        soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
        int clock = s.step;
        s = s_quiet_state ();
        s.step = clock;
        s.x [4] = dirs [k] * 10.0f;
        s.y [4] = 1.0f;
        s.vx [4] = dirs [k] * 10.0f;
        soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
        for (int t = 0; t < 12; t++) {
            s_run_step (&r);
            steps++;
            cr_assert (!r.term [0], "a goal ended a full-time episode at step %d", steps);
            sum += r.rew [0];
            if (r.rew [0] != 0) {
                goals++;
                cr_assert_float_eq (r.rew [0], dirs [k], 0);
                cr_assert_float_eq (r.rew [2], -dirs [k], 0);
                //  Kick-off: ball back on the centre line, at rest, clock running.
                soccer_state_t after;
                soccer_debug_get_state (env_vec_self (r.vec), 0, &after);
                cr_assert_float_eq (after.x [4], 0, 0);
                cr_assert_float_eq (after.vx [4], 0, 0);
                cr_assert_eq (after.step, steps);
                cr_assert_float_eq (after.w, 24, 0);
                break;
            }
        }
    }
    cr_assert_eq (goals, 3);
    while (!r.term [0]) {
        s_run_step (&r);
        steps++;
        sum += r.rew [0];
        cr_assert_leq (steps, 200);
    }
    cr_assert_eq (steps, 200, "ended at step %d", steps);
    //  Players at rest never reach a goal on their own: only the three goals counted.
    cr_assert_float_eq (sum, 1.0f, 0);
    cr_assert_float_eq (r.scores [0], 1.0f, 0);
    cr_assert_float_eq (r.scores [1], 1.0f, 0);
    cr_assert_float_eq (r.scores [2], -1.0f, 0);
    cr_assert_float_eq (r.scores [3], -1.0f, 0);
    s_run_free (&r);
}

Test (soccer, ball_outside_mouth_bounces_off_end_wall)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 7, &o);
    soccer_state_t s = s_quiet_state ();
    s.x [4] = 10.0f;
    s.y [4] = 4.0f;                 // mouth half width is 0.15 * 18 = 2.7
    s.vx [4] = 10.0f;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    for (int t = 0; t < 40; t++) {
        s_run_step (&r);
        cr_assert_eq (r.term [0], 0);
    }
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert (s.vx [4] < 0, "bounced back, vx=%f", s.vx [4]);
    cr_assert (s.x [4] <= 12.0f - SOCCER_BALL_R);
    s_run_free (&r);
}

//  Everything stays on the field (the ball may be in a goal mouth up to the
//  goal line), with random and chaser play, over many seeds and fields.
Test (soccer, nothing_leaves_the_field)
{
    int goals = 0;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        run_t r = s_run_new (16, seed, NULL);
        for (int t = 0; t < 2500; t++) {
            //  Seats alternate scripts per seed so chasers collide and score.
            for (int p = 0; p < 4; p++)
                cr_assert_eq (env_vec_script_act (r.vec, (int) ((seed + (uint64_t) p) % 2), p, r.act, E_), 0, "%s", err_);
            s_run_step (&r);
            for (int e = 0; e < r.n; e++) {
                goals += r.term [e] && r.rew [4 * e] != 0;
                soccer_state_t s;
                soccer_debug_get_state (env_vec_self (r.vec), e, &s);
                float hw = s.w / 2, hh = s.h / 2, gh = 0.15f * s.h, eps = 1e-4f;
                cr_assert (s.w >= 20 && s.w <= 28 && fabsf (s.h - 0.75f * s.w) < 1e-4f);
                for (int i = 0; i < 4; i++) {
                    cr_assert (fabsf (s.x [i]) <= hw - SOCCER_PLAYER_R + eps
                            && fabsf (s.y [i]) <= hh - SOCCER_PLAYER_R + eps,
                               "player %d at (%f,%f) field %fx%f", i, s.x [i], s.y [i], s.w, s.h);
                    float sp = hypotf (s.vx [i], s.vy [i]);
                    cr_assert (isfinite (sp));
                }
                cr_assert (fabsf (s.y [4]) <= hh - SOCCER_BALL_R + eps);
                cr_assert (fabsf (s.x [4]) <= hw - SOCCER_BALL_R + eps
                       || (fabsf (s.y [4]) < gh && fabsf (s.x [4]) <= hw),
                           "ball at (%f,%f)", s.x [4], s.y [4]);
                for (int k = 0; k < 4 * D; k++)
                    cr_assert (isfinite (r.obs [e * 4 * D + k]));
            }
        }
        s_run_free (&r);
    }
    cr_assert (goals > 0, "some goals were scored (%d)", goals);
}

//  Discs do not sink into each other: after every step no pair of players
//  overlaps by more than a small fraction of a radius.
Test (soccer, discs_do_not_penetrate)
{
    run_t r = s_run_new (16, 99, NULL);
    float worst = 0;
    for (int t = 0; t < 3000; t++) {
        for (int p = 0; p < 4; p++)
            cr_assert_eq (env_vec_script_act (r.vec, 1, p, r.act, E_), 0, "%s", err_);     // all chasers: a scrum
        s_run_step (&r);
        for (int e = 0; e < r.n; e++) {
            soccer_state_t s;
            soccer_debug_get_state (env_vec_self (r.vec), e, &s);
            for (int i = 0; i < 5; i++)
                for (int j = i + 1; j < 5; j++) {
                    float rs = (i == 4 ? SOCCER_BALL_R : SOCCER_PLAYER_R)
                             + (j == 4 ? SOCCER_BALL_R : SOCCER_PLAYER_R);
                    float pen = rs - hypotf (s.x [i] - s.x [j], s.y [i] - s.y [j]);
                    if (pen > worst)
                        worst = pen;
                }
        }
    }
    cr_assert (worst < 0.25f * SOCCER_PLAYER_R, "worst overlap %f m", worst);
    s_run_free (&r);
}

Test (soccer, same_seed_same_episode_different_seed_differs)
{
    run_t a = s_run_new (8, 42, NULL), b = s_run_new (8, 42, NULL), c = s_run_new (8, 43, NULL);
    cr_assert_eq (memcmp (a.obs, b.obs, 8 * 4 * D * sizeof (float)), 0);
    cr_assert_neq (memcmp (a.obs, c.obs, 8 * 4 * D * sizeof (float)), 0);
    rng_t rng;
    rng_seed (&rng, 5);
    int ends = 0;
    for (int t = 0; t < 4000; t++) {
        for (int k = 0; k < 32; k++)
            a.act [k] = b.act [k] = c.act [k] = (int32_t) rng_below (&rng, 18);
        s_run_step (&a);
        s_run_step (&b);
        s_run_step (&c);
        cr_assert_eq (memcmp (a.obs, b.obs, 8 * 4 * D * sizeof (float)), 0, "t=%d", t);
        cr_assert_eq (memcmp (a.rew, b.rew, 8 * 4 * sizeof (float)), 0);
        cr_assert_eq (memcmp (a.shp, b.shp, 8 * 4 * 2 * sizeof (float)), 0);
        cr_assert_eq (memcmp (a.term, b.term, 8), 0);
        for (int e = 0; e < 8; e++)
            ends += a.term [e];
    }
    cr_assert (ends >= 8, "episodes ended and reset (%d)", ends);
    cr_assert_neq (memcmp (a.obs, c.obs, 8 * 4 * D * sizeof (float)), 0);
    s_run_free (&a);
    s_run_free (&b);
    s_run_free (&c);
}

Test (soccer, episode_ends_after_1800_steps_with_zero_reward)
{
    //  Nobody moves: the start has everyone at rest and apart, so the only
    //  way the episode can end is the time limit.
    run_t r = s_run_new (4, 3, NULL);
    for (int t = 1; t <= 1800; t++) {
        s_run_step (&r);
        for (int e = 0; e < 4; e++) {
            cr_assert_eq (r.term [e], t == 1800, "t=%d", t);
            for (int p = 0; p < 4; p++)
                cr_assert_float_eq (r.rew [4 * e + p], 0, 0);
            if (t == 1799)
                cr_assert_float_eq (r.obs [e * 4 * D + 26], 1799.0f / 1800.0f, 1e-6);
        }
    }
    for (int k = 0; k < 16; k++)
        cr_assert_float_eq (r.scores [k], 0, 0);
    cr_assert_float_eq (r.obs [26], 0, 0);
    s_run_free (&r);

    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "episode_steps", 50);
    run_t q = s_run_new (1, 3, &o);
    for (int t = 1; t <= 50; t++) {
        s_run_step (&q);
        cr_assert_eq (q.term [0], t == 50);
    }
    s_run_free (&q);
}

Test (soccer, acceleration_max_speed_momentum)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    soccer_state_t s = s_quiet_state ();
    s.x [0] = -8;
    s.y [0] = 0;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    //  One step of "move +x" from rest: dv = 15 m/s^2 * 0.025 s.
    r.act [0] = 1;
    r.act [2] = 1;      // team 1's +x is the world's -x
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vx [0], 0.375f, 1e-6);
    cr_assert_float_eq (s.vy [0], 0.0f, 1e-6);
    cr_assert_float_eq (s.vx [2], -0.375f, 1e-6);
    //  Team frame "north" (move 3) is world -y for team 1.
    r.act [0] = 0;
    r.act [2] = 3;
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vy [2], -0.375f, 1e-6);
    cr_assert_float_eq (s.vx [2], -0.375f * 0.95f, 1e-6);
    cr_assert_float_eq (s.vx [0], 0.375f * 0.95f, 1e-6);   // coasting: damped momentum

    //  Holding a diagonal: speed grows to and stays at the 5 m/s cap (the
    //  uncapped fixed point 0.375 / 0.05 = 7.5 m/s is above it).
    s = s_quiet_state ();
    s.x [0] = -10;
    s.y [0] = -7;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    memset (r.act, 0, sizeof (int32_t) * 4);
    r.act [0] = 2;      // north-east
    float prev = 0;
    for (int t = 0; t < 60; t++) {
        s_run_step (&r);
        soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
        float sp = hypotf (s.vx [0], s.vy [0]);
        cr_assert (sp <= 5.0f + 1e-4f, "speed %f", sp);
        cr_assert (sp >= prev - 1e-5f);
        prev = sp;
    }
    cr_assert (prev > 4.999f, "reached the cap: %f", prev);
    cr_assert_float_eq (s.vx [0], s.vy [0], 1e-5);
    //  Let go: pure exponential decay of the velocity.
    r.act [0] = 0;
    float vx0 = s.vx [0];
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vx [0], 0.95f * vx0, 1e-5);
    s_run_free (&r);
}

Test (soccer, ball_friction_slows_a_free_ball)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    soccer_state_t s = s_quiet_state ();
    s.y [4] = -1;
    s.vx [4] = 10;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    double v = 10, x = 0;
    for (int t = 0; t < 20; t++) {
        s_run_step (&r);
        v *= 0.98;
        x += v * 0.025;
        soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
        cr_assert_float_eq (s.vx [4], v, 1e-4);
        cr_assert_float_eq (s.x [4], x, 1e-4);
        cr_assert_float_eq (s.vy [4], 0, 0);
    }
    cr_assert (s.vx [4] < 10 * 0.7);
    s_run_free (&r);
}

//  Two players head-on, overlapping by 0.1 m, velocities 3 and -1 m/s:
//  damped to 2.85 and -0.95, then with e = 0.5 and equal masses
//  v1' = (v1+v2)/2 - e(v1-v2)/2 = 0.95 - 0.95 = 0, v2' = 0.95 + 0.95 = 1.9.
Test (soccer, head_on_collision_conserves_momentum)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    soccer_state_t s = s_quiet_state ();
    s.x [0] = -0.45f; s.y [0] = 3;
    s.x [1] = 0.45f;  s.y [1] = 3;
    s.vx [0] = 3;
    s.vx [1] = -1;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vx [0], 0.0f, 1e-5);
    cr_assert_float_eq (s.vx [1], 1.9f, 1e-5);
    cr_assert_float_eq (s.vy [0], 0.0f, 1e-6);
    cr_assert_float_eq (s.vy [1], 0.0f, 1e-6);
    cr_assert (s.x [1] - s.x [0] >= 1.0f - 1e-5f, "separated: %f", s.x [1] - s.x [0]);

    //  Ball (0.2 kg, damped to -4.9 m/s) into a resting player (1 kg), e = 0.7:
    //  vb' = (0.2*-4.9 - 1*0.7*(-4.9)) / 1.2 = 2.0416667
    //  vp' = (0.2*-4.9 - 0.2*0.7*4.9) / 1.2 = -1.3883333
    s = s_quiet_state ();
    s.x [0] = 0; s.y [0] = 0;
    s.x [4] = 0.7f; s.y [4] = 0;
    s.vx [4] = -5;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vx [4], 2.0416667f, 1e-5);
    cr_assert_float_eq (s.vx [0], -1.3883333f, 1e-5);
    cr_assert_float_eq (0.2f * s.vx [4] + 1.0f * s.vx [0], 0.2f * -4.9f, 1e-5);
    s_run_free (&r);
}

Test (soccer, kick_in_reach_only)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    soccer_state_t s = s_quiet_state ();
    s.x [0] = 0; s.y [0] = 0;
    s.x [4] = 0.9f; s.y [4] = 0;        // gap 0.15 m: in reach (0.3)
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    r.act [0] = 9;                       // kick, no move
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vx [4], 10.0f, 1e-5);
    cr_assert_float_eq (s.vy [4], 0.0f, 1e-6);

    s = s_quiet_state ();
    s.x [0] = 0; s.y [0] = 0;
    s.x [4] = 0; s.y [4] = 1.2f;        // gap 0.45 m: out of reach
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vy [4], 0.0f, 0);

    //  Team 1 kicks along player -> ball too (here world -x).
    s = s_quiet_state ();
    s.x [2] = 0; s.y [2] = 0;
    s.x [4] = -0.6f; s.y [4] = -0.6f;   // distance 0.849: in reach
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    r.act [0] = 0;
    r.act [2] = 17;                      // kick + move south-east (team frame)
    s_run_step (&r);
    soccer_debug_get_state (env_vec_self (r.vec), 0, &s);
    cr_assert_float_eq (s.vx [4], -10.0f * 0.70710678f, 1e-4);
    cr_assert_float_eq (s.vy [4], -10.0f * 0.70710678f, 1e-4);
    s_run_free (&r);
}

Test (soccer, shaping_hand_worked)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    float sh [8];
    soccer_state_t s = s_quiet_state ();
    //  Player 0 at the origin moving (2,0), ball 3 m ahead: 2 m/s toward it.
    s.x [0] = 0; s.y [0] = 0; s.vx [0] = 2;
    s.x [4] = 3; s.y [4] = 0;
    //  Player 1 moving away from the ball: floored at 0.
    s.x [1] = 6; s.y [1] = 0; s.vx [1] = 2;
    //  Player 2 straight above the ball moving (1,-1): 45 degrees off, 1 m/s.
    s.x [2] = 3; s.y [2] = 4; s.vx [2] = 1; s.vy [2] = -1;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    soccer_debug_observe (env_vec_self (r.vec), 0, NULL, sh);
    cr_assert_float_eq (sh [0], 2.0f, 1e-6);
    cr_assert_float_eq (sh [2], 0.0f, 0);
    cr_assert_float_eq (sh [4], 1.0f, 1e-6);        // (1,-1) . (0,-1)
    //  Ball at rest: no ball-to-goal velocity for anyone.
    cr_assert_float_eq (sh [1], 0.0f, 0);

    //  Ball at the centre moving at 3 m/s, 60 degrees off the +x goal
    //  direction: 3 cos 60 = 1.5 for team 0, -1.5 for team 1.
    s = s_quiet_state ();
    s.vx [4] = 3.0f * 0.5f;
    s.vy [4] = 3.0f * 0.8660254f;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    soccer_debug_observe (env_vec_self (r.vec), 0, NULL, sh);
    cr_assert_float_eq (sh [1], 1.5f, 1e-5);
    cr_assert_float_eq (sh [3], 1.5f, 1e-5);
    cr_assert_float_eq (sh [5], -1.5f, 1e-5);
    cr_assert_float_eq (sh [7], -1.5f, 1e-5);

    //  vec_step writes the shaping of the state after the step.
    s = s_quiet_state ();
    s.x [0] = -4; s.y [0] = 0; s.vx [0] = 2;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    s_run_step (&r);
    cr_assert_float_eq (r.shp [0], 2.0f * 0.95f, 1e-5);
    s_run_free (&r);
}

Test (soccer, observation_layout_hand_worked)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    float ob [4 * D];
    soccer_state_t s = s_quiet_state ();   // 24 x 18: half sizes 12, 9
    s.x [0] = -6; s.y [0] = 3; s.vx [0] = 1; s.vy [0] = -2;
    s.x [4] = 0; s.y [4] = 0; s.vx [4] = 5;
    s.x [2] = 6; s.y [2] = 3;
    s.step = 900;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    soccer_debug_observe (env_vec_self (r.vec), 0, ob, NULL);
    const float *o0 = ob, *o2 = ob + 2 * D;
    cr_assert_float_eq (o0 [0], -0.5f, 1e-6);
    cr_assert_float_eq (o0 [1], 1.0f / 3, 1e-6);
    cr_assert_float_eq (o0 [2], 0.2f, 1e-6);
    cr_assert_float_eq (o0 [3], -0.4f, 1e-6);
    cr_assert_float_eq (o0 [4], 0.5f, 1e-6);          // ball 6 m ahead / 12
    cr_assert_float_eq (o0 [5], -1.0f / 3, 1e-6);
    cr_assert_float_eq (o0 [6], 1.0f, 1e-6);          // 5 m/s / 5
    cr_assert_float_eq (o0 [8], (-9 + 6) / 12.0f, 1e-6);  // teammate (player 1)
    cr_assert_float_eq (o0 [9], (6 - 3) / 9.0f, 1e-6);
    cr_assert_float_eq (o0 [12], 1.0f, 1e-6);         // opponent player 2: 12 m ahead
    cr_assert_float_eq (o0 [13], 0.0f, 1e-6);
    cr_assert_float_eq (o0 [16], 15 / 12.0f, 1e-6);   // player 3 at (9,6)
    cr_assert_float_eq (o0 [20], 1.5f, 1e-6);         // opponents' goal (12,0)
    cr_assert_float_eq (o0 [21], -1.0f / 3, 1e-6);
    cr_assert_float_eq (o0 [22], -0.5f, 1e-6);        // own goal (-12,0)
    cr_assert_float_eq (o0 [24], 24 / 28.0f, 1e-6);
    cr_assert_float_eq (o0 [25], 18 / 21.0f, 1e-6);
    cr_assert_float_eq (o0 [26], 0.5f, 1e-6);
    cr_assert_float_eq (o0 [27], 0.0f, 0);
    //  Player 2 sees the world turned by 180 degrees.
    cr_assert_float_eq (o2 [0], -0.5f, 1e-6);
    cr_assert_float_eq (o2 [1], -1.0f / 3, 1e-6);
    cr_assert_float_eq (o2 [4], 0.5f, 1e-6);
    cr_assert_float_eq (o2 [5], 1.0f / 3, 1e-6);
    cr_assert_float_eq (o2 [6], -1.0f, 1e-6);         // ball moves toward its own goal
    cr_assert_float_eq (o2 [8], (6 - 9) / 12.0f, 1e-6);   // teammate player 3
    cr_assert_float_eq (o2 [12], 1.0f, 1e-6);         // opponent player 0, 12 m ahead
    cr_assert_float_eq (o2 [14], -0.2f, 1e-6);
    cr_assert_float_eq (o2 [15], 0.4f, 1e-6);
    s_run_free (&r);
}

//  A state and its 180-degree turn with the teams swapped look the same to
//  corresponding players: bit-identical observations and shaping.
Test (soccer, team1_view_mirrors_team0)
{
    run_t r = s_run_new (2, 11, NULL);
    rng_t rng;
    rng_seed (&rng, 77);
    for (int trial = 0; trial < 50; trial++) {
        soccer_state_t a = { .w = 20 + 8 * rng_uniformf (&rng), .step = trial };
        a.h = 0.75f * a.w;
        for (int i = 0; i < 5; i++) {
            a.x [i] = (rng_uniformf (&rng) - 0.5f) * (a.w - 2);
            a.y [i] = (rng_uniformf (&rng) - 0.5f) * (a.h - 2);
            a.vx [i] = (rng_uniformf (&rng) - 0.5f) * 8;
            a.vy [i] = (rng_uniformf (&rng) - 0.5f) * 8;
        }
        soccer_state_t b = a;
        const int swap [5] = { 2, 3, 0, 1, 4 };
        for (int i = 0; i < 5; i++) {
            b.x [swap [i]] = -a.x [i];
            b.y [swap [i]] = -a.y [i];
            b.vx [swap [i]] = -a.vx [i];
            b.vy [swap [i]] = -a.vy [i];
        }
        soccer_debug_set_state (env_vec_self (r.vec), 0, &a);
        soccer_debug_set_state (env_vec_self (r.vec), 1, &b);
        float oa [4 * D], ob [4 * D], sa [8], sb [8];
        soccer_debug_observe (env_vec_self (r.vec), 0, oa, sa);
        soccer_debug_observe (env_vec_self (r.vec), 1, ob, sb);
        for (int p = 0; p < 4; p++) {
            cr_assert_eq (memcmp (oa + p * D, ob + swap [p] * D, D * sizeof (float)), 0,
                          "trial %d player %d", trial, p);
            cr_assert_float_eq (sa [2 * p], sb [2 * swap [p]], 1e-5);
            cr_assert_float_eq (sa [2 * p + 1], sb [2 * swap [p] + 1], 1e-5);
        }
        //  The same actions (in each team's frame) keep the two mirrored.
        for (int k = 0; k < 8; k++)
            r.act [k] = (int32_t) rng_below (&rng, 18);
        for (int p = 0; p < 4; p++)
            r.act [4 + swap [p]] = r.act [p];
        s_run_step (&r);
        for (int p = 0; p < 4; p++)
            for (int k = 0; k < D; k++)
                cr_assert_float_eq (r.obs [p * D + k], r.obs [(4 + swap [p]) * D + k], 1e-4,
                                    "after step: trial %d player %d obs %d", trial, p, k);
    }
    s_run_free (&r);
}

//  The chaser script plays soccer: against random movers it scores far more
//  often than it concedes, from either side.
Test (soccer, chaser_beats_random)
{
    run_t r = s_run_new (32, 5, NULL);
    int scored [2] = { 0, 0 };   // [chaser team, random team]
    for (int t = 0; t < 6000; t++) {
        int half = t >= 3000;    // chasers play team 0 first, then team 1
        for (int p = 0; p < 4; p++)
            cr_assert_eq (env_vec_script_act (r.vec, (p < 2) == !half ? 1 : 0, p, r.act, E_), 0, "%s", err_);
        s_run_step (&r);
        for (int e = 0; e < r.n; e++)
            if (r.term [e] && r.rew [4 * e] != 0) {
                int team0_won = r.rew [4 * e] > 0;
                scored [team0_won == !half ? 0 : 1]++;
            }
    }
    cr_assert (scored [0] >= 20 && scored [0] > 4 * scored [1],
               "chaser %d vs random %d", scored [0], scored [1]);
    s_run_free (&r);
}

Test (soccer, replay_svg_written)
{
    char path [] = "/tmp/test_soccer_replay_XXXXXX";
    int fd = mkstemp (path);
    cr_assert (fd >= 0);
    close (fd);
    int rc = soccer_replay_svg (path, 3, 1800, NULL, NULL, NULL, "chaser", "random");
    cr_assert (rc >= 0 && rc <= 2, "rc=%d", rc);
    FILE *f = fopen (path, "r");
    cr_assert_not_null (f);
    static char buf [1 << 20];
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    buf [n] = 0;
    fclose (f);
    unlink (path);
    cr_assert (strstr (buf, "<svg"));
    cr_assert (strstr (buf, "</svg>"));
    cr_assert (strstr (buf, "attributeName=\"cx\""));
    cr_assert_eq (soccer_replay_svg (path, 3, 10, NULL, NULL, NULL, "chaser", "nope"), -1);
}

//  The mouth is 0.3 * h wide: a ball rolling in 0.4 m inside its edge (its
//  radius is 0.25) scores; one 0.3 m outside it hits the wall.
Test (soccer, goal_mouth_width)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (2, 7, &o);
    soccer_state_t in = s_quiet_state (), out = s_quiet_state ();
    in.x [4] = out.x [4] = 11;
    in.vx [4] = out.vx [4] = 8;
    in.y [4] = -(2.7f - 0.4f);
    out.y [4] = 2.7f + 0.3f;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &in);
    soccer_debug_set_state (env_vec_self (r.vec), 1, &out);
    int goal_in = 0, goal_out = 0;
    for (int t = 0; t < 20; t++) {
        s_run_step (&r);
        goal_in |= r.term [0] && r.rew [0] == 1;
        goal_out |= r.term [1];
    }
    cr_assert (goal_in);
    cr_assert (!goal_out);
    s_run_free (&r);
}

Test (soccer, scripts_chaser_kicks_when_lined_up_random_is_uniform)
{
    proto_kvs_t o = s_fixed_field ();
    run_t r = s_run_new (1, 1, &o);
    //  Player 0 right behind the ball on the line to the +x goal: kick (>= 9)
    //  moving east (move 1). Player 2 the same toward -x, in its own frame.
    soccer_state_t s = s_quiet_state ();
    s.x [4] = 0; s.y [4] = 0;
    s.x [0] = -0.9f; s.y [0] = 0;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    cr_assert_eq (env_vec_script_act (r.vec, 1, 0, r.act, E_), 0, "%s", err_);
    cr_assert_eq (r.act [0], 9 + 1);
    s.x [0] = -9;
    s.x [2] = 0.9f; s.y [2] = 0;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    cr_assert_eq (env_vec_script_act (r.vec, 1, 2, r.act, E_), 0, "%s", err_);
    cr_assert_eq (r.act [2], 9 + 1);
    //  Far from the ball it runs without kicking.
    s.x [2] = 9; s.y [2] = 6;
    soccer_debug_set_state (env_vec_self (r.vec), 0, &s);
    cr_assert_eq (env_vec_script_act (r.vec, 1, 2, r.act, E_), 0, "%s", err_);
    cr_assert (r.act [2] >= 1 && r.act [2] < 9, "act %d", r.act [2]);

    int count [18] = { 0 };
    for (int k = 0; k < 18000; k++) {
        cr_assert_eq (env_vec_script_act (r.vec, 0, 1, r.act, E_), 0, "%s", err_);
        cr_assert (r.act [1] >= 0 && r.act [1] < 18);
        count [r.act [1]]++;
    }
    //  Binomial(18000, 1/18): mean 1000, sd ~31; 200 is > 6 sd.
    for (int a = 0; a < 18; a++)
        cr_assert (count [a] > 800 && count [a] < 1200, "action %d drawn %d times", a, count [a]);
    s_run_free (&r);
}
