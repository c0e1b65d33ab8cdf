/*  PBT rules: every expected number below is worked by hand from the
    formulas in the paper (appendix B) or from elementary probability, not
    read back from the code under test. Randomised checks use a fixed seed
    and binomial / chi-square bounds wide enough (5 sigma) that a correct
    implementation passes with any seed.
*/
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbt.h"

//  |count - n p| <= 5 sqrt(n p (1-p))
static void
s_assert_binomial (int count, int n, double p, const char *what)
{
    double mean = n * p;
    double sd = sqrt (n * p * (1 - p));
    cr_assert (fabs (count - mean) <= 5 * sd + 1e-9,
               "%s: %d of %d, expected %.1f +- %.1f", what, count, n, mean, 5 * sd);
}

static pbt_config_t
s_config (const char *preset)
{
    pbt_config_t cfg;
    cr_assert_eq (pbt_config_preset (&cfg, preset), 0);
    return cfg;
}

//  ---------------------------------------------------------------- Elo (B.1)

Test (elo, expected_known_values)
{
    cr_assert_float_eq (pbt_elo_expected (0, 0), 0.5, 1e-15);
    cr_assert_float_eq (pbt_elo_expected (400, 0), 10.0 / 11.0, 1e-15);
    cr_assert_float_eq (pbt_elo_expected (0, 400), 1.0 / 11.0, 1e-15);
    cr_assert_float_eq (pbt_elo_expected (1200, 400), 100.0 / 101.0, 1e-15);
    //  Symmetric: E(a,b) + E(b,a) = 1
    cr_assert_float_eq (pbt_elo_expected (123.4, -56.7) + pbt_elo_expected (-56.7, 123.4), 1.0, 1e-15);
}

Test (elo, update_hand_worked)
{
    pbt_config_t cfg = s_config ("seed");
    cfg.elo_k = 0.1;        // the seed's K per episode

    //  Equal ratings, a wins: E = 1/2, delta = 0.1 * (1 - 1/2)
    double ra = 0, rb = 0;
    pbt_elo_update (&cfg, &ra, &rb, 3, 1);
    cr_assert_float_eq (ra, 0.05, 1e-15);
    cr_assert_float_eq (rb, -0.05, 1e-15);

    //  Equal ratings, a loses
    ra = 0, rb = 0;
    pbt_elo_update (&cfg, &ra, &rb, -1, 0);
    cr_assert_float_eq (ra, -0.05, 1e-15);
    cr_assert_float_eq (rb, 0.05, 1e-15);

    //  Equal ratings, draw: no change
    ra = 0, rb = 0;
    pbt_elo_update (&cfg, &ra, &rb, 2, 2);
    cr_assert_float_eq (ra, 0, 1e-15);
    cr_assert_float_eq (rb, 0, 1e-15);

    //  400 vs 0, draw: E = 10/11, delta = 0.1 (1/2 - 10/11) = -0.9/22
    ra = 400, rb = 0;
    pbt_elo_update (&cfg, &ra, &rb, 0, 0);
    cr_assert_float_eq (ra, 400 - 0.9 / 22, 1e-12);
    cr_assert_float_eq (rb, 0.9 / 22, 1e-12);

    //  400 vs 0, favourite loses: delta = 0.1 (0 - 10/11) = -1/11
    ra = 400, rb = 0;
    pbt_elo_update (&cfg, &ra, &rb, 0, 1);
    cr_assert_float_eq (ra, 400 - 1.0 / 11, 1e-12);
    cr_assert_float_eq (rb, 1.0 / 11, 1e-12);

    //  400 vs 0, favourite wins: delta = 0.1 (1 - 10/11) = 0.1/11
    ra = 400, rb = 0;
    pbt_elo_update (&cfg, &ra, &rb, 1, 0);
    cr_assert_float_eq (ra, 400 + 0.1 / 11, 1e-12);
    cr_assert_float_eq (rb, -0.1 / 11, 1e-12);

    //  Paper preset K = 16: equal ratings, win -> +8 / -8
    pbt_config_t paper = s_config ("paper");
    ra = 0, rb = 0;
    pbt_elo_update (&paper, &ra, &rb, 1, 0);
    cr_assert_float_eq (ra, 8, 1e-12);
    cr_assert_float_eq (rb, -8, 1e-12);
}

//  ------------------------------------------------- Rating one result

//  Scores [n][2] of a result with w wins of seat 0, d draws, l losses, in
//  the order win, draw, loss repeated (scores 3:1, 2:2, 0:4).
static float *
s_result_scores (int w, int d, int l, uint32_t *n)
{
    *n = (uint32_t) (w + d + l);
    float *sc = calloc ((size_t) *n * 2, sizeof *sc);
    static const float kind [3][2] = { { 3, 1 }, { 2, 2 }, { 0, 4 } };
    int left [3] = { w, d, l }, k = 0;
    while (left [0] + left [1] + left [2] > 0)
        for (int c = 0; c < 3; c++)
            if (left [c] > 0) {
                left [c]--;
                sc [2 * k] = kind [c][0];
                sc [2 * k + 1] = kind [c][1];
                k++;
            }
    return sc;
}

//  One update from the aggregate: s = (wins + draws / 2) / episodes.
//  Equal ratings, 6 wins, 2 draws, 2 losses of 10: s = 0.7, E = 0.5,
//  delta = 16 (0.7 - 0.5) = 3.2. Rated 400 vs 0 and all 10 lost:
//  E = 10/11, delta = -16 * 10/11.
Test (rating, result_hand_worked)
{
    pbt_config_t cfg = s_config ("seed");
    int team [2] = { 0, 1 };
    uint32_t n;
    float *sc = s_result_scores (6, 2, 2, &n);
    double r [2] = { 0, 0 };
    cr_assert_eq (pbt_rate_result (&cfg, r, team, 2, sc, n), 0);
    cr_assert_float_eq (r [0], 3.2, 1e-12);
    cr_assert_float_eq (r [1], -3.2, 1e-12);
    free (sc);
    sc = s_result_scores (0, 0, 10, &n);
    r [0] = 400, r [1] = 0;
    cr_assert_eq (pbt_rate_result (&cfg, r, team, 2, sc, n), 0);
    cr_assert_float_eq (r [0], 400 - 160.0 / 11, 1e-12);
    cr_assert_float_eq (r [1], 160.0 / 11, 1e-12);
    //  Seats listed team 1 first: the same update, to the same agents.
    int swapped [2] = { 1, 0 };
    float flip [20];
    for (uint32_t e = 0; e < n; e++)
        flip [2 * e] = sc [2 * e + 1], flip [2 * e + 1] = sc [2 * e];
    double q [2] = { 0, 400 };
    cr_assert_eq (pbt_rate_result (&cfg, q, swapped, 2, flip, n), 0);
    cr_assert_float_eq (q [1], 400 - 160.0 / 11, 1e-12);
    free (sc);
    //  No episodes, or one team only: nothing moves / refused.
    r [0] = 5, r [1] = -5;
    cr_assert_eq (pbt_rate_result (&cfg, r, team, 2, NULL, 0), 0);
    cr_assert (r [0] == 5 && r [1] == -5);
    int one [2] = { 0, 0 };
    float two [2] = { 1, 0 };
    cr_assert_eq (pbt_rate_result (&cfg, r, one, 2, two, 1), -1);
}

//  Teams (2v2): each agent against the other team's mean rating with its
//  team's aggregate. Team A {100, 300} (mean 200) vs B {0, 0}; team A wins
//  3 of 4 episodes (s = 0.75): delta_a1 = 16 (0.75 - E(100, 0)),
//  delta_a2 = 16 (0.75 - E(300, 0)), each B agent 16 (0.25 - E(0, 200)).
Test (rating, result_teams)
{
    pbt_config_t cfg = s_config ("paper");
    int team [4] = { 0, 0, 1, 1 };
    float sc [16] = { 1, 1, 0, 0,   1, 1, 0, 0,   0, 0, 1, 1,   1, 1, 0, 0 };
    double r [4] = { 100, 300, 0, 0 };
    cr_assert_eq (pbt_rate_result (&cfg, r, team, 4, sc, 4), 0);
    double e1 = 1 / (1 + pow (10, -100.0 / 400)), e2 = 1 / (1 + pow (10, -300.0 / 400));
    double eb = 1 / (1 + pow (10, 200.0 / 400));
    cr_assert_float_eq (r [0], 100 + 16 * (0.75 - e1), 1e-9);
    cr_assert_float_eq (r [1], 300 + 16 * (0.75 - e2), 1e-9);
    cr_assert_float_eq (r [2], 16 * (0.25 - eb), 1e-9);
    cr_assert_float_eq (r [3], 16 * (0.25 - eb), 1e-9);
}

//  "The same games split differently": a run is a sequence of results,
//  each one pair's assignment. Two runs play the same games when they have
//  the same sequence of pairs and each result's episodes have the same
//  win/draw/loss proportions, whatever the assignment's size (how many
//  envs x steps x iterations, so how many episodes) and whatever the order
//  of the episodes inside a result. Under the result rule such runs end
//  with identical ratings (bit for bit); under the per-episode rule they
//  do not, which is what makes the scale of the seed's ratings depend on
//  the assignment's size.
Test (rating, same_games_split_differently)
{
    pbt_config_t res = s_config ("seed"), epi = s_config ("seed");
    epi.rating = PBT_RATING_EPISODE;
    epi.elo_k = 0.1;
    int team [2] = { 0, 1 };
    //  12 results among 4 agents: pair, wins, draws, losses (small run).
    struct { int a, b, w, d, l; } seq [12] = {
        { 0, 1, 7, 2, 1 }, { 2, 3, 1, 1, 8 }, { 0, 2, 5, 0, 5 }, { 1, 3, 3, 4, 3 },
        { 0, 3, 9, 0, 1 }, { 1, 2, 2, 6, 2 }, { 3, 0, 4, 4, 2 }, { 2, 1, 6, 1, 3 },
        { 0, 1, 1, 1, 8 }, { 3, 2, 5, 5, 0 }, { 1, 0, 2, 2, 6 }, { 2, 0, 0, 3, 7 } };
    double small [4] = { 0 }, big [4] = { 0 }, esmall [4] = { 0 }, ebig [4] = { 0 };
    for (int k = 0; k < 12; k++) {
        uint32_t n1, n2;
        float *s1 = s_result_scores (seq [k].w, seq [k].d, seq [k].l, &n1);
        //  The big assignment: 326x the episodes (3,260, about the
        //  default's 3,264), losses first, then draws, then wins.
        int m = 326;
        n2 = n1 * (uint32_t) m;
        float *s2 = calloc ((size_t) n2 * 2, sizeof *s2);
        uint32_t at = 0;
        for (int pass = 0; pass < 3; pass++)
            for (int i = 0; i < m; i++)
                for (uint32_t e = 0; e < n1; e++) {
                    float x = s1 [2 * e], y = s1 [2 * e + 1];
                    int kind = x < y ? 0 : x == y ? 1 : 2;
                    if (kind == pass) {
                        s2 [2 * at] = x;
                        s2 [2 * at + 1] = y;
                        at++;
                    }
                }
        cr_assert_eq (at, n2);
        int a = seq [k].a, b = seq [k].b;
        double p [2] = { small [a], small [b] }, q [2] = { big [a], big [b] };
        cr_assert_eq (pbt_rate_result (&res, p, team, 2, s1, n1), 0);
        cr_assert_eq (pbt_rate_result (&res, q, team, 2, s2, n2), 0);
        small [a] = p [0], small [b] = p [1], big [a] = q [0], big [b] = q [1];
        double ep [2] = { esmall [a], esmall [b] }, eq [2] = { ebig [a], ebig [b] };
        pbt_rate_result (&epi, ep, team, 2, s1, n1);
        pbt_rate_result (&epi, eq, team, 2, s2, n2);
        esmall [a] = ep [0], esmall [b] = ep [1], ebig [a] = eq [0], ebig [b] = eq [1];
        free (s1);
        free (s2);
    }
    double spread = 0, espread = 0, sum = 0;
    for (int i = 0; i < 4; i++) {
        cr_assert (small [i] == big [i], "agent %d: %.17g vs %.17g", i, small [i], big [i]);
        spread = fmax (spread, fabs (small [i]));
        espread = fmax (espread, fabs (esmall [i] - ebig [i]));
        sum += small [i];
    }
    cr_assert (spread > 1, "the ratings moved (%.3g)", spread);
    cr_assert_float_eq (sum, 0, 1e-9);
    //  The per-episode rule moves 326x further on the big assignments.
    cr_assert (espread > 10, "per-episode rule: %.3g", espread);
}

Test (elo, zero_sum_over_random_updates)
{
    pbt_config_t cfg = s_config ("paper");
    rng_t rng;
    rng_seed (&rng, 7);
    double r [8];
    for (int i = 0; i < 8; i++)
        r [i] = cfg.elo_initial + 100.0 * i;    // sum 2800
    double moved = 0;
    for (int t = 0; t < 20000; t++) {
        int a = (int) rng_below (&rng, 8);
        int b = (int) rng_below (&rng, 7);
        if (b >= a)
            b++;
        //  Scores in {0,1,2}: wins, losses and draws all occur.
        double sa = (double) rng_below (&rng, 3), sb = (double) rng_below (&rng, 3);
        double before = r [a];
        pbt_elo_update (&cfg, &r [a], &r [b], sa, sb);
        moved += fabs (r [a] - before);
    }
    double sum = 0;
    for (int i = 0; i < 8; i++)
        sum += r [i];
    cr_assert_float_eq (sum, 2800.0, 1e-7);
    //  Ratings did move (the test would be vacuous otherwise): a K=16
    //  update between close ratings moves a few points.
    cr_assert_gt (moved, 20000.0);
    cr_assert_gt (fabs (r [0] - 0) + fabs (r [7] - 700), 100.0);
}

Test (elo, team_rule_hand_worked)
{
    pbt_config_t cfg = s_config ("paper");   // K = 16
    //  A = {400, 0} (mean 200), B = {0, 0} (mean 0); A wins.
    double r [4] = { 400, 0, 0, 0 };
    pbt_elo_update_teams (&cfg, r, 2, 2, 1, 0);
    //  A0: 16 (1 - E(400, 0)) = 16 (1 - 10/11) = 16/11
    cr_assert_float_eq (r [0], 400 + 16.0 / 11, 1e-9);
    //  A1: 16 (1 - E(0, 0)) = 8
    cr_assert_float_eq (r [1], 8, 1e-9);
    //  B: 16 (0 - E(0, 200)) = -16 / (1 + 10^(1/2))
    double b = -16.0 / (1 + sqrt (10.0));
    cr_assert_float_eq (r [2], b, 1e-9);
    cr_assert_float_eq (r [3], b, 1e-9);
    //  Not zero-sum when a team's ratings differ: 16/11 + 8 - 32/(1+sqrt 10) ~ 1.766
    double drift = r [0] - 400 + r [1] + r [2] + r [3];
    cr_assert_float_eq (drift, 16.0 / 11 + 8 - 32.0 / (1 + sqrt (10.0)), 1e-9);
    cr_assert_gt (drift, 1.0);

    //  Draw with both teams level: nothing moves.
    double level [4] = { 50, 50, 50, 50 };
    pbt_elo_update_teams (&cfg, level, 2, 2, 3, 3);
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq (level [i], 50, 1e-12);

    //  Members of each team equal: zero-sum. A = {100, 100} loses to B = {0, 0}:
    //  A each 16 (0 - E(100, 0)), B each 16 (1 - E(0, 100)) = 16 E(100, 0).
    double e = 1.0 / (1 + pow (10.0, -0.25));
    double eq [4] = { 100, 100, 0, 0 };
    pbt_elo_update_teams (&cfg, eq, 2, 2, 0, 2);
    cr_assert_float_eq (eq [0], 100 - 16 * e, 1e-9);
    cr_assert_float_eq (eq [1], 100 - 16 * e, 1e-9);
    cr_assert_float_eq (eq [2], 16 * e, 1e-9);
    cr_assert_float_eq (eq [3], 16 * e, 1e-9);
    cr_assert_float_eq (eq [0] + eq [1] + eq [2] + eq [3], 200, 1e-9);

    //  1 v 1 the team rule is the pairwise rule.
    double t [2] = { 400, 0 }, pa = 400, pb = 0;
    pbt_elo_update_teams (&cfg, t, 1, 1, 0, 1);
    pbt_elo_update (&cfg, &pa, &pb, 0, 1);
    cr_assert_float_eq (t [0], pa, 1e-12);
    cr_assert_float_eq (t [1], pb, 1e-12);
    cr_assert_float_eq (pa, 400 - 16.0 * 10 / 11, 1e-9);
}

//  -------------------------------------------------------- Eligibility (B.2)

Test (eligibility, boundaries)
{
    pbt_config_t cfg = s_config ("paper");
    const uint64_t F = cfg.eligible_frames, M = cfg.eligible_matches;
    cr_assert_gt (F, 0);
    cr_assert_gt (M, 0);
    pbt_member_t m = { .id = 1, .rating = 0, .frames_since_evolve = F, .matches_since_evolve = M };
    cr_assert (pbt_eligible (&cfg, &m));
    m.frames_since_evolve = F - 1;
    cr_assert_not (pbt_eligible (&cfg, &m));
    m.frames_since_evolve = F;
    m.matches_since_evolve = M - 1;
    cr_assert_not (pbt_eligible (&cfg, &m));
    m.matches_since_evolve = M + 1000;
    m.frames_since_evolve = F + 1000000;
    cr_assert (pbt_eligible (&cfg, &m));
    m.busy = true;
    cr_assert_not (pbt_eligible (&cfg, &m));

    //  Seed preset: no thresholds, only busy matters.
    pbt_config_t seed = s_config ("seed");
    pbt_member_t fresh = { .id = 2 };
    cr_assert (pbt_eligible (&seed, &fresh));
    fresh.busy = true;
    cr_assert_not (pbt_eligible (&seed, &fresh));
}

//  ---------------------------------------------------------- Selection (B.3)

Test (selection, paper_threshold_both_sides)
{
    pbt_config_t cfg = s_config ("seed");
    cr_assert_float_eq (cfg.t_select, 0.3, 0);
    rng_t rng;
    rng_seed (&rng, 11);
    //  E(0, d) = 0.3 exactly when d = 400 log10(0.7 / 0.3) ~ 147.19.
    double d = 400 * log10 (0.7 / 0.3);
    pbt_member_t pop [2] = { { .id = 10, .rating = 0 }, { .id = 11 } };

    pop [1].rating = d + 1;     // E just below 0.3: select
    for (int t = 0; t < 100; t++)
        cr_assert_eq (pbt_select_donor (&cfg, pop, 2, 0, &rng), 1);
    pop [1].rating = d - 1;     // E just above 0.3: keep
    for (int t = 0; t < 100; t++)
        cr_assert_eq (pbt_select_donor (&cfg, pop, 2, 0, &rng), -1);
    //  The better agent never copies the worse.
    pop [1].rating = d + 1;
    for (int t = 0; t < 100; t++)
        cr_assert_eq (pbt_select_donor (&cfg, pop, 2, 1, &rng), -1);
}

Test (selection, paper_only_eligible_candidates)
{
    pbt_config_t cfg = s_config ("paper");
    const uint64_t F = cfg.eligible_frames, M = cfg.eligible_matches;
    rng_t rng;
    rng_seed (&rng, 12);
    //  i = 0 is weak; 1 strong but busy, 2 strong but too few frames,
    //  3 strong and eligible, 4 weak and eligible.
    pbt_member_t pop [5] = {
        { .id = 1, .rating = 0,   .frames_since_evolve = F, .matches_since_evolve = M },
        { .id = 2, .rating = 500, .frames_since_evolve = F, .matches_since_evolve = M, .busy = true },
        { .id = 3, .rating = 500, .frames_since_evolve = F - 1, .matches_since_evolve = M },
        { .id = 4, .rating = 500, .frames_since_evolve = F, .matches_since_evolve = M },
        { .id = 5, .rating = 0,   .frames_since_evolve = F, .matches_since_evolve = M },
    };
    //  j is uniform over {3, 4}: 3 qualifies (E(0,500) ~ 0.053), 4 does not.
    int n = 4000, got3 = 0;
    for (int t = 0; t < n; t++) {
        int donor = pbt_select_donor (&cfg, pop, 5, 0, &rng);
        cr_assert (donor == 3 || donor == -1, "donor %d", donor);
        got3 += donor == 3;
    }
    s_assert_binomial (got3, n, 0.5, "strong eligible drawn");

    //  Only ineligible rivals: never evolves.
    pop [3].busy = true;
    pop [4].busy = true;
    for (int t = 0; t < 100; t++)
        cr_assert_eq (pbt_select_donor (&cfg, pop, 5, 0, &rng), -1);
    //  i itself ineligible: no evolution even with a strong eligible rival.
    pop [3].busy = false;
    pop [0].matches_since_evolve = M - 1;
    for (int t = 0; t < 100; t++)
        cr_assert_eq (pbt_select_donor (&cfg, pop, 5, 0, &rng), -1);
}

Test (selection, paper_t_select_extremes)
{
    pbt_config_t cfg = s_config ("seed");
    rng_t rng;
    rng_seed (&rng, 13);
    pbt_member_t pop [4] = {
        { .id = 1, .rating = 0 }, { .id = 2, .rating = 3000 },
        { .id = 3, .rating = -3000 }, { .id = 4, .rating = 0, .busy = true },
    };
    //  t_select = 0: E < 0 is impossible.
    cfg.t_select = 0;
    for (int t = 0; t < 1000; t++)
        cr_assert_eq (pbt_select_donor (&cfg, pop, 4, 0, &rng), -1);
    //  t_select = 1: every eligible rival qualifies, even a much weaker
    //  one; the draw is uniform over the eligible {1, 2}; busy 3 never.
    cfg.t_select = 1;
    int n = 6000, count [4] = { 0 };
    for (int t = 0; t < n; t++) {
        int donor = pbt_select_donor (&cfg, pop, 4, 0, &rng);
        cr_assert (donor == 1 || donor == 2, "donor %d", donor);
        count [donor]++;
    }
    s_assert_binomial (count [1], n, 0.5, "uniform rival");
    //  Alone: nobody to copy.
    pop [1].busy = pop [2].busy = true;
    cr_assert_eq (pbt_select_donor (&cfg, pop, 4, 0, &rng), -1);
    cr_assert_eq (pbt_select_donor (&cfg, pop, 1, 0, &rng), -1);
}

Test (selection, truncation)
{
    pbt_config_t cfg = s_config ("seed");
    cfg.selection = PBT_SELECT_TRUNCATION;
    cr_assert_float_eq (cfg.truncation_quantile, 0.25, 0);
    rng_t rng;
    rng_seed (&rng, 14);
    //  8 members, index k rated 100 (k * 5 mod 8) so rank and index differ.
    //  count = floor(0.25 * 8) = 2: bottom two copy one of the top two.
    pbt_member_t pop [8];
    int by_rating [8];          // by_rating[v] = index of the member rated 100 v
    for (int k = 0; k < 8; k++) {
        int v = (k * 5) % 8;
        pop [k] = (pbt_member_t) { .id = k, .rating = 100.0 * v };
        by_rating [v] = k;
    }
    int top1 = by_rating [7], top2 = by_rating [6];
    int bottom1 = by_rating [0], bottom2 = by_rating [1];
    int n = 2000, hits = 0;
    for (int t = 0; t < n; t++) {
        int d1 = pbt_select_donor (&cfg, pop, 8, bottom1, &rng);
        int d2 = pbt_select_donor (&cfg, pop, 8, bottom2, &rng);
        cr_assert (d1 == top1 || d1 == top2, "bottom donor %d", d1);
        cr_assert (d2 == top1 || d2 == top2, "second-bottom donor %d", d2);
        hits += d1 == top1;
    }
    s_assert_binomial (hits, n, 0.5, "top donor uniform");
    for (int v = 2; v < 8; v++)
        for (int t = 0; t < 20; t++)
            cr_assert_eq (pbt_select_donor (&cfg, pop, 8, by_rating [v], &rng), -1,
                          "rank %d must keep its weights", v);

    //  The best becomes busy: it is out of the ranking, 7 eligible,
    //  count = floor(1.75) = 1: only the very bottom evolves, from the new top.
    pop [top1].busy = true;
    for (int t = 0; t < 50; t++) {
        cr_assert_eq (pbt_select_donor (&cfg, pop, 8, bottom1, &rng), top2);
        cr_assert_eq (pbt_select_donor (&cfg, pop, 8, bottom2, &rng), -1);
    }

    //  Quantile 0.75 of 4 would be 3, so top and bottom sets would share a
    //  member that could copy itself; capped at half (2), the second best
    //  keeps its weights and nobody ever draws itself.
    cfg.truncation_quantile = 0.75;
    pbt_member_t four [4] = { { .id = 0, .rating = 30 }, { .id = 1, .rating = 20 },
                              { .id = 2, .rating = 10 }, { .id = 3, .rating = 0 } };
    for (int t = 0; t < 200; t++) {
        cr_assert_eq (pbt_select_donor (&cfg, four, 4, 1, &rng), -1);
        int d = pbt_select_donor (&cfg, four, 4, 2, &rng);
        cr_assert (d == 0 || d == 1, "donor %d", d);
    }
    cfg.truncation_quantile = 0.25;

    //  Two eligible: count = max(1, floor(0.5)) = 1.
    pbt_member_t two [3] = { { .id = 0, .rating = 5 }, { .id = 1, .rating = 9 },
                             { .id = 2, .rating = 99, .busy = true } };
    cr_assert_eq (pbt_select_donor (&cfg, two, 3, 0, &rng), 1);
    cr_assert_eq (pbt_select_donor (&cfg, two, 3, 1, &rng), -1);
    //  One eligible: nothing to rank against.
    two [1].busy = true;
    cr_assert_eq (pbt_select_donor (&cfg, two, 3, 0, &rng), -1);
}

//  -------------------------------------------------------- Inheritance (B.4)

Test (inheritance, initial_hparams)
{
    pbt_config_t cfg = s_config ("seed");
    rng_t rng;
    rng_seed (&rng, 15);
    double lr_first = 0;
    for (int t = 0; t < 200; t++) {
        proto_kvs_t hp;
        memset (&hp, 0xab, sizeof hp);      // output must not depend on prior contents
        pbt_initial_hparams (&cfg, &hp, &rng);
        cr_assert_eq (hp.count, 5);
        double lr = proto_kvs_get (&hp, "lr", -1);
        double gamma = proto_kvs_get (&hp, "gamma", -1);
        cr_assert (lr >= 1e-5 && lr <= 1e-2, "lr %g", lr);
        cr_assert (gamma >= 0.9 && gamma <= 0.999, "gamma %g", gamma);
        cr_assert_eq (proto_kvs_get (&hp, "gae_lambda", -1), 0.95);
        cr_assert_eq (proto_kvs_get (&hp, "ent_coef", -1), 0.01);
        cr_assert_eq (proto_kvs_get (&hp, "clip_coef", -1), 0.2);
        if (t == 0)
            lr_first = lr;
        else
        if (t == 1)
            cr_assert_neq (lr, lr_first, "lr must be sampled, not fixed");
    }
}

Test (inheritance, crossover_statistics)
{
    pbt_config_t cfg = s_config ("seed");
    rng_t rng;
    rng_seed (&rng, 16);
    proto_kvs_t own = { 0 }, donor = { 0 };
    proto_kvs_set (&own, "lr", 1e-3);
    proto_kvs_set (&own, "gamma", 0.95);
    proto_kvs_set (&own, "own_only", 3);
    proto_kvs_set (&own, "gae_lambda", 0.95);   // fixed in the seed preset
    proto_kvs_set (&donor, "gamma", 0.99);
    proto_kvs_set (&donor, "lr", 1e-4);
    proto_kvs_set (&donor, "donor_only", 5);
    proto_kvs_set (&donor, "gae_lambda", 0.5);

    int n = 10000, lr_taken = 0, gamma_taken = 0, both = 0;
    for (int t = 0; t < n; t++) {
        proto_kvs_t out;
        pbt_crossover (&cfg, &own, &donor, &out, &rng);
        cr_assert_eq (out.count, 4);
        cr_assert_not (proto_kvs_has (&out, "donor_only"));
        cr_assert_eq (proto_kvs_get (&out, "own_only", -1), 3);
        cr_assert_eq (proto_kvs_get (&out, "gae_lambda", -1), 0.95);
        double lr = proto_kvs_get (&out, "lr", -1), gamma = proto_kvs_get (&out, "gamma", -1);
        cr_assert (lr == 1e-3 || lr == 1e-4);
        cr_assert (gamma == 0.95 || gamma == 0.99);
        lr_taken += lr == 1e-4;
        gamma_taken += gamma == 0.99;
        both += lr == 1e-4 && gamma == 0.99;
    }
    s_assert_binomial (lr_taken, n, 0.5, "lr from donor");
    s_assert_binomial (gamma_taken, n, 0.5, "gamma from donor");
    //  Independent per hyperparameter: both taken with probability 1/4.
    s_assert_binomial (both, n, 0.25, "both from donor");

    //  out may alias own; probabilities 0 and 1 are exact.
    proto_kvs_t self = own;
    cfg.crossover_prob = 1;
    pbt_crossover (&cfg, &self, &donor, &self, &rng);
    cr_assert_eq (proto_kvs_get (&self, "lr", -1), 1e-4);
    cr_assert_eq (proto_kvs_get (&self, "gamma", -1), 0.99);
    cr_assert_eq (proto_kvs_get (&self, "own_only", -1), 3);
    cr_assert_eq (self.count, 4);
    cfg.crossover_prob = 0;
    self = own;
    pbt_crossover (&cfg, &self, &donor, &self, &rng);
    cr_assert_eq (memcmp (&self, &own, sizeof own), 0);
}

//  A config with one hyperparameter "x" whose spec the test sets up.
static pbt_config_t
s_one (pbt_prior_t prior, double min, double max, pbt_mode_t mode, double resample_prob)
{
    pbt_config_t cfg = s_config ("seed");
    cfg.n_hparams = 0;
    cr_assert_eq (pbt_config_add_shaping (&cfg, "x"), 0);
    pbt_hparam_spec_t *s = pbt_config_hparam (&cfg, "shape_x");
    cr_assert_not_null (s);
    s->prior = prior;
    s->min = min;
    s->max = max;
    s->mode = mode;
    s->resample_prob = resample_prob;
    s->mutate_prob = 1;
    s->perturb_factors [0] = 0.8;
    s->perturb_factors [1] = 1.2;
    char err [256];
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), 0, "%s", err);
    return cfg;
}

static double
s_mutated (const pbt_config_t *cfg, double x, rng_t *rng)
{
    proto_kvs_t hp = { 0 };
    proto_kvs_set (&hp, "shape_x", x);
    proto_kvs_set (&hp, "other", 42);       // no spec: never touched
    pbt_mutate (cfg, &hp, rng);
    cr_assert_eq (hp.count, 2);
    cr_assert_eq (proto_kvs_get (&hp, "other", -1), 42);
    return proto_kvs_get (&hp, "shape_x", NAN);
}

Test (mutation, perturb_factors_and_clamp)
{
    pbt_config_t cfg = s_one (PBT_PRIOR_UNIFORM, 0.1, 1.0, PBT_MODE_PERTURB, 0.5);
    rng_t rng;
    rng_seed (&rng, 17);
    int n = 10000, down = 0, clamped = 0;
    for (int t = 0; t < n; t++) {
        double y = s_mutated (&cfg, 0.5, &rng);
        cr_assert (y == 0.5 * 0.8 || y == 0.5 * 1.2, "perturbed %.17g", y);
        down += y == 0.5 * 0.8;
        //  0.9 * 1.2 = 1.08 exceeds max 1.0 and is clamped
        double z = s_mutated (&cfg, 0.9, &rng);
        cr_assert (z == 0.9 * 0.8 || z == 1.0, "perturbed %.17g", z);
        clamped += z == 1.0;
        //  0.11 * 0.8 = 0.088 is below min 0.1
        double w = s_mutated (&cfg, 0.11, &rng);
        cr_assert (w == 0.1 || w == 0.11 * 1.2, "perturbed %.17g", w);
    }
    s_assert_binomial (down, n, 0.5, "x0.8");
    s_assert_binomial (clamped, n, 0.5, "clamped x1.2");
}

Test (mutation, resample_uniform)
{
    //  resample_prob 0.3: otherwise unchanged (never perturbed)
    pbt_config_t cfg = s_one (PBT_PRIOR_UNIFORM, 0.9, 0.999, PBT_MODE_RESAMPLE, 0.3);
    rng_t rng;
    rng_seed (&rng, 18);
    int n = 10000, changed = 0;
    double sum = 0;
    for (int t = 0; t < n; t++) {
        double y = s_mutated (&cfg, 0.95, &rng);
        cr_assert (y >= 0.9 && y <= 0.999, "resampled %.17g", y);
        if (y != 0.95) {
            changed++;
            sum += y;
        }
    }
    s_assert_binomial (changed, n, 0.3, "resampled");
    //  mean of U[0.9, 0.999] is 0.9495, sd (0.099)/sqrt(12)
    double sd = 0.099 / sqrt (12.0) / sqrt ((double) changed);
    cr_assert (fabs (sum / changed - 0.9495) < 5 * sd, "mean %g", sum / changed);
}

Test (mutation, loguniform_prior)
{
    pbt_config_t cfg = s_one (PBT_PRIOR_LOGUNIFORM, 1e-5, 1e-2, PBT_MODE_RESAMPLE, 1.0);
    rng_t rng;
    rng_seed (&rng, 19);
    int n = 10000, below_geo_mid = 0, low_decade = 0;
    double sum_log = 0;
    for (int t = 0; t < n; t++) {
        double y = s_mutated (&cfg, 1e-3, &rng);
        cr_assert (y >= 1e-5 && y <= 1e-2, "resampled %g", y);
        sum_log += log (y);
        below_geo_mid += y < sqrt (1e-5 * 1e-2);
        low_decade += y < 1e-4;
    }
    //  log y ~ U[log 1e-5, log 1e-2]: mean (lo + hi) / 2, sd (hi - lo)/sqrt(12)
    double lo = log (1e-5), hi = log (1e-2);
    double sd = (hi - lo) / sqrt (12.0) / sqrt ((double) n);
    cr_assert (fabs (sum_log / n - (lo + hi) / 2) < 5 * sd, "mean log %g", sum_log / n);
    s_assert_binomial (below_geo_mid, n, 0.5, "below geometric midpoint");
    //  Each decade holds a third of the mass (a uniform prior would put 0.9% below 1e-4).
    s_assert_binomial (low_decade, n, 1.0 / 3, "first decade");
}

Test (mutation, both_and_mutate_prob)
{
    pbt_config_t cfg = s_one (PBT_PRIOR_UNIFORM, 0.0, 1.0, PBT_MODE_BOTH, 0.2);
    rng_t rng;
    rng_seed (&rng, 20);
    int n = 10000, resampled = 0, down = 0;
    for (int t = 0; t < n; t++) {
        double y = s_mutated (&cfg, 0.5, &rng);
        cr_assert (y >= 0 && y <= 1);
        cr_assert_neq (y, 0.5, "mode both always changes the value");
        if (y == 0.4)
            down++;
        else
        if (y != 0.5 * 1.2)
            resampled++;
    }
    s_assert_binomial (resampled, n, 0.2, "both: resampled");
    s_assert_binomial (down, n, 0.8 * 0.5, "both: x0.8");

    //  mutate_prob 0.5 in perturb mode: unchanged half the time.
    cfg = s_one (PBT_PRIOR_UNIFORM, 0.0, 1.0, PBT_MODE_PERTURB, 0);
    pbt_config_hparam (&cfg, "shape_x")->mutate_prob = 0.5;
    int same = 0;
    for (int t = 0; t < n; t++)
        same += s_mutated (&cfg, 0.5, &rng) == 0.5;
    s_assert_binomial (same, n, 0.5, "mutate_prob");

    //  evolve = false: never changes, whatever the mode.
    pbt_config_hparam (&cfg, "shape_x")->mutate_prob = 1;
    pbt_config_hparam (&cfg, "shape_x")->evolve = false;
    for (int t = 0; t < 100; t++)
        cr_assert_eq (s_mutated (&cfg, 0.5, &rng), 0.5);
}

Test (mutation, seed_preset_fixed_hparams)
{
    pbt_config_t cfg = s_config ("seed");
    rng_t rng;
    rng_seed (&rng, 21);
    proto_kvs_t hp;
    pbt_initial_hparams (&cfg, &hp, &rng);
    int lr_changed = 0;
    for (int t = 0; t < 200; t++) {
        double lr = proto_kvs_get (&hp, "lr", -1);
        pbt_mutate (&cfg, &hp, &rng);
        lr_changed += proto_kvs_get (&hp, "lr", -1) != lr;
        cr_assert_eq (proto_kvs_get (&hp, "gae_lambda", -1), 0.95);
        cr_assert_eq (proto_kvs_get (&hp, "ent_coef", -1), 0.01);
        cr_assert_eq (proto_kvs_get (&hp, "clip_coef", -1), 0.2);
        double lr2 = proto_kvs_get (&hp, "lr", -1), g = proto_kvs_get (&hp, "gamma", -1);
        cr_assert (lr2 >= 1e-5 && lr2 <= 1e-2);
        cr_assert (g >= 0.9 && g <= 0.999);
    }
    //  mode both: lr always changes, except when a x1.2 / x0.8 sits on a
    //  clamp bound it was already at.
    cr_assert_gt (lr_changed, 150);
}

//  ------------------------------------------------------------- Matchmaking

//  Agent rated 0 against candidates rated 0, 400, -400:
//  x = P(agent wins) = 1/2, 1/11, 10/11.
static const double s_cands [3] = { 0, 400, -400 };

Test (matchmaking, probabilities_hand_worked)
{
    pbt_config_t cfg = s_config ("paper");
    double p [3];

    cr_assert_eq (cfg.matchmaking, PBT_MATCH_UNIFORM);
    pbt_opponent_probs (&cfg, 0, s_cands, 3, p);
    for (int j = 0; j < 3; j++)
        cr_assert_float_eq (p [j], 1.0 / 3, 1e-15);

    //  PFSP p = 2: w = (1-x)^2 = 1/4, 100/121, 1/121 -> in 525ths: 121, 400, 4
    cfg.matchmaking = PBT_MATCH_PFSP;
    cr_assert_float_eq (cfg.pfsp_p, 2, 0);
    pbt_opponent_probs (&cfg, 0, s_cands, 3, p);
    cr_assert_float_eq (p [0], 121.0 / 525, 1e-12);
    cr_assert_float_eq (p [1], 400.0 / 525, 1e-12);
    cr_assert_float_eq (p [2], 4.0 / 525, 1e-12);

    //  FTW sigma = 1/3: (x - 1/2)^2 = 0, (9/22)^2, (9/22)^2;
    //  exponent -(81/484) / (2/9) = -729/968.
    cfg.matchmaking = PBT_MATCH_FTW;
    cr_assert_float_eq (cfg.ftw_sigma, 1.0 / 3, 1e-15);
    pbt_opponent_probs (&cfg, 0, s_cands, 3, p);
    double a = exp (-729.0 / 968);
    cr_assert_float_eq (p [0], 1 / (1 + 2 * a), 1e-12);
    cr_assert_float_eq (p [1], a / (1 + 2 * a), 1e-12);
    cr_assert_float_eq (p [2], a / (1 + 2 * a), 1e-12);

    //  PFSP when the agent is certain to beat everyone: all weights 0 -> uniform.
    cfg.matchmaking = PBT_MATCH_PFSP;
    double hopeless [2] = { -1e6, -2e6 };
    pbt_opponent_probs (&cfg, 0, hopeless, 2, p);
    cr_assert_float_eq (p [0], 0.5, 1e-15);
    cr_assert_float_eq (p [1], 0.5, 1e-15);

    rng_t rng;
    rng_seed (&rng, 22);
    cr_assert_eq (pbt_pick_opponent (&cfg, 0, s_cands, 0, &rng), -1);
    cr_assert_eq (pbt_pick_opponent (&cfg, 0, s_cands, 1, &rng), 0);
}

static void
s_check_picks (pbt_matchmaking_t mode, const double *expected, uint64_t seed)
{
    pbt_config_t cfg = s_config ("paper");
    cfg.matchmaking = mode;
    rng_t rng;
    rng_seed (&rng, seed);
    int n = 30000, count [3] = { 0 };
    for (int t = 0; t < n; t++) {
        int j = pbt_pick_opponent (&cfg, 0, s_cands, 3, &rng);
        cr_assert (j >= 0 && j < 3);
        count [j]++;
    }
    //  Pearson chi-square, 2 degrees of freedom: P(chi2 > 25) ~ 4e-6.
    double chi2 = 0;
    for (int j = 0; j < 3; j++) {
        double e = n * expected [j];
        chi2 += (count [j] - e) * (count [j] - e) / e;
    }
    cr_assert_lt (chi2, 25.0, "mode %d counts %d %d %d chi2 %g",
                  mode, count [0], count [1], count [2], chi2);
}

Test (matchmaking, pick_frequencies)
{
    double uniform [3] = { 1.0 / 3, 1.0 / 3, 1.0 / 3 };
    double pfsp [3] = { 121.0 / 525, 400.0 / 525, 4.0 / 525 };
    double a = exp (-729.0 / 968);
    double ftw [3] = { 1 / (1 + 2 * a), a / (1 + 2 * a), a / (1 + 2 * a) };
    s_check_picks (PBT_MATCH_UNIFORM, uniform, 23);
    s_check_picks (PBT_MATCH_PFSP, pfsp, 24);
    s_check_picks (PBT_MATCH_FTW, ftw, 25);
}

//  ----------------------------------------------------------------- Presets

Test (presets, seed)
{
    pbt_config_t cfg;
    cr_assert_eq (pbt_config_preset (&cfg, "seed"), 0);
    cr_assert_eq (cfg.rating, PBT_RATING_RESULT);
    cr_assert_float_eq (cfg.elo_k, 16, 0);
    cr_assert_float_eq (cfg.elo_initial, 0, 0);
    cr_assert_eq (cfg.eligible_frames, 0);
    cr_assert_eq (cfg.eligible_matches, 0);
    cr_assert_eq (cfg.selection, PBT_SELECT_PAPER);
    cr_assert_float_eq (cfg.t_select, 0.3, 0);
    cr_assert_float_eq (cfg.crossover_prob, 0.5, 0);
    cr_assert_float_eq (cfg.truncation_quantile, 0.25, 0);
    cr_assert_eq (cfg.matchmaking, PBT_MATCH_UNIFORM);
    cr_assert_float_eq (cfg.snapshot_prob, 0.2, 0);
    cr_assert_float_eq (cfg.eval_rate, 0, 0);
    cr_assert_eq (cfg.n_hparams, 5);

    pbt_hparam_spec_t *lr = pbt_config_hparam (&cfg, "lr");
    cr_assert_not_null (lr);
    cr_assert_eq (lr->prior, PBT_PRIOR_LOGUNIFORM);
    cr_assert_float_eq (lr->min, 1e-5, 0);
    cr_assert_float_eq (lr->max, 1e-2, 0);
    cr_assert_eq (lr->mode, PBT_MODE_BOTH);
    cr_assert_float_eq (lr->resample_prob, 0.1, 0);
    cr_assert_float_eq (lr->perturb_factors [0], 0.8, 0);
    cr_assert_float_eq (lr->perturb_factors [1], 1.2, 0);
    cr_assert_float_eq (lr->mutate_prob, 1, 0);
    cr_assert (lr->evolve);
    cr_assert_not (lr->has_init);

    pbt_hparam_spec_t *gamma = pbt_config_hparam (&cfg, "gamma");
    cr_assert_not_null (gamma);
    cr_assert_eq (gamma->prior, PBT_PRIOR_UNIFORM);
    cr_assert_float_eq (gamma->min, 0.9, 0);
    cr_assert_float_eq (gamma->max, 0.999, 0);
    cr_assert_eq (gamma->mode, PBT_MODE_RESAMPLE);
    cr_assert_float_eq (gamma->resample_prob, 0.1, 0);
    cr_assert (gamma->evolve);

    const char *fixed [3] = { "gae_lambda", "ent_coef", "clip_coef" };
    const double value [3] = { 0.95, 0.01, 0.2 };
    for (int k = 0; k < 3; k++) {
        pbt_hparam_spec_t *s = pbt_config_hparam (&cfg, fixed [k]);
        cr_assert_not_null (s, "%s", fixed [k]);
        cr_assert_not (s->evolve);
        cr_assert (s->has_init);
        cr_assert_float_eq (s->init, value [k], 0);
    }
    cr_assert_null (pbt_config_hparam (&cfg, "nope"));
    char err [256];
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), 0, "%s", err);
}

Test (presets, paper)
{
    pbt_config_t cfg;
    cr_assert_eq (pbt_config_preset (&cfg, "paper"), 0);
    cr_assert_float_eq (cfg.elo_k, 16, 0);
    cr_assert_eq (cfg.eligible_frames, 200000);
    cr_assert_eq (cfg.eligible_matches, 100);
    cr_assert_eq (cfg.selection, PBT_SELECT_PAPER);
    cr_assert_float_eq (cfg.t_select, 0.3, 0);
    cr_assert_float_eq (cfg.ftw_sigma, 1.0 / 3, 1e-15);
    cr_assert_float_eq (cfg.pfsp_p, 2, 0);
    cr_assert_eq (cfg.n_hparams, 5);
    struct { const char *name; pbt_prior_t prior; double min, max; } want [5] = {
        { "lr", PBT_PRIOR_LOGUNIFORM, 1e-5, 1e-2 },
        { "gamma", PBT_PRIOR_UNIFORM, 0.9, 0.999 },
        { "gae_lambda", PBT_PRIOR_UNIFORM, 0.8, 0.99 },
        { "ent_coef", PBT_PRIOR_LOGUNIFORM, 1e-4, 0.1 },
        { "clip_coef", PBT_PRIOR_UNIFORM, 0.1, 0.3 },
    };
    for (int k = 0; k < 5; k++) {
        pbt_hparam_spec_t *s = pbt_config_hparam (&cfg, want [k].name);
        cr_assert_not_null (s, "%s", want [k].name);
        cr_assert_eq (s->prior, want [k].prior, "%s", want [k].name);
        cr_assert_float_eq (s->min, want [k].min, 0);
        cr_assert_float_eq (s->max, want [k].max, 0);
        cr_assert_eq (s->mode, PBT_MODE_BOTH);
        cr_assert_float_eq (s->resample_prob, 0.2, 0);
        cr_assert_float_eq (s->mutate_prob, 1, 0);
        cr_assert (s->evolve);
        cr_assert_not (s->has_init);
    }
    char err [256];
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq (pbt_config_preset (&cfg, "nonsense"), -1);
}

Test (presets, shaping)
{
    pbt_config_t cfg = s_config ("paper");
    cr_assert_eq (pbt_config_add_shaping (&cfg, "ball_distance"), 0);
    cr_assert_eq (cfg.n_hparams, 6);
    pbt_hparam_spec_t *s = pbt_config_hparam (&cfg, "shape_ball_distance");
    cr_assert_not_null (s);
    cr_assert_eq (s->prior, PBT_PRIOR_UNIFORM);
    cr_assert_float_eq (s->min, 0, 0);
    cr_assert_float_eq (s->max, 1, 0);
    cr_assert_eq (s->mode, PBT_MODE_BOTH);
    cr_assert_float_eq (s->resample_prob, 0.2, 0);
    cr_assert (s->evolve);
    cr_assert_not (s->has_init);
    //  Adding again keeps the existing spec (possibly operator-edited).
    s->max = 0.5;
    cr_assert_eq (pbt_config_add_shaping (&cfg, "ball_distance"), 0);
    cr_assert_eq (cfg.n_hparams, 6);
    cr_assert_float_eq (pbt_config_hparam (&cfg, "shape_ball_distance")->max, 0.5, 0);

    //  "shape_" + 41 chars = 47 fits PROTO_MAX_NAME (48 with NUL); 42 does not.
    char name [64];
    memset (name, 'c', 41);
    name [41] = 0;
    cr_assert_eq (pbt_config_add_shaping (&cfg, name), 0);
    memset (name, 'd', 42);
    name [42] = 0;
    cr_assert_eq (pbt_config_add_shaping (&cfg, name), -1);

    //  Full table.
    for (int k = (int) cfg.n_hparams; k < PBT_MAX_HPARAMS; k++) {
        snprintf (name, sizeof name, "ch%d", k);
        cr_assert_eq (pbt_config_add_shaping (&cfg, name), 0);
    }
    cr_assert_eq (cfg.n_hparams, PBT_MAX_HPARAMS);
    cr_assert_eq (pbt_config_add_shaping (&cfg, "one_too_many"), -1);

    //  Shaping values are sampled at creation.
    rng_t rng;
    rng_seed (&rng, 26);
    proto_kvs_t hp;
    pbt_initial_hparams (&cfg, &hp, &rng);
    cr_assert_eq (hp.count, PBT_MAX_HPARAMS);
    double v = proto_kvs_get (&hp, "shape_ball_distance", -1);
    cr_assert (v >= 0 && v <= 0.5);
}

Test (presets, check_rejects)
{
    char err [256];
    pbt_config_t cfg = s_config ("paper");
    cfg.t_select = 1.5;
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), -1);
    cr_assert (strstr (err, "t_select"), "%s", err);

    cfg = s_config ("paper");
    pbt_config_hparam (&cfg, "lr")->min = 0;
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), -1);
    cr_assert (strstr (err, "lr"), "%s", err);

    cfg = s_config ("paper");
    pbt_config_hparam (&cfg, "gamma")->min = 2;
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), -1);
    cr_assert (strstr (err, "gamma"), "%s", err);

    cfg = s_config ("seed");
    pbt_config_hparam (&cfg, "clip_coef")->init = 5;
    pbt_config_hparam (&cfg, "clip_coef")->max = 1;
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), -1);
    cr_assert (strstr (err, "clip_coef"), "%s", err);

    cfg = s_config ("seed");
    cfg.hparams [1] = cfg.hparams [0];
    cr_assert_eq (pbt_config_check (&cfg, err, sizeof err), -1);
    cr_assert (strstr (err, "duplicate"), "%s", err);
}
