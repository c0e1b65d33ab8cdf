/*  pbtctl: query and steer a running pbtd.

    Every command is one ctl request on pbtd's control endpoint and one
    ctl_reply; pbtctl renders the reply body as a table or, with --json, as
    JSON. Exit codes: 0 success, 1 pbtd refused or failed the command,
    2 usage error, 3 pbtd unreachable (no reply within --timeout).
*/
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
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
#include "curves.h"
#include "replay.h"
#include "eval.h"
#include "export.h"
#include "exploit.h"
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

//  v printed with fmt (one double), or "-" when there is none (NaN).
static void
s_fmt_or_dash (char *buf, size_t len, const char *fmt, double v)
{
    if (isnan (v))
        snprintf (buf, len, "-");
    else
        snprintf (buf, len, fmt, v);
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
    char rec [64];
    s_str (body, "recommended", rec, sizeof rec);
    int64_t n = proto_view_array_len (agents);
    //  Is it learning: the trend of each agent's game return and policy
    //  entropy over its newest results (curves.h; README "Is it learning").
    curves_trend_t *ret = calloc ((size_t) (n > 0 ? n : 1), sizeof *ret);
    curves_trend_t *ent = calloc ((size_t) (n > 0 ? n : 1), sizeof *ent);
    bool learn = ret && ent && curves_status_trends (ctl, "game_return", ret, (int) n) == 0
              && curves_status_trends (ctl, "entropy", ent, (int) n) == 0;
    printf ("%-8s %9s %6s %7s %8s %11s %10s %7s %4s %-8s %-4s",
            "agent", "rating", "nash", "nash-sc", "matches", "frames", "lr", "gamma", "gen", "parent", "busy");
    if (learn)
        printf (" %8s %-12s %7s %-12s", "return", "trend", "entropy", "trend");
    printf ("\n");
    for (int64_t i = 0; i < n; i++) {
        proto_view_t a;
        if (proto_view_array_at (agents, (uint32_t) i, &a) != 0)
            continue;
        char id [64], parent [64], t1 [32], t2 [32];
        s_str (a, "id", id, sizeof id);
        //  No Nash columns before the first game: "-", not "nan".
        char nash [32], nash_sc [32];
        s_fmt_or_dash (nash, sizeof nash, "%6.3f", s_num (a, "nash_weight", NAN));
        s_fmt_or_dash (nash_sc, sizeof nash_sc, "%+7.3f", s_num (a, "nash_score", NAN));
        printf ("%-8s %9.3f %6s %7s %8.0f %11.0f %10.3g %7.4f %4.0f %-8s %-4s",
                id, s_num (a, "rating", NAN), nash, nash_sc, s_num (a, "matches", 0),
                s_num (a, "frames", 0), s_num (a, "lr", NAN), s_num (a, "gamma", NAN),
                s_num (a, "generation", 0), s_str (a, "parent", parent, sizeof parent),
                s_bool (a, "busy") ? "busy" : "idle");
        long k = strncmp (id, "agt_", 4) == 0 ? strtol (id + 4, NULL, 10) : -1;
        if (learn && k >= 0 && k < n && ret [k].verdict != -2)
            printf (" %8.3f %-12s %7.4f %-12s", ret [k].recent, curves_trend_text (&ret [k], t1, sizeof t1),
                    ent [k].recent, curves_trend_text (&ent [k], t2, sizeof t2));
        else
        if (learn)
            printf (" %8s %-12s %7s %-12s", "-", "-", "-", "-");
        printf ("%s\n", strcmp (id, rec) ? "" : "  <- recommended");
    }
    if (learn)
        printf ("\n(return: mean game return per episode over the newer half of each agent's last "
                "%d results;\n trend: newer half minus older half, up/down when beyond twice its "
                "standard error)\n", CURVES_STATUS_POINTS);
    free (ret);
    free (ent);
    printf ("\nrecommended: %s (highest Nash weight in the payoff matrix's meta-game; ties by "
            "Nash-averaged score)\n", rec [0] && strcmp (rec, "-") ? rec : "none yet (no games)");
    printf ("workers connected: %.0f   samples/s: %.0f   results: %.0f   evolutions: %.0f%s\n",
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

//  Integer options a command passes on as arguments: "--offset N" -> offset.
typedef struct {
    const char *key;
    bool set;
    int64_t value;
    uint64_t min, max;              // accepted range (s_int_options)
} int_arg_t;

static int
s_simple_args (ctl_t *ctl, const char *cmd, const char *agent, const int_arg_t *ints, int n_ints,
               bool json, render_fn *render)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    uint32_t n = agent ? 1 : 0;
    for (int i = 0; i < n_ints; i++)
        n += ints [i].set;
    msgpack_pack_map (&pk, n);
    if (agent) {
        msgpack_pack_str (&pk, 5);
        msgpack_pack_str_body (&pk, "agent", 5);
        msgpack_pack_str (&pk, strlen (agent));
        msgpack_pack_str_body (&pk, agent, strlen (agent));
    }
    for (int i = 0; i < n_ints; i++)
        if (ints [i].set) {
            msgpack_pack_str (&pk, strlen (ints [i].key));
            msgpack_pack_str_body (&pk, ints [i].key, strlen (ints [i].key));
            msgpack_pack_int64 (&pk, ints [i].value);
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

static int
s_simple (ctl_t *ctl, const char *cmd, const char *agent, int64_t limit, bool json, render_fn *render)
{
    int_arg_t lim = { "limit", limit > 0, limit, 1, INT64_MAX };
    return s_simple_args (ctl, cmd, agent, &lim, 1, json, render);
}

//  "--name N" options into ints (named by key); -1 (usage printed) if a
//  value is missing or not an integer. Other arguments are left alone.
static int
s_int_options (const char *cmd, int argc, char **argv, int_arg_t *ints, int n_ints)
{
    for (int i = 1; i < argc; i++)
        for (int k = 0; k < n_ints; k++) {
            if (strncmp (argv [i], "--", 2) || strcmp (argv [i] + 2, ints [k].key))
                continue;
            char what [64];
            uint64_t v;
            snprintf (what, sizeof what, "%s --%s", cmd, ints [k].key);
            if (args_uint (what, i + 1 < argc ? argv [i + 1] : NULL, ints [k].min, ints [k].max, &v))
                return -1;
            ints [k].set = true;
            ints [k].value = (int64_t) v;
            i++;
        }
    return 0;
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
    printf ("%-8s %8s %10s %12s %9s  %s\n", "agent", "entries", "rating", "mean score", "evolved",
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
        printf ("%-8s %8" PRId64 " %10.3f %12.3f %9" PRId64 "  %s\n", id, n < 0 ? 0 : n, last_rating,
                tail ? sum / (double) tail : 0.0, evolved < 0 ? 0 : evolved, hps);
    }
    printf ("(entries are results, older ones merged; mean score over each agent's last 100 entries; "
            "--json for the series)\n");
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
    printf ("%10s %8s  %s\n", "assignment", "episodes",
            "seats (agent team wins/draws/losses mean-score rating-after)");
    int64_t n = proto_view_array_len (body);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t m, seats;
        if (proto_view_array_at (body, (uint32_t) i, &m) != 0)
            continue;
        printf ("%10.0f %8.0f ", s_num (m, "assignment", 0), s_num (m, "episodes", 0));
        if (proto_view_get (m, "seats", &seats) == 0) {
            int64_t k = proto_view_array_len (seats);
            for (int64_t j = 0; j < k; j++) {
                proto_view_t seat, fv;
                char agent [64];
                if (proto_view_array_at (seats, (uint32_t) j, &seat) != 0)
                    continue;
                printf (" %s", s_str (seat, "agent", agent, sizeof agent));
                if (proto_view_get (seat, "frozen_version", &fv) == 0 && !proto_view_is_nil (fv))
                    printf ("@v%lld", (long long) proto_view_int (fv, 0));
                printf (" t%.0f %.0f/%.0f/%.0f %+.2f %.2f", s_num (seat, "team", 0),
                        s_num (seat, "wins", 0), s_num (seat, "draws", 0), s_num (seat, "losses", 0),
                        s_num (seat, "score", 0), s_num (seat, "rating_after", 0));
            }
        }
        char script [64];
        proto_view_t sv;
        if (proto_view_get (m, "script", &sv) == 0 && proto_view_str (sv, script, sizeof script) == 0
        &&  script [0])
            printf ("  vs script %s (unrated)", script);
        printf ("\n");
    }
    if (n > 0)
        printf ("(one line per result, newest first; --before ASSIGNMENT for older ones)\n");
}

static void
s_render_workers (proto_view_t body)
{
    printf ("%-24s %-16s %8s %11s %4s %10s %5s %10s\n", "worker", "host", "pid", "assignment",
            "held", "samples/s", "duty", "last seen");
    int64_t n = proto_view_array_len (body);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t w, v;
        if (proto_view_array_at (body, (uint32_t) i, &w) != 0)
            continue;
        char id [256], host [256], assignment [32] = "-";
        if (proto_view_get (w, "assignment", &v) == 0 && !proto_view_is_nil (v))
            snprintf (assignment, sizeof assignment, "%lld", (long long) proto_view_int (v, 0));
        //  duty: the share of its wall time the worker spent computing.
        char duty [16] = "-";
        if (proto_view_get (w, "duty_cycle", &v) == 0 && !proto_view_is_nil (v))
            snprintf (duty, sizeof duty, "%.0f%%", 100.0 * proto_view_double (v, 0));
        printf ("%-24s %-16s %8.0f %11s %4.0f %10.0f %5s %8.1fs\n", s_str (w, "worker_id", id, sizeof id),
                s_str (w, "host", host, sizeof host), s_num (w, "pid", 0), assignment,
                s_num (w, "held", 0), s_num (w, "samples_per_s", 0), duty,
                s_num (w, "last_seen_ms_ago", 0) / 1000.0);
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
    int_arg_t ints [2] = { { "offset", false, 0, 0, INT64_MAX }, { "limit", false, 0, 0, INT64_MAX } };
    if (s_int_options ("history", argc, argv, ints, 2))
        return EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv [i], "--offset") || !strcmp (argv [i], "--limit"))
            i++;
        else
        if (argv [i][0] != '-')
            agent = argv [i];
    }
    return s_simple_args (ctl, "history", agent, ints, 2, s_has_flag (argc, argv, "--json"),
                          s_render_history);
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
    int_arg_t ints [2] = { { "limit", false, 0, 1, 1000 }, { "before", false, 0, 1, INT64_MAX } };
    if (s_int_options ("matches", argc, argv, ints, 2))
        return EXIT_USAGE;
    return s_simple_args (ctl, "matches", NULL, ints, 2, s_has_flag (argc, argv, "--json"),
                          s_render_matches);
}

static int
s_cmd_payoff (ctl_t *ctl, int argc, char **argv)
{
    int_arg_t ints [2] = { { "offset", false, 0, 0, INT64_MAX }, { "limit", false, 0, 0, INT64_MAX } };
    if (s_int_options ("payoff", argc, argv, ints, 2))
        return EXIT_USAGE;
    return s_simple_args (ctl, "payoff", NULL, ints, 2, true, NULL);
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
        double best_rating = NAN, best_weight = NAN, frames = 0;
        if (proto_view_init (&body, reply.body, reply.body_len) == 0
        &&  proto_view_get (body, "agents", &agents) == 0) {
            int64_t n = proto_view_array_len (agents);
            for (int64_t i = 0; i < n; i++) {
                proto_view_t a;
                if (proto_view_array_at (agents, (uint32_t) i, &a) != 0)
                    continue;
                frames += s_num (a, "frames", 0);
            }
            //  The recommended agent (highest Nash weight), as status.
            s_str (body, "recommended", best, sizeof best);
            for (int64_t i = 0; i < n; i++) {
                proto_view_t a;
                char id [64];
                if (proto_view_array_at (agents, (uint32_t) i, &a) == 0
                &&  !strcmp (s_str (a, "id", id, sizeof id), best)) {
                    best_rating = s_num (a, "rating", NAN);
                    best_weight = s_num (a, "nash_weight", NAN);
                }
            }
        }
        char line [256], weight [32], rating [32];
        s_fmt_or_dash (weight, sizeof weight, "%.2f", best_weight);
        s_fmt_or_dash (rating, sizeof rating, "%.1f", best_rating);
        snprintf (line, sizeof line,
                  "[%4.0fs] results %.0f  frames %.3g  samples/s %.0f  recommended %s (nash %s, elo %s)  evolutions %.0f  workers %.0f",
                  elapsed, s_num (body, "results", 0), frames, s_num (body, "samples_per_s", 0),
                  best, weight, rating, s_num (body, "evolutions", 0), s_num (body, "workers", 0));
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
//  nash: the meta-game's equilibrium mixture over agents and snapshots.

static int
s_cmd_nash (ctl_t *ctl, int argc, char **argv)
{
    bool json = s_has_flag (argc, argv, "--json");
    ctl_reply_t reply;
    int rc = ctl_call (ctl, "nash", NULL, 0, &reply);
    if (rc != 0)
        return rc;
    if (json) {
        rc = s_print_json (&reply);
        ctl_reply_clear (&reply);
        return rc;
    }
    proto_view_t body, players;
    if (proto_view_init (&body, reply.body, reply.body_len) != 0
    ||  proto_view_get (body, "players", &players) != 0) {
        fprintf (stderr, "pbtctl: nash reply from pbtd has no players list\n");
        ctl_reply_clear (&reply);
        return EXIT_REFUSED;
    }
    printf ("%-12s %10s %12s %10s\n", "player", "weight", "nash score", "episodes");
    int64_t n = proto_view_array_len (players);
    for (int64_t i = 0; i < n; i++) {
        proto_view_t p;
        char id [64];
        if (proto_view_array_at (players, (uint32_t) i, &p) == 0)
            printf ("%-12s %10.4f %+12.4f %10.0f\n", s_str (p, "id", id, sizeof id),
                    s_num (p, "weight", NAN), s_num (p, "score", NAN), s_num (p, "episodes", 0));
    }
    char rec [64];
    printf ("\nrecommended: %s   gap %.2g   episodes %.0f   (%.2f ms in pbtd)\n",
            s_str (body, "recommended", rec, sizeof rec), s_num (body, "gap", NAN),
            s_num (body, "episodes", 0), s_num (body, "ms", NAN));
    ctl_reply_clear (&reply);
    return 0;
}

//  ---------------------------------------------------------------------
//  keygen: a CURVE key pair, as CZMQ certificates. Needs no pbtd.

//  Write text as a new file at path: never through a symlink, never over
//  an existing file (with force the old entry is unlinked first, which
//  removes a symlink itself, not its target), with exactly mode.
static int
s_write_new (const char *path, const char *text, mode_t mode, bool force)
{
    if (force && unlink (path) && errno != ENOENT) {
        fprintf (stderr, "pbtctl keygen: cannot remove %s: %s\n", path, strerror (errno));
        return -1;
    }
    int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf (stderr, "pbtctl keygen: cannot create %s: %s\n", path, strerror (errno));
        return -1;
    }
    size_t len = strlen (text);
    int rc = fchmod (fd, mode) == 0 && write (fd, text, len) == (ssize_t) len
             && fsync (fd) == 0 ? 0 : -1;
    if (rc)
        fprintf (stderr, "pbtctl keygen: cannot write %s: %s\n", path, strerror (errno));
    if (close (fd))
        rc = -1;
    return rc;
}

//  The certificate as CZMQ's zcert_save writes it (ZPL), with or without
//  the secret key; malloc'd text.
static char *
s_cert_text (zcert_t *cert, const char *host, bool secret)
{
    zconfig_t *root = zconfig_new ("root", NULL);
    if (!root)
        return NULL;
    zconfig_set_comment (root, "   ****  Generated by pbtctl keygen  ****");
    zconfig_set_comment (root, secret ? "   ZeroMQ CURVE **Secret** Certificate"
                                      : "   ZeroMQ CURVE Public Certificate");
    zconfig_set_comment (root, secret ? "   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions."
                                      : "   Exchange securely, or use a secure mechanism to verify the contents");
    zconfig_put (root, "metadata/host", host);
    zconfig_put (root, "metadata/created-by", "pbtctl keygen");
    zconfig_put (root, "curve/public-key", zcert_public_txt (cert));
    if (secret)
        zconfig_put (root, "curve/secret-key", zcert_secret_txt (cert));
    char *text = zconfig_str_save (root);
    zconfig_destroy (&root);
    return text;
}

static int
s_keygen (int argc, char **argv)
{
    const char *path = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp (argv [i], "--force"))
            force = true;
        else
        if (argv [i][0] != '-' && !path)
            path = argv [i];
        else {
            fprintf (stderr, "pbtctl keygen: unexpected argument '%s'; usage: pbtctl keygen FILE [--force]\n",
                     argv [i]);
            return EXIT_USAGE;
        }
    if (!path) {
        fprintf (stderr, "pbtctl keygen: name the certificate file, e.g. pbtctl keygen /etc/pbt/worker.cert\n");
        return EXIT_USAGE;
    }
    char secret_path [PATH_MAX];
    if (snprintf (secret_path, sizeof secret_path, "%s_secret", path) >= (int) sizeof secret_path) {
        fprintf (stderr, "pbtctl keygen: path too long\n");
        return EXIT_USAGE;
    }
    struct stat st;
    const char *exists = lstat (path, &st) == 0 ? path
                       : lstat (secret_path, &st) == 0 ? secret_path : NULL;
    if (exists && !force) {
        //  Replacing a pair locks out every peer that holds the old public key.
        fprintf (stderr, "pbtctl keygen: %s exists; not replacing the key pair (pass --force to "
                 "replace it: every peer holding the old public key must then get the new one)\n",
                 exists);
        return EXIT_REFUSED;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "pbtctl keygen: could not make a key pair\n");
        return EXIT_REFUSED;
    }
    char host [256] = "";
    gethostname (host, sizeof host - 1);
    char *pub = s_cert_text (cert, host, false), *sec = s_cert_text (cert, host, true);
    int rc = pub && sec && s_write_new (secret_path, sec, 0600, force) == 0
             && s_write_new (path, pub, 0644, force) == 0 ? 0 : -1;
    if (rc == 0)
        printf ("public key: %s\nwrote %s (public) and %s (secret, mode 0600, keep private)\n",
                zcert_public_txt (cert), path, secret_path);
    if (sec)
        memset (sec, 0, strlen (sec));
    free (pub);
    free (sec);
    zcert_destroy (&cert);
    return rc == 0 ? 0 : EXIT_REFUSED;
}

static const command_t s_commands [] = {
    { "status", "one row per agent, then totals", "status [--json]", s_cmd_status },
    { "history", "per-agent series in the seed's shape (one entry per result, older ones merged)", "history [AGENT] [--offset N] [--limit N] [--json]", s_cmd_history },
    { "lineage", "chain of evolutions back to the initial agent", "lineage AGENT [--json]", s_cmd_lineage },
    { "matches", "recent results with each seat's aggregates", "matches [--limit N] [--before ASSIGNMENT] [--json]", s_cmd_matches },
    { "payoff", "payoff matrix counters (whole run and recent window), as JSON", "payoff [--offset N] [--limit N]", s_cmd_payoff },
    { "workers", "connected workers", "workers [--json]", s_cmd_workers },
    { "pause", "stop handing out assignments (admin)", "pause", s_cmd_pause },
    { "resume", "hand out assignments again (admin)", "resume", s_cmd_resume },
    { "replay", "write a soccer episode as an animated SVG", "replay AGENT|random|chaser [--vs AGENT|random|chaser] -o FILE.svg [--seed N] [--steps N]", replay_cmd },
    { "keygen", "make a CURVE key pair (FILE and FILE_secret); never replaces one without --force", "keygen FILE [--force]", NULL },
    { "watch", "live progress line until --seconds pass", "watch [--seconds S] [--interval S]", s_cmd_watch },
    { "export", "write an agent as a PyTorch safetensors file", "export AGENT[@VERSION] -o FILE.safetensors [--json]", export_cmd },
    { "eval", "play evaluation matches locally, report rates with 95% CIs", "eval AGENT --vs AGENT2|SCRIPT [--episodes N] [--seed S] [--env NAME=VALUE]... [--json]", eval_cmd },
    { "report", "write a self-contained HTML report of the run", "report -o FILE.html [--smooth A] [--save-data FILE] [--data FILE] [--json]", report_cmd },
    { "curves", "print agents' series (training statistics, ...) over time and frames", "curves [AGENT...] [--metric M] [--last N] [--json|--csv]", curves_cmd },
    { "export-run", "write every series, and the evolutions, as CSV files into DIR", "export-run DIR [--last N]", export_run_cmd },
    { "nash", "the Nash mixture over agents and snapshots, and the recommended agent", "nash [--json]", s_cmd_nash },
    { "exploit", "train a best response against a frozen agent; rps: also the exact value", "exploit AGENT[@VERSION] [--exact] [--frames N] [--episodes N] [--points N] [--seed S] [--lr X] [--gamma X] [--gae-lambda X] [--ent-coef X] [--clip-coef X] [--n-envs N] [--n-steps N] [--epochs N] [--minibatches N] [--json]", exploit_cmd },
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

//  A viewer yields to what it views: on a machine that also runs workers,
//  rendering a report or formatting history takes its CPU from training
//  unless pbtctl runs below it. PBTCTL_NICE (default 10, 0 to keep the
//  caller's priority) is added to the niceness pbtctl was started with.
static void
s_yield_to_training (void)
{
    const char *text = getenv ("PBTCTL_NICE");
    char *end = NULL;
    long n = text && *text ? strtol (text, &end, 10) : 10;
    if (text && *text && (*end || n < 0 || n > 19)) {
        fprintf (stderr, "pbtctl: PBTCTL_NICE=%s: not a niceness 0..19; using 10\n", text);
        n = 10;
    }
    errno = 0;
    if (n > 0 && nice ((int) n) == -1 && errno)
        fprintf (stderr, "pbtctl: nice %ld: %s (going on)\n", n, strerror (errno));
}

//  OpenBLAS (linked for exploit and eval's matches) starts a thread per
//  core as it loads, before main, and each spins ~0.1 s waiting for work.
//  pbt's kernels use one BLAS thread (nn_fast.c), so that is pure cost:
//  it made `history --json` take 0.27 s of CPU instead of 0.16 s, taken
//  from the workers on a shared machine. The setting is read only at
//  load, so run again with it set (once: the second run has it).
static void
s_one_blas_thread (char **argv)
{
    if (getenv ("OPENBLAS_NUM_THREADS"))
        return;
    setenv ("OPENBLAS_NUM_THREADS", "1", 1);
    setenv ("PBTCTL_NICE", "0", 1);     // already applied: not twice
    execv ("/proc/self/exe", argv);
    //  No /proc: go on as started, only slower.
}

int
main (int argc, char **argv)
{
    s_yield_to_training ();
    s_one_blas_thread (argv);
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
