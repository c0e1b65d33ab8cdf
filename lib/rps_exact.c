/*  rps_exact: the best-response dynamic program (see rps_exact.h). */
#include "rps_exact.h"

#include <math.h>
#include <string.h>

int
rps_exact_n_obs (int obs_both)
{
    return obs_both ? 9 : 3;
}

void
rps_exact_obs (int obs_both, int o, float *out)
{
    int dim = obs_both ? 6 : 3;
    memset (out, 0, sizeof (float) * (size_t) dim);
    if (obs_both) {
        out [o / 3] = 1.0f;
        out [3 + o % 3] = 1.0f;
    }
    else
        out [o] = 1.0f;
}

//  The responder's reward for move m against x: +1 if m beats x.
static double
s_reward (int m, int x)
{
    int d = (m - x + 3) % 3;
    return d == 0 ? 0.0 : d == 1 ? 1.0 : -1.0;
}

double
rps_exact_exploitability (const double *probs, int obs_both, int64_t episode_len,
                          int *first_move)
{
    if (!probs || episode_len < 1)
        return NAN;
    int n_obs = rps_exact_n_obs (obs_both);
    double pi [RPS_EXACT_MAX_OBS][3];
    for (int o = 0; o < n_obs; o++) {
        double sum = 0;
        for (int x = 0; x < 3; x++) {
            double p = probs [o * 3 + x];
            if (!(p >= 0) || !isfinite (p))
                return NAN;
            sum += p;
        }
        if (!(sum > 0))
            return NAN;
        for (int x = 0; x < 3; x++)
            pi [o][x] = probs [o * 3 + x] / sum;
    }
    //  V [a][b]: value with t rounds still to play after the agent played
    //  a and the responder b. The agent's observation there is (b, a).
    double V [3][3] = { { 0 } }, next [3][3];
    int best_first = 0;
    for (int64_t left = 1; left <= episode_len; left++) {
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                int o = obs_both ? 3 * b + a : b;
                double best = -INFINITY;
                for (int m = 0; m < 3; m++) {
                    double q = 0;
                    for (int x = 0; x < 3; x++)
                        q += pi [o][x] * (s_reward (m, x) + V [x][m]);
                    if (q > best + 1e-12) {
                        best = q;
                        if (left == episode_len && a == 0 && b == 0)
                            best_first = m;
                    }
                }
                next [a][b] = best;
            }
        memcpy (V, next, sizeof V);
    }
    if (first_move)
        *first_move = best_first;
    return V [0][0];
}
