/*  curves: pbtctl curves, export-run and status's learning columns (see
    curves.h). Replies are walked as msgpack-c trees (mpobj), checked
    before msgpack-c sees them.
*/
#include "curves.h"
#include "mpobj.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <msgpack.h>

#define EXIT_REFUSED     1
#define EXIT_USAGE       2
#define MAX_AGENTS       4096
#define MAX_METRICS      64

//  ---------------------------------------------------------------------
//  Trends

static void
s_half (const double *v, const double *w, int n, double *mean, double *var)
{
    double sw = 0, s = 0, m = 0, ss = 0;
    for (int i = 0; i < n; i++) {
        double wi = w && w [i] > 0 ? w [i] : 1;
        sw += wi;
        s += wi * v [i];
        m += v [i];
    }
    *mean = s / sw;
    m /= n;
    for (int i = 0; i < n; i++)
        ss += (v [i] - m) * (v [i] - m);
    *var = n > 1 ? ss / (n - 1) : 0;
}

void
curves_trend (const double *value, const double *weight, int n, curves_trend_t *out)
{
    memset (out, 0, sizeof *out);
    out->verdict = -2;
    if (n < 6)
        return;
    int na = n / 2, nb = n - na;
    double ma, va, mb, vb;
    s_half (value, weight, na, &ma, &va);
    s_half (value + na, weight ? weight + na : NULL, nb, &mb, &vb);
    out->recent = mb;
    out->delta = mb - ma;
    out->se = sqrt (va / na + vb / nb);
    out->verdict = fabs (out->delta) > 2 * out->se ? (out->delta > 0 ? 1 : -1) : 0;
}

const char *
curves_trend_text (const curves_trend_t *t, char *buf, size_t len)
{
    if (t->verdict == -2)
        snprintf (buf, len, "-");
    else
        snprintf (buf, len, "%s %+.3g", t->verdict > 0 ? "up" : t->verdict < 0 ? "down" : "flat",
                  t->delta);
    return buf;
}

//  ---------------------------------------------------------------------
//  Asking pbtd

static void
s_pack_str (msgpack_packer *pk, const char *s)
{
    msgpack_pack_str (pk, strlen (s));
    msgpack_pack_str_body (pk, s, strlen (s));
}

//  A reply and its unpacked tree, whose strings point into the reply.
typedef struct {
    ctl_reply_t reply;
    msgpack_unpacked up;
    msgpack_object data;            // up.data, nil until fetched
} fetched_t;

static void
s_fetched_clear (fetched_t *f)
{
    msgpack_unpacked_destroy (&f->up);
    ctl_reply_clear (&f->reply);
}

//  ctl "curves" with {agent?, metric?, last?}; the reply kept in out
//  (clear with s_fetched_clear, also after a failure).
static int
s_fetch (ctl_t *ctl, const char *agent, const char *metric, int64_t last, fetched_t *out)
{
    memset (out, 0, sizeof *out);
    msgpack_unpacked_init (&out->up);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, (agent ? 1 : 0) + (metric ? 1 : 0) + (last > 0 ? 1 : 0));
    if (agent) {
        s_pack_str (&pk, "agent");
        s_pack_str (&pk, agent);
    }
    if (metric) {
        s_pack_str (&pk, "metric");
        s_pack_str (&pk, metric);
    }
    if (last > 0) {
        s_pack_str (&pk, "last");
        msgpack_pack_int64 (&pk, last);
    }
    int rc = ctl_call (ctl, "curves", (const uint8_t *) sb.data, sb.size, &out->reply);
    msgpack_sbuffer_destroy (&sb);
    if (rc != 0)
        return rc;
    if (mpobj_unpack (&out->up, out->reply.body, out->reply.body_len) != 0) {
        fprintf (stderr, "pbtctl: pbtd's curves reply is not MessagePack\n");
        return EXIT_REFUSED;
    }
    out->data = out->up.data;
    return 0;
}

//  Agent ids from status ("agt_0", ...), at most max; count or a negative exit code.
static int
s_agent_ids (ctl_t *ctl, char ids [][64], int max)
{
    ctl_reply_t reply;
    int rc = ctl_call (ctl, "status", NULL, 0, &reply);
    if (rc != 0)
        return -rc;
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    int n = 0;
    if (mpobj_unpack (&up, reply.body, reply.body_len) == 0) {
        const msgpack_object *rows = mpobj_get (&up.data, "agents");
        for (uint32_t i = 0; i < mpobj_len (rows) && n < max; i++)
            if (mpobj_str (mpobj_get (mpobj_at (rows, i), "id"), ids [n], 64))
                n++;
    }
    msgpack_unpacked_destroy (&up);
    ctl_reply_clear (&reply);
    return n;
}

//  ---------------------------------------------------------------------
//  Rows

static double
s_col (const msgpack_object *series, const char *col, uint32_t i)
{
    double v;
    return mpobj_num (mpobj_at (mpobj_get (series, col), i), &v) ? v : NAN;
}

//  CSV field: quoted when it needs to be (RFC 4180).
static void
s_csv_str (FILE *f, const char *s)
{
    if (!strpbrk (s, ",\"\n\r")) {
        fputs (s, f);
        return;
    }
    fputc ('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc ('"', f);
        fputc (*s, f);
    }
    fputc ('"', f);
}

static const char s_csv_head [] =
    "t_ms,seconds,frames,value,lo,hi,last,samples,weight,level,label";

//  One point as CSV (after the agent/metric columns the caller wrote).
static void
s_csv_point (FILE *f, const msgpack_object *series, uint32_t i, double t_base)
{
    char label [128] = "";
    mpobj_str (mpobj_at (mpobj_get (series, "label"), i), label, sizeof label);
    double t = s_col (series, "t_ms", i);
    fprintf (f, "%.0f,%.3f,%.0f,%.17g,%.17g,%.17g,%.17g,%.0f,%.17g,%.0f,", t, (t - t_base) / 1000,
             s_col (series, "frames", i), s_col (series, "value", i), s_col (series, "lo", i),
             s_col (series, "hi", i), s_col (series, "last", i), s_col (series, "samples", i),
             s_col (series, "weight", i), s_col (series, "level", i));
    s_csv_str (f, label);
    fputc ('\n', f);
}

//  The earliest sample time of every series in a reply's "agents" map.
static double
s_t_base (const msgpack_object *agents, double base)
{
    for (uint32_t a = 0; agents && agents->type == MSGPACK_OBJECT_MAP && a < agents->via.map.size; a++) {
        const msgpack_object *m = &agents->via.map.ptr [a].val;
        for (uint32_t k = 0; m->type == MSGPACK_OBJECT_MAP && k < m->via.map.size; k++) {
            const msgpack_object *t0 = mpobj_get (&m->via.map.ptr [k].val, "t0_ms");
            for (uint32_t i = 0; i < mpobj_len (t0); i++) {
                double v;
                if (mpobj_num (mpobj_at (t0, i), &v) && v < base)
                    base = v;
            }
        }
    }
    return base;
}

//  ---------------------------------------------------------------------
//  pbtctl curves

static void
s_curves_usage (void)
{
    fprintf (stderr, "usage: pbtctl curves [AGENT...] [--metric M] [--last N] [--json|--csv]\n");
}

//  Print one agent's series: CSV rows or an aligned table.
static void
s_print_agent (const char *id, const msgpack_object *series_map, bool csv, double t_base)
{
    for (uint32_t k = 0; series_map && series_map->type == MSGPACK_OBJECT_MAP
                         && k < series_map->via.map.size; k++) {
        char metric [64];
        if (!mpobj_str (&series_map->via.map.ptr [k].key, metric, sizeof metric))
            continue;
        const msgpack_object *s = &series_map->via.map.ptr [k].val;
        uint32_t n = mpobj_len (mpobj_get (s, "value"));
        for (uint32_t i = 0; i < n; i++) {
            if (csv) {
                s_csv_str (stdout, id);
                fputc (',', stdout);
                s_csv_str (stdout, metric);
                fputc (',', stdout);
                s_csv_point (stdout, s, i, t_base);
            }
            else
                printf ("%-8s %-20s %10.1f %12.0f %14.6g %8.0f\n", id, metric,
                        (s_col (s, "t_ms", i) - t_base) / 1000, s_col (s, "frames", i),
                        s_col (s, "value", i), s_col (s, "samples", i));
        }
    }
}

int
curves_cmd (ctl_t *ctl, int argc, char **argv)
{
    const char *metric = NULL;
    int64_t last = 0;
    bool json = false, csv = false;
    static char ids [MAX_AGENTS][64];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv [i], "--metric") && i + 1 < argc)
            metric = argv [++i];
        else
        if (!strcmp (argv [i], "--last") && i + 1 < argc) {
            char *end;
            last = strtoll (argv [++i], &end, 10);
            if (*end || last < 1) {
                fprintf (stderr, "pbtctl curves: --last wants a positive integer, got '%s'\n", argv [i]);
                return EXIT_USAGE;
            }
        }
        else
        if (!strcmp (argv [i], "--json"))
            json = true;
        else
        if (!strcmp (argv [i], "--csv"))
            csv = true;
        else
        if (argv [i][0] != '-' && n < MAX_AGENTS)
            snprintf (ids [n++], 64, "%s", argv [i]);
        else {
            fprintf (stderr, "pbtctl curves: unexpected argument '%s'\n", argv [i]);
            s_curves_usage ();
            return EXIT_USAGE;
        }
    }
    if (json && csv) {
        fprintf (stderr, "pbtctl curves: --json or --csv, not both\n");
        return EXIT_USAGE;
    }
    if (n == 0 && (n = s_agent_ids (ctl, ids, MAX_AGENTS)) < 0)
        return -n;
    //  One request per agent: each reply is bounded by pbtd, and the
    //  output streams.
    fetched_t *ups = calloc ((size_t) n, sizeof *ups);
    if (!ups)
        return EXIT_REFUSED;
    int rc = 0, got = 0;
    bool truncated = false;
    for (; got < n && rc == 0; got++)
        rc = s_fetch (ctl, ids [got], metric, last, &ups [got]);
    double t_base = INFINITY;
    for (int a = 0; a < got; a++) {
        t_base = s_t_base (mpobj_get (&ups [a].data, "agents"), t_base);
        const msgpack_object *t = mpobj_get (&ups [a].data, "truncated");
        truncated |= t && t->type == MSGPACK_OBJECT_BOOLEAN && t->via.boolean;
    }
    if (rc == 0 && json) {
        printf ("{\"agents\": {");
        for (int a = 0; a < got; a++) {
            const msgpack_object *agents = mpobj_get (&ups [a].data, "agents");
            for (uint32_t k = 0; agents && agents->type == MSGPACK_OBJECT_MAP && k < agents->via.map.size; k++) {
                msgpack_sbuffer sb;
                msgpack_sbuffer_init (&sb);
                msgpack_packer pk;
                msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
                msgpack_pack_object (&pk, agents->via.map.ptr [k].val);
                char *j = proto_value_to_json ((const uint8_t *) sb.data, sb.size, false);
                char id [64] = "";
                mpobj_str (&agents->via.map.ptr [k].key, id, sizeof id);
                printf ("%s\"%s\": %s", a || k ? ", " : "", id, j ? j : "null");
                free (j);
                msgpack_sbuffer_destroy (&sb);
            }
        }
        printf ("}, \"truncated\": %s}\n", truncated ? "true" : "false");
    }
    else
    if (rc == 0) {
        if (csv)
            printf ("agent,metric,%s\n", s_csv_head);
        else
            printf ("%-8s %-20s %10s %12s %14s %8s\n", "agent", "metric", "seconds", "frames", "value",
                    "samples");
        for (int a = 0; a < got; a++) {
            const msgpack_object *agents = mpobj_get (&ups [a].data, "agents");
            for (uint32_t k = 0; agents && agents->type == MSGPACK_OBJECT_MAP && k < agents->via.map.size; k++) {
                char id [64] = "";
                mpobj_str (&agents->via.map.ptr [k].key, id, sizeof id);
                s_print_agent (id, &agents->via.map.ptr [k].val, csv, t_base);
            }
        }
        if (truncated)
            fprintf (stderr, "pbtctl curves: pbtd left out the oldest points of some series "
                             "(its reply limit); use --last N or --metric M\n");
    }
    int series = 0;
    for (int a = 0; a < got; a++) {
        const msgpack_object *agents = mpobj_get (&ups [a].data, "agents");
        for (uint32_t k = 0; agents && agents->type == MSGPACK_OBJECT_MAP && k < agents->via.map.size; k++)
            if (agents->via.map.ptr [k].val.type == MSGPACK_OBJECT_MAP)
                series += (int) agents->via.map.ptr [k].val.via.map.size;
    }
    if (rc == 0 && series == 0) {
        if (metric)
            fprintf (stderr, "pbtctl curves: no series '%s' for %s ('pbtctl curves AGENT' lists "
                             "an agent's series)\n", metric, n == 1 ? ids [0] : "these agents");
        else
            fprintf (stderr, "pbtctl curves: no series yet (no result applied, or workers that "
                             "send no statistics)\n");
        rc = EXIT_REFUSED;
    }
    for (int a = 0; a < got; a++)
        s_fetched_clear (&ups [a]);
    free (ups);
    return rc;
}

//  ---------------------------------------------------------------------
//  pbtctl export-run DIR

typedef struct {
    char name [64];
    FILE *f;
} out_file_t;

static FILE *
s_open_in (const char *dir, const char *name, const char *header)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/%s.csv", dir, name);
    FILE *f = fopen (path, "w");
    if (!f)
        fprintf (stderr, "pbtctl export-run: cannot write %s: %s\n", path, strerror (errno));
    else
        fprintf (f, "%s\n", header);
    return f;
}

//  One CSV per series name: agent + the point columns.
static int
s_export_series (const char *dir, fetched_t *ups, int n, double t_base, int *files)
{
    static out_file_t out [MAX_METRICS];
    int n_out = 0, rc = 0;
    char header [256];
    snprintf (header, sizeof header, "agent,%s", s_csv_head);
    for (int a = 0; a < n && rc == 0; a++) {
        const msgpack_object *agents = mpobj_get (&ups [a].data, "agents");
        for (uint32_t k = 0; agents && agents->type == MSGPACK_OBJECT_MAP && k < agents->via.map.size; k++) {
            char id [64] = "";
            mpobj_str (&agents->via.map.ptr [k].key, id, sizeof id);
            const msgpack_object *m = &agents->via.map.ptr [k].val;
            for (uint32_t s = 0; m->type == MSGPACK_OBJECT_MAP && s < m->via.map.size; s++) {
                char metric [64];
                if (!mpobj_str (&m->via.map.ptr [s].key, metric, sizeof metric)
                ||  strspn (metric, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
                    != strlen (metric) || metric [0] == '.')
                    continue;   // a name that is not a safe file name is not written
                int o = 0;
                while (o < n_out && strcmp (out [o].name, metric))
                    o++;
                if (o == n_out) {
                    if (n_out == MAX_METRICS)
                        continue;
                    snprintf (out [o].name, sizeof out [o].name, "%s", metric);
                    if (!(out [o].f = s_open_in (dir, metric, header))) {
                        rc = EXIT_REFUSED;
                        break;
                    }
                    n_out++;
                }
                const msgpack_object *series = &m->via.map.ptr [s].val;
                uint32_t np = mpobj_len (mpobj_get (series, "value"));
                for (uint32_t i = 0; i < np; i++) {
                    s_csv_str (out [o].f, id);
                    fputc (',', out [o].f);
                    s_csv_point (out [o].f, series, i, t_base);
                }
            }
        }
    }
    for (int o = 0; o < n_out; o++)
        if (fclose (out [o].f) != 0) {
            fprintf (stderr, "pbtctl export-run: writing %s/%s.csv failed\n", dir, out [o].name);
            rc = EXIT_REFUSED;
        }
    *files = n_out;
    return rc;
}

//  evolutions.csv: every agent's lineage, one row per evolution.
static int
s_export_evolutions (ctl_t *ctl, const char *dir, char ids [][64], int n, double t_base)
{
    FILE *f = s_open_in (dir, "evolutions",
                         "agent,t_ms,seconds,generation,frames,donor,donor_version,hparams_before,hparams_after");
    if (!f)
        return EXIT_REFUSED;
    int rc = 0;
    for (int a = 0; a < n && rc == 0; a++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init (&sb);
        msgpack_packer pk;
        msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 1);
        s_pack_str (&pk, "agent");
        s_pack_str (&pk, ids [a]);
        ctl_reply_t reply;
        rc = ctl_call (ctl, "lineage", (const uint8_t *) sb.data, sb.size, &reply);
        msgpack_sbuffer_destroy (&sb);
        if (rc != 0)
            break;
        msgpack_unpacked up;
        msgpack_unpacked_init (&up);
        if (mpobj_unpack (&up, reply.body, reply.body_len) == 0) {
            const msgpack_object *evs = mpobj_get (&up.data, "evolutions");
            //  Newest first from pbtd; oldest first here.
            for (uint32_t i = mpobj_len (evs); i-- > 0;) {
                const msgpack_object *e = mpobj_at (evs, i);
                char donor [64] = "", hp [2][1024];
                mpobj_str (mpobj_get (e, "donor"), donor, sizeof donor);
                for (int h = 0; h < 2; h++) {
                    const msgpack_object *m = mpobj_get (e, h ? "new_hparams" : "old_hparams");
                    size_t len = 0;
                    hp [h][0] = 0;
                    for (uint32_t k = 0; m && m->type == MSGPACK_OBJECT_MAP && k < m->via.map.size; k++) {
                        char name [64];
                        double v;
                        if (mpobj_str (&m->via.map.ptr [k].key, name, sizeof name)
                        &&  mpobj_num (&m->via.map.ptr [k].val, &v) && len < sizeof hp [h])
                            len += (size_t) snprintf (hp [h] + len, sizeof hp [h] - len, "%s%s=%.9g",
                                                      k ? ";" : "", name, v);
                    }
                }
                double ts = mpobj_num_or (e, "ts", NAN);
                fprintf (f, "%s,%.0f,%.3f,%.0f,%.0f,", ids [a], ts, (ts - t_base) / 1000,
                         mpobj_num_or (e, "generation", NAN), mpobj_num_or (e, "frames", NAN));
                s_csv_str (f, donor);
                fprintf (f, ",%.0f,", mpobj_num_or (e, "donor_version", NAN));
                s_csv_str (f, hp [0]);
                fputc (',', f);
                s_csv_str (f, hp [1]);
                fputc ('\n', f);
            }
        }
        msgpack_unpacked_destroy (&up);
        ctl_reply_clear (&reply);
    }
    if (fclose (f) != 0 && rc == 0) {
        fprintf (stderr, "pbtctl export-run: writing %s/evolutions.csv failed\n", dir);
        rc = EXIT_REFUSED;
    }
    return rc;
}

int
export_run_cmd (ctl_t *ctl, int argc, char **argv)
{
    const char *dir = NULL;
    int64_t last = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv [i], "--last") && i + 1 < argc)
            last = atoll (argv [++i]);
        else
        if (argv [i][0] != '-' && !dir)
            dir = argv [i];
        else {
            fprintf (stderr, "pbtctl export-run: unexpected argument '%s'\n"
                             "usage: pbtctl export-run DIR [--last N]\n", argv [i]);
            return EXIT_USAGE;
        }
    }
    if (!dir) {
        fprintf (stderr, "usage: pbtctl export-run DIR [--last N]\n");
        return EXIT_USAGE;
    }
    if (mkdir (dir, 0777) != 0 && errno != EEXIST) {
        fprintf (stderr, "pbtctl export-run: cannot create %s: %s\n", dir, strerror (errno));
        return EXIT_REFUSED;
    }
    static char ids [MAX_AGENTS + 1][64];
    int n = s_agent_ids (ctl, ids, MAX_AGENTS);
    if (n < 0)
        return -n;
    //  The agents' series, then the population's own (throughput).
    fetched_t *ups = calloc ((size_t) n + 1, sizeof *ups);
    if (!ups)
        return EXIT_REFUSED;
    int rc = 0, got = 0, files = 0;
    snprintf (ids [n], sizeof ids [n], "population");
    for (; got < n + 1 && rc == 0; got++)
        rc = s_fetch (ctl, ids [got], NULL, last, &ups [got]);
    double t_base = INFINITY;
    for (int a = 0; a < got; a++)
        t_base = s_t_base (mpobj_get (&ups [a].data, "agents"), t_base);
    if (!isfinite (t_base))
        t_base = 0;
    if (rc == 0)
        rc = s_export_series (dir, ups, got, t_base, &files);
    if (rc == 0)
        rc = s_export_evolutions (ctl, dir, ids, n, t_base);
    for (int a = 0; a < got; a++)
        s_fetched_clear (&ups [a]);
    free (ups);
    if (rc == 0)
        printf ("wrote %d series files and evolutions.csv for %d agents to %s\n", files, n, dir);
    return rc;
}

//  ---------------------------------------------------------------------
//  status

int
curves_status_trends (ctl_t *ctl, const char *metric, curves_trend_t *trends, int n_agents)
{
    for (int i = 0; i < n_agents; i++)
        trends [i].verdict = -2;
    fetched_t up;
    //  One request for every agent: CURVES_STATUS_POINTS points each.
    if (s_fetch (ctl, NULL, metric, CURVES_STATUS_POINTS, &up) != 0) {
        s_fetched_clear (&up);
        return -1;
    }
    const msgpack_object *agents = mpobj_get (&up.data, "agents");
    for (uint32_t k = 0; agents && agents->type == MSGPACK_OBJECT_MAP && k < agents->via.map.size; k++) {
        char id [64];
        if (!mpobj_str (&agents->via.map.ptr [k].key, id, sizeof id) || strncmp (id, "agt_", 4))
            continue;
        long i = strtol (id + 4, NULL, 10);
        const msgpack_object *s = mpobj_get (&agents->via.map.ptr [k].val, metric);
        uint32_t n = mpobj_len (mpobj_get (s, "value"));
        if (i < 0 || i >= n_agents || n == 0)
            continue;
        double v [CURVES_STATUS_POINTS], w [CURVES_STATUS_POINTS];
        int m = 0;
        for (uint32_t p = n > CURVES_STATUS_POINTS ? n - CURVES_STATUS_POINTS : 0; p < n; p++) {
            v [m] = s_col (s, "value", p);
            w [m++] = s_col (s, "weight", p);
        }
        curves_trend (v, w, m, &trends [i]);
    }
    s_fetched_clear (&up);
    return 0;
}
