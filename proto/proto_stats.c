/*  proto_stats: the table of training statistics and their checks (see
    proto_stats.h; PROTOCOL.md §3.6.1 is written from this table).
*/
#include "proto_stats.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define ANY (HUGE_VAL)

const proto_stat_def_t proto_stat_defs [PROTO_STAT_COUNT] = {
    [PROTO_STAT_GAME_RETURN] = { "game_return", -ANY, ANY, false, PROTO_STAT_PER_EPISODE,
        "game reward per episode",
        "mean return of the game's own (sparse) reward over the episodes that finished" },
    [PROTO_STAT_SHAPED_RETURN] = { "shaped_return", -ANY, ANY, false, PROTO_STAT_PER_EPISODE,
        "shaping reward per episode",
        "mean return of the weighted shaping rewards alone over the same episodes" },
    [PROTO_STAT_EPISODE_LENGTH] = { "episode_length", 1, ANY, false, PROTO_STAT_PER_EPISODE,
        "decisions",
        "mean decisions (actions) per finished episode" },
    [PROTO_STAT_POLICY_LOSS] = { "policy_loss", -ANY, ANY, false, PROTO_STAT_PER_UPDATE,
        "loss",
        "mean clipped-surrogate policy loss over the minibatch updates" },
    [PROTO_STAT_VALUE_LOSS] = { "value_loss", 0, ANY, false, PROTO_STAT_PER_UPDATE,
        "squared return",
        "mean value loss, 0.5 x (clipped) squared error to the GAE returns" },
    [PROTO_STAT_ENTROPY] = { "entropy", 0, ANY, false, PROTO_STAT_PER_UPDATE,
        "nats",
        "mean entropy of the policy on the minibatch observations" },
    [PROTO_STAT_APPROX_KL] = { "approx_kl", 0, ANY, false, PROTO_STAT_PER_UPDATE,
        "nats",
        "mean of (ratio - 1) - log ratio, an estimate of KL(old || new)" },
    [PROTO_STAT_CLIP_FRACTION] = { "clip_fraction", 0, 1, false, PROTO_STAT_PER_UPDATE,
        "fraction",
        "share of samples whose ratio left [1 - clip_coef, 1 + clip_coef]" },
    [PROTO_STAT_EXPLAINED_VARIANCE] = { "explained_variance", -ANY, 1, false, PROTO_STAT_PER_ITERATION,
        "fraction",
        "1 - Var(returns - values) / Var(returns) of the rollout's value predictions" },
    [PROTO_STAT_GRAD_NORM] = { "grad_norm", 0, ANY, false, PROTO_STAT_PER_UPDATE,
        "L2 norm",
        "mean global gradient norm before clipping to max_grad_norm" },
    [PROTO_STAT_LR] = { "lr", 0, 1, true, PROTO_STAT_PER_UPDATE,
        "step size",
        "Adam learning rate the updates used" },
};

const char *const proto_stat_count_names [PROTO_STAT_COUNTS] = {
    [PROTO_STAT_PER_EPISODE] = "episodes",
    [PROTO_STAT_PER_UPDATE] = "updates",
    [PROTO_STAT_PER_ITERATION] = "iterations",
};

int
proto_stat_find (const char *name)
{
    for (int i = 0; name && i < PROTO_STAT_COUNT; i++)
        if (strcmp (proto_stat_defs [i].name, name) == 0)
            return i;
    return -1;
}

void
proto_stats_set (proto_stats_t *st, proto_stat_id_t id, double value)
{
    assert (st && id < PROTO_STAT_COUNT);
    st->have |= 1u << id;
    st->value [id] = value;
}

bool
proto_stats_has (const proto_stats_t *st, proto_stat_id_t id)
{
    return st && id < PROTO_STAT_COUNT && (st->have >> id & 1u);
}

const char *
proto_stat_range (proto_stat_id_t id, char *buf, size_t len)
{
    const proto_stat_def_t *d = &proto_stat_defs [id];
    if (isinf (d->min) && isinf (d->max))
        snprintf (buf, len, "any finite value");
    else
    if (isinf (d->max))
        snprintf (buf, len, "a finite value %s %g", d->min_open ? ">" : ">=", d->min);
    else
    if (isinf (d->min))
        snprintf (buf, len, "a finite value <= %g", d->max);
    else
        snprintf (buf, len, "a value in %s%g, %g]", d->min_open ? "(" : "[", d->min, d->max);
    return buf;
}

int
proto_stats_check (const proto_stats_t *st, char *err, size_t err_len)
{
    assert (st);
    for (int i = 0; i < PROTO_STAT_COUNT; i++) {
        if (!proto_stats_has (st, (proto_stat_id_t) i))
            continue;
        const proto_stat_def_t *d = &proto_stat_defs [i];
        double v = st->value [i];
        if (!isfinite (v) || v < d->min || v > d->max || (d->min_open && v <= d->min)) {
            char range [64];
            snprintf (err, err_len, "%s: expected %s, got %g", d->name,
                      proto_stat_range ((proto_stat_id_t) i, range, sizeof range), v);
            return -1;
        }
        if (st->count [d->over] == 0) {
            snprintf (err, err_len, "%s: needs %s >= 1 (what the mean is over)", d->name,
                      proto_stat_count_names [d->over]);
            return -1;
        }
    }
    return 0;
}
