/*  curves: series as columns (see curves.h). */
#include "curves.h"
#include "ctl_reply.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CURVES_MAX_SERIES 64        // series names per agent read

typedef struct {
    char name [DB_SERIES_NAME_MAX];
    int64_t offset;                 // first point packed
    int64_t count;                  // points packed
} plan_t;

//  Which series of one agent, and which of their points, fit the budget.
static int
s_plan (db_t *db, int64_t agent, const char *metric, int64_t last, int64_t *budget,
        bool *truncated, plan_t *plan)
{
    char names [CURVES_MAX_SERIES][DB_SERIES_NAME_MAX];     // 4 KiB
    int n = db_series_names (db, agent, names, CURVES_MAX_SERIES);
    if (n < 0)
        return -1;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (metric && *metric && strcmp (names [i], metric) != 0)
            continue;
        int64_t total = 0;
        db_point_t none;
        if (db_series_read (db, agent, names [i], 0, &none, 0, &total) < 0)
            return -1;
        int64_t first = last > 0 && total > last ? total - last : 0;
        int64_t count = total - first;
        if (count > *budget) {
            first += count - *budget;
            count = *budget;
            *truncated = true;
        }
        *budget -= count;
        memcpy (plan [k].name, names [i], sizeof plan [k].name);
        plan [k].offset = first;
        plan [k++].count = count;
    }
    return k;
}

typedef enum { C_T, C_T0, C_FRAMES, C_VALUE, C_LO, C_HI, C_LAST, C_SAMPLES, C_WEIGHT,
               C_LEVEL, C_LABEL, C_N } column_t;
static const char *const s_columns [C_N] = {
    "t_ms", "t0_ms", "frames", "value", "lo", "hi", "last", "samples", "weight", "level", "label",
};

static void
s_pack_column (msgpack_packer *pk, column_t c, const db_point_t *p, int64_t n)
{
    ctl_pack_str (pk, s_columns [c]);
    msgpack_pack_array (pk, (uint32_t) n);
    for (int64_t i = 0; i < n; i++)
        switch (c) {
            case C_T:       msgpack_pack_int64 (pk, p [i].t_ms); break;
            case C_T0:      msgpack_pack_int64 (pk, p [i].t0_ms); break;
            case C_FRAMES:  msgpack_pack_uint64 (pk, p [i].frames); break;
            case C_VALUE:   msgpack_pack_double (pk, p [i].mean); break;
            case C_LO:      msgpack_pack_double (pk, p [i].lo); break;
            case C_HI:      msgpack_pack_double (pk, p [i].hi); break;
            case C_LAST:    msgpack_pack_double (pk, p [i].last); break;
            case C_SAMPLES: msgpack_pack_uint64 (pk, p [i].samples); break;
            case C_WEIGHT:  msgpack_pack_double (pk, p [i].weight); break;
            case C_LEVEL:   msgpack_pack_uint32 (pk, p [i].level); break;
            default:        ctl_pack_str (pk, p [i].label); break;
        }
}

//  One series: its planned points read in pages, then packed by column.
static int
s_pack_series (db_t *db, msgpack_packer *pk, int64_t agent, const plan_t *plan)
{
    db_point_t *pts = plan->count ? malloc (sizeof (db_point_t) * (size_t) plan->count) : NULL;
    if (plan->count && !pts)
        return -1;
    int64_t got = 0;
    while (got < plan->count) {
        int want = plan->count - got > 4096 ? 4096 : (int) (plan->count - got);
        int n = db_series_read (db, agent, plan->name, plan->offset + got, pts + got, want, NULL);
        if (n <= 0)
            break;
        got += n;
    }
    ctl_pack_str (pk, plan->name);
    msgpack_pack_map (pk, C_N);
    for (int c = 0; c < C_N; c++)
        s_pack_column (pk, (column_t) c, pts, got);
    free (pts);
    return 0;
}

int
curves_pack (db_t *db, msgpack_packer *pk, int64_t lo, int64_t hi, const char *metric,
             int64_t last, char *err, size_t err_len)
{
    int64_t n_agents = hi - lo + 1, budget = CURVES_MAX_POINTS, points = 0;
    bool truncated = false;
    plan_t (*plans) [CURVES_MAX_SERIES] = calloc ((size_t) (n_agents > 0 ? n_agents : 1),
                                                 sizeof *plans);
    int *counts = calloc ((size_t) (n_agents > 0 ? n_agents : 1), sizeof (int));
    int rc = -1;
    if (!plans || !counts) {
        snprintf (err, err_len, "out of memory");
        goto done;
    }
    for (int64_t a = 0; a < n_agents; a++) {
        counts [a] = s_plan (db, lo + a, metric, last, &budget, &truncated, plans [a]);
        if (counts [a] < 0) {
            snprintf (err, err_len, "database error");
            goto done;
        }
        for (int k = 0; k < counts [a]; k++)
            points += plans [a][k].count;
    }
    msgpack_pack_map (pk, 3);
    ctl_pack_str (pk, "agents");
    msgpack_pack_map (pk, (uint32_t) n_agents);
    for (int64_t a = 0; a < n_agents; a++) {
        char name [32];
        if (lo + a < 0)
            snprintf (name, sizeof name, "population");
        else
            snprintf (name, sizeof name, "agt_%" PRId64, lo + a);
        ctl_pack_str (pk, name);
        msgpack_pack_map (pk, (uint32_t) counts [a]);
        for (int k = 0; k < counts [a]; k++)
            if (s_pack_series (db, pk, lo + a, &plans [a][k])) {
                snprintf (err, err_len, "out of memory");
                goto done;
            }
    }
    ctl_pack_str (pk, "points");
    msgpack_pack_int64 (pk, points);
    ctl_pack_str (pk, "truncated");
    if (truncated)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    rc = 0;
done:
    free (plans);
    free (counts);
    return rc;
}
