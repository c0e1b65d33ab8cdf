/*  Plugins that must be refused, one per BAD_* macro (tests/envs/meson.build
    builds each variant as its own shared object), and one that loads but
    misbehaves at run time (BAD_NONE: NaN observations on request, and a
    script that picks illegal actions). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pbt/env.h"

typedef struct {
    int n;
    int nan_at;             // step index that writes NaN (-1: never)
    int t;
} bad_t;

static const char *const s_scripts [] = { "illegal" };
static const pbt_env_option_t s_options [] = {
    { .name = "nan_at", .min = -1, .max = 100, .dflt = -1, .integer = 1, .doc = "NaN at step" },
#ifdef BAD_SPEC
    { .name = "nan_at", .min = 0, .max = 1, .dflt = 0, .integer = 1, .doc = "twice" },
#endif
};

static void *
s_create (int n_envs, uint64_t seed, const double *options)
{
    (void) seed;
    bad_t *self = calloc (1, sizeof *self);
    if (self) {
        self->n = n_envs;
        self->nan_at = (int) options [0];
    }
    return self;
}

static void
s_destroy (void *self)
{
    free (self);
}

static void
s_write (bad_t *self, const pbt_env_buffers_t *out)
{
    //  2 players, obs 2, actions 3: action 2 is never legal.
    for (int i = 0; i < self->n * 2; i++) {
        out->obs [2 * i] = 1;
        out->obs [2 * i + 1] = self->t == self->nan_at ? NAN : 0;
        out->mask [3 * i] = out->mask [3 * i + 1] = 1;
        out->mask [3 * i + 2] = 0;
    }
}

static void
s_reset (void *self, const pbt_env_buffers_t *out)
{
    ((bad_t *) self)->t = 0;
    s_write (self, out);
}

__attribute__ ((unused)) static void
s_step (void *self_, const int32_t *actions, const pbt_env_buffers_t *out)
{
    (void) actions;
    bad_t *self = self_;
    self->t++;
    for (int e = 0; e < self->n; e++) {
        out->rewards [2 * e] = out->rewards [2 * e + 1] = 0;
        out->terminals [e] = 0;
    }
    s_write (self, out);
}

static void
s_script_act (void *self_, int script, int player, int32_t *actions)
{
    (void) script;
    bad_t *self = self_;
    for (int e = 0; e < self->n; e++)
        actions [2 * e + player] = 2;       // masked out
}

#ifndef BAD_SYMBOL
PBT_ENV_EXPORT const pbt_env_t pbt_env_entry = {
#else
PBT_ENV_EXPORT const pbt_env_t pbt_env_entry_v0 = {
#endif
#ifdef BAD_ABI
    .abi_version = PBT_ENV_ABI_VERSION + 1,
#else
    .abi_version = PBT_ENV_ABI_VERSION,
#endif
    .struct_size = sizeof (pbt_env_t),
    .name = BAD_NAME,
    .version = "0.1",
    .n_players = 2,
    .n_teams = 2,
    .turns = PBT_ENV_SIMULTANEOUS,
    .masks = 1,
    .obs_dim = 2,
    .n_actions = 3,
    .n_scripts = 1,
    .scripts = s_scripts,
    .n_options = sizeof s_options / sizeof s_options [0],
    .options = s_options,
    .create = s_create,
    .destroy = s_destroy,
    .reset = s_reset,
#ifndef BAD_STEP
    .step = s_step,
#endif
    .script_act = s_script_act,
};
