/*  rps: repeated rock-paper-scissors, two players, vectorized.

    Moves: 0 rock, 1 paper, 2 scissors; (m + 1) % 3 beats m. Each round
    pays +1 / -1 / 0, zero-sum. A player observes the opponent's previous
    move one-hot ("rock" before the first round); with option obs_both=1
    its own previous move follows, one-hot, 6 floats in all. An episode is
    episode_len rounds (default 10).

    A plugin like any other: it sees nothing of pbt but pbt/env.h.

    Scripts: "always-same" repeats one move drawn uniformly per episode;
    "beat-last" plays what beats the opponent's previous move (which reads
    as rock before the first round, so it opens with paper); "random"
    draws uniformly every round.
*/
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "pbt/env.h"

#define RPS_MAX_LEN 1000000

enum { RPS_ALWAYS_SAME = 0, RPS_BEAT_LAST = 1, RPS_RANDOM = 2 };
enum { OPT_EPISODE_LEN = 0, OPT_OBS_BOTH = 1 };

static const char *const s_scripts [] = { "always-same", "beat-last", "random" };
static const pbt_env_option_t s_options [] = {
    { .name = "episode_len", .min = 1, .max = RPS_MAX_LEN, .dflt = 10, .integer = 1,
      .doc = "rounds per episode" },
    { .name = "obs_both", .min = 0, .max = 1, .dflt = 0, .integer = 1, .obs_per_unit = 3,
      .doc = "1: observe both players' previous moves" },
};

typedef struct {
    pbt_rng_t rng;
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

static void
s_episode_start (rps_inst_t *inst)
{
    inst->t = 0;
    inst->prev [0] = inst->prev [1] = 0;
    inst->score [0] = inst->score [1] = 0;
    inst->same [0] = (int) pbt_rng_below (&inst->rng, 3);
    inst->same [1] = (int) pbt_rng_below (&inst->rng, 3);
}

static void *
s_create (int n_envs, uint64_t seed, const double *options)
{
    rps_vec_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n_envs = n_envs;
    self->episode_len = (int) options [OPT_EPISODE_LEN];
    self->obs_both = options [OPT_OBS_BOTH] != 0;
    self->inst = calloc ((size_t) n_envs, sizeof (rps_inst_t));
    if (!self->inst) {
        free (self);
        return NULL;
    }
    for (int e = 0; e < n_envs; e++) {
        pbt_rng_seed_stream (&self->inst [e].rng, seed, (uint64_t) e);
        s_episode_start (&self->inst [e]);
    }
    return self;
}

static void
s_destroy (void *self_)
{
    rps_vec_t *self = self_;
    if (!self)
        return;
    free (self->inst);
    free (self);
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
s_reset (void *self_, const pbt_env_buffers_t *out)
{
    rps_vec_t *self = self_;
    for (int e = 0; e < self->n_envs; e++)
        s_episode_start (&self->inst [e]);
    s_write_obs (self, out->obs);
}

static void
s_step (void *self_, const int32_t *actions, const pbt_env_buffers_t *out)
{
    //  actions [n_envs][2], rewards [n_envs][2], terminals [n_envs], scores [n_envs][2]
    rps_vec_t *self = self_;
    float *rewards = out->rewards, *scores = out->scores;
    uint8_t *terminals = out->terminals;
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
    s_write_obs (self, out->obs);
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
                move = (int) pbt_rng_below (&inst->rng, 3);
                break;
            default:
                assert (!"unknown rps script");
                move = 0;
        }
        actions [2 * e + player] = move;
    }
}

PBT_ENV_EXPORT const pbt_env_t pbt_env_entry = {
    .abi_version = PBT_ENV_ABI_VERSION,
    .struct_size = sizeof (pbt_env_t),
    .name = "rps",
    .version = "1.0",
    .n_players = 2,
    .n_teams = 2,
    .turns = PBT_ENV_SIMULTANEOUS,
    .masks = 0,
    .obs_dim = 3,
    .n_actions = 3,
    .n_shaping = 0,
    .n_scripts = 3,
    .scripts = s_scripts,
    .n_options = 2,
    .options = s_options,
    .obs_doc = "one-hot of the opponent's previous move (rock, paper, scissors; rock before "
               "the first round); with obs_both=1 followed by the player's own previous move",
    .action_doc = "0 rock, 1 paper, 2 scissors",
    .create = s_create,
    .destroy = s_destroy,
    .reset = s_reset,
    .step = s_step,
    .script_act = s_script_act,
};
