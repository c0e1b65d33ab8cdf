/*  pbt-bench: benchmark programs. They print figures; they assert nothing. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "pbt_version.h"

#include <time.h>

double
bench_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: pbt-bench COMMAND [options]\n"
        "  ppo         PPO self-play on rock-paper-scissors (prints samples_per_s=)\n"
        "  soccer-env  soccer environment stepping speed (prints steps_per_s=)\n"
        "  soccer-learn train one soccer team, print win rates vs random/chaser (CSV)\n"
        "  load        simulated workers against a real pbtd (prints results_per_s=, p50_ms=, ...)\n"
        "Run 'pbt-bench COMMAND --help' for a command's options; pbt-bench --version prints the version.\n");
}

int
main (int argc, char **argv)
{
    if (argc < 2 || strcmp (argv [1], "--help") == 0 || strcmp (argv [1], "-h") == 0) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp (argv [1], "--version") == 0) {
        printf ("pbt-bench %s\n", PBT_VERSION);
        return 0;
    }
    if (strcmp (argv [1], "ppo") == 0)
        return bench_ppo_main (argc - 1, argv + 1);
    if (strcmp (argv [1], "soccer-env") == 0)
        return bench_soccer_main (argc - 1, argv + 1);
    if (strcmp (argv [1], "soccer-learn") == 0)
        return bench_soccer_learn_main (argc - 1, argv + 1);
    if (strcmp (argv [1], "load") == 0)
        return bench_load_main (argc - 1, argv + 1);
    fprintf (stderr, "pbt-bench: unknown command '%s'\n", argv [1]);
    s_usage (stderr);
    return 2;
}
