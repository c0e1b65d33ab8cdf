/*  eval: `pbtctl eval AGENT --vs AGENT2|SCRIPT --episodes N [--json]`.

    Plays evaluation matches locally, in pbtctl's own process, with the
    worker's match runner: both sides' weights come from pbtd
    (agent_state), no seat trains, a scripted opponent is a seat with
    id -1. In team games (soccer) AGENT plays every seat of team 0 and the
    opponent (AGENT2, or the script) every seat of team 1; an episode's
    score for a team is the mean of its seats' scores.

    Reports the mean episode score of AGENT's team with a 95% t interval,
    and its win / draw / loss rates with 95% Wilson intervals.
*/
#ifndef PBT_EVAL_H
#define PBT_EVAL_H

#include <stddef.h>

#include "ctl.h"
#include "env.h"
#include "export.h"

//  Episode scores of the two teams, AGENT's first.
typedef struct {
    float *team_a;          // [n] score of AGENT's team per episode
    float *team_b;          // [n] the opponent's
    size_t n, cap;
} eval_episodes_t;

//  Play a (every seat of team 0) against b, or the script when b is NULL,
//  without training, until ep holds >= want episodes; seeds from seed on.
//  Returns 0 or a pbtctl exit code (the reason printed). The caller frees
//  ep->team_a and ep->team_b.
int eval_play (const export_agent_t *a, const export_agent_t *b, const char *script,
               const pbt_env_t *cls, size_t want, uint64_t seed, eval_episodes_t *ep);

//  Mean of x [n] and the half-width of its 95% t interval (INFINITY if
//  n < 2); sd (may be NULL) gets the sample standard deviation.
double eval_mean_ci (const float *x, size_t n, double *half, double *sd);

//  pbtctl eval. argv[0] is "eval". Returns a pbtctl exit code.
int eval_cmd (ctl_t *ctl, int argc, char **argv);

//  Wilson score interval for k successes in n trials at normal quantile z
//  (1.96 for 95%). n > 0.
void eval_wilson (double k, double n, double z, double *lo, double *hi);

//  Two-sided 95% quantile of Student's t with df degrees of freedom
//  (t such that P(|T| <= t) = 0.95); df >= 1.
double eval_t95 (int df);

#endif
