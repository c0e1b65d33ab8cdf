/*  env: running a game through its plugin (include/pbt/env.h).

    The spec side (loading, checks, options, hash) is spec/envspec.h,
    shared with pbtd; this is the code side, used by the worker core,
    pbtctl and pbt-bench. An env_vec_t is n_envs instances of one game
    plus what the host checks on every call:
    - options are checked against the spec and passed in spec order;
    - every observation written must be finite;
    - every action passed to step, and every action a script picks, must
      be legal under the mask of that step (players with an all-zero mask
      row do not act; the host passes 0 for them);
    Failures return -1 with a message naming the plugin's file.

    Buffers are caller-owned (layouts in pbt/env.h); shaping, rewards,
    terminals and scores may be NULL when the caller does not read them.
    The mask is kept here (env_vec_mask), filled with ones for games
    without masks.
*/
#ifndef PBT_ENV_H
#define PBT_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envspec.h"
#include "proto.h"

typedef struct _env_vec_t env_vec_t;

//  A plugin by name or path, loaded once per process; NULL with err.
const envspec_t *env_find (const char *name_or_path, char *err, size_t err_len);

env_vec_t *env_vec_new (const envspec_t *spec, int n_envs, uint64_t seed,
                        const proto_kvs_t *options, char *err, size_t err_len);
void env_vec_destroy (env_vec_t **self_p);

//  The plugin's own instance pointer (for a game's extension hooks).
void *env_vec_self (env_vec_t *self);
const envspec_t *env_vec_spec (const env_vec_t *self);
int env_vec_obs_dim (const env_vec_t *self);
//  The mask of the last reset/step [n_envs][P][A].
const uint8_t *env_vec_mask (const env_vec_t *self);
//  True if player p of instance e acts this step (a legal action exists).
bool env_vec_active (const env_vec_t *self, int e, int p);

int env_vec_reset (env_vec_t *self, float *obs, char *err, size_t err_len);
int env_vec_step (env_vec_t *self, int32_t *actions, float *obs, float *rewards,
                  float *shaping, uint8_t *terminals, float *scores, char *err, size_t err_len);
//  Script `script` plays `player`: actions [e * P + player] for every e.
int env_vec_script_act (env_vec_t *self, int script, int player, int32_t *actions,
                        char *err, size_t err_len);

//  Skip the finiteness check of observations (benchmarks of the raw env).
void env_vec_set_check_obs (env_vec_t *self, bool check);

#endif
