/*  db_series: multi-resolution time series and payoff counters. */
#include "db_priv.h"

#include <math.h>

//  --------------------------------------------------------------------------
//  Series (db.h)

//  The series' id, created if absent (create false: 1 if absent). 0 or -1.
static int
s_series_id (db_t *self, int64_t agent, const char *name, bool create, int64_t *id)
{
    sqlite3_stmt *st = s_q (self, Q_SER_ID);
    sqlite3_bind_int64 (st, 1, agent);
    sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
    int rc = s_int (self, st, id, "series_id");
    if (rc != 1 || !create)
        return rc;
    st = s_q (self, Q_SER_NEW);
    sqlite3_bind_int64 (st, 1, agent);
    sqlite3_bind_text (st, 2, name, -1, SQLITE_STATIC);
    if (s_exec (self, st, "series_new"))
        return -1;
    *id = sqlite3_last_insert_rowid (self->handle);
    return 0;
}

static int
s_point_put (db_t *self, int64_t sid, uint32_t level, int64_t seq, const db_point_t *p)
{
    sqlite3_stmt *st = s_q (self, Q_SER_PUT);
    sqlite3_bind_int64 (st, 1, sid);
    sqlite3_bind_int64 (st, 2, level);
    sqlite3_bind_int64 (st, 3, seq);
    sqlite3_bind_int64 (st, 4, p->t0_ms);
    sqlite3_bind_int64 (st, 5, p->t_ms);
    sqlite3_bind_int64 (st, 6, (int64_t) p->frames);
    sqlite3_bind_int64 (st, 7, (int64_t) p->samples);
    sqlite3_bind_double (st, 8, p->weight);
    sqlite3_bind_double (st, 9, p->mean);
    sqlite3_bind_double (st, 10, p->lo);
    sqlite3_bind_double (st, 11, p->hi);
    sqlite3_bind_double (st, 12, p->last);
    if (p->label [0])
        sqlite3_bind_text (st, 13, p->label, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (st, 13);
    return s_exec (self, st, "series_put");
}

//  A point row (columns from col: t0_ms, t_ms, frames, level or skipped,
//  samples, weight, mean, lo, hi, last, label).
static void
s_point_row (sqlite3_stmt *st, int col, bool has_level, db_point_t *p)
{
    memset (p, 0, sizeof *p);
    p->t0_ms = sqlite3_column_int64 (st, col++);
    p->t_ms = sqlite3_column_int64 (st, col++);
    p->frames = (uint64_t) sqlite3_column_int64 (st, col++);
    if (has_level)
        p->level = (uint32_t) sqlite3_column_int64 (st, col++);
    p->samples = (uint64_t) sqlite3_column_int64 (st, col++);
    p->weight = sqlite3_column_double (st, col++);
    p->mean = sqlite3_column_double (st, col++);
    p->lo = sqlite3_column_double (st, col++);
    p->hi = sqlite3_column_double (st, col++);
    p->last = sqlite3_column_double (st, col++);
    if (sqlite3_column_type (st, col) == SQLITE_TEXT)
        snprintf (p->label, sizeof p->label, "%s", (const char *) sqlite3_column_text (st, col));
}

//  While a level holds more than DB_SERIES_LEVEL_POINTS points, merge its
//  two oldest into one point of the next level. An append overflows level
//  0 by one point, so each level merges at most once per append.
static int
s_series_settle (db_t *self, int64_t sid)
{
    for (uint32_t level = 0; level + 1 < DB_SERIES_MAX_LEVELS; level++) {
        int64_t n = 0;
        sqlite3_stmt *st = s_q (self, Q_SER_LEVEL_N);
        sqlite3_bind_int64 (st, 1, sid);
        sqlite3_bind_int64 (st, 2, level);
        if (s_int (self, st, &n, "series_level_count"))
            return -1;
        if (n <= DB_SERIES_LEVEL_POINTS)
            return 0;
        db_point_t p [2];
        int64_t seq [2];
        int got = 0, rc;
        st = s_q (self, Q_SER_OLDEST2);
        sqlite3_bind_int64 (st, 1, sid);
        sqlite3_bind_int64 (st, 2, level);
        while (got < 2 && (rc = sqlite3_step (st)) == SQLITE_ROW) {
            seq [got] = sqlite3_column_int64 (st, 0);
            s_point_row (st, 1, false, &p [got]);
            got++;
        }
        sqlite3_reset (st);
        if (got < 2) {
            s_fail (self, "series_oldest");
            return -1;
        }
        db_point_t m = p [1];
        m.t0_ms = p [0].t0_ms;
        m.samples = p [0].samples + p [1].samples;
        m.weight = p [0].weight + p [1].weight;
        m.mean = (p [0].mean * p [0].weight + p [1].mean * p [1].weight) / m.weight;
        m.lo = fmin (p [0].lo, p [1].lo);
        m.hi = fmax (p [0].hi, p [1].hi);
        if (strcmp (p [0].label, p [1].label))
            m.label [0] = 0;
        st = s_q (self, Q_SER_DEL);
        sqlite3_bind_int64 (st, 1, sid);
        sqlite3_bind_int64 (st, 2, level);
        sqlite3_bind_int64 (st, 3, seq [1]);
        if (s_exec (self, st, "series_delete")
        ||  s_point_put (self, sid, level + 1, seq [1], &m))
            return -1;
    }
    return 0;
}

//  Append inside the caller's transaction.
int
db_series_append_in (db_t *self, int64_t agent, const char *name, int64_t t_ms, uint64_t frames,
                     double value, double weight, const char *label)
{
    if (!name || !*name || strlen (name) >= DB_SERIES_NAME_MAX || !isfinite (value)
    ||  !isfinite (weight) || !(weight > 0)) {
        log_error ("series_refused", "agent=%" PRId64 " name=\"%s\" value=%g weight=%g "
                   "why=\"name 1..63 bytes, value finite, weight finite and > 0\"",
                   agent, name ? name : "", value, weight);
        return -1;
    }
    int64_t sid = 0, seq = 0;
    if (s_series_id (self, agent, name, true, &sid))
        return -1;
    sqlite3_stmt *st = s_q (self, Q_SER_SEQ);
    sqlite3_bind_int64 (st, 1, sid);
    if (s_int (self, st, &seq, "series_seq"))
        return -1;
    db_point_t p = {
        .t0_ms = t_ms, .t_ms = t_ms, .frames = frames, .samples = 1, .weight = weight,
        .mean = value, .lo = value, .hi = value, .last = value,
    };
    if (label)
        snprintf (p.label, sizeof p.label, "%s", label);
    if (s_point_put (self, sid, 0, seq, &p))
        return -1;
    return s_series_settle (self, sid);
}

int
db_series_append (db_t *self, int64_t agent, const char *name, int64_t t_ms, uint64_t frames,
                  double value, double weight, const char *label)
{
    if (db_op_begin (self))
        return -1;
    if (db_series_append_in (self, agent, name, t_ms, frames, value, weight, label)) {
        db_op_rollback (self);
        return -1;
    }
    return db_op_commit (self);
}

int
db_series_read (db_t *self, int64_t agent, const char *name, int64_t offset,
                db_point_t *out, int max, int64_t *total)
{
    int64_t sid = 0, n = 0;
    if (total)
        *total = 0;
    int rc = s_series_id (self, agent, name, false, &sid);
    if (rc < 0)
        return -1;
    if (rc == 1)
        return 0;
    sqlite3_stmt *st = s_q (self, Q_SER_COUNT);
    sqlite3_bind_int64 (st, 1, sid);
    if (s_int (self, st, &n, "series_count"))
        return -1;
    if (total)
        *total = n;
    st = s_q (self, Q_SER_READ);
    sqlite3_bind_int64 (st, 1, sid);
    sqlite3_bind_int64 (st, 2, offset < 0 ? 0 : offset);
    sqlite3_bind_int64 (st, 3, max);
    int got = 0;
    while (got < max && (rc = sqlite3_step (st)) == SQLITE_ROW)
        s_point_row (st, 0, true, &out [got++]);
    if (got < max && rc != SQLITE_DONE) {
        sqlite3_reset (st);
        s_fail (self, "series_read");
        return -1;
    }
    sqlite3_reset (st);
    return got;
}

int
db_series_names (db_t *self, int64_t agent, char names [][DB_SERIES_NAME_MAX], int max)
{
    sqlite3_stmt *st = s_q (self, Q_SER_NAMES);
    sqlite3_bind_int64 (st, 1, agent);
    int n = 0, rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW)
        snprintf (names [n++], DB_SERIES_NAME_MAX, "%s", (const char *) sqlite3_column_text (st, 0));
    sqlite3_reset (st);
    if (n < max && rc != SQLITE_DONE) {
        s_fail (self, "series_names");
        return -1;
    }
    return n;
}

//  --------------------------------------------------------------------------
//  Payoff (db.h)

void
db_set_payoff_window (db_t *self, uint64_t episodes)
{
    self->payoff_window = episodes ? episodes : 1;
}

int
db_payoff_add_in (db_t *self, int64_t agent, uint64_t version, int64_t opp, uint64_t opp_version,
                  const db_wdl_t *d, int64_t now)
{
    sqlite3_stmt *st = s_q (self, Q_PAYOFF_ADD);
    sqlite3_bind_int64 (st, 1, agent);
    sqlite3_bind_int64 (st, 2, (int64_t) version);
    sqlite3_bind_int64 (st, 3, opp);
    sqlite3_bind_int64 (st, 4, (int64_t) opp_version);
    sqlite3_bind_int64 (st, 5, (int64_t) d->episodes);
    sqlite3_bind_int64 (st, 6, (int64_t) d->wins);
    sqlite3_bind_int64 (st, 7, (int64_t) d->draws);
    sqlite3_bind_int64 (st, 8, (int64_t) d->losses);
    sqlite3_bind_double (st, 9, d->score_sum);
    sqlite3_bind_int64 (st, 10, (int64_t) self->payoff_window);
    sqlite3_bind_int64 (st, 11, now);
    return s_exec (self, st, "payoff_add");
}

int
db_payoff_add (db_t *self, int64_t agent, uint64_t version, int64_t opp, uint64_t opp_version,
               const db_wdl_t *delta, int64_t now)
{
    if (!isfinite (delta->score_sum)
    ||  delta->wins + delta->draws + delta->losses != delta->episodes) {
        log_error ("payoff_refused", "agent=%" PRId64 " opp=%" PRId64 " why=\"wins + draws + "
                   "losses must equal episodes, score finite\"", agent, opp);
        return -1;
    }
    if (db_op_begin (self))
        return -1;
    if (db_payoff_add_in (self, agent, version, opp, opp_version, delta, now)) {
        db_op_rollback (self);
        return -1;
    }
    return db_op_commit (self);
}

int
db_payoff_list (db_t *self, db_payoff_t *out, int max)
{
    sqlite3_stmt *st = s_q (self, Q_PAYOFF_ALL);
    int n = 0, rc = SQLITE_DONE;
    while (n < max && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        db_payoff_t *c = &out [n++];
        c->agent = sqlite3_column_int64 (st, 0);
        c->version = (uint64_t) sqlite3_column_int64 (st, 1);
        c->opp = sqlite3_column_int64 (st, 2);
        c->opp_version = (uint64_t) sqlite3_column_int64 (st, 3);
        db_wdl_t *w [2] = { &c->all, &c->recent };
        for (int k = 0; k < 2; k++) {
            w [k]->episodes = (uint64_t) sqlite3_column_int64 (st, 4 + 5 * k);
            w [k]->wins = (uint64_t) sqlite3_column_int64 (st, 5 + 5 * k);
            w [k]->draws = (uint64_t) sqlite3_column_int64 (st, 6 + 5 * k);
            w [k]->losses = (uint64_t) sqlite3_column_int64 (st, 7 + 5 * k);
            w [k]->score_sum = sqlite3_column_double (st, 8 + 5 * k);
        }
        c->updated_at = sqlite3_column_int64 (st, 14);
    }
    sqlite3_reset (st);
    if (n < max && rc != SQLITE_DONE) {
        s_fail (self, "payoff_list");
        return -1;
    }
    return n;
}

int64_t
db_series_count (db_t *self, int64_t agent, const char *name)
{
    int64_t sid = 0, n = 0;
    int rc = s_series_id (self, agent, name, false, &sid);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    sqlite3_stmt *st = s_q (self, Q_SER_COUNT);
    sqlite3_bind_int64 (st, 1, sid);
    return s_int (self, st, &n, "series_count") ? -1 : n;
}

uint64_t
db_payoff_window (db_t *self)
{
    return self->payoff_window;
}
