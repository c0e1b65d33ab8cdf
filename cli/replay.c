#include "replay.h"
#include "args.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"
#include "soccer.h"
#include "export.h"
#include "nn_fast.h"

//  A team is either a scripted policy or an agent whose network plays both
//  of the team's seats (as in pbtctl eval).
typedef struct {
    const char *name;
    bool scripted;
    export_agent_t agent;
} team_t;

typedef struct {
    team_t *teams [2];
    float probs [SOCCER_N_ACTIONS];
} policy_ctx_t;

//  The soccer plugin; replay draws with its extension, soccer_replay_svg.
static const envspec_t *
s_soccer (void)
{
    char err [PROTO_MAX_TEXT * 2];
    const envspec_t *spec = env_find ("soccer", err, sizeof err);
    if (!spec)
        fprintf (stderr, "pbtctl replay: %s\n", err);
    return spec;
}

static bool
s_is_script (const char *name)
{
    const envspec_t *spec = s_soccer ();
    return spec && envspec_script_index (spec, name) >= 0;
}

//  Greedy actions: a replay is for watching what the policy prefers.
static void
s_policy (void *arg, const float *obs, int32_t *actions)
{
    policy_ctx_t *ctx = (policy_ctx_t *) arg;
    for (int p = 0; p < 4; p++) {
        team_t *team = ctx->teams [p / 2];
        const float *o = obs + (size_t) p * SOCCER_OBS_DIM;
        if (team->scripted) {
            actions [p] = -1;       // filled by the script below
            continue;
        }
        nn_policy_eval (&team->agent.arch, team->agent.params, o, 1, ctx->probs, NULL);
        int best = 0;
        for (int a = 1; a < team->agent.arch.n_actions; a++)
            if (ctx->probs [a] > ctx->probs [best])
                best = a;
        actions [p] = best;
    }
}

bool
replay_scripts_only (int argc, char **argv)
{
    const char *who = NULL, *vs = "chaser";
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--vs") == 0 && i + 1 < argc)
            vs = argv [++i];
        else
        if ((strcmp (argv [i], "-o") == 0 || strcmp (argv [i], "--seed") == 0
          || strcmp (argv [i], "--steps") == 0) && i + 1 < argc)
            i++;
        else
        if (argv [i][0] != '-')
            who = argv [i];
    }
    return who && s_is_script (who) && s_is_script (vs);
}

int
replay_cmd (ctl_t *ctl, int argc, char **argv)
{
    const char *who = NULL, *vs = "chaser", *out = NULL;
    uint64_t seed = 1;
    int steps = 1800;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--vs") == 0 && i + 1 < argc)
            vs = argv [++i];
        else
        if (strcmp (argv [i], "-o") == 0 && i + 1 < argc)
            out = argv [++i];
        else
        if (strcmp (argv [i], "--seed") == 0) {
            if (args_uint ("replay --seed", argv [++i], 0, UINT64_MAX, &seed))
                return 2;
        }
        else
        if (strcmp (argv [i], "--steps") == 0) {
            uint64_t n;
            if (args_uint ("replay --steps", argv [++i], 1, 1000000, &n))
                return 2;
            steps = (int) n;
        }
        else
        if (argv [i][0] != '-')
            who = argv [i];
        else {
            fprintf (stderr, "pbtctl replay: unknown option '%s'\n", argv [i]);
            return 2;
        }
    }
    if (!who || !out || steps <= 0) {
        fprintf (stderr, "usage: pbtctl replay AGENT|random|chaser [--vs AGENT|random|chaser] -o FILE.svg "
                         "[--seed N] [--steps N]\n");
        return 2;
    }
    team_t teams [2] = { { .name = who }, { .name = vs } };
    int rc = 1;
    for (int t = 0; t < 2; t++) {
        teams [t].scripted = s_is_script (teams [t].name);
        if (teams [t].scripted)
            continue;
        if (!ctl) {
            fprintf (stderr, "pbtctl replay: '%s' is not a script, so pbtd is needed\n", teams [t].name);
            goto cleanup;
        }
        int frc = export_agent_fetch (ctl, teams [t].name, &teams [t].agent);
        if (frc != 0) {
            rc = frc;
            goto cleanup;
        }
        if (strcmp (teams [t].agent.env, "soccer") != 0) {
            fprintf (stderr, "pbtctl replay: %s plays '%s'; replay draws soccer only\n",
                     teams [t].name, teams [t].agent.env);
            goto cleanup;
        }
    }
    proto_kvs_t options = teams [0].scripted ? teams [1].agent.env_options : teams [0].agent.env_options;
    policy_ctx_t ctx = { .teams = { &teams [0], &teams [1] } };
    bool any_agent = !teams [0].scripted || !teams [1].scripted;
    //  Scripted teams pass their script name; agent teams pass NULL and act
    //  through the policy callback.
    const envspec_t *spec = s_soccer ();
    double values [PBT_ENV_MAX_OPTIONS];
    char verr [PROTO_MAX_TEXT];
    int (*replay_svg) (const char *, uint64_t, int, const double *, soccer_policy_fn *, void *,
                       const char *, const char *) = NULL;
    if (spec)
        *(void **) &replay_svg = envspec_symbol (spec, "soccer_replay_svg");
    if (!replay_svg) {
        fprintf (stderr, "pbtctl replay: the soccer plugin has no soccer_replay_svg\n");
        goto cleanup;
    }
    if (envspec_options (spec, &options, values, verr, sizeof verr)) {
        fprintf (stderr, "pbtctl replay: %s\n", verr);
        goto cleanup;
    }
    int outcome = replay_svg (out, seed, steps, values,
                                     any_agent ? s_policy : NULL, any_agent ? &ctx : NULL,
                                     teams [0].scripted ? teams [0].name : NULL,
                                     teams [1].scripted ? teams [1].name : NULL);
    if (outcome < 0) {
        fprintf (stderr, "pbtctl replay: could not write %s\n", out);
        goto cleanup;
    }
    printf ("wrote %s: %s vs %s, %s\n", out, who, vs,
            outcome == 1 ? "blue (left team) scored" : outcome == 2 ? "red (right team) scored" : "no goal");
    rc = 0;
cleanup:
    export_agent_clear (&teams [0].agent);
    export_agent_clear (&teams [1].agent);
    return rc;
}
