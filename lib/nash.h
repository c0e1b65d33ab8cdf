/*  nash: Nash equilibria of symmetric zero-sum meta-games, and Nash
    averaging (Balduzzi, Tuyls, Perolat, Graepel, "Re-evaluating
    Evaluation", NeurIPS 2018).

    The meta-game: n players (agents, frozen snapshots) and a payoff matrix
    M [n][n], M [i][j] = i's mean score against j. Both sides of a symmetric
    zero-sum game pick from the same n; M is first made antisymmetric,
    A = (M - M^T) / 2 (an empty cell, no games yet, is 0: even), so the
    game's value is 0 and a mixture p is a Nash equilibrium exactly when no
    pure player beats it on average:

        gap (p) = max_i (A p)_i  >= 0,   gap (p) = 0  at an equilibrium.

    The solver is the simplex method (Bland's rule, so it cannot cycle) on
    the column player's linear program  max sum y  s.t.  (A + c) y <= 1,
    y >= 0  with c > max |A|; p = y / sum y is minimax for the column
    player, hence (A antisymmetric) maximin for the row player too. It
    returns a vertex of the equilibrium set, so when several equilibria
    exist (e.g. two identical players) it is one of them, not the maximum
    entropy one of the paper. The returned mixture's gap is at most
    NASH_TOL times the largest |A| entry (checked, not assumed: the
    function fails otherwise).

    Nash-averaged score of player i: (A p)_i, its mean score against the
    equilibrium mixture: 0 for players in the support, negative for those a
    mixture of the others beats. Adding copies of a player leaves every
    player's Nash-averaged score unchanged (the paper's invariance), which
    Elo does not.
*/
#ifndef PBT_NASH_H
#define PBT_NASH_H

#include <stdbool.h>

#define NASH_MAX 1024
#define NASH_TOL 1e-9

//  An equilibrium p [n] of the symmetric zero-sum game M [n][n]
//  (row-major). gap (may be NULL) gets gap (p) in M's units. Returns 0, or
//  -1 for n out of 1..NASH_MAX, a non-finite entry, no memory, or a
//  solution whose gap exceeds the tolerance.
int nash_solve (const double *M, int n, double *p, double *gap);

//  Nash-averaged scores: scores [i] = sum_j A [i][j] p [j], A = (M - M^T) / 2.
void nash_scores (const double *M, int n, const double *p, double *scores);

//  max_i (A p)_i for any mixture p.
double nash_gap (const double *M, int n, const double *p);

//  The recommended player among those with candidate [i] true (NULL: all):
//  the highest Nash weight; weights within 1e-9 of each other tie, and a
//  tie goes to the higher Nash-averaged score, then to the lower index.
//  -1 if there is no candidate.
int nash_recommend (const double *p, const double *scores, const bool *candidate, int n);

#endif
