/*  ppo: GAE, grad-norm clipping and Adam against hand-worked answers; the
    whole PPO loss gradient against finite differences; and loss, gradients,
    probabilities and one optimizer step against PyTorch fixtures written
    by scripts/gen-fixtures.py. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_util.h"
#include "nn_fast.h"
#include "ppo.h"
#include "rng.h"

Test (ppo, gae_by_hand)
{
    //  gamma = lambda = 0.5, T = 3, E = 2 (layout [t][e]).
    //  env 0: r = [1 0 2], V = [0.5 1 1], done = [0 1 0], V(bootstrap) = 4
    //    t=2: delta = 2 + 0.5*4 - 1 = 3,                  A = 3,                    ret = 4
    //    t=1: done -> delta = 0 - 1 = -1,                  A = -1 (no carry),        ret = 0
    //    t=0: delta = 1 + 0.5*1 - 0.5 = 1,                 A = 1 + 0.25*(-1) = 0.75, ret = 1.25
    //  env 1: r = [1 1 1], V = 0, done = [0 0 1], V(bootstrap) = 10 (ignored: done at t=2)
    //    t=2: A = 1; t=1: A = 1 + 0.25*1 = 1.25; t=0: A = 1 + 0.25*1.25 = 1.3125; ret = A
    float r [6] = { 1, 1, 0, 1, 2, 1 };
    float v [6] = { 0.5f, 0, 1, 0, 1, 0 };
    float d [6] = { 0, 0, 1, 0, 0, 1 };
    float last [2] = { 4, 10 };
    float adv [6], ret [6];
    ppo_gae (adv, ret, r, v, d, last, 3, 2, 0.5f, 0.5f);
    float want_adv [6] = { 0.75f, 1.3125f, -1, 1.25f, 3, 1 };
    float want_ret [6] = { 1.25f, 1.3125f, 0, 1.25f, 4, 1 };
    for (int i = 0; i < 6; i++) {
        cr_expect_float_eq (adv [i], want_adv [i], 1e-6, "adv[%d] = %g", i, adv [i]);
        cr_expect_float_eq (ret [i], want_ret [i], 1e-6, "ret[%d] = %g", i, ret [i]);
    }
}

Test (ppo, adam_by_hand)
{
    //  lr 0.1, betas 0.9 / 0.999, eps 1e-8, p0 = 1.
    //  step 1, g = 2:  m = 0.2, v = 0.004, bc1 = 0.1, bc2 = 0.001,
    //    p -= (0.1/0.1) * 0.2 / (sqrt(0.004)/sqrt(0.001) + 1e-8) = 0.2/2 -> p = 0.9
    //  step 2, g = -1: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996,
    //    bc1 = 0.19, bc2 = 0.001999, step = 0.1/0.19 = 0.526316,
    //    denom = sqrt(0.004996/0.001999) = 1.5809015,
    //    p -= 0.526316 * 0.08 / 1.5809015 = 0.0266337 -> p = 0.8733663
    float p = 1, m = 0, v = 0, g = 2;
    ppo_adam_step (&p, &m, &v, &g, 1, 1, 0.1f, 0.9, 0.999, 1e-8f);
    cr_expect_float_eq (m, 0.2f, 1e-7);
    cr_expect_float_eq (v, 0.004f, 1e-9);
    cr_expect_float_eq (p, 0.9f, 1e-6);
    g = -1;
    ppo_adam_step (&p, &m, &v, &g, 1, 2, 0.1f, 0.9, 0.999, 1e-8f);
    cr_expect_float_eq (m, 0.08f, 1e-7);
    cr_expect_float_eq (v, 0.004996f, 1e-9);
    cr_expect_float_eq (p, 0.8733663f, 1e-6, "p = %.8f", p);
}

Test (ppo, clip_grad_norm_by_hand)
{
    //  [3, 4] has norm 5: max 1 scales by 1/(5 + 1e-6) -> [0.6, 0.8]; max 10 leaves it.
    float g [2] = { 3, 4 };
    cr_expect_float_eq (ppo_clip_grad_norm (g, 2, 10.0f), 5.0f, 1e-6);
    cr_expect (g [0] == 3 && g [1] == 4);
    cr_expect_float_eq (ppo_clip_grad_norm (g, 2, 1.0f), 5.0f, 1e-6);
    cr_expect_float_eq (g [0], 0.6f, 1e-6);
    cr_expect_float_eq (g [1], 0.8f, 1e-6);
}

Test (ppo, hparams)
{
    ppo_hparams_t hp;
    char err [128];
    cr_assert_eq (ppo_hparams_from (&hp, NULL, NULL, err, sizeof err), 0);
    cr_expect_float_eq (hp.lr, 2.5e-4f, 1e-12);
    cr_expect_float_eq (hp.gamma, 0.99f, 1e-7);
    cr_expect_float_eq (hp.gae_lambda, 0.95f, 1e-7);
    cr_expect_float_eq (hp.ent_coef, 0.01f, 1e-9);
    cr_expect_float_eq (hp.clip_coef, 0.2f, 1e-7);
    cr_expect_float_eq (hp.vf_coef, 0.5f, 1e-7);
    cr_expect_float_eq (hp.max_grad_norm, 0.5f, 1e-7);
    cr_expect (hp.epochs == 4 && hp.minibatches == 4 && hp.clip_vloss && hp.norm_adv);
    proto_kvs_t seat = { 0 }, ppo = { 0 };
    proto_kvs_set (&seat, "lr", 1e-3);
    proto_kvs_set (&seat, "shape_x", 3);
    proto_kvs_set (&ppo, "clip_vloss", 0);
    proto_kvs_set (&ppo, "epochs", 2);
    cr_assert_eq (ppo_hparams_from (&hp, &seat, &ppo, err, sizeof err), 0);
    cr_expect (hp.lr == 1e-3f && !hp.clip_vloss && hp.epochs == 2);
    proto_kvs_set (&seat, "gamma", 1.5);
    cr_assert_eq (ppo_hparams_from (&hp, &seat, &ppo, err, sizeof err), -1);
    cr_expect (strstr (err, "gamma"), "%s", err);
    proto_kvs_set (&seat, "gamma", 0.9);
    proto_kvs_set (&ppo, "epochs", 2.5);
    cr_assert_eq (ppo_hparams_from (&hp, &seat, &ppo, err, sizeof err), -1);
    cr_expect (strstr (err, "epochs"), "%s", err);
}

//  ---------------------------------------------------------------------
//  The whole loss against finite differences.

enum { FB_MAX = 1100 };
typedef struct {
    ppo_t *ppo;
    ppo_hparams_t hp;
    int B;
    float *params, *scratch;
    float obs [FB_MAX * 4], logp_old [FB_MAX], adv [FB_MAX], ret [FB_MAX], val_old [FB_MAX];
    int32_t act [FB_MAX];
} loss_ctx_t;

static double
s_loss_obj (void *ctx_)
{
    loss_ctx_t *c = ctx_;
    return ppo_loss_grad (c->ppo, &c->hp, c->params, c->obs, c->act, c->logp_old,
                          c->adv, c->ret, c->val_old, c->B, c->scratch, NULL);
}

static void
s_loss_check (bool clip_vloss, bool norm_adv, int FB)
{
    nn_blas_init ();
    nn_arch_t arch = { .obs_dim = 4, .n_actions = 3, .n_hidden = 2, .hidden = { 8, 8 } };
    size_t n = nn_param_count (&arch);
    static loss_ctx_t c;
    memset (&c, 0, sizeof c);
    c.B = FB;
    ppo_hparams_default (&c.hp);
    c.hp.clip_vloss = clip_vloss;
    c.hp.norm_adv = norm_adv;
    c.hp.ent_coef = 0.05f;      // large enough to matter in the check
    c.ppo = ppo_new (&arch, FB, 1, 1);
    cr_assert (c.ppo);
    c.params = malloc (sizeof (float) * n);
    c.scratch = malloc (sizeof (float) * n);
    float *grads = malloc (sizeof (float) * n);
    rng_t rng;
    rng_seed (&rng, 21);
    for (size_t i = 0; i < n; i++)
        c.params [i] = (float) (0.6 * rng_normal (&rng));
    for (int i = 0; i < FB * 4; i++)
        c.obs [i] = (float) rng_normal (&rng);
    float probs [FB_MAX * 3], values [FB_MAX];
    cr_assert_eq (nn_policy_eval (&arch, c.params, c.obs, FB, probs, values), 0);
    for (int b = 0; b < FB; b++) {
        c.act [b] = (int32_t) rng_below (&rng, 3);
        //  Offsets -0.5 / 0 / +0.5: ratios 1.65, 1, 0.61 and value moves of
        //  0.5 put samples on both sides of every clip (0.2), far from the
        //  kinks so the central differences see one side.
        float off = 0.5f * (float) (b % 3 - 1);
        c.logp_old [b] = logf (probs [b * 3 + c.act [b]]) + off;
        c.val_old [b] = values [b] - off;
        c.adv [b] = (float) (rng_normal (&rng) + 0.3);
        c.ret [b] = values [b] + (float) rng_normal (&rng);
    }
    ppo_stats_t st;
    double loss = ppo_loss_grad (c.ppo, &c.hp, c.params, c.obs, c.act, c.logp_old,
                                 c.adv, c.ret, c.val_old, FB, grads, &st);
    cr_expect (st.clipfrac > 0.3 && st.clipfrac < 0.9, "clipfrac %g", st.clipfrac);
    cr_expect_float_eq (loss, st.pg_loss - c.hp.ent_coef * st.entropy + c.hp.vf_coef * st.v_loss, 1e-9);

    double *num = malloc (sizeof (double) * n), *ana = malloc (sizeof (double) * n);
    float eps = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = c.params [i];
        c.params [i] = keep + eps;
        double lp = s_loss_obj (&c);
        c.params [i] = keep - eps;
        double lm = s_loss_obj (&c);
        c.params [i] = keep;
        num [i] = (lp - lm) / (2.0 * eps);
        ana [i] = grads [i];
    }
    double err = rel_error (ana, num, n);
    cr_expect (err < 2e-3, "PPO loss (clip_vloss=%d norm_adv=%d) gradient relative error %g",
               clip_vloss, norm_adv, err);
    free (num);
    free (ana);
    free (grads);
    free (c.params);
    free (c.scratch);
    ppo_destroy (&c.ppo);
    cr_expect_null (c.ppo);
}

Test (ppo, loss_gradient_finite_differences_clip_vloss)
{
    s_loss_check (true, true, 30);
}

Test (ppo, loss_gradient_finite_differences_plain_vloss)
{
    s_loss_check (false, true, 30);
}

Test (ppo, loss_gradient_finite_differences_raw_adv)
{
    s_loss_check (true, false, 30);
}

Test (ppo, loss_gradient_finite_differences_chunked)
{
    //  1100 rows go through forward/backward in chunks (512, 512, 76); the
    //  minibatch statistics and the summed gradient must not notice.
    s_loss_check (true, true, 1100);
}

//  ---------------------------------------------------------------------
//  Against PyTorch (tests/learn/fixtures/*.txt).

static void
s_torch_case (const char *file)
{
    nn_blas_init ();
    fixture_t fx;
    fixture_load (&fx, file);
    size_t na, n, nobs, B;
    const double *a = fixture_get (&fx, "arch", &na);
    nn_arch_t arch = { .obs_dim = (int) a [0], .n_actions = (int) a [1], .n_hidden = (int) a [2] };
    for (int l = 0; l < arch.n_hidden; l++)
        arch.hidden [l] = (int) a [3 + l];
    arch.activation = a [3 + arch.n_hidden] != 0 ? NN_RELU : NN_TANH;
    const double *flags = fixture_get (&fx, "flags", NULL);
    const double *h = fixture_get (&fx, "hp", NULL);
    ppo_hparams_t hp;
    ppo_hparams_default (&hp);
    hp.clip_vloss = flags [0] != 0;
    hp.norm_adv = flags [1] != 0;
    hp.clip_coef = (float) h [0];
    hp.ent_coef = (float) h [1];
    hp.vf_coef = (float) h [2];
    hp.max_grad_norm = (float) h [3];
    hp.lr = (float) h [4];

    float *params = fixture_floats (&fx, "params", &n);
    cr_assert_eq (n, nn_param_count (&arch), "%s: %zu params in fixture", file, n);
    float *obs = fixture_floats (&fx, "obs", &nobs);
    B = nobs / (size_t) arch.obs_dim;
    const double *act_d = fixture_get (&fx, "actions", NULL);
    int32_t *act = malloc (sizeof (int32_t) * B);
    for (size_t b = 0; b < B; b++)
        act [b] = (int32_t) act_d [b];
    float *logp_old = fixture_floats (&fx, "logp_old", NULL);
    float *adv = fixture_floats (&fx, "adv", NULL);
    float *ret = fixture_floats (&fx, "ret", NULL);
    float *val_old = fixture_floats (&fx, "val_old", NULL);
    const double *want_loss = fixture_get (&fx, "loss", NULL);
    const double *want_grads = fixture_get (&fx, "grads", NULL);
    const double *want_probs = fixture_get (&fx, "probs", NULL);
    const double *want_values = fixture_get (&fx, "values", NULL);
    const double *want_after = fixture_get (&fx, "params_after", NULL);

    //  Probabilities and values, as a torch nn.Sequential loaded from the slices.
    float *probs = malloc (sizeof (float) * B * arch.n_actions), *values = malloc (sizeof (float) * B);
    cr_assert_eq (nn_policy_eval (&arch, params, obs, (int) B, probs, values), 0);
    double worst_p = 0, worst_v = 0;
    for (size_t i = 0; i < B * arch.n_actions; i++)
        worst_p = fmax (worst_p, fabs (probs [i] - want_probs [i]));
    for (size_t i = 0; i < B; i++)
        worst_v = fmax (worst_v, fabs (values [i] - want_values [i]) / fmax (1.0, fabs (want_values [i])));
    cr_expect (worst_p < 1e-5, "%s: probs differ by %g", file, worst_p);
    cr_expect (worst_v < 1e-5, "%s: values differ by %g", file, worst_v);

    //  Loss parts and gradient.
    ppo_t *ppo = ppo_new (&arch, (int) B, 1, 1);
    cr_assert (ppo);
    float *grads = malloc (sizeof (float) * n);
    ppo_stats_t st;
    double loss = ppo_loss_grad (ppo, &hp, params, obs, act, logp_old, adv, ret, val_old,
                                 (int) B, grads, &st);
    double got [4] = { loss, st.pg_loss, st.v_loss, st.entropy };
    const char *what [4] = { "loss", "pg_loss", "v_loss", "entropy" };
    for (int i = 0; i < 4; i++)
        cr_expect (fabs (got [i] - want_loss [i]) <= 1e-5 * fabs (want_loss [i]) + 1e-7,
                   "%s: %s %.9g, torch %.9g", file, what [i], got [i], want_loss [i]);
    double *g = malloc (sizeof (double) * n);
    for (size_t i = 0; i < n; i++)
        g [i] = grads [i];
    double err = rel_error (g, want_grads, n);
    cr_expect (err < 1e-5, "%s: gradient relative error %g", file, err);

    //  clip_grad_norm_ + Adam step 1 from zero moments.
    float *m = calloc (n, sizeof (float)), *v = calloc (n, sizeof (float));
    ppo_clip_grad_norm (grads, n, hp.max_grad_norm);
    ppo_adam_step (params, m, v, grads, n, 1, hp.lr, 0.9, 0.999, 1e-5f);
    //  Step 1 moves each weight by lr * g / (|g| + eps): compare the moves.
    double worst_step = 0;
    const double *p0 = fixture_get (&fx, "params", NULL);
    for (size_t i = 0; i < n; i++) {
        double want = want_after [i] - p0 [i], have = (double) params [i] - p0 [i];
        worst_step = fmax (worst_step, fabs (want - have) / hp.lr);
    }
    //  float rounding of p +- 2.5e-4 alone is ~1e-7 / lr = 4e-4 of a step
    cr_expect (worst_step < 2e-3, "%s: Adam step differs by %g of lr", file, worst_step);

    free (m);
    free (v);
    free (g);
    free (grads);
    ppo_destroy (&ppo);
    free (probs);
    free (values);
    free (params);
    free (obs);
    free (act);
    free (logp_old);
    free (adv);
    free (ret);
    free (val_old);
    fixture_free (&fx);
}

Test (ppo, torch_tanh_clip_vloss)
{
    s_torch_case ("tanh_clipv.txt");
}

Test (ppo, torch_relu_plain_vloss)
{
    s_torch_case ("relu_noclipv.txt");
}

Test (ppo, torch_tanh_raw_adv)
{
    s_torch_case ("tanh_rawadv.txt");
}

Test (ppo, chunked_minibatch_is_weighted_sum_of_pieces)
{
    //  Without advantage normalization the loss and gradient are plain means
    //  over samples, so a 1100-row minibatch (three chunks inside) must equal
    //  the 500/500/100-row pieces (one chunk each) weighted by size.
    nn_blas_init ();
    nn_arch_t arch = { .obs_dim = 4, .n_actions = 3, .n_hidden = 2, .hidden = { 8, 8 } };
    size_t n = nn_param_count (&arch);
    enum { B = 1100 };
    ppo_hparams_t hp;
    ppo_hparams_default (&hp);
    hp.norm_adv = false;
    ppo_t *ppo = ppo_new (&arch, B, 1, 1);
    cr_assert (ppo);
    static float obs [B * 4], lp [B], adv [B], ret [B], val [B];
    static int32_t act [B];
    float *params = malloc (sizeof (float) * n), *g_all = malloc (sizeof (float) * n);
    float *g_part = malloc (sizeof (float) * n);
    double *sum = calloc (n, sizeof (double)), *all = malloc (sizeof (double) * n);
    rng_t rng;
    rng_seed (&rng, 31);
    nn_init (&arch, params, &rng);
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < 4; k++)
            obs [b * 4 + k] = (float) rng_normal (&rng);
        act [b] = (int32_t) rng_below (&rng, 3);
        lp [b] = (float) (-1.1 + 0.4 * rng_normal (&rng));
        adv [b] = (float) rng_normal (&rng);
        ret [b] = (float) rng_normal (&rng);
        val [b] = (float) (0.3 * rng_normal (&rng));
    }
    double loss_all = ppo_loss_grad (ppo, &hp, params, obs, act, lp, adv, ret, val, B, g_all, NULL);
    int cut [4] = { 0, 500, 1000, 1100 };
    double loss_sum = 0;
    for (int p = 0; p < 3; p++) {
        int o = cut [p], m = cut [p + 1] - cut [p];
        double l = ppo_loss_grad (ppo, &hp, params, obs + o * 4, act + o, lp + o, adv + o,
                                  ret + o, val + o, m, g_part, NULL);
        loss_sum += l * m / B;
        for (size_t i = 0; i < n; i++)
            sum [i] += (double) g_part [i] * m / B;
    }
    for (size_t i = 0; i < n; i++)
        all [i] = g_all [i];
    cr_expect (fabs (loss_all - loss_sum) < 1e-5 * fabs (loss_sum) + 1e-7,
               "loss %.9g vs pieces %.9g", loss_all, loss_sum);
    double err = rel_error (all, sum, n);
    cr_expect (err < 1e-5, "chunked gradient relative error %g", err);
    free (params);
    free (g_all);
    free (g_part);
    free (sum);
    free (all);
    ppo_destroy (&ppo);
}

//  ---------------------------------------------------------------------
//  The statistics a result reports, against hand-worked answers.

Test (ppo, explained_variance_by_hand)
{
    //  target [1 2 3 4]: mean 2.5, population variance 1.25.
    float t [4] = { 1, 2, 3, 4 };
    float exact [4] = { 1, 2, 3, 4 }, flat [4] = { 2, 2, 2, 2 };
    float near [4] = { 1.5f, 2, 3, 4.5f }, flipped [4] = { 4, 3, 2, 1 };
    float constant [4] = { 5, 5, 5, 5 };
    cr_expect_float_eq (ppo_explained_variance (exact, t, 4), 1.0, 1e-12);
    //  t - 2 = [-1 0 1 2]: variance 1.25 -> 0.
    cr_expect_float_eq (ppo_explained_variance (flat, t, 4), 0.0, 1e-12);
    //  t - near = [-0.5 0 0 -0.5]: mean -0.25, variance 0.0625 -> 1 - 0.05 = 0.95.
    cr_expect_float_eq (ppo_explained_variance (near, t, 4), 0.95, 1e-12);
    //  t - flipped = [-3 -1 1 3]: variance 5 -> 1 - 4 = -3.
    cr_expect_float_eq (ppo_explained_variance (flipped, t, 4), -3.0, 1e-12);
    //  Returns that never vary: undefined, as in CleanRL.
    cr_expect (isnan (ppo_explained_variance (t, constant, 4)));
}

Test (ppo, minibatch_stats_by_hand)
{
    //  Zero weights: logits 0, so the policy is uniform over 3 actions
    //  (log p = -ln 3, entropy ln 3) and every value is 0. logp_old is set
    //  so that log ratio = x = [0.5, -0.5, 0]: ratio e^0.5 = 1.648721,
    //  e^-0.5 = 0.606531, 1.
    //    approx_kl = mean(e^x - 1 - x) = (0.148721 + 0.106531 + 0) / 3 = 0.0850840
    //    clip_fraction (clip 0.2): the first two leave [0.8, 1.2] -> 2/3
    //    policy loss, adv [1 1 -2] unnormalized: max(-a r, -a clip(r)) =
    //      max(-1.648721, -1.2) = -1.2; max(-0.606531, -0.8) = -0.606531;
    //      max(2, 2) = 2 -> mean 0.0644898
    //    value loss (unclipped), returns [1 -2 3]: 0.5 * (1 + 4 + 9) / 3 = 2.333333
    nn_blas_init ();
    nn_arch_t arch = { .obs_dim = 2, .n_actions = 3, .n_hidden = 1, .hidden = { 4 } };
    size_t n = nn_param_count (&arch);
    float *params = calloc (n, sizeof (float)), *grads = calloc (n, sizeof (float));
    ppo_t *ppo = ppo_new (&arch, 3, 1, 1);
    cr_assert (ppo && params && grads);
    ppo_hparams_t hp;
    ppo_hparams_default (&hp);
    hp.norm_adv = false;
    hp.clip_vloss = false;
    float obs [6] = { 1, 0, 0, 1, 0.5f, -0.5f };
    int32_t act [3] = { 0, 1, 2 };
    float x [3] = { 0.5f, -0.5f, 0 };
    float logp_old [3], adv [3] = { 1, 1, -2 }, ret [3] = { 1, -2, 3 }, val_old [3] = { 0, 0, 0 };
    for (int b = 0; b < 3; b++)
        logp_old [b] = -logf (3.0f) - x [b];
    ppo_stats_t st;
    ppo_loss_grad (ppo, &hp, params, obs, act, logp_old, adv, ret, val_old, 3, grads, &st);
    cr_expect_float_eq (st.entropy, 1.0986123, 1e-6, "entropy %g", st.entropy);
    cr_expect_float_eq (st.approx_kl, 0.0850840, 1e-6, "approx_kl %.7f", st.approx_kl);
    cr_expect_float_eq (st.clipfrac, 2.0 / 3.0, 1e-12, "clipfrac %g", st.clipfrac);
    cr_expect_float_eq (st.pg_loss, 0.0644898, 1e-6, "pg_loss %.7f", st.pg_loss);
    cr_expect_float_eq (st.v_loss, 2.3333333, 1e-6, "v_loss %.7f", st.v_loss);

    //  A nearly sure action (bias 10: log p = -9.1e-5) moved by log ratios
    //  of 1e-9..3e-9: expf rounds those ratios to exactly 1, so the float
    //  form (expf (x) - 1) - x is -x < 0. The estimate must stay >= 0.
    size_t bias0 = 4 * 2 + 4 + 3 * 4;                 // actor.2.bias [0]
    params [bias0] = 10;
    float probs [9], values [3];
    cr_assert_eq (nn_policy_eval (&arch, params, obs, 3, probs, values), 0);
    for (int b = 0; b < 3; b++) {
        act [b] = 0;
        logp_old [b] = logf (probs [3 * b]) - 1e-9f * (float) (b + 1);
    }
    ppo_loss_grad (ppo, &hp, params, obs, act, logp_old, adv, ret, val_old, 3, grads, &st);
    cr_expect (st.approx_kl >= 0 && st.approx_kl < 1e-15, "approx_kl %g", st.approx_kl);
    ppo_destroy (&ppo);
    free (params);
    free (grads);
}

Test (ppo, update_stats_cover_every_minibatch)
{
    //  A 4 x 8 rollout split in 2 minibatches for 3 epochs: 6 Adam steps,
    //  whose count, mean gradient norm and explained variance come back.
    nn_blas_init ();
    nn_arch_t arch = { .obs_dim = 2, .n_actions = 3, .n_hidden = 1, .hidden = { 4 } };
    size_t n = nn_param_count (&arch);
    float *params = calloc (n, sizeof (float)), *m = calloc (n, sizeof (float));
    float *v = calloc (n, sizeof (float));
    rng_t rng;
    rng_seed (&rng, 3);
    nn_init (&arch, params, &rng);
    ppo_t *ppo = ppo_new (&arch, 8, 4, 2);
    cr_assert (ppo);
    ppo_hparams_t hp;
    ppo_hparams_default (&hp);
    hp.epochs = 3;
    hp.minibatches = 2;
    int32_t acts [8];
    for (int t = 0; t <= 4; t++) {
        float *o = ppo_obs (ppo, t);
        for (int e = 0; e < 16; e++)
            o [e] = (float) rng_normal (&rng);
        if (t == 4)
            break;
        ppo_act (ppo, params, t, &rng, acts);
        float r [8];
        uint8_t d [8] = { 0 };
        for (int e = 0; e < 8; e++)
            r [e] = acts [e] == 0 ? 1.0f : -0.5f;
        ppo_reward (ppo, t, r, d);
    }
    uint64_t adam_t = 0;
    ppo_stats_t st;
    ppo_update (ppo, &hp, params, m, v, &adam_t, &rng, &st);
    cr_expect_eq (st.updates, 6);
    cr_expect_eq (adam_t, 6);
    cr_expect (st.grad_norm > 0 && isfinite (st.grad_norm), "grad_norm %g", st.grad_norm);
    cr_expect (isfinite (st.explained_var) && st.explained_var <= 1.0, "ev %g", st.explained_var);
    cr_expect (st.approx_kl >= 0 && st.clipfrac >= 0 && st.clipfrac <= 1);
    ppo_destroy (&ppo);
    free (params);
    free (m);
    free (v);
}
