/*  ppo: CleanRL ppo.py for one agent (see ppo.h).

    Every formula below follows cleanrl/ppo.py and the PyTorch operations
    it calls (Categorical, torch.max, clamp, .std(), clip_grad_norm_,
    Adam), including how torch splits a gradient between the two sides of
    a max when they tie, so the loss and gradients match a torch run to
    float rounding.
*/
#include "ppo.h"
#include "settings.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nn_fast.h"

//  A minibatch goes through forward and backward in chunks of this many
//  rows: the activations of a chunk (a few hundred KiB) stay in L2, while
//  the matmuls are still large enough for OpenBLAS to run near peak. The
//  gradient is the same sum, accumulated chunk by chunk.
#define PPO_CHUNK 512

struct _ppo_t {
    nn_arch_t arch;
    size_t n_params;
    int n_envs;             // E
    int n_steps;            // T
    int mb_size;            // (T * E) / minibatches
    nn_work_t *work;        // activations for up to max(E, mb_size) rows
    //  Rollout, [T][E] unless noted.
    float *obs;             // [T + 1][E][obs_dim]
    uint8_t *mask;          // [T][E][A] legal actions (all ones unless written)
    bool masked;            // ppo_mask was used: the policy honours mask
    int32_t *act;
    float *logp;
    float *val;
    float *rew;
    float *done;
    float *adv;
    float *ret;
    float *last_val;        // [E]
    float *logp_all;        // [max_batch][A] scratch for the categorical head
    int32_t *perm;          // [T * E]
    //  Minibatch gather and loss scratch, [mb_size] unless noted.
    float *mb_obs;          // [mb_size][obs_dim]
    uint8_t *mb_mask;       // [mb_size][A]
    int32_t *mb_act;
    float *mb_logp;
    float *mb_adv;
    float *mb_ret;
    float *mb_val;
    float *ent;
    float *dlogpa;
    float *dent;
    float *dv;
    float *dlogits;         // [chunk][A]
    float *grads;           // [n_params]
};

//  The defaults are lib/settings.c's: [hparam] for what a seat carries,
//  [ppo] for what the assignment does.
void
ppo_hparams_default (ppo_hparams_t *hp)
{
    *hp = (ppo_hparams_t) {
        .lr = (float) settings_default ("hparam", "lr"),
        .gamma = (float) settings_default ("hparam", "gamma"),
        .gae_lambda = (float) settings_default ("hparam", "gae_lambda"),
        .ent_coef = (float) settings_default ("hparam", "ent_coef"),
        .clip_coef = (float) settings_default ("hparam", "clip_coef"),
        .vf_coef = (float) settings_default ("ppo", "vf_coef"),
        .max_grad_norm = (float) settings_default ("ppo", "max_grad_norm"),
        .epochs = (int) settings_default ("ppo", "epochs"),
        .minibatches = (int) settings_default ("ppo", "minibatches"),
        .clip_vloss = settings_default ("ppo", "clip_vloss") != 0,
        .norm_adv = settings_default ("ppo", "norm_adv") != 0,
    };
}

//  Read kvs[name] into *out if present and in the table's range for
//  section.name.
static int
s_get (const proto_kvs_t *kvs, const char *section, const char *name, double *out,
       char *err, size_t err_len)
{
    const setting_t *s = settings_find (section, name);
    assert (s);
    if (!kvs || !proto_kvs_has (kvs, name))
        return 0;
    double v = proto_kvs_get (kvs, name, 0);
    if (settings_check (s, v, err, err_len))
        return -1;
    *out = v;
    return 0;
}

int
ppo_hparams_from (ppo_hparams_t *hp, const proto_kvs_t *seat,
                  const proto_kvs_t *ppo, char *err, size_t err_len)
{
    ppo_hparams_default (hp);
    double lr = hp->lr, gamma = hp->gamma, lam = hp->gae_lambda, ent = hp->ent_coef,
           clip = hp->clip_coef, vf = hp->vf_coef, mgn = hp->max_grad_norm,
           epochs = hp->epochs, mbs = hp->minibatches, cv = hp->clip_vloss, na = hp->norm_adv;
    if (s_get (seat, "hparam", "lr", &lr, err, err_len)
    ||  s_get (seat, "hparam", "gamma", &gamma, err, err_len)
    ||  s_get (seat, "hparam", "gae_lambda", &lam, err, err_len)
    ||  s_get (seat, "hparam", "ent_coef", &ent, err, err_len)
    ||  s_get (seat, "hparam", "clip_coef", &clip, err, err_len)
    ||  s_get (ppo, "ppo", "vf_coef", &vf, err, err_len)
    ||  s_get (ppo, "ppo", "max_grad_norm", &mgn, err, err_len)
    ||  s_get (ppo, "ppo", "epochs", &epochs, err, err_len)
    ||  s_get (ppo, "ppo", "minibatches", &mbs, err, err_len)
    ||  s_get (ppo, "ppo", "clip_vloss", &cv, err, err_len)
    ||  s_get (ppo, "ppo", "norm_adv", &na, err, err_len))
        return -1;
    hp->lr = (float) lr;
    hp->gamma = (float) gamma;
    hp->gae_lambda = (float) lam;
    hp->ent_coef = (float) ent;
    hp->clip_coef = (float) clip;
    hp->vf_coef = (float) vf;
    hp->max_grad_norm = (float) mgn;
    hp->epochs = (int) epochs;
    hp->minibatches = (int) mbs;
    hp->clip_vloss = cv != 0;
    hp->norm_adv = na != 0;
    return 0;
}

ppo_t *
ppo_new (const nn_arch_t *arch, int n_envs, int n_steps, int minibatches)
{
    assert (arch);
    if (n_envs < 1 || n_steps < 1 || minibatches < 1
    || ((size_t) n_envs * n_steps) % minibatches != 0) {
        log_error ("ppo_new_failed", "n_envs=%d n_steps=%d minibatches=%d reason=\"batch does not split\"",
                   n_envs, n_steps, minibatches);
        return NULL;
    }
    ppo_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->arch = *arch;
    self->n_params = nn_param_count (arch);
    self->n_envs = n_envs;
    self->n_steps = n_steps;
    self->mb_size = (int) (((size_t) n_envs * n_steps) / minibatches);
    int chunk = self->mb_size < PPO_CHUNK ? self->mb_size : PPO_CHUNK;
    int max_batch = chunk > n_envs ? chunk : n_envs;
    size_t TE = (size_t) n_envs * n_steps, D = (size_t) arch->obs_dim, A = (size_t) arch->n_actions;
    size_t M = (size_t) self->mb_size;
    self->work = nn_work_new (arch, max_batch);
    self->obs = malloc (sizeof (float) * (TE + (size_t) n_envs) * D);
    self->act = malloc (sizeof (int32_t) * TE);
    self->mask = malloc (TE * A);
    self->mb_mask = malloc (M * A);
    self->logp = malloc (sizeof (float) * TE);
    self->val = malloc (sizeof (float) * TE);
    self->rew = malloc (sizeof (float) * TE);
    self->done = malloc (sizeof (float) * TE);
    self->adv = malloc (sizeof (float) * TE);
    self->ret = malloc (sizeof (float) * TE);
    self->last_val = malloc (sizeof (float) * (size_t) n_envs);
    self->logp_all = malloc (sizeof (float) * (size_t) max_batch * A);
    self->perm = malloc (sizeof (int32_t) * TE);
    self->mb_obs = malloc (sizeof (float) * M * D);
    self->mb_act = malloc (sizeof (int32_t) * M);
    self->mb_logp = malloc (sizeof (float) * M);
    self->mb_adv = malloc (sizeof (float) * M);
    self->mb_ret = malloc (sizeof (float) * M);
    self->mb_val = malloc (sizeof (float) * M);
    self->ent = malloc (sizeof (float) * (size_t) max_batch);
    self->dlogpa = malloc (sizeof (float) * (size_t) chunk);
    self->dent = malloc (sizeof (float) * (size_t) chunk);
    self->dv = malloc (sizeof (float) * (size_t) chunk);
    self->dlogits = malloc (sizeof (float) * (size_t) chunk * A);
    self->grads = malloc (sizeof (float) * self->n_params);
    if (!self->work || !self->obs || !self->act || !self->logp || !self->val || !self->rew
    ||  !self->done || !self->adv || !self->ret || !self->last_val || !self->logp_all
    ||  !self->perm || !self->mb_obs || !self->mb_act || !self->mb_logp || !self->mb_adv
    ||  !self->mb_ret || !self->mb_val || !self->ent || !self->dlogpa || !self->dent
    ||  !self->dv || !self->dlogits || !self->grads || !self->mask || !self->mb_mask) {
        log_error ("ppo_new_failed", "reason=\"out of memory\"");
        ppo_destroy (&self);
        return NULL;
    }
    memset (self->obs, 0, sizeof (float) * (TE + (size_t) n_envs) * D);
    memset (self->mask, 1, TE * A);
    for (size_t i = 0; i < TE; i++)
        self->perm [i] = (int32_t) i;
    return self;
}

void
ppo_destroy (ppo_t **self_p)
{
    assert (self_p);
    ppo_t *self = *self_p;
    if (!self)
        return;
    nn_work_destroy (&self->work);
    free (self->obs);
    free (self->mask);
    free (self->mb_mask);
    free (self->act);
    free (self->logp);
    free (self->val);
    free (self->rew);
    free (self->done);
    free (self->adv);
    free (self->ret);
    free (self->last_val);
    free (self->logp_all);
    free (self->perm);
    free (self->mb_obs);
    free (self->mb_act);
    free (self->mb_logp);
    free (self->mb_adv);
    free (self->mb_ret);
    free (self->mb_val);
    free (self->ent);
    free (self->dlogpa);
    free (self->dent);
    free (self->dv);
    free (self->dlogits);
    free (self->grads);
    free (self);
    *self_p = NULL;
}

float *
ppo_obs (ppo_t *self, int t)
{
    assert (self && t >= 0 && t <= self->n_steps);
    return self->obs + (size_t) t * self->n_envs * self->arch.obs_dim;
}

uint8_t *
ppo_mask (ppo_t *self, int t)
{
    assert (self && t >= 0 && t < self->n_steps);
    self->masked = true;
    return self->mask + (size_t) t * self->n_envs * self->arch.n_actions;
}

void
ppo_act (ppo_t *self, const float *params, int t, rng_t *rng, int32_t *actions)
{
    //  obs [E][obs_dim] of step t -> actions [E]; records act, logp, val [t][E]
    assert (self && t >= 0 && t < self->n_steps);
    int E = self->n_envs, A = self->arch.n_actions;
    const float *obs = ppo_obs (self, t);
    const float *logits = nn_forward (self->work, NN_ACTOR, params, obs, E);
    const uint8_t *mask = self->masked ? self->mask + (size_t) t * E * A : NULL;
    nn_categorical_forward_masked (self->logp_all, NULL, logits, mask, E, A);
    nn_categorical_sample (actions, self->logp_all, E, A, rng);
    const float *v = nn_forward (self->work, NN_CRITIC, params, obs, E);
    size_t base = (size_t) t * E;
    for (int e = 0; e < E; e++) {
        self->act [base + e] = actions [e];
        self->logp [base + e] = self->logp_all [(size_t) e * A + actions [e]];
        self->val [base + e] = v [e];
    }
}

void
ppo_reward (ppo_t *self, int t, const float *rewards, const uint8_t *dones)
{
    assert (self && t >= 0 && t < self->n_steps);
    size_t base = (size_t) t * self->n_envs;
    for (int e = 0; e < self->n_envs; e++) {
        self->rew [base + e] = rewards [e];
        self->done [base + e] = dones [e] ? 1.0f : 0.0f;
    }
}

void
ppo_gae (float *adv, float *ret, const float *rewards, const float *values,
         const float *dones, const float *last_values, int T, int E,
         float gamma, float lambda)
{
    //  adv, ret, rewards, values, dones [T][E]; last_values [E]
    //  delta_t = r_t + gamma V(s_t+1) (1 - d_t) - V(s_t)
    //  A_t     = delta_t + gamma lambda (1 - d_t) A_t+1
    for (int e = 0; e < E; e++) {
        float last = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t i = (size_t) t * E + e;
            float next_v = t == T - 1 ? last_values [e] : values [i + E];
            float nonterm = 1.0f - dones [i];
            float delta = rewards [i] + gamma * next_v * nonterm - values [i];
            last = delta + gamma * lambda * nonterm * last;
            adv [i] = last;
            ret [i] = last + values [i];
        }
    }
}

//  torch.max (a, b) sends the gradient to the larger side, half to each on a tie.
static inline float
s_max_share (float a, float b)
{
    return a > b ? 1.0f : a == b ? 0.5f : 0.0f;
}

double
ppo_loss_grad (ppo_t *self, const ppo_hparams_t *hp, const float *params,
               const float *obs, const int32_t *actions, const float *logp_old,
               const float *adv, const float *ret, const float *val_old,
               int B, float *grads, ppo_stats_t *stats)
{
    return ppo_loss_grad_masked (self, hp, params, obs, NULL, actions, logp_old, adv, ret,
                                 val_old, B, grads, stats);
}

double
ppo_loss_grad_masked (ppo_t *self, const ppo_hparams_t *hp, const float *params,
                      const float *obs, const uint8_t *mask, const int32_t *actions,
                      const float *logp_old, const float *adv, const float *ret,
                      const float *val_old, int B, float *grads, ppo_stats_t *stats)
{
    assert (self && hp && B >= 1 && B <= self->mb_size);
    int A = self->arch.n_actions;
    float c = hp->clip_coef;
    //  Advantage normalization, as torch: (a - mean) / (std + 1e-8), std
    //  unbiased, over the whole minibatch (it does not depend on params).
    float mean = 0, stdv = 1;
    if (hp->norm_adv) {
        double s = 0, ss = 0;
        for (int b = 0; b < B; b++)
            s += adv [b];
        double m = s / B;
        for (int b = 0; b < B; b++)
            ss += (adv [b] - m) * (adv [b] - m);
        mean = (float) m;
        //  torch gives nan for one sample; keep it finite instead.
        stdv = B > 1 ? (float) sqrt (ss / (B - 1)) + 1e-8f : 1.0f;
    }
    memset (grads, 0, sizeof (float) * self->n_params);
    double pg_sum = 0, v_sum = 0, ent_sum = 0, kl_sum = 0, clip_n = 0;
    float inv_b = 1.0f / (float) B;
    for (int c0 = 0; c0 < B; c0 += PPO_CHUNK) {
        int n = B - c0 < PPO_CHUNK ? B - c0 : PPO_CHUNK;
        const float *x = obs + (size_t) c0 * self->arch.obs_dim;
        //  Forward: logits [n][A] -> logp [n][A], ent [n]; values [n].
        const float *logits = nn_forward (self->work, NN_ACTOR, params, x, n);
        float *logp = self->logp_all;
        nn_categorical_forward_masked (logp, self->ent, logits,
                                       mask ? mask + (size_t) c0 * A : NULL, n, A);
        const float *v = nn_forward (self->work, NN_CRITIC, params, x, n);
        for (int k = 0; k < n; k++) {
            int b = c0 + k;
            float a = hp->norm_adv ? (adv [b] - mean) / stdv : adv [b];
            float newlogp = logp [(size_t) k * A + actions [b]];
            float logratio = newlogp - logp_old [b];
            float ratio = expf (logratio);
            float rc = ratio < 1.0f - c ? 1.0f - c : ratio > 1.0f + c ? 1.0f + c : ratio;
            float pg1 = -a * ratio, pg2 = -a * rc;
            float s1 = s_max_share (pg1, pg2);
            float in_range = (ratio >= 1.0f - c && ratio <= 1.0f + c) ? 1.0f : 0.0f;
            pg_sum += pg1 > pg2 ? pg1 : pg2;
            //  dL/dratio, then dratio/dlogp = ratio.
            float dratio = inv_b * (s1 * -a + (1.0f - s1) * -a * in_range);
            self->dlogpa [k] = dratio * ratio;
            self->dent [k] = -hp->ent_coef * inv_b;
            ent_sum += self->ent [k];
            //  (ratio - 1) - log ratio, the k3 estimator CleanRL logs, in
            //  double with expm1: in float, (expf (x) - 1) - x comes out
            //  below 0 for tiny x, a KL estimate that cannot be negative.
            kl_sum += expm1 ((double) logratio) - (double) logratio;
            clip_n += fabsf (ratio - 1.0f) > c;

            float diff = v [k] - ret [b];
            if (hp->clip_vloss) {
                float dvo = v [k] - val_old [b];
                float dvc = dvo < -c ? -c : dvo > c ? c : dvo;
                float vc = val_old [b] + dvc;
                float lu = diff * diff, lc = (vc - ret [b]) * (vc - ret [b]);
                float su = s_max_share (lu, lc);
                float vin = (dvo >= -c && dvo <= c) ? 1.0f : 0.0f;
                v_sum += lu > lc ? lu : lc;
                //  d(vf_coef * 0.5 * mean(max))/dv
                self->dv [k] = hp->vf_coef * 0.5f * inv_b
                             * (su * 2.0f * diff + (1.0f - su) * 2.0f * (vc - ret [b]) * vin);
            }
            else {
                v_sum += diff * diff;
                self->dv [k] = hp->vf_coef * inv_b * diff;
            }
        }
        //  Backward, accumulating into grads [n_params].
        nn_categorical_backward (self->dlogits, logp, self->ent, actions + c0,
                                 self->dlogpa, self->dent, n, A);
        nn_backward (self->work, NN_ACTOR, grads, params, x, self->dlogits, n);
        nn_backward (self->work, NN_CRITIC, grads, params, x, self->dv, n);
    }
    double pg_loss = pg_sum / B, v_loss = 0.5 * v_sum / B, entropy = ent_sum / B;
    double loss = pg_loss - hp->ent_coef * entropy + hp->vf_coef * v_loss;
    if (stats) {
        stats->loss = loss;
        stats->pg_loss = pg_loss;
        stats->v_loss = v_loss;
        stats->entropy = entropy;
        stats->approx_kl = kl_sum / B;
        stats->clipfrac = clip_n / B;
        stats->grad_norm = 0;           // ppo_update's: measured after this call
        stats->explained_var = NAN;
        stats->updates = 1;
    }
    return loss;
}

double
ppo_explained_variance (const float *pred, const float *target, size_t n)
{
    if (n == 0)
        return NAN;
    double mt = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        mt += target [i];
        md += (double) target [i] - pred [i];
    }
    mt /= (double) n;
    md /= (double) n;
    double vt = 0, vd = 0;
    for (size_t i = 0; i < n; i++) {
        double t = target [i] - mt, d = (double) target [i] - pred [i] - md;
        vt += t * t;
        vd += d * d;
    }
    if (!(vt > 0))
        return NAN;
    return 1.0 - vd / vt;
}

float
ppo_clip_grad_norm (float *grads, size_t n, float max_norm)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double) grads [i] * grads [i];
    float norm = (float) sqrt (ss);
    if (max_norm > 0) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f)
            for (size_t i = 0; i < n; i++)
                grads [i] *= coef;
    }
    return norm;
}

void
ppo_adam_step (float *params, float *m, float *v, const float *grads,
               size_t n, uint64_t t, float lr, double beta1, double beta2, float eps)
{
    //  params, m, v, grads [n]
    assert (t >= 1);
    double bc1 = 1.0 - pow (beta1, (double) t);
    double bc2 = 1.0 - pow (beta2, (double) t);
    float step_size = (float) (lr / bc1);
    float bc2_sqrt = (float) sqrt (bc2);
    float b1 = (float) beta1, b2 = (float) beta2;
    float c1 = (float) (1.0 - beta1), c2 = (float) (1.0 - beta2);
    for (size_t i = 0; i < n; i++) {
        float g = grads [i];
        m [i] = m [i] * b1 + g * c1;
        v [i] = v [i] * b2 + g * g * c2;
        float denom = sqrtf (v [i]) / bc2_sqrt + eps;
        params [i] -= step_size * m [i] / denom;
    }
}

void
ppo_update (ppo_t *self, const ppo_hparams_t *hp, float *params,
            float *adam_m, float *adam_v, uint64_t *adam_t,
            rng_t *rng, ppo_stats_t *stats)
{
    assert (self && hp);
    assert (hp->minibatches * self->mb_size == self->n_envs * self->n_steps);
    int E = self->n_envs, T = self->n_steps, D = self->arch.obs_dim, M = self->mb_size;
    int A = self->arch.n_actions;
    size_t TE = (size_t) E * T;
    const float *v = nn_forward (self->work, NN_CRITIC, params, ppo_obs (self, T), E);
    memcpy (self->last_val, v, sizeof (float) * (size_t) E);
    ppo_gae (self->adv, self->ret, self->rew, self->val, self->done, self->last_val,
             T, E, hp->gamma, hp->gae_lambda);

    ppo_stats_t sum = { 0 };
    int n_mb = 0;
    for (int epoch = 0; epoch < hp->epochs; epoch++) {
        //  Fisher-Yates, like torch.randperm / np.random.shuffle.
        for (size_t i = TE - 1; i > 0; i--) {
            size_t j = (size_t) rng_below (rng, i + 1);
            int32_t tmp = self->perm [i];
            self->perm [i] = self->perm [j];
            self->perm [j] = tmp;
        }
        for (int k = 0; k < hp->minibatches; k++) {
            const int32_t *idx = self->perm + (size_t) k * M;
            for (int b = 0; b < M; b++) {
                size_t i = (size_t) idx [b];
                memcpy (self->mb_obs + (size_t) b * D, self->obs + i * D, sizeof (float) * (size_t) D);
                if (self->masked)
                    memcpy (self->mb_mask + (size_t) b * A, self->mask + i * A, (size_t) A);
                self->mb_act [b] = self->act [i];
                self->mb_logp [b] = self->logp [i];
                self->mb_adv [b] = self->adv [i];
                self->mb_ret [b] = self->ret [i];
                self->mb_val [b] = self->val [i];
            }
            ppo_stats_t st;
            ppo_loss_grad_masked (self, hp, params, self->mb_obs,
                                  self->masked ? self->mb_mask : NULL, self->mb_act,
                                  self->mb_logp, self->mb_adv, self->mb_ret, self->mb_val, M,
                                  self->grads, &st);
            sum.grad_norm += ppo_clip_grad_norm (self->grads, self->n_params, hp->max_grad_norm);
            (*adam_t)++;
            ppo_adam_step (params, adam_m, adam_v, self->grads, self->n_params,
                           *adam_t, hp->lr, 0.9, 0.999, 1e-5f);
            sum.loss += st.loss;
            sum.pg_loss += st.pg_loss;
            sum.v_loss += st.v_loss;
            sum.entropy += st.entropy;
            sum.approx_kl += st.approx_kl;
            sum.clipfrac += st.clipfrac;
            n_mb++;
        }
    }
    if (stats && n_mb > 0) {
        stats->loss = sum.loss / n_mb;
        stats->pg_loss = sum.pg_loss / n_mb;
        stats->v_loss = sum.v_loss / n_mb;
        stats->entropy = sum.entropy / n_mb;
        stats->approx_kl = sum.approx_kl / n_mb;
        stats->clipfrac = sum.clipfrac / n_mb;
        stats->grad_norm = sum.grad_norm / n_mb;
        stats->updates = n_mb;
        //  The rollout's values (before this update) against its GAE
        //  returns, as CleanRL logs it.
        stats->explained_var = ppo_explained_variance (self->val, self->ret, TE);
    }
}
