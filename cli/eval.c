/*  eval: evaluation matches played locally (see eval.h).

    A frozen match (match_new_frozen: nobody trains) is played one
    rollout at a time, with consecutive seeds, until at least N episodes
    have ended; the first N are scored.
    n_envs and n_steps are sized from the episode length so that one run
    usually suffices; the loop covers games whose episodes end early or
    late (soccer goals).
*/
#include "eval.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "env.h"
#include "export.h"
#include "match.h"

#define EXIT_REFUSED     1
#define EXIT_USAGE       2

#define EVAL_MAX_EPISODES  1000000
#define EVAL_MAX_ENVS      256
#define EVAL_MAX_RUNS      10000

//  ---------------------------------------------------------------------
//  Statistics

void
eval_wilson (double k, double n, double z, double *lo, double *hi)
{
    assert (n > 0);
    double p = k / n, z2 = z * z;
    double denom = 1 + z2 / n;
    double centre = (p + z2 / (2 * n)) / denom;
    double half = z * sqrt (p * (1 - p) / n + z2 / (4 * n * n)) / denom;
    *lo = fmax (0, centre - half);
    *hi = fmin (1, centre + half);
}

double
eval_t95 (int df)
{
    //  Exact table to 30 degrees of freedom; beyond, the Cornish-Fisher
    //  expansion around the normal quantile is within 1e-4.
    static const double table [31] = { 0,
        12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423 };
    assert (df >= 1);
    if (df <= 30)
        return table [df];
    double z = 1.959963984540054, n = df;
    double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
    return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n)
             + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n);
}

//  ---------------------------------------------------------------------
//  Playing

typedef eval_episodes_t episodes_t;

//  AGENT's side is team 0; the opponent plays every other team's seats.
static int
s_side (const pbt_env_t *cls, int player)
{
    return envspec_team_of (cls->n_players, cls->n_teams, player) != 0;
}

double
eval_mean_ci (const float *x, size_t n, double *half, double *sd_out)
{
    double sum = 0, ss = 0;
    for (size_t i = 0; i < n; i++)
        sum += x [i];
    double mean = n ? sum / (double) n : NAN;
    for (size_t i = 0; i < n; i++)
        ss += (x [i] - mean) * (x [i] - mean);
    double sd = n > 1 ? sqrt (ss / (double) (n - 1)) : 0;
    *half = n > 1 ? eval_t95 ((int) fmin ((double) n - 1, 1e9)) * sd / sqrt ((double) n) : INFINITY;
    if (sd_out)
        *sd_out = sd;
    return mean;
}

static int
s_episodes_push (episodes_t *ep, float a, float b)
{
    if (ep->n == ep->cap) {
        size_t cap = ep->cap ? ep->cap * 2 : 1024;
        float *ga = realloc (ep->team_a, sizeof (float) * cap);
        if (ga)
            ep->team_a = ga;
        float *gb = realloc (ep->team_b, sizeof (float) * cap);
        if (gb)
            ep->team_b = gb;
        if (!ga || !gb)
            return -1;
        ep->cap = cap;
    }
    ep->team_a [ep->n] = a;
    ep->team_b [ep->n] = b;
    ep->n++;
    return 0;
}

//  Add the episodes of one match's scores [n][P] to ep as team means.
static int
s_episodes_add (episodes_t *ep, const float *scores, size_t n, const pbt_env_t *cls,
                size_t want)
{
    int P = cls->n_players;
    for (size_t e = 0; e < n && ep->n < want; e++) {
        const float *row = scores + e * (size_t) P;
        double sum [2] = { 0, 0 };
        int count [2] = { 0, 0 };
        for (int p = 0; p < P; p++) {
            int side = s_side (cls, p);
            sum [side] += row [p];
            count [side]++;
        }
        if (s_episodes_push (ep, (float) (sum [0] / count [0]),
                             (float) (sum [1] / count [1])) != 0) {
            fprintf (stderr, "pbtctl eval: out of memory\n");
            return -1;
        }
    }
    return 0;
}

//  Steps of one episode: rps names its length episode_len, soccer
//  episode_steps; an unknown game gets a guess and eval_play's loop.
static double
s_episode_decisions (const export_agent_t *a, const pbt_env_t *cls)
{
    double len = proto_kvs_get (&a->env_options, "episode_len",
                 proto_kvs_get (&a->env_options, "episode_steps", 0));
    if (len <= 0)
        len = strcmp (cls->name, "rps") == 0 ? 10 : 400;
    //  Steps are decisions: soccer's action_repeat holds each for k ticks.
    double repeat = proto_kvs_get (&a->env_options, "action_repeat", 1);
    if (repeat >= 1)
        len = ceil (len / repeat);
    return len;
}

int
eval_play (const export_agent_t *a, const export_agent_t *b, const char *script,
           const pbt_env_t *cls, size_t want, uint64_t seed, episodes_t *ep)
{
    int P = cls->n_players;
    if (P > PROTO_MAX_AGENTS || cls->n_teams < 2) {
        fprintf (stderr, "pbtctl eval: env %s has %d players in %d teams; eval needs two"
                 " sides of at most %d players\n", cls->name, P, cls->n_teams, PROTO_MAX_AGENTS);
        return EXIT_REFUSED;
    }
    match_player_t players [PROTO_MAX_AGENTS];
    for (int p = 0; p < P; p++) {
        const export_agent_t *who = s_side (cls, p) == 0 ? a : b;
        players [p] = (match_player_t) {
            .script = who ? NULL : script,
            .params = who ? who->params : NULL,
            .n_params = who ? who->n_params : 0
        };
    }
    //  One episode per env per run (each env's first; see match.h), so
    //  every episode counts whether it ends early or at the time limit.
    int E = (int) (want < EVAL_MAX_ENVS ? want : EVAL_MAX_ENVS);
    int T = (int) s_episode_decisions (a, cls) + 1;
    for (int runs = 0; ep->n < want; runs++) {
        if (runs >= EVAL_MAX_RUNS) {
            fprintf (stderr, "pbtctl eval: only %zu episodes ended in %d runs\n", ep->n, runs);
            return EXIT_REFUSED;
        }
        char err [PROTO_MAX_TEXT];
        match_t *match = match_new_frozen (a->env, &a->env_options, &a->model, players,
                                           E, T, seed + (uint64_t) runs, err, sizeof err);
        if (!match || match_rollout (match, err, sizeof err) != 0) {
            fprintf (stderr, "pbtctl eval: %s\n", err);
            match_destroy (&match);
            return EXIT_REFUSED;
        }
        size_t n;
        const float *scores = match_scores (match, &n);
        int rc = s_episodes_add (ep, scores, n, cls, want);
        match_destroy (&match);
        if (rc != 0)
            return EXIT_REFUSED;
    }
    return 0;
}

//  ---------------------------------------------------------------------

static void
s_usage (void)
{
    fprintf (stderr, "usage: pbtctl eval AGENT --vs AGENT2|SCRIPT [--episodes N] [--seed S] "
             "[--env NAME=VALUE]... [--json]\n");
}

int
eval_cmd (ctl_t *ctl, int argc, char **argv)
{
    const char *agent_name = NULL, *vs = NULL;
    long long episodes = 1000;
    unsigned long long seed = 1;
    bool json = false;
    //  Environment options over the agent's own (e.g. soccer full_time=1:
    //  whole 45 s games with a kick-off after each goal).
    proto_kvs_t overrides = { 0 };
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--vs") == 0 && i + 1 < argc)
            vs = argv [++i];
        else
        if (strcmp (argv [i], "--env") == 0 && i + 1 < argc) {
            char name [PROTO_MAX_NAME];
            const char *arg = argv [++i], *eq = strchr (arg, '=');
            double value = 0;
            if (!eq || eq == arg || (size_t) (eq - arg) >= sizeof name) {
                fprintf (stderr, "pbtctl eval: --env wants NAME=NUMBER, got '%s'\n", arg);
                return EXIT_USAGE;
            }
            //  The environment checks the option's own range.
            if (args_real ("eval --env NAME=NUMBER", eq + 1, -1e300, 1e300, &value))
                return EXIT_USAGE;
            snprintf (name, sizeof name, "%.*s", (int) (eq - arg), arg);
            if (proto_kvs_set (&overrides, name, value)) {
                fprintf (stderr, "pbtctl eval: too many --env options\n");
                return EXIT_USAGE;
            }
        }
        else
        if (strcmp (argv [i], "--episodes") == 0) {
            uint64_t n;
            if (args_uint ("eval --episodes", argv [++i], 1, EVAL_MAX_EPISODES, &n))
                return EXIT_USAGE;
            episodes = (long long) n;
        }
        else
        if (strcmp (argv [i], "--seed") == 0) {
            uint64_t n;
            if (args_uint ("eval --seed", argv [++i], 0, UINT64_MAX, &n))
                return EXIT_USAGE;
            seed = n;
        }
        else
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else
        if (argv [i][0] != '-' && !agent_name)
            agent_name = argv [i];
        else {
            fprintf (stderr, "pbtctl eval: unexpected argument '%s'\n", argv [i]);
            s_usage ();
            return EXIT_USAGE;
        }
    }
    if (!agent_name || !vs) {
        s_usage ();
        return EXIT_USAGE;
    }
    export_agent_t a, b;
    memset (&b, 0, sizeof b);
    episodes_t ep = { 0 };
    int rc = export_agent_fetch (ctl, agent_name, &a);
    if (rc != 0)
        return rc;
    char lerr [PROTO_MAX_TEXT * 2];
    const envspec_t *spec = env_find (a.env, lerr, sizeof lerr);
    if (!spec) {
        fprintf (stderr, "pbtctl eval: %s\n", lerr);
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    const pbt_env_t *cls = envspec_env (spec);
    for (uint32_t k = 0; k < overrides.count; k++)
        if (proto_kvs_set (&a.env_options, overrides.items [k].name, overrides.items [k].value)) {
            fprintf (stderr, "pbtctl eval: too many env options\n");
            rc = EXIT_REFUSED;
            goto cleanup;
        }
    char cerr [200];
    if (envspec_options (spec, &a.env_options, NULL, cerr, sizeof cerr)) {
        fprintf (stderr, "pbtctl eval: --env: %s\n", cerr);
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    const char *script = NULL;
    if (envspec_script_index (spec, vs) >= 0)
        script = vs;
    else {
        if ((rc = export_agent_fetch (ctl, vs, &b)) != 0) {
            fprintf (stderr, "pbtctl eval: '%s' is neither an agent nor a script of %s (scripts:",
                     vs, cls->name);
            for (int s = 0; s < cls->n_scripts; s++)
                fprintf (stderr, " %s", cls->scripts [s]);
            fprintf (stderr, ")\n");
            goto cleanup;
        }
        if (strcmp (a.env, b.env) != 0) {
            fprintf (stderr, "pbtctl eval: %s plays %s, %s plays %s\n", a.id, a.env, b.id, b.env);
            rc = EXIT_REFUSED;
            goto cleanup;
        }
        if (b.n_params != a.n_params || b.arch.obs_dim != a.arch.obs_dim) {
            fprintf (stderr, "pbtctl eval: %s and %s have different models\n", a.id, b.id);
            rc = EXIT_REFUSED;
            goto cleanup;
        }
    }
    rc = eval_play (&a, script ? NULL : &b, script, cls, (size_t) episodes, seed, &ep);
    if (rc != 0)
        goto cleanup;

    size_t n = ep.n;
    double wins = 0, draws = 0, losses = 0;
    for (size_t i = 0; i < n; i++) {
        if (ep.team_a [i] > ep.team_b [i])
            wins++;
        else
        if (ep.team_a [i] < ep.team_b [i])
            losses++;
        else
            draws++;
    }
    double half, sd;
    double mean = eval_mean_ci (ep.team_a, n, &half, &sd);
    double wl, wh, dl, dh, ll, lh;
    eval_wilson (wins, (double) n, 1.959963984540054, &wl, &wh);
    eval_wilson (draws, (double) n, 1.959963984540054, &dl, &dh);
    eval_wilson (losses, (double) n, 1.959963984540054, &ll, &lh);
    const char *opp = script ? script : b.id;
    char opts [1024];
    size_t o = (size_t) snprintf (opts, sizeof opts, "{");
    for (uint32_t k = 0; k < a.env_options.count && o < sizeof opts; k++)
        o += (size_t) snprintf (opts + o, sizeof opts - o, "%s\"%s\": %.17g", k ? ", " : "",
                                a.env_options.items [k].name, a.env_options.items [k].value);
    if (o < sizeof opts)
        snprintf (opts + o, sizeof opts - o, "}");
    if (json) {
        printf ("{\"agent\": \"%s\", \"opponent\": \"%s\", \"opponent_kind\": \"%s\", "
                "\"env\": \"%s\", \"env_options\": %s, \"episodes\": %zu, \"seed\": %llu,\n"
                " \"mean_score\": %.6g, \"score_sd\": %.6g, \"mean_ci95\": [%.6g, %.6g],\n"
                " \"win\": {\"count\": %.0f, \"rate\": %.6g, \"ci95\": [%.6g, %.6g]},\n"
                " \"draw\": {\"count\": %.0f, \"rate\": %.6g, \"ci95\": [%.6g, %.6g]},\n"
                " \"loss\": {\"count\": %.0f, \"rate\": %.6g, \"ci95\": [%.6g, %.6g]}}\n",
                a.id, opp, script ? "script" : "agent", a.env, opts, n, seed,
                mean, sd, mean - half, mean + half,
                wins, wins / n, wl, wh, draws, draws / n, dl, dh, losses, losses / n, ll, lh);
    }
    else {
        printf ("%s vs %s (%s%s), %zu episodes, seed %llu, env %s\n", a.id, opp, a.env,
                cls->n_players > 2 ? ", team scores" : "", n, seed, opts);
        printf ("  mean score %+9.4f   95%% CI [%+.4f, %+.4f]   (sd %.4f)\n",
                mean, mean - half, mean + half, sd);
        printf ("  win rate   %9.4f   95%% CI [%.4f, %.4f]   (%.0f)\n", wins / n, wl, wh, wins);
        printf ("  draw rate  %9.4f   95%% CI [%.4f, %.4f]   (%.0f)\n", draws / n, dl, dh, draws);
        printf ("  loss rate  %9.4f   95%% CI [%.4f, %.4f]   (%.0f)\n", losses / n, ll, lh, losses);
    }
cleanup:
    free (ep.team_a);
    free (ep.team_b);
    export_agent_clear (&a);
    export_agent_clear (&b);
    return rc;
}
