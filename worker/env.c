/*  env: running a game through its plugin (see env.h). */
#include "env.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _env_vec_t {
    const envspec_t *spec;
    const pbt_env_t *e;
    void *self;                     // the plugin's instances
    int n_envs, P, D, A, S;
    bool check_obs;
    uint8_t *mask;                  // [n_envs][P][A]
    //  Scratch for what the caller does not read.
    float *rewards, *shaping, *scores;
    uint8_t *terminals;
};

const envspec_t *
env_find (const char *name_or_path, char *err, size_t err_len)
{
    return envspec_find (name_or_path, err, err_len);
}

env_vec_t *
env_vec_new (const envspec_t *spec, int n_envs, uint64_t seed, const proto_kvs_t *options,
             char *err, size_t err_len)
{
    assert (spec);
    const pbt_env_t *e = envspec_env (spec);
    double values [PBT_ENV_MAX_OPTIONS + 1];
    if (n_envs < 1) {
        snprintf (err, err_len, "%s: n_envs=%d must be >= 1", envspec_path (spec), n_envs);
        return NULL;
    }
    if (envspec_options (spec, options, values, err, err_len))
        return NULL;
    env_vec_t *self = calloc (1, sizeof *self);
    if (!self)
        goto oom;
    self->spec = spec;
    self->e = e;
    self->n_envs = n_envs;
    self->P = e->n_players;
    self->A = e->n_actions;
    self->S = e->n_shaping;
    self->D = envspec_obs_dim (spec, options);
    self->check_obs = true;
    size_t EP = (size_t) n_envs * self->P;
    self->mask = malloc (EP * self->A);
    self->rewards = calloc (EP, sizeof (float));
    self->shaping = calloc (EP * self->S + 1, sizeof (float));
    self->scores = calloc (EP, sizeof (float));
    self->terminals = calloc ((size_t) n_envs, 1);
    if (!self->mask || !self->rewards || !self->shaping || !self->scores || !self->terminals)
        goto oom;
    memset (self->mask, 1, EP * self->A);
    self->self = e->create (n_envs, seed, values);
    if (!self->self) {
        snprintf (err, err_len, "%s: create(%d instances) failed", envspec_path (spec), n_envs);
        env_vec_destroy (&self);
        return NULL;
    }
    return self;
oom:
    snprintf (err, err_len, "%s: out of memory for %d instances", envspec_path (spec), n_envs);
    env_vec_destroy (&self);
    return NULL;
}

void
env_vec_destroy (env_vec_t **self_p)
{
    assert (self_p);
    env_vec_t *self = *self_p;
    if (!self)
        return;
    if (self->self)
        self->e->destroy (self->self);
    free (self->mask);
    free (self->rewards);
    free (self->shaping);
    free (self->scores);
    free (self->terminals);
    free (self);
    *self_p = NULL;
}

void *
env_vec_self (env_vec_t *self)
{
    return self->self;
}

const envspec_t *
env_vec_spec (const env_vec_t *self)
{
    return self->spec;
}

int
env_vec_obs_dim (const env_vec_t *self)
{
    return self->D;
}

const uint8_t *
env_vec_mask (const env_vec_t *self)
{
    return self->mask;
}

bool
env_vec_active (const env_vec_t *self, int e, int p)
{
    const uint8_t *row = self->mask + ((size_t) e * self->P + p) * self->A;
    for (int a = 0; a < self->A; a++)
        if (row [a])
            return true;
    return false;
}

void
env_vec_set_check_obs (env_vec_t *self, bool check)
{
    self->check_obs = check;
}

//  What the game just wrote: finite observations, and in a simultaneous
//  game a legal action for every player.
static int
s_check_out (env_vec_t *self, const float *obs, const char *call, char *err, size_t err_len)
{
    if (self->check_obs) {
        size_t n = (size_t) self->n_envs * self->P * self->D;
        for (size_t i = 0; i < n; i++)
            if (!isfinite (obs [i])) {
                size_t per_env = (size_t) self->P * self->D;
                snprintf (err, err_len, "%s: %s wrote a non-finite observation (%g) at instance "
                          "%zu, player %zu, feature %zu", envspec_path (self->spec), call,
                          (double) obs [i], i / per_env, i % per_env / self->D, i % self->D);
                return -1;
            }
    }
    if (self->e->masks && self->e->turns == PBT_ENV_SIMULTANEOUS)
        for (int e = 0; e < self->n_envs; e++)
            for (int p = 0; p < self->P; p++)
                if (!env_vec_active (self, e, p)) {
                    snprintf (err, err_len, "%s: %s left player %d of instance %d with no "
                              "legal action in a simultaneous game", envspec_path (self->spec),
                              call, p, e);
                    return -1;
                }
    return 0;
}

static pbt_env_buffers_t
s_buffers (env_vec_t *self, float *obs, float *rewards, float *shaping, uint8_t *terminals,
           float *scores)
{
    //  The host's mask is the game's when it writes one; otherwise the
    //  ones set at creation stay (the game gets scratch to ignore).
    return (pbt_env_buffers_t) {
        .obs = obs,
        .mask = self->mask,
        .rewards = rewards ? rewards : self->rewards,
        .shaping = shaping ? shaping : self->shaping,
        .terminals = terminals ? terminals : self->terminals,
        .scores = scores ? scores : self->scores,
    };
}

int
env_vec_reset (env_vec_t *self, float *obs, char *err, size_t err_len)
{
    pbt_env_buffers_t out = s_buffers (self, obs, NULL, NULL, NULL, NULL);
    self->e->reset (self->self, &out);
    return s_check_out (self, obs, "reset", err, err_len);
}

//  Every acting player's action legal; 0 for the others.
static int
s_check_actions (env_vec_t *self, int32_t *actions, int only_player, const char *who,
                 char *err, size_t err_len)
{
    for (int e = 0; e < self->n_envs; e++)
        for (int p = 0; p < self->P; p++) {
            if (only_player >= 0 && p != only_player)
                continue;
            int32_t *a = &actions [(size_t) e * self->P + p];
            const uint8_t *row = self->mask + ((size_t) e * self->P + p) * self->A;
            if (!env_vec_active (self, e, p)) {
                *a = 0;
                continue;
            }
            if (*a < 0 || *a >= self->A || !row [*a]) {
                snprintf (err, err_len, "%s: %s chose action %d for player %d of instance %d, "
                          "outside the mask (n_actions %d)", envspec_path (self->spec), who,
                          (int) *a, p, e, self->A);
                return -1;
            }
        }
    return 0;
}

int
env_vec_step (env_vec_t *self, int32_t *actions, float *obs, float *rewards, float *shaping,
              uint8_t *terminals, float *scores, char *err, size_t err_len)
{
    if (s_check_actions (self, actions, -1, "the caller", err, err_len))
        return -1;
    pbt_env_buffers_t out = s_buffers (self, obs, rewards, shaping, terminals, scores);
    self->e->step (self->self, actions, &out);
    return s_check_out (self, obs, "step", err, err_len);
}

int
env_vec_script_act (env_vec_t *self, int script, int player, int32_t *actions,
                    char *err, size_t err_len)
{
    assert (script >= 0 && script < self->e->n_scripts && player >= 0 && player < self->P);
    self->e->script_act (self->self, script, player, actions);
    char who [PBT_ENV_MAX_NAME + 16];
    snprintf (who, sizeof who, "script '%s'", self->e->scripts [script]);
    return s_check_actions (self, actions, player, who, err, err_len);
}
