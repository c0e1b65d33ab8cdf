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

#include "ctl.h"

//  pbtctl eval. argv[0] is "eval". Returns a pbtctl exit code.
int eval_cmd (ctl_t *ctl, int argc, char **argv);

//  Wilson score interval for k successes in n trials at normal quantile z
//  (1.96 for 95%). n > 0.
void eval_wilson (double k, double n, double z, double *lo, double *hi);

//  Two-sided 95% quantile of Student's t with df degrees of freedom
//  (t such that P(|T| <= t) = 0.95); df >= 1.
double eval_t95 (int df);

#endif
