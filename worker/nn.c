/*  nn: MLP actor and critic, llm.c style (see nn.h for the layout): the
    readable reference.

    This file is the definition of the network: the parameter layout, the
    init, and one forward/backward per layer written as plain loops in the
    order of the math, then the MLP chained from them. It has no
    intrinsics and no BLAS, so it reads as the math does. What training
    runs is nn_fast.c (a register-blocked AVX-512 GEMM with fused
    epilogues, thin-layer loops, OpenBLAS), which the tests hold to this
    file's answers; this file's own backward is held to finite
    differences.
*/
#include "nn.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NN_MAX_OBS      65536
#define NN_MAX_ACTIONS  4096
#define NN_MAX_WIDTH    4096


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
int
nn_layer_in (const nn_arch_t *arch, int l)
{
    return l == 0 ? arch->obs_dim : arch->hidden [l - 1];
}

int
nn_part_out (const nn_arch_t *arch, nn_part_t part)
{
    return part == NN_ACTOR ? arch->n_actions : 1;
}

int
nn_layer_out (const nn_arch_t *arch, nn_part_t part, int l)
{
    return l == arch->n_hidden ? nn_part_out (arch, part) : arch->hidden [l];
}

//  The count is the wire's (proto_model_params), so pbtd, which never
//  links this file, and the network agree by construction.
_Static_assert (NN_MAX_HIDDEN <= PROTO_MAX_HIDDEN, "a network must fit the wire's model");

static proto_model_t
s_model (const nn_arch_t *arch)
{
    proto_model_t model = { .obs_dim = (uint32_t) arch->obs_dim,
                            .n_actions = (uint32_t) arch->n_actions,
                            .n_hidden = (uint32_t) arch->n_hidden };
    for (int l = 0; l < arch->n_hidden; l++)
        model.hidden [l] = (uint32_t) arch->hidden [l];
    return model;
}

size_t
nn_part_offset (const nn_arch_t *arch, nn_part_t part)
{
    proto_model_t model = s_model (arch);
    return part == NN_ACTOR ? 0 : (size_t) proto_model_head_params (&model, NN_ACTOR);
}

size_t
nn_param_count (const nn_arch_t *arch)
{
    proto_model_t model = s_model (arch);
    return (size_t) proto_model_params (&model);
}

int
nn_tensors (const nn_arch_t *arch, nn_tensor_t *out, int max)
{
    int n = 0;
    size_t offset = 0;
    for (int part = NN_ACTOR; part <= NN_CRITIC; part++)
        for (int l = 0; l <= arch->n_hidden; l++) {
            int in = nn_layer_in (arch, l), o = nn_layer_out (arch, (nn_part_t) part, l);
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

void
nn_init_seeded (const nn_arch_t *arch, float *params, uint64_t init_seed)
{
    rng_t rng;
    rng_seed (&rng, init_seed);
    nn_init (arch, params, &rng);
}

//  ---------------------------------------------------------------------
//  Reference layers. Backward kernels accumulate (+=) into parameter
//  gradients and overwrite input gradients.

void
nn_linear_forward (float *out, const float *in, const float *w,
                   const float *b, int B, int C, int OC)
{
    //  out [B][OC] = in [B][C] . w [OC][C]^T + b [OC]
    for (int r = 0; r < B; r++)
        for (int o = 0; o < OC; o++) {
            float s = b [o];
            for (int c = 0; c < C; c++)
                s += in [(size_t) r * C + c] * w [(size_t) o * C + c];
            out [(size_t) r * OC + o] = s;
        }
}

void
nn_linear_backward (float *din, float *dw, float *db, const float *dout,
                    const float *in, const float *w, int B, int C, int OC)
{
    //  dw [OC][C] += dout [B][OC]^T . in [B][C];  db [OC] += sum_b dout
    //  din [B][C] = dout . w [OC][C] (skipped if din is NULL)
    for (int r = 0; r < B; r++) {
        const float *d = dout + (size_t) r * OC, *x = in + (size_t) r * C;
        for (int o = 0; o < OC; o++) {
            db [o] += d [o];
            for (int c = 0; c < C; c++)
                dw [(size_t) o * C + c] += d [o] * x [c];
        }
        if (!din)
            continue;
        for (int c = 0; c < C; c++) {
            float s = 0;
            for (int o = 0; o < OC; o++)
                s += d [o] * w [(size_t) o * C + c];
            din [(size_t) r * C + c] = s;
        }
    }
}

void
nn_tanh_forward (float *out, const float *in, size_t N)
{
    //  out [N] = tanh (in [N]); out may alias in
    for (size_t i = 0; i < N; i++)
        out [i] = tanhf (in [i]);
}

void
nn_tanh_backward (float *din, const float *dout, const float *out, size_t N)
{
    //  din [N] = dout [N] * (1 - out^2); din may alias dout
    for (size_t i = 0; i < N; i++)
        din [i] = dout [i] * (1.0f - out [i] * out [i]);
}

void
nn_relu_forward (float *out, const float *in, size_t N)
{
    //  out [N] = max (in [N], 0); out may alias in
    for (size_t i = 0; i < N; i++)
        out [i] = in [i] > 0.0f ? in [i] : 0.0f;
}

void
nn_relu_backward (float *din, const float *dout, const float *out, size_t N)
{
    //  din [N] = dout [N] * (out > 0); din may alias dout
    for (size_t i = 0; i < N; i++)
        din [i] = out [i] > 0.0f ? dout [i] : 0.0f;
}

//  ---------------------------------------------------------------------
//  Categorical head

void
nn_categorical_forward (float *logp, float *ent, const float *logits, int B, int A)
{
    nn_categorical_forward_masked (logp, ent, logits, NULL, B, A);
}

void
nn_categorical_forward_masked (float *logp, float *ent, const float *logits,
                               const uint8_t *mask, int B, int A)
{
    //  logp [B][A], ent [B] or NULL, logits [B][A], mask [B][A] or NULL.
    //  Illegal actions get logp -inf: the softmax over the legal logits
    //  only, so no probability and no gradient reaches them.
    for (int r = 0; r < B; r++) {
        const float *z = logits + (size_t) r * A;
        const uint8_t *m = mask ? mask + (size_t) r * A : NULL;
        float *lp = logp + (size_t) r * A;
        float mx = -INFINITY;
        for (int a = 0; a < A; a++)
            if ((!m || m [a]) && z [a] > mx)
                mx = z [a];
        float sum = 0;
        for (int a = 0; a < A; a++)
            if (!m || m [a])
                sum += expf (z [a] - mx);
        float lse = mx + logf (sum);
        for (int a = 0; a < A; a++)
            lp [a] = !m || m [a] ? z [a] - lse : -INFINITY;
        if (ent) {
            float h = 0;
            for (int a = 0; a < A; a++)
                if (!m || m [a])
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
            if (lp [a] == -INFINITY) {
                dz [a] = 0;         // a masked action: its logit is not used
                continue;
            }
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
        //  If rounding leaves u above the total, the last legal action.
        int32_t pick = A - 1;
        while (pick > 0 && lp [pick] == -INFINITY)
            pick--;
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

//  ---------------------------------------------------------------------
//  Reference MLP: linear, activation, ..., linear.

//  Widest layer output (a gradient buffer's row).
static int
s_max_width (const nn_arch_t *arch)
{
    int width = arch->n_actions;
    for (int l = 0; l < arch->n_hidden; l++)
        width = arch->hidden [l] > width ? arch->hidden [l] : width;
    return width;
}

size_t
nn_ref_work_count (const nn_arch_t *arch, int B)
{
    //  Every layer's output [B][OC] (the actor's, the larger part), then
    //  two gradient buffers [B][max width] for the backward.
    size_t n = 0;
    for (int l = 0; l <= arch->n_hidden; l++)
        n += (size_t) B * nn_layer_out (arch, NN_ACTOR, l);
    return n + 2 * (size_t) B * s_max_width (arch);
}

const float *
nn_ref_forward (const nn_arch_t *arch, nn_part_t part, const float *params,
                const float *obs, int B, float *work)
{
    //  obs [B][obs_dim] -> layer outputs in work, the last [B][n_out] returned
    const float *p = params + nn_part_offset (arch, part), *in = obs;
    float *out = work;
    for (int l = 0; l <= arch->n_hidden; l++) {
        int C = nn_layer_in (arch, l), OC = nn_layer_out (arch, part, l);
        const float *w = p, *b = p + (size_t) OC * C;      // w [OC][C], b [OC]
        p = b + OC;
        nn_linear_forward (out, in, w, b, B, C, OC);
        if (l < arch->n_hidden) {
            if (arch->activation == NN_TANH)
                nn_tanh_forward (out, out, (size_t) B * OC);
            else
                nn_relu_forward (out, out, (size_t) B * OC);
        }
        in = out;
        out += (size_t) B * OC;
    }
    return in;
}

void
nn_ref_backward (const nn_arch_t *arch, nn_part_t part, const float *params,
                 const float *obs, float *work, const float *dout, int B, float *grads)
{
    //  dout [B][n_out]; grads += dL/dparams of this part
    const float *act [NN_MAX_HIDDEN + 1];   // [l] layer l's output [B][OC]
    size_t off [NN_MAX_HIDDEN + 1];         // [l] layer l's weight in params
    float *a = work;
    size_t o = nn_part_offset (arch, part);
    int L = arch->n_hidden;
    for (int l = 0; l <= L; l++) {
        int C = nn_layer_in (arch, l), OC = nn_layer_out (arch, part, l);
        act [l] = a;
        a += (size_t) B * OC;
        off [l] = o;
        o += (size_t) OC * C + OC;
    }
    float *g [2] = { a, a + (size_t) B * s_max_width (arch) };
    const float *d = dout;
    for (int l = L; l >= 0; l--) {
        int C = nn_layer_in (arch, l), OC = nn_layer_out (arch, part, l);
        float *dw = grads + off [l], *db = dw + (size_t) OC * C;
        const float *in = l == 0 ? obs : act [l - 1];
        float *din = l == 0 ? NULL : g [l % 2];
        nn_linear_backward (din, dw, db, d, in, params + off [l], B, C, OC);
        if (l == 0)
            break;
        //  Through the previous layer's activation (its output is in).
        if (arch->activation == NN_TANH)
            nn_tanh_backward (din, din, in, (size_t) B * C);
        else
            nn_relu_backward (din, din, in, (size_t) B * C);
        d = din;
    }
}
