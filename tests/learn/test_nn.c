/*  nn: every layer's backward against central finite differences, the
    tanh approximation against libm, the parameter layout against counts
    worked by hand, and the orthogonal init against its definition. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learn_util.h"
#include "nn_fast.h"
#include "rng.h"

//  Objective in double so the finite differences only see float rounding
//  of the forward itself.
typedef double (objective_fn) (void *ctx);

//  g [n] = dL/dx by central differences of step eps.
static void
s_numgrad (double *g, float *x, size_t n, objective_fn *f, void *ctx, float eps)
{
    for (size_t i = 0; i < n; i++) {
        float keep = x [i];
        x [i] = keep + eps;
        double lp = f (ctx);
        x [i] = keep - eps;
        double lm = f (ctx);
        x [i] = keep;
        g [i] = (lp - lm) / (2.0 * (double) eps);
    }
}

static void
s_fill (float *x, size_t n, rng_t *rng, double scale)
{
    for (size_t i = 0; i < n; i++)
        x [i] = (float) (scale * rng_normal (rng));
}

static double *
s_to_double (const float *x, size_t n)
{
    double *d = malloc (sizeof (double) * n);
    for (size_t i = 0; i < n; i++)
        d [i] = x [i];
    return d;
}

static double
s_dot (const float *a, const float *r, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double) a [i] * r [i];
    return s;
}

//  ---------------------------------------------------------------------
//  linear

enum { LB = 5, LC = 4, LOC = 3 };
typedef struct {
    float in [LB * LC], w [LOC * LC], b [LOC], r [LB * LOC], out [LB * LOC];
} linear_ctx_t;

static double
s_linear_obj (void *ctx_)
{
    linear_ctx_t *c = ctx_;
    nn_linear_forward (c->out, c->in, c->w, c->b, LB, LC, LOC);
    return s_dot (c->out, c->r, LB * LOC);
}

Test (nn, linear_forward_by_hand)
{
    //  out = in . w^T + b with in = [1 2], w = [[1 0] [0 1] [1 1]], b = [0.5 0 -1]
    //  -> [1.5, 2, 2]
    float in [2] = { 1, 2 }, w [6] = { 1, 0, 0, 1, 1, 1 }, b [3] = { 0.5f, 0, -1 }, out [3];
    nn_linear_forward (out, in, w, b, 1, 2, 3);
    cr_assert_float_eq (out [0], 1.5f, 1e-6);
    cr_assert_float_eq (out [1], 2.0f, 1e-6);
    cr_assert_float_eq (out [2], 2.0f, 1e-6);
}

Test (nn, linear_backward_matches_finite_differences)
{
    nn_blas_init ();
    rng_t rng;
    rng_seed (&rng, 1);
    linear_ctx_t c;
    s_fill (c.in, LB * LC, &rng, 1);
    s_fill (c.w, LOC * LC, &rng, 1);
    s_fill (c.b, LOC, &rng, 1);
    s_fill (c.r, LB * LOC, &rng, 1);
    float din [LB * LC], dw [LOC * LC] = { 0 }, db [LOC] = { 0 };
    nn_linear_backward (din, dw, db, c.r, c.in, c.w, LB, LC, LOC);

    struct { float *x, *g; size_t n; const char *what; } parts [] = {
        { c.in, din, LB * LC, "in" }, { c.w, dw, LOC * LC, "w" }, { c.b, db, LOC, "b" },
    };
    for (int p = 0; p < 3; p++) {
        double num [64];
        s_numgrad (num, parts [p].x, parts [p].n, s_linear_obj, &c, 1e-2f);
        double *ana = s_to_double (parts [p].g, parts [p].n);
        double err = rel_error (ana, num, parts [p].n);
        cr_expect (err < 1e-4, "linear d%s: relative error %g", parts [p].what, err);
        free (ana);
    }
}

Test (nn, linear_backward_accumulates)
{
    //  dw and db are sums over minibatch pieces, so backward adds.
    float in [2] = { 1, 2 }, w [2] = { 3, 4 }, dout [1] = { 2 };
    float dw [2] = { 10, 20 }, db [1] = { 5 }, din [2];
    nn_linear_backward (din, dw, db, dout, in, w, 1, 2, 1);
    //  dw += dout * in = [2, 4]; db += 2; din = dout * w = [6, 8]
    cr_assert_float_eq (dw [0], 12.0f, 1e-6);
    cr_assert_float_eq (dw [1], 24.0f, 1e-6);
    cr_assert_float_eq (db [0], 7.0f, 1e-6);
    cr_assert_float_eq (din [0], 6.0f, 1e-6);
    cr_assert_float_eq (din [1], 8.0f, 1e-6);
}

//  ---------------------------------------------------------------------
//  activations

enum { AN = 64 };
typedef struct {
    int relu;
    float x [AN], y [AN], r [AN];
} act_ctx_t;

static double
s_act_obj (void *ctx_)
{
    act_ctx_t *c = ctx_;
    if (c->relu)
        nn_relu_forward (c->y, c->x, AN);
    else
        nn_tanh_forward (c->y, c->x, AN);
    return s_dot (c->y, c->r, AN);
}

Test (nn, tanh_approximation_accuracy)
{
    //  Over [-12, 12] (both saturated tails included) against double tanh.
    enum { N = 240001 };
    float *x = malloc (sizeof (float) * N), *y = malloc (sizeof (float) * N);
    for (int i = 0; i < N; i++)
        x [i] = -12.0f + 1e-4f * (float) i;
    nn_fast_tanh_forward (y, x, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double e = fabs ((double) y [i] - tanh ((double) x [i]));
        worst = e > worst ? e : worst;
    }
    cr_expect (worst < 1e-6, "tanh worst abs error %g", worst);
    //  Odd and exact at 0.
    float z [3] = { 0.0f, 0.5f, -0.5f }, tz [3];
    nn_fast_tanh_forward (tz, z, 3);
    cr_expect (tz [0] == 0.0f);
    cr_expect (tz [1] == -tz [2]);
    free (x);
    free (y);
}

Test (nn, tanh_backward_matches_finite_differences)
{
    rng_t rng;
    rng_seed (&rng, 2);
    act_ctx_t c = { .relu = 0 };
    s_fill (c.x, AN, &rng, 1.5);
    s_fill (c.r, AN, &rng, 1);
    s_act_obj (&c);
    float din [AN];
    nn_tanh_backward (din, c.r, c.y, AN);
    double num [AN];
    s_numgrad (num, c.x, AN, s_act_obj, &c, 1e-2f);
    double *ana = s_to_double (din, AN);
    double err = rel_error (ana, num, AN);
    cr_expect (err < 1e-4, "tanh relative error %g", err);
    free (ana);
}

Test (nn, relu_backward_matches_finite_differences)
{
    rng_t rng;
    rng_seed (&rng, 3);
    act_ctx_t c = { .relu = 1 };
    s_fill (c.x, AN, &rng, 1.5);
    //  Keep inputs away from the kink at 0 so the differences see one side.
    for (int i = 0; i < AN; i++)
        if (fabsf (c.x [i]) < 0.1f)
            c.x [i] = c.x [i] < 0 ? -0.1f - c.x [i] : 0.1f + c.x [i];
    s_fill (c.r, AN, &rng, 1);
    s_act_obj (&c);
    float din [AN];
    nn_relu_backward (din, c.r, c.y, AN);
    double num [AN];
    s_numgrad (num, c.x, AN, s_act_obj, &c, 1e-2f);
    double *ana = s_to_double (din, AN);
    double err = rel_error (ana, num, AN);
    cr_expect (err < 1e-5, "relu relative error %g", err);
    int zeros = 0;
    for (int i = 0; i < AN; i++)
        zeros += c.x [i] < 0 && din [i] == 0.0f;
    cr_expect (zeros > 0, "some negative inputs must block the gradient");
    free (ana);
}

//  ---------------------------------------------------------------------
//  categorical head

enum { CB = 6, CA = 5 };
typedef struct {
    float z [CB * CA], logp [CB * CA], ent [CB], ra [CB], rh [CB];
    int32_t act [CB];
} cat_ctx_t;

static double
s_cat_obj (void *ctx_)
{
    cat_ctx_t *c = ctx_;
    nn_categorical_forward (c->logp, c->ent, c->z, CB, CA);
    double s = 0;
    for (int b = 0; b < CB; b++)
        s += (double) c->ra [b] * c->logp [b * CA + c->act [b]] + (double) c->rh [b] * c->ent [b];
    return s;
}

Test (nn, categorical_by_hand)
{
    //  Equal logits: p = 1/A, log p = -log A, entropy = log A.
    //  Logits [0, log 3]: p = [1/4, 3/4], H = -(1/4 ln 1/4 + 3/4 ln 3/4) = 0.562335...
    float z [2 * 4] = { 7, 7, 7, 7, 0, logf (3.0f), -1e30f, -1e30f };
    float logp [8], ent [2];
    nn_categorical_forward (logp, ent, z, 2, 4);
    for (int a = 0; a < 4; a++)
        cr_assert_float_eq (logp [a], -logf (4.0f), 1e-6);
    cr_assert_float_eq (ent [0], logf (4.0f), 1e-6);
    cr_assert_float_eq (expf (logp [4]), 0.25f, 1e-6);
    cr_assert_float_eq (expf (logp [5]), 0.75f, 1e-6);
    cr_assert_float_eq (ent [1], 0.5623351446f, 1e-6);
}

Test (nn, categorical_backward_matches_finite_differences)
{
    rng_t rng;
    rng_seed (&rng, 4);
    cat_ctx_t c;
    s_fill (c.z, CB * CA, &rng, 1.5);
    s_fill (c.ra, CB, &rng, 1);
    s_fill (c.rh, CB, &rng, 1);
    for (int b = 0; b < CB; b++)
        c.act [b] = (int32_t) rng_below (&rng, CA);
    s_cat_obj (&c);
    float dz [CB * CA];
    nn_categorical_backward (dz, c.logp, c.ent, c.act, c.ra, c.rh, CB, CA);
    double num [CB * CA];
    s_numgrad (num, c.z, CB * CA, s_cat_obj, &c, 1e-2f);
    double *ana = s_to_double (dz, CB * CA);
    double err = rel_error (ana, num, CB * CA);
    cr_expect (err < 1e-3, "categorical relative error %g", err);
    free (ana);
}

Test (nn, categorical_sample_frequencies)
{
    //  p = [0.1, 0.2, 0.7]: counts of 30000 draws within 5 sigma.
    enum { N = 30000 };
    float lp [3] = { logf (0.1f), logf (0.2f), logf (0.7f) };
    float *logp = malloc (sizeof (float) * 3 * N);
    int32_t *act = malloc (sizeof (int32_t) * N);
    for (int i = 0; i < N; i++)
        memcpy (logp + 3 * i, lp, sizeof lp);
    rng_t rng;
    rng_seed (&rng, 5);
    nn_categorical_sample (act, logp, N, 3, &rng);
    int count [3] = { 0 };
    for (int i = 0; i < N; i++)
        count [act [i]]++;
    double p [3] = { 0.1, 0.2, 0.7 };
    for (int a = 0; a < 3; a++) {
        double sd = sqrt (N * p [a] * (1 - p [a]));
        cr_expect (fabs (count [a] - N * p [a]) < 5 * sd, "action %d drawn %d times", a, count [a]);
    }
    free (logp);
    free (act);
}

//  ---------------------------------------------------------------------
//  whole MLPs (hidden layers + policy head and value head)

typedef struct {
    nn_arch_t arch;
    float *work;                // nn_ref_work_count floats
    float *params;
    float obs [7 * 4];
    float r [7 * 3];
    int B;
} mlp_ctx_t;

static double
s_mlp_obj (void *ctx_)
{
    mlp_ctx_t *c = ctx_;
    const float *a = nn_ref_forward (&c->arch, NN_ACTOR, c->params, c->obs, c->B, c->work);
    //  actor logits weighted by r [B][A]; value by the last column pattern
    double s = s_dot (a, c->r, (size_t) c->B * c->arch.n_actions);
    const float *v = nn_ref_forward (&c->arch, NN_CRITIC, c->params, c->obs, c->B, c->work);
    for (int b = 0; b < c->B; b++)
        s += (double) v [b] * c->r [b];
    return s;
}

static void
s_mlp_check (nn_activation_t act)
{
    nn_blas_init ();
    mlp_ctx_t c = { .arch = { .obs_dim = 4, .n_actions = 3, .n_hidden = 2,
                              .hidden = { 6, 5 }, .activation = act }, .B = 7 };
    size_t n = nn_param_count (&c.arch);
    c.params = malloc (sizeof (float) * n);
    float *grads = calloc (n, sizeof (float));
    rng_t rng;
    rng_seed (&rng, 6);
    s_fill (c.params, n, &rng, 0.7);
    s_fill (c.obs, sizeof c.obs / sizeof (float), &rng, 1);
    s_fill (c.r, sizeof c.r / sizeof (float), &rng, 1);
    c.work = malloc (sizeof (float) * nn_ref_work_count (&c.arch, c.B));
    nn_ref_forward (&c.arch, NN_ACTOR, c.params, c.obs, c.B, c.work);
    nn_ref_backward (&c.arch, NN_ACTOR, c.params, c.obs, c.work, c.r, c.B, grads);
    nn_ref_forward (&c.arch, NN_CRITIC, c.params, c.obs, c.B, c.work);
    float dv [7];
    memcpy (dv, c.r, sizeof dv);
    nn_ref_backward (&c.arch, NN_CRITIC, c.params, c.obs, c.work, dv, c.B, grads);
    double *num = malloc (sizeof (double) * n);
    s_numgrad (num, c.params, n, s_mlp_obj, &c, act == NN_RELU ? 1e-3f : 1e-2f);
    double *ana = s_to_double (grads, n);
    size_t na = nn_part_offset (&c.arch, NN_CRITIC);
    double err_actor = rel_error (ana, num, na);
    double err_critic = rel_error (ana + na, num + na, n - na);
    cr_expect (err_actor < 2e-3, "%s actor relative error %g", nn_activation_name (act), err_actor);
    cr_expect (err_critic < 2e-3, "%s critic relative error %g", nn_activation_name (act), err_critic);
    free (num);
    free (ana);
    free (grads);
    free (c.params);
    free (c.work);
}

//  The reference MLP (nn.c); test_nn_wide holds the fast one to it.
Test (nn, mlp_tanh_backward_matches_finite_differences)
{
    s_mlp_check (NN_TANH);
}

Test (nn, mlp_relu_backward_matches_finite_differences)
{
    s_mlp_check (NN_RELU);
}

//  ---------------------------------------------------------------------
//  layout and init

Test (nn, param_count_by_hand)
{
    //  CleanRL RPS net 3-64-64: actor 3*64+64 + 64*64+64 + 64*3+3 = 4611,
    //  critic 3*64+64 + 64*64+64 + 64+1 = 4481; 9092 in all.
    nn_arch_t arch = { .obs_dim = 3, .n_actions = 3, .n_hidden = 2, .hidden = { 64, 64 } };
    cr_assert_eq (nn_param_count (&arch), 9092);
    cr_assert_eq (nn_part_offset (&arch, NN_CRITIC), 4611);
    nn_tensor_t t [12];
    cr_assert_eq (nn_tensors (&arch, t, 12), 12);
    cr_assert_str_eq (t [0].name, "actor.0.weight");
    cr_assert (t [0].offset == 0 && t [0].rows == 64 && t [0].cols == 3);
    cr_assert_str_eq (t [1].name, "actor.0.bias");
    cr_assert (t [1].offset == 192 && t [1].rows == 64 && t [1].cols == 0);
    cr_assert_str_eq (t [4].name, "actor.4.weight");
    cr_assert (t [4].offset == 4416 && t [4].rows == 3 && t [4].cols == 64);
    cr_assert_str_eq (t [6].name, "critic.0.weight");
    cr_assert (t [6].offset == 4611);
    cr_assert_str_eq (t [11].name, "critic.4.bias");
    cr_assert (t [11].offset == 9091 && t [11].rows == 1);
    //  Truncated listing stops at max.
    cr_assert_eq (nn_tensors (&arch, t, 3), 3);
}

Test (nn, arch_from_proto)
{
    proto_model_t m = { .obs_dim = 6, .n_actions = 3, .n_hidden = 2, .hidden = { 32, 16 } };
    strcpy (m.activation, "relu");
    nn_arch_t arch;
    char err [128];
    cr_assert_eq (nn_arch_from_proto (&arch, &m, err, sizeof err), 0);
    cr_assert (arch.obs_dim == 6 && arch.hidden [1] == 16 && arch.activation == NN_RELU);
    strcpy (m.activation, "gelu");
    cr_assert_eq (nn_arch_from_proto (&arch, &m, err, sizeof err), -1);
    cr_assert (strstr (err, "activation"), "%s", err);
    strcpy (m.activation, "tanh");
    m.n_hidden = 9;
    cr_assert_eq (nn_arch_from_proto (&arch, &m, err, sizeof err), -1);
    cr_assert (strstr (err, "n_hidden"), "%s", err);
}

Test (nn, orthogonal_init)
{
    nn_arch_t arch = { .obs_dim = 3, .n_actions = 3, .n_hidden = 2, .hidden = { 64, 64 } };
    size_t n = nn_param_count (&arch);
    float *p = malloc (sizeof (float) * n), *q = malloc (sizeof (float) * n);
    rng_t rng;
    rng_seed (&rng, 7);
    nn_init (&arch, p, &rng);
    nn_tensor_t t [12];
    nn_tensors (&arch, t, 12);
    //  Gains: sqrt 2 hidden, 0.01 policy out (t[4]), 1 value out (t[10]).
    for (int i = 0; i < 12; i++) {
        const float *w = p + t [i].offset;
        if (t [i].cols == 0) {
            for (int r = 0; r < t [i].rows; r++)
                cr_assert (w [r] == 0.0f, "%s not zero", t [i].name);
            continue;
        }
        double gain = i == 4 ? 0.01 : i == 10 ? 1.0 : sqrt (2.0);
        int R = t [i].rows, C = t [i].cols;
        //  The smaller Gram matrix must be gain^2 I.
        int tall = R >= C;
        int k = tall ? C : R, m = tall ? R : C;
        double worst = 0;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) {
                double s = 0;
                for (int j = 0; j < m; j++) {
                    double x = tall ? w [j * C + a] : w [a * C + j];
                    double y = tall ? w [j * C + b] : w [b * C + j];
                    s += x * y;
                }
                double want = a == b ? gain * gain : 0;
                double e = fabs (s - want) / (gain * gain);
                worst = e > worst ? e : worst;
            }
        cr_expect (worst < 1e-5, "%s not orthogonal*gain: %g", t [i].name, worst);
    }
    //  Deterministic from the rng; another seed gives other weights.
    rng_seed (&rng, 7);
    nn_init (&arch, q, &rng);
    cr_assert (memcmp (p, q, sizeof (float) * n) == 0);
    rng_seed (&rng, 8);
    nn_init (&arch, q, &rng);
    cr_assert (memcmp (p, q, sizeof (float) * n) != 0);
    free (p);
    free (q);
}

Test (nn, policy_eval_uniform_at_zero_weights)
{
    //  All-zero weights: logits 0 -> uniform probabilities, values 0.
    nn_arch_t arch = { .obs_dim = 2, .n_actions = 4, .n_hidden = 1, .hidden = { 3 } };
    size_t n = nn_param_count (&arch);
    float *p = calloc (n, sizeof (float));
    float obs [4] = { 1, -1, 0.5f, 2 }, probs [8], values [2];
    cr_assert_eq (nn_policy_eval (&arch, p, obs, 2, probs, values), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_float_eq (probs [i], 0.25f, 1e-7);
    cr_assert_float_eq (values [0], 0.0f, 1e-7);
    free (p);
}
