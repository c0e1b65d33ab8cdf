//  pbtd as a real subprocess, driven over real ZeroMQ (ipc://) by a test
//  client speaking proto: the worker protocol, its error paths, leases and
//  the control commands.
#include <criterion/criterion.h>
#include <czmq.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "envspec.h"
#include "proto.h"

static char s_dir [256];
static pid_t s_pid = -1;
static char s_wep [320], s_cep [320], s_db [320];

static void
s_start (const char *extra_ini)
{
    snprintf (s_dir, sizeof s_dir, "/tmp/pbt-test-srv-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    snprintf (s_wep, sizeof s_wep, "ipc://%s/w", s_dir);
    snprintf (s_cep, sizeof s_cep, "ipc://%s/c", s_dir);
    snprintf (s_db, sizeof s_db, "%s/pbt.db", s_dir);
    char ini [320];
    snprintf (ini, sizeof ini, "%s/pbtd.ini", s_dir);
    FILE *f = fopen (ini, "w");
    cr_assert_not_null (f);
    fprintf (f, "[daemon]\nworker_endpoint = %s\ncontrol_endpoint = %s\ndb = %s\n"
             "housekeeping_ms = 50\nlog_level = warn\n%s\n"
             "[model]\nhidden = 8\n[population]\nsize = 4\n",
             s_wep, s_cep, s_db, extra_ini ? extra_ini : "");
    fclose (f);
    const char *root = getenv ("PBT_BUILD_ROOT");
    cr_assert_not_null (root, "PBT_BUILD_ROOT not set");
    char exe [512];
    snprintf (exe, sizeof exe, "%s/daemon/pbtd", root);
    s_pid = fork ();
    cr_assert_geq (s_pid, 0);
    if (s_pid == 0) {
        execl (exe, exe, "--config", ini, (char *) NULL);
        _exit (127);
    }
}

static int
s_stop (void)
{
    int status = -1;
    if (s_pid > 0) {
        kill (s_pid, SIGTERM);
        waitpid (s_pid, &status, 0);
        s_pid = -1;
    }
    char cmd [400];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    if (system (cmd)) { }
    return status;
}

static zsock_t *
s_connect (const char *ep)
{
    zsock_t *s = zsock_new (ZMQ_DEALER);
    cr_assert_not_null (s);
    zsock_set_rcvtimeo (s, 10000);
    zsock_set_linger (s, 0);
    cr_assert_eq (zsock_connect (s, "%s", ep), 0);
    return s;
}

static void
s_send (zsock_t *s, const proto_msg_t *msg)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (msg, &buf, &len), 0);
    zframe_t *f = zframe_new (buf, len);
    free (buf);
    cr_assert_eq (zframe_send (&f, s, 0), 0);
}

static void
s_recv (zsock_t *s, proto_msg_t *msg)
{
    zmsg_t *m = zmsg_recv (s);
    cr_assert_not_null (m, "no reply from pbtd");
    cr_assert_eq (zmsg_size (m), 1);
    zframe_t *f = zmsg_first (m);
    char err [256];
    cr_assert_eq (proto_decode (zframe_data (f), zframe_size (f), msg, err, sizeof err), PROTO_OK, "%s", err);
    zmsg_destroy (&m);
}

static void
s_expect_error (zsock_t *s, proto_code_t code)
{
    proto_msg_t m;
    s_recv (s, &m);
    cr_assert_eq (m.type, PROTO_ERROR, "got %s", proto_type_name (m.type));
    cr_assert_eq (m.u.error.code, code, "got %s: %s", proto_code_name (m.u.error.code), m.u.error.message);
    proto_msg_clear (&m);
}

static zsock_t *
s_worker (void)
{
    zsock_t *w = s_connect (s_wep);
    proto_msg_t m = { .type = PROTO_HELLO };
    snprintf (m.u.hello.worker_id, sizeof m.u.hello.worker_id, "test:%d", getpid ());
    snprintf (m.u.hello.host, sizeof m.u.hello.host, "test");
    m.u.hello.pid = (uint32_t) getpid ();
    snprintf (m.u.hello.software, sizeof m.u.hello.software, "test/1");
    envspec_announce (&m.u.hello);
    s_send (w, &m);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_WELCOME);
    cr_assert_gt (r.u.welcome.lease_ms, r.u.welcome.heartbeat_ms);
    return w;
}

//  request -> assign; the caller clears *a.
static void
s_request (zsock_t *w, proto_msg_t *a)
{
    proto_msg_t m = { .type = PROTO_REQUEST };
    s_send (w, &m);
    s_recv (w, a);
    cr_assert_eq (a->type, PROTO_ASSIGN, "got %s", proto_type_name (a->type));
}

//  A result echoing the assignment: trained states = sent states + 0.5,
//  one episode that seat 0 wins.
static float s_scores [PROTO_MAX_AGENTS];
static void
s_make_result (const proto_assign_t *as, proto_msg_t *out)
{
    memset (out, 0, sizeof *out);
    out->type = PROTO_RESULT;
    proto_result_t *r = &out->u.result;
    r->assignment_id = as->assignment_id;
    r->samples_per_s = 1000;
    r->n_seats = as->n_seats;
    for (uint32_t i = 0; i < as->n_seats; i++) {
        r->seats [i].id = as->seats [i].id;
        r->seats [i].version = as->seats [i].version;
        r->seats [i].frames = 100;
        const proto_state_t *src = &as->seats [i].state;
        //  A seat without weights (never trained) gets the model's size,
        //  as a worker that made them from its init_seed would send.
        uint32_t n = src->n_params ? src->n_params : (uint32_t) proto_model_params (&as->model);
        cr_assert_eq (proto_state_alloc (&r->seats [i].state, n), 0);
        for (uint32_t k = 0; k < n; k++) {
            r->seats [i].state.params [k] = (src->params ? src->params [k] : 0) + 0.5f;
            r->seats [i].state.adam_v [k] = 1;
        }
        r->seats [i].state.adam_t = 7;
        s_scores [i] = i == 0 ? 1 : -1;
    }
    r->n_episodes = 1;
    r->scores = s_scores;
}

static void
s_free_result (proto_msg_t *m)
{
    for (uint32_t i = 0; i < m->u.result.n_seats; i++)
        proto_state_free (&m->u.result.seats [i].state);
    m->u.result.scores = NULL;
}

static int64_t
s_sql_int (const char *sql)
{
    sqlite3 *h;
    cr_assert_eq (sqlite3_open (s_db, &h), SQLITE_OK);
    sqlite3_busy_timeout (h, 5000);
    sqlite3_stmt *st;
    cr_assert_eq (sqlite3_prepare_v2 (h, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq (sqlite3_step (st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    sqlite3_close (h);
    return v;
}

//  Send a ctl and return the reply (caller clears).
static void
s_ctl (zsock_t *c, const char *cmd, const char *agent, proto_msg_t *reply)
{
    proto_msg_t m = { .type = PROTO_CTL };
    snprintf (m.u.ctl.cmd, sizeof m.u.ctl.cmd, "%s", cmd);
    //  args {"agent": agent}
    uint8_t args [64];
    size_t n = 0;
    if (agent) {
        args [n++] = 0x81;
        args [n++] = 0xa5;
        memcpy (args + n, "agent", 5);
        n += 5;
        args [n++] = (uint8_t) (0xa0 | strlen (agent));
        memcpy (args + n, agent, strlen (agent));
        n += strlen (agent);
        m.u.ctl.args = args;
        m.u.ctl.args_len = n;
    }
    s_send (c, &m);
    s_recv (c, reply);
    cr_assert_eq (reply->type, PROTO_CTL_REPLY);
}

static proto_view_t
s_get (proto_view_t map, const char *key)
{
    proto_view_t v;
    cr_assert_eq (proto_view_get (map, key, &v), 0, "missing key '%s'", key);
    return v;
}

//  Whatever happened in the test, no pbtd outlives it.
static void
s_fini (void)
{
    if (s_pid > 0)
        s_stop ();
}

TestSuite (server, .fini = s_fini, .timeout = 60);

Test (server, protocol_happy_path_and_errors)
{
    s_start (NULL);
    //  Before hello: bad_state.
    zsock_t *early = s_connect (s_wep);
    proto_msg_t m = { .type = PROTO_REQUEST };
    s_send (early, &m);
    s_expect_error (early, PROTO_E_STATE);
    //  Garbage, then a two-frame message: errors, and pbtd keeps serving.
    zframe_t *g = zframe_new ("\xc1\xff garbage", 10);
    zframe_send (&g, early, 0);
    s_expect_error (early, PROTO_E_MALFORMED);
    zstr_sendm (early, "a");
    zstr_send (early, "b");
    s_expect_error (early, PROTO_E_MALFORMED);
    //  A worker with another build of the game (same name, other spec
    //  hash), or with no game at all: wrong_env, and it is not admitted.
    proto_msg_t h = { .type = PROTO_HELLO };
    snprintf (h.u.hello.worker_id, sizeof h.u.hello.worker_id, "other-build");
    envspec_announce (&h.u.hello);
    cr_assert_gt (h.u.hello.n_envs, 0);
    for (uint32_t i = 0; i < h.u.hello.n_envs; i++)
        h.u.hello.envs [i].hash [0] = h.u.hello.envs [i].hash [0] == '0' ? '1' : '0';
    s_send (early, &h);
    proto_msg_t r0;
    s_recv (early, &r0);
    cr_assert_eq (r0.type, PROTO_ERROR);
    cr_assert_eq (r0.u.error.code, PROTO_E_WRONG_ENV, "%s", proto_code_name (r0.u.error.code));
    cr_assert (strstr (r0.u.error.message, "this population trains rps 1.0"), "%s",
               r0.u.error.message);
    proto_msg_clear (&r0);
    h.u.hello.n_envs = 0;
    s_send (early, &h);
    s_expect_error (early, PROTO_E_WRONG_ENV);
    s_send (early, &m);
    s_expect_error (early, PROTO_E_STATE);      // still not admitted

    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    proto_assign_t *as = &a.u.assign;
    cr_assert_str_eq (as->env, "rps");
    cr_assert_eq (as->n_seats, 2);
    cr_assert_neq (as->seats [0].id, as->seats [1].id);
    //  hidden 8, rps obs 3, 3 actions: actor 3*8+8+8*3+3, critic 3*8+8+8+1.
    uint32_t n_params = (3 * 8 + 8 + 8 * 3 + 3) + (3 * 8 + 8 + 8 * 1 + 1);
    //  No agent has weights yet: each seat says how to make them.
    cr_assert_neq (as->seats [0].state.init_seed, as->seats [1].state.init_seed);
    for (uint32_t i = 0; i < 2; i++) {
        cr_assert_eq (as->seats [i].state.n_params, 0);
        cr_assert_neq (as->seats [i].state.init_seed, 0);
        cr_assert_eq (as->seats [i].version, 1);
        cr_assert (as->seats [i].train);
        cr_assert (proto_kvs_has (&as->seats [i].hparams, "lr"));
        cr_assert_eq (as->seats [i].slot, i);
    }
    cr_assert_eq (as->model.obs_dim, 3);
    cr_assert_eq (proto_kvs_get (&as->ppo, "n_envs", 0), 32);
    int64_t as_ids [2] = { as->seats [0].id, as->seats [1].id }, trained_id = as_ids [0];

    //  Heartbeat renews.
    proto_msg_t hb = { .type = PROTO_HEARTBEAT };
    hb.u.heartbeat.assignment_id = as->assignment_id;
    hb.u.heartbeat.frames_done = 10;
    s_send (w, &hb);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK);
    cr_assert_eq (r.u.ack.assignment_id, as->assignment_id);

    //  NaN weights: bad_weights, nothing changes.
    proto_msg_t res;
    s_make_result (as, &res);
    res.u.result.seats [1].state.params [3] = NAN;
    s_send (w, &res);
    s_expect_error (w, PROTO_E_BAD_STATE_DATA);
    res.u.result.seats [1].state.params [3] = 0;
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM agents"), 4);
    //  Stale version.
    res.u.result.seats [0].version = 5;
    s_send (w, &res);
    s_expect_error (w, PROTO_E_STALE);
    res.u.result.seats [0].version = 1;
    //  Unknown assignment.
    res.u.result.assignment_id = 999;
    s_send (w, &res);
    s_expect_error (w, PROTO_E_UNKNOWN);
    res.u.result.assignment_id = as->assignment_id;
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats"), 0);

    //  The real thing: ack applied, DB updated.
    s_send (w, &res);
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK, "got %s: %s", proto_type_name (r.type), r.u.error.message);
    cr_assert (r.u.ack.applied);
    char sql [200];
    snprintf (sql, sizeof sql, "SELECT version * 1000 + frames FROM agents WHERE id = %lld",
              (long long) as->seats [0].id);
    cr_assert_eq (s_sql_int (sql), 2 * 1000 + 100);
    //  One result of one episode: a row per seat (no episode rows by default).
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats WHERE episodes = 1"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM matches"), 0);
    //  Seat 0 won the only episode, K = 16 per result (seed preset), equal
    //  ratings: +8.
    snprintf (sql, sizeof sql, "SELECT CAST(rating * 1e6 AS INTEGER) FROM agents WHERE id = %lld",
              (long long) as->seats [0].id);
    cr_assert_eq (s_sql_int (sql), 8000000);
    //  Twice: duplicate.
    s_send (w, &res);
    s_expect_error (w, PROTO_E_DUPLICATE);
    s_free_result (&res);
    proto_msg_clear (&a);

    //  The next assignment carries the trained state (version 2 = sent+0.5).
    s_request (w, &a);
    proto_msg_clear (&a);

    //  Control: status.
    zsock_t *c = s_connect (s_cep);
    proto_msg_t cr;
    s_ctl (c, "status", NULL, &cr);
    cr_assert (cr.u.ctl_reply.ok, "%s", cr.u.ctl_reply.error);
    proto_view_t body;
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    proto_view_t agents = s_get (body, "agents");
    cr_assert_eq (proto_view_array_len (agents), 4);
    proto_view_t a0;
    cr_assert_eq (proto_view_array_at (agents, 0, &a0), 0);
    char name [32];
    cr_assert_eq (proto_view_str (s_get (a0, "id"), name, sizeof name), 0);
    cr_assert_str_eq (name, "agt_0");
    s_get (a0, "rating");
    s_get (a0, "lr");
    s_get (a0, "gamma");
    s_get (a0, "hparams");
    s_get (a0, "busy");
    s_get (a0, "version");
    cr_assert (proto_view_is_nil (s_get (a0, "parent")));
    cr_assert_eq (proto_view_int (s_get (body, "workers"), -1), 2 - 1);
    cr_assert_eq (proto_view_int (s_get (body, "results"), -1), 1);
    cr_assert_eq (proto_view_int (s_get (body, "assignments_in_flight"), -1), 1);
    cr_assert_eq (proto_view_bool (s_get (body, "paused"), true), false);
    cr_assert_gt (proto_view_double (s_get (body, "samples_per_s"), -1), 0);
    s_get (body, "evolutions");
    proto_msg_clear (&cr);

    //  history / lineage / matches / workers / agent_state / unknown.
    s_ctl (c, "history", "agt_1", &cr);
    cr_assert (cr.u.ctl_reply.ok, "%s", cr.u.ctl_reply.error);
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    proto_view_t h1 = s_get (body, "agt_1");
    proto_view_t hp = s_get (h1, "hyperparameters");
    cr_assert_eq (proto_view_array_len (s_get (hp, "lr")), 1);
    cr_assert_eq (proto_view_array_len (s_get (h1, "step")), 1);
    cr_assert_eq (proto_view_array_len (s_get (h1, "opponent")),
                  proto_view_array_len (s_get (h1, "rating")));
    proto_msg_clear (&cr);
    s_ctl (c, "matches", NULL, &cr);
    cr_assert (cr.u.ctl_reply.ok);
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    cr_assert_eq (proto_view_array_len (body), 1);
    proto_msg_clear (&cr);
    s_ctl (c, "lineage", "agt_2", &cr);
    cr_assert (cr.u.ctl_reply.ok);
    proto_msg_clear (&cr);
    s_ctl (c, "workers", NULL, &cr);
    cr_assert (cr.u.ctl_reply.ok);
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    cr_assert_eq (proto_view_array_len (body), 1);
    proto_msg_clear (&cr);
    char trained [32];
    snprintf (trained, sizeof trained, "agt_%lld", (long long) trained_id);
    s_ctl (c, "agent_state", trained, &cr);
    cr_assert (cr.u.ctl_reply.ok);
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    cr_assert_eq (proto_view_int (s_get (body, "n_params"), 0), n_params);
    cr_assert_eq (s_get (body, "params").len, 3 + n_params * 4);   // bin16 header (256..65535 bytes)
    proto_msg_clear (&cr);
    //  An agent no match has trained: no weights, its init seed instead.
    int64_t fresh_id = 0;
    while (fresh_id == as_ids [0] || fresh_id == as_ids [1])
        fresh_id++;
    char fresh [32];
    snprintf (fresh, sizeof fresh, "agt_%lld", (long long) fresh_id);
    s_ctl (c, "agent_state", fresh, &cr);
    cr_assert (cr.u.ctl_reply.ok);
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    cr_assert_eq (proto_view_int (s_get (body, "n_params"), -1), 0);
    cr_assert_gt (proto_view_int (s_get (body, "init_seed"), 0), 0);
    proto_msg_clear (&cr);
    s_ctl (c, "frobnicate", NULL, &cr);
    cr_assert_not (cr.u.ctl_reply.ok);
    cr_assert_str_eq (cr.u.ctl_reply.error, "unknown command 'frobnicate'");
    proto_msg_clear (&cr);
    s_ctl (c, "history", "agt_9", &cr);
    cr_assert_not (cr.u.ctl_reply.ok);
    proto_msg_clear (&cr);

    zsock_destroy (&c);
    zsock_destroy (&w);
    zsock_destroy (&early);
    int status = s_stop ();
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0, "pbtd exit status %d", status);
}

Test (server, lease_expiry_releases_agents)
{
    s_start ("lease_ms = 300\nheartbeat_ms = 100");
    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    proto_msg_t res;
    s_make_result (&a.u.assign, &res);
    //  Wait (bounded) until housekeeping expired the lease.
    zsock_t *c = s_connect (s_cep);
    int64_t in_flight = -1;
    for (int tries = 0; tries < 200 && in_flight != 0; tries++) {
        zclock_sleep (50);
        proto_msg_t cr;
        s_ctl (c, "status", NULL, &cr);
        proto_view_t body;
        cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
        in_flight = proto_view_int (s_get (body, "assignments_in_flight"), -1);
        proto_msg_clear (&cr);
    }
    cr_assert_eq (in_flight, 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments WHERE state = 'expired'"), 1);
    s_send (w, &res);
    s_expect_error (w, PROTO_E_EXPIRED);
    proto_msg_t hb = { .type = PROTO_HEARTBEAT };
    hb.u.heartbeat.assignment_id = a.u.assign.assignment_id;
    s_send (w, &hb);
    s_expect_error (w, PROTO_E_EXPIRED);
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM agents"), 4);
    s_free_result (&res);
    proto_msg_clear (&a);
    //  The agents are free again: two assignments fit in a population of 4.
    zsock_t *w2 = s_worker ();
    s_request (w, &a);
    proto_msg_clear (&a);
    s_request (w2, &a);
    proto_msg_clear (&a);
    zsock_destroy (&w2);
    zsock_destroy (&c);
    zsock_destroy (&w);
    int status = s_stop ();
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

Test (server, restart_keeps_population_and_leases)
{
    s_start (NULL);
    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    uint64_t id = a.u.assign.assignment_id;
    proto_msg_t res;
    s_make_result (&a.u.assign, &res);
    kill (s_pid, SIGTERM);
    int status;
    waitpid (s_pid, &status, 0);
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    zsock_destroy (&w);

    //  Same directory, same config: a new pbtd picks the lease up.
    char ini [320], exe [512];
    snprintf (ini, sizeof ini, "%s/pbtd.ini", s_dir);
    snprintf (exe, sizeof exe, "%s/daemon/pbtd", getenv ("PBT_BUILD_ROOT"));
    s_pid = fork ();
    if (s_pid == 0) {
        execl (exe, exe, "--config", ini, (char *) NULL);
        _exit (127);
    }
    w = s_worker ();
    s_send (w, &res);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK, "got %s", proto_type_name (r.type));
    cr_assert_eq (r.u.ack.assignment_id, id);
    s_free_result (&res);
    proto_msg_clear (&a);
    zsock_destroy (&w);
    status = s_stop ();
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

//  Acks wait for the commit thread's fsync of their batch. pbtd's test
//  hook PBTD_TEST_COMMIT_DELAY_MS makes the commit thread sleep that long
//  before each WAL fsync: an ack sent at commit time (before the fsync)
//  would arrive well within it. A SIGTERM while a batch waits for its
//  fsync still gets its ack out before pbtd exits, and the result is in
//  the database afterwards.
#define S_DELAY_MS 400
Test (server, acks_wait_for_the_commit_fsync)
{
    setenv ("PBTD_TEST_COMMIT_DELAY_MS", "400", 1);
    s_start (NULL);
    unsetenv ("PBTD_TEST_COMMIT_DELAY_MS");
    zsock_t *w = s_worker ();
    for (int round = 0; round < 2; round++) {
        proto_msg_t a, res, r;
        s_request (w, &a);
        s_make_result (&a.u.assign, &res);
        int64_t t0 = zclock_mono ();
        s_send (w, &res);
        if (round == 1) {
            //  Long enough for pbtd to read and commit the result, well
            //  inside the fsync's delay.
            zclock_sleep (100);
            kill (s_pid, SIGTERM);
        }
        s_recv (w, &r);
        int64_t waited = zclock_mono () - t0;
        cr_assert_eq (r.type, PROTO_ACK, "got %s", proto_type_name (r.type));
        cr_assert (r.u.ack.applied);
        cr_assert_eq (r.u.ack.assignment_id, a.u.assign.assignment_id);
        cr_assert_geq (waited, S_DELAY_MS, "round %d: ack after %lld ms, before the fsync's "
                       "%d ms delay was over", round, (long long) waited, S_DELAY_MS);
        s_free_result (&res);
        proto_msg_clear (&a);
        proto_msg_clear (&r);
    }
    int status;
    waitpid (s_pid, &status, 0);
    s_pid = -1;
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM assignments WHERE state = 'done'"), 2);
    zsock_destroy (&w);
    s_stop ();
}

//  A result that leaves its loser far below everyone: with K=200 one
//  episode moves the pair +-100, so the loser's P(win) against any other
//  agent is <= 1/(1+10^(100/400)) = 0.36 < t_select = 0.45, and paper
//  selection must evolve it from a donor; the winner (P >= 0.64) must not.
Test (server, evolution_after_lopsided_result)
{
    s_start ("[pbt]\nelo_k = 200\nt_select = 0.45");
    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    proto_msg_t res;
    s_make_result (&a.u.assign, &res);
    s_send (w, &res);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK);
    int64_t loser = a.u.assign.seats [1].id, winner = a.u.assign.seats [0].id;
    //  pbtd acks first and evolves right after, in the same reactor turn:
    //  a control round-trip after the ack is served after the evolution.
    zsock_t *c = s_connect (s_cep);
    proto_msg_t cr;
    s_ctl (c, "status", NULL, &cr);
    proto_msg_clear (&cr);
    char sql [600];
    snprintf (sql, sizeof sql, "SELECT version * 100 + generation * 10 + (parent IS NOT NULL) "
              "FROM agents WHERE id = %lld", (long long) loser);
    cr_assert_eq (s_sql_int (sql), 3 * 100 + 1 * 10 + 1, "got %lld", (long long) s_sql_int (sql));
    snprintf (sql, sizeof sql, "SELECT version * 100 + generation FROM agents WHERE id = %lld",
              (long long) winner);
    cr_assert_eq (s_sql_int (sql), 200);
    //  The loser's new state is exactly its donor's current one: the very
    //  same record in the state store.
    snprintf (sql, sizeof sql,
              "SELECT COUNT(*) FROM agents a JOIN snapshots s1 ON s1.agent_id = a.id "
              "AND s1.version = a.version JOIN agents d ON d.id = a.parent "
              "JOIN snapshots s2 ON s2.agent_id = d.id AND s2.version = d.version "
              "WHERE a.id = %lld AND s1.seg = s2.seg AND s1.off = s2.off AND s1.len = s2.len "
              "AND s1.adam_t = s2.adam_t", (long long) loser);
    cr_assert_eq (s_sql_int (sql), 1);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM evolutions"), 1);
    snprintf (sql, sizeof sql, "SELECT COUNT(DISTINCT seq) FROM hparam_history WHERE agent_id = %lld",
              (long long) loser);
    cr_assert_eq (s_sql_int (sql), 2);
    //  lineage names the donor.
    char name [32];
    snprintf (name, sizeof name, "agt_%lld", (long long) loser);
    s_ctl (c, "lineage", name, &cr);
    cr_assert (cr.u.ctl_reply.ok);
    proto_view_t body, evo;
    cr_assert_eq (proto_view_init (&body, cr.u.ctl_reply.body, cr.u.ctl_reply.body_len), 0);
    cr_assert_eq (proto_view_array_len (s_get (body, "evolutions")), 1);
    cr_assert_eq (proto_view_array_at (s_get (body, "evolutions"), 0, &evo), 0);
    cr_assert_eq (proto_view_int (s_get (evo, "new_version"), 0), 3);
    s_get (s_get (evo, "new_hparams"), "lr");
    proto_msg_clear (&cr);
    s_free_result (&res);
    proto_msg_clear (&a);
    zsock_destroy (&c);
    zsock_destroy (&w);
    int status = s_stop ();
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

//  Soccer: four distinct agents, slots 0..3, teams {0,1} vs {2,3}; the
//  team Elo update is zero-sum over the four ratings.
Test (server, four_player_teams)
{
    s_start ("[pbt]\nelo_k = 16\n[population]\nenv = soccer\n");
    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    proto_assign_t *as = &a.u.assign;
    cr_assert_str_eq (as->env, "soccer");
    cr_assert_eq (as->n_seats, 4);
    bool seen [4] = { false };
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq (as->seats [i].slot, i);
        cr_assert (as->seats [i].id >= 0 && as->seats [i].id < 4);
        cr_assert_not (seen [as->seats [i].id]);
        seen [as->seats [i].id] = true;
    }
    proto_msg_t res;
    s_make_result (as, &res);
    //  Team 0 (slots 0, 1) scores 1, team 1 scores 0.
    s_scores [0] = s_scores [1] = 1;
    s_scores [2] = s_scores [3] = 0;
    s_send (w, &res);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK, "got %s: %s", proto_type_name (r.type), r.u.error.message);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats WHERE team = 0 AND slot IN (0, 1) "
                             "AND wins = 1"), 2);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM result_seats WHERE team = 1 AND slot IN (2, 3) "
                             "AND losses = 1"), 2);
    //  Each agent faced both of the other team: four payoff cells per side.
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM payoff WHERE episodes = 1"), 8);
    //  Equal ratings: each winner +8, each loser -8.
    cr_assert_eq (s_sql_int ("SELECT CAST(ROUND(SUM(ABS(rating)) * 1000) AS INTEGER) FROM agents"), 32000);
    cr_assert_eq (s_sql_int ("SELECT CAST(ROUND(SUM(rating) * 1000) AS INTEGER) FROM agents"), 0);
    s_free_result (&res);
    proto_msg_clear (&a);
    zsock_destroy (&w);
    int status = s_stop ();
    cr_assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
}

//  ---------------------------------------------------------------------
//  Training statistics in results (PROTOCOL.md §3.6.1)

//  A valid value for every statistic, each different, by name (not taken
//  from the table under test).
static const struct { const char *name; double value; } s_good_stats [] = {
    { "game_return", -0.375 }, { "shaped_return", 0.0625 }, { "episode_length", 10 },
    { "policy_loss", -0.0123 }, { "value_loss", 0.875 }, { "entropy", 1.0625 },
    { "approx_kl", 0.0042 }, { "clip_fraction", 0.15 }, { "explained_variance", -0.5 },
    { "grad_norm", 0.33 }, { "lr", 3e-4 },
};
#define N_GOOD (sizeof s_good_stats / sizeof s_good_stats [0])

static void
s_set_good_stats (proto_outcome_t *o)
{
    o->has_stats = true;
    for (size_t i = 0; i < N_GOOD; i++) {
        int id = proto_stat_find (s_good_stats [i].name);
        cr_assert_geq (id, 0, "%s", s_good_stats [i].name);
        proto_stats_set (&o->stats, (proto_stat_id_t) id, s_good_stats [i].value);
    }
    o->stats.count [PROTO_STAT_PER_EPISODE] = 64;
    o->stats.count [PROTO_STAT_PER_UPDATE] = 32;
    o->stats.count [PROTO_STAT_PER_ITERATION] = 8;
}

//  Encode msg, then overwrite the float64 after key `name` inside the
//  "stats" map with value: a frame proto_encode itself would refuse.
static void
s_send_patched (zsock_t *s, const proto_msg_t *msg, const char *name, double value)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (msg, &buf, &len), 0);
    const uint8_t *stats = memmem (buf, len, "\xa5stats", 6);
    cr_assert_not_null (stats);
    uint8_t key [64];
    size_t kn = strlen (name);
    key [0] = (uint8_t) (0xa0 | kn);
    memcpy (key + 1, name, kn);
    key [kn + 1] = 0xcb;
    uint8_t *at = memmem (stats, len - (size_t) (stats - buf), key, kn + 2);
    cr_assert_not_null (at, "no float64 %s in the frame", name);
    uint64_t raw;
    memcpy (&raw, &value, 8);
    for (int i = 0; i < 8; i++)
        at [kn + 2 + i] = (uint8_t) (raw >> (56 - 8 * i));
    zframe_t *f = zframe_new (buf, len);
    free (buf);
    cr_assert_eq (zframe_send (&f, s, 0), 0);
}

Test (server, training_statistics_checked_and_stored)
{
    s_start (NULL);
    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    proto_assign_t *as = &a.u.assign;
    cr_assert (as->seats [0].train);
    proto_msg_t res;
    s_make_result (as, &res);
    s_set_good_stats (&res.u.result.seats [0]);

    //  Each statistic NaN, infinite or just out of its documented range:
    //  bad_field naming seat and statistic, and nothing applied.
    static const struct { const char *name; double bad; } bad [] = {
        { "episode_length", 0.5 }, { "value_loss", -0.001 }, { "entropy", -0.01 },
        { "approx_kl", -1e-6 }, { "clip_fraction", 1.01 }, { "clip_fraction", -0.01 },
        { "explained_variance", 1.001 }, { "grad_norm", -1 }, { "lr", 0 }, { "lr", 1.5 },
    };
    int refused = 0;
    for (size_t i = 0; i < N_GOOD + sizeof bad / sizeof bad [0]; i++)
        for (int k = 0; k < (i < N_GOOD ? 3 : 1); k++) {
            const char *name = i < N_GOOD ? s_good_stats [i].name : bad [i - N_GOOD].name;
            double v = i >= N_GOOD ? bad [i - N_GOOD].bad : k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
            s_send_patched (w, &res, name, v);
            proto_msg_t r;
            s_recv (w, &r);
            cr_assert_eq (r.type, PROTO_ERROR, "%s = %g was accepted", name, v);
            cr_assert_eq (r.u.error.code, PROTO_E_FIELD, "%s", r.u.error.message);
            char want [96];
            snprintf (want, sizeof want, "seats[0].stats.%s", name);
            cr_assert (strstr (r.u.error.message, want), "%s = %g: %s", name, v, r.u.error.message);
            proto_msg_clear (&r);
            refused++;
        }
    cr_assert_eq (refused, 3 * N_GOOD + sizeof bad / sizeof bad [0]);
    cr_assert_eq (s_sql_int ("SELECT SUM(version) FROM agents"), 4);
    cr_assert_eq (s_sql_int ("SELECT COUNT(*) FROM series_points"), 0);
    char q [128];
    snprintf (q, sizeof q, "SELECT state = 'leased' FROM assignments WHERE id = %llu",
              (unsigned long long) as->assignment_id);
    cr_assert_eq (s_sql_int (q), 1);

    //  The same result, valid: applied, and every statistic stored as sent,
    //  weighed by the count its mean is over. Seat 1 sent none: no points.
    s_send (w, &res);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK, "got %s: %s", proto_type_name (r.type), r.u.error.message);
    cr_assert (r.u.ack.applied);
    zsock_t *c = s_connect (s_cep);
    char agent [32];
    snprintf (agent, sizeof agent, "agt_%lld", (long long) as->seats [0].id);
    proto_msg_t reply;
    s_ctl (c, "curves", agent, &reply);
    cr_assert (reply.u.ctl_reply.ok, "%s", reply.u.ctl_reply.error);
    proto_view_t body, series;
    cr_assert_eq (proto_view_init (&body, reply.u.ctl_reply.body, reply.u.ctl_reply.body_len), 0);
    proto_view_t mine = s_get (s_get (body, "agents"), agent);
    for (size_t i = 0; i < N_GOOD; i++) {
        series = s_get (mine, s_good_stats [i].name);
        proto_view_t v, wt, n;
        cr_assert_eq (proto_view_array_len (s_get (series, "value")), 1, "%s", s_good_stats [i].name);
        proto_view_array_at (s_get (series, "value"), 0, &v);
        proto_view_array_at (s_get (series, "weight"), 0, &wt);
        proto_view_array_at (s_get (series, "samples"), 0, &n);
        cr_assert_eq (proto_view_double (v, NAN), s_good_stats [i].value, "%s", s_good_stats [i].name);
        double want_w = !strcmp (s_good_stats [i].name, "explained_variance") ? 8
                      : strstr ("game_return shaped_return episode_length", s_good_stats [i].name) ? 64 : 32;
        cr_assert_eq (proto_view_double (wt, NAN), want_w, "%s", s_good_stats [i].name);
        cr_assert_eq (proto_view_int (n, 0), 1);
    }
    proto_msg_clear (&reply);
    snprintf (agent, sizeof agent, "agt_%lld", (long long) as->seats [1].id);
    s_ctl (c, "curves", agent, &reply);
    cr_assert (reply.u.ctl_reply.ok);
    cr_assert_eq (proto_view_init (&body, reply.u.ctl_reply.body, reply.u.ctl_reply.body_len), 0);
    cr_assert_neq (proto_view_get (s_get (s_get (body, "agents"), agent), "entropy", &series), 0,
                   "a seat without statistics got an entropy point");
    proto_msg_clear (&reply);
    s_free_result (&res);
    proto_msg_clear (&a);
    zsock_destroy (&c);
    zsock_destroy (&w);
    cr_assert_eq (s_stop (), 0);
}

Test (server, statistics_only_from_seats_that_trained)
{
    //  Evaluation matches train nobody: statistics in their results are refused.
    s_start ("[pbt]\neval_rate = 1\n");
    zsock_t *w = s_worker ();
    proto_msg_t a;
    s_request (w, &a);
    cr_assert (!a.u.assign.seats [0].train);
    proto_msg_t res;
    s_make_result (&a.u.assign, &res);
    for (uint32_t i = 0; i < res.u.result.n_seats; i++)
        proto_state_free (&res.u.result.seats [i].state);
    s_set_good_stats (&res.u.result.seats [1]);
    s_send (w, &res);
    proto_msg_t r;
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ERROR);
    cr_assert_eq (r.u.error.code, PROTO_E_FIELD);
    cr_assert (strstr (r.u.error.message, "seats[1].stats: sent for a seat that did not train"),
               "%s", r.u.error.message);
    proto_msg_clear (&r);
    //  Without them the result is fine.
    res.u.result.seats [1].has_stats = false;
    s_send (w, &res);
    s_recv (w, &r);
    cr_assert_eq (r.type, PROTO_ACK, "%s", r.u.error.message);
    proto_msg_clear (&a);
    zsock_destroy (&w);
    cr_assert_eq (s_stop (), 0);
}
