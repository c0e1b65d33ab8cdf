/*  env_rps: payoffs, observations, episode ends and scripts by hand. */
#include <criterion/criterion.h>
#include <string.h>

#include "env.h"

static char err_ [512];

//  The rps plugin, found by name like any game.
static const envspec_t *
s_rps (void)
{
    const envspec_t *spec = env_find ("rps", err_, sizeof err_);
    cr_assert (spec, "%s", err_);
    return spec;
}

#define E_ err_, sizeof err_

Test (env_rps, class)
{
    const envspec_t *spec = s_rps ();
    const pbt_env_t *cls = envspec_env (spec);
    cr_expect_str_eq (cls->name, "rps");
    cr_expect (cls->n_players == 2 && cls->n_teams == 2 && cls->n_actions == 3 && cls->n_shaping == 0);
    cr_expect_eq (envspec_script_index (spec, "always-same"), 0);
    cr_expect_eq (envspec_script_index (spec, "beat-last"), 1);
    cr_expect_eq (envspec_script_index (spec, "random"), 2);
    cr_expect_eq (envspec_script_index (spec, "nope"), -1);
    cr_expect_null (env_find ("nope", E_));
    cr_expect (strstr (err_, "nope.so"), "%s", err_);
}

Test (env_rps, options)
{
    const envspec_t *cls = s_rps ();
    proto_kvs_t o = { 0 };
    char err [128];
    cr_expect_eq (envspec_obs_dim (cls, &o), 3);
    cr_expect_eq (envspec_options (cls, &o, NULL, err, sizeof err), 0);
    proto_kvs_set (&o, "obs_both", 1);
    proto_kvs_set (&o, "episode_len", 5);
    cr_expect_eq (envspec_obs_dim (cls, &o), 6);
    cr_expect_eq (envspec_options (cls, &o, NULL, err, sizeof err), 0);
    proto_kvs_set (&o, "episode_len", 0);
    cr_expect_eq (envspec_options (cls, &o, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "episode_len"), "%s", err);
    proto_kvs_set (&o, "episode_len", 5);
    proto_kvs_set (&o, "obs_both", 2);
    cr_expect_eq (envspec_options (cls, &o, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "obs_both"), "%s", err);
    proto_kvs_set (&o, "obs_both", 0);
    proto_kvs_set (&o, "colour", 1);
    cr_expect_eq (envspec_options (cls, &o, NULL, err, sizeof err), -1);
    cr_expect (strstr (err, "colour"), "%s", err);
}

Test (env_rps, payoffs_and_observations)
{
    //  9 envs play every pair (a0, a1) = (e / 3, e % 3) once.
    //  Player 0's reward: paper(1) beats rock(0), scissors(2) beats paper,
    //  rock beats scissors:
    //          a1=R  a1=P  a1=S
    //    a0=R    0    -1    +1
    //    a0=P   +1     0    -1
    //    a0=S   -1    +1     0
    static const float pay [3][3] = { { 0, -1, 1 }, { 1, 0, -1 }, { -1, 1, 0 } };
    const envspec_t *cls = s_rps ();
    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "obs_both", 1);
    env_vec_t *env = env_vec_new (cls, 9, 1, &o, E_);
    cr_assert (env);
    float obs [9 * 2 * 6], rew [18], sc [18];
    uint8_t term [9];
    int32_t act [18];
    cr_assert_eq (env_vec_reset (env, obs, E_), 0, "%s", err_);
    for (int e = 0; e < 9; e++)
        for (int p = 0; p < 2; p++) {
            //  Both previous moves are "rock" at the start.
            const float *x = obs + (e * 2 + p) * 6;
            float want [6] = { 1, 0, 0, 1, 0, 0 };
            cr_assert (memcmp (x, want, sizeof want) == 0, "start obs env %d player %d", e, p);
        }
    for (int e = 0; e < 9; e++) {
        act [2 * e] = e / 3;
        act [2 * e + 1] = e % 3;
    }
    cr_assert_eq (env_vec_step (env, act, obs, rew, NULL, term, sc, E_), 0, "%s", err_);
    for (int e = 0; e < 9; e++) {
        int a0 = e / 3, a1 = e % 3;
        cr_expect_eq (rew [2 * e], pay [a0][a1], "env %d", e);
        cr_expect_eq (rew [2 * e + 1], -pay [a0][a1], "env %d", e);
        cr_expect_eq (term [e], 0);
        //  Player 0 sees a1 then its own a0; player 1 sees a0 then a1.
        float want0 [6] = { 0 }, want1 [6] = { 0 };
        want0 [a1] = 1; want0 [3 + a0] = 1;
        want1 [a0] = 1; want1 [3 + a1] = 1;
        cr_expect (memcmp (obs + e * 12, want0, sizeof want0) == 0, "obs p0 env %d", e);
        cr_expect (memcmp (obs + e * 12 + 6, want1, sizeof want1) == 0, "obs p1 env %d", e);
    }
    env_vec_destroy (&env);
    cr_expect_null (env);
}

Test (env_rps, episode_end_scores_and_reset)
{
    const envspec_t *cls = s_rps ();
    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "episode_len", 3);
    env_vec_t *env = env_vec_new (cls, 1, 2, &o, E_);
    float obs [6], rew [2], sc [2];
    uint8_t term [1];
    //  paper v rock (+1), paper v scissors (-1), scissors v paper (+1): score +1 / -1.
    int32_t moves [3][2] = { { 1, 0 }, { 1, 2 }, { 2, 1 } };
    cr_assert_eq (env_vec_reset (env, obs, E_), 0, "%s", err_);
    for (int t = 0; t < 3; t++) {
        cr_assert_eq (env_vec_step (env, moves [t], obs, rew, NULL, term, sc, E_), 0, "%s", err_);
        cr_expect_eq (term [0], t == 2, "step %d", t);
    }
    cr_expect_eq (sc [0], 1.0f);
    cr_expect_eq (sc [1], -1.0f);
    //  The observation after the end is the next episode's first: rock.
    float want [3] = { 1, 0, 0 };
    cr_expect (memcmp (obs, want, sizeof want) == 0 && memcmp (obs + 3, want, sizeof want) == 0);
    env_vec_destroy (&env);
}

Test (env_rps, scripts)
{
    const envspec_t *cls = s_rps ();
    proto_kvs_t o = { 0 };
    enum { E = 300 };
    env_vec_t *env = env_vec_new (cls, E, 3, &o, E_);
    float obs [E * 6], rew [E * 2], sc [E * 2];
    uint8_t term [E];
    int32_t act [E * 2], first [E];
    cr_assert_eq (env_vec_reset (env, obs, E_), 0, "%s", err_);
    //  beat-last as player 1 against player 0: paper first (beats the initial rock).
    cr_assert_eq (env_vec_script_act (env, 1, 1, act, E_), 0, "%s", err_);
    for (int e = 0; e < E; e++)
        cr_assert_eq (act [2 * e + 1], 1);
    //  always-same as player 1: one move per env, held for the whole episode,
    //  and all three moves occur across envs.
    int seen [3] = { 0 };
    cr_assert_eq (env_vec_script_act (env, 0, 1, act, E_), 0, "%s", err_);
    for (int e = 0; e < E; e++) {
        first [e] = act [2 * e + 1];
        seen [first [e]]++;
    }
    cr_expect (seen [0] > 50 && seen [1] > 50 && seen [2] > 50);
    for (int t = 0; t < 9; t++) {
        for (int e = 0; e < E; e++)
            act [2 * e] = (e + t) % 3;      // player 0 varies
        cr_assert_eq (env_vec_script_act (env, 0, 1, act, E_), 0, "%s", err_);
        for (int e = 0; e < E; e++)
            cr_assert_eq (act [2 * e + 1], first [e], "always-same changed at round %d", t);
        cr_assert_eq (env_vec_step (env, act, obs, rew, NULL, term, sc, E_), 0, "%s", err_);
    }
    //  beat-last answers player 0's last move (e + 8) % 3 with the move that beats it.
    cr_assert_eq (env_vec_script_act (env, 1, 1, act, E_), 0, "%s", err_);
    for (int e = 0; e < E; e++)
        cr_assert_eq (act [2 * e + 1], ((e + 8) % 3 + 1) % 3);
    //  random: all three moves, roughly a third each.
    int rs [3] = { 0 };
    for (int k = 0; k < 10; k++) {
        cr_assert_eq (env_vec_script_act (env, 2, 0, act, E_), 0, "%s", err_);
        for (int e = 0; e < E; e++)
            rs [act [2 * e]]++;
    }
    for (int a = 0; a < 3; a++)
        cr_expect (rs [a] > 850 && rs [a] < 1150, "random move %d drawn %d / 3000", a, rs [a]);
    env_vec_destroy (&env);
}
