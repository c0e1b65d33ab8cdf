/*  match: play one assignment to the end.

    Builds the vectorized environment and one actor-critic per seat from the
    assignment, runs `iterations` rounds of (rollout of n_steps x n_envs,
    then PPO on each trained seat's own experience with its own
    hyperparameters), and fills a result: per-episode scores and each
    trained seat's new state. Scripted seats (id == -1) act by their script;
    seats with train == false act but are not updated (frozen snapshots,
    evaluation matches).

    This is the whole compute side of pbt-worker; the worker's main only
    moves messages. pbt-bench and pbtctl eval call it too.
*/
#ifndef PBT_MATCH_H
#define PBT_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

//  Called after each iteration with the frames played so far (per seat).
//  Return false to abort the match (e.g. the lease was lost).
typedef bool (match_progress_fn) (void *arg, uint64_t frames_done);

//  Run the assignment. On success returns 0 and fills result (which the
//  caller frees with proto_msg_clear on the enclosing message, or
//  match_result_clear). On failure returns -1 with a message in err.
int match_run (const proto_assign_t *assign, proto_result_t *result,
               match_progress_fn *progress, void *progress_arg,
               char *err, size_t err_len);

//  Free what match_run put in result.
void match_result_clear (proto_result_t *result);

#endif
