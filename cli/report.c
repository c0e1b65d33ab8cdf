/*  report: one self-contained HTML file about a run (see report.h).

    pbtd's replies are gathered into one MessagePack map (the bundle) and
    the page is drawn from that map alone, so a saved bundle renders the
    same page later without pbtd. Charts are plain SVG written here: axes
    with "nice" ticks, polylines per agent, circles for events, <title>
    elements as hover text. Long series are thinned to a bounded number of
    points so the file stays small whatever the run length.
*/
#include "report.h"
#include "mpobj.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#define EXIT_REFUSED     1
#define EXIT_USAGE       2

#define REPORT_MAX_AGENTS   256
#define REPORT_MAX_POINTS   1500    // points drawn per series
#define REPORT_MATCH_LIMIT  200     // recent results listed (the matrix uses payoff)
#define REPORT_METRICS_LIMIT 2000   // metrics rows, when pbtd has no samples_per_s series

static const char *const s_palette [] = {
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#ad494a",
};
#define PALETTE_N (sizeof s_palette / sizeof s_palette [0])

//  ---------------------------------------------------------------------
//  MessagePack object helpers

static bool
s_isnum (const msgpack_object *o)
{
    double v;
    return mpobj_num (o, &v);
}

static double
s_numv (const msgpack_object *o, double dflt)
{
    double v;
    return mpobj_num (o, &v) ? v : dflt;
}

//  Copy a string (or an integer id, as agt_N) into out; "" if neither.
static const char *
s_strv (const msgpack_object *o, char *out, size_t out_len)
{
    out [0] = 0;
    if (mpobj_str (o, out, out_len))
        ;
    else
    if (o && (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
        snprintf (out, out_len, "agt_%lld", (long long) s_numv (o, 0));
    return out;
}

//  ---------------------------------------------------------------------
//  Output helpers

static void
s_esc (FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
            case '&': fputs ("&amp;", f); break;
            case '<': fputs ("&lt;", f); break;
            case '>': fputs ("&gt;", f); break;
            case '"': fputs ("&quot;", f); break;
            case '\'': fputs ("&#39;", f); break;
            default:
                if ((unsigned char) *s >= 0x20 || *s == '\n' || *s == '\t')
                    fputc (*s, f);
        }
}

//  A short human form of a number (ticks, cells).
static const char *
s_fmt (double v, char *buf, size_t len)
{
    if (v == 0)
        snprintf (buf, len, "0");
    else
    if (fabs (v) >= 1e4 && fabs (v) < 1e12) {
        //  Ticks of frame counts and the like: 50k, 1.5M, 2G.
        static const char *const suffix [] = { "k", "M", "G" };
        int s = fabs (v) >= 1e9 ? 2 : fabs (v) >= 1e6 ? 1 : 0;
        snprintf (buf, len, "%.4g%s", v / pow (1000, s + 1), suffix [s]);
    }
    else
    if (fabs (v) >= 1e5 || fabs (v) < 1e-3)
        snprintf (buf, len, "%.3g", v);
    else
        snprintf (buf, len, "%.4g", v);
    return buf;
}

//  ---------------------------------------------------------------------
//  The data, pulled out of the bundle

typedef struct {
    char id [64];
    const char *color;
    const msgpack_object *row;      // status row, may be NULL
    const msgpack_object *hist;     // history entry, may be NULL
    const msgpack_object *lineage;  // lineage reply, may be NULL
} agent_t;

typedef struct {
    const msgpack_object *status, *history, *lineage, *matches, *metrics;
    const msgpack_object *curves;   // {metric: pbtd's curves reply for every agent}
    const msgpack_object *payoff;       // pbtd's payoff counters, may be NULL
    const msgpack_object *rate;         // population series samples_per_s, may be NULL
    agent_t agents [REPORT_MAX_AGENTS];
    int n_agents;
    double t0, t1;                  // wall-clock span (ms) of everything timed
    double f1;                      // the population's frames at the newest point
    double smooth;                  // learning curves: EMA weight, 0 = raw only
} data_t;

static int
s_agent_index (const data_t *d, const char *id)
{
    for (int i = 0; i < d->n_agents; i++)
        if (strcmp (d->agents [i].id, id) == 0)
            return i;
    return -1;
}

static agent_t *
s_agent_add (data_t *d, const char *id)
{
    int i = s_agent_index (d, id);
    if (i >= 0)
        return &d->agents [i];
    if (d->n_agents >= REPORT_MAX_AGENTS || !*id)
        return NULL;
    agent_t *a = &d->agents [d->n_agents];
    memset (a, 0, sizeof *a);
    snprintf (a->id, sizeof a->id, "%s", id);
    a->color = s_palette [d->n_agents % PALETTE_N];
    d->n_agents++;
    return a;
}

static void
s_span (data_t *d, double ts)
{
    if (!(ts > 0))
        return;
    if (ts < d->t0)
        d->t0 = ts;
    if (ts > d->t1)
        d->t1 = ts;
}

static void
s_data_load (data_t *d, const msgpack_object *root)
{
    memset (d, 0, sizeof *d);
    d->status = mpobj_get (root, "status");
    d->history = mpobj_get (root, "history");
    d->lineage = mpobj_get (root, "lineage");
    d->matches = mpobj_get (root, "matches");
    d->metrics = mpobj_get (root, "metrics");
    d->payoff = mpobj_get (root, "payoff");
    d->t0 = INFINITY;
    d->t1 = -INFINITY;
    d->rate = mpobj_get (mpobj_get (root, "samples_per_s"), "points");
    for (uint32_t i = 0; i < mpobj_len (d->rate); i++)
        s_span (d, mpobj_num_or (mpobj_at (d->rate, i), "ts", 0));
    char id [64];
    const msgpack_object *rows = mpobj_get (d->status, "agents");
    for (uint32_t i = 0; i < mpobj_len (rows); i++) {
        agent_t *a = s_agent_add (d, s_strv (mpobj_get (mpobj_at (rows, i), "id"), id, sizeof id));
        if (a)
            a->row = mpobj_at (rows, i);
    }
    if (d->history && d->history->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < d->history->via.map.size; i++) {
            agent_t *a = s_agent_add (d, s_strv (&d->history->via.map.ptr [i].key, id, sizeof id));
            if (!a)
                continue;
            a->hist = &d->history->via.map.ptr [i].val;
            //  Every chart on the one time (or frames) axis: the span covers all.
            const msgpack_object *ts = mpobj_get (a->hist, "ts"), *fr = mpobj_get (a->hist, "frames");
            for (uint32_t k = 1; k < mpobj_len (ts); k++)
                s_span (d, s_numv (mpobj_at (ts, k), 0));
            for (uint32_t k = 0; k < mpobj_len (fr); k++)
                d->f1 = fmax (d->f1, s_numv (mpobj_at (fr, k), 0));
        }
    if (d->lineage && d->lineage->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < d->lineage->via.map.size; i++) {
            agent_t *a = s_agent_add (d, s_strv (&d->lineage->via.map.ptr [i].key, id, sizeof id));
            if (!a)
                continue;
            a->lineage = &d->lineage->via.map.ptr [i].val;
            const msgpack_object *evs = mpobj_get (a->lineage, "evolutions");
            for (uint32_t e = 0; e < mpobj_len (evs); e++)
                s_span (d, mpobj_num_or (mpobj_at (evs, e), "ts", 0));
        }
    for (uint32_t i = 0; i < mpobj_len (d->matches); i++)
        s_span (d, mpobj_num_or (mpobj_at (d->matches, i), "ts", 0));
    for (uint32_t i = 0; i < mpobj_len (d->metrics); i++)
        s_span (d, mpobj_num_or (mpobj_at (d->metrics, i), "ts", 0));
    //  Learning curves share the time axis: their points widen the span.
    d->curves = mpobj_get (root, "curves");
    for (uint32_t m = 0; d->curves && d->curves->type == MSGPACK_OBJECT_MAP
                         && m < d->curves->via.map.size; m++) {
        const msgpack_object *ags = mpobj_get (&d->curves->via.map.ptr [m].val, "agents");
        for (uint32_t a = 0; ags && ags->type == MSGPACK_OBJECT_MAP && a < ags->via.map.size; a++) {
            const msgpack_object *ser = &ags->via.map.ptr [a].val;
            for (uint32_t k = 0; ser->type == MSGPACK_OBJECT_MAP && k < ser->via.map.size; k++) {
                const msgpack_object *t = mpobj_get (&ser->via.map.ptr [k].val, "t_ms");
                const msgpack_object *fr = mpobj_get (&ser->via.map.ptr [k].val, "frames");
                if (mpobj_len (t)) {
                    s_span (d, s_numv (mpobj_at (t, 0), 0));
                    s_span (d, s_numv (mpobj_at (t, mpobj_len (t) - 1), 0));
                }
                if (mpobj_len (fr))
                    d->f1 = fmax (d->f1, s_numv (mpobj_at (fr, mpobj_len (fr) - 1), 0));
            }
        }
    }
    if (!(d->t1 >= d->t0)) {
        d->t0 = 0;
        d->t1 = 1000;
    }
}

//  ---------------------------------------------------------------------
//  A chart: an SVG with axes

typedef struct {
    FILE *f;
    double x0, x1, y0, y1;
    bool logy;
    double W, H;
    double ml, mr, mt, mb;
} plot_t;

static double
s_px (const plot_t *p, double x)
{
    return p->ml + (x - p->x0) / (p->x1 - p->x0) * (p->W - p->ml - p->mr);
}

static double
s_py (const plot_t *p, double y)
{
    double t = p->logy ? (log10 (y) - log10 (p->y0)) / (log10 (p->y1) - log10 (p->y0))
                       : (y - p->y0) / (p->y1 - p->y0);
    return p->H - p->mb - t * (p->H - p->mt - p->mb);
}

static double
s_nice_step (double range, int target)
{
    double raw = range / target;
    double mag = pow (10, floor (log10 (raw)));
    double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

//  Widen a degenerate range; round a linear one out to ticks.
static void
s_range (double *lo, double *hi, bool log_scale)
{
    if (!isfinite (*lo) || !isfinite (*hi)) {
        *lo = log_scale ? 1e-4 : 0;
        *hi = log_scale ? 1e-2 : 1;
    }
    if (log_scale) {
        if (*hi <= *lo * 1.0001) {
            *lo /= 2;
            *hi *= 2;
        }
        *lo = pow (10, floor (log10 (*lo) * 4) / 4);
        *hi = pow (10, ceil (log10 (*hi) * 4) / 4);
        return;
    }
    if (*hi - *lo < 1e-12 * fmax (1, fabs (*hi))) {
        double pad = fabs (*hi) > 0 ? fabs (*hi) * 0.05 : 0.5;
        *lo -= pad;
        *hi += pad;
    }
    double step = s_nice_step (*hi - *lo, 5);
    *lo = floor (*lo / step) * step;
    *hi = ceil (*hi / step) * step;
}

//  The y axis' ticks (values), at most max; the y range must be set.
static int
s_yticks (const plot_t *p, double *out, int max)
{
    int n = 0;
    if (p->logy) {
        double d0 = floor (log10 (p->y0) + 1e-9), d1 = ceil (log10 (p->y1) - 1e-9);
        bool minor = d1 - d0 <= 2;
        for (double dec = d0; dec <= d1; dec++)
            for (int m = 1; m <= (minor ? 5 : 1); m += (minor ? (m == 1 ? 1 : 3) : 1)) {
                double y = m * pow (10, dec);
                if (y >= p->y0 * 0.9999 && y <= p->y1 * 1.0001 && n < max)
                    out [n++] = y;
            }
    }
    else {
        double step = s_nice_step (p->y1 - p->y0, 5);
        for (double y = ceil (p->y0 / step - 1e-9) * step; y <= p->y1 + step * 1e-6 && n < max; y += step)
            out [n++] = fabs (y) < step * 1e-9 ? 0 : y;
    }
    return n;
}

static void
s_plot_begin (plot_t *p, FILE *f, double W, double H, const char *label,
              const char *xlabel, const char *ylabel)
{
    p->f = f;
    p->W = W;
    p->H = H;
    double ticks [64];
    int n_ticks = s_yticks (p, ticks, 64);
    char buf [32];
    //  Small multiples (the learning curves) get narrower margins, but the
    //  left one always holds the widest tick label (11 px text, under
    //  6.5 px a character) and the rotated axis label beside it.
    size_t widest = 0;
    for (int i = 0; i < n_ticks; i++) {
        size_t len = strlen (s_fmt (ticks [i], buf, sizeof buf));
        if (len > widest)
            widest = len;
    }
    bool small = W < 400;
    p->ml = fmax (small ? 44 : 64, 6 + 6.5 * (double) widest + (ylabel [0] ? 22 : 4));
    p->mr = small ? 8 : 16;
    p->mt = small ? 22 : 28;
    p->mb = small ? 38 : 40;
    fprintf (f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"", W, H, W, H);
    s_esc (f, label);
    fprintf (f, "\">\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", W, H);
    fprintf (f, "<text x=\"%.0f\" y=\"18\" class=\"ct\">", p->ml);
    s_esc (f, label);
    fprintf (f, "</text>\n<g class=\"axis\">\n");
    //  Horizontal grid and y ticks.
    for (int i = 0; i < n_ticks; i++)
        fprintf (f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                 p->ml, W - p->mr, s_py (p, ticks [i]), s_py (p, ticks [i]), p->ml - 6,
                 s_py (p, ticks [i]) + 4, s_fmt (ticks [i], buf, sizeof buf));
    double step = s_nice_step (p->x1 - p->x0, (int) fmax (2, (W - p->ml - p->mr) / 110));
    for (double x = ceil (p->x0 / step - 1e-9) * step; x <= p->x1 + step * 1e-6; x += step) {
        double xx = fabs (x) < step * 1e-9 ? 0 : x;
        fprintf (f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"tick\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                 s_px (p, xx), s_px (p, xx), H - p->mb, H - p->mb + 5, s_px (p, xx),
                 H - p->mb + 18, s_fmt (xx, buf, sizeof buf));
    }
    fprintf (f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"frame\"/>\n",
             p->ml, p->mt, W - p->ml - p->mr, H - p->mt - p->mb);
    fprintf (f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", p->ml + (W - p->ml - p->mr) / 2,
             H - 6);
    s_esc (f, xlabel);
    fprintf (f, "</text><text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\">",
             p->mt + (H - p->mt - p->mb) / 2);
    s_esc (f, ylabel);
    fprintf (f, "</text>\n</g>\n");
}

static void
s_plot_end (plot_t *p)
{
    fprintf (p->f, "</svg>\n");
}

//  Open a per-agent group.
static void
s_group (FILE *f, const agent_t *a, const char *kind)
{
    fprintf (f, "<g data-agent=\"");
    s_esc (f, a->id);
    fprintf (f, "\" class=\"%s\">", kind);
}

//  A legend for the agents, as HTML.
static void
s_legend (FILE *f, const data_t *d)
{
    fprintf (f, "<div class=\"legend\">");
    for (int i = 0; i < d->n_agents; i++) {
        fprintf (f, "<span><i style=\"background:%s\"></i>", d->agents [i].color);
        s_esc (f, d->agents [i].id);
        fprintf (f, "</span>");
    }
    fprintf (f, "</div>\n");
}

//  ---------------------------------------------------------------------
//  Sections

static void
s_summary (FILE *f, const data_t *d)
{
    char buf [64], rec [64] = "";
    const msgpack_object *ro = mpobj_get (d->status, "recommended");
    if (ro && ro->type != MSGPACK_OBJECT_NIL)
        s_strv (ro, rec, sizeof rec);
    fprintf (f, "<p>Recommended agent: <b>");
    s_esc (f, rec [0] ? rec : "none yet (no games between agents)");
    fprintf (f, "</b> (the highest weight in the Nash equilibrium of the meta-game over the payoff "
                "matrix, ties by Nash-averaged score; see docs/evaluation.md)</p>\n");
    fprintf (f, "<table class=\"t\"><tr><th>agent</th><th>rating</th><th>Nash weight</th>"
                "<th>Nash-averaged score</th><th>matches</th><th>frames</th>"
                "<th>generation</th><th>parent</th><th>hyperparameters</th></tr>\n");
    for (int i = 0; i < d->n_agents; i++) {
        const agent_t *a = &d->agents [i];
        fprintf (f, "<tr data-agent=\"");
        s_esc (f, a->id);
        fprintf (f, "\"><td><i class=\"sw\" style=\"background:%s\"></i>", a->color);
        s_esc (f, a->id);
        if (rec [0] && !strcmp (a->id, rec))
            fprintf (f, " &#9733;");
        fprintf (f, "</td><td>%.3f</td><td>%.3f</td><td>%+.3f</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>",
                 mpobj_num_or (a->row, "rating", NAN), mpobj_num_or (a->row, "nash_weight", NAN),
                 mpobj_num_or (a->row, "nash_score", NAN), mpobj_num_or (a->row, "matches", 0),
                 mpobj_num_or (a->row, "frames", 0), mpobj_num_or (a->row, "generation", 0));
        const msgpack_object *parent = mpobj_get (a->row, "parent");
        s_esc (f, parent && parent->type != MSGPACK_OBJECT_NIL ? s_strv (parent, buf, sizeof buf) : "-");
        fprintf (f, "</td><td class=\"hp\">");
        const msgpack_object *hp = mpobj_get (a->row, "hparams");
        for (uint32_t k = 0; hp && hp->type == MSGPACK_OBJECT_MAP && k < hp->via.map.size; k++) {
            char name [64];
            s_strv (&hp->via.map.ptr [k].key, name, sizeof name);
            s_esc (f, name);
            fprintf (f, "=%s ", s_fmt (s_numv (&hp->via.map.ptr [k].val, NAN), buf, sizeof buf));
        }
        fprintf (f, "</td></tr>\n");
    }
    fprintf (f, "</table>\n");
}

//  Elo: each agent's rating after each history entry, against one x axis
//  shared by every agent: wall-clock time (history "ts") or the
//  population's total frames (history "frames") at that entry. Without
//  either (an old bundle), the entry index.
typedef enum { X_TIME, X_FRAMES, X_INDEX } xaxis_t;

static double
s_elo_x (const data_t *d, const msgpack_object *hist, uint32_t k, xaxis_t by)
{
    if (by == X_TIME)
        return (s_numv (mpobj_at (mpobj_get (hist, "ts"), k), d->t0) - d->t0) / 1000;
    if (by == X_FRAMES)
        return s_numv (mpobj_at (mpobj_get (hist, "frames"), k), 0);
    return k;
}

static void
s_elo_chart (FILE *f, const data_t *d, xaxis_t by)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < d->n_agents; i++) {
        const msgpack_object *r = mpobj_get (d->agents [i].hist, "rating");
        for (uint32_t k = 0; k < mpobj_len (r); k++) {
            double y = s_numv (mpobj_at (r, k), NAN);
            double x = s_elo_x (d, d->agents [i].hist, k, by);
            //  Entry 0 is the placeholder before any result: frames 0.
            if (!isfinite (y) || (by == X_FRAMES && k == 0))
                continue;
            y0 = fmin (y0, y);
            y1 = fmax (y1, y);
            x0 = fmin (x0, x);
            x1 = fmax (x1, x);
        }
    }
    if (!isfinite (x0)) {
        fprintf (f, "<p class=\"note\">No rated results yet.</p>\n");
        return;
    }
    plot_t p = { .logy = false };
    s_range (&y0, &y1, false);
    p.x0 = x0;
    p.x1 = x1 > x0 ? x1 : x0 + 1;
    if (by != X_INDEX) {
        //  From 0 over the whole run, as the learning curves are drawn.
        p.x0 = 0;
        p.x1 = fmax (p.x1, by == X_TIME ? (d->t1 - d->t0) / 1000 : d->f1);
    }
    p.y0 = y0;
    p.y1 = y1;
    s_plot_begin (&p, f, 1200, 380, "Elo rating of every agent",
                  by == X_TIME ? "seconds since the first recorded event"
                  : by == X_FRAMES ? "frames trained by the whole population" : "history entry",
                  "Elo rating");
    for (int i = 0; i < d->n_agents; i++) {
        const agent_t *a = &d->agents [i];
        const msgpack_object *r = mpobj_get (a->hist, "rating");
        uint32_t n = mpobj_len (r);
        s_group (f, a, "elo");
        fprintf (f, "<title>");
        s_esc (f, a->id);
        fprintf (f, ": %u entries, rating now %.3f</title>", n ? n - 1 : 0,
                 n ? s_numv (mpobj_at (r, n - 1), NAN) : NAN);
        fprintf (f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", a->color);
        uint32_t stride = n > REPORT_MAX_POINTS ? (n + REPORT_MAX_POINTS - 1) / REPORT_MAX_POINTS : 1;
        for (uint32_t k = by == X_FRAMES ? 1 : 0; k < n; k++) {
            if (k % stride != 0 && k != n - 1)
                continue;
            double y = s_numv (mpobj_at (r, k), NAN);
            if (isfinite (y))
                fprintf (f, "%.1f,%.1f ", s_px (&p, s_elo_x (d, a->hist, k, by)), s_py (&p, y));
        }
        fprintf (f, "\"/></g>\n");
    }
    s_plot_end (&p);
}

static void
s_elo (FILE *f, const data_t *d)
{
    bool shared = d->n_agents > 0;
    for (int i = 0; i < d->n_agents; i++) {
        uint32_t n = mpobj_len (mpobj_get (d->agents [i].hist, "rating"));
        if (n && (mpobj_len (mpobj_get (d->agents [i].hist, "ts")) != n
              ||  mpobj_len (mpobj_get (d->agents [i].hist, "frames")) != n))
            shared = false;
    }
    fprintf (f, "<h2 id=\"elo\">Elo rating over time</h2>\n");
    if (!shared) {
        s_elo_chart (f, d, X_INDEX);
        s_legend (f, d);
        return;
    }
    //  Both x axes are drawn; the radio buttons at the top show one (CSS
    //  only, no script), here and in the learning curves.
    fprintf (f, "<div class=\"xsel\"><p class=\"note\">One point per result; older results are merged "
                "several to a point, so a week-long run stays small. The x axis is the same for every "
                "agent and for the learning curves below (the choice at the top of the page).</p>\n"
                "<div class=\"byt\">\n");
    s_elo_chart (f, d, X_TIME);
    fprintf (f, "</div>\n<div class=\"byf\">\n");
    s_elo_chart (f, d, X_FRAMES);
    fprintf (f, "</div>\n</div>\n");
    s_legend (f, d);
}

//  Hyperparameter trajectories: history "hyperparameters" {name: [value
//  at creation, after evolution 1, ...]} against history "step" (the
//  agent's frames at those points); the agent's current frames end each
//  line. Evolutions are circles with the donor in the hover text.
static void
s_hparams (FILE *f, const data_t *d)
{
    fprintf (f, "<h2 id=\"hparams\">Hyperparameter trajectories</h2>\n"
                "<p class=\"note\">Each line is one agent's value against the frames it has trained; "
                "a circle marks an evolution (inherited weights and hyperparameters, then mutation).</p>\n");
    //  Names: the union over agents, in first-seen order.
    char names [32][64];
    int n_names = 0;
    for (int i = 0; i < d->n_agents; i++) {
        const msgpack_object *hp = mpobj_get (d->agents [i].hist, "hyperparameters");
        for (uint32_t k = 0; hp && hp->type == MSGPACK_OBJECT_MAP && k < hp->via.map.size; k++) {
            char name [64];
            s_strv (&hp->via.map.ptr [k].key, name, sizeof name);
            bool seen = false;
            for (int j = 0; j < n_names; j++)
                seen = seen || strcmp (names [j], name) == 0;
            if (!seen && n_names < 32)
                snprintf (names [n_names++], sizeof names [0], "%s", name);
        }
    }
    if (n_names == 0) {
        fprintf (f, "<p class=\"note\">No hyperparameter history.</p>\n");
        return;
    }
    char constant [1024] = "";
    fprintf (f, "<div class=\"grid2\">\n");
    for (int h = 0; h < n_names; h++) {
        double x0 = 0, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        for (int i = 0; i < d->n_agents; i++) {
            const agent_t *a = &d->agents [i];
            const msgpack_object *v = mpobj_get (mpobj_get (a->hist, "hyperparameters"), names [h]);
            const msgpack_object *st = mpobj_get (a->hist, "step");
            for (uint32_t k = 0; k < mpobj_len (v); k++) {
                double y = s_numv (mpobj_at (v, k), NAN);
                if (!isfinite (y))
                    continue;
                y0 = fmin (y0, y);
                y1 = fmax (y1, y);
                x1 = fmax (x1, mpobj_len (st) == mpobj_len (v) ? s_numv (mpobj_at (st, k), 0) : k);
            }
            x1 = fmax (x1, mpobj_num_or (a->row, "frames", 0));
        }
        if (!isfinite (y0))
            continue;
        if (y1 == y0) {
            //  Never changed for anyone: a line in the note, not a chart.
            char buf [32], item [128];
            snprintf (item, sizeof item, "%s%.60s = %s", *constant ? ", " : "", names [h],
                      s_fmt (y0, buf, sizeof buf));
            if (strlen (constant) + strlen (item) < sizeof constant)
                strcat (constant, item);
            continue;
        }
        bool by_frames = true;
        for (int i = 0; i < d->n_agents; i++) {
            const msgpack_object *v = mpobj_get (mpobj_get (d->agents [i].hist, "hyperparameters"), names [h]);
            if (mpobj_len (v) && mpobj_len (mpobj_get (d->agents [i].hist, "step")) != mpobj_len (v))
                by_frames = false;
        }
        plot_t p = { .logy = y0 > 0 && y1 / y0 > 20 };
        s_range (&y0, &y1, p.logy);
        p.x0 = x0;
        p.x1 = x1 > x0 ? x1 : x0 + 1;
        p.y0 = y0;
        p.y1 = y1;
        s_plot_begin (&p, f, 580, 300, names [h], by_frames ? "frames trained" : "history entry",
                      p.logy ? "value (log scale)" : "value");
        for (int i = 0; i < d->n_agents; i++) {
            const agent_t *a = &d->agents [i];
            const msgpack_object *v = mpobj_get (mpobj_get (a->hist, "hyperparameters"), names [h]);
            const msgpack_object *st = mpobj_get (a->hist, "step");
            const msgpack_object *evs = mpobj_get (a->lineage, "evolutions");
            uint32_t n = mpobj_len (v);
            if (n == 0)
                continue;
            s_group (f, a, "hparam");
            fprintf (f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", a->color);
            double px = 0, py = NAN;
            for (uint32_t k = 0; k < n; k++) {
                double x = by_frames ? s_numv (mpobj_at (st, k), 0) : k;
                double y = s_numv (mpobj_at (v, k), NAN);
                if (!isfinite (y))
                    continue;
                if (isfinite (py))
                    fprintf (f, "%.1f,%.1f ", s_px (&p, x), s_py (&p, py));
                fprintf (f, "%.1f,%.1f ", s_px (&p, x), s_py (&p, y));
                px = x;
                py = y;
            }
            double xe = by_frames ? fmax (px, mpobj_num_or (a->row, "frames", px)) : px;
            if (isfinite (py))
                fprintf (f, "%.1f,%.1f", s_px (&p, xe), s_py (&p, py));
            fprintf (f, "\"/>");
            for (uint32_t k = 1; k < n; k++) {
                double x = by_frames ? s_numv (mpobj_at (st, k), 0) : k;
                double y = s_numv (mpobj_at (v, k), NAN);
                if (!isfinite (y))
                    continue;
                //  Lineage lists evolutions newest first; entry k is evolution k.
                const msgpack_object *ev = mpobj_len (evs) >= k ? mpobj_at (evs, mpobj_len (evs) - k) : NULL;
                char donor [64], buf [32];
                s_strv (mpobj_get (ev, "donor"), donor, sizeof donor);
                fprintf (f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" class=\"evo\"><title>",
                         s_px (&p, x), s_py (&p, y), a->color);
                s_esc (f, a->id);
                fprintf (f, " evolution %u: %s = %s", k, names [h], s_fmt (y, buf, sizeof buf));
                if (*donor) {
                    fprintf (f, ", weights from ");
                    s_esc (f, donor);
                }
                fprintf (f, "</title></circle>");
            }
            fprintf (f, "</g>\n");
        }
        s_plot_end (&p);
    }
    fprintf (f, "</div>\n");
    s_legend (f, d);
    if (*constant) {
        fprintf (f, "<p class=\"note\">The same for every agent throughout: ");
        s_esc (f, constant);
        fprintf (f, ".</p>\n");
    }
}

//  Lineage: one row per agent against wall-clock time; each evolution is
//  an arrow from the donor's row to the agent's row at the moment it
//  happened, labelled with the agent's new generation.
//  Learning curves: one row per agent, one chart per training statistic,
//  every chart on the Elo chart's time axis (seconds since the first
//  recorded event, the same span). Raw points are drawn faint and, with
//  smoothing, an exponential moving average over them (TensorBoard's,
//  debiased) solid. Each evolution of the agent is a dashed vertical line
//  on all of its charts.

//  floor: values below it are drawn on it (explained variance of a
//  nearly constant return is hugely negative and says only "below 0").
static const struct { const char *metric, *title; double floor; } s_learn [] = {
    { "game_return", "game return per episode", -INFINITY },
    { "entropy", "policy entropy (nats)", -INFINITY },
    { "approx_kl", "approx KL (nats)", -INFINITY },
    { "value_loss", "value loss", -INFINITY },
    { "explained_variance", "explained variance", -1 },
};
#define LEARN_N (sizeof s_learn / sizeof s_learn [0])

//  The series of one agent and metric from the collected curves replies.
static const msgpack_object *
s_learn_series (const data_t *d, const char *metric, const char *agent)
{
    return mpobj_get (mpobj_get (mpobj_get (mpobj_get (d->curves, metric), "agents"), agent), metric);
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  y range of a metric over every agent: the 2nd to 98th percentile of
//  the points, so one early spike (a value loss of 50 at the start, an
//  explained variance of -300) does not flatten everyone's curve. Points
//  beyond are drawn at the edge.
static bool
s_learn_range (const data_t *d, const char *metric, double floor, double *lo, double *hi)
{
    size_t n = 0, cap = 0;
    double *v = NULL;
    for (int i = 0; i < d->n_agents; i++) {
        const msgpack_object *vals = mpobj_get (s_learn_series (d, metric, d->agents [i].id), "value");
        for (uint32_t k = 0; k < mpobj_len (vals); k++) {
            double y = fmax (s_numv (mpobj_at (vals, k), NAN), floor);
            if (!isfinite (y))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                double *grown = realloc (v, cap * sizeof *v);
                if (!grown) {
                    free (v);
                    return false;
                }
                v = grown;
            }
            v [n++] = y;
        }
    }
    if (n == 0) {
        free (v);
        return false;
    }
    qsort (v, n, sizeof *v, s_cmp_double);
    bool nonneg = v [0] >= 0;
    *lo = v [(size_t) (0.02 * (double) (n - 1))];
    *hi = v [(size_t) (0.98 * (double) (n - 1) + 0.5)];
    free (v);
    double pad = (*hi - *lo) * 0.05;
    *lo -= pad;
    *hi += pad;
    if (nonneg && *lo < 0)
        *lo = 0;        // entropy, KL, losses: no axis below what cannot be

    s_range (lo, hi, false);
    return true;
}

static double
s_clampy (const plot_t *p, double y)
{
    return s_py (p, y < p->y0 ? p->y0 : y > p->y1 ? p->y1 : y);
}

//  The population's frames at wall-clock time ts (ms), interpolated
//  between the points of a series (t_ms and frames both grow): where an
//  evolution sits on the frames axis.
static double
s_frames_at (const msgpack_object *ser, double ts)
{
    const msgpack_object *t = mpobj_get (ser, "t_ms"), *fr = mpobj_get (ser, "frames");
    uint32_t n = mpobj_len (t);
    if (n == 0 || mpobj_len (fr) != n)
        return NAN;
    double pt = s_numv (mpobj_at (t, 0), 0), pf = s_numv (mpobj_at (fr, 0), 0);
    if (ts <= pt)
        return pf * (ts > 0 && pt > 0 ? 1 : 0);
    for (uint32_t k = 1; k < n; k++) {
        double ct = s_numv (mpobj_at (t, k), 0), cf = s_numv (mpobj_at (fr, k), 0);
        if (ts <= ct)
            return ct > pt ? pf + (cf - pf) * (ts - pt) / (ct - pt) : cf;
        pt = ct;
        pf = cf;
    }
    return pf;
}

//  One agent's chart of one metric against time or population frames.
static void
s_learn_chart (FILE *f, const data_t *d, const agent_t *a, int m, double lo, double hi, xaxis_t by)
{
    const msgpack_object *ser = s_learn_series (d, s_learn [m].metric, a->id);
    const msgpack_object *t = mpobj_get (ser, by == X_TIME ? "t_ms" : "frames");
    const msgpack_object *v = mpobj_get (ser, "value");
    uint32_t n = mpobj_len (v);
    double off = by == X_TIME ? d->t0 : 0, scale = by == X_TIME ? 1000 : 1;
    plot_t p = { .logy = false, .x0 = 0, .x1 = by == X_TIME ? (d->t1 - d->t0) / 1000 : d->f1,
                 .y0 = lo, .y1 = hi };
    if (!(p.x1 > 0))
        p.x1 = 1;
    s_plot_begin (&p, f, 232, 160, a->id, by == X_TIME ? "seconds" : "population frames", "");
    //  Evolutions first, under the curve.
    const msgpack_object *evs = mpobj_get (a->lineage, "evolutions");
    for (uint32_t e = 0; e < mpobj_len (evs); e++) {
        double ts = mpobj_num_or (mpobj_at (evs, e), "ts", NAN);
        double at = by == X_TIME ? (ts - d->t0) / 1000 : s_frames_at (ser, ts);
        if (!isfinite (at))
            continue;
        char donor [64], buf [32];
        double x = s_px (&p, at);
        fprintf (f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"evo\">"
                    "<title>evolution at %s%s: weights from ", x, x, p.mt, p.H - p.mb,
                 s_fmt (at, buf, sizeof buf), by == X_TIME ? " s" : " frames");
        s_esc (f, s_strv (mpobj_get (mpobj_at (evs, e), "donor"), donor, sizeof donor));
        fprintf (f, "</title></line>\n");
    }
    fprintf (f, "<g data-agent=\"");
    s_esc (f, a->id);
    fprintf (f, "\" data-metric=\"%s\" data-x=\"%s\" class=\"curve\"><title>", s_learn [m].metric,
             by == X_TIME ? "time" : "frames");
    s_esc (f, a->id);
    fprintf (f, " %s: %u points</title>", s_learn [m].metric, n);
    //  Raw (faint when a smoothed line goes over it), then smoothed.
    for (int pass = 0; pass < (d->smooth > 0 ? 2 : 1); pass++) {
        fprintf (f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"",
                 a->color, pass ? "1.8" : "1.1",
                 d->smooth > 0 && pass == 0 ? " stroke-opacity=\"0.3\"" : "");
        double ema = 0, wsum = 0;
        uint32_t stride = n > REPORT_MAX_POINTS ? (n + REPORT_MAX_POINTS - 1) / REPORT_MAX_POINTS : 1;
        for (uint32_t k = 0; k < n; k++) {
            double y = s_numv (mpobj_at (v, k), NAN), x = (s_numv (mpobj_at (t, k), off) - off) / scale;
            if (!isfinite (y))
                continue;
            if (pass) {
                ema = d->smooth * ema + (1 - d->smooth) * y;
                wsum = d->smooth * wsum + (1 - d->smooth);
                y = ema / wsum;
            }
            if (k % stride == 0 || k == n - 1)
                fprintf (f, "%.1f,%.1f ", s_px (&p, x), s_clampy (&p, y));
        }
        fprintf (f, "\"/>");
    }
    fprintf (f, "</g>\n");
    s_plot_end (&p);
}

static void
s_learning (FILE *f, const data_t *d)
{
    fprintf (f, "<h2 id=\"learning\">Learning curves</h2>\n");
    double lo [LEARN_N], hi [LEARN_N];
    bool any = false, have [LEARN_N];
    for (size_t m = 0; m < LEARN_N; m++)
        any |= have [m] = s_learn_range (d, s_learn [m].metric, s_learn [m].floor, &lo [m], &hi [m]);
    if (!any) {
        fprintf (f, "<p class=\"note\">No training statistics yet (no result applied, or "
                    "workers that do not send them).</p>\n");
        return;
    }
    fprintf (f, "<p class=\"note\">One point per result the agent trained in (older points "
                "merged, pbtd keeps a bounded series): mean game return per episode, policy "
                "entropy, approximate KL between the policy before and after the update, value "
                "loss and explained variance. The Elo chart's x axis (time or the population's frames, "
                "chosen at the top); each column "
                "shares its y axis (2nd&#8211;98th percentile of all points; beyond it, points "
                "sit on the edge). Dashed lines: the agent's evolutions (hover for the donor; on the "
                "frames axis placed by interpolating the agent's points in time). ");
    if (d->smooth > 0)
        fprintf (f, "Faint: the points; solid: their exponential moving average (weight %.2f, "
                    "<code>--smooth</code>).", d->smooth);
    fprintf (f, " Explained variance below &#8722;1 is drawn at &#8722;1.</p>\n<div class=\"learn\">\n"
                "<div class=\"lrow lhead\">");
    for (size_t m = 0; m < LEARN_N; m++)
        if (have [m])
            fprintf (f, "<span>%s</span>", s_learn [m].title);
    fprintf (f, "</div>\n");
    for (int by = X_TIME; by <= X_FRAMES; by++) {
        fprintf (f, "<div class=\"%s\">\n", by == X_TIME ? "byt" : "byf");
        for (int i = 0; i < d->n_agents; i++) {
            fprintf (f, "<div class=\"lrow\" data-agent=\"");
            s_esc (f, d->agents [i].id);
            fprintf (f, "\" data-x=\"%s\">", by == X_TIME ? "time" : "frames");
            for (size_t m = 0; m < LEARN_N; m++)
                if (have [m])
                    s_learn_chart (f, d, &d->agents [i], (int) m, lo [m], hi [m], (xaxis_t) by);
            fprintf (f, "</div>\n");
        }
        fprintf (f, "</div>\n");
    }
    fprintf (f, "</div>\n");
}

static void
s_lineage (FILE *f, const data_t *d)
{
    fprintf (f, "<h2 id=\"lineage\">Lineage</h2>\n");
    int n_ev = 0;
    for (int i = 0; i < d->n_agents; i++)
        n_ev += (int) mpobj_len (mpobj_get (d->agents [i].lineage, "evolutions"));
    if (d->n_agents == 0) {
        fprintf (f, "<p class=\"note\">No agents.</p>\n");
        return;
    }
    fprintf (f, "<p class=\"note\">%d evolutions. An arrow from row A to row B at time t: at t, "
                "B took A's weights (and hyperparameters by crossover, then mutated them).</p>\n",
             n_ev);
    double row_h = d->n_agents > 24 ? 14 : 26;
    plot_t p = { .logy = false };
    p.x0 = 0;
    p.x1 = fmax (1, (d->t1 - d->t0) / 1000);
    p.y0 = -0.5;
    p.y1 = d->n_agents - 0.5;
    p.f = f;
    p.W = 1200;
    p.ml = 80;
    p.mr = 16;
    p.mt = 28;
    p.mb = 40;
    p.H = p.mt + p.mb + row_h * d->n_agents;
    fprintf (f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"lineage\">\n"
                "<defs><marker id=\"arr\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" "
                "markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" "
                "fill=\"#444\"/></marker></defs>\n"
                "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n"
                "<text x=\"%.0f\" y=\"18\" class=\"ct\">Who inherited from whom, and when</text>\n",
             p.W, p.H, p.W, p.H, p.W, p.H, p.ml);
    char buf [32];
    double step = s_nice_step (p.x1 - p.x0, 10);
    fprintf (f, "<g class=\"axis\">");
    for (double x = 0; x <= p.x1 + step * 1e-6; x += step)
        fprintf (f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                 s_px (&p, x), s_px (&p, x), p.mt, p.H - p.mb, s_px (&p, x), p.H - p.mb + 16,
                 s_fmt (x, buf, sizeof buf));
    fprintf (f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">seconds since the first recorded "
                "event</text></g>\n", p.ml + (p.W - p.ml - p.mr) / 2, p.H - 6);
    //  Row of agent i at y = i (top to bottom).
    #define ROW_Y(i) (p.mt + row_h * ((i) + 0.5))
    for (int i = 0; i < d->n_agents; i++) {
        const agent_t *a = &d->agents [i];
        s_group (f, a, "lineage-row");
        fprintf (f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"3\" opacity=\"0.55\"/><text x=\"%.1f\" y=\"%.1f\" "
                    "text-anchor=\"end\" fill=\"%s\">", p.ml, p.W - p.mr, ROW_Y (i), ROW_Y (i),
                 a->color, p.ml - 8, ROW_Y (i) + 4, a->color);
        s_esc (f, a->id);
        fprintf (f, "</text></g>\n");
    }
    for (int i = 0; i < d->n_agents; i++) {
        const agent_t *a = &d->agents [i];
        const msgpack_object *evs = mpobj_get (a->lineage, "evolutions");
        if (mpobj_len (evs) == 0)
            continue;
        s_group (f, a, "lineage");
        for (uint32_t e = 0; e < mpobj_len (evs); e++) {
            const msgpack_object *ev = mpobj_at (evs, e);
            char donor [64];
            s_strv (mpobj_get (ev, "donor"), donor, sizeof donor);
            int j = s_agent_index (d, donor);
            double x = s_px (&p, (mpobj_num_or (ev, "ts", d->t0) - d->t0) / 1000);
            double gen = mpobj_num_or (ev, "generation", NAN);
            fprintf (f, "<g><title>");
            s_esc (f, a->id);
            fprintf (f, " generation %.0f from ", gen);
            s_esc (f, donor);
            fprintf (f, " at %.1f s, %.0f frames</title>", (mpobj_num_or (ev, "ts", d->t0) - d->t0) / 1000,
                     mpobj_num_or (ev, "frames", 0));
            if (j >= 0 && j != i)
                fprintf (f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" "
                            "stroke-width=\"1.2\" marker-end=\"url(#arr)\"/>",
                         x, x, ROW_Y (j), ROW_Y (i) + (j < i ? -5 : 5));
            fprintf (f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\" stroke=\"#222\"/>",
                     x, ROW_Y (i), a->color);
            fprintf (f, "</g>");
        }
        fprintf (f, "</g>\n");
    }
    #undef ROW_Y
    fprintf (f, "</svg>\n");
    //  The same as text: each agent's evolutions, oldest first.
    fprintf (f, "<table class=\"t\"><tr><th>agent</th><th>evolutions, oldest first "
                "(donor @ seconds, generation)</th></tr>\n");
    for (int i = 0; i < d->n_agents; i++) {
        const agent_t *a = &d->agents [i];
        const msgpack_object *evs = mpobj_get (a->lineage, "evolutions");
        fprintf (f, "<tr data-agent=\"");
        s_esc (f, a->id);
        fprintf (f, "\"><td>");
        s_esc (f, a->id);
        fprintf (f, "</td><td class=\"l\">");
        if (mpobj_len (evs) == 0)
            fprintf (f, "initial weights");
        for (uint32_t e = mpobj_len (evs); e-- > 0;) {
            const msgpack_object *ev = mpobj_at (evs, e);
            char donor [64];
            fprintf (f, "%s&#8592; ", e + 1 < mpobj_len (evs) ? " " : "");
            s_esc (f, s_strv (mpobj_get (ev, "donor"), donor, sizeof donor));
            fprintf (f, " @%.1f s (g%.0f)", (mpobj_num_or (ev, "ts", d->t0) - d->t0) / 1000,
                     mpobj_num_or (ev, "generation", NAN));
        }
        fprintf (f, "</td></tr>\n");
    }
    fprintf (f, "</table>\n");
}

//  Win rates between the current agents over the recent matches: team
//  scores decide each episode; every (row agent, column agent) pair on
//  opposite teams counts it.
static void
s_matrix (FILE *f, const data_t *d)
{
    int n = d->n_agents;
    fprintf (f, "<h2 id=\"winrate\">Win-rate matrix</h2>\n");
    if (n == 0)
        return;
    double *w = calloc ((size_t) n * n, sizeof (double));
    double *dr = calloc ((size_t) n * n, sizeof (double));
    double *g = calloc ((size_t) n * n, sizeof (double));
    if (!w || !dr || !g)
        goto cleanup;
    //  pbtd's payoff counters when the bundle has them (the recent window
    //  of every pairing, full whatever the assignment size), else the
    //  recent matches as older bundles carried them.
    const msgpack_object *cells = mpobj_get (d->payoff, "cells");
    uint32_t n_cells = mpobj_len (cells), n_frozen = 0;
    for (uint32_t k = 0; k < n_cells; k++) {
        const msgpack_object *cell = mpobj_at (cells, k);
        char a [64], b [64];
        if (mpobj_num_or (cell, "version", 0) != 0 || mpobj_num_or (cell, "opp_version", 0) != 0) {
            n_frozen++;
            continue;           // a frozen snapshot's pairing: in pbtctl payoff
        }
        int i = s_agent_index (d, s_strv (mpobj_get (cell, "agent"), a, sizeof a));
        int j = s_agent_index (d, s_strv (mpobj_get (cell, "opp"), b, sizeof b));
        const msgpack_object *rc = mpobj_get (cell, "recent");
        if (i < 0 || j < 0 || i == j)
            continue;
        size_t c = (size_t) i * n + j;
        g [c] = mpobj_num_or (rc, "episodes", 0);
        w [c] = mpobj_num_or (rc, "wins", 0);
        dr [c] = mpobj_num_or (rc, "draws", 0);
    }
    uint32_t n_matches = cells ? 0 : mpobj_len (d->matches);
    for (uint32_t m = 0; m < n_matches; m++) {
        const msgpack_object *seats = mpobj_get (mpobj_at (d->matches, m), "seats");
        uint32_t ns = mpobj_len (seats);
        double team_score [2] = { 0, 0 };
        int idx [16], team [16];
        if (ns > 16)
            continue;
        for (uint32_t s = 0; s < ns; s++) {
            const msgpack_object *seat = mpobj_at (seats, s);
            char id [64];
            idx [s] = s_agent_index (d, s_strv (mpobj_get (seat, "agent"), id, sizeof id));
            team [s] = s_isnum (mpobj_get (seat, "team")) ? (int) mpobj_num_or (seat, "team", 0)
                                                      : (int) (s >= ns / 2);
            team [s] = team [s] ? 1 : 0;
            team_score [team [s]] += mpobj_num_or (seat, "score", 0);
        }
        for (uint32_t s = 0; s < ns; s++)
            for (uint32_t t = 0; t < ns; t++) {
                if (team [s] == team [t] || idx [s] < 0 || idx [t] < 0 || idx [s] == idx [t])
                    continue;
                size_t c = (size_t) idx [s] * n + idx [t];
                g [c]++;
                if (team_score [team [s]] > team_score [team [t]])
                    w [c]++;
                else
                if (team_score [team [s]] == team_score [team [t]])
                    dr [c]++;
            }
    }
    if (cells)
        fprintf (f, "<p class=\"note\">Row agent's share of wins against the column agent over "
                    "their recent episodes: pbtd's payoff counters keep, for every pairing, its "
                    "last %.0f to %.0f episodes (and the whole run; <code>pbtctl payoff</code>, which "
                    "also has the %u pairings with frozen snapshots). Draws count as neither; hover "
                    "for counts. Blue: the row agent wins more often than it loses; red: less.</p>\n",
                 mpobj_num_or (d->payoff, "window", 0), 2 * mpobj_num_or (d->payoff, "window", 0),
                 n_frozen);
    else
        fprintf (f, "<p class=\"note\">Row agent's wins over the column agent in the last %u recorded "
                    "episodes (draws count as neither; hover for counts). Blue: the row agent wins "
                    "more often than it loses; red: less.</p>\n", n_matches);
    fprintf (f, "<table class=\"m\"><tr><th>row vs column</th>");
    for (int j = 0; j < n; j++) {
        fprintf (f, "<th>");
        s_esc (f, d->agents [j].id);
        fprintf (f, "</th>");
    }
    fprintf (f, "</tr>\n");
    for (int i = 0; i < n; i++) {
        fprintf (f, "<tr data-agent=\"");
        s_esc (f, d->agents [i].id);
        fprintf (f, "\"><th>");
        s_esc (f, d->agents [i].id);
        fprintf (f, "</th>");
        for (int j = 0; j < n; j++) {
            size_t c = (size_t) i * n + j;
            if (i == j || g [c] == 0) {
                fprintf (f, "<td class=\"na\">%s</td>", i == j ? "&#8212;" : "");
                continue;
            }
            double losses = g [c] - w [c] - dr [c];
            //  Colour by the share of decided episodes won: 0.5 is white.
            double decided = w [c] + losses;
            double s = decided > 0 ? w [c] / decided : 0.5;
            int r = s < 0.5 ? 255 : (int) (255 - (s - 0.5) * 2 * 170);
            int gg = (int) (255 - fabs (s - 0.5) * 2 * 150);
            int b = s > 0.5 ? 255 : (int) (255 - (0.5 - s) * 2 * 170);
            fprintf (f, "<td style=\"background:rgb(%d,%d,%d)\" title=\"W %.0f, D %.0f, L %.0f\">"
                        "%.2f<small> n=%.0f</small></td>", r, gg, b, w [c], dr [c], losses,
                     w [c] / g [c], g [c]);
        }
        fprintf (f, "</tr>\n");
    }
    fprintf (f, "</table>\n");
cleanup:
    free (w);
    free (dr);
    free (g);
}

//  Throughput: from pbtd's metrics rows (cumulative samples) when it
//  serves them, else episodes per second from the recent match rows.
static void
s_throughput (FILE *f, const data_t *d)
{
    fprintf (f, "<h2 id=\"throughput\">Throughput over time</h2>\n");
    uint32_t n = mpobj_len (d->metrics);
    double *x = NULL, *y = NULL;
    int k = 0;
    const char *what = "samples per second";
    uint32_t n_rate = mpobj_len (d->rate);
    if (n_rate >= 2) {
        //  The population series: one point per 10 s, older ones merged.
        x = calloc (n_rate, sizeof (double));
        y = calloc (n_rate, sizeof (double));
        for (uint32_t i = 0; x && y && i < n_rate; i++) {
            const msgpack_object *pt = mpobj_at (d->rate, i);
            x [k] = (mpobj_num_or (pt, "ts", 0) - d->t0) / 1000;
            y [k++] = mpobj_num_or (pt, "mean", 0);
        }
    }
    else
    if (n >= 2) {
        x = calloc (n, sizeof (double));
        y = calloc (n, sizeof (double));
        for (uint32_t i = 1; x && y && i < n; i++) {
            const msgpack_object *a = mpobj_at (d->metrics, i - 1), *b = mpobj_at (d->metrics, i);
            double dt = (mpobj_num_or (b, "ts", 0) - mpobj_num_or (a, "ts", 0)) / 1000;
            double ds = mpobj_num_or (b, "samples", 0) - mpobj_num_or (a, "samples", 0);
            //  A counter that went back (a restart) gives no rate.
            if (dt <= 0 || ds < 0)
                continue;
            x [k] = (mpobj_num_or (b, "ts", 0) - d->t0) / 1000;
            y [k++] = ds / dt;
        }
    }
    else
    if (mpobj_len (d->matches) >= 2) {
        //  Matches come newest first; bin their times.
        what = "episodes recorded per second (from recent matches)";
        double lo = INFINITY, hi = -INFINITY;
        for (uint32_t i = 0; i < mpobj_len (d->matches); i++) {
            double ts = mpobj_num_or (mpobj_at (d->matches, i), "ts", NAN);
            if (isfinite (ts)) {
                lo = fmin (lo, ts);
                hi = fmax (hi, ts);
            }
        }
        int bins = 24;
        x = calloc ((size_t) bins, sizeof (double));
        y = calloc ((size_t) bins, sizeof (double));
        if (x && y && hi > lo) {
            double width = (hi - lo) / bins;
            for (uint32_t i = 0; i < mpobj_len (d->matches); i++) {
                double ts = mpobj_num_or (mpobj_at (d->matches, i), "ts", NAN);
                int bin = isfinite (ts) ? (int) ((ts - lo) / width) : -1;
                if (bin == bins)
                    bin--;
                if (bin >= 0)
                    y [bin]++;
            }
            for (k = 0; k < bins; k++) {
                x [k] = (lo + (k + 0.5) * width - d->t0) / 1000;
                y [k] /= width / 1000;
            }
        }
    }
    if (k == 0) {
        fprintf (f, "<p class=\"note\">Not enough data for a throughput curve yet.</p>\n");
        goto cleanup;
    }
    double x0 = INFINITY, x1 = -INFINITY, y0 = 0, y1 = -INFINITY;
    for (int i = 0; i < k; i++) {
        x0 = fmin (x0, x [i]);
        x1 = fmax (x1, x [i]);
        y1 = fmax (y1, y [i]);
    }
    plot_t p = { .logy = false };
    s_range (&y0, &y1, false);
    p.x0 = fmin (0, x0);
    p.x1 = x1 > p.x0 ? x1 : p.x0 + 1;
    p.y0 = y0;
    p.y1 = y1;
    s_plot_begin (&p, f, 1200, 300, what, "seconds since the first recorded event", what);
    fprintf (f, "<g class=\"throughput\"><polyline fill=\"none\" stroke=\"#333\" stroke-width=\"1.8\" points=\"");
    for (int i = 0; i < k; i++)
        fprintf (f, "%.1f,%.1f ", s_px (&p, x [i]), s_py (&p, y [i]));
    fprintf (f, "\"/></g>\n");
    s_plot_end (&p);
cleanup:
    free (x);
    free (y);
}

static const char s_css [] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px 40px;color:#222;max-width:1220px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}"
    ".note{color:#555;margin:4px 0 8px}.kv span{margin-right:18px}"
    "svg{display:block;margin:6px 0}svg text{font:11px system-ui,sans-serif;fill:#333}"
    "svg text.ct{font-size:13px;font-weight:600}"
    ".grid{stroke:#e6e6e6}.tick{stroke:#999}.frame{fill:none;stroke:#999}"
    ".legend span{display:inline-block;margin:0 12px 4px 0}.legend i,i.sw{display:inline-block;"
    "width:12px;height:12px;margin-right:4px;vertical-align:-1px}"
    ".grid2{display:flex;flex-wrap:wrap;gap:10px}"
    "table.t,table.m{border-collapse:collapse;margin:6px 0}"
    "table.t td,table.t th,table.m td,table.m th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
    "table.t td:first-child,table.t td.hp,table.t td.l{text-align:left}td.hp{font-size:12px;color:#444}"
    "table.m td{min-width:64px;text-align:center}table.m small{color:#555}td.na{background:#f4f4f4}"
    ".lrow{display:flex;gap:4px}.lrow svg{margin:2px 0}.evo{stroke:#555;stroke-dasharray:3 3}"
    ".lhead span{width:232px;font-weight:600;text-align:center;position:sticky;top:0}"
    ".xsel input{margin-left:10px}#xt:checked~.byf,#xf:checked~.byt,"
    "#xt:checked~* .byf,#xf:checked~* .byt{display:none}";

int
report_render (const uint8_t *bytes, size_t len, double smooth, FILE *out)
{
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    if (mpobj_unpack (&up, bytes, len) != 0 || up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy (&up);
        return -1;
    }
    data_t *d = calloc (1, sizeof (data_t));
    if (!d) {
        msgpack_unpacked_destroy (&up);
        return -1;
    }
    s_data_load (d, &up.data);
    d->smooth = smooth > 0 && smooth < 1 ? smooth : 0;
    char env [64], when [64], gen_at [64];
    s_strv (mpobj_get (d->status, "env"), env, sizeof env);
    time_t now = (time_t) (mpobj_num_or (&up.data, "generated_ms", 0) / 1000);
    if (now == 0)
        now = time (NULL);
    strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime (&now));
    snprintf (gen_at, sizeof gen_at, "%s", when);

    fprintf (out, "<!DOCTYPE html>\n<html lang=\"en\" xmlns=\"http://www.w3.org/1999/xhtml\">\n"
                  "<head><meta charset=\"utf-8\"/><title>pbt report</title>\n<style>%s</style></head>\n"
                  "<body>\n<h1>pbt report</h1>\n<p class=\"kv\"><span>generated ", s_css);
    s_esc (out, gen_at);
    fprintf (out, "</span><span>env <b>");
    s_esc (out, *env ? env : "?");
    fprintf (out, "</b></span><span>agents <b>%d</b></span><span>results <b>%.0f</b></span>"
                  "<span>evolutions <b>%.0f</b></span><span>workers <b>%.0f</b></span>"
                  "<span>samples/s <b>%.0f</b></span>%s</p>\n",
             d->n_agents, mpobj_num_or (d->status, "results", 0), mpobj_num_or (d->status, "evolutions", 0),
             mpobj_num_or (d->status, "workers", 0), mpobj_num_or (d->status, "samples_per_s", 0),
             mpobj_get (d->status, "paused") && mpobj_get (d->status, "paused")->type == MSGPACK_OBJECT_BOOLEAN
             && mpobj_get (d->status, "paused")->via.boolean ? "<span><b>paused</b></span>" : "");
    fprintf (out, "<p class=\"note\"><a href=\"#elo\">Elo</a> &#183; <a href=\"#learning\">learning curves</a>"
                  " &#183; <a href=\"#hparams\">hyperparameters</a>"
                  " &#183; <a href=\"#lineage\">lineage</a> &#183; <a href=\"#winrate\">win rates</a>"
                  " &#183; <a href=\"#throughput\">throughput</a></p>\n");
    //  The x axis choice, as body-level siblings of every section after it
    //  so that CSS alone can show one axis everywhere (no script).
    fprintf (out, "<span class=\"note\">x axis of the Elo chart and the learning curves:</span>"
                  "<input type=\"radio\" name=\"x\" id=\"xt\" checked=\"checked\"/>"
                  "<label for=\"xt\">wall-clock time</label> <input type=\"radio\" name=\"x\" id=\"xf\"/>"
                  "<label for=\"xf\">frames trained by the population</label>\n");
    s_summary (out, d);
    s_elo (out, d);
    s_learning (out, d);
    s_hparams (out, d);
    s_lineage (out, d);
    s_matrix (out, d);
    s_throughput (out, d);
    fprintf (out, "</body>\n</html>\n");
    free (d);
    msgpack_unpacked_destroy (&up);
    return 0;
}

//  ---------------------------------------------------------------------
//  Collecting

static void
s_pack_str (msgpack_packer *pk, const char *s)
{
    msgpack_pack_str (pk, strlen (s));
    msgpack_pack_str_body (pk, s, strlen (s));
}

//  Call cmd (with one optional string or int argument) and append its key
//  and reply body to the bundle; nil if optional and refused. Returns 0 or
//  the ctl exit code.
static int
s_collect (ctl_t *ctl, msgpack_packer *pk, const char *key, const char *cmd,
           const char *arg_key, const char *arg_str, int64_t arg_int, bool optional)
{
    msgpack_sbuffer args;
    msgpack_sbuffer_init (&args);
    msgpack_packer apk;
    msgpack_packer_init (&apk, &args, msgpack_sbuffer_write);
    //  A series is named by agent and name: the population's here.
    bool series = !strcmp (cmd, "series");
    msgpack_pack_map (&apk, (arg_key ? 1 : 0) + series);
    if (series) {
        s_pack_str (&apk, "agent");
        s_pack_str (&apk, "population");
    }
    if (arg_key) {
        s_pack_str (&apk, arg_key);
        if (arg_str)
            s_pack_str (&apk, arg_str);
        else
            msgpack_pack_int64 (&apk, arg_int);
    }
    ctl_reply_t reply;
    int rc = ctl_call (ctl, cmd, (const uint8_t *) args.data, args.size, &reply);
    msgpack_sbuffer_destroy (&args);
    if (key)
        s_pack_str (pk, key);
    if (rc != 0) {
        msgpack_pack_nil (pk);
        if (optional && rc == EXIT_REFUSED) {
            fprintf (stderr, "pbtctl report: going on without '%s'\n", cmd);
            return 0;
        }
        return rc;
    }
    if (reply.body && reply.body_len)
        msgpack_pack_bin_body (pk, reply.body, reply.body_len);     // raw: already MessagePack
    else
        msgpack_pack_nil (pk);
    ctl_reply_clear (&reply);
    return 0;
}

//  Agent ids from a status body.
static int
s_agent_ids (const uint8_t *body, size_t len, char ids [][64], int max)
{
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    int n = 0;
    if (mpobj_unpack (&up, body, len) == 0) {
        const msgpack_object *rows = mpobj_get (&up.data, "agents");
        for (uint32_t i = 0; i < mpobj_len (rows) && n < max; i++)
            if (*s_strv (mpobj_get (mpobj_at (rows, i), "id"), ids [n], 64))
                n++;
    }
    msgpack_unpacked_destroy (&up);
    return n;
}

static int
s_read_file (const char *path, uint8_t **buf_p, size_t *len_p)
{
    FILE *f = fopen (path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            uint8_t *grown = realloc (buf, cap);
            if (!grown) {
                free (buf);
                fclose (f);
                return -1;
            }
            buf = grown;
        }
        got = fread (buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    bool bad = ferror (f);
    fclose (f);
    if (bad) {
        free (buf);
        return -1;
    }
    *buf_p = buf;
    *len_p = len;
    return 0;
}

static int
s_collect_all (ctl_t *ctl, msgpack_sbuffer *sbuf)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    //  status first, alone, to learn the agent ids.
    ctl_reply_t reply;
    int rc = ctl_call (ctl, "status", NULL, 0, &reply);
    if (rc != 0)
        return rc;
    static char ids [REPORT_MAX_AGENTS][64];
    int n = s_agent_ids (reply.body, reply.body_len, ids, REPORT_MAX_AGENTS);
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    msgpack_pack_map (&pk, 9);
    s_pack_str (&pk, "generated_ms");
    msgpack_pack_int64 (&pk, (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    s_pack_str (&pk, "status");
    msgpack_pack_bin_body (&pk, reply.body, reply.body_len);
    ctl_reply_clear (&reply);
    if ((rc = s_collect (ctl, &pk, "history", "history", NULL, NULL, 0, false)) != 0)
        return rc;
    s_pack_str (&pk, "lineage");
    msgpack_pack_map (&pk, (uint32_t) n);
    for (int i = 0; i < n; i++) {
        s_pack_str (&pk, ids [i]);
        if ((rc = s_collect (ctl, &pk, NULL, "lineage", "agent", ids [i], 0, true)) != 0)
            return rc;
    }
    if ((rc = s_collect (ctl, &pk, "matches", "matches", "limit", NULL, REPORT_MATCH_LIMIT, true)) != 0
    ||  (rc = s_collect (ctl, &pk, "payoff", "payoff", NULL, NULL, 0, true)) != 0
    ||  (rc = s_collect (ctl, &pk, "samples_per_s", "series", "name", "samples_per_s", 0, true)) != 0)
        return rc;
    //  Training statistics: one request per metric, every agent.
    s_pack_str (&pk, "curves");
    msgpack_pack_map (&pk, (uint32_t) LEARN_N);
    for (size_t m = 0; m < LEARN_N; m++) {
        s_pack_str (&pk, s_learn [m].metric);
        if ((rc = s_collect (ctl, &pk, NULL, "curves", "metric", s_learn [m].metric, 0, true)) != 0)
            return rc;
    }
    return s_collect (ctl, &pk, "metrics", "metrics", "limit", NULL, REPORT_METRICS_LIMIT, true);
}

static void
s_usage (void)
{
    fprintf (stderr, "usage: pbtctl report -o FILE.html [--smooth A] [--save-data FILE] [--data FILE] [--json]\n"
                     "  --smooth A  learning curves: exponential moving average weight, 0 <= A < 1 "
                     "(default 0.6; 0: points only)\n");
}

int
report_cmd (ctl_t *ctl, int argc, char **argv)
{
    const char *path = NULL, *save = NULL, *load = NULL;
    bool json = false;
    double smooth = 0.6;
    for (int i = 1; i < argc; i++) {
        if ((strcmp (argv [i], "-o") == 0 || strcmp (argv [i], "--output") == 0) && i + 1 < argc)
            path = argv [++i];
        else
        if (strcmp (argv [i], "--save-data") == 0 && i + 1 < argc)
            save = argv [++i];
        else
        if (strcmp (argv [i], "--data") == 0 && i + 1 < argc)
            load = argv [++i];
        else
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else
        if (strcmp (argv [i], "--smooth") == 0 && i + 1 < argc) {
            char *end;
            smooth = strtod (argv [++i], &end);
            if (*end || !(smooth >= 0 && smooth < 1)) {
                fprintf (stderr, "pbtctl report: --smooth wants a number in [0, 1), got '%s'\n", argv [i]);
                return EXIT_USAGE;
            }
        }
        else {
            fprintf (stderr, "pbtctl report: unexpected argument '%s'\n", argv [i]);
            s_usage ();
            return EXIT_USAGE;
        }
    }
    if (!path) {
        s_usage ();
        return EXIT_USAGE;
    }
    int rc = 0;
    uint8_t *data = NULL;
    size_t len = 0;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    FILE *out = NULL;
    if (load) {
        if (s_read_file (load, &data, &len) != 0) {
            fprintf (stderr, "pbtctl report: cannot read %s: %s\n", load, strerror (errno));
            rc = EXIT_REFUSED;
            goto cleanup;
        }
    }
    else {
        if ((rc = s_collect_all (ctl, &sbuf)) != 0)
            goto cleanup;
        data = (uint8_t *) sbuf.data;
        len = sbuf.size;
    }
    if (save) {
        FILE *sf = fopen (save, "wb");
        bool ok = sf && fwrite (data, 1, len, sf) == len;
        if (sf && fclose (sf) != 0)
            ok = false;
        if (!ok) {
            fprintf (stderr, "pbtctl report: cannot write %s\n", save);
            rc = EXIT_REFUSED;
            goto cleanup;
        }
    }
    out = fopen (path, "w");
    if (!out) {
        fprintf (stderr, "pbtctl report: cannot write %s: %s\n", path, strerror (errno));
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    if (report_render (data, len, smooth, out) != 0) {
        fprintf (stderr, "pbtctl report: the collected data is not a MessagePack map\n");
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    long size = ftell (out);
    if (fclose (out) != 0) {
        out = NULL;
        fprintf (stderr, "pbtctl report: cannot write %s\n", path);
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    out = NULL;
    if (json)
        printf ("{\"file\": \"%s\", \"bytes\": %ld}\n", path, size);
    else
        printf ("wrote %s (%ld bytes)\n", path, size);
cleanup:
    if (out)
        fclose (out);
    if (load)
        free (data);
    msgpack_sbuffer_destroy (&sbuf);
    return rc;
}
