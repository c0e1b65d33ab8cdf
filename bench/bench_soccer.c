/*  pbt-bench soccer-env: raw stepping speed of the soccer environment.

    One env step is one instance advancing one 40 Hz tick with all four
    players' actions (and writing their observations, rewards, shaping).
    Actions are uniform random, drawn before the timed loop. Single thread.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "env.h"
#include "soccer.h"
#include "rng.h"

//  Distinct pre-drawn action sets cycled through by the timed loop.
#define S_ACTION_SETS 1024

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: pbt-bench soccer-env [--envs N (64)] [--seconds S (5)] [--seed N (1)]\n");
}

int
bench_soccer_main (int argc, char **argv)
{
    int n_envs = 64;
    double seconds = 5;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv [i];
        if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0) {
            s_usage (stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            s_usage (stderr);
            return 2;
        }
        if (strcmp (a, "--envs") == 0)
            n_envs = atoi (argv [++i]);
        else
        if (strcmp (a, "--seconds") == 0)
            seconds = atof (argv [++i]);
        else
        if (strcmp (a, "--seed") == 0)
            seed = strtoull (argv [++i], NULL, 10);
        else {
            s_usage (stderr);
            return 2;
        }
    }
    if (n_envs < 1 || !(seconds > 0)) {
        s_usage (stderr);
        return 2;
    }

    int rc = 1;
    //  The game itself through its ABI (no host checks): what one core
    //  steps of the plugin's code.
    char err [PROTO_MAX_TEXT * 2];
    const envspec_t *spec = env_find ("soccer", err, sizeof err);
    if (!spec) {
        fprintf (stderr, "pbt-bench: %s\n", err);
        return 1;
    }
    const pbt_env_t *cls = envspec_env (spec);
    double opts [PBT_ENV_MAX_OPTIONS];
    envspec_options (spec, NULL, opts, err, sizeof err);
    size_t n_seats = (size_t) n_envs * 4;
    void *vec = cls->create (n_envs, seed, opts);
    uint8_t *mask = malloc (n_seats * SOCCER_N_ACTIONS);
    float *obs = malloc (n_seats * SOCCER_OBS_DIM * sizeof (float));
    float *rewards = malloc (n_seats * sizeof (float));
    float *shaping = malloc (n_seats * SOCCER_N_SHAPING * sizeof (float));
    float *scores = malloc (n_seats * sizeof (float));
    uint8_t *terminals = malloc ((size_t) n_envs);
    int32_t *actions = malloc (S_ACTION_SETS * n_seats * sizeof (int32_t));
    pbt_env_buffers_t buf = { .obs = obs, .mask = mask, .rewards = rewards, .shaping = shaping,
                              .terminals = terminals, .scores = scores };
    if (!vec || !obs || !rewards || !shaping || !scores || !terminals || !actions || !mask) {
        fprintf (stderr, "pbt-bench: out of memory\n");
        goto cleanup;
    }
    rng_t rng;
    rng_seed (&rng, seed);
    for (size_t k = 0; k < S_ACTION_SETS * n_seats; k++)
        actions [k] = (int32_t) rng_below (&rng, SOCCER_N_ACTIONS);
    cls->reset (vec, &buf);

    //  Warm-up, untimed.
    for (int i = 0; i < 64; i++)
        cls->step (vec, actions + (size_t) (i % S_ACTION_SETS) * n_seats, &buf);
    uint64_t steps = 0, episodes = 0;
    double t0 = bench_now (), t = t0;
    for (uint64_t i = 0; t - t0 < seconds; i++) {
        cls->step (vec, actions + (size_t) (i % S_ACTION_SETS) * n_seats, &buf);
        steps += (uint64_t) n_envs;
        for (int e = 0; e < n_envs; e++)
            episodes += terminals [e];
        if ((i & 15) == 15)
            t = bench_now ();
    }
    t = bench_now ();
    printf ("envs=%d\nseconds=%.3f\nsteps=%llu\nepisodes=%llu\nsteps_per_s=%.0f\n",
            n_envs, t - t0, (unsigned long long) steps, (unsigned long long) episodes,
            (double) steps / (t - t0));
    rc = 0;

cleanup:
    if (vec)
        cls->destroy (vec);
    free (mask);
    free (obs);
    free (rewards);
    free (shaping);
    free (scores);
    free (terminals);
    free (actions);
    return rc;
}
