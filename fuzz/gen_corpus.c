/*  gen_corpus: write one valid encoded message of each type (and a few
    variants) as seed files for fuzz_decode. Usage: gen_corpus DIR
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static int
s_write (const char *dir, const char *name, const proto_msg_t *msg)
{
    uint8_t *buf;
    size_t len;
    if (proto_encode (msg, &buf, &len)) {
        fprintf (stderr, "gen_corpus: cannot encode %s\n", name);
        return -1;
    }
    char path [1024];
    snprintf (path, sizeof (path), "%s/%s.mp", dir, name);
    FILE *f = fopen (path, "wb");
    int rc = f && fwrite (buf, 1, len, f) == len ? 0 : -1;
    if (f && fclose (f))
        rc = -1;
    free (buf);
    if (rc)
        fprintf (stderr, "gen_corpus: cannot write %s\n", path);
    return rc;
}

//  Model 4 -> [8, 8] -> 3: actor 4*8+8 + 8*8+8 + 8*3+3 = 139,
//  critic 40 + 72 + 9 = 121.
#define N_PARAMS 260

static void
s_state (proto_state_t *st, float base)
{
    proto_state_alloc (st, N_PARAMS);
    for (uint32_t i = 0; i < N_PARAMS; i++) {
        st->params [i] = base + 0.01f * (float) i;
        st->adam_m [i] = -0.001f * (float) i;
        st->adam_v [i] = 1e-6f * (float) i;
    }
    st->adam_t = 17;
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    const char *dir = argv [1];
    int rc = 0;
    proto_msg_t m;

    memset (&m, 0, sizeof (m));
    m.type = PROTO_HELLO;
    strcpy (m.u.hello.worker_id, "host1:123");
    strcpy (m.u.hello.host, "host1");
    m.u.hello.pid = 123;
    strcpy (m.u.hello.software, "pbt-worker/0.1.0");
    m.u.hello.n_envs = 2;
    strcpy (m.u.hello.envs [0].name, "rps");
    strcpy (m.u.hello.envs [0].version, "1.0");
    strcpy (m.u.hello.envs [0].hash, "bd216c0904337014");
    strcpy (m.u.hello.envs [1].name, "kuhn");
    strcpy (m.u.hello.envs [1].version, "1.0");
    strcpy (m.u.hello.envs [1].hash, "0123456789abcdef");
    rc |= s_write (dir, "hello", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_WELCOME;
    m.u.welcome.heartbeat_ms = 1000;
    m.u.welcome.lease_ms = 30000;
    rc |= s_write (dir, "welcome", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_REQUEST;
    rc |= s_write (dir, "request", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_BYE;
    m.u.bye.n_returned = 1;
    m.u.bye.returned [0] = 12;
    rc |= s_write (dir, "bye", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_ASSIGN;
    proto_assign_t *a = &m.u.assign;
    a->assignment_id = 12;
    a->seed = 99;
    a->lease_ms = 30000;
    strcpy (a->env, "soccer");
    proto_kvs_set (&a->env_options, "max_steps", 400);
    proto_kvs_set (&a->ppo, "n_envs", 8);
    proto_kvs_set (&a->ppo, "n_steps", 128);
    proto_kvs_set (&a->ppo, "clip_vloss", 1);
    a->model.obs_dim = 4;
    a->model.n_actions = 3;
    a->model.n_hidden = 2;
    a->model.hidden [0] = 8;
    a->model.hidden [1] = 8;
    strcpy (a->model.activation, "tanh");
    a->n_seats = 3;
    for (int i = 0; i < 2; i++) {
        a->seats [i].id = i;
        a->seats [i].version = 5;
        a->seats [i].slot = (uint32_t) i;
        a->seats [i].train = true;
        proto_kvs_set (&a->seats [i].hparams, "lr", 3e-4);
        proto_kvs_set (&a->seats [i].hparams, "gamma", 0.99);
        proto_kvs_set (&a->seats [i].hparams, "shape_goal", 1.0);
        s_state (&a->seats [i].state, (float) i);
    }
    a->seats [2].id = -1;
    a->seats [2].slot = 2;
    strcpy (a->seats [2].script, "random");
    rc |= s_write (dir, "assign", &m);
    proto_msg_clear (&m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_HEARTBEAT;
    m.u.heartbeat.assignment_id = 12;
    m.u.heartbeat.frames_done = 4096;
    rc |= s_write (dir, "heartbeat", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_RESULT;
    proto_result_t *r = &m.u.result;
    r->assignment_id = 12;
    r->samples_per_s = 5000.5;
    r->seconds = 20;
    r->n_seats = 2;
    r->seats [0].id = 0;
    r->seats [0].version = 5;
    r->seats [0].frames = 8192;
    s_state (&r->seats [0].state, 2.0f);
    r->seats [0].state.params [3] = NAN;
    r->seats [0].has_stats = true;
    for (int i = 0; i < PROTO_STAT_COUNT; i++)
        proto_stats_set (&r->seats [0].stats, (proto_stat_id_t) i,
                         i == PROTO_STAT_EPISODE_LENGTH ? 10 : 0.25);
    for (int i = 0; i < PROTO_STAT_COUNTS; i++)
        r->seats [0].stats.count [i] = 3;
    r->seats [1].id = -1;
    r->n_episodes = 4;
    r->scores = calloc (8, sizeof (float));
    r->scores [0] = 1;
    r->scores [3] = -1;
    rc |= s_write (dir, "result", &m);
    proto_msg_clear (&m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_ACK;
    m.u.ack.assignment_id = 12;
    m.u.ack.applied = true;
    rc |= s_write (dir, "ack", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_ERROR;
    m.u.error.code = PROTO_E_EXPIRED;
    m.u.error.assignment_id = 12;
    strcpy (m.u.error.message, "lease of assignment 12 expired");
    rc |= s_write (dir, "error", &m);

    //  ctl with args {"agent":3,"lr":0.001,"name":"x","force":true}
    static const uint8_t args [] = {
        0x84, 0xa5, 'a', 'g', 'e', 'n', 't', 0x03,
        0xa2, 'l', 'r', 0xcb, 0x3f, 0x50, 0x62, 0x4d, 0xd2, 0xf1, 0xa9, 0xfc,
        0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x',
        0xa5, 'f', 'o', 'r', 'c', 'e', 0xc3,
    };
    memset (&m, 0, sizeof (m));
    m.type = PROTO_CTL;
    strcpy (m.u.ctl.cmd, "set");
    strcpy (m.u.ctl.token, "tok");
    m.u.ctl.args = (uint8_t *) args;
    m.u.ctl.args_len = sizeof (args);
    rc |= s_write (dir, "ctl", &m);

    //  ctl_reply with a status-like body:
    //  {"agents":[{"id":"agt_0","rating":1.5,"busy":true,"parent":nil}],"workers":2,"b":bin}
    static const uint8_t body [] = {
        0x83, 0xa6, 'a', 'g', 'e', 'n', 't', 's', 0x91,
        0x84, 0xa2, 'i', 'd', 0xa5, 'a', 'g', 't', '_', '0',
        0xa6, 'r', 'a', 't', 'i', 'n', 'g', 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
        0xa4, 'b', 'u', 's', 'y', 0xc3,
        0xa6, 'p', 'a', 'r', 'e', 'n', 't', 0xc0,
        0xa7, 'w', 'o', 'r', 'k', 'e', 'r', 's', 0x02,
        0xa1, 'b', 0xc4, 0x02, 0xff, 0x00,
    };
    memset (&m, 0, sizeof (m));
    m.type = PROTO_CTL_REPLY;
    m.u.ctl_reply.ok = true;
    m.u.ctl_reply.body = (uint8_t *) body;
    m.u.ctl_reply.body_len = sizeof (body);
    rc |= s_write (dir, "ctl_reply", &m);

    memset (&m, 0, sizeof (m));
    m.type = PROTO_CTL_REPLY;
    strcpy (m.u.ctl_reply.error, "unknown command");
    rc |= s_write (dir, "ctl_reply_error", &m);
    return rc ? 1 : 0;
}
