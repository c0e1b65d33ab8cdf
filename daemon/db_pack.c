/*  db_pack: MessagePack replies for pbtctl queries. */
#include "db_priv.h"

#include <msgpack.h>

//  --------------------------------------------------------------------------
//  Control queries

static void
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t n = strlen (s);
    msgpack_pack_str (pk, n);
    msgpack_pack_str_body (pk, s, n);
}

static void
s_pack_agent_name (msgpack_packer *pk, int64_t id)
{
    char name [32];
    snprintf (name, sizeof name, "agt_%" PRId64, id);
    s_pack_str (pk, name);
}

//  Parse the {"name":value,...} text s_hp_json wrote and pack it as a map.
static void
s_pack_hp_json (msgpack_packer *pk, const char *json)
{
    proto_kvs_t hp = { 0 };
    const char *p = json;
    if (*p == '{')
        p++;
    while (*p == '"') {
        const char *q = strchr (p + 1, '"');
        if (!q || q [1] != ':')
            break;
        char name [PROTO_MAX_NAME];
        snprintf (name, sizeof name, "%.*s", (int) (q - p - 1), p + 1);
        char *end;
        double v = strtod (q + 2, &end);
        proto_kvs_set (&hp, name, v);
        p = end;
        if (*p == ',')
            p++;
    }
    msgpack_pack_map (pk, hp.count);
    for (uint32_t i = 0; i < hp.count; i++) {
        s_pack_str (pk, hp.items [i].name);
        msgpack_pack_double (pk, hp.items [i].value);
    }
}

//  hyperparameters: name -> [value per history seq], in first-seen order.
static int
s_pack_hparam_history (db_t *self, msgpack_packer *pk, int64_t id)
{
    proto_kvs_t names = { 0 };
    int rc;
    sqlite3_stmt *st = s_q (self, Q_HIST_HP);
    sqlite3_bind_int64 (st, 1, id);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        if (!proto_kvs_has (&names, (const char *) sqlite3_column_text (st, 1)))
            proto_kvs_set (&names, (const char *) sqlite3_column_text (st, 1), 0);
    sqlite3_reset (st);
    if (rc != SQLITE_DONE)
        return -1;
    msgpack_pack_map (pk, names.count);
    for (uint32_t k = 0; k < names.count; k++) {
        s_pack_str (pk, names.items [k].name);
        //  Count first (MessagePack arrays are length-prefixed).
        uint32_t n = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1)
                msgpack_pack_array (pk, n);
            st = s_q (self, Q_HIST_HP);
            sqlite3_bind_int64 (st, 1, id);
            uint32_t got = 0;
            while ((rc = sqlite3_step (st)) == SQLITE_ROW)
                if (!strcmp ((const char *) sqlite3_column_text (st, 1), names.items [k].name)) {
                    if (pass == 0)
                        n++;
                    else
                    if (got++ < n)
                        msgpack_pack_double (pk, sqlite3_column_double (st, 2));
                }
            sqlite3_reset (st);
            for (; pass == 1 && got < n; got++)
                msgpack_pack_nil (pk);
            if (rc != SQLITE_DONE)
                return -1;
        }
    }
    return 0;
}

//  step: 0, then the agent's total frames at each evolution.
static int
s_pack_steps (db_t *self, msgpack_packer *pk, int64_t id)
{
    uint32_t n_evo = 0;
    int rc;
    sqlite3_stmt *st = s_q (self, Q_HIST_EVOS);
    sqlite3_bind_int64 (st, 1, id);
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        n_evo++;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE)
        return -1;
    msgpack_pack_array (pk, n_evo + 1);
    msgpack_pack_uint64 (pk, 0);
    st = s_q (self, Q_HIST_EVOS);
    sqlite3_bind_int64 (st, 1, id);
    uint32_t got = 0;
    while (got < n_evo && sqlite3_step (st) == SQLITE_ROW) {
        msgpack_pack_int64 (pk, sqlite3_column_int64 (st, 0));
        got++;
    }
    sqlite3_reset (st);
    for (; got < n_evo; got++)
        msgpack_pack_nil (pk);
    return 0;
}

//  One agent's history in the seed's shape (see db.h), from its "score"
//  and "rating" series: they are appended together, so they merge alike
//  and their points correspond one to one.
static int
s_pack_history_one (db_t *self, msgpack_packer *pk, int64_t id, double elo_initial,
                    int64_t offset, int limit, db_point_t *score, db_point_t *rating)
{
    int64_t total = 0, total_r = 0;
    int n = db_series_read (self, id, "score", offset, score, limit, &total);
    int m = db_series_read (self, id, "rating", offset, rating, limit, &total_r);
    if (n < 0 || m < 0)
        return -1;
    if (m != n || total_r != total) {
        log_error ("db_history_misaligned", "agent=%" PRId64 " score=%" PRId64 " rating=%" PRId64,
                   id, total, total_r);
        return -1;
    }
    db_agent_t agent;
    if (db_load_agent (self, id, &agent) != 0)
        return -1;
    bool merged = false;
    for (int k = 0; k < n; k++)
        merged = merged || score [k].level > 0;
    msgpack_pack_map (pk, 9);
    s_pack_str (pk, "hyperparameters");
    if (s_pack_hparam_history (self, pk, id))
        return -1;
    //  Entry 0 is the seed's placeholder before any result.
    s_pack_str (pk, "opponent");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    s_pack_str (pk, "NA");
    for (int k = 0; k < n; k++)
        s_pack_str (pk, score [k].label [0] ? score [k].label : "mixed");
    s_pack_str (pk, "score");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_double (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, score [k].mean);
    s_pack_str (pk, "rating");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_double (pk, elo_initial);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, rating [k].last);
    s_pack_str (pk, "step");
    if (s_pack_steps (self, pk, id))
        return -1;
    s_pack_str (pk, "ts");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_int64 (pk, agent.created_at);
    for (int k = 0; k < n; k++)
        msgpack_pack_int64 (pk, score [k].t_ms);
    s_pack_str (pk, "frames");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_uint64 (pk, score [k].frames);
    s_pack_str (pk, "episodes");
    msgpack_pack_array (pk, (uint32_t) n + 1);
    msgpack_pack_uint64 (pk, 0);
    for (int k = 0; k < n; k++)
        msgpack_pack_double (pk, score [k].weight);
    s_pack_str (pk, "page");
    msgpack_pack_map (pk, 6);
    s_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    s_pack_str (pk, "count");
    msgpack_pack_int64 (pk, n);
    s_pack_str (pk, "total");
    msgpack_pack_int64 (pk, total);
    s_pack_str (pk, "more");
    if (offset + n < total)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "downsampled");
    if (merged)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "results");
    uint64_t results = 0;
    for (int k = 0; k < n; k++)
        results += score [k].samples;
    msgpack_pack_uint64 (pk, results);
    return 0;
}

int
db_pack_history (db_t *self, msgpack_packer *pk, int64_t agent_id, int n_agents,
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
    //  The reply is bounded whatever was asked: at most DB_HISTORY_REPLY_POINTS
    //  points in all (each entry's page says whether more follow).
    int64_t cap = DB_HISTORY_REPLY_POINTS / (agents > 0 ? agents : 1);
    int per = (int) (limit < cap ? limit : cap < 1 ? 1 : cap);
    int64_t longest = 0;
    for (int64_t id = first; id <= final; id++) {
        int64_t sid = 0, n = 0;
        int rc = db_series_id (self, id, "score", false, &sid);
        if (rc < 0)
            return -1;
        if (rc == 0) {
            sqlite3_stmt *st = s_q (self, Q_SER_COUNT);
            sqlite3_bind_int64 (st, 1, sid);
            if (s_int (self, st, &n, "series_count"))
                return -1;
        }
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
        s_pack_agent_name (pk, id);
        ret = s_pack_history_one (self, pk, id, elo_initial, offset, per, score, rating);
    }
    free (score);
    free (rating);
    if (ret)
        s_fail (self, "history");
    return ret;
}

//  series: the points of one series, or the names of an agent's series.
int
db_pack_series (db_t *self, msgpack_packer *pk, int64_t agent, const char *name,
                int64_t offset, int64_t limit, char *err, size_t err_len)
{
    if (!name || !*name) {
        char names [256][DB_SERIES_NAME_MAX];
        int n = db_series_names (self, agent, names, 256);
        if (n < 0)
            return -1;
        msgpack_pack_map (pk, 1);
        s_pack_str (pk, "names");
        msgpack_pack_array (pk, (uint32_t) n);
        for (int k = 0; k < n; k++)
            s_pack_str (pk, names [k]);
        return 0;
    }
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "series: offset must be >= 0 and limit >= 1");
        return 1;
    }
    if (limit > DB_HISTORY_REPLY_POINTS)
        limit = DB_HISTORY_REPLY_POINTS;
    db_point_t *p = malloc ((size_t) limit * sizeof *p);
    if (!p)
        return -1;
    int64_t total = 0;
    int n = db_series_read (self, agent, name, offset, p, (int) limit, &total);
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
    s_pack_str (pk, "agent");
    if (agent < 0)
        s_pack_str (pk, "population");
    else
        s_pack_agent_name (pk, agent);
    s_pack_str (pk, "name");
    s_pack_str (pk, name);
    s_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    s_pack_str (pk, "total");
    msgpack_pack_int64 (pk, total);
    s_pack_str (pk, "more");
    if (offset + n < total)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "level_points");
    msgpack_pack_int64 (pk, DB_SERIES_LEVEL_POINTS);
    s_pack_str (pk, "points");
    msgpack_pack_array (pk, (uint32_t) n);
    for (int k = 0; k < n; k++) {
        msgpack_pack_map (pk, 11);
        s_pack_str (pk, "t0_ms");
        msgpack_pack_int64 (pk, p [k].t0_ms);
        s_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, p [k].t_ms);
        s_pack_str (pk, "frames");
        msgpack_pack_uint64 (pk, p [k].frames);
        s_pack_str (pk, "level");
        msgpack_pack_uint32 (pk, p [k].level);
        s_pack_str (pk, "samples");
        msgpack_pack_uint64 (pk, p [k].samples);
        s_pack_str (pk, "weight");
        msgpack_pack_double (pk, p [k].weight);
        s_pack_str (pk, "mean");
        msgpack_pack_double (pk, p [k].mean);
        s_pack_str (pk, "lo");
        msgpack_pack_double (pk, p [k].lo);
        s_pack_str (pk, "hi");
        msgpack_pack_double (pk, p [k].hi);
        s_pack_str (pk, "last");
        msgpack_pack_double (pk, p [k].last);
        s_pack_str (pk, "label");
        if (p [k].label [0])
            s_pack_str (pk, p [k].label);
        else
            msgpack_pack_nil (pk);
    }
    free (p);
    return 0;
}

static void
s_pack_wdl (msgpack_packer *pk, const db_wdl_t *w)
{
    msgpack_pack_map (pk, 6);
    s_pack_str (pk, "episodes");
    msgpack_pack_uint64 (pk, w->episodes);
    s_pack_str (pk, "wins");
    msgpack_pack_uint64 (pk, w->wins);
    s_pack_str (pk, "draws");
    msgpack_pack_uint64 (pk, w->draws);
    s_pack_str (pk, "losses");
    msgpack_pack_uint64 (pk, w->losses);
    s_pack_str (pk, "score_sum");
    msgpack_pack_double (pk, w->score_sum);
    s_pack_str (pk, "mean_score");
    if (w->episodes)
        msgpack_pack_double (pk, w->score_sum / (double) w->episodes);
    else
        msgpack_pack_nil (pk);
}

//  payoff: every cell of the payoff matrix, counters as kept.
int
db_pack_payoff (db_t *self, msgpack_packer *pk, int64_t offset, int64_t limit,
                char *err, size_t err_len)
{
    if (offset < 0 || limit < 1) {
        snprintf (err, err_len, "payoff: offset must be >= 0 and limit >= 1");
        return 1;
    }
    if (limit > DB_HISTORY_REPLY_POINTS)
        limit = DB_HISTORY_REPLY_POINTS;
    int64_t want = offset + limit;
    db_payoff_t *cells = malloc ((size_t) (want + 1) * sizeof *cells);
    if (!cells)
        return -1;
    int n = db_payoff_list (self, cells, (int) want + 1);
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
    s_pack_str (pk, "window");
    msgpack_pack_uint64 (pk, self->payoff_window);
    s_pack_str (pk, "offset");
    msgpack_pack_int64 (pk, offset);
    s_pack_str (pk, "more");
    if (more)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    s_pack_str (pk, "cells");
    msgpack_pack_array (pk, (uint32_t) (last - offset));
    for (int k = (int) offset; k < last; k++) {
        const db_payoff_t *c = &cells [k];
        msgpack_pack_map (pk, 7);
        s_pack_str (pk, "agent");
        s_pack_agent_name (pk, c->agent);
        s_pack_str (pk, "version");
        msgpack_pack_uint64 (pk, c->version);
        s_pack_str (pk, "opp");
        s_pack_agent_name (pk, c->opp);
        s_pack_str (pk, "opp_version");
        msgpack_pack_uint64 (pk, c->opp_version);
        s_pack_str (pk, "all");
        s_pack_wdl (pk, &c->all);
        s_pack_str (pk, "recent");
        s_pack_wdl (pk, &c->recent);
        s_pack_str (pk, "updated_at");
        msgpack_pack_int64 (pk, c->updated_at);
    }
    free (cells);
    return 0;
}

int
db_pack_lineage (db_t *self, msgpack_packer *pk, int64_t agent_id)
{
    int rc;
    uint32_t n = 0;
    sqlite3_stmt *st = s_q (self, Q_LINEAGE);
    sqlite3_bind_int64 (st, 1, agent_id);
    //  Bounded reply: the newest DB_LINEAGE_REPLY_MAX evolutions.
    while (n < DB_LINEAGE_REPLY_MAX && (rc = sqlite3_step (st)) == SQLITE_ROW)
        n++;
    if (n == DB_LINEAGE_REPLY_MAX)
        rc = SQLITE_DONE;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "lineage");
        return -1;
    }
    //  Collect rows first: the donor lookup reuses another statement.
    typedef struct {
        int64_t id, donor, donor_version, ts, frames, old_v, new_v, gen, donor_evo;
        char old_hp [PROTO_MAX_KV * 80], new_hp [PROTO_MAX_KV * 80];
    } row_t;
    row_t *rows = calloc (n ? n : 1, sizeof *rows);
    if (!rows)
        return -1;
    st = s_q (self, Q_LINEAGE);
    sqlite3_bind_int64 (st, 1, agent_id);
    uint32_t got = 0;
    while (got < n && sqlite3_step (st) == SQLITE_ROW) {
        row_t *r = &rows [got++];
        r->id = sqlite3_column_int64 (st, 0);
        r->donor = sqlite3_column_int64 (st, 1);
        r->donor_version = sqlite3_column_int64 (st, 2);
        r->ts = sqlite3_column_int64 (st, 3);
        r->frames = sqlite3_column_int64 (st, 4);
        r->old_v = sqlite3_column_int64 (st, 5);
        r->new_v = sqlite3_column_int64 (st, 6);
        r->gen = sqlite3_column_int64 (st, 7);
        snprintf (r->old_hp, sizeof r->old_hp, "%s", (const char *) sqlite3_column_text (st, 8));
        snprintf (r->new_hp, sizeof r->new_hp, "%s", (const char *) sqlite3_column_text (st, 9));
    }
    sqlite3_reset (st);
    for (uint32_t i = 0; i < got; i++) {
        st = s_q (self, Q_DONOR_EVO);
        sqlite3_bind_int64 (st, 1, rows [i].donor);
        sqlite3_bind_int64 (st, 2, rows [i].id);
        rows [i].donor_evo = -1;
        if (s_int (self, st, &rows [i].donor_evo, "donor_evolution") < 0) {
            free (rows);
            return -1;
        }
    }
    msgpack_pack_map (pk, 2);
    s_pack_str (pk, "agent");
    s_pack_agent_name (pk, agent_id);
    s_pack_str (pk, "evolutions");
    msgpack_pack_array (pk, got);
    for (uint32_t i = 0; i < got; i++) {
        row_t *r = &rows [i];
        msgpack_pack_map (pk, 11);
        s_pack_str (pk, "id");
        msgpack_pack_int64 (pk, r->id);
        s_pack_str (pk, "donor");
        s_pack_agent_name (pk, r->donor);
        s_pack_str (pk, "donor_version");
        msgpack_pack_int64 (pk, r->donor_version);
        //  The donor's own latest evolution before this one: follow it with
        //  lineage on the donor to trace where these weights came from.
        s_pack_str (pk, "donor_evolution");
        if (r->donor_evo >= 0)
            msgpack_pack_int64 (pk, r->donor_evo);
        else
            msgpack_pack_nil (pk);
        s_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, r->ts);
        s_pack_str (pk, "frames");
        msgpack_pack_int64 (pk, r->frames);
        s_pack_str (pk, "old_version");
        msgpack_pack_int64 (pk, r->old_v);
        s_pack_str (pk, "new_version");
        msgpack_pack_int64 (pk, r->new_v);
        s_pack_str (pk, "generation");
        msgpack_pack_int64 (pk, r->gen);
        s_pack_str (pk, "old_hparams");
        s_pack_hp_json (pk, r->old_hp);
        s_pack_str (pk, "new_hparams");
        s_pack_hp_json (pk, r->new_hp);
    }
    free (rows);
    return 0;
}

int
db_pack_matches (db_t *self, msgpack_packer *pk, int limit, int64_t before)
{
    typedef struct { int64_t id, ts; char script [PROTO_MAX_NAME]; } row_t;
    if (limit < 1)
        limit = 1;
    if (limit > 1000)
        limit = 1000;
    row_t *rows = malloc ((size_t) limit * sizeof *rows);
    if (!rows)
        return -1;
    int n = 0, rc = SQLITE_DONE;
    sqlite3_stmt *st = s_q (self, Q_RESULTS_RECENT);
    sqlite3_bind_int (st, 1, limit);
    sqlite3_bind_int64 (st, 2, before > 0 ? before : INT64_MAX);
    while (n < limit && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        rows [n].id = sqlite3_column_int64 (st, 0);
        rows [n].ts = sqlite3_column_int64 (st, 1);
        rows [n].script [0] = 0;
        if (sqlite3_column_type (st, 2) == SQLITE_TEXT)
            snprintf (rows [n].script, sizeof rows [n].script, "%s",
                      (const char *) sqlite3_column_text (st, 2));
        n++;
    }
    sqlite3_reset (st);
    if (n < limit && rc != SQLITE_DONE) {
        free (rows);
        s_fail (self, "matches");
        return -1;
    }
    msgpack_pack_array (pk, (uint32_t) n);
    for (int i = 0; i < n; i++) {
        struct {
            int64_t slot, agent, frozen, team, episodes, wins, draws, losses, frames, wall_ms, pop;
            double score, before, after;
            char opp [256];
        } seats [PROTO_MAX_AGENTS];
        int k = 0;
        int64_t episodes = 0;
        st = s_q (self, Q_RSEATS_GET);
        sqlite3_bind_int64 (st, 1, rows [i].id);
        while (k < PROTO_MAX_AGENTS && (rc = sqlite3_step (st)) == SQLITE_ROW) {
            seats [k].slot = sqlite3_column_int64 (st, 0);
            seats [k].agent = sqlite3_column_int64 (st, 1);
            seats [k].frozen = sqlite3_column_type (st, 2) == SQLITE_NULL ? 0
                             : sqlite3_column_int64 (st, 2);
            seats [k].team = sqlite3_column_int64 (st, 3);
            snprintf (seats [k].opp, sizeof seats [k].opp, "%s", (const char *) sqlite3_column_text (st, 4));
            seats [k].episodes = sqlite3_column_int64 (st, 5);
            seats [k].wins = sqlite3_column_int64 (st, 6);
            seats [k].draws = sqlite3_column_int64 (st, 7);
            seats [k].losses = sqlite3_column_int64 (st, 8);
            seats [k].score = sqlite3_column_double (st, 9);
            seats [k].before = sqlite3_column_double (st, 10);
            seats [k].after = sqlite3_column_double (st, 11);
            seats [k].frames = sqlite3_column_int64 (st, 12);
            seats [k].wall_ms = sqlite3_column_int64 (st, 13);
            seats [k].pop = sqlite3_column_int64 (st, 14);
            if (seats [k].episodes > episodes)
                episodes = seats [k].episodes;
            k++;
        }
        sqlite3_reset (st);
        msgpack_pack_map (pk, 8);
        s_pack_str (pk, "id");
        msgpack_pack_int64 (pk, rows [i].id);
        s_pack_str (pk, "assignment");
        msgpack_pack_int64 (pk, rows [i].id);
        //  The scripted team's policy, nil in population play.
        s_pack_str (pk, "script");
        if (rows [i].script [0])
            s_pack_str (pk, rows [i].script);
        else
            msgpack_pack_nil (pk);
        s_pack_str (pk, "ts");
        msgpack_pack_int64 (pk, rows [i].ts);
        s_pack_str (pk, "episodes");
        msgpack_pack_int64 (pk, episodes);
        s_pack_str (pk, "wall_ms");
        msgpack_pack_int64 (pk, k ? seats [0].wall_ms : 0);
        s_pack_str (pk, "population_frames");
        msgpack_pack_int64 (pk, k ? seats [0].pop : 0);
        s_pack_str (pk, "seats");
        msgpack_pack_array (pk, (uint32_t) k);
        for (int j = 0; j < k; j++) {
            msgpack_pack_map (pk, 13);
            s_pack_str (pk, "slot");
            msgpack_pack_int64 (pk, seats [j].slot);
            s_pack_str (pk, "agent");
            s_pack_agent_name (pk, seats [j].agent);
            s_pack_str (pk, "frozen_version");
            if (seats [j].frozen)
                msgpack_pack_int64 (pk, seats [j].frozen);
            else
                msgpack_pack_nil (pk);
            s_pack_str (pk, "team");
            msgpack_pack_int64 (pk, seats [j].team);
            s_pack_str (pk, "opponent");
            s_pack_str (pk, seats [j].opp);
            s_pack_str (pk, "episodes");
            msgpack_pack_int64 (pk, seats [j].episodes);
            s_pack_str (pk, "wins");
            msgpack_pack_int64 (pk, seats [j].wins);
            s_pack_str (pk, "draws");
            msgpack_pack_int64 (pk, seats [j].draws);
            s_pack_str (pk, "losses");
            msgpack_pack_int64 (pk, seats [j].losses);
            //  Mean score per episode (the sum is score * episodes).
            s_pack_str (pk, "score");
            msgpack_pack_double (pk, seats [j].episodes ? seats [j].score / (double) seats [j].episodes : 0);
            s_pack_str (pk, "rating_before");
            msgpack_pack_double (pk, seats [j].before);
            s_pack_str (pk, "rating_after");
            msgpack_pack_double (pk, seats [j].after);
            s_pack_str (pk, "frames");
            msgpack_pack_int64 (pk, seats [j].frames);
        }
    }
    free (rows);
    return 0;
}

int
db_pack_metrics (db_t *self, msgpack_packer *pk, int64_t limit)
{
    //  Count first: MessagePack arrays are length-prefixed.
    sqlite3_stmt *st = s_q (self, Q_METRICS_RECENT);
    sqlite3_bind_int64 (st, 1, limit);
    uint32_t n = 0;
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        n++;
    sqlite3_reset (st);
    if (rc != SQLITE_DONE) {
        s_fail (self, "metrics");
        return -1;
    }
    msgpack_pack_array (pk, n);
    sqlite3_bind_int64 (st, 1, limit);
    uint32_t got = 0;
    while (got < n && sqlite3_step (st) == SQLITE_ROW) {
        msgpack_pack_map (pk, 4);
        static const char *keys [4] = { "ts", "results", "samples", "evolutions" };
        for (int c = 0; c < 4; c++) {
            s_pack_str (pk, keys [c]);
            msgpack_pack_int64 (pk, sqlite3_column_int64 (st, c));
        }
        got++;
    }
    sqlite3_reset (st);
    for (; got < n; got++)
        msgpack_pack_nil (pk);
    return 0;
}
