/*  Nash solver: games whose equilibria are known on paper. The gap of
    every returned mixture is recomputed here from the definition. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "nash.h"

//  max_i sum_j (M_ij - M_ji)/2 p_j, written out again independently.
static double
s_gap (const double *M, int n, const double *p)
{
    double g = -1e300;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += 0.5 * (M [i * n + j] - M [j * n + i]) * p [j];
        g = s > g ? s : g;
    }
    return g;
}

static void
s_check_mixture (const double *p, int n)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        cr_assert (p [i] >= 0, "p[%d] = %g", i, p [i]);
        sum += p [i];
    }
    cr_assert_float_eq (sum, 1, 1e-12);
}

Test (nash, rock_paper_scissors)
{
    double M [9] = { 0, -1, 1,   1, 0, -1,   -1, 1, 0 };
    double p [3], sc [3], gap;
    cr_assert_eq (nash_solve (M, 3, p, &gap), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq (p [i], 1.0 / 3, 1e-12);
    nash_scores (M, 3, p, sc);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq (sc [i], 0, 1e-12);
    cr_assert (fabs (gap) <= 1e-12);
}

//  Weighted cycle: R beats S by b, P beats R by a, S beats P by c.
//  (A p)_R = -a p_P + b p_S, (A p)_P = a p_R - c p_S, (A p)_S = -b p_R + c p_P;
//  all zero at p proportional to (c, b, a): with a=1, b=2, c=3, (3, 2, 1)/6.
Test (nash, weighted_cycle)
{
    double a = 1, b = 2, c = 3;
    double M [9] = { 0, -a, b,   a, 0, -c,   -b, c, 0 };
    double p [3];
    cr_assert_eq (nash_solve (M, 3, p, NULL), 0);
    cr_assert_float_eq (p [0], 3.0 / 6, 1e-12);
    cr_assert_float_eq (p [1], 2.0 / 6, 1e-12);
    cr_assert_float_eq (p [2], 1.0 / 6, 1e-12);
}

//  RPS plus D, strictly dominated by rock: D's row (-1, -2, 0, 0) is below
//  rock's (0, -1, 1, 1) in every column. With p = (r, q, s, d) an
//  equilibrium needs (A p)_R = -q + s + d <= 0, (A p)_P = r - s + 2d <= 0,
//  (A p)_S = -r + q <= 0; their sum is 3d <= 0, so d = 0 and then r = q =
//  s: the unique equilibrium is (1/3, 1/3, 1/3, 0), and D's Nash-averaged
//  score is (-1 - 2 + 0) / 3 = -1.
Test (nash, dominated_strategy)
{
    double M [16] = {
         0, -1,  1,  1,
         1,  0, -1,  2,
        -1,  1,  0,  0,
        -1, -2,  0,  0 };
    double p [4], sc [4];
    cr_assert_eq (nash_solve (M, 4, p, NULL), 0);
    s_check_mixture (p, 4);
    cr_assert_float_eq (p [3], 0, 1e-12);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq (p [i], 1.0 / 3, 1e-12);
    nash_scores (M, 4, p, sc);
    cr_assert_float_eq (sc [3], -1, 1e-12);
    cr_assert_float_eq (sc [0], 0, 1e-12);
    cr_assert_eq (nash_recommend (p, sc, NULL, 4) == 3, 0);
}

//  A transitive game: i beats j by i - j. Player 3 beats everyone.
Test (nash, transitive_pure_equilibrium)
{
    double M [16];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            M [i * 4 + j] = i - j;
    double p [4], sc [4];
    cr_assert_eq (nash_solve (M, 4, p, NULL), 0);
    cr_assert_float_eq (p [3], 1, 1e-12);
    nash_scores (M, 4, p, sc);
    //  Each i scores i - 3 against player 3.
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq (sc [i], i - 3, 1e-12);
    cr_assert_eq (nash_recommend (p, sc, NULL, 4), 3);
    bool cand [4] = { true, true, true, false };
    //  Without 3 every weight is 0: the tie goes to the best score, 2.
    cr_assert_eq (nash_recommend (p, sc, cand, 4), 2);
}

//  A copy of rock: the copies share rock's 1/3 and every Nash-averaged
//  score stays 0 (Balduzzi et al.'s invariance to redundant players).
Test (nash, duplicate_player)
{
    double M [16] = {
         0, -1,  1,  0,
         1,  0, -1,  1,
        -1,  1,  0, -1,
         0, -1,  1,  0 };
    double p [4], sc [4];
    cr_assert_eq (nash_solve (M, 4, p, NULL), 0);
    s_check_mixture (p, 4);
    cr_assert_float_eq (p [0] + p [3], 1.0 / 3, 1e-12);
    cr_assert_float_eq (p [1], 1.0 / 3, 1e-12);
    nash_scores (M, 4, p, sc);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq (sc [i], 0, 1e-12);
}

//  Counters need not be exactly antisymmetric (M_ij + M_ji != 0 when the
//  cells come from different windows): the game is (M - M^T) / 2.
Test (nash, antisymmetrizes)
{
    double M [9] = { 0.5, -1.2, 0.8,   0.8, 0, -1.0,   -1.2, 1.0, 7 };
    //  A = [[0, -1, 1], [1, 0, -1], [-1, 1, 0]]: rps.
    double p [3];
    cr_assert_eq (nash_solve (M, 3, p, NULL), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_float_eq (p [i], 1.0 / 3, 1e-12);
}

Test (nash, random_games_within_tolerance)
{
    srand (7);
    for (int trial = 0; trial < 50; trial++) {
        int n = 2 + trial % 40;
        double *M = calloc ((size_t) n * n, sizeof *M), *p = calloc ((size_t) n, sizeof *p);
        double amax = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++) {
                double v = 20.0 * rand () / RAND_MAX - 10;
                //  Some exact zeros and ties, as real counters give.
                if (rand () % 5 == 0)
                    v = 0;
                M [i * n + j] = v;
                M [j * n + i] = -v;
                amax = fmax (amax, fabs (v));
            }
        double gap;
        cr_assert_eq (nash_solve (M, n, p, &gap), 0, "trial %d n %d", trial, n);
        s_check_mixture (p, n);
        double g = s_gap (M, n, p);
        cr_assert (g >= -1e-12 && g <= NASH_TOL * amax, "trial %d: gap %g", trial, g);
        free (M);
        free (p);
    }
}

Test (nash, bad_input)
{
    double M [4] = { 0, NAN, 0, 0 }, p [2];
    cr_assert_eq (nash_solve (M, 2, p, NULL), -1);
    cr_assert_eq (nash_solve (M, 0, p, NULL), -1);
    double Z [4] = { 0 };
    cr_assert_eq (nash_solve (Z, 2, p, NULL), 0);
    cr_assert_float_eq (p [0], 0.5, 1e-15);
}
