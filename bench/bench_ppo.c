/*  pbt-bench ppo: PPO self-play on RPS through match_run, in exactly the
    configuration of shared/bench/ppo_torch_rps.py: two agents, 64 envs x
    128 steps per iteration, 64-64 tanh actor and critic, 4 epochs x 4
    minibatches, one thread. The first iteration is an untimed warm-up; a
    sample is one agent's action at one env step; the time covers rollout,
    GAE and all epochs. Prints samples_per_s= and peak_rss_mb=. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "match.h"
#include "nn.h"
#include "rng.h"

typedef struct {
    double t_first;         // end of the warm-up iteration
    double t_last;          // end of the last iteration
    double cpu_first;       // process CPU time at those points: a figure that
    double cpu_last;        // other load on the machine disturbs less
    int calls;
} bench_clock_t;

static double
s_clock (clockid_t id)
{
    struct timespec ts;
    clock_gettime (id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static bool
s_tick (void *arg, uint64_t frames_done)
{
    (void) frames_done;
    bench_clock_t *c = arg;
    double now = s_clock (CLOCK_MONOTONIC), cpu = s_clock (CLOCK_PROCESS_CPUTIME_ID);
    if (c->calls++ == 0) {
        c->t_first = now;
        c->cpu_first = cpu;
    }
    c->t_last = now;
    c->cpu_last = cpu;
    return true;
}

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: pbt-bench ppo [--envs 64] [--steps 128] [--hidden 64] [--epochs 4]\n"
                  "                     [--minibatches 4] [--iters 20] [--seed 1]\n");
}

int
bench_ppo_main (int argc, char **argv)
{
    long envs = 64, steps = 128, hidden = 64, epochs = 4, minibatches = 4, iters = 20, seed = 1;
    struct { const char *name; long *value; } opts [] = {
        { "--envs", &envs }, { "--steps", &steps }, { "--hidden", &hidden },
        { "--epochs", &epochs }, { "--minibatches", &minibatches },
        { "--iters", &iters }, { "--seed", &seed },
    };
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--help") == 0 || strcmp (argv [i], "-h") == 0) {
            s_usage (stdout);
            return 0;
        }
        bool known = false;
        for (size_t k = 0; k < sizeof opts / sizeof opts [0]; k++)
            if (strcmp (argv [i], opts [k].name) == 0 && i + 1 < argc) {
                char *end;
                *opts [k].value = strtol (argv [++i], &end, 10);
                known = *end == 0 && *opts [k].value > 0;
            }
        if (!known) {
            fprintf (stderr, "pbt-bench ppo: bad option '%s'\n", argv [i]);
            s_usage (stderr);
            return 2;
        }
    }
    static proto_assign_t a;
    memset (&a, 0, sizeof a);
    a.assignment_id = 1;
    a.seed = (uint64_t) seed;
    strcpy (a.env, "rps");
    proto_kvs_set (&a.ppo, "n_envs", (double) envs);
    proto_kvs_set (&a.ppo, "n_steps", (double) steps);
    proto_kvs_set (&a.ppo, "epochs", (double) epochs);
    proto_kvs_set (&a.ppo, "minibatches", (double) minibatches);
    proto_kvs_set (&a.ppo, "iterations", (double) iters + 1);
    //  The reference computes the plain (unclipped) value loss.
    proto_kvs_set (&a.ppo, "clip_vloss", 0);
    a.model = (proto_model_t) { .obs_dim = 3, .n_actions = 3, .n_hidden = 2,
                                .hidden = { (uint32_t) hidden, (uint32_t) hidden } };
    strcpy (a.model.activation, "tanh");
    nn_arch_t arch;
    char err [256];
    if (nn_arch_from_proto (&arch, &a.model, err, sizeof err) != 0) {
        fprintf (stderr, "pbt-bench ppo: %s\n", err);
        return 2;
    }
    a.n_seats = 2;
    rng_t rng;
    rng_seed (&rng, (uint64_t) seed);
    for (int s = 0; s < 2; s++) {
        a.seats [s].id = s + 1;
        a.seats [s].slot = (uint32_t) s;
        a.seats [s].train = true;
        if (proto_state_alloc (&a.seats [s].state, (uint32_t) nn_param_count (&arch)) != 0)
            return 1;
        nn_init (&arch, a.seats [s].state.params, &rng);
    }
    bench_clock_t clk = { 0 };
    proto_result_t r;
    int rc = match_run (&a, &r, s_tick, &clk, err, sizeof err);
    for (int s = 0; s < 2; s++)
        proto_state_free (&a.seats [s].state);
    if (rc != 0) {
        fprintf (stderr, "pbt-bench ppo: %s\n", err);
        return 1;
    }
    double dt = clk.t_last - clk.t_first;
    double samples = 2.0 * envs * steps * iters;
    match_result_clear (&r);
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    printf ("samples_per_s=%.0f\n", dt > 0 ? samples / dt : 0);
    printf ("peak_rss_mb=%.1f\n", ru.ru_maxrss / 1024.0);
    printf ("seconds=%.3f\n", dt);
    double cpu = clk.cpu_last - clk.cpu_first;
    printf ("cpu_samples_per_s=%.0f\n", cpu > 0 ? samples / cpu : 0);
    return 0;
}
