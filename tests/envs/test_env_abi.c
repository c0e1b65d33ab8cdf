/*  The environment ABI: what the host refuses (each message names the
    plugin's file and the problem), and masks honoured by the policy and
    its gradient (checked against finite differences). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "match.h"
#include "nn_fast.h"
#include "ppo.h"
#include "rng.h"

static char err_ [1024];
#define E_ err_, sizeof err_

static const char *
s_path (const char *name)
{
    static char path [512];
    const char *dir = getenv ("PBT_BAD_PLUGINS");
    cr_assert (dir, "PBT_BAD_PLUGINS not set");
    snprintf (path, sizeof path, "%s/%s.so", dir, name);
    return path;
}

//  Loading must fail with the file's path and `want` in the message.
static void
s_refused (const char *name, const char *want)
{
    const char *path = s_path (name);
    envspec_t *spec = envspec_load (path, E_);
    cr_assert_null (spec, "%s loaded", name);
    cr_assert (strstr (err_, path), "message does not name the file: %s", err_);
    cr_assert (strstr (err_, want), "message does not say '%s': %s", want, err_);
}

Test (env_abi, refuses_other_abi_version)
{
    s_refused ("bad_abi", "ABI version 2");
}

Test (env_abi, refuses_missing_symbol)
{
    s_refused ("bad_symbol", "no symbol pbt_env_entry");
}

Test (env_abi, refuses_missing_function)
{
    s_refused ("bad_step", "function step is missing");
}

Test (env_abi, refuses_contradictory_spec)
{
    s_refused ("bad_spec", "option 'nan_at' appears twice");
    cr_assert_null (envspec_load ("/nonexistent/x.so", E_));
    cr_assert (strstr (err_, "/nonexistent/x.so: cannot load"), "%s", err_);
}

//  Hand-made specs that contradict themselves, in process.
Test (env_abi, validate_names_each_contradiction)
{
    const pbt_env_t *good = envspec_env (envspec_find (s_path ("bad_none"), E_));
    cr_assert (good, "%s", err_);
    cr_assert_eq (envspec_validate (good, "g.so", true, E_), 0, "%s", err_);
    struct { const char *want; pbt_env_t e; } cases [8];
    for (int i = 0; i < 8; i++)
        cases [i].e = *good;
    cases [0].want = "turn-based game must write masks";
    cases [0].e.turns = PBT_ENV_TURN_BASED;
    cases [0].e.masks = 0;
    cases [1].want = "3 players do not split evenly into 2 teams";
    cases [1].e.n_players = 3;
    static const pbt_env_option_t out_of_range [] = {
        { .name = "x", .min = 0, .max = 1, .dflt = 2, .integer = 1 } };
    cases [2].want = "option x default 2 is outside [0, 1]";
    cases [2].e.n_options = 1;
    cases [2].e.options = out_of_range;
    static const pbt_env_option_t grows [] = {
        { .name = "x", .min = 0, .max = 1, .dflt = 0, .integer = 0, .obs_per_unit = 2 } };
    cases [3].want = "obs_per_unit 2 needs a small non-negative integer option";
    cases [3].e.n_options = 1;
    cases [3].e.options = grows;
    cases [4].want = "n_actions = 0 is outside 1..";
    cases [4].e.n_actions = 0;
    static const char *const dup [] = { "a", "a" };
    cases [5].want = "script 'a' appears twice";
    cases [5].e.n_scripts = 2;
    cases [5].e.scripts = dup;
    cases [6].want = "n_shaping = 2";      // 2 channels, no names: caught as a NULL list
    cases [6].e.n_shaping = 2;
    cases [6].e.shaping_names = NULL;
    cases [7].want = "name 'Bad Name' is not a name";
    cases [7].e.name = "Bad Name";
    for (int i = 0; i < 8; i++) {
        err_ [0] = 0;
        cr_expect_eq (envspec_validate (&cases [i].e, "g.so", true, E_), -1, "case %d passed", i);
        cr_expect (strstr (err_, "g.so"), "case %d: %s", i, err_);
        if (i == 6)
            cr_expect (strstr (err_, "2 shaping channel declared but the list is NULL"),
                       "case 6: %s", err_);
        else
            cr_expect (strstr (err_, cases [i].want), "case %d: %s", i, err_);
    }
}

static env_vec_t *
s_bad_env (int nan_at)
{
    const envspec_t *spec = envspec_find (s_path ("bad_none"), E_);
    cr_assert (spec, "%s", err_);
    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "nan_at", nan_at);
    env_vec_t *env = env_vec_new (spec, 3, 1, &o, E_);
    cr_assert (env, "%s", err_);
    return env;
}

Test (env_abi, refuses_non_finite_observation)
{
    env_vec_t *env = s_bad_env (2);
    float obs [3 * 2 * 2];
    int32_t act [6] = { 0 };
    cr_assert_eq (env_vec_reset (env, obs, E_), 0, "%s", err_);
    cr_assert_eq (env_vec_step (env, act, obs, NULL, NULL, NULL, NULL, E_), 0, "%s", err_);
    cr_assert_eq (env_vec_step (env, act, obs, NULL, NULL, NULL, NULL, E_), -1);
    cr_assert (strstr (err_, "bad_none.so: step wrote a non-finite observation"), "%s", err_);
    cr_assert (strstr (err_, "instance 0, player 0, feature 1"), "%s", err_);
    env_vec_destroy (&env);
}

Test (env_abi, refuses_actions_outside_the_mask)
{
    env_vec_t *env = s_bad_env (-1);
    float obs [3 * 2 * 2];
    int32_t act [6] = { 0, 1, 1, 0, 0, 2 };
    cr_assert_eq (env_vec_reset (env, obs, E_), 0, "%s", err_);
    //  The caller's: instance 2, player 1 picks the masked action 2.
    cr_assert_eq (env_vec_step (env, act, obs, NULL, NULL, NULL, NULL, E_), -1);
    cr_assert (strstr (err_, "bad_none.so: the caller chose action 2 for player 1 of instance 2, "
                             "outside the mask"), "%s", err_);
    //  A script's.
    act [5] = 0;
    cr_assert_eq (env_vec_script_act (env, 0, 0, act, E_), -1);
    cr_assert (strstr (err_, "script 'illegal' chose action 2 for player 0 of instance 0"),
               "%s", err_);
    //  Options out of their declared range, named.
    proto_kvs_t o = { 0 };
    proto_kvs_set (&o, "nan_at", 101);
    cr_assert_null (env_vec_new (env_vec_spec (env), 1, 1, &o, E_));
    cr_assert (strstr (err_, "nan_at=101 must be an integer in -1..100"), "%s", err_);
    env_vec_destroy (&env);
}

//  --------------------------------------------------------------------------
//  Masks in the policy and its gradient

Test (env_abi, masked_policy_gives_illegal_actions_nothing)
{
    nn_arch_t arch = { .obs_dim = 4, .n_actions = 5, .n_hidden = 1, .hidden = { 8 } };
    float *p = malloc (sizeof (float) * nn_param_count (&arch));
    nn_init_seeded (&arch, p, 7);
    //  Big output weights so the illegal logits would matter.
    for (size_t i = 0; i < nn_param_count (&arch); i++)
        p [i] *= 30;
    float obs [2 * 4] = { 1, -1, 0.5f, 2, -2, 0, 1, 1 };
    uint8_t mask [2 * 5] = { 1, 0, 1, 0, 0, 0, 0, 0, 1, 0 };
    float probs [10], full [10];
    cr_assert_eq (nn_policy_eval_masked (&arch, p, obs, mask, 2, probs, NULL), 0);
    cr_assert_eq (nn_policy_eval (&arch, p, obs, 2, full, NULL), 0);
    //  Masked: softmax over the legal logits only = renormalized full probs.
    double z0 = full [0] + full [2];
    cr_expect_float_eq (probs [0], full [0] / z0, 1e-5);
    cr_expect_float_eq (probs [2], full [2] / z0, 1e-5);
    cr_expect_eq (probs [1], 0.0f);
    cr_expect_eq (probs [3], 0.0f);
    cr_expect_eq (probs [4], 0.0f);
    cr_expect_eq (probs [8], 1.0f);     // one legal action: certain
    //  Sampling never picks an illegal action.
    float logp [10];
    const float logits [10] = { 0, 50, 0, 50, 50, 9, 9, 9, 0, 9 };
    const uint8_t mask2 [10] = { 1, 0, 1, 0, 0, 0, 0, 0, 1, 0 };
    uint8_t m2 [10];
    memcpy (m2, mask2, sizeof m2);
    m2 [8] = 0;
    m2 [3 + 5] = 1;             // row 1: only action 3 legal
    nn_categorical_forward_masked (logp, NULL, logits, m2, 2, 5);
    rng_t rng;
    rng_seed (&rng, 3);
    for (int k = 0; k < 2000; k++) {
        int32_t a [2];
        nn_categorical_sample (a, logp, 2, 5, &rng);
        cr_assert (a [0] == 0 || a [0] == 2, "sampled illegal %d", a [0]);
        cr_assert_eq (a [1], 3, "row 1's only legal action is 3, sampled %d", a [1]);
    }
    free (p);
}

//  The loss and gradient of a minibatch under masks: the gradient matches
//  central finite differences of the loss, and the output rows of actions
//  masked in every sample get exactly zero gradient (and changing them
//  changes nothing).
Test (env_abi, masked_gradient_matches_finite_differences)
{
    enum { B = 6, D = 4, A = 5 };
    nn_arch_t arch = { .obs_dim = D, .n_actions = A, .n_hidden = 1, .hidden = { 6 },
                       .activation = NN_TANH };
    size_t n = nn_param_count (&arch);
    float *p = malloc (sizeof (float) * n), *g = malloc (sizeof (float) * n);
    float *g2 = malloc (sizeof (float) * n);
    nn_init_seeded (&arch, p, 11);
    rng_t rng;
    rng_seed (&rng, 5);
    for (size_t i = 0; i < n; i++)
        p [i] += 0.3f * (rng_uniformf (&rng) - 0.5f);     // away from the init's tiny outputs
    float obs [B * D];
    for (int i = 0; i < B * D; i++)
        obs [i] = 2 * rng_uniformf (&rng) - 1;
    //  Action 4 is never legal; row 5 is a forced step (one legal action).
    uint8_t mask [B * A] = {
        1, 1, 0, 1, 0,   0, 1, 1, 1, 0,   1, 0, 1, 0, 0,
        1, 1, 1, 1, 0,   0, 0, 1, 1, 0,   1, 0, 0, 0, 0 };
    int32_t act [B] = { 3, 1, 2, 0, 2, 0 };
    float adv [B] = { 1.0f, -0.5f, 0.7f, -1.2f, 0.3f, 2.0f };
    float ret [B] = { 0.5f, -0.1f, 0.2f, 0.9f, -0.4f, 0.3f };
    float logp_old [B], val_old [B];
    //  Old log-probs a little off the current ones (ratios inside the clip).
    float probs [B * A], vals [B];
    nn_policy_eval_masked (&arch, p, obs, mask, B, probs, vals);
    for (int b = 0; b < B; b++) {
        logp_old [b] = logf (probs [b * A + act [b]]) + 0.02f * (float) (b % 3 - 1);
        val_old [b] = vals [b];
    }
    ppo_hparams_t hp;
    ppo_hparams_default (&hp);
    hp.clip_vloss = false;
    hp.norm_adv = false;
    hp.ent_coef = 0.05f;
    ppo_t *ppo = ppo_new (&arch, B, 1, 1);
    cr_assert (ppo);
    double loss = ppo_loss_grad_masked (ppo, &hp, p, obs, mask, act, logp_old, adv, ret,
                                        val_old, B, g, NULL);
    cr_assert (isfinite (loss));
    //  The forced sample contributes no policy gradient: dropping it from
    //  the policy terms changes nothing but the value term (checked via the
    //  finite differences below, which include it).
    double h = 1e-2, worst = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = p [i];
        p [i] = keep + (float) h;
        double up = ppo_loss_grad_masked (ppo, &hp, p, obs, mask, act, logp_old, adv, ret,
                                          val_old, B, g2, NULL);
        p [i] = keep - (float) h;
        double down = ppo_loss_grad_masked (ppo, &hp, p, obs, mask, act, logp_old, adv, ret,
                                            val_old, B, g2, NULL);
        p [i] = keep;
        double fd = (up - down) / (2 * h);
        double diff = fabs (fd - g [i]) / (1e-3 + fabs (fd) + fabs (g [i]));
        if (diff > worst)
            worst = diff;
        cr_expect (diff < 0.05, "param %zu: analytic %g, finite difference %g", i, g [i], fd);
    }
    //  Actor output row of action 4 (never legal): zero gradient, no effect.
    nn_tensor_t t [8];
    int nt = nn_tensors (&arch, t, 8);
    const nn_tensor_t *w_out = NULL, *b_out = NULL;
    for (int i = 0; i < nt; i++) {
        if (!strcmp (t [i].name, "actor.2.weight"))
            w_out = &t [i];
        if (!strcmp (t [i].name, "actor.2.bias"))
            b_out = &t [i];
    }
    cr_assert (w_out && b_out);
    size_t row4 = w_out->offset + (size_t) 4 * w_out->cols;
    for (int c = 0; c < w_out->cols; c++)
        cr_expect_eq (g [row4 + c], 0.0f, "masked weight %d has gradient %g", c, g [row4 + c]);
    cr_expect_eq (g [b_out->offset + 4], 0.0f);
    p [b_out->offset + 4] += 100;
    double moved = ppo_loss_grad_masked (ppo, &hp, p, obs, mask, act, logp_old, adv, ret,
                                         val_old, B, g2, NULL);
    cr_expect_eq (moved, loss, "a masked logit changed the loss: %g vs %g", moved, loss);
    ppo_destroy (&ppo);
    free (p);
    free (g);
    free (g2);
}

//  An agent without weights: the worker makes them from the seat's
//  init_seed with nn_init_seeded, the function pbtctl export/eval use for
//  such an agent. With lr 0 training leaves them as made, so the result
//  must hold exactly nn_init_seeded's weights, different per seed.
Test (env_abi, first_weights_from_the_init_seed)
{
    proto_assign_t a;
    memset (&a, 0, sizeof a);
    a.assignment_id = 1;
    a.seed = 5;
    snprintf (a.env, sizeof a.env, "rps");
    a.model = (proto_model_t) { .obs_dim = 3, .n_actions = 3, .n_hidden = 1, .hidden = { 8 } };
    snprintf (a.model.activation, sizeof a.model.activation, "tanh");
    proto_kvs_set (&a.ppo, "n_envs", 4);
    proto_kvs_set (&a.ppo, "n_steps", 8);
    proto_kvs_set (&a.ppo, "minibatches", 1);
    proto_kvs_set (&a.ppo, "epochs", 1);
    a.n_seats = 2;
    const uint64_t seeds [2] = { 1234, 0xfedcba9876543210ull };
    for (int s = 0; s < 2; s++) {
        a.seats [s] = (proto_seat_t) { .id = s, .version = 1, .slot = (uint32_t) s, .train = true };
        proto_kvs_set (&a.seats [s].hparams, "lr", 0);
        a.seats [s].state.init_seed = seeds [s];
    }
    proto_result_t r;
    cr_assert_eq (match_run (&a, &r, NULL, NULL, E_), 0, "%s", err_);
    nn_arch_t arch;
    cr_assert_eq (nn_arch_from_proto (&arch, &a.model, E_), 0);
    size_t n = nn_param_count (&arch);
    float *want = malloc (sizeof (float) * n);
    for (int s = 0; s < 2; s++) {
        cr_assert_eq (r.seats [s].state.n_params, n);
        cr_assert_gt (r.seats [s].state.adam_t, 0, "seat %d was not trained", s);
        nn_init_seeded (&arch, want, seeds [s]);
        cr_assert (memcmp (r.seats [s].state.params, want, sizeof (float) * n) == 0,
                   "seat %d: the weights are not nn_init_seeded (%llu)", s,
                   (unsigned long long) seeds [s]);
    }
    cr_assert (memcmp (r.seats [0].state.params, r.seats [1].state.params,
                       sizeof (float) * n) != 0, "two seeds, the same weights");
    free (want);
    match_result_clear (&r);
}
