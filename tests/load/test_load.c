/*  A short pbt-bench load run (32 simulated workers, population 16, small
    state, 10 s) against a real pbtd. Only correctness is checked: every
    acknowledged result is in the database exactly once with its episodes,
    no agent is handed out twice at once, no agent stays busy, pbtd stops
    cleanly. Throughput and latency figures are printed, never asserted.
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define S_OUT_MAX (64 * 1024)

//  Value of key=... in text (a whole word), or NULL.
static const char *
s_find (const char *text, const char *key)
{
    size_t klen = strlen (key);
    for (const char *p = strstr (text, key); p; p = strstr (p + 1, key))
        if ((p == text || p [-1] == ' ' || p [-1] == '\n') && p [klen] == '=')
            return p + klen + 1;
    return NULL;
}

static long
s_int (const char *text, const char *key)
{
    const char *v = s_find (text, key);
    cr_assert (v, "pbt-bench output has no %s=:\n%s", key, text);
    return strtol (v, NULL, 10);
}

static int
s_run (const char *args, char *out, size_t out_len)
{
    const char *root = getenv ("PBT_BUILD_ROOT");
    cr_assert (root, "PBT_BUILD_ROOT is not set (run through meson test)");
    char cmd [4096];
    snprintf (cmd, sizeof cmd, "'%s/bench/pbt-bench' load %s", root, args);
    FILE *p = popen (cmd, "r");
    cr_assert (p, "cannot run %s", cmd);
    size_t n = fread (out, 1, out_len - 1, p);
    out [n] = 0;
    int status = pclose (p);
    fprintf (stderr, "%s", out);
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128;
}

Test (load, no_lost_doubled_or_stuck_work, .timeout = 80)
{
    static char out [S_OUT_MAX];
    int rc = s_run ("--workers 32 --seconds 10 --warmup 1 --population 16 --state-kib 4 "
                    "--episodes 3 --status-calls 10", out, sizeof out);
    //  Zero checks mean something only if work was acknowledged at all.
    cr_expect_gt (s_int (out, "results"), 0, "no result was acknowledged");
    cr_expect_eq (s_int (out, "verified"), 1, "the database could not be checked");
    cr_expect_eq (s_int (out, "lost"), 0, "acknowledged results missing from the database");
    cr_expect_eq (s_int (out, "doubled"), 0, "results or agents counted twice");
    cr_expect_eq (s_int (out, "stuck_busy"), 0, "agents still busy after every worker finished");
    cr_expect_eq (s_int (out, "errors"), 0, "pbtd refused well-formed messages");
    cr_expect_eq (s_int (out, "pbtd_exit"), 0, "pbtd did not stop cleanly on SIGTERM");
    cr_expect_eq (rc, 0, "pbt-bench load exited with %d", rc);
}
