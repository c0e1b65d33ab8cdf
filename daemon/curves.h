/*  curves: the "curves" control command, any stored series (db.h) of one
    or every agent as columns, for pbtctl curves, export-run, status and
    the report.

    Reply body:
        {"agents": {"agt_0": {"entropy": {"t_ms": [...], "t0_ms": [...],
                    "frames": [...], "value": [...], "lo": [...], "hi": [...],
                    "last": [...], "samples": [...], "weight": [...],
                    "level": [...], "label": [...]}, ...}, ...},
         "points": N, "truncated": bool}
    Points are oldest first; "value" is the point's weighted mean (a point
    at level L merges about 2^L samples, db.h). The reply holds at most
    CURVES_MAX_POINTS points: past that the oldest points of the series
    packed last are left out and "truncated" is true. The work is bounded
    by that too, whatever the length of the run (series are bounded).

    It reads through the db_t it is given and nothing else, so it runs on
    whichever connection the caller reads from.
*/
#ifndef PBTD_CURVES_H
#define PBTD_CURVES_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define CURVES_MAX_POINTS 200000

//  Pack the series of agents lo..hi (inclusive; lo = hi = -1: the
//  population's own series, DB_SERIES_POPULATION, named "population"): only `metric` if not
//  NULL/empty, else every series each agent has; only the newest `last`
//  points of each if last > 0. An agent without the series has an empty
//  map (no result yet, or a worker that sends no statistics): absent,
//  never zero. 0, or -1 with err (database error, out of memory).
int curves_pack (db_t *db, msgpack_packer *pk, int64_t lo, int64_t hi, const char *metric,
                 int64_t last, char *err, size_t err_len);

#endif
