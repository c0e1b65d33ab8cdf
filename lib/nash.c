/*  nash: simplex on the meta-game's linear program (see nash.h). */
#include "nash.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

//  A (i, j) = (M [i][j] - M [j][i]) / 2
static double
s_anti (const double *M, int n, int i, int j)
{
    return (M [(size_t) i * n + j] - M [(size_t) j * n + i]) / 2;
}

void
nash_scores (const double *M, int n, const double *p, double *scores)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += s_anti (M, n, i, j) * p [j];
        scores [i] = s;
    }
}

double
nash_gap (const double *M, int n, const double *p)
{
    double gap = -INFINITY;
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += s_anti (M, n, i, j) * p [j];
        if (s > gap)
            gap = s;
    }
    return gap;
}

//  Tableau T [n][2n+1]: columns 0..n-1 the y's, n..2n-1 the slacks, 2n
//  the right-hand side; z [2n+1] the objective row (reduced costs, value).
//  basis [r] is the variable basic in row r. Maximizes sum y.
static int
s_simplex (double *T, double *z, int *basis, int n)
{
    int W = 2 * n + 1;
    //  Dantzig's rule (the most negative reduced cost) takes few pivots;
    //  after a run of degenerate pivots (no progress) Bland's rule (the
    //  lowest index), which cannot cycle, takes over. The cap only guards
    //  against a numerical loop.
    int degenerate = 0;
    for (long iter = 0; iter < 100L * n + 1000; iter++) {
        int enter = -1;
        bool bland = degenerate > 2 * n;
        for (int c = 0; c < 2 * n; c++)
            if (z [c] < -1e-12 && (enter < 0 || (!bland && z [c] < z [enter]))) {
                enter = c;
                if (bland)
                    break;
            }
        if (enter < 0)
            return 0;
        int leave = -1;
        double best = INFINITY;
        for (int r = 0; r < n; r++) {
            double a = T [(size_t) r * W + enter];
            if (a > 1e-12) {
                double ratio = T [(size_t) r * W + 2 * n] / a;
                if (ratio < best - 1e-15
                ||  (ratio <= best + 1e-15 && leave >= 0 && basis [r] < basis [leave])) {
                    best = ratio;
                    leave = r;
                }
            }
        }
        if (leave < 0)
            return -1;          // unbounded: cannot happen with a positive matrix
        degenerate = best < 1e-15 ? degenerate + 1 : 0;
        double *pr = T + (size_t) leave * W;
        double piv = pr [enter];
        for (int c = 0; c < W; c++)
            pr [c] /= piv;
        for (int r = 0; r < n; r++) {
            if (r == leave)
                continue;
            double *row = T + (size_t) r * W;
            double f = row [enter];
            if (f != 0)
                for (int c = 0; c < W; c++)
                    row [c] -= f * pr [c];
        }
        double f = z [enter];
        for (int c = 0; c < W; c++)
            z [c] -= f * pr [c];
        basis [leave] = enter;
    }
    return -1;
}

int
nash_solve (const double *M, int n, double *p, double *gap_out)
{
    if (!M || !p || n < 1 || n > NASH_MAX)
        return -1;
    double amax = 0;
    for (size_t k = 0; k < (size_t) n * n; k++)
        if (!isfinite (M [k]))
            return -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            amax = fmax (amax, fabs (s_anti (M, n, i, j)));
    if (amax == 0) {
        //  Every player even with every other: uniform is an equilibrium.
        for (int i = 0; i < n; i++)
            p [i] = 1.0 / n;
        if (gap_out)
            *gap_out = 0;
        return 0;
    }
    int W = 2 * n + 1;
    double *T = calloc ((size_t) n * W + W, sizeof (double));
    int *basis = calloc ((size_t) n, sizeof (int));
    if (!T || !basis) {
        free (T);
        free (basis);
        return -1;
    }
    double *z = T + (size_t) n * W;
    //  Scale to max |A| = 1 and shift by 2 so every entry is in [1, 3].
    for (int r = 0; r < n; r++) {
        double *row = T + (size_t) r * W;
        for (int c = 0; c < n; c++)
            row [c] = s_anti (M, n, r, c) / amax + 2.0;
        row [n + r] = 1;
        row [2 * n] = 1;
        basis [r] = n + r;
    }
    for (int c = 0; c < n; c++)
        z [c] = -1;
    int rc = s_simplex (T, z, basis, n);
    if (rc == 0) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            p [i] = 0;
        for (int r = 0; r < n; r++)
            if (basis [r] < n)
                p [basis [r]] = fmax (0, T [(size_t) r * W + 2 * n]);
        for (int i = 0; i < n; i++)
            sum += p [i];
        if (!(sum > 0))
            rc = -1;
        else
            for (int i = 0; i < n; i++)
                p [i] /= sum;
    }
    free (T);
    free (basis);
    if (rc != 0)
        return -1;
    double gap = nash_gap (M, n, p);
    if (gap_out)
        *gap_out = gap;
    return gap <= NASH_TOL * amax ? 0 : -1;
}

int
nash_recommend (const double *p, const double *scores, const bool *candidate, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (candidate && !candidate [i])
            continue;
        if (best < 0 || p [i] > p [best] + 1e-9
        ||  (fabs (p [i] - p [best]) <= 1e-9 && scores [i] > scores [best]))
            best = i;
    }
    return best;
}
