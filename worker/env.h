/*  env: the environment interface, PufferLib Ocean style.

    An environment class runs n_envs independent instances in one object
    (vectorized). reset/step write into caller-owned arrays; nothing is
    allocated per step, and every instance has its own seeded rng_t.
    Instances auto-reset: when an episode ends, step() writes the terminal
    flag and the episode's final scores, and the observation written is the
    first one of the next episode.

    Array layouts (row-major):
        obs       [n_envs][n_players][obs_dim]      float32
        actions   [n_envs][n_players]               int32
        rewards   [n_envs][n_players]               float32  game reward (sparse)
        shaping   [n_envs][n_players][n_shaping]    float32  shaping channels (unweighted)
        terminals [n_envs]                          uint8    1 if the episode ended this step
        scores    [n_envs][n_players]               float32  episode total game reward, valid where terminal
*/
#ifndef PBT_ENV_H
#define PBT_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

typedef struct {
    const char *name;               // "rps", "soccer"
    int n_players;                  // seats per match
    int n_teams;                    // 2; players are split evenly, team = player / (n_players / n_teams)
    int n_actions;                  // discrete actions
    int n_shaping;                  // shaping reward channels
    const char *const *shaping_names;   // [n_shaping], e.g. "vel_to_ball"; hparam is "shape_<name>"
    const char *const *scripts;     // NULL-terminated scripted policy names
    //  Observation size for these options.
    int (*obs_dim) (const proto_kvs_t *options);
    //  Check options; returns 0 or -1 with a message naming the bad key.
    int (*check_options) (const proto_kvs_t *options, char *err, size_t err_len);
    //  Create n_envs instances seeded from seed; NULL on failure.
    void *(*vec_new) (int n_envs, uint64_t seed, const proto_kvs_t *options);
    void (*vec_destroy) (void **self_p);
    void (*vec_reset) (void *self, float *obs);
    void (*vec_step) (void *self, const int32_t *actions, float *obs,
                      float *rewards, float *shaping, uint8_t *terminals,
                      float *scores);
    //  Fill actions[e*n_players + player] for every env e with the scripted
    //  policy `script` (index into scripts) playing `player`.
    void (*script_act) (void *self, int script, int player, int32_t *actions);
} env_class_t;

//  Look up an environment class by name; NULL if unknown.
const env_class_t *env_find (const char *name);

//  Index of a scripted policy name in cls->scripts, or -1.
int env_script_index (const env_class_t *cls, const char *script);

#endif
