/*  ctl_reply: packs the database's answers to pbtctl queries as MessagePack reply bodies. */
#include "ctl_reply.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void
ctl_pack_str (msgpack_packer *pk, const char *s)
{
    size_t n = strlen (s);
    msgpack_pack_str (pk, n);
    msgpack_pack_str_body (pk, s, n);
}

void
ctl_pack_agent_name (msgpack_packer *pk, int64_t id)
{
    char name [32];
    snprintf (name, sizeof name, "agt_%" PRId64, id);
    ctl_pack_str (pk, name);
}

void
ctl_pack_bool (msgpack_packer *pk, bool b)
{
    if (b)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}

void
ctl_pack_kvs (msgpack_packer *pk, const proto_kvs_t *kvs)
{
    msgpack_pack_map (pk, kvs->count);
    for (uint32_t i = 0; i < kvs->count; i++) {
        ctl_pack_str (pk, kvs->items [i].name);
        msgpack_pack_double (pk, kvs->items [i].value);
    }
}

//  --------------------------------------------------------------------------
//  history

//  hyperparameters: name -> [value per history seq], in first-seen order.
static int
s_pack_hparam_history (db_t *db, msgpack_packer *pk, int64_t id)
{
    db_hparam_t *rows = NULL;
    int64_t n = db_hparam_history (db, id, &rows);
    if (n < 0)
        return -1;
    proto_kvs_t names = { 0 };
    for (int64_t r = 0; r < n; r++)
        if (!proto_kvs_has (&names, rows [r].name))
            proto_kvs_set (&names, rows [r].name, 0);
    msgpack_pack_map (pk, names.count);
    for (uint32_t k = 0; k < names.count; k++) {
        ctl_pack_str (pk, names.items [k].name);
        //  Count first (MessagePack arrays are length-prefixed).
        uint32_t count = 0;
        for (int64_t r = 0; r < n; r++)
            count += !strcmp (rows [r].name, names.items [k].name);
        msgpack_pack_array (pk, count);
        for (int64_t r = 0; r < n; r++)
            if (!strcmp (rows [r].name, names.items [k].name))
                msgpack_pack_double (pk, rows [r].value);
    }
    free (rows);
    return 0;
}

//  step: 0, then the agent's total frames at each evolution.
static int
s_pack_steps (db_t *db, msgpack_packer *pk, int64_t id)
{
    int64_t *frames = NULL;
    int64_t n = db_evolution_frames (db, id, &frames);
    if (n < 0)
        return -1;
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int64_t k = 0; k < n; k++)
        msgpack_pack_int64 (pk, frames [k]);
    free (frames);
    return 0;
}

//  The page of one agent's history: where it starts, how much there is.
static void
s_pack_page (msgpack_packer *pk, int64_t offset, int n, int64_t total, const db_point_t *score)
{
    bool merged = false;
    uint64_t results = 0;
    for (int k = 0; k < n; k++) {
        merged = merged || score [k].level > 0;
        results += score [k].samples;
    }
    msgpack_pack_map (pk, 6);
    ctl_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    ctl_pack_str (pk, "count");
    msgpack_pack_int64 (pk, n);
    ctl_pack_str (pk, "total");
    msgpack_pack_int64 (pk, total);
    ctl_pack_str (pk, "more");
    ctl_pack_bool (pk, offset + n < total);
    ctl_pack_str (pk, "downsampled");
    ctl_pack_bool (pk, merged);
    ctl_pack_str (pk, "results");
    msgpack_pack_uint64 (pk, results);
}

//  One agent's history in the seed's shape (see ctl_reply.h), from its
//  "score" and "rating" series: they are appended together, so they merge
//  alike and their points correspond one to one.
static int
s_pack_history_one (db_t *db, msgpack_packer *pk, int64_t id, double elo_initial,
                    int64_t offset, int limit, db_point_t *score, db_point_t *rating)
{
    int64_t total = 0, total_r = 0;
    int n = db_series_read (db, id, "score", offset, score, limit, &total);
    int m = db_series_read (db, id, "rating", offset, rating, limit, &total_r);
    if (n < 0 || m < 0)
        return -1;
    if (m != n || total_r != total) {
        log_error ("db_history_misaligned", "agent=%" PRId64 " score=%" PRId64 " rating=%" PRId64,
                   id, total, total_r);
        return -1;
    }
    db_agent_t agent;
    if (db_load_agent (db, id, &agent) != 0)
        return -1;
    msgpack_pack_map (pk, 9);
    ctl_pack_str (pk, "hyperparameters");
    if (s_pack_hparam_history (db, pk, id))
        return -1;
    //  Entry 0 is the seed's placeholder before any result.
    ctl_pack_str (pk, "opponent");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    ctl_pack_str (pk, "NA");
    for (int k = 0; k < n; k++)
        ctl_pack_str (pk, score [k].label [0] ? score [k].label : "mixed");
    ctl_pack_str (pk, "score");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_double (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, score [k].mean);
    ctl_pack_str (pk, "rating");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_double (pk, elo_initial);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, rating [k].last);
    ctl_pack_str (pk, "step");
    if (s_pack_steps (db, pk, id))
        return -1;
    ctl_pack_str (pk, "ts");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_int64 (pk, agent.created_at);
    for (int k = 0; k < n; k++)
        msgpack_pack_int64 (pk, score [k].t_ms);
    ctl_pack_str (pk, "frames");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_uint64 (pk, score [k].frames);
    ctl_pack_str (pk, "episodes");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, score [k].weight);
    ctl_pack_str (pk, "page");
    s_pack_page (pk, offset, n, total, score);
    return 0;
}

int
ctl_reply_history (db_t *db, msgpack_packer *pk, int64_t agent_id, int n_agents,
                   double elo_initial, int64_t offset, int64_t limit, char *err, size_t err_len)
{
    int64_t first = agent_id >= 0 ? agent_id : 0;
    int64_t final = agent_id >= 0 ? agent_id : n_agents - 1;
    int64_t agents = final - first + 1;
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "history: offset must be >= 0 and limit >= 1 (got offset %"
                  PRId64 ", limit %" PRId64 ")", offset, limit);
        return 1;
    }
    //  The reply is bounded whatever was asked: at most CTL_REPLY_POINTS
    //  points in all (each entry's page says whether more follow).
    int64_t cap = CTL_REPLY_POINTS / (agents > 0 ? agents : 1);
    int per = (int) (limit < cap ? limit : cap < 1 ? 1 : cap);
    int64_t longest = 0;
    for (int64_t id = first; id <= final; id++) {
        int64_t n = db_series_count (db, id, "score");
        if (n < 0)
            return -1;
        longest = n > longest ? n : longest;
    }
    if (offset > 0 && offset >= longest) {
        snprintf (err, err_len, "history: offset %" PRId64 " is past the end (%s%" PRId64
                  " entries after the first)", offset, agent_id >= 0 ? "" : "longest: ", longest);
        return 1;
    }
    db_point_t *score = malloc ((size_t) per * sizeof *score);
    db_point_t *rating = malloc ((size_t) per * sizeof *rating);
    int ret = score && rating ? 0 : -1;
    if (ret == 0)
        msgpack_pack_map (pk, (uint32_t) agents);
    for (int64_t id = first; ret == 0 && id <= final; id++) {
        ctl_pack_agent_name (pk, id);
        ret = s_pack_history_one (db, pk, id, elo_initial, offset, per, score, rating);
    }
    free (score);
    free (rating);
    if (ret)
        log_error ("ctl_reply_failed", "cmd=history agent=%" PRId64, agent_id);
    return ret;
}

//  --------------------------------------------------------------------------
//  series

static void
s_pack_point (msgpack_packer *pk, const db_point_t *p)
{
    msgpack_pack_map (pk, 11);
    ctl_pack_str (pk, "t0_ms");
    msgpack_pack_int64 (pk, p->t0_ms);
    ctl_pack_str (pk, "ts");
    msgpack_pack_int64 (pk, p->t_ms);
    ctl_pack_str (pk, "frames");
    msgpack_pack_uint64 (pk, p->frames);
    ctl_pack_str (pk, "level");
    msgpack_pack_uint32 (pk, p->level);
    ctl_pack_str (pk, "samples");
    msgpack_pack_uint64 (pk, p->samples);
    ctl_pack_str (pk, "weight");
    msgpack_pack_double (pk, p->weight);
    ctl_pack_str (pk, "mean");
    msgpack_pack_double (pk, p->mean);
    ctl_pack_str (pk, "lo");
    msgpack_pack_double (pk, p->lo);
    ctl_pack_str (pk, "hi");
    msgpack_pack_double (pk, p->hi);
    ctl_pack_str (pk, "last");
    msgpack_pack_double (pk, p->last);
    ctl_pack_str (pk, "label");
    if (p->label [0])
        ctl_pack_str (pk, p->label);
    else
        msgpack_pack_nil (pk);
}

//  With no name: the names of the agent's series.
static int
s_pack_series_names (db_t *db, msgpack_packer *pk, int64_t agent)
{
    char names [256][DB_SERIES_NAME_MAX];
    int n = db_series_names (db, agent, names, 256);
    if (n < 0)
        return -1;
    msgpack_pack_map (pk, 1);
    ctl_pack_str (pk, "names");
    msgpack_pack_array (pk, (uint32_t) n);
    for (int k = 0; k < n; k++)
        ctl_pack_str (pk, names [k]);
    return 0;
}

int
ctl_reply_series (db_t *db, msgpack_packer *pk, int64_t agent, const char *name,
                  int64_t offset, int64_t limit, char *err, size_t err_len)
{
    if (!name || !*name)
        return s_pack_series_names (db, pk, agent);
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "series: offset must be >= 0 and limit >= 1");
        return 1;
    }
    if (limit > CTL_REPLY_POINTS)
        limit = CTL_REPLY_POINTS;
    db_point_t *p = malloc ((size_t) limit * sizeof *p);
    if (!p)
        return -1;
    int64_t total = 0;
    int n = db_series_read (db, agent, name, offset, p, (int) limit, &total);
    if (n < 0) {
        free (p);
        return -1;
    }
    if (total == 0 || (offset > 0 && offset >= total)) {
        free (p);
        if (total == 0)
            snprintf (err, err_len, "series: no series '%s' for %s%" PRId64, name,
                      agent < 0 ? "the population " : "agt_", agent);
        else
            snprintf (err, err_len, "series: offset %" PRId64 " is past the end (%" PRId64
                      " points)", offset, total);
        return 1;
    }
    msgpack_pack_map (pk, 7);
    ctl_pack_str (pk, "agent");
    if (agent < 0)
        ctl_pack_str (pk, "population");
    else
        ctl_pack_agent_name (pk, agent);
    ctl_pack_str (pk, "name");
    ctl_pack_str (pk, name);
    ctl_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    ctl_pack_str (pk, "total");
    msgpack_pack_int64 (pk, total);
    ctl_pack_str (pk, "more");
    ctl_pack_bool (pk, offset + n < total);
    ctl_pack_str (pk, "level_points");
    msgpack_pack_int64 (pk, DB_SERIES_LEVEL_POINTS);
    ctl_pack_str (pk, "points");
    msgpack_pack_array (pk, (uint32_t) n);
    for (int k = 0; k < n; k++)
        s_pack_point (pk, &p [k]);
    free (p);
    return 0;
}

//  --------------------------------------------------------------------------
//  payoff

static void
s_pack_wdl (msgpack_packer *pk, const db_wdl_t *w)
{
    msgpack_pack_map (pk, 6);
    ctl_pack_str (pk, "episodes");
    msgpack_pack_uint64 (pk, w->episodes);
    ctl_pack_str (pk, "wins");
    msgpack_pack_uint64 (pk, w->wins);
    ctl_pack_str (pk, "draws");
    msgpack_pack_uint64 (pk, w->draws);
    ctl_pack_str (pk, "losses");
    msgpack_pack_uint64 (pk, w->losses);
    ctl_pack_str (pk, "score_sum");
    msgpack_pack_double (pk, w->score_sum);
    ctl_pack_str (pk, "mean_score");
    if (w->episodes)
        msgpack_pack_double (pk, w->score_sum / (double) w->episodes);
    else
        msgpack_pack_nil (pk);
}

static void
s_pack_cell (msgpack_packer *pk, const db_payoff_t *c)
{
    msgpack_pack_map (pk, 7);
    ctl_pack_str (pk, "agent");
    ctl_pack_agent_name (pk, c->agent);
    ctl_pack_str (pk, "version");
    msgpack_pack_uint64 (pk, c->version);
    ctl_pack_str (pk, "opp");
    ctl_pack_agent_name (pk, c->opp);
    ctl_pack_str (pk, "opp_version");
    msgpack_pack_uint64 (pk, c->opp_version);
    ctl_pack_str (pk, "all");
    s_pack_wdl (pk, &c->all);
    ctl_pack_str (pk, "recent");
    s_pack_wdl (pk, &c->recent);
    ctl_pack_str (pk, "updated_at");
    msgpack_pack_int64 (pk, c->updated_at);
}

//  payoff: every cell of the payoff matrix, counters as kept.
int
ctl_reply_payoff (db_t *db, msgpack_packer *pk, int64_t offset, int64_t limit,
                  char *err, size_t err_len)
{
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "payoff: offset must be >= 0 and limit >= 1");
        return 1;
    }
    if (limit > CTL_REPLY_POINTS)
        limit = CTL_REPLY_POINTS;
    int64_t want = offset + limit;
    db_payoff_t *cells = malloc ((size_t) (want + 1) * sizeof *cells);
    if (!cells)
        return -1;
    int n = db_payoff_list (db, cells, (int) want + 1);
    if (n < 0) {
        free (cells);
        return -1;
    }
    if (offset > 0 && offset >= n) {
        free (cells);
        snprintf (err, err_len, "payoff: offset %" PRId64 " is past the end (%d cells)", offset, n);
        return 1;
    }
    bool more = n > want;
    int last = n > want ? (int) want : n;
    msgpack_pack_map (pk, 4);
    ctl_pack_str (pk, "window");
    msgpack_pack_uint64 (pk, db_payoff_window (db));
    ctl_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    ctl_pack_str (pk, "more");
    ctl_pack_bool (pk, more);
    ctl_pack_str (pk, "cells");
    msgpack_pack_array (pk, (uint32_t) (last - offset));
    for (int k = (int) offset; k < last; k++)
        s_pack_cell (pk, &cells [k]);
    free (cells);
    return 0;
}

//  --------------------------------------------------------------------------
//  lineage

static void
s_pack_evolution (msgpack_packer *pk, const db_evolution_t *r)
{
    msgpack_pack_map (pk, 11);
    ctl_pack_str (pk, "id");
    msgpack_pack_int64 (pk, r->id);
    ctl_pack_str (pk, "donor");
    ctl_pack_agent_name (pk, r->donor);
    ctl_pack_str (pk, "donor_version");
    msgpack_pack_int64 (pk, r->donor_version);
    //  The donor's own latest evolution before this one: follow it with
    //  lineage on the donor to trace where these weights came from.
    ctl_pack_str (pk, "donor_evolution");
    if (r->donor_evolution >= 0)
        msgpack_pack_int64 (pk, r->donor_evolution);
    else
        msgpack_pack_nil (pk);
    ctl_pack_str (pk, "ts");
    msgpack_pack_int64 (pk, r->ts);
    ctl_pack_str (pk, "frames");
    msgpack_pack_int64 (pk, r->frames);
    ctl_pack_str (pk, "old_version");
    msgpack_pack_int64 (pk, r->old_version);
    ctl_pack_str (pk, "new_version");
    msgpack_pack_int64 (pk, r->new_version);
    ctl_pack_str (pk, "generation");
    msgpack_pack_int64 (pk, r->generation);
    ctl_pack_str (pk, "old_hparams");
    ctl_pack_kvs (pk, &r->old_hparams);
    ctl_pack_str (pk, "new_hparams");
    ctl_pack_kvs (pk, &r->new_hparams);
}

int
ctl_reply_lineage (db_t *db, msgpack_packer *pk, int64_t agent_id)
{
    db_evolution_t *rows = NULL;
    int n = db_lineage (db, agent_id, CTL_REPLY_LINEAGE_MAX, &rows);
    if (n < 0)
        return -1;
    msgpack_pack_map (pk, 2);
    ctl_pack_str (pk, "agent");
    ctl_pack_agent_name (pk, agent_id);
    ctl_pack_str (pk, "evolutions");
    msgpack_pack_array (pk, (uint32_t) n);
    for (int i = 0; i < n; i++)
        s_pack_evolution (pk, &rows [i]);
    free (rows);
    return 0;
}

//  --------------------------------------------------------------------------
//  matches

static void
s_pack_result_seat (msgpack_packer *pk, const db_result_seat_t *s)
{
    msgpack_pack_map (pk, 13);
    ctl_pack_str (pk, "slot");
    msgpack_pack_int64 (pk, s->slot);
    ctl_pack_str (pk, "agent");
    ctl_pack_agent_name (pk, s->agent);
    ctl_pack_str (pk, "frozen_version");
    if (s->frozen_version)
        msgpack_pack_int64 (pk, s->frozen_version);
    else
        msgpack_pack_nil (pk);
    ctl_pack_str (pk, "team");
    msgpack_pack_int64 (pk, s->team);
    ctl_pack_str (pk, "opponent");
    ctl_pack_str (pk, s->opponent);
    ctl_pack_str (pk, "episodes");
    msgpack_pack_int64 (pk, s->episodes);
    ctl_pack_str (pk, "wins");
    msgpack_pack_int64 (pk, s->wins);
    ctl_pack_str (pk, "draws");
    msgpack_pack_int64 (pk, s->draws);
    ctl_pack_str (pk, "losses");
    msgpack_pack_int64 (pk, s->losses);
    //  Mean score per episode (the sum is score * episodes).
    ctl_pack_str (pk, "score");
    msgpack_pack_double (pk, s->episodes ? s->score_sum / (double) s->episodes : 0);
    ctl_pack_str (pk, "rating_before");
    msgpack_pack_double (pk, s->rating_before);
    ctl_pack_str (pk, "rating_after");
    msgpack_pack_double (pk, s->rating_after);
    ctl_pack_str (pk, "frames");
    msgpack_pack_int64 (pk, s->frames);
}

static int
s_pack_result (db_t *db, msgpack_packer *pk, const db_result_row_t *row)
{
    db_result_seat_t seats [PROTO_MAX_AGENTS];
    int k = db_result_seats (db, row->id, seats, PROTO_MAX_AGENTS);
    if (k < 0)
        return -1;
    int64_t episodes = 0;
    for (int j = 0; j < k; j++)
        if (seats [j].episodes > episodes)
            episodes = seats [j].episodes;
    msgpack_pack_map (pk, 8);
    ctl_pack_str (pk, "id");
    msgpack_pack_int64 (pk, row->id);
    ctl_pack_str (pk, "assignment");
    msgpack_pack_int64 (pk, row->id);
    //  The scripted team's policy, nil in population play.
    ctl_pack_str (pk, "script");
    if (row->script [0])
        ctl_pack_str (pk, row->script);
    else
        msgpack_pack_nil (pk);
    ctl_pack_str (pk, "ts");
    msgpack_pack_int64 (pk, row->ts);
    ctl_pack_str (pk, "episodes");
    msgpack_pack_int64 (pk, episodes);
    ctl_pack_str (pk, "wall_ms");
    msgpack_pack_int64 (pk, k ? seats [0].wall_ms : 0);
    ctl_pack_str (pk, "population_frames");
    msgpack_pack_int64 (pk, k ? seats [0].pop_frames : 0);
    ctl_pack_str (pk, "seats");
    msgpack_pack_array (pk, (uint32_t) k);
    for (int j = 0; j < k; j++)
        s_pack_result_seat (pk, &seats [j]);
    return 0;
}

int
ctl_reply_matches (db_t *db, msgpack_packer *pk, int limit, int64_t before)
{
    if (limit < 1)
        limit = 1;
    if (limit > 1000)
        limit = 1000;
    db_result_row_t *rows = malloc ((size_t) limit * sizeof *rows);
    if (!rows)
        return -1;
    int n = db_results_recent (db, before > 0 ? before : INT64_MAX, rows, limit);
    if (n < 0) {
        free (rows);
        return -1;
    }
    msgpack_pack_array (pk, (uint32_t) n);
    int ret = 0;
    for (int i = 0; ret == 0 && i < n; i++)
        ret = s_pack_result (db, pk, &rows [i]);
    free (rows);
    return ret;
}

//  --------------------------------------------------------------------------
//  metrics

int
ctl_reply_metrics (db_t *db, msgpack_packer *pk, int64_t limit)
{
    db_metrics_t *rows = NULL;
    int64_t n = db_metrics_recent (db, limit, &rows);
    if (n < 0)
        return -1;
    msgpack_pack_array (pk, (uint32_t) n);
    for (int64_t i = 0; i < n; i++) {
        msgpack_pack_map (pk, 4);
        ctl_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, rows [i].ts);
        ctl_pack_str (pk, "results");
        msgpack_pack_int64 (pk, rows [i].results);
        ctl_pack_str (pk, "samples");
        msgpack_pack_int64 (pk, rows [i].samples);
        ctl_pack_str (pk, "evolutions");
        msgpack_pack_int64 (pk, rows [i].evolutions);
    }
    free (rows);
    return 0;
}
