/*  ctl_reply: pbtctl's database queries (history, series, payoff, lineage,
    matches, metrics) packed as MessagePack reply bodies.

    docs/schema.md ("Control commands") has the shapes. The database layer
    (db.h) reads; this packs. pbtd runs these on a read-only connection
    (db_new_reader) off the reactor (reader.c). Replies are bounded: at
    most CTL_REPLY_POINTS points (history, series) or cells (payoff) per
    reply, paged by offset and limit, and each says whether more follow.
    Each returns 0, -1 on a database error, 1 on a bad request (err says
    what).
*/
#ifndef PBTD_CTL_REPLY_H
#define PBTD_CTL_REPLY_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

//  The small packers every reply uses (ctl.c and curves.c too).
void ctl_pack_str (msgpack_packer *pk, const char *s);
void ctl_pack_agent_name (msgpack_packer *pk, int64_t id);    // "agt_<id>"
void ctl_pack_bool (msgpack_packer *pk, bool b);
void ctl_pack_kvs (msgpack_packer *pk, const proto_kvs_t *kvs); // name -> value map

#define CTL_REPLY_POINTS        100000
#define CTL_REPLY_LINEAGE_MAX   10000

//  history: map agt_<id> -> {hyperparameters, opponent, score, rating,
//  step, ts, frames, episodes, page} for agent_id (every agent
//  0..n_agents-1 when < 0), from the agent's "score" and "rating" series:
//  entry 0 is the seed's placeholder, entry k >= 1 the series point
//  offset + k - 1 (one result at full resolution, several merged when
//  older), at most limit (and the reply's cap) entries per agent.
int ctl_reply_history (db_t *db, msgpack_packer *pk, int64_t agent_id, int n_agents,
                       double elo_initial, int64_t offset, int64_t limit,
                       char *err, size_t err_len);
//  series: {agent, name, offset, total, more, level_points, points: [...]};
//  with no name, {names: [...]} of the agent's (or population's, agent < 0) series.
int ctl_reply_series (db_t *db, msgpack_packer *pk, int64_t agent, const char *name,
                      int64_t offset, int64_t limit, char *err, size_t err_len);
//  payoff: {window, offset, more, cells: [{agent, version, opp, opp_version,
//  all: {...}, recent: {...}, updated_at}]}.
int ctl_reply_payoff (db_t *db, msgpack_packer *pk, int64_t offset, int64_t limit,
                      char *err, size_t err_len);
//  metrics: [{"ts","results","samples","evolutions"}], oldest first, the
//  last `limit` rows that housekeeping appended (cumulative counters).
int ctl_reply_metrics (db_t *db, msgpack_packer *pk, int64_t limit);
//  lineage: {"agent", "evolutions": [...newest first, at most CTL_REPLY_LINEAGE_MAX]}
int ctl_reply_lineage (db_t *db, msgpack_packer *pk, int64_t agent_id);
//  matches: the latest `limit` (1..1000) results with an assignment id
//  below `before` (<= 0: the newest), newest first, with each seat's
//  aggregates.
int ctl_reply_matches (db_t *db, msgpack_packer *pk, int limit, int64_t before);

#endif
