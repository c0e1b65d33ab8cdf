/*  curves: pbtctl's view of the series pbtd keeps per agent (training
    statistics, and any other series): `pbtctl curves`, `pbtctl
    export-run`, and the learning columns of `pbtctl status`.

    All of them read pbtd's "curves" control command (daemon/curves.h),
    one agent per request, so each reply is bounded.
*/
#ifndef PBT_CURVES_CLI_H
#define PBT_CURVES_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

//  Points the status columns look at, per agent and metric (newest).
#define CURVES_STATUS_POINTS 20

//  pbtctl curves AGENT... [--metric M] [--last N] [--json|--csv]
int curves_cmd (ctl_t *ctl, int argc, char **argv);

//  pbtctl export-run DIR [--last N]
int export_run_cmd (ctl_t *ctl, int argc, char **argv);

//  Is a series going up? Over the newest n points (oldest first), the
//  weighted mean of the newer half minus that of the older half, and
//  whether that difference is more than twice its standard error (from
//  the spread of the points in each half). Needs n >= 6.
typedef struct {
    double recent;          // weighted mean of the newer half
    double delta;           // newer half minus older half
    double se;              // standard error of delta
    int verdict;            // +1 rising, -1 falling, 0 flat; -2 too few points
} curves_trend_t;

void curves_trend (const double *value, const double *weight, int n, curves_trend_t *out);

//  For pbtctl status: the newest CURVES_STATUS_POINTS points of metric for
//  every agent, summarised. trends[i] is for agt_i (verdict -2 when the
//  agent has none); returns 0, or -1 if pbtd has no such series (older
//  pbtd, no result yet).
int curves_status_trends (ctl_t *ctl, const char *metric, curves_trend_t *trends, int n_agents);

//  "up +0.123", "down -0.05", "flat +0.01", "-".
const char *curves_trend_text (const curves_trend_t *t, char *buf, size_t len);

#endif
