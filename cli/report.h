/*  report: `pbtctl report -o report.html`.

    Collects status, history, every agent's lineage, the recent matches,
    the training statistics' series and the throughput metrics from pbtd and writes ONE self-contained HTML
    file (inline CSS and SVG, no scripts, nothing fetched): Elo of every
    agent over time, learning curves per agent (game return, entropy, KL,
    value loss, explained variance; optionally smoothed; the agent's
    evolutions marked on each) on the Elo chart's time axis,
    hyperparameter trajectories with evolution
    events marked, the lineage (who inherited from whom, when), the
    win-rate matrix of the current agents over the recent matches, and
    throughput over time. The file is also well-formed XML, so it can be
    checked with any XML parser; every per-agent series carries
    data-agent="agt_N".

    --save-data FILE keeps what was collected (one MessagePack map) and
    --data FILE renders such a file without asking pbtd.
*/
#ifndef PBT_REPORT_H
#define PBT_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ctl.h"

//  pbtctl report. argv[0] is "report". Returns a pbtctl exit code.
int report_cmd (ctl_t *ctl, int argc, char **argv);

//  Render a collected bundle (MessagePack map with "status", "history",
//  "lineage" {agt_N: lineage reply}, "matches", "metrics", "curves"
//  {metric: curves reply}; any may be missing or nil) as HTML to out.
//  smooth (0 <= smooth < 1) is the learning curves' moving-average weight,
//  0 for points only. Returns 0, or -1 if data is not a map.
int report_render (const uint8_t *data, size_t len, double smooth, FILE *out);

#endif
