/*  pbtctl: query and steer a running pbtd.

    Every command is one ctl request on pbtd's control endpoint and one
    ctl_reply; pbtctl renders the reply body as a table or, with --json, as
    JSON. Exit codes: 0 success, 1 pbtd refused or failed the command,
    2 usage error, 3 pbtd unreachable (no reply within --timeout).
*/
#include <czmq.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "args.h"
#include "ctl.h"
#include "replay.h"
#include "eval.h"
#include "export.h"
#include "report.h"
#include "pbt_version.h"
#include "proto.h"

#define EXIT_REFUSED     1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 3

typedef struct {
    const char *name;
    const char *summary;
    const char *usage;
    int (*run) (ctl_t *ctl, int argc, char **argv);
} command_t;

//  ---------------------------------------------------------------------
//  Helpers for rendering

static const char *
s_str (proto_view_t obj, const char *key, char *buf, size_t len)
{
    proto_view_t v;
    buf [0] = 0;
    if (proto_view_get (obj, key, &v) == 0) {
        if (proto_view_str (v, buf, len) != 0) {
            if (proto_view_is_nil (v))
                snprintf (buf, len, "-");
            else
                snprintf (buf, len, "%lld", (long long) proto_view_int (v, 0));
        }
    }
    return buf;
}

static double
s_num (proto_view_t obj, const char *key, double dflt)
{
    proto_view_t v;
    if (proto_view_get (obj, key, &v) != 0)
        return dflt;
    return proto_view_double (v, dflt);
}

static bool
s_bool (proto_view_t obj, const char *key)
{
    proto_view_t v;
    return proto_view_get (obj, key, &v) == 0 && proto_view_bool (v, false);
}

static bool
s_has_flag (int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp (argv [i], flag) == 0)
            return true;
    return false;
}

//  Print a reply body as JSON; returns 0.
static int
s_print_json (ctl_reply_t *reply)
{
    char *json = proto_value_to_json (reply->body, reply->body_len, true);
    if (!json) {
        fprintf (stderr, "pbtctl: pbtd's reply could not be rendered as JSON\n");
        return EXIT_REFUSED;
    }
    printf ("%s\n", json);
    free (json);
    return 0;
}

//  ---------------------------------------------------------------------
//  status

static int
s_cmd_status (ctl_t *ctl, int argc, char **argv)
{
    bool json = s_has_flag (argc, argv, "--json");
    ctl_reply_t reply;
    int rc = ctl_call (ctl, "status", NULL, 0, &reply);
    if (rc != 0)
        return rc;
    if (json) {
        rc = s_print_json (&reply);
        ctl_reply_clear (&reply);
        return rc;
    }
    proto_view_t body, agents;
    if (proto_view_init (&body, reply.body, reply.body_len) != 0
    ||  proto_view_get (body, "agents", &agents) != 0) {
        fprintf (stderr, "pbtctl: status reply from pbtd has no agents list\n");
        ctl_reply_clear (&reply);
        return EXIT_REFUSED;
    }
    printf ("%-8s %9s %8s %11s %10s %7s %4s %-8s %-4s\n",
            "agent", "rating", "matches", "frames", "lr", "gamma", "gen", "parent", "busy");
    int64_t n = proto_view_array_len (agents);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t a;
        if (proto_view_array_at (agents, (uint32_t) i, &a) != 0)
            continue;
        char id [64], parent [64];
        printf ("%-8s %9.3f %8.0f %11.0f %10.3g %7.4f %4.0f %-8s %-4s\n",
                s_str (a, "id", id, sizeof id), s_num (a, "rating", NAN), s_num (a, "matches", 0),
                s_num (a, "frames", 0), s_num (a, "lr", NAN), s_num (a, "gamma", NAN),
                s_num (a, "generation", 0), s_str (a, "parent", parent, sizeof parent),
                s_bool (a, "busy") ? "busy" : "idle");
    }
    printf ("\nworkers connected: %.0f   samples/s: %.0f   results: %.0f   evolutions: %.0f%s\n",
            s_num (body, "workers", 0), s_num (body, "samples_per_s", 0),
            s_num (body, "results", 0), s_num (body, "evolutions", 0),
            s_bool (body, "paused") ? "   (paused)" : "");
    ctl_reply_clear (&reply);
    return 0;
}

//  ---------------------------------------------------------------------
//  Commands whose reply is shown as JSON either way (for now), with an
//  agent argument.

typedef void (render_fn) (proto_view_t body);

static int
s_simple (ctl_t *ctl, const char *cmd, const char *agent, int64_t limit, bool json, render_fn *render)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, (agent ? 1 : 0) + (limit > 0 ? 1 : 0));
    if (agent) {
        msgpack_pack_str (&pk, 5);
        msgpack_pack_str_body (&pk, "agent", 5);
        msgpack_pack_str (&pk, strlen (agent));
        msgpack_pack_str_body (&pk, agent, strlen (agent));
    }
    if (limit > 0) {
        msgpack_pack_str (&pk, 5);
        msgpack_pack_str_body (&pk, "limit", 5);
        msgpack_pack_int64 (&pk, limit);
    }
    ctl_reply_t reply;
    int rc = ctl_call (ctl, cmd, (const uint8_t *) sbuf.data, sbuf.size, &reply);
    msgpack_sbuffer_destroy (&sbuf);
    if (rc != 0)
        return rc;
    proto_view_t body;
    if (json || !render || proto_view_init (&body, reply.body, reply.body_len) != 0)
        rc = s_print_json (&reply);
    else
        render (body);
    ctl_reply_clear (&reply);
    return rc;
}

//  Readable forms. The JSON form (--json) carries everything; these pick
//  what a person scans for.

//  "name=value ..." for every entry of a hyperparameter map, in pbtd's
//  order; with series, each value is an array and its last element is shown.
static void
s_render_hparams (proto_view_t map, bool series, char *out, size_t len)
{
    size_t n = 0;
    out [0] = 0;
    int64_t count = proto_view_map_len (map);
    for (int64_t i = 0; i < count && n < len; i++) {
        proto_view_t key, val;
        char name [PROTO_MAX_NAME];
        if (proto_view_map_at (map, (uint32_t) i, &key, &val) != 0
        ||  proto_view_str (key, name, sizeof name) != 0)
            continue;
        if (series) {
            int64_t m = proto_view_array_len (val);
            if (m <= 0 || proto_view_array_at (val, (uint32_t) (m - 1), &val) != 0)
                continue;
        }
        n += (size_t) snprintf (out + n, len - n, "%s%s=%.4g", n ? " " : "", name,
                                proto_view_double (val, NAN));
    }
}

static void
s_render_history (proto_view_t body)
{
    printf ("%-8s %8s %10s %12s %9s  %s\n", "agent", "episodes", "rating", "mean score", "evolved",
            "hyperparameters now");
    int64_t n_agents = proto_view_map_len (body);
    for (int64_t i = 0; i < n_agents; i++) {
        char id [32];
        proto_view_t key, a, score, rating, step, hp;
        if (proto_view_map_at (body, (uint32_t) i, &key, &a) != 0
        ||  proto_view_str (key, id, sizeof id) != 0)
            continue;
        int64_t n = 0;
        double last_rating = NAN, sum = 0;
        int64_t tail = 0;
        if (proto_view_get (a, "score", &score) == 0) {
            //  The first entry is the seed format's placeholder before any match.
            n = proto_view_array_len (score) - 1;
            for (int64_t k = n > 100 ? n - 99 : 1; k <= n; k++) {
                proto_view_t v;
                if (proto_view_array_at (score, (uint32_t) k, &v) == 0) {
                    sum += proto_view_double (v, 0);
                    tail++;
                }
            }
        }
        if (proto_view_get (a, "rating", &rating) == 0 && proto_view_array_len (rating) > 0) {
            proto_view_t v;
            if (proto_view_array_at (rating, (uint32_t) (proto_view_array_len (rating) - 1), &v) == 0)
                last_rating = proto_view_double (v, NAN);
        }
        int64_t evolved = proto_view_get (a, "step", &step) == 0 ? proto_view_array_len (step) - 1 : 0;
        char hps [512] = "";
        if (proto_view_get (a, "hyperparameters", &hp) == 0)
            s_render_hparams (hp, true, hps, sizeof hps);
        printf ("%-8s %8" PRId64 " %10.3f %12.3f %9" PRId64 "  %s\n", id, n, last_rating,
                tail ? sum / (double) tail : 0.0, evolved < 0 ? 0 : evolved, hps);
    }
    printf ("(mean score over each agent's last 100 episodes; --json for the full series)\n");
}

static void
s_render_lineage (proto_view_t body)
{
    char agent [64];
    proto_view_t evolutions;
    printf ("lineage of %s (newest first)\n", s_str (body, "agent", agent, sizeof agent));
    if (proto_view_get (body, "evolutions", &evolutions) != 0 || proto_view_array_len (evolutions) <= 0) {
        printf ("  no evolutions: the initial agent\n");
        return;
    }
    int64_t n = proto_view_array_len (evolutions);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t e, oldh, newh;
        if (proto_view_array_at (evolutions, (uint32_t) i, &e) != 0)
            continue;
        char donor [64], before [512] = "", after [512] = "";
        if (proto_view_get (e, "old_hparams", &oldh) == 0)
            s_render_hparams (oldh, false, before, sizeof before);
        if (proto_view_get (e, "new_hparams", &newh) == 0)
            s_render_hparams (newh, false, after, sizeof after);
        printf ("  gen %-3.0f at %.0f frames: weights from %s (v%.0f)\n      before: %s\n      after:  %s\n",
                s_num (e, "generation", 0), s_num (e, "frames", 0), s_str (e, "donor", donor, sizeof donor),
                s_num (e, "donor_version", 0), before, after);
    }
}

static void
s_render_matches (proto_view_t body)
{
    printf ("%8s %10s %7s  %s\n", "match", "assignment", "episode", "seats (agent team score rating-after)");
    int64_t n = proto_view_array_len (body);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t m, seats;
        if (proto_view_array_at (body, (uint32_t) i, &m) != 0)
            continue;
        printf ("%8.0f %10.0f %7.0f ", s_num (m, "id", 0), s_num (m, "assignment", 0), s_num (m, "episode", 0));
        if (proto_view_get (m, "seats", &seats) == 0) {
            int64_t k = proto_view_array_len (seats);
            for (int64_t j = 0; j < k; j++) {
                proto_view_t seat;
                char agent [64];
                if (proto_view_array_at (seats, (uint32_t) j, &seat) == 0)
                    printf (" %s t%.0f %+.0f %.2f", s_str (seat, "agent", agent, sizeof agent),
                            s_num (seat, "team", 0), s_num (seat, "score", 0), s_num (seat, "rating_after", 0));
            }
        }
        char script [64];
        proto_view_t sv;
        if (proto_view_get (m, "script", &sv) == 0 && proto_view_str (sv, script, sizeof script) == 0
        &&  script [0])
            printf ("  vs script %s (unrated)", script);
        printf ("\n");
    }
}

static void
s_render_workers (proto_view_t body)
{
    printf ("%-24s %-16s %8s %11s %10s %10s\n", "worker", "host", "pid", "assignment", "samples/s", "last seen");
    int64_t n = proto_view_array_len (body);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t w, v;
        if (proto_view_array_at (body, (uint32_t) i, &w) != 0)
            continue;
        char id [256], host [256], assignment [32] = "-";
        if (proto_view_get (w, "assignment", &v) == 0 && !proto_view_is_nil (v))
            snprintf (assignment, sizeof assignment, "%lld", (long long) proto_view_int (v, 0));
        printf ("%-24s %-16s %8.0f %11s %10.0f %8.1fs\n", s_str (w, "worker_id", id, sizeof id),
                s_str (w, "host", host, sizeof host), s_num (w, "pid", 0), assignment,
                s_num (w, "samples_per_s", 0), s_num (w, "last_seen_ms_ago", 0) / 1000.0);
    }
    if (n == 0)
        printf ("(no workers connected)\n");
}

static void
s_render_paused (proto_view_t body)
{
    printf ("pbtd is %s\n", s_bool (body, "paused") ? "paused: no new assignments are handed out"
                                                     : "running: assignments are handed out");
}

static int
s_cmd_history (ctl_t *ctl, int argc, char **argv)
{
    const char *agent = NULL;
    for (int i = 1; i < argc; i++)
        if (argv [i][0] != '-')
            agent = argv [i];
    return s_simple (ctl, "history", agent, 0, s_has_flag (argc, argv, "--json"), s_render_history);
}

static int
s_cmd_lineage (ctl_t *ctl, int argc, char **argv)
{
    const char *agent = NULL;
    for (int i = 1; i < argc; i++)
        if (argv [i][0] != '-')
            agent = argv [i];
    if (!agent) {
        fprintf (stderr, "pbtctl lineage: name an agent, e.g. pbtctl lineage agt_0\n");
        return EXIT_USAGE;
    }
    return s_simple (ctl, "lineage", agent, 0, s_has_flag (argc, argv, "--json"), s_render_lineage);
}

static int
s_cmd_matches (ctl_t *ctl, int argc, char **argv)
{
    uint64_t limit = 20;
    for (int i = 1; i < argc; i++)
        if (strcmp (argv [i], "--limit") == 0
        &&  args_uint ("matches --limit", argv [++i], 1, 1000, &limit))
            return EXIT_USAGE;
    return s_simple (ctl, "matches", NULL, (int64_t) limit, s_has_flag (argc, argv, "--json"), s_render_matches);
}

static int
s_cmd_workers (ctl_t *ctl, int argc, char **argv)
{
    return s_simple (ctl, "workers", NULL, 0, s_has_flag (argc, argv, "--json"), s_render_workers);
}

static int
s_cmd_pause (ctl_t *ctl, int argc, char **argv)
{
    return s_simple (ctl, "pause", NULL, 0, s_has_flag (argc, argv, "--json"), s_render_paused);
}

static int
s_cmd_resume (ctl_t *ctl, int argc, char **argv)
{
    return s_simple (ctl, "resume", NULL, 0, s_has_flag (argc, argv, "--json"), s_render_paused);
}

//  ---------------------------------------------------------------------
//  watch: live progress for the main job (one line on a tty, plain lines
//  otherwise) until --seconds have passed.

static int
s_cmd_watch (ctl_t *ctl, int argc, char **argv)
{
    double seconds = 60, interval = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--seconds") == 0
        &&  args_real ("watch --seconds", argv [++i], 0, 1e9, &seconds))
            return EXIT_USAGE;
        if (strcmp (argv [i], "--interval") == 0
        &&  args_real ("watch --interval", argv [++i], 0.01, 86400, &interval))
            return EXIT_USAGE;
    }
    bool tty = isatty (STDOUT_FILENO);
    int64_t start = zclock_mono ();
    int rc = 0;
    while (!zsys_interrupted) {
        double elapsed = (double) (zclock_mono () - start) / 1000.0;
        ctl_reply_t reply;
        rc = ctl_call (ctl, "status", NULL, 0, &reply);
        if (rc != 0)
            break;
        proto_view_t body, agents;
        char best [64] = "-";
        double best_rating = -INFINITY, frames = 0;
        if (proto_view_init (&body, reply.body, reply.body_len) == 0
        &&  proto_view_get (body, "agents", &agents) == 0) {
            int64_t n = proto_view_array_len (agents);
            for (int64_t i = 0; i < n; i++) {
                proto_view_t a;
                if (proto_view_array_at (agents, (uint32_t) i, &a) != 0)
                    continue;
                frames += s_num (a, "frames", 0);
                double r = s_num (a, "rating", -INFINITY);
                if (r > best_rating) {
                    best_rating = r;
                    s_str (a, "id", best, sizeof best);
                }
            }
        }
        char line [256];
        snprintf (line, sizeof line,
                  "[%4.0fs] results %.0f  frames %.3g  samples/s %.0f  best %s (%.2f)  evolutions %.0f  workers %.0f",
                  elapsed, s_num (body, "results", 0), frames, s_num (body, "samples_per_s", 0),
                  best, best_rating, s_num (body, "evolutions", 0), s_num (body, "workers", 0));
        ctl_reply_clear (&reply);
        if (tty)
            printf ("\r\033[K%s", line);
        else
            printf ("%s\n", line);
        fflush (stdout);
        if (elapsed >= seconds)
            break;
        zclock_sleep ((int) (interval * 1000));
    }
    if (tty)
        printf ("\n");
    return rc;
}

//  ---------------------------------------------------------------------

//  ---------------------------------------------------------------------
//  keygen: a CURVE key pair, as CZMQ certificates. Needs no pbtd.

static int
s_keygen (int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++)
        if (argv [i][0] != '-')
            path = argv [i];
    if (!path) {
        fprintf (stderr, "pbtctl keygen: name the certificate file, e.g. pbtctl keygen /etc/pbt/worker.cert\n");
        return EXIT_USAGE;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "pbtctl keygen: could not make a key pair\n");
        return EXIT_REFUSED;
    }
    char host [256] = "";
    gethostname (host, sizeof host - 1);
    zcert_set_meta (cert, "host", "%s", host);
    zcert_set_meta (cert, "created-by", "pbtctl keygen");
    int rc = zcert_save (cert, path);
    if (rc == 0)
        printf ("public key: %s\nwrote %s (public) and %s_secret (keep private)\n",
                zcert_public_txt (cert), path, path);
    else
        fprintf (stderr, "pbtctl keygen: could not write %s or %s_secret\n", path, path);
    zcert_destroy (&cert);
    return rc == 0 ? 0 : EXIT_REFUSED;
}

static const command_t s_commands [] = {
    { "status", "one row per agent, then totals", "status [--json]", s_cmd_status },
    { "history", "per-agent series in the seed's shape", "history [AGENT] [--json]", s_cmd_history },
    { "lineage", "chain of evolutions back to the initial agent", "lineage AGENT [--json]", s_cmd_lineage },
    { "matches", "recent results", "matches [--limit N] [--json]", s_cmd_matches },
    { "workers", "connected workers", "workers [--json]", s_cmd_workers },
    { "pause", "stop handing out assignments (admin)", "pause", s_cmd_pause },
    { "resume", "hand out assignments again (admin)", "resume", s_cmd_resume },
    { "replay", "write a soccer episode as an animated SVG", "replay AGENT|random|chaser [--vs AGENT|random|chaser] -o FILE.svg [--seed N] [--steps N]", replay_cmd },
    { "keygen", "make a CURVE key pair (FILE and FILE_secret)", "keygen FILE", NULL },
    { "watch", "live progress line until --seconds pass", "watch [--seconds S] [--interval S]", s_cmd_watch },
    { "export", "write an agent as a PyTorch safetensors file", "export AGENT[@VERSION] -o FILE.safetensors [--json]", export_cmd },
    { "eval", "play evaluation matches locally, report rates with 95% CIs", "eval AGENT --vs AGENT2|SCRIPT [--episodes N] [--seed S] [--env NAME=VALUE]... [--json]", eval_cmd },
    { "report", "write a self-contained HTML report of the run", "report -o FILE.html [--save-data FILE] [--data FILE] [--json]", report_cmd },
    { NULL, NULL, NULL, NULL }
};

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: pbtctl [--endpoint EP] [--timeout MS] COMMAND [args]\n"
        "  --endpoint EP   pbtd control endpoint (default $PBTCTL_ENDPOINT, else\n"
        "                  ipc://%s if it exists, else %s)\n"
        "  --timeout MS    give up after MS without a reply (default 3000)\n"
        "  --server-key K  pbtd's CURVE public key or certificate file ($PBTCTL_SERVER_KEY)\n"
        "  --cert FILE     our CURVE certificate, from pbtctl keygen ($PBTCTL_CERT)\n"
        "  --token-file F  admin token for pause/resume ($PBTCTL_TOKEN holds it directly)\n"
        "  --version       print the version and exit\n"
        "  -h, --help      this text\n"
        "commands:\n", CTL_INSTALLED_SOCKET, CTL_DEFAULT_ENDPOINT);
    for (int i = 0; s_commands [i].name; i++)
        fprintf (out, "  %-9s %s\n", s_commands [i].name, s_commands [i].summary);
    fprintf (out,
        "exit codes: 0 ok, 1 refused or failed by pbtd, 2 usage error, 3 pbtd unreachable\n"
        "Run 'pbtctl COMMAND --help' for a command's usage.\n");
}

int
main (int argc, char **argv)
{
    const char *endpoint = ctl_default_endpoint ();
    int timeout_ms = 3000;
    const char *env_ep = getenv ("PBTCTL_ENDPOINT");
    const char *endpoint_what = env_ep && *env_ep ? "$PBTCTL_ENDPOINT" : "the default endpoint";
    int i = 1;
    for (; i < argc && argv [i][0] == '-'; i++) {
        if (strcmp (argv [i], "--help") == 0 || strcmp (argv [i], "-h") == 0) {
            s_usage (stdout);
            return 0;
        }
        if (strcmp (argv [i], "--version") == 0) {
            printf ("pbtctl %s\n", PBT_VERSION);
            return 0;
        }
        if (strcmp (argv [i], "--endpoint") == 0 && i + 1 < argc) {
            endpoint = argv [++i];
            endpoint_what = "--endpoint";
        }
        else
        if (strcmp (argv [i], "--timeout") == 0) {
            uint64_t ms;
            if (args_uint ("--timeout", i + 1 < argc ? argv [++i] : NULL, 1, 86400000, &ms))
                return EXIT_USAGE;
            timeout_ms = (int) ms;
        }
        else
        if (strcmp (argv [i], "--server-key") == 0 && i + 1 < argc)
            setenv ("PBTCTL_SERVER_KEY", argv [++i], 1);
        else
        if (strcmp (argv [i], "--cert") == 0 && i + 1 < argc)
            setenv ("PBTCTL_CERT", argv [++i], 1);
        else
        if (strcmp (argv [i], "--token-file") == 0 && i + 1 < argc) {
            FILE *f = fopen (argv [++i], "r");
            char token [128] = "";
            size_t n = f ? fread (token, 1, sizeof token - 1, f) : 0;
            if (f)
                fclose (f);
            else {
                fprintf (stderr, "pbtctl: --token-file %s: cannot read it\n", argv [i]);
                return EXIT_USAGE;
            }
            token [n] = 0;
            while (n && (token [n - 1] == '\n' || token [n - 1] == ' '))
                token [--n] = 0;
            setenv ("PBTCTL_TOKEN", token, 1);
        }
        else {
            fprintf (stderr, "pbtctl: unknown option '%s'\n", argv [i]);
            s_usage (stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        s_usage (stderr);
        return EXIT_USAGE;
    }
    const command_t *cmd = NULL;
    for (int c = 0; s_commands [c].name; c++)
        if (strcmp (s_commands [c].name, argv [i]) == 0)
            cmd = &s_commands [c];
    if (!cmd) {
        fprintf (stderr, "pbtctl: unknown command '%s'\n", argv [i]);
        s_usage (stderr);
        return EXIT_USAGE;
    }
    if (s_has_flag (argc - i, argv + i, "--help")) {
        printf ("usage: pbtctl %s\n  %s\n", cmd->usage, cmd->summary);
        return 0;
    }
    if (!cmd->run)
        return s_keygen (argc - i, argv + i);
    if (cmd->run == replay_cmd && replay_scripts_only (argc - i, argv + i))
        return replay_cmd (NULL, argc - i, argv + i);
    //  Before connecting: libzmq refuses some malformed endpoints only at
    //  connect (which looked like "unreachable") and takes others silently.
    if (args_endpoint (endpoint_what, endpoint))
        return EXIT_USAGE;
    zsys_init ();
    ctl_t *ctl = ctl_new (endpoint, timeout_ms);
    if (!ctl)
        return EXIT_UNREACHABLE;
    int rc = cmd->run (ctl, argc - i, argv + i);
    ctl_destroy (&ctl);
    return rc;
}
