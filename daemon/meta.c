/*  meta: the meta-game from the payoff counters (see meta.h). */
#include "meta.h"

#include <czmq.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nash.h"

void
meta_nash_clear (meta_nash_t *m)
{
    if (!m)
        return;
    free (m->players);
    free (m->payoff);
    memset (m, 0, sizeof *m);
    m->recommended = -1;
}

//  Index of (agent, version) among the players, or -1.
static int
s_find (const meta_nash_t *m, int64_t agent, uint64_t version)
{
    for (int i = 0; i < m->n; i++)
        if (m->players [i].agent == agent && m->players [i].version == version)
            return i;
    return -1;
}

int
meta_nash (db_t *db, int n_agents, meta_nash_t *out, char *err, size_t err_len)
{
    int64_t t0 = zclock_usecs ();
    memset (out, 0, sizeof *out);
    out->recommended = -1;
    int64_t n_frozen = db_frozen_count (db);
    if (n_frozen < 0 || n_agents < 1) {
        snprintf (err, err_len, "database error reading frozen snapshots");
        return -1;
    }
    int cap = n_agents + (int) n_frozen;
    if (cap > NASH_MAX) {
        snprintf (err, err_len, "%d players, more than the solver's %d", cap, NASH_MAX);
        return -1;
    }
    db_frozen_t *fz = calloc ((size_t) n_frozen + 1, sizeof *fz);
    db_payoff_t *cells = calloc ((size_t) cap * cap + 1, sizeof *cells);
    out->players = calloc ((size_t) cap, sizeof *out->players);
    int n_fz = fz ? db_frozen_list (db, fz, (int) n_frozen) : -1;
    int n_cells = cells ? db_payoff_list (db, cells, cap * cap) : -1;
    int rc = -1;
    if (!out->players || n_fz < 0 || n_cells < 0) {
        snprintf (err, err_len, "database error reading the payoff matrix");
        goto done;
    }
    //  Players: every live agent and kept snapshot with episodes against
    //  another player that is one too.
    for (int i = 0; i < n_agents; i++)
        out->players [out->n++] = (meta_player_t) { .agent = i, .version = 0 };
    for (int k = 0; k < n_fz; k++)
        out->players [out->n++] = (meta_player_t) { .agent = fz [k].agent_id,
                                                    .version = fz [k].version };
    for (int c = 0; c < n_cells; c++) {
        int i = s_find (out, cells [c].agent, cells [c].version);
        int j = s_find (out, cells [c].opp, cells [c].opp_version);
        if (i >= 0 && j >= 0 && i != j)
            out->players [i].episodes += cells [c].all.episodes;
    }
    int n = 0, n_live = 0;
    for (int i = 0; i < out->n; i++)
        if (out->players [i].episodes > 0) {
            out->players [n++] = out->players [i];
            n_live += out->players [i].version == 0;
        }
    //  The solver runs on pbtd's reactor: past META_MAX_PLAYERS players the
    //  snapshots are left out, and past that many live agents it refuses.
    out->snapshots_left_out = 0;
    if (n > META_MAX_PLAYERS) {
        out->snapshots_left_out = n - n_live;
        n = n_live;
    }
    out->n = n;
    if (n > META_MAX_PLAYERS) {
        snprintf (err, err_len, "%d agents have played: more than the %d players pbtd solves the "
                  "meta-game for", n, META_MAX_PLAYERS);
        goto done;
    }
    if (n < 2) {
        snprintf (err, err_len, "the payoff matrix has no games between agents yet");
        rc = 1;
        goto done;
    }
    out->payoff = calloc ((size_t) n * n, sizeof *out->payoff);
    double *p = calloc ((size_t) n, sizeof *p), *sc = calloc ((size_t) n, sizeof *sc);
    bool *live = calloc ((size_t) n, sizeof *live);
    if (!out->payoff || !p || !sc || !live) {
        snprintf (err, err_len, "out of memory");
        free (p), free (sc), free (live);
        goto done;
    }
    for (int c = 0; c < n_cells; c++) {
        int i = s_find (out, cells [c].agent, cells [c].version);
        int j = s_find (out, cells [c].opp, cells [c].opp_version);
        if (i < 0 || j < 0 || i == j)
            continue;
        const db_wdl_t *w = cells [c].recent.episodes ? &cells [c].recent : &cells [c].all;
        if (w->episodes)
            out->payoff [(size_t) i * n + j] = w->score_sum / (double) w->episodes;
        out->episodes += cells [c].all.episodes;
    }
    out->episodes /= 2;         // each episode is a cell on both sides
    if (nash_solve (out->payoff, n, p, &out->gap) != 0) {
        snprintf (err, err_len, "the Nash solver failed on the %d x %d payoff matrix", n, n);
        free (p), free (sc), free (live);
        goto done;
    }
    nash_scores (out->payoff, n, p, sc);
    for (int i = 0; i < n; i++) {
        out->players [i].weight = p [i];
        out->players [i].score = sc [i];
        live [i] = out->players [i].version == 0;
    }
    int best = nash_recommend (p, sc, live, n);
    out->recommended = best >= 0 ? out->players [best].agent : -1;
    free (p), free (sc), free (live);
    rc = 0;
done:
    free (fz);
    free (cells);
    out->ms = (double) (zclock_usecs () - t0) / 1000.0;
    if (rc != 0) {
        free (out->payoff);
        out->payoff = NULL;
    }
    return rc;
}
