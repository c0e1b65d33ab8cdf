/*  nn_fast: the network as training runs it.

    The same functions as nn.h's reference, fast: a workspace allocated
    once per batch size, the MLP forward and backward over it (an AVX-512
    register-blocked GEMM with fused bias/activation epilogues for
    64-multiple-wide layers, small loops for layers with at most 8 inputs
    or outputs, single-threaded OpenBLAS for the rest), and tanh by a
    rational approximation. tests/learn holds every path to nn.c's answers;
    PBT_NN_NO_AVX512 in the environment turns the AVX-512 GEMM off.
*/
#ifndef PBT_NN_FAST_H
#define PBT_NN_FAST_H

#include "nn.h"

//  Make OpenBLAS single-threaded (deterministic, one core); idempotent.
void nn_blas_init (void);

//  nn_linear_forward / nn_linear_backward (same contracts) by thin loops
//  or sgemm.
void nn_fast_linear_forward (float *out, const float *in, const float *w,
                             const float *b, int B, int C, int OC);
void nn_fast_linear_backward (float *din, float *dw, float *db, const float *dout,
                              const float *in, const float *w, int B, int C, int OC);
//  out [N] = tanh (in [N]) by a rational approximation (|error| < 1e-6)
void nn_fast_tanh_forward (float *out, const float *in, size_t N);

//  Activations of both MLPs for batches of up to max_batch rows.
typedef struct _nn_work_t nn_work_t;
nn_work_t *nn_work_new (const nn_arch_t *arch, int max_batch);
void nn_work_destroy (nn_work_t **self_p);
//  Forward one part on obs [B][obs_dim]; returns its output [B][n_out]
//  (logits, or values with n_out 1), owned by the workspace and valid
//  until the part's next forward.
const float *nn_forward (nn_work_t *self, nn_part_t part, const float *params,
                         const float *obs, int B);
//  Backward of the part's last forward (same obs and B): accumulate the
//  gradient of a loss with dL/dout = dout [B][n_out] into grads.
void nn_backward (nn_work_t *self, nn_part_t part, float *grads,
                  const float *params, const float *obs, const float *dout, int B);

//  Action probabilities for a batch of observations (not a hot path:
//  allocates scratch). probs [batch][n_actions]; values [batch] may be NULL.
int nn_policy_eval (const nn_arch_t *arch, const float *params,
                    const float *obs, int batch, float *probs, float *values);
//  The same under legal-action masks [batch][n_actions] (1 = legal; NULL:
//  all legal): probs = softmax (where (mask, logits, -inf)).
int nn_policy_eval_masked (const nn_arch_t *arch, const float *params, const float *obs,
                           const uint8_t *mask, int batch, float *probs, float *values);

#endif
