/*  nn_fast: the kernels training runs (see nn_fast.h); nn.c is the
    reference they answer to.

    On AVX-512 machines the 64-multiple-wide layers run on our own
    register-blocked GEMM with the bias/activation (forward) and
    activation-derivative/bias-gradient (backward) passes fused into it,
    and layers with at most NN_THIN inputs or outputs on small loops:
    OpenBLAS (single-threaded) is the fallback for everything else. The
    elementwise loops are written branch-free so gcc vectorizes them, and
    the hot ones are cloned for AVX-512/AVX2 since we cannot assume
    -march=native on the machines that run the worker.
*/
#include "nn_fast.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define NN_CLONES __attribute__ ((target_clones ("arch=x86-64-v4", "arch=x86-64-v3", "default")))

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

NN_CLONES static void
s_colsum_acc (float *restrict db, const float *restrict dout, int B, int OC)
{
    for (int r = 0; r < B; r++) {
        const float *row = dout + (size_t) r * OC;
        for (int o = 0; o < OC; o++)
            db [o] += row [o];
    }
}

//  Thin layers. A layer with at most NN_THIN inputs (the first layer on a
//  small observation) or outputs (the policy and value heads) is mostly
//  packing overhead for sgemm, which is tuned for large blocks: these
//  loops do them at a fraction of the cost. They use gcc vector types so
//  the clones get full-width registers, and fix the summation order (rows
//  in sequence), so a run stays bit-identical.
#define NN_THIN 8

typedef float v16_t __attribute__ ((vector_size (64)));

//  The vector helpers are always inlined and the kernels take only
//  pointers, so no vector crosses a call: gcc's note on the vector calling
//  convention does not apply. (It is reported where gcc emits the clones,
//  at the end of the file, so it stays off to the end.)
#pragma GCC diagnostic ignored "-Wpsabi"

static inline __attribute__ ((always_inline)) v16_t
s_ld (const float *p)
{
    v16_t v;
    memcpy (&v, p, sizeof v);
    return v;
}

static inline __attribute__ ((always_inline)) void
s_st (float *p, v16_t v)
{
    memcpy (p, &v, sizeof v);
}

typedef int32_t v16i_t __attribute__ ((vector_size (64)));

//  Sum of the 16 lanes by halving, a fixed order.
static inline __attribute__ ((always_inline)) float
s_hsum (v16_t v)
{
    v += __builtin_shuffle (v, (v16i_t) { 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7 });
    v += __builtin_shuffle (v, (v16i_t) { 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3 });
    v += __builtin_shuffle (v, (v16i_t) { 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1 });
    v += __builtin_shuffle (v, (v16i_t) { 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0 });
    return v [0];
}

//  out [B][OC] = in [B][C] . w [OC][C]^T + b [OC], OC small: one dot per
//  output, 16 lanes at a time.
NN_CLONES static void
s_thin_out_forward (float *restrict out, const float *restrict in, const float *restrict w,
                    const float *restrict b, int B, int C, int OC)
{
    int C16 = C & ~15;
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t) r * C;
        for (int o = 0; o < OC; o++) {
            const float *wo = w + (size_t) o * C;
            v16_t acc = (v16_t) { 0 };
            for (int c = 0; c < C16; c += 16)
                acc += s_ld (x + c) * s_ld (wo + c);
            float s = s_hsum (acc);
            for (int c = C16; c < C; c++)
                s += x [c] * wo [c];
            out [(size_t) r * OC + o] = s + b [o];
        }
    }
}

//  out [B][OC] = in [B][KC] . wt [KC][OC] (wt is w transposed), KC a
//  compile-time constant after inlining so the row's inputs stay in
//  registers.
static inline __attribute__ ((always_inline)) void
s_thin_in_forward_k (float *restrict out, const float *restrict in, const float *restrict wt,
                     int B, const int KC, int OC)
{
    int O16 = OC & ~15;
    for (int r = 0; r < B; r++) {
        const float *x = in + (size_t) r * KC;
        float *y = out + (size_t) r * OC;
        for (int o = 0; o < O16; o += 16) {
            v16_t acc = x [0] * s_ld (wt + o);
            for (int c = 1; c < KC; c++)
                acc += x [c] * s_ld (wt + (size_t) c * OC + o);
            s_st (y + o, acc);
        }
        for (int o = O16; o < OC; o++) {
            float s = x [0] * wt [o];
            for (int c = 1; c < KC; c++)
                s += x [c] * wt [(size_t) c * OC + o];
            y [o] = s;
        }
    }
}

NN_CLONES static void
s_thin_in_forward (float *restrict out, const float *restrict in, const float *restrict wt,
                   int B, int C, int OC)
{
    switch (C) {
        case 1: s_thin_in_forward_k (out, in, wt, B, 1, OC); break;
        case 2: s_thin_in_forward_k (out, in, wt, B, 2, OC); break;
        case 3: s_thin_in_forward_k (out, in, wt, B, 3, OC); break;
        case 4: s_thin_in_forward_k (out, in, wt, B, 4, OC); break;
        case 5: s_thin_in_forward_k (out, in, wt, B, 5, OC); break;
        case 6: s_thin_in_forward_k (out, in, wt, B, 6, OC); break;
        case 7: s_thin_in_forward_k (out, in, wt, B, 7, OC); break;
        default:
            assert (C == 8);
            s_thin_in_forward_k (out, in, wt, B, 8, OC);
    }
}

//  wt [C][OC] = w [OC][C]^T
static void
s_transpose (float *restrict wt, const float *restrict w, int OC, int C)
{
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++)
            wt [(size_t) c * OC + o] = w [(size_t) o * C + c];
}

//  din [B][C] = dout [B][OC] . w [OC][C], OC small.
NN_CLONES static void
s_thin_out_din (float *restrict din, const float *restrict dout, const float *restrict w,
                int B, int C, int OC)
{
    int C16 = C & ~15;
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t) r * OC;
        float *g = din + (size_t) r * C;
        for (int c = 0; c < C16; c += 16) {
            v16_t acc = d [0] * s_ld (w + c);
            for (int o = 1; o < OC; o++)
                acc += d [o] * s_ld (w + (size_t) o * C + c);
            s_st (g + c, acc);
        }
        for (int c = C16; c < C; c++) {
            float s = d [0] * w [c];
            for (int o = 1; o < OC; o++)
                s += d [o] * w [(size_t) o * C + c];
            g [c] = s;
        }
    }
}

//  dw [OC][C] += dout [B][OC]^T . in [B][C], OC small: each output row's
//  gradient is accumulated over the batch in registers, 64 columns at a time.
NN_CLONES static void
s_thin_out_dw (float *restrict dw, const float *restrict dout, const float *restrict in,
               int B, int C, int OC)
{
    int C64 = C & ~63, C16 = C & ~15;
    for (int o = 0; o < OC; o++) {
        float *g = dw + (size_t) o * C;
        for (int c = 0; c < C64; c += 64) {
            v16_t a0 = (v16_t) { 0 }, a1 = a0, a2 = a0, a3 = a0;
            for (int r = 0; r < B; r++) {
                float s = dout [(size_t) r * OC + o];
                const float *x = in + (size_t) r * C + c;
                a0 += s * s_ld (x);
                a1 += s * s_ld (x + 16);
                a2 += s * s_ld (x + 32);
                a3 += s * s_ld (x + 48);
            }
            s_st (g + c, s_ld (g + c) + a0);
            s_st (g + c + 16, s_ld (g + c + 16) + a1);
            s_st (g + c + 32, s_ld (g + c + 32) + a2);
            s_st (g + c + 48, s_ld (g + c + 48) + a3);
        }
        for (int c = C64; c < C16; c += 16) {
            v16_t a0 = (v16_t) { 0 };
            for (int r = 0; r < B; r++)
                a0 += dout [(size_t) r * OC + o] * s_ld (in + (size_t) r * C + c);
            s_st (g + c, s_ld (g + c) + a0);
        }
        for (int c = C16; c < C; c++) {
            float s = 0;
            for (int r = 0; r < B; r++)
                s += dout [(size_t) r * OC + o] * in [(size_t) r * C + c];
            g [c] += s;
        }
    }
}

//  dw [OC][KC] += dout [B][OC]^T . in [B][KC], KC small: KC accumulators
//  of 16 outputs each run down the batch.
static inline __attribute__ ((always_inline)) void
s_thin_in_dw_k (float *restrict dw, const float *restrict dout, const float *restrict in,
                int B, const int KC, int OC)
{
    int O16 = OC & ~15;
    for (int o = 0; o < O16; o += 16) {
        v16_t acc [NN_THIN];
        for (int c = 0; c < KC; c++)
            acc [c] = (v16_t) { 0 };
        for (int r = 0; r < B; r++) {
            v16_t d = s_ld (dout + (size_t) r * OC + o);
            const float *x = in + (size_t) r * KC;
            for (int c = 0; c < KC; c++)
                acc [c] += x [c] * d;
        }
        for (int c = 0; c < KC; c++)
            for (int j = 0; j < 16; j++)
                dw [(size_t) (o + j) * KC + c] += acc [c][j];
    }
    for (int o = O16; o < OC; o++)
        for (int c = 0; c < KC; c++) {
            float s = 0;
            for (int r = 0; r < B; r++)
                s += dout [(size_t) r * OC + o] * in [(size_t) r * KC + c];
            dw [(size_t) o * KC + c] += s;
        }
}

NN_CLONES static void
s_thin_in_dw (float *restrict dw, const float *restrict dout, const float *restrict in,
              int B, int C, int OC)
{
    switch (C) {
        case 1: s_thin_in_dw_k (dw, dout, in, B, 1, OC); break;
        case 2: s_thin_in_dw_k (dw, dout, in, B, 2, OC); break;
        case 3: s_thin_in_dw_k (dw, dout, in, B, 3, OC); break;
        case 4: s_thin_in_dw_k (dw, dout, in, B, 4, OC); break;
        case 5: s_thin_in_dw_k (dw, dout, in, B, 5, OC); break;
        case 6: s_thin_in_dw_k (dw, dout, in, B, 6, OC); break;
        case 7: s_thin_in_dw_k (dw, dout, in, B, 7, OC); break;
        default:
            assert (C == 8);
            s_thin_in_dw_k (dw, dout, in, B, 8, OC);
    }
}

//  din [B][C] = dout [B][OC] . w [OC][C] (thin or sgemm)
static void
s_linear_din (float *din, const float *dout, const float *w, int B, int C, int OC)
{
    if (OC <= NN_THIN)
        s_thin_out_din (din, dout, w, B, C, OC);
    else
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC,
                     1.0f, dout, OC, w, C, 0.0f, din, C);
}

//  dw [OC][C] += dout [B][OC]^T . in [B][C] (thin or sgemm)
static void
s_linear_dw (float *dw, const float *dout, const float *in, int B, int C, int OC)
{
    if (OC <= NN_THIN)
        s_thin_out_dw (dw, dout, in, B, C, OC);
    else
    if (C <= NN_THIN)
        s_thin_in_dw (dw, dout, in, B, C, OC);
    else
        cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B,
                     1.0f, dout, OC, in, C, 1.0f, dw, C);
}

void
nn_fast_linear_forward (float *out, const float *in, const float *w,
                   const float *b, int B, int C, int OC)
{
    //  out [B][OC], in [B][C], w [OC][C], b [OC]
    if (OC <= NN_THIN) {
        s_thin_out_forward (out, in, w, b, B, C, OC);
        return;
    }
    if (C <= NN_THIN && C * OC <= 2048) {
        float wt [2048];
        s_transpose (wt, w, OC, C);
        s_thin_in_forward (out, in, wt, B, C, OC);
        for (int r = 0; r < B; r++)
            for (int o = 0; o < OC; o++)
                out [(size_t) r * OC + o] += b [o];
        return;
    }
    for (int r = 0; r < B; r++)
        memcpy (out + (size_t) r * OC, b, sizeof (float) * (size_t) OC);
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C,
                 1.0f, in, C, w, C, 1.0f, out, OC);
}

void
nn_fast_linear_backward (float *din, float *dw, float *db, const float *dout,
                    const float *in, const float *w, int B, int C, int OC)
{
    //  din [B][C], dw [OC][C], db [OC], dout [B][OC], in [B][C], w [OC][C]
    if (din)
        s_linear_din (din, dout, w, B, C, OC);
    s_linear_dw (dw, dout, in, B, C, OC);
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

//  A register-blocked GEMM for the wide layers, with the elementwise pass
//  that follows each matmul done on the accumulators before they are
//  stored. For 64-wide layers and a few hundred rows sgemm spends a third
//  of its time packing its operands and the separate bias/activation
//  passes read and write everything again; working on the operands where
//  they lie (they fit in L1/L2) runs near the FMA peak.
//
//      C [M][N] (op)= sum_k A(m, k) . Bm [k][N],  A(m, k) = a [m sam + k sak]
//
//  in tiles of 6 rows x 64 columns (24 zmm accumulators). N must be a
//  multiple of 64. Summation runs over k in order, so results are
//  deterministic.
typedef enum {
    G_ACC,          // C += acc
    G_BIAS_TANH,    // C = tanh (acc + aux [n])
    G_BIAS_RELU,    // C = max (acc + aux [n], 0)
    G_DTANH,        // C = acc * (1 - y^2), y = aux [m][n]; db [n] += sum_m C
    G_DRELU,        // C = acc * (y > 0), y = aux [m][n]; db [n] += sum_m C
} gemm_epi_t;

__attribute__ ((target ("avx512f"), always_inline))
static inline __m512
s_tanh16 (__m512 x)
{
#define MUL _mm512_mul_ps
#define FMA _mm512_fmadd_ps
#define SET _mm512_set1_ps
    x = _mm512_min_ps (_mm512_max_ps (x, SET (-TANH_CLAMP)), SET (TANH_CLAMP));
    __m512 p, q;
    TANH_POLY (__m512, x, p, q);
    __m512 rq = _mm512_rcp14_ps (q);
    rq = MUL (rq, _mm512_fnmadd_ps (q, rq, SET (2.0f)));
    return MUL (p, rq);
#undef MUL
#undef FMA
#undef SET
}

__attribute__ ((target ("avx512f"), always_inline))
static inline void
s_gemm_tile (float *restrict c, int ldc, const float *restrict a, int sam, int sak,
             const float *restrict b, int ldb, int K, const int MR,
             gemm_epi_t epi, const float *restrict aux, float *restrict db)
{
    __m512 x [4][6];
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < MR; i++)
            x [j][i] = _mm512_setzero_ps ();
    for (int k = 0; k < K; k++) {
        const float *bk = b + (size_t) k * ldb;
        __m512 b0 = _mm512_loadu_ps (bk), b1 = _mm512_loadu_ps (bk + 16),
               b2 = _mm512_loadu_ps (bk + 32), b3 = _mm512_loadu_ps (bk + 48);
        const float *ak = a + (size_t) k * sak;
        for (int i = 0; i < MR; i++) {
            __m512 s = _mm512_set1_ps (ak [(size_t) i * sam]);
            x [0][i] = _mm512_fmadd_ps (s, b0, x [0][i]);
            x [1][i] = _mm512_fmadd_ps (s, b1, x [1][i]);
            x [2][i] = _mm512_fmadd_ps (s, b2, x [2][i]);
            x [3][i] = _mm512_fmadd_ps (s, b3, x [3][i]);
        }
    }
    __m512 dsum [4];
    for (int j = 0; j < 4; j++)
        dsum [j] = _mm512_setzero_ps ();
    const __m512 one = _mm512_set1_ps (1.0f), zero = _mm512_setzero_ps ();
    for (int i = 0; i < MR; i++) {
        float *ci = c + (size_t) i * ldc;
        const float *yi = aux + (size_t) i * ldc;
        for (int j = 0; j < 4; j++) {
            __m512 v = x [j][i];
            switch (epi) {
                case G_ACC:
                    v = _mm512_add_ps (_mm512_loadu_ps (ci + 16 * j), v);
                    break;
                case G_BIAS_TANH:
                    v = s_tanh16 (_mm512_add_ps (v, _mm512_loadu_ps (aux + 16 * j)));
                    break;
                case G_BIAS_RELU:
                    v = _mm512_max_ps (_mm512_add_ps (v, _mm512_loadu_ps (aux + 16 * j)), zero);
                    break;
                case G_DTANH: {
                    __m512 y = _mm512_loadu_ps (yi + 16 * j);
                    v = _mm512_mul_ps (v, _mm512_fnmadd_ps (y, y, one));
                    dsum [j] = _mm512_add_ps (dsum [j], v);
                    break;
                }
                case G_DRELU: {
                    __m512 y = _mm512_loadu_ps (yi + 16 * j);
                    v = _mm512_maskz_mov_ps (_mm512_cmp_ps_mask (y, zero, _CMP_GT_OQ), v);
                    dsum [j] = _mm512_add_ps (dsum [j], v);
                    break;
                }
            }
            _mm512_storeu_ps (ci + 16 * j, v);
        }
    }
    if (epi == G_DTANH || epi == G_DRELU)
        for (int j = 0; j < 4; j++)
            _mm512_storeu_ps (db + 16 * j, _mm512_add_ps (_mm512_loadu_ps (db + 16 * j), dsum [j]));
}

//  For the G_D* epilogues aux is y [M][N] with the row stride of C (ldc).
__attribute__ ((target ("avx512f")))
static void
s_gemm512 (float *c, int ldc, const float *a, int sam, int sak,
           const float *b, int ldb, int M, int N, int K,
           gemm_epi_t epi, const float *aux, float *db)
{
    assert (N % 64 == 0);
    bool per_row = epi == G_DTANH || epi == G_DRELU;
    for (int n = 0; n < N; n += 64) {
        const float *auxn = aux ? aux + n : NULL;
        float *dbn = db ? db + n : NULL;
        int m = 0;
        for (; m + 6 <= M; m += 6)
            s_gemm_tile (c + (size_t) m * ldc + n, ldc, a + (size_t) m * sam, sam, sak,
                         b + n, ldb, K, 6, epi,
                         per_row ? auxn + (size_t) m * ldc : auxn, dbn);
        float *cm = c + (size_t) m * ldc + n;
        const float *am = a + (size_t) m * sam;
        const float *xm = per_row && aux ? auxn + (size_t) m * ldc : auxn;
        switch (M - m) {
            case 5: s_gemm_tile (cm, ldc, am, sam, sak, b + n, ldb, K, 5, epi, xm, dbn); break;
            case 4: s_gemm_tile (cm, ldc, am, sam, sak, b + n, ldb, K, 4, epi, xm, dbn); break;
            case 3: s_gemm_tile (cm, ldc, am, sam, sak, b + n, ldb, K, 3, epi, xm, dbn); break;
            case 2: s_gemm_tile (cm, ldc, am, sam, sak, b + n, ldb, K, 2, epi, xm, dbn); break;
            case 1: s_gemm_tile (cm, ldc, am, sam, sak, b + n, ldb, K, 1, epi, xm, dbn); break;
            default: break;
        }
    }
}

static bool
s_gemm512_ok (void)
{
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init ();
        ok = __builtin_cpu_supports ("avx512f") && getenv ("PBT_NN_NO_AVX512") == NULL;
    }
    return ok;
}
#else
typedef enum { G_ACC, G_BIAS_TANH, G_BIAS_RELU, G_DTANH, G_DRELU } gemm_epi_t;

static void
s_gemm512 (float *c, int ldc, const float *a, int sam, int sak,
           const float *b, int ldb, int M, int N, int K,
           gemm_epi_t epi, const float *aux, float *db)
{
    (void) c; (void) ldc; (void) a; (void) sam; (void) sak; (void) b; (void) ldb;
    (void) M; (void) N; (void) K; (void) epi; (void) aux; (void) db;
    assert (false);
}

static bool
s_gemm512_ok (void)
{
    return false;
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
nn_fast_tanh_forward (float *out, const float *in, size_t N)
{
    //  out [N], in [N]
    s_tanh_rows () (out, in, NULL, 1, N);
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
    float *wt;                      // [wt_size] a hidden layer's w^T
    size_t wt_size;
};

//  Largest w^T the workspace keeps for the wide-layer GEMM (4 MiB); a
//  layer over it goes to sgemm.
#define NN_WT_MAX ((size_t) 1 << 20)

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
                                          * nn_part_out (arch, (nn_part_t) part))) != NULL;
        ok &= (self->grad [part] = malloc (sizeof (float) * (size_t) max_batch * width)) != NULL;
    }
    self->wt_size = NN_THIN * (size_t) width;
    for (int l = 0; l < arch->n_hidden; l++) {
        size_t n = (size_t) nn_layer_in (arch, l) * arch->hidden [l];
        if (n <= NN_WT_MAX && n > self->wt_size)
            self->wt_size = n;
    }
    ok &= (self->wt = malloc (sizeof (float) * self->wt_size)) != NULL;
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
    free (self->wt);
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
        int C = nn_layer_in (arch, l), OC = nn_layer_out (arch, part, l);
        const float *w = p, *b = p + (size_t) OC * C;
        p = b + OC;
        if (l == arch->n_hidden) {
            nn_fast_linear_forward (self->out [part], in, w, b, B, C, OC);
            break;
        }
        //  Hidden layer: matmul, then bias and activation in one pass.
        float *out = self->act [part][l];
        const float *bias = b;
        if (OC % 64 == 0 && (size_t) C * OC <= self->wt_size && s_gemm512_ok ()) {
            s_transpose (self->wt, w, OC, C);
            s_gemm512 (out, OC, in, C, 1, self->wt, OC, B, OC, C,
                       arch->activation == NN_TANH ? G_BIAS_TANH : G_BIAS_RELU, b, NULL);
            in = out;
            continue;
        }
        if (C <= NN_THIN) {
            s_transpose (self->wt, w, OC, C);
            s_thin_in_forward (out, in, self->wt, B, C, OC);
        }
        else
        if (OC <= NN_THIN) {
            s_thin_out_forward (out, in, w, b, B, C, OC);
            bias = NULL;
        }
        else
            cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C,
                         1.0f, in, C, w, C, 0.0f, out, OC);
        if (arch->activation == NN_TANH)
            s_tanh_rows () (out, out, bias, (size_t) B, (size_t) OC);
        else
        if (bias)
            s_bias_relu (out, bias, B, OC);
        else
            nn_relu_forward (out, out, (size_t) B * OC);
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
        int C = nn_layer_in (arch, l), OC = nn_layer_out (arch, part, l);
        o += (size_t) OC * C + OC;
    }
    const float *d = dout;
    int L = arch->n_hidden;
    s_colsum_acc (grads + off [L] + (size_t) nn_part_out (arch, part) * nn_layer_in (arch, L),
                  dout, B, nn_part_out (arch, part));
    for (int l = L; l >= 0; l--) {
        int C = nn_layer_in (arch, l), OC = nn_layer_out (arch, part, l);
        const float *w = params + off [l];
        float *dw = grads + off [l];
        const float *in = l == 0 ? obs : self->act [part][l - 1];
        //  din [B][C] = d . w; dw [OC][C] += d^T . in (db was summed already)
        float *din = l == 0 ? NULL : self->grad [l % 2];
        bool fast = C % 64 == 0 && s_gemm512_ok ();
        if (fast) {
            //  dw first: din may be fused with the activation below.
            s_gemm512 (dw, C, d, 1, OC, in, C, OC, C, B, G_ACC, NULL, NULL);
            if (din) {
                float *db_prev = grads + off [l - 1] + (size_t) C * nn_layer_in (arch, l - 1);
                s_gemm512 (din, C, d, OC, 1, w, C, B, C, OC,
                           arch->activation == NN_TANH ? G_DTANH : G_DRELU, in, db_prev);
                d = din;
            }
            continue;
        }
        if (din)
            s_linear_din (din, d, w, B, C, OC);
        s_linear_dw (dw, d, in, B, C, OC);
        if (l > 0) {
            //  Through the activation, summing the previous layer's db on the way.
            float *db_prev = grads + off [l - 1] + (size_t) C * nn_layer_in (arch, l - 1);
            s_act_backward_colsum (din, db_prev, in, B, C, arch->activation);
            d = din;
        }
    }
}

int
nn_policy_eval (const nn_arch_t *arch, const float *params,
                const float *obs, int batch, float *probs, float *values)
{
    return nn_policy_eval_masked (arch, params, obs, NULL, batch, probs, values);
}

int
nn_policy_eval_masked (const nn_arch_t *arch, const float *params, const float *obs,
                       const uint8_t *mask, int batch, float *probs, float *values)
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
    nn_categorical_forward_masked (probs, NULL, logits, mask, batch, A);
    for (size_t i = 0; i < (size_t) batch * A; i++)
        probs [i] = expf (probs [i]);
    if (values) {
        const float *v = nn_forward (work, NN_CRITIC, params, obs, batch);
        memcpy (values, v, sizeof (float) * (size_t) batch);
    }
    nn_work_destroy (&work);
    return 0;
}
