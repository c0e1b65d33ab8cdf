/*  match: play one match to the end.

    A match_t is the vectorized environment, one actor-critic per network
    seat and every buffer a rollout needs, all allocated by match_new;
    nothing is allocated per step. The life of a match:

        match_new        check the assignment, build env, seats, buffers
        match_rollout    n_steps x n_envs steps, episode bookkeeping
        match_update     PPO on each trained seat's own experience
        match_result     move the result (scores, new states, stats) out
        match_destroy

    Scripted seats (id == -1) act by their script; seats with train ==
    false act but are not updated (frozen snapshots, evaluation matches).
    match_run drives the whole loop for an assignment: that is the whole
    compute side of pbt-worker (the worker's main only moves messages).
    pbtctl eval plays without a wire assignment through match_new_frozen.
*/
#ifndef PBT_MATCH_H
#define PBT_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct _match_t match_t;

//  Called after each iteration with the frames played so far (per seat).
//  Return false to abort the match (e.g. the lease was lost).
typedef bool (match_progress_fn) (void *arg, uint64_t frames_done);

//  A match from a wire assignment. assign must outlive the match (seats
//  that do not train act with its weights). NULL with a message in err.
match_t *match_new (const proto_assign_t *assign, char *err, size_t err_len);

//  One player of a frozen match: a script, or a network's weights.
typedef struct {
    const char *script;     // scripted seat: the script's name; NULL for a network
    const float *params;    // network seat: [n_params] weights, read only
    size_t n_params;
} match_player_t;

//  A match where nobody trains (evaluation): players [n_players of the
//  game], player p in slot p, n_envs x n_steps per rollout, each env
//  scoring its first episode only. players' weights must outlive the
//  match. NULL with a message in err.
match_t *match_new_frozen (const char *env, const proto_kvs_t *env_options,
                           const proto_model_t *model, const match_player_t *players,
                           int n_envs, int n_steps, uint64_t seed, char *err, size_t err_len);

void match_destroy (match_t **self_p);

//  Iterations the match was asked for (ppo.iterations; 1 if frozen).
int match_iterations (const match_t *self);

//  Play n_steps steps of every env (plus the bootstrap observation).
//  0, or -1 with a message in err (a plugin refused a step).
int match_rollout (match_t *self, char *err, size_t err_len);

//  Train every trained seat on the rollout just played.
void match_update (match_t *self);

//  A trained seat's state (params and Adam moments), which match_update
//  changes in place; NULL for a seat that does not train. A caller may
//  change it between iterations (pbtctl exploit averages a team's seats).
proto_state_t *match_seat_state (match_t *self, int seat);

//  Scores so far: [n_episodes][n_players], row entries by seat.
const float *match_scores (const match_t *self, size_t *n_episodes);

//  Move the result out (timings, frames and statistics filled in); the
//  caller frees it with match_result_clear. Once per match.
void match_result (match_t *self, proto_result_t *result);

//  Run the assignment: new, iterations x (rollout, update, progress),
//  result, destroy. On success returns 0 and fills result (which the
//  caller frees with proto_msg_clear on the enclosing message, or
//  match_result_clear). On failure returns -1 with a message in err.
int match_run (const proto_assign_t *assign, proto_result_t *result,
               match_progress_fn *progress, void *progress_arg,
               char *err, size_t err_len);

//  Free what match_result put in result.
void match_result_clear (proto_result_t *result);

#endif
