/*  nn: MLP actor and critic, llm.c style.

    The model is two separate MLPs, as CleanRL's ppo.py lays them out:
        actor:  obs -> H1 -> ... -> Hk -> n_actions   (logits)
        critic: obs -> H1 -> ... -> Hk -> 1           (value)
    with tanh (default) or ReLU between layers. All parameters live in one
    flat float buffer in PyTorch nn.Sequential order, weights row-major
    [out][in] as torch stores them:
        actor.0.weight [H1][obs], actor.0.bias [H1], actor.2.weight [H2][H1], ...
        critic.0.weight [H1][obs], ..., critic.{2k}.bias [1]
    Gradients and both Adam moments use the same layout, so one index means
    the same parameter in all four buffers, and export is a set of slices.
*/
#ifndef PBT_NN_H
#define PBT_NN_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "rng.h"

#define NN_MAX_HIDDEN 4

typedef enum { NN_TANH = 0, NN_RELU = 1 } nn_activation_t;

typedef struct {
    int obs_dim;
    int n_actions;
    int n_hidden;
    int hidden [NN_MAX_HIDDEN];
    nn_activation_t activation;
} nn_arch_t;

typedef struct {
    char name [32];     // e.g. "actor.0.weight"
    size_t offset;      // index of the first float in the flat buffer
    int rows;           // out features
    int cols;           // in features; 0 for a bias (shape [rows])
} nn_tensor_t;

//  Fill arch from a model description; returns 0, or -1 (bad activation,
//  sizes out of range) with a message in err.
int nn_arch_from_proto (nn_arch_t *arch, const proto_model_t *model, char *err, size_t err_len);

//  Name of an activation ("tanh"/"relu").
const char *nn_activation_name (nn_activation_t act);

//  Total floats in the flat parameter buffer (actor + critic).
size_t nn_param_count (const nn_arch_t *arch);

//  List the tensors in buffer order; returns how many (<= max).
int nn_tensors (const nn_arch_t *arch, nn_tensor_t *out, int max);

//  Orthogonal init (gain sqrt(2) hidden, 0.01 policy out, 1.0 value out),
//  zero biases, deterministic from rng.
void nn_init (const nn_arch_t *arch, float *params, rng_t *rng);

//  The initial weights of an agent that has none yet: nn_init from an rng
//  seeded with init_seed (pbtd hands it out; the worker that first trains
//  the agent and pbtctl export/eval make the very same weights).
void nn_init_seeded (const nn_arch_t *arch, float *params, uint64_t init_seed);

//  ---------------------------------------------------------------------
//  The reference layers, llm.c style: plain loops in the order of the
//  math (nn_fast.h has the kernels training runs, checked against these).
//  Each takes outputs first, then const inputs; B is the batch, C input
//  features, OC output features. Backward kernels ACCUMULATE (+=) into
//  parameter gradients (dw, db) and overwrite input gradients (din), so a
//  caller zeroes the gradient buffer once per minibatch.

//  out [B][OC] = in [B][C] . w [OC][C]^T + b [OC]
void nn_linear_forward (float *out, const float *in, const float *w,
                        const float *b, int B, int C, int OC);
//  din [B][C] = dout [B][OC] . w [OC][C] (skipped if din is NULL);
//  dw [OC][C] += dout^T . in;  db [OC] += sum_b dout
void nn_linear_backward (float *din, float *dw, float *db, const float *dout,
                         const float *in, const float *w, int B, int C, int OC);
//  out [N] = tanh (in [N]) (libm's tanhf)
void nn_tanh_forward (float *out, const float *in, size_t N);
//  din [N] = dout [N] * (1 - out^2), out being the forward's output
void nn_tanh_backward (float *din, const float *dout, const float *out, size_t N);
//  out [N] = max (in, 0)
void nn_relu_forward (float *out, const float *in, size_t N);
//  din [N] = dout [N] * (out > 0)
void nn_relu_backward (float *din, const float *dout, const float *out, size_t N);
//  Categorical head. logp [B][A] = log_softmax (logits [B][A]);
//  ent [B] = -sum_a p log p (ent may be NULL).
void nn_categorical_forward (float *logp, float *ent, const float *logits, int B, int A);
//  The same over the legal actions of mask [B][A] (NULL: all): illegal
//  actions get logp -inf and are left out of the entropy; backward gives
//  their logits zero gradient and sample never picks them.
void nn_categorical_forward_masked (float *logp, float *ent, const float *logits,
                                    const uint8_t *mask, int B, int A);
//  dlogits [B][A] for a loss with dL/dlogp[b][actions[b]] = dlogpa [b] and
//  dL/dent [b] = dent [b] (either may be NULL = zero).
void nn_categorical_backward (float *dlogits, const float *logp, const float *ent,
                              const int32_t *actions, const float *dlogpa,
                              const float *dent, int B, int A);
//  Sample one action per row from logp [B][A] with uniforms from rng.
void nn_categorical_sample (int32_t *actions, const float *logp, int B, int A, rng_t *rng);

//  Which of the two MLPs.
typedef enum { NN_ACTOR = 0, NN_CRITIC = 1 } nn_part_t;

//  Floats in the flat buffer before the part's first tensor (0 or the
//  actor's size).
size_t nn_part_offset (const nn_arch_t *arch, nn_part_t part);
//  In features of layer l (0..n_hidden), out features of a part's layer l,
//  and a part's outputs (n_actions logits, or 1 value).
int nn_layer_in (const nn_arch_t *arch, int l);
int nn_layer_out (const nn_arch_t *arch, nn_part_t part, int l);
int nn_part_out (const nn_arch_t *arch, nn_part_t part);

//  The reference MLP of one part, chained from the layers above. work
//  holds nn_ref_work_count floats for a batch of B: forward writes every
//  layer's output there and returns the last [B][n_out]; backward (same
//  obs, B and work) accumulates into grads [n_params] the gradient of a
//  loss with dL/dout = dout [B][n_out].
size_t nn_ref_work_count (const nn_arch_t *arch, int B);
const float *nn_ref_forward (const nn_arch_t *arch, nn_part_t part, const float *params,
                             const float *obs, int B, float *work);
void nn_ref_backward (const nn_arch_t *arch, nn_part_t part, const float *params,
                      const float *obs, float *work, const float *dout, int B, float *grads);

#endif
