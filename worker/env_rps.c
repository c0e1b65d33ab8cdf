/*  env_rps: repeated rock-paper-scissors, two players, vectorized.

    Moves: 0 rock, 1 paper, 2 scissors; (m + 1) % 3 beats m. Each round
    pays +1 / -1 / 0, zero-sum. A player observes the opponent's previous
    move one-hot ("rock" before the first round); with option obs_both=1
    its own previous move follows, one-hot, 6 floats in all. An episode is
    episode_len rounds (default 10).

    Scripts: "always-same" repeats one move drawn uniformly per episode;
    "beat-last" plays what beats the opponent's previous move (which reads
    as rock before the first round, so it opens with paper); "random"
    draws uniformly every round.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "log.h"
#include "rng.h"

#define RPS_MAX_LEN 1000000

enum { RPS_ALWAYS_SAME = 0, RPS_BEAT_LAST = 1, RPS_RANDOM = 2 };

static const char *const s_scripts [] = { "always-same", "beat-last", "random", NULL };

typedef struct {
    rng_t rng;
    int t;                  // rounds played in this episode
    int prev [2];           // previous move of each player
    int same [2];           // the always-same script's move for each player
    float score [2];        // game reward so far this episode
} rps_inst_t;

typedef struct {
    int n_envs;
    int episode_len;
    int obs_both;
    rps_inst_t *inst;       // [n_envs]
} rps_vec_t;

static int
s_obs_dim (const proto_kvs_t *options)
{
    return proto_kvs_get (options, "obs_both", 0) != 0 ? 6 : 3;
}

static int
s_check_options (const proto_kvs_t *options, char *err, size_t err_len)
{
    for (uint32_t i = 0; options && i < options->count; i++) {
        const proto_kv_t *kv = &options->items [i];
        if (strcmp (kv->name, "episode_len") == 0) {
            if (!(kv->value >= 1 && kv->value <= RPS_MAX_LEN) || kv->value != floor (kv->value)) {
                snprintf (err, err_len, "rps option episode_len=%g must be an integer in 1..%d",
                          kv->value, RPS_MAX_LEN);
                return -1;
            }
        }
        else
        if (strcmp (kv->name, "obs_both") == 0) {
            if (kv->value != 0 && kv->value != 1) {
                snprintf (err, err_len, "rps option obs_both=%g must be 0 or 1", kv->value);
                return -1;
            }
        }
        else {
            snprintf (err, err_len, "rps has no option '%s' (known: episode_len, obs_both)", kv->name);
            return -1;
        }
    }
    return 0;
}

static void
s_episode_start (rps_inst_t *inst)
{
    inst->t = 0;
    inst->prev [0] = inst->prev [1] = 0;
    inst->score [0] = inst->score [1] = 0;
    inst->same [0] = (int) rng_below (&inst->rng, 3);
    inst->same [1] = (int) rng_below (&inst->rng, 3);
}

static void *
s_vec_new (int n_envs, uint64_t seed, const proto_kvs_t *options)
{
    char err [PROTO_MAX_TEXT];
    if (n_envs < 1 || s_check_options (options, err, sizeof err) != 0) {
        log_error ("rps_new_failed", "n_envs=%d", n_envs);
        return NULL;
    }
    rps_vec_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n_envs = n_envs;
    self->episode_len = (int) proto_kvs_get (options, "episode_len", 10);
    self->obs_both = proto_kvs_get (options, "obs_both", 0) != 0;
    self->inst = calloc ((size_t) n_envs, sizeof (rps_inst_t));
    if (!self->inst) {
        free (self);
        return NULL;
    }
    for (int e = 0; e < n_envs; e++) {
        rng_seed_stream (&self->inst [e].rng, seed, (uint64_t) e);
        s_episode_start (&self->inst [e]);
    }
    return self;
}

static void
s_vec_destroy (void **self_p)
{
    assert (self_p);
    rps_vec_t *self = *self_p;
    if (!self)
        return;
    free (self->inst);
    free (self);
    *self_p = NULL;
}

static void
s_write_obs (const rps_vec_t *self, float *obs)
{
    //  obs [n_envs][2][obs_dim]
    int dim = self->obs_both ? 6 : 3;
    memset (obs, 0, sizeof (float) * (size_t) self->n_envs * 2 * dim);
    for (int e = 0; e < self->n_envs; e++) {
        const rps_inst_t *inst = &self->inst [e];
        for (int p = 0; p < 2; p++) {
            float *o = obs + ((size_t) e * 2 + p) * dim;
            o [inst->prev [1 - p]] = 1.0f;
            if (self->obs_both)
                o [3 + inst->prev [p]] = 1.0f;
        }
    }
}

static void
s_vec_reset (void *self_, float *obs)
{
    rps_vec_t *self = self_;
    for (int e = 0; e < self->n_envs; e++)
        s_episode_start (&self->inst [e]);
    s_write_obs (self, obs);
}

static void
s_vec_step (void *self_, const int32_t *actions, float *obs, float *rewards,
            float *shaping, uint8_t *terminals, float *scores)
{
    //  actions [n_envs][2], rewards [n_envs][2], terminals [n_envs], scores [n_envs][2]
    (void) shaping;         // no shaping channels
    rps_vec_t *self = self_;
    for (int e = 0; e < self->n_envs; e++) {
        rps_inst_t *inst = &self->inst [e];
        int a0 = actions [2 * e], a1 = actions [2 * e + 1];
        assert (a0 >= 0 && a0 < 3 && a1 >= 0 && a1 < 3);
        //  (a0 - a1) mod 3: 0 draw, 1 player 0 wins, 2 player 1 wins.
        int d = (a0 - a1 + 3) % 3;
        float r0 = d == 0 ? 0.0f : d == 1 ? 1.0f : -1.0f;
        rewards [2 * e] = r0;
        rewards [2 * e + 1] = -r0;
        inst->score [0] += r0;
        inst->score [1] -= r0;
        inst->prev [0] = a0;
        inst->prev [1] = a1;
        inst->t++;
        terminals [e] = inst->t >= self->episode_len;
        if (terminals [e]) {
            scores [2 * e] = inst->score [0];
            scores [2 * e + 1] = inst->score [1];
            s_episode_start (inst);
        }
    }
    s_write_obs (self, obs);
}

static void
s_script_act (void *self_, int script, int player, int32_t *actions)
{
    rps_vec_t *self = self_;
    assert (player == 0 || player == 1);
    for (int e = 0; e < self->n_envs; e++) {
        rps_inst_t *inst = &self->inst [e];
        int move;
        switch (script) {
            case RPS_ALWAYS_SAME:
                move = inst->same [player];
                break;
            case RPS_BEAT_LAST:
                move = (inst->prev [1 - player] + 1) % 3;
                break;
            case RPS_RANDOM:
                move = (int) rng_below (&inst->rng, 3);
                break;
            default:
                assert (!"unknown rps script");
                move = 0;
        }
        actions [2 * e + player] = move;
    }
}

const env_class_t env_rps_class = {
    .name = "rps",
    .n_players = 2,
    .n_teams = 2,
    .n_actions = 3,
    .n_shaping = 0,
    .shaping_names = NULL,
    .scripts = s_scripts,
    .obs_dim = s_obs_dim,
    .check_options = s_check_options,
    .vec_new = s_vec_new,
    .vec_destroy = s_vec_destroy,
    .vec_reset = s_vec_reset,
    .vec_step = s_vec_step,
    .script_act = s_script_act,
};
