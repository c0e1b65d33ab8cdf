/*  ppo: CleanRL ppo.py for one agent, in C.

    A ppo_t owns one agent's rollout buffer (n_steps x n_envs) and the
    scratch memory of its update, all allocated once. The match runner
    writes observations into the buffer, calls ppo_act every step (sample
    actions, record log-probs and values), ppo_reward after the env step,
    and ppo_update after the rollout: GAE, then `epochs` passes over
    shuffled minibatches of the clipped-surrogate loss with value loss
    (optionally clipped), entropy bonus, global grad-norm clipping and Adam
    (torch's bias-corrected form, eps 1e-5).

    The pieces (GAE, the minibatch loss and gradient, grad clipping, the
    Adam step) are exported so the tests can check each against the math.

    Conventions: dones [t][e] = 1 if env e's episode ended with the action
    taken at step t (CleanRL's dones[t+1]); rewards [t][e] is the training
    reward of that step.
*/
#ifndef PBT_PPO_H
#define PBT_PPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "proto.h"
#include "rng.h"

typedef struct {
    //  Per agent (seat hparams kv), evolvable.
    float lr;               // "lr" 2.5e-4
    float gamma;            // "gamma" 0.99
    float gae_lambda;       // "gae_lambda" 0.95
    float ent_coef;         // "ent_coef" 0.01
    float clip_coef;        // "clip_coef" 0.2
    //  Fixed (assignment ppo kv).
    float vf_coef;          // "vf_coef" 0.5
    float max_grad_norm;    // "max_grad_norm" 0.5 (<= 0: no clipping)
    int epochs;             // "epochs" 4
    int minibatches;        // "minibatches" 4
    bool clip_vloss;        // "clip_vloss" 1
    bool norm_adv;          // "norm_adv" 1
} ppo_hparams_t;

//  Diagnostics of one minibatch (or the mean over an update).
typedef struct {
    double loss;
    double pg_loss;
    double v_loss;
    double entropy;
    double approx_kl;       // mean((ratio - 1) - log ratio), as expm1(x) - x: never < 0
    double clipfrac;        // fraction with |ratio - 1| > clip_coef
    //  Filled by ppo_update only:
    double grad_norm;       // mean global gradient norm before clipping
    double explained_var;   // of the rollout's values for its returns; NAN if Var(returns) == 0
    int updates;            // minibatch steps the means are over
} ppo_stats_t;

typedef struct _ppo_t ppo_t;

//  The CleanRL defaults listed above.
void ppo_hparams_default (ppo_hparams_t *hp);

//  Defaults overridden by the seat's hparams and the assignment's ppo kv
//  (either may be NULL). Returns 0, or -1 with a message naming the bad
//  key. Keys of the seat's kv starting "shape_" are not read here.
int ppo_hparams_from (ppo_hparams_t *hp, const proto_kvs_t *seat,
                      const proto_kvs_t *ppo, char *err, size_t err_len);

//  Create an agent's buffers for rollouts of n_steps x n_envs split into
//  `minibatches` minibatches (n_envs * n_steps must divide evenly).
ppo_t *ppo_new (const nn_arch_t *arch, int n_envs, int n_steps, int minibatches);
void ppo_destroy (ppo_t **self_p);

//  Where to write the observations [n_envs][obs_dim] of step t
//  (0 <= t <= n_steps; t == n_steps is the bootstrap observation).
float *ppo_obs (ppo_t *self, int t);

//  Where to write the legal-action masks [n_envs][n_actions] of step t
//  (0 <= t < n_steps; 1 = legal). Until the first call every action is
//  legal; after it, acting and training use the masks (illegal logits
//  -inf). A forced step (one legal action) has log-prob 0 and no policy
//  gradient: that is how a player who is not to move is recorded.
uint8_t *ppo_mask (ppo_t *self, int t);

//  Sample actions [n_envs] for the observations of step t with the actor,
//  and record them, their log-probs and the critic's values.
void ppo_act (ppo_t *self, const float *params, int t, rng_t *rng, int32_t *actions);

//  Record step t's training rewards [n_envs] and dones [n_envs].
void ppo_reward (ppo_t *self, int t, const float *rewards, const uint8_t *dones);

//  Train on the recorded rollout: GAE (bootstrapping from ppo_obs(n_steps)),
//  then hp->epochs x minibatches Adam steps. adam_t counts steps.
//  Stats (may be NULL) are the means over all minibatches.
void ppo_update (ppo_t *self, const ppo_hparams_t *hp, float *params,
                 float *adam_m, float *adam_v, uint64_t *adam_t,
                 rng_t *rng, ppo_stats_t *stats);

//  GAE(gamma, lambda): adv [T][E], ret [T][E] from rewards [T][E],
//  values [T][E], dones [T][E] and the bootstrap last_values [E].
void ppo_gae (float *adv, float *ret, const float *rewards, const float *values,
              const float *dones, const float *last_values, int T, int E,
              float gamma, float lambda);

//  Loss of one minibatch of B samples at params, and its gradient written
//  to grads [n_params] (overwritten). obs [B][obs_dim], actions [B],
//  logp_old [B], adv [B] (raw; normalized here if hp->norm_adv),
//  ret [B], val_old [B]. Uses self's scratch (B <= minibatch size).
double ppo_loss_grad (ppo_t *self, const ppo_hparams_t *hp, const float *params,
                      const float *obs, const int32_t *actions, const float *logp_old,
                      const float *adv, const float *ret, const float *val_old,
                      int B, float *grads, ppo_stats_t *stats);

//  CleanRL's explained variance, 1 - Var(target - pred) / Var(target)
//  with population variances (np.var), over n pairs; NAN when Var(target)
//  is 0 (undefined: CleanRL reports nan too). At most 1.
double ppo_explained_variance (const float *pred, const float *target, size_t n);

//  The same under legal-action masks [B][n_actions] (NULL: all legal).
double ppo_loss_grad_masked (ppo_t *self, const ppo_hparams_t *hp, const float *params,
                             const float *obs, const uint8_t *mask, const int32_t *actions,
                             const float *logp_old, const float *adv, const float *ret,
                             const float *val_old, int B, float *grads, ppo_stats_t *stats);

//  torch.nn.utils.clip_grad_norm_: scale grads so their global L2 norm is
//  at most max_norm (coefficient max_norm / (norm + 1e-6)). Returns the
//  norm before clipping.
float ppo_clip_grad_norm (float *grads, size_t n, float max_norm);

//  torch.optim.Adam step number t (1-based, already incremented) with
//  bias correction: m, v updated in place, then params. Betas are doubles
//  as in torch (1 - beta2 rounds differently from 1 - (float) beta2).
void ppo_adam_step (float *params, float *m, float *v, const float *grads,
                    size_t n, uint64_t t, float lr, double beta1, double beta2, float eps);

#endif
