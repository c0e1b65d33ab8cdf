/*  nn: MLP actor and critic, llm.c style (see nn.h for the layout).

    One forward/backward pair per layer kind; the MLP driver chains them
    over a workspace that is allocated once, so nothing allocates in the
    training loop. The matmuls go to OpenBLAS (single-threaded); the
    elementwise loops are written branch-free so gcc vectorizes them, and
    the hot ones are cloned for AVX-512/AVX2 since we cannot assume
    -march=native on the machines that run the worker.
*/
#include "nn.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NN_MAX_OBS      65536
#define NN_MAX_ACTIONS  4096
#define NN_MAX_WIDTH    4096

#define NN_CLONES __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))

//  ---------------------------------------------------------------------
//  Architecture and layout

const char *
nn_activation_name (nn_activation_t act)
{
    return act == NN_RELU ? "relu" : "tanh";
}

int
nn_arch_from_proto (nn_arch_t *arch, const proto_model_t *model, char *err, size_t err_len)
{
    assert (arch && model);
    memset (arch, 0, sizeof *arch);
    if (model->obs_dim < 1 || model->obs_dim > NN_MAX_OBS) {
        snprintf (err, err_len, "model.obs_dim %u out of range 1..%d", model->obs_dim, NN_MAX_OBS);
        return -1;
    }
    if (model->n_actions < 1 || model->n_actions > NN_MAX_ACTIONS) {
        snprintf (err, err_len, "model.n_actions %u out of range 1..%d", model->n_actions, NN_MAX_ACTIONS);
        return -1;
    }
    if (model->n_hidden < 1 || model->n_hidden > NN_MAX_HIDDEN) {
        snprintf (err, err_len, "model.n_hidden %u out of range 1..%d", model->n_hidden, NN_MAX_HIDDEN);
        return -1;
    }
    for (uint32_t l = 0; l < model->n_hidden; l++)
        if (model->hidden [l] < 1 || model->hidden [l] > NN_MAX_WIDTH) {
            snprintf (err, err_len, "model.hidden[%u] = %u out of range 1..%d",
                      l, model->hidden [l], NN_MAX_WIDTH);
            return -1;
        }
    if (strcmp (model->activation, "tanh") == 0 || model->activation [0] == 0)
        arch->activation = NN_TANH;
    else
    if (strcmp (model->activation, "relu") == 0)
        arch->activation = NN_RELU;
    else {
        snprintf (err, err_len, "model.activation '%s' is not tanh or relu", model->activation);
        return -1;
    }
    arch->obs_dim = (int) model->obs_dim;
    arch->n_actions = (int) model->n_actions;
    arch->n_hidden = (int) model->n_hidden;
    for (int l = 0; l < arch->n_hidden; l++)
        arch->hidden [l] = (int) model->hidden [l];
    if (nn_param_count (arch) > PROTO_MAX_PARAMS) {
        snprintf (err, err_len, "model has %zu parameters, over the limit %u",
                  nn_param_count (arch), PROTO_MAX_PARAMS);
        return -1;
    }
    return 0;
}

//  In and out features of layer l (0..n_hidden) of a part.
static int
s_layer_in (const nn_arch_t *arch, int l)
{
    return l == 0 ? arch->obs_dim : arch->hidden [l - 1];
}

static int
s_part_out (const nn_arch_t *arch, nn_part_t part)
{
    return part == NN_ACTOR ? arch->n_actions : 1;
}

static int
s_layer_out (const nn_arch_t *arch, nn_part_t part, int l)
{
    return l == arch->n_hidden ? s_part_out (arch, part) : arch->hidden [l];
}

static size_t
s_part_count (const nn_arch_t *arch, nn_part_t part)
{
    size_t n = 0;
    for (int l = 0; l <= arch->n_hidden; l++) {
        size_t in = (size_t) s_layer_in (arch, l), out = (size_t) s_layer_out (arch, part, l);
        n += out * in + out;
    }
    return n;
}

size_t
nn_part_offset (const nn_arch_t *arch, nn_part_t part)
{
    return part == NN_ACTOR ? 0 : s_part_count (arch, NN_ACTOR);
}

size_t
nn_param_count (const nn_arch_t *arch)
{
    return s_part_count (arch, NN_ACTOR) + s_part_count (arch, NN_CRITIC);
}

int
nn_tensors (const nn_arch_t *arch, nn_tensor_t *out, int max)
{
    int n = 0;
    size_t offset = 0;
    for (int part = NN_ACTOR; part <= NN_CRITIC; part++)
        for (int l = 0; l <= arch->n_hidden; l++) {
            int in = s_layer_in (arch, l), o = s_layer_out (arch, (nn_part_t) part, l);
            const char *pname = part == NN_ACTOR ? "actor" : "critic";
            //  nn.Sequential numbers the activations too: Linear l is module 2l.
            if (n < max) {
                snprintf (out [n].name, sizeof out [n].name, "%s.%d.weight", pname, 2 * l);
                out [n].offset = offset;
                out [n].rows = o;
                out [n].cols = in;
            }
            n++;
            offset += (size_t) o * in;
            if (n < max) {
                snprintf (out [n].name, sizeof out [n].name, "%s.%d.bias", pname, 2 * l);
                out [n].offset = offset;
                out [n].rows = o;
                out [n].cols = 0;
            }
            n++;
            offset += (size_t) o;
        }
    return n < max ? n : max;
}

//  torch.nn.init.orthogonal_: a Gaussian matrix made orthonormal by QR,
//  with R's diagonal made positive (which is what modified Gram-Schmidt
//  yields directly), transposed when there are fewer rows than columns.
static void
s_orthogonal (float *w, int rows, int cols, double gain, rng_t *rng)
{
    int transpose = rows < cols;
    int m = transpose ? cols : rows;      // tall matrix m x n, m >= n
    int n = transpose ? rows : cols;
    double *a = malloc (sizeof (double) * (size_t) m * n);     // [m][n]
    assert (a);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double x = rng_normal (rng);
            if (transpose)
                a [(size_t) c * n + r] = x;
            else
                a [(size_t) r * n + c] = x;
        }
    //  Gram-Schmidt twice per column keeps orthogonality at round-off.
    for (int j = 0; j < n; j++) {
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < j; k++) {
                double dot = 0;
                for (int i = 0; i < m; i++)
                    dot += a [(size_t) i * n + k] * a [(size_t) i * n + j];
                for (int i = 0; i < m; i++)
                    a [(size_t) i * n + j] -= dot * a [(size_t) i * n + k];
            }
        double norm = 0;
        for (int i = 0; i < m; i++)
            norm += a [(size_t) i * n + j] * a [(size_t) i * n + j];
        norm = sqrt (norm);
        for (int i = 0; i < m; i++)
            a [(size_t) i * n + j] = norm > 0 ? a [(size_t) i * n + j] / norm : 0;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double q = transpose ? a [(size_t) c * n + r] : a [(size_t) r * n + c];
            w [(size_t) r * cols + c] = (float) (gain * q);
        }
    free (a);
}

void
nn_init (const nn_arch_t *arch, float *params, rng_t *rng)
{
    nn_tensor_t t [2 * 2 * (NN_MAX_HIDDEN + 1)];
    int n = nn_tensors (arch, t, (int) (sizeof t / sizeof t [0]));
    int per_part = 2 * (arch->n_hidden + 1);
    for (int i = 0; i < n; i++) {
        float *p = params + t [i].offset;
        if (t [i].cols == 0) {
            memset (p, 0, sizeof (float) * (size_t) t [i].rows);
            continue;
        }
        int part = i / per_part;
        int is_out = (i % per_part) == per_part - 2;
        double gain = !is_out ? sqrt (2.0) : part == NN_ACTOR ? 0.01 : 1.0;
        s_orthogonal (p, t [i].rows, t [i].cols, gain, rng);
    }
}

//  ---------------------------------------------------------------------
//  Layer kernels

static pthread_once_t s_blas_once = PTHREAD_ONCE_INIT;

static void
s_blas_init (void)
{
    openblas_set_num_threads (1);
}

void
nn_blas_init (void)
{
    pthread_once (&s_blas_once, s_blas_init);
}

void
nn_linear_forward (float *out, const float *in, const float *w,
                   const float *b, int B, int C, int OC)
{
    //  out [B][OC], in [B][C], w [OC][C], b [OC]
    for (int r = 0; r < B; r++)
        memcpy (out + (size_t) r * OC, b, sizeof (float) * (size_t) OC);
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C,
                 1.0f, in, C, w, C, 1.0f, out, OC);
}

NN_CLONES static void
s_colsum_acc (float *restrict db, const float *restrict dout, int B, int OC)
{
    for (int r = 0; r < B; r++) {
        const float *row = dout + (size_t) r * OC;
        for (int o = 0; o < OC; o++)
            db [o] += row [o];
    }
}

void
nn_linear_backward (float *din, float *dw, float *db, const float *dout,
                    const float *in, const float *w, int B, int C, int OC)
{
    //  din [B][C], dw [OC][C], db [OC], dout [B][OC], in [B][C], w [OC][C]
    if (din)
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC,
                     1.0f, dout, OC, w, C, 0.0f, din, C);
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B,
                 1.0f, dout, OC, in, C, 1.0f, dw, C);
    s_colsum_acc (db, dout, B, OC);
}

//  tanh as the 13/6 odd rational minimax fit used by Eigen and XLA,
//  clamped where float tanh rounds to +-1; |error| < 3e-7. The division is
//  the costly part, so the SIMD versions take a reciprocal estimate refined
//  by one Newton step (relative error ~1e-7, below float resolution of the
//  result's digits that matter). Rows of OC, plus an optional bias [OC]
//  added first, so a hidden layer's bias and activation are one pass.
#define TANH_CLAMP 7.90531110763549805f

static inline float
s_tanh1 (float x)
{
    x = x < -TANH_CLAMP ? -TANH_CLAMP : x;
    x = x > TANH_CLAMP ? TANH_CLAMP : x;
    float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * x;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return p / q;
}

static void
s_tanh_rows_scalar (float *out, const float *in, const float *bias, size_t rows, size_t OC)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < OC; o++)
            out [r * OC + o] = s_tanh1 (in [r * OC + o] + (bias ? bias [o] : 0.0f));
}

#if defined (__x86_64__)
#include <immintrin.h>

#define TANH_POLY(W, x, p, q) do {                                              \
    W x2 = MUL (x, x);                                                          \
    p = FMA (SET (-2.76076847742355e-16f), x2, SET (2.00018790482477e-13f));   \
    p = FMA (p, x2, SET (-8.60467152213735e-11f));                              \
    p = FMA (p, x2, SET (5.12229709037114e-08f));                               \
    p = FMA (p, x2, SET (1.48572235717979e-05f));                               \
    p = FMA (p, x2, SET (6.37261928875436e-04f));                               \
    p = FMA (p, x2, SET (4.89352455891786e-03f));                               \
    p = MUL (p, x);                                                             \
    q = FMA (SET (1.19825839466702e-06f), x2, SET (1.18534705686654e-04f));    \
    q = FMA (q, x2, SET (2.26843463243900e-03f));                               \
    q = FMA (q, x2, SET (4.89352518554385e-03f));                               \
} while (0)

__attribute__ ((target ("avx512f")))
static void
s_tanh_rows_avx512 (float *out, const float *in, const float *bias, size_t rows, size_t OC)
{
#define MUL _mm512_mul_ps
#define FMA _mm512_fmadd_ps
#define SET _mm512_set1_ps
    const __m512 lo = SET (-TANH_CLAMP), hi = SET (TANH_CLAMP), two = SET (2.0f);
    for (size_t r = 0; r < rows; r++)
        for (size_t o = 0; o < OC; o += 16) {
            __mmask16 m = OC - o >= 16 ? (__mmask16) 0xffff : (__mmask16) ((1u << (OC - o)) - 1);
            __m512 x = _mm512_maskz_loadu_ps (m, in + r * OC + o);
            if (bias)
                x = _mm512_add_ps (x, _mm512_maskz_loadu_ps (m, bias + o));
            x = _mm512_min_ps (_mm512_max_ps (x, lo), hi);
            __m512 p, q;
            TANH_POLY (__m512, x, p, q);
            __m512 rq = _mm512_rcp14_ps (q);
            rq = MUL (rq, _mm512_fnmadd_ps (q, rq, two));
            _mm512_mask_storeu_ps (out + r * OC + o, m, MUL (p, rq));
        }
#undef MUL
#undef FMA
#undef SET
}

__attribute__ ((target ("avx2,fma")))
static void
s_tanh_rows_avx2 (float *out, const float *in, const float *bias, size_t rows, size_t OC)
{
#define MUL _mm256_mul_ps
#define FMA _mm256_fmadd_ps
#define SET _mm256_set1_ps
    const __m256 lo = SET (-TANH_CLAMP), hi = SET (TANH_CLAMP), two = SET (2.0f);
    size_t full = OC & ~(size_t) 7;
    for (size_t r = 0; r < rows; r++) {
        for (size_t o = 0; o < full; o += 8) {
            __m256 x = _mm256_loadu_ps (in + r * OC + o);
            if (bias)
                x = _mm256_add_ps (x, _mm256_loadu_ps (bias + o));
            x = _mm256_min_ps (_mm256_max_ps (x, lo), hi);
            __m256 p, q;
            TANH_POLY (__m256, x, p, q);
            __m256 rq = _mm256_rcp_ps (q);
            rq = MUL (rq, _mm256_fnmadd_ps (q, rq, two));
            _mm256_storeu_ps (out + r * OC + o, MUL (p, rq));
        }
        for (size_t o = full; o < OC; o++)
            out [r * OC + o] = s_tanh1 (in [r * OC + o] + (bias ? bias [o] : 0.0f));
    }
#undef MUL
#undef FMA
#undef SET
}
#endif

typedef void (tanh_rows_fn) (float *, const float *, const float *, size_t, size_t);

static tanh_rows_fn *
s_tanh_rows (void)
{
    static tanh_rows_fn *fn;
    if (!fn) {
        tanh_rows_fn *pick = s_tanh_rows_scalar;
#if defined (__x86_64__)
        __builtin_cpu_init ();
        if (__builtin_cpu_supports ("avx512f"))
            pick = s_tanh_rows_avx512;
        else
        if (__builtin_cpu_supports ("avx2") && __builtin_cpu_supports ("fma"))
            pick = s_tanh_rows_avx2;
#endif
        fn = pick;
    }
    return fn;
}

void
nn_tanh_forward (float *out, const float *in, size_t N)
{
    //  out [N], in [N]
    s_tanh_rows () (out, in, NULL, 1, N);
}

NN_CLONES void
nn_tanh_backward (float *din, const float *dout, const float *out, size_t N)
{
    //  din [N], dout [N], out [N]; din may alias dout
    for (size_t i = 0; i < N; i++)
        din [i] = dout [i] * (1.0f - out [i] * out [i]);
}

NN_CLONES void
nn_relu_forward (float *out, const float *in, size_t N)
{
    //  out [N], in [N]
    for (size_t i = 0; i < N; i++)
        out [i] = in [i] > 0.0f ? in [i] : 0.0f;
}

NN_CLONES void
nn_relu_backward (float *din, const float *dout, const float *out, size_t N)
{
    //  din [N], dout [N], out [N]; din may alias dout
    for (size_t i = 0; i < N; i++)
        din [i] = out [i] > 0.0f ? dout [i] : 0.0f;
}

void
nn_categorical_forward (float *logp, float *ent, const float *logits, int B, int A)
{
    //  logp [B][A], ent [B] or NULL, logits [B][A]
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t) r * A;
        float *lp = logp + (size_t) r * A;
        float mx = z [0];
        for (int a = 1; a < A; a++)
            mx = z [a] > mx ? z [a] : mx;
        float sum = 0;
        for (int a = 0; a < A; a++)
            sum += expf (z [a] - mx);
        float lse = mx + logf (sum);
        for (int a = 0; a < A; a++)
            lp [a] = z [a] - lse;
        if (ent) {
            float h = 0;
            for (int a = 0; a < A; a++)
                h -= expf (lp [a]) * lp [a];
            ent [r] = h;
        }
    }
}

void
nn_categorical_backward (float *dlogits, const float *logp, const float *ent,
                         const int32_t *actions, const float *dlogpa,
                         const float *dent, int B, int A)
{
    //  dlogits [B][A], logp [B][A], ent [B], actions [B], dlogpa [B], dent [B]
    //  d logp[a*] / dz_j = [j == a*] - p_j
    //  d H / dz_j        = -p_j (logp_j + H)
    for (int r = 0; r < B; r++) {
        const float *lp = logp + (size_t) r * A;
        float *dz = dlogits + (size_t) r * A;
        float ga = dlogpa ? dlogpa [r] : 0.0f;
        float gh = dent ? dent [r] : 0.0f;
        float h = ent ? ent [r] : 0.0f;
        for (int a = 0; a < A; a++) {
            float p = expf (lp [a]);
            dz [a] = -ga * p - gh * p * (lp [a] + h);
        }
        if (dlogpa) {
            assert (actions [r] >= 0 && actions [r] < A);
            dz [actions [r]] += ga;
        }
    }
}

void
nn_categorical_sample (int32_t *actions, const float *logp, int B, int A, rng_t *rng)
{
    //  actions [B], logp [B][A]
    for (int r = 0; r < B; r++) {
        const float *lp = logp + (size_t) r * A;
        float u = rng_uniformf (rng);
        float cum = 0;
        int32_t pick = A - 1;
        for (int a = 0; a < A; a++) {
            cum += expf (lp [a]);
            if (u < cum) {
                pick = a;
                break;
            }
        }
        actions [r] = pick;
    }
}

//  out [B][OC] = relu (out + b)
NN_CLONES static void
s_bias_relu (float *restrict out, const float *restrict b, int B, int OC)
{
    for (int r = 0; r < B; r++)
        for (int o = 0; o < OC; o++) {
            float x = out [(size_t) r * OC + o] + b [o];
            out [(size_t) r * OC + o] = x > 0.0f ? x : 0.0f;
        }
}

//  d [B][C] *= act'(y [B][C]); db [C] += sum_b d
NN_CLONES static void
s_act_backward_colsum (float *restrict d, float *restrict db, const float *restrict y,
                       int B, int C, nn_activation_t act)
{
    for (int r = 0; r < B; r++) {
        float *dr = d + (size_t) r * C;
        const float *yr = y + (size_t) r * C;
        if (act == NN_TANH)
            for (int c = 0; c < C; c++) {
                float v = dr [c] * (1.0f - yr [c] * yr [c]);
                dr [c] = v;
                db [c] += v;
            }
        else
            for (int c = 0; c < C; c++) {
                float v = yr [c] > 0.0f ? dr [c] : 0.0f;
                dr [c] = v;
                db [c] += v;
            }
    }
}

//  ---------------------------------------------------------------------
//  MLP driver

struct _nn_work_t {
    nn_arch_t arch;
    int max_batch;
    int max_width;
    float *act [2][NN_MAX_HIDDEN];  // [part][l] post-activation [max_batch][hidden[l]]
    float *out [2];                 // [part] [max_batch][n_out]
    float *grad [2];                // ping-pong [max_batch][max_width]
};

nn_work_t *
nn_work_new (const nn_arch_t *arch, int max_batch)
{
    assert (arch && max_batch > 0);
    nn_work_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->arch = *arch;
    self->max_batch = max_batch;
    int width = arch->n_actions;
    for (int l = 0; l < arch->n_hidden; l++)
        width = arch->hidden [l] > width ? arch->hidden [l] : width;
    self->max_width = width;
    bool ok = true;
    for (int part = 0; part < 2; part++) {
        for (int l = 0; l < arch->n_hidden; l++)
            ok &= (self->act [part][l] = malloc (sizeof (float) * (size_t) max_batch * arch->hidden [l])) != NULL;
        ok &= (self->out [part] = malloc (sizeof (float) * (size_t) max_batch
                                          * s_part_out (arch, (nn_part_t) part))) != NULL;
        ok &= (self->grad [part] = malloc (sizeof (float) * (size_t) max_batch * width)) != NULL;
    }
    if (!ok) {
        log_error ("nn_work_new_failed", "max_batch=%d", max_batch);
        nn_work_destroy (&self);
    }
    return self;
}

void
nn_work_destroy (nn_work_t **self_p)
{
    assert (self_p);
    nn_work_t *self = *self_p;
    if (!self)
        return;
    for (int part = 0; part < 2; part++) {
        for (int l = 0; l < NN_MAX_HIDDEN; l++)
            free (self->act [part][l]);
        free (self->out [part]);
        free (self->grad [part]);
    }
    free (self);
    *self_p = NULL;
}

const float *
nn_forward (nn_work_t *self, nn_part_t part, const float *params,
            const float *obs, int B)
{
    //  obs [B][obs_dim] -> out [B][n_out]
    assert (self && B <= self->max_batch);
    const nn_arch_t *arch = &self->arch;
    const float *p = params + nn_part_offset (arch, part);
    const float *in = obs;
    for (int l = 0; l <= arch->n_hidden; l++) {
        int C = s_layer_in (arch, l), OC = s_layer_out (arch, part, l);
        const float *w = p, *b = p + (size_t) OC * C;
        p = b + OC;
        if (l == arch->n_hidden) {
            nn_linear_forward (self->out [part], in, w, b, B, C, OC);
            break;
        }
        //  Hidden layer: matmul, then bias and activation in one pass.
        float *out = self->act [part][l];
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C,
                     1.0f, in, C, w, C, 0.0f, out, OC);
        if (arch->activation == NN_TANH)
            s_tanh_rows () (out, out, b, (size_t) B, (size_t) OC);
        else
            s_bias_relu (out, b, B, OC);
        in = out;
    }
    return self->out [part];
}

void
nn_backward (nn_work_t *self, nn_part_t part, float *grads,
             const float *params, const float *obs, const float *dout, int B)
{
    //  dout [B][n_out]; grads += dL/dparams of this part
    assert (self && B <= self->max_batch);
    const nn_arch_t *arch = &self->arch;
    size_t base = nn_part_offset (arch, part);
    //  Offsets of each layer's weight within the part.
    size_t off [NN_MAX_HIDDEN + 1] = { 0 };
    size_t o = base;
    for (int l = 0; l <= arch->n_hidden; l++) {
        off [l] = o;
        int C = s_layer_in (arch, l), OC = s_layer_out (arch, part, l);
        o += (size_t) OC * C + OC;
    }
    const float *d = dout;
    int L = arch->n_hidden;
    s_colsum_acc (grads + off [L] + (size_t) s_part_out (arch, part) * s_layer_in (arch, L),
                  dout, B, s_part_out (arch, part));
    for (int l = L; l >= 0; l--) {
        int C = s_layer_in (arch, l), OC = s_layer_out (arch, part, l);
        const float *w = params + off [l];
        float *dw = grads + off [l];
        const float *in = l == 0 ? obs : self->act [part][l - 1];
        //  din [B][C] = d . w; dw [OC][C] += d^T . in (db was summed already)
        float *din = l == 0 ? NULL : self->grad [l % 2];
        if (din)
            cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC,
                         1.0f, d, OC, w, C, 0.0f, din, C);
        cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B,
                     1.0f, d, OC, in, C, 1.0f, dw, C);
        if (l > 0) {
            //  Through the activation, summing the previous layer's db on the way.
            float *db_prev = grads + off [l - 1] + (size_t) C * s_layer_in (arch, l - 1);
            s_act_backward_colsum (din, db_prev, in, B, C, arch->activation);
            d = din;
        }
    }
}

int
nn_policy_eval (const nn_arch_t *arch, const float *params,
                const float *obs, int batch, float *probs, float *values)
{
    //  obs [batch][obs_dim], probs [batch][n_actions], values [batch] or NULL
    if (batch <= 0)
        return 0;
    nn_blas_init ();
    nn_work_t *work = nn_work_new (arch, batch);
    if (!work)
        return -1;
    const float *logits = nn_forward (work, NN_ACTOR, params, obs, batch);
    int A = arch->n_actions;
    nn_categorical_forward (probs, NULL, logits, batch, A);
    for (size_t i = 0; i < (size_t) batch * A; i++)
        probs [i] = expf (probs [i]);
    if (values) {
        const float *v = nn_forward (work, NN_CRITIC, params, obs, batch);
        memcpy (values, v, sizeof (float) * (size_t) batch);
    }
    nn_work_destroy (&work);
    return 0;
}
