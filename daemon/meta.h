/*  meta: the population's meta-game, from the payoff counters.

    Players are the live agents and the kept frozen snapshots that have
    played at least one rated or trained episode against another player.
    The payoff of player i against j is i's mean score over their episodes
    in the counters' recent window (db.h: one to two windows of the
    pairing's latest episodes, so a live agent is judged on its recent
    weights), or over the whole run while the pairing has no recent
    episodes. nash.h solves the symmetric zero-sum game over them: each
    player's Nash weight and Nash-averaged score, and the recommended
    agent: the live agent with the highest Nash weight (ties, within 1e-9,
    by Nash-averaged score, then by lower id), not the one Elo ranks first.

    Cost: one read of the payoff table (players^2 rows) and one simplex on
    a players x players matrix; pbtd computes it on its reactor for status
    and nash requests, so it is bounded: at most META_MAX_PLAYERS players
    (past that the frozen snapshots are left out, and a population of more
    live agents than that gets an error). Measured on random dense games
    (nash_solve alone, this 2-core VM under a load of about 20): 8 players
    0.007 ms, 40 0.19 ms, 64 0.56 ms (100: 3 to 27 ms). meta_nash reports how long it took.
*/
#ifndef PBT_META_H
#define PBT_META_H

#include <stdint.h>

#include "db.h"

#define META_MAX_PLAYERS 64

typedef struct {
    int64_t agent;
    uint64_t version;           // 0: the live agent; else a frozen snapshot
    uint64_t episodes;          // episodes against the other players
    double weight;              // Nash weight
    double score;               // Nash-averaged score
} meta_player_t;

typedef struct {
    int n;                      // players
    meta_player_t *players;     // [n], live agents first by id, then snapshots
    double *payoff;             // [n][n] mean score of row against column (0: no games)
    int64_t recommended;        // agent id, -1 if none
    double gap;                 // the mixture's exploitability in the meta-game (>= 0)
    uint64_t episodes;          // episodes counted (each once)
    int snapshots_left_out;     // frozen snapshots not in the game (over the bound)
    double ms;                  // time taken
} meta_nash_t;

//  Solve the meta-game of the population's n_agents agents and their kept
//  frozen snapshots. Returns 0; 1 when no two players have played yet
//  (err says so); -1 on a database or solver error (err says which).
//  Free with meta_nash_clear.
int meta_nash (db_t *db, int n_agents, meta_nash_t *out, char *err, size_t err_len);

void meta_nash_clear (meta_nash_t *m);

#endif
