/*  Exact rps exploitability: answers worked on paper (derivations below),
    and the state-reduced dynamic program against a search over whole
    histories for short episodes.
*/
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "rps_exact.h"

enum { R = 0, P = 1, S = 2 };

static void
s_fill (double *probs, int n_obs, double r, double p, double s)
{
    for (int o = 0; o < n_obs; o++) {
        probs [3 * o + R] = r;
        probs [3 * o + P] = p;
        probs [3 * o + S] = s;
    }
}

Test (rps_exact, uniform_is_unexploitable)
{
    double pi [27];
    s_fill (pi, 3, 1, 1, 1);
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 10, NULL), 0, 1e-12);
    s_fill (pi, 9, 1.0 / 3, 1.0 / 3, 1.0 / 3);
    cr_assert_float_eq (rps_exact_exploitability (pi, 1, 10, NULL), 0, 1e-12);
}

Test (rps_exact, always_rock_loses_every_round)
{
    double pi [27];
    int first = -1;
    s_fill (pi, 3, 1, 0, 0);
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 10, &first), 10, 1e-12);
    cr_assert_eq (first, P);
    s_fill (pi, 9, 1, 0, 0);
    cr_assert_float_eq (rps_exact_exploitability (pi, 1, 10, NULL), 10, 1e-12);
    cr_assert_float_eq (rps_exact_exploitability (pi, 1, 3, NULL), 3, 1e-12);
}

//  Observation-independent mix: rock 1/2, paper 1/2. Per round, responder
//  rock: 1/2 (0) + 1/2 (-1) = -1/2; paper: 1/2 (+1) + 1/2 (0) = +1/2;
//  scissors: 1/2 (-1) + 1/2 (+1) = 0. Nothing carries over, so paper every
//  round: 10 x 1/2 = 5.
Test (rps_exact, half_rock_half_paper)
{
    double pi [9];
    s_fill (pi, 3, 0.5, 0.5, 0);
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 10, NULL), 5, 1e-12);
}

//  Observation-dependent (obs_both = 0): after the opponent's rock (and at
//  the start) the agent plays rock 0.8, paper 0.2; after paper or scissors
//  it plays uniformly. The responder's per-round payoff: in state R (its
//  own last move was rock), paper earns 0.8 (1) + 0.2 (0) = 0.8, rock
//  0.8 (0) + 0.2 (-1) = -0.2, scissors 0.8 (-1) + 0.2 (1) = -0.6; in
//  states P and S every move earns 0. Its move is the next state. With n
//  rounds left: V(n, R) = max (0.8 + V(n-1, P), -0.2 + V(n-1, R),
//  -0.6 + V(n-1, S)), V(n, P) = V(n, S) = max_s V(n-1, s), V(0, .) = 0:
//  n = 1: R 0.8, P 0;  n = 2: R max(0.8, 0.6) = 0.8, P 0.8;
//  n = 3: R 1.6, P 0.8;  n = 4: R max(1.6, 1.4) = 1.6, P 1.6; ...
//  V(2k, R) = V(2k - 1, R) = 0.8 k: paper then rock (to return to R),
//  alternately. 10 rounds: 4.0; 9 rounds: 4.0; 1 round: 0.8.
Test (rps_exact, state_dependent_policy)
{
    double pi [9];
    s_fill (pi, 3, 1, 1, 1);
    pi [3 * R + R] = 0.8;
    pi [3 * R + P] = 0.2;
    pi [3 * R + S] = 0;
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 10, NULL), 4.0, 1e-12);
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 9, NULL), 4.0, 1e-12);
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 1, NULL), 0.8, 1e-12);
    cr_assert_float_eq (rps_exact_exploitability (pi, 0, 3, NULL), 1.6, 1e-12);
}

//  Own-move dependent (obs_both = 1): the agent repeats its own previous
//  move (rock at the start) with 1/2 and plays each other move with 1/4,
//  whatever the responder did. With x its last move, responder x + 1 earns
//  1/2 (+1) + 1/4 (0) + 1/4 (-1) = 1/4; x earns 1/4 (-1) + 1/4 (+1) = 0;
//  x + 2 earns -1/4. The next state is the agent's own draw, which the
//  responder does not influence: 10 x 1/4 = 2.5.
Test (rps_exact, repeat_own_move_policy)
{
    double pi [27];
    for (int opp = 0; opp < 3; opp++)
        for (int own = 0; own < 3; own++)
            for (int x = 0; x < 3; x++)
                pi [3 * (3 * opp + own) + x] = x == own ? 0.5 : 0.25;
    cr_assert_float_eq (rps_exact_exploitability (pi, 1, 10, NULL), 2.5, 1e-12);
}

//  Full-history search: the responder's best expected score over every
//  history of the remaining rounds, recomputing the agent's observation
//  from the last moves of the history (no state reduction).
static double
s_search (const double *pi, int obs_both, int left, int a_last, int b_last)
{
    if (left == 0)
        return 0;
    int o = obs_both ? 3 * b_last + a_last : b_last;
    double best = -INFINITY;
    for (int m = 0; m < 3; m++) {
        double q = 0;
        for (int x = 0; x < 3; x++) {
            double p = pi [3 * o + x];
            if (p == 0)
                continue;
            int d = (m - x + 3) % 3;
            double r = d == 0 ? 0 : d == 1 ? 1 : -1;
            q += p * (r + s_search (pi, obs_both, left - 1, x, m));
        }
        best = fmax (best, q);
    }
    return best;
}

Test (rps_exact, agrees_with_full_search)
{
    //  Fixed pseudo-random policies (an LCG, normalized rows).
    unsigned s = 12345;
    for (int trial = 0; trial < 20; trial++) {
        int obs_both = trial % 2;
        int n_obs = rps_exact_n_obs (obs_both);
        double pi [27];
        for (int o = 0; o < n_obs; o++) {
            double sum = 0;
            for (int x = 0; x < 3; x++) {
                s = s * 1103515245u + 12345u;
                pi [3 * o + x] = (double) ((s >> 8) % 1000 + 1);
                sum += pi [3 * o + x];
            }
            for (int x = 0; x < 3; x++)
                pi [3 * o + x] /= sum;
        }
        for (int T = 1; T <= 5; T++)
            cr_assert_float_eq (rps_exact_exploitability (pi, obs_both, T, NULL),
                                s_search (pi, obs_both, T, R, R), 1e-9,
                                "trial %d T %d", trial, T);
    }
}

Test (rps_exact, observation_vectors_match_env)
{
    //  env_rps: one-hot opponent's last move, then (obs_both) one-hot own.
    float o [6];
    rps_exact_obs (1, 3 * S + P, o);
    float want [6] = { 0, 0, 1, 0, 1, 0 };
    cr_assert_arr_eq (o, want, sizeof want);
    rps_exact_obs (0, P, o);
    float want3 [3] = { 0, 1, 0 };
    cr_assert_arr_eq (o, want3, sizeof want3);
}

Test (rps_exact, bad_input)
{
    double pi [9];
    s_fill (pi, 3, 1, 1, 1);
    cr_assert (isnan (rps_exact_exploitability (pi, 0, 0, NULL)));
    pi [0] = -1;
    cr_assert (isnan (rps_exact_exploitability (pi, 0, 10, NULL)));
    s_fill (pi, 3, 0, 0, 0);
    cr_assert (isnan (rps_exact_exploitability (pi, 0, 10, NULL)));
    pi [0] = NAN;
    cr_assert (isnan (rps_exact_exploitability (pi, 0, 10, NULL)));
}
