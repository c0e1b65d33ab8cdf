/*  reader: history-sized control queries off the reactor (see reader.h). */
#include "reader.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ctl_reply.h"
#include "curves.h"
#include "db.h"
#include "log.h"
#include "proto.h"

//  The thread runs below the workers' priority, at pbtctl's own
//  (PBTCTL_NICE): on a shared machine a query should take the time of
//  those looking, not training's.
#define READER_NICE 10

typedef struct reader_args_s reader_args_t;

struct _reader_t {
    zactor_t *actor;
    reader_args_t *args;            // the thread's settings, freed after it ends
    uint32_t in_flight;             // reactor's count: submitted, not yet replied
    uint64_t served;
};

struct reader_args_s {
    char path [4096];
    int n_agents;
    double elo_initial;
    uint64_t payoff_window;
    bool ok;
};

static const char *const s_commands [] = {
    "history", "matches", "lineage", "metrics", "payoff", "series", "curves", NULL
};

bool
reader_serves (const char *cmd)
{
    for (int i = 0; s_commands [i]; i++)
        if (!strcmp (cmd, s_commands [i]))
            return true;
    return false;
}

//  "agt_3" or "3" -> 3; -1 if malformed or not an agent of this population.
static int64_t
s_parse_agent (const char *s, int n_agents)
{
    if (!strncmp (s, "agt_", 4))
        s += 4;
    char *end;
    long long v = strtoll (s, &end, 10);
    if (end == s || *end || v < 0 || v >= n_agents)
        return -1;
    return v;
}

//  An integer argument: absent -> dflt; present but not an integer in
//  [lo, hi] -> -1 with err naming it.
static int
s_arg_int (const proto_ctl_t *ctl, const char *key, int64_t dflt, int64_t lo, int64_t hi,
           int64_t *out, char *err, size_t err_len)
{
    int64_t a = proto_args_int (ctl->args, ctl->args_len, key, INT64_MIN);
    int64_t b = proto_args_int (ctl->args, ctl->args_len, key, INT64_MAX);
    char text [64];
    if (a == INT64_MIN && b == INT64_MAX) {
        bool present = proto_args_str (ctl->args, ctl->args_len, key, text, sizeof text) == 0
                    || !isnan (proto_args_double (ctl->args, ctl->args_len, key, NAN))
                    || proto_args_bool (ctl->args, ctl->args_len, key, false)
                    == proto_args_bool (ctl->args, ctl->args_len, key, true);
        if (present) {
            snprintf (err, err_len, "%s: '%s' must be an integer in %" PRId64 "..%" PRId64,
                      ctl->cmd, key, lo, hi);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (a < lo || a > hi) {
        snprintf (err, err_len, "%s: '%s' is %" PRId64 ", expected %" PRId64 "..%" PRId64,
                  ctl->cmd, key, a, lo, hi);
        return -1;
    }
    *out = a;
    return 0;
}

//  Run one query; err set on a refusal. The body goes to pk.
static void
s_query (db_t *db, const reader_args_t *cfg, const proto_ctl_t *ctl, msgpack_packer *pk,
         char *err, size_t err_len)
{
    char agent [PROTO_MAX_NAME] = "", name [DB_SERIES_NAME_MAX] = "";
    int64_t id = -1, offset = 0, limit = 0, before = 0;
    bool has_agent = proto_args_str (ctl->args, ctl->args_len, "agent", agent, sizeof agent) == 0;
    const char *cmd = ctl->cmd;
    if (has_agent && !((strcmp (cmd, "series") == 0 || strcmp (cmd, "curves") == 0)
                        && strcmp (agent, "population") == 0)
    &&  (id = s_parse_agent (agent, cfg->n_agents)) < 0) {
        snprintf (err, err_len, "no agent '%s' (agt_0..agt_%d)", agent, cfg->n_agents - 1);
        return;
    }
    int rc = 0;
    if (db_read_begin (db)) {
        snprintf (err, err_len, "database error");
        return;
    }
    if (!strcmp (cmd, "history")) {
        if (s_arg_int (ctl, "offset", 0, 0, INT64_MAX / 2, &offset, err, err_len) == 0
        &&  s_arg_int (ctl, "limit", CTL_REPLY_POINTS, 1, INT64_MAX / 2, &limit, err, err_len) == 0)
            rc = ctl_reply_history (db, pk, has_agent ? id : -1, cfg->n_agents, cfg->elo_initial,
                                    offset, limit, err, err_len);
    }
    else
    if (!strcmp (cmd, "series")) {
        proto_args_str (ctl->args, ctl->args_len, "name", name, sizeof name);
        if (!has_agent)
            snprintf (err, err_len, "series needs agent (agt_N or population)");
        else
        if (s_arg_int (ctl, "offset", 0, 0, INT64_MAX / 2, &offset, err, err_len) == 0
        &&  s_arg_int (ctl, "limit", CTL_REPLY_POINTS, 1, INT64_MAX / 2, &limit, err, err_len) == 0)
            rc = ctl_reply_series (db, pk, id < 0 ? DB_SERIES_POPULATION : id, name, offset, limit,
                                   err, err_len);
    }
    else
    if (!strcmp (cmd, "curves")) {
        //  Every agent's series, or one agent's; bounded (curves.h).
        proto_args_str (ctl->args, ctl->args_len, "metric", name, sizeof name);
        if (s_arg_int (ctl, "last", 0, 0, INT64_MAX / 2, &limit, err, err_len) == 0)
            rc = curves_pack (db, pk, has_agent ? id : 0, has_agent ? id : cfg->n_agents - 1,
                              name, limit, err, err_len) ? 1 : 0;
    }
    else
    if (!strcmp (cmd, "payoff")) {
        if (s_arg_int (ctl, "offset", 0, 0, INT64_MAX / 2, &offset, err, err_len) == 0
        &&  s_arg_int (ctl, "limit", CTL_REPLY_POINTS, 1, INT64_MAX / 2, &limit, err, err_len) == 0)
            rc = ctl_reply_payoff (db, pk, offset, limit, err, err_len);
    }
    else
    if (!strcmp (cmd, "lineage")) {
        if (!has_agent)
            snprintf (err, err_len, "lineage needs agent (e.g. agt_0)");
        else
            rc = ctl_reply_lineage (db, pk, id);
    }
    else
    if (!strcmp (cmd, "matches")) {
        if (s_arg_int (ctl, "limit", 20, 1, 1000, &limit, err, err_len) == 0
        &&  s_arg_int (ctl, "before", 0, 0, INT64_MAX, &before, err, err_len) == 0)
            rc = ctl_reply_matches (db, pk, (int) limit, before);
    }
    else
    if (!strcmp (cmd, "metrics")) {
        if (s_arg_int (ctl, "limit", 100000, 1, 100000, &limit, err, err_len) == 0)
            rc = ctl_reply_metrics (db, pk, limit);
    }
    db_read_end (db);
    if (rc < 0)
        snprintf (err, err_len, "database error");
}

//  Decode, run, encode: the encoded ctl_reply (malloc'd) or NULL.
static uint8_t *
s_serve (db_t *db, const reader_args_t *cfg, zframe_t *body, size_t *len)
{
    proto_msg_t msg;
    char err [PROTO_MAX_TEXT] = "";
    proto_msg_t reply = { .type = PROTO_CTL_REPLY };
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    bool decoded = proto_decode (zframe_data (body), zframe_size (body), &msg, err, sizeof err)
                   == PROTO_OK && msg.type == PROTO_CTL;
    if (decoded)
        s_query (db, cfg, &msg.u.ctl, &pk, err, sizeof err);
    else
    if (!err [0])
        snprintf (err, sizeof err, "not a ctl message");
    proto_ctl_reply_t *r = &reply.u.ctl_reply;
    if (err [0]) {
        r->ok = false;
        snprintf (r->error, sizeof r->error, "%s", err);
        log_info ("ctl", "cmd=%s ok=0 error=\"%s\"", decoded ? msg.u.ctl.cmd : "?", err);
    }
    else {
        r->ok = true;
        r->body = (uint8_t *) sbuf.data;
        r->body_len = sbuf.size;
        log_debug ("ctl", "cmd=%s ok=1 bytes=%zu reader=1", msg.u.ctl.cmd, sbuf.size);
    }
    uint8_t *out = NULL;
    *len = 0;
    if (proto_encode (&reply, &out, len)) {
        log_error ("encode_failed", "type=ctl_reply bytes=%zu", sbuf.size);
        out = NULL;
    }
    msgpack_sbuffer_destroy (&sbuf);
    if (decoded)
        proto_msg_clear (&msg);
    return out;
}

static void
s_actor (zsock_t *pipe, void *arg)
{
    reader_args_t *cfg = arg;
    setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), READER_NICE);
    db_t *db = db_new_reader (cfg->path);
    if (db)
        db_set_payoff_window (db, cfg->payoff_window);
    cfg->ok = db != NULL;
    zsock_signal (pipe, 0);
    while (db) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;
        if (zmsg_size (msg) == 1) {
            zmsg_destroy (&msg);
            break;              // $TERM
        }
        zframe_t *rid = zmsg_pop (msg), *body = zmsg_pop (msg);
        size_t len = 0;
        uint8_t *out = body ? s_serve (db, cfg, body, &len) : NULL;
        //  Always answer, so the reactor's in-flight count comes back down.
        zmsg_t *reply = zmsg_new ();
        zmsg_append (reply, &rid);
        zmsg_addmem (reply, out, out ? len : 0);
        free (out);
        zmsg_send (&reply, pipe);
        zframe_destroy (&body);
        zmsg_destroy (&msg);
    }
    db_destroy (&db);
}

reader_t *
reader_new (const char *db_path, int n_agents, double elo_initial, uint64_t payoff_window)
{
    reader_t *self = calloc (1, sizeof *self);
    reader_args_t *args = calloc (1, sizeof *args);
    if (!self || !args || strlen (db_path) >= sizeof args->path)
        goto fail;
    snprintf (args->path, sizeof args->path, "%s", db_path);
    args->n_agents = n_agents;
    args->elo_initial = elo_initial;
    args->payoff_window = payoff_window;
    self->args = args;
    self->actor = zactor_new (s_actor, args);
    if (!self->actor || !args->ok) {
        log_error ("reader_failed", "path=%s why=\"could not open the database read-only\"", db_path);
        goto fail;
    }
    return self;
fail:
    if (self)
        zactor_destroy (&self->actor);
    free (args);
    free (self);
    return NULL;
}

void
reader_destroy (reader_t **self_p)
{
    reader_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);      // sends $TERM, waits for the thread
    free (self->args);
    free (self);
    *self_p = NULL;
}

int
reader_submit (reader_t *self, zframe_t *routing_id, zframe_t *body)
{
    if (self->in_flight >= READER_MAX_IN_FLIGHT)
        return -1;
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, (zframe_t *[]) { zframe_dup (routing_id) });
    zmsg_append (msg, (zframe_t *[]) { zframe_dup (body) });
    if (zmsg_send (&msg, zactor_sock (self->actor))) {
        zmsg_destroy (&msg);
        return -1;
    }
    self->in_flight++;
    return 0;
}

zsock_t *
reader_sock (reader_t *self)
{
    return zactor_sock (self->actor);
}

int
reader_recv (reader_t *self, zframe_t **routing_id, zframe_t **reply)
{
    zmsg_t *msg = zmsg_recv (zactor_sock (self->actor));
    if (!msg)
        return -1;
    if (self->in_flight)
        self->in_flight--;
    self->served++;
    *routing_id = zmsg_pop (msg);
    *reply = zmsg_pop (msg);
    zmsg_destroy (&msg);
    if (!*routing_id || !*reply) {
        zframe_destroy (routing_id);
        zframe_destroy (reply);
        return -1;
    }
    return 0;
}

uint64_t
reader_served (reader_t *self)
{
    return self->served;
}

uint32_t
reader_in_flight (reader_t *self)
{
    return self->in_flight;
}
