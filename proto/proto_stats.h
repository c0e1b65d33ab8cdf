/*  proto_stats: the training statistics a result carries per trained seat
    (PROTOCOL.md §3.6.1, "Training statistics").

    proto_stat_defs is the one table of the statistics: wire key (which is
    also the name of the series pbtd keeps and pbtctl prints), unit, range
    and what it averages over. The decoder, the encoder's self-check,
    pbtd, the worker and pbtctl all read it, so a statistic is added or
    its range changed in one place.

    Every statistic is optional on the wire: a worker that does not compute
    one leaves it out and its points are absent, never zero. A value that
    is present must be finite and in its range, or the whole result is
    refused (bad_field, naming seat and statistic).
*/
#ifndef PBT_PROTO_STATS_H
#define PBT_PROTO_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    PROTO_STAT_GAME_RETURN,         // mean episodic sum of game rewards
    PROTO_STAT_SHAPED_RETURN,       // mean episodic sum of weighted shaping rewards
    PROTO_STAT_EPISODE_LENGTH,      // mean decisions per episode
    PROTO_STAT_POLICY_LOSS,         // clipped surrogate loss
    PROTO_STAT_VALUE_LOSS,          // 0.5 * (clipped) squared value error
    PROTO_STAT_ENTROPY,             // policy entropy, nats
    PROTO_STAT_APPROX_KL,           // mean (ratio - 1) - log ratio
    PROTO_STAT_CLIP_FRACTION,       // fraction of samples with |ratio - 1| > clip_coef
    PROTO_STAT_EXPLAINED_VARIANCE,  // 1 - Var(returns - values) / Var(returns)
    PROTO_STAT_GRAD_NORM,           // global L2 norm of the gradient before clipping
    PROTO_STAT_LR,                  // Adam learning rate used
    PROTO_STAT_COUNT
} proto_stat_id_t;

//  What a statistic's mean runs over, and so which count weighs it when
//  points are merged.
typedef enum {
    PROTO_STAT_PER_EPISODE,         // episodes finished in the assignment ("episodes")
    PROTO_STAT_PER_UPDATE,          // PPO minibatch updates ("updates")
    PROTO_STAT_PER_ITERATION,       // rollouts whose returns varied ("iterations")
} proto_stat_over_t;

typedef struct {
    const char *name;       // wire key and series name, e.g. "entropy"
    double min, max;        // a value must be finite and min <= v <= max
    bool min_open;          // ... and v > min instead (lr)
    proto_stat_over_t over;
    const char *unit;
    const char *what;       // one line for pbtctl and the report
} proto_stat_def_t;

extern const proto_stat_def_t proto_stat_defs [PROTO_STAT_COUNT];

//  Counts that the means cover, on the wire beside the statistics.
#define PROTO_STAT_COUNTS 3
extern const char *const proto_stat_count_names [PROTO_STAT_COUNTS];   // indexed by proto_stat_over_t

//  One trained seat's statistics over one assignment.
typedef struct {
    uint32_t have;                  // bit i set: value [i] was sent
    double value [PROTO_STAT_COUNT];
    uint32_t count [PROTO_STAT_COUNTS];     // by proto_stat_over_t; >= 1 when a statistic over it is present
} proto_stats_t;

//  Index of a statistic by name, or -1.
int proto_stat_find (const char *name);

//  Set / test a statistic.
void proto_stats_set (proto_stats_t *st, proto_stat_id_t id, double value);
bool proto_stats_has (const proto_stats_t *st, proto_stat_id_t id);

//  Check every present value against its range and that the counts its
//  means need are there. Returns 0, or -1 with err naming the statistic,
//  e.g. "entropy: expected a finite value >= 0, got -0.5".
int proto_stats_check (const proto_stats_t *st, char *err, size_t err_len);

//  The range of a statistic as text ("[0, 1]", "> 0", "any finite").
const char *proto_stat_range (proto_stat_id_t id, char *buf, size_t len);

#endif
