/*  The fast kernels (nn_fast.c: the register-blocked GEMM with its fused
    bias/activation epilogues, and the loops for layers with few inputs or
    outputs) against the reference (nn.c, itself held to finite
    differences in test_nn.c): forward outputs and every parameter
    gradient, over shapes that hit the full tiles, the row tails and the
    fallbacks.
    meson runs this program twice, once with PBT_NN_NO_AVX512 set, so the
    sgemm path is held to the same answers. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_util.h"
#include "nn_fast.h"
#include "rng.h"

static void
s_fill (float *x, size_t n, rng_t *rng, double scale)
{
    for (size_t i = 0; i < n; i++)
        x [i] = (float) (scale * rng_normal (rng));
}

//  Max |a - b| over max |b|: every element, not just the norm, must agree.
static double
s_max_rel (const float *a, const float *b, size_t n)
{
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs ((double) a [i] - (double) b [i]);
        d = e > d ? e : d;
        m = fabs (b [i]) > m ? fabs (b [i]) : m;
    }
    return d / m;
}

static void
s_check_mlp (nn_arch_t arch, int B, uint64_t seed)
{
    nn_blas_init ();
    rng_t rng;
    rng_seed (&rng, seed);
    size_t n = nn_param_count (&arch);
    float *params = malloc (sizeof (float) * n);
    float *grads = malloc (sizeof (float) * n);
    float *obs = malloc (sizeof (float) * (size_t) B * arch.obs_dim);
    float *dout = malloc (sizeof (float) * (size_t) B * arch.n_actions);
    float *ref_g = malloc (sizeof (float) * n);
    float *ref_work = malloc (sizeof (float) * nn_ref_work_count (&arch, B));
    //  Weights scaled so pre-activations sit in tanh's curved range.
    nn_init (&arch, params, &rng);
    for (size_t i = 0; i < n; i++)
        params [i] += (float) (0.05 * rng_normal (&rng));
    s_fill (obs, (size_t) B * arch.obs_dim, &rng, 1);
    nn_work_t *work = nn_work_new (&arch, B);
    cr_assert (work);
    for (int part = NN_ACTOR; part <= NN_CRITIC; part++) {
        int n_out = part == NN_ACTOR ? arch.n_actions : 1;
        size_t base = nn_part_offset (&arch, (nn_part_t) part);
        size_t count = part == NN_ACTOR ? nn_part_offset (&arch, NN_CRITIC) : n - base;
        s_fill (dout, (size_t) B * n_out, &rng, 1);
        const float *out = nn_forward (work, (nn_part_t) part, params, obs, B);
        //  grads start non-zero: backward must add to them.
        for (size_t i = 0; i < n; i++)
            grads [i] = 0.25f;
        nn_backward (work, (nn_part_t) part, grads, params, obs, dout, B);
        for (size_t i = 0; i < n; i++)
            ref_g [i] = 0.25f;
        const float *ref_out = nn_ref_forward (&arch, (nn_part_t) part, params, obs, B, ref_work);
        nn_ref_backward (&arch, (nn_part_t) part, params, obs, ref_work, dout, B, ref_g);
        double e_out = s_max_rel (out, ref_out, (size_t) B * n_out);
        double e_g = s_max_rel (grads + base, ref_g + base, count);
        cr_expect (e_out < 1e-5, "%s part %d out: max rel error %g",
                   nn_activation_name (arch.activation), part, e_out);
        cr_expect (e_g < 1e-4, "%s part %d grads: max rel error %g",
                   nn_activation_name (arch.activation), part, e_g);
        //  The other part's gradients are untouched.
        size_t other = part == NN_ACTOR ? count : 0, other_n = n - count;
        for (size_t i = 0; i < other_n; i++)
            cr_assert_eq (grads [other + i], 0.25f);
    }
    nn_work_destroy (&work);
    free (params);
    free (grads);
    free (obs);
    free (dout);
    free (ref_work);
    free (ref_g);
}

Test (nn_wide, bench_shape_tanh)
{
    //  The pbt-bench/RPS model: 3 -> 64 -> 64 -> 3, minibatch chunk with a
    //  row tail (519 = 86 tiles of 6 + 3).
    s_check_mlp ((nn_arch_t) { .obs_dim = 3, .n_actions = 3, .n_hidden = 2,
                               .hidden = { 64, 64 }, .activation = NN_TANH }, 519, 1);
}

Test (nn_wide, wide_input_relu)
{
    //  obs_dim 64: the first layer's weight gradient takes the wide kernel too.
    s_check_mlp ((nn_arch_t) { .obs_dim = 64, .n_actions = 5, .n_hidden = 2,
                               .hidden = { 128, 64 }, .activation = NN_RELU }, 20, 2);
}

Test (nn_wide, mixed_widths_tanh)
{
    //  A 64-wide and a 48-wide layer (sgemm fallback), 9..8 thin edges,
    //  64 actions (a wide head), every row tail 1..5 across the batches.
    for (int B = 1; B <= 6; B++) {
        s_check_mlp ((nn_arch_t) { .obs_dim = 9, .n_actions = 64, .n_hidden = 3,
                                   .hidden = { 64, 48, 128 }, .activation = NN_TANH }, B, 10 + B);
        s_check_mlp ((nn_arch_t) { .obs_dim = 8, .n_actions = 2, .n_hidden = 1,
                                   .hidden = { 192 }, .activation = NN_TANH }, B + 6, 20 + B);
    }
}

//  The fast linear kernels on thin shapes (few inputs or few outputs,
//  widths off the 16-lane blocks) against the reference layers.
Test (nn_wide, thin_linear_layers)
{
    nn_blas_init ();
    struct { int B, C, OC; } shapes [] = {
        { 9, 37, 3 }, { 9, 3, 40 }, { 5, 70, 8 }, { 6, 8, 17 }, { 4, 130, 1 },
        { 3, 1, 1 }, { 7, 64, 3 }, { 7, 3, 64 }, { 2, 200, 9 },
    };
    rng_t rng;
    rng_seed (&rng, 3);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes [0]; s++) {
        int B = shapes [s].B, C = shapes [s].C, OC = shapes [s].OC;
        //  [0] the fast kernels' answers, [1] the reference's
        float *in = malloc (sizeof (float) * B * C), *w = malloc (sizeof (float) * OC * C);
        float *b = malloc (sizeof (float) * OC), *dout = malloc (sizeof (float) * B * OC);
        float *out [2], *din [2], *dw [2], *db [2];
        for (int k = 0; k < 2; k++) {
            out [k] = malloc (sizeof (float) * B * OC);
            din [k] = malloc (sizeof (float) * B * C);
            dw [k] = malloc (sizeof (float) * OC * C);
            db [k] = malloc (sizeof (float) * OC);
            //  Gradients start non-zero: backward must add to them.
            for (int i = 0; i < OC * C; i++)
                dw [k][i] = 1.0f;
            for (int i = 0; i < OC; i++)
                db [k][i] = -1.0f;
        }
        s_fill (in, (size_t) B * C, &rng, 1);
        s_fill (w, (size_t) OC * C, &rng, 1);
        s_fill (b, (size_t) OC, &rng, 1);
        s_fill (dout, (size_t) B * OC, &rng, 1);
        nn_fast_linear_forward (out [0], in, w, b, B, C, OC);
        nn_fast_linear_backward (din [0], dw [0], db [0], dout, in, w, B, C, OC);
        nn_linear_forward (out [1], in, w, b, B, C, OC);
        nn_linear_backward (din [1], dw [1], db [1], dout, in, w, B, C, OC);
        double e [4] = {
            s_max_rel (out [0], out [1], (size_t) B * OC), s_max_rel (din [0], din [1], (size_t) B * C),
            s_max_rel (dw [0], dw [1], (size_t) OC * C), s_max_rel (db [0], db [1], (size_t) OC),
        };
        const char *what [4] = { "out", "din", "dw", "db" };
        for (int k = 0; k < 4; k++)
            cr_expect (e [k] < 1e-5, "B=%d C=%d OC=%d %s: max rel error %g",
                       B, C, OC, what [k], e [k]);
        for (int k = 0; k < 2; k++) {
            free (out [k]); free (din [k]); free (dw [k]); free (db [k]);
        }
        free (in); free (w); free (b); free (dout);
    }
}

Test (nn_wide, same_inputs_same_bits)
{
    //  Determinism: two workspaces, same inputs -> identical outputs and grads.
    nn_arch_t arch = { .obs_dim = 3, .n_actions = 3, .n_hidden = 2,
                       .hidden = { 64, 64 }, .activation = NN_TANH };
    int B = 77;
    size_t n = nn_param_count (&arch);
    rng_t rng;
    rng_seed (&rng, 4);
    float *params = malloc (sizeof (float) * n), *obs = malloc (sizeof (float) * B * 3);
    float *dout = malloc (sizeof (float) * B * 3);
    float *g [2] = { calloc (n, sizeof (float)), calloc (n, sizeof (float)) };
    float out [2][77 * 3];
    nn_init (&arch, params, &rng);
    s_fill (obs, (size_t) B * 3, &rng, 1);
    s_fill (dout, (size_t) B * 3, &rng, 1);
    for (int k = 0; k < 2; k++) {
        nn_work_t *work = nn_work_new (&arch, 128);
        memcpy (out [k], nn_forward (work, NN_ACTOR, params, obs, B), sizeof (float) * B * 3);
        nn_backward (work, NN_ACTOR, g [k], params, obs, dout, B);
        nn_work_destroy (&work);
    }
    cr_assert (memcmp (out [0], out [1], sizeof out [0]) == 0);
    cr_assert (memcmp (g [0], g [1], sizeof (float) * n) == 0);
    free (params); free (obs); free (dout); free (g [0]); free (g [1]);
}
