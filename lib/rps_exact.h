/*  rps_exact: exact exploitability of a stationary rock-paper-scissors
    policy over one finite episode, by dynamic programming.

    The rules are the rps game's (envs/rps.c): moves 0 rock, 1 paper,
    2 scissors, (m + 1) % 3 beats m, +1 / -1 / 0 a round; a player observes
    the opponent's previous move ("rock" before the first round) and, with
    obs_both, its own previous move too ("rock" before the first round).
    A network policy is a function of that observation only, so it is a
    table of move probabilities per observation:

        obs_both = 0: 3 observations, index o = opponent's previous move
        obs_both = 1: 9 observations, index o = 3 * opponent's previous move
                                               + own previous move

    (the observation vector is one-hot at [opp] and, with obs_both, at
    [3 + own]). The best responder sees everything that happened; what
    matters for the rest of the episode is the pair (agent's previous
    move, responder's previous move), so the best response's value is

        V_T (a, b) = 0
        V_t (a, b) = max_m  sum_x pi (x | o (b, a)) [ r (m, x) + V_{t+1} (x, m) ]

    from (rock, rock), over T = episode_len rounds. Its value is the
    policy's exploitability in units of the game score: 0 for a policy no
    strategy can beat on average (uniform play), episode_len for one that
    loses every round to a best response (always rock). rps is symmetric
    and zero-sum with value 0, so this is also NashConv / 2.
*/
#ifndef PBT_RPS_EXACT_H
#define PBT_RPS_EXACT_H

#include <stdint.h>

#define RPS_EXACT_MAX_OBS 9

//  Number of distinct observations (3 or 9).
int rps_exact_n_obs (int obs_both);

//  The observation vector (3 or 6 floats) of index o, as env_rps writes it.
void rps_exact_obs (int obs_both, int o, float *out);

//  The exploitability of the policy probs [n_obs][3] (rows need not be
//  normalized exactly; each is divided by its sum) over episode_len >= 1
//  rounds. first_move (may be NULL) gets the best response's first move.
//  Returns the value, or NAN for bad input (a negative or all-zero row,
//  episode_len < 1).
double rps_exact_exploitability (const double *probs, int obs_both, int64_t episode_len,
                                 int *first_move);

#endif
