/*  Tests for proto/: round trips of every message, the wire format against
    hand-written bytes, every decode error class, hostile sizes, JSON
    rendering and views.

    Hostile frames are built either byte by byte or with msgpack-c's own
    packer, never with proto_encode, so the decoder is checked against an
    independent encoder.
*/
#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "proto.h"

//  ---------------------------------------------------------------------
//  Helpers

static char err [PROTO_MAX_TEXT];

static proto_code_t
decode (const void *buf, size_t len, proto_msg_t *msg)
{
    err [0] = 0;
    return proto_decode (buf, len, msg, err, sizeof (err));
}

static void
encode_ok (const proto_msg_t *msg, uint8_t **buf, size_t *len)
{
    cr_assert_eq (proto_encode (msg, buf, len), 0, "encode %s", proto_type_name (msg->type));
    cr_assert_not_null (*buf);
}

//  Encode, decode, and return the decoded copy in out.
static void
round_trip (const proto_msg_t *in, proto_msg_t *out)
{
    uint8_t *buf;
    size_t len;
    encode_ok (in, &buf, &len);
    cr_assert_eq (decode (buf, len, out), PROTO_OK, "decode %s: %s", proto_type_name (in->type), err);
    cr_assert_eq (out->type, in->type);
    free (buf);
}

static void
fill_floats (float *v, uint32_t n, float base)
{
    for (uint32_t i = 0; i < n; i++)
        v [i] = base + (float) i * 0.25f - (float) (i % 7) * 1e-3f;
}

//  Model obs 3 -> [4] -> 2 actions: actor 3*4+4 + 4*2+2 = 26, critic
//  3*4+4 + 4*1+1 = 21, 47 floats in all.
#define TEST_N_PARAMS 47

static void
make_assign (proto_msg_t *m)
{
    memset (m, 0, sizeof (*m));
    m->type = PROTO_ASSIGN;
    proto_assign_t *a = &m->u.assign;
    a->assignment_id = 0xfedcba9876543210ull;     // over INT64_MAX on purpose
    a->seed = 42;
    a->lease_ms = 60000;
    strcpy (a->env, "soccer");
    proto_kvs_set (&a->env_options, "max_steps", 500);
    proto_kvs_set (&a->env_options, "shaping_decay", 0.25);
    proto_kvs_set (&a->ppo, "n_envs", 8);
    proto_kvs_set (&a->ppo, "vf_coef", 0.5);
    a->model.obs_dim = 3;
    a->model.n_actions = 2;
    a->model.n_hidden = 1;
    a->model.hidden [0] = 4;
    strcpy (a->model.activation, "tanh");
    a->n_seats = 3;
    for (int i = 0; i < 2; i++) {
        proto_seat_t *s = &a->seats [i];
        s->id = 10 + i;
        s->version = 100 + (uint64_t) i;
        s->slot = (uint32_t) i;
        s->train = i == 0;
        proto_kvs_set (&s->hparams, "lr", 3e-4 * (i + 1));
        proto_kvs_set (&s->hparams, "gamma", 0.99);
        proto_kvs_set (&s->hparams, "shape_ball_touch", 0.1);
        cr_assert_eq (proto_state_alloc (&s->state, TEST_N_PARAMS), 0);
        fill_floats (s->state.params, TEST_N_PARAMS, 1.0f + (float) i);
        fill_floats (s->state.adam_m, TEST_N_PARAMS, -0.5f);
        fill_floats (s->state.adam_v, TEST_N_PARAMS, 1e-8f);
        s->state.adam_t = 1234567 + (uint64_t) i;
    }
    //  Special floats must survive bit for bit; NaN is not a decode error.
    a->seats [0].state.params [0] = -0.0f;
    a->seats [0].state.params [1] = NAN;
    a->seats [0].state.params [2] = INFINITY;
    a->seats [0].state.params [3] = 1e-45f;   // denormal
    proto_seat_t *s = &a->seats [2];
    s->id = -1;
    s->slot = 2;
    strcpy (s->script, "chase_ball");
}

static void
assert_kvs_eq (const proto_kvs_t *a, const proto_kvs_t *b)
{
    cr_assert_eq (a->count, b->count);
    for (uint32_t i = 0; i < a->count; i++) {
        cr_assert_str_eq (a->items [i].name, b->items [i].name);
        cr_assert_eq (a->items [i].value, b->items [i].value, "%s", a->items [i].name);
    }
}

static void
assert_state_eq (const proto_state_t *a, const proto_state_t *b)
{
    cr_assert_eq (a->n_params, b->n_params);
    cr_assert_eq (a->adam_t, b->adam_t);
    size_t bytes = a->n_params * sizeof (float);
    if (bytes) {
        cr_assert_eq (memcmp (a->params, b->params, bytes), 0);
        cr_assert_eq (memcmp (a->adam_m, b->adam_m, bytes), 0);
        cr_assert_eq (memcmp (a->adam_v, b->adam_v, bytes), 0);
    }
}

//  Packs through msgpack-c directly, independent of proto_encode.
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pack_t;

static void
pk_init (pack_t *p)
{
    msgpack_sbuffer_init (&p->sb);
    msgpack_packer_init (&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void
pk_str (pack_t *p, const char *s)
{
    msgpack_pack_str (&p->pk, strlen (s));
    msgpack_pack_str_body (&p->pk, s, strlen (s));
}

static void
pk_head (pack_t *p, uint32_t n_fields, const char *type)
{
    msgpack_pack_map (&p->pk, n_fields + 2);
    pk_str (p, "v");
    msgpack_pack_uint8 (&p->pk, 1);
    pk_str (p, "type");
    pk_str (p, type);
}

static void
pk_zeros_bin (pack_t *p, size_t bytes)
{
    msgpack_pack_bin (&p->pk, bytes);
    uint8_t *z = calloc (1, bytes + 1);
    msgpack_pack_bin_body (&p->pk, z, bytes);
    free (z);
}

//  An assign with one agent seat whose state claims n_params floats but
//  carries params_bytes in each of its three vectors.
static void
pk_assign (pack_t *p, uint32_t n_params, size_t params_bytes)
{
    pk_init (p);
    pk_head (p, 6, "assign");
    pk_str (p, "assignment_id"); msgpack_pack_uint64 (&p->pk, 7);
    pk_str (p, "seed"); msgpack_pack_uint64 (&p->pk, 1);
    pk_str (p, "lease_ms"); msgpack_pack_uint32 (&p->pk, 1000);
    pk_str (p, "env"); pk_str (p, "rps");
    pk_str (p, "model");
    msgpack_pack_map (&p->pk, 4);
    pk_str (p, "obs_dim"); msgpack_pack_uint32 (&p->pk, 3);
    pk_str (p, "n_actions"); msgpack_pack_uint32 (&p->pk, 2);
    pk_str (p, "hidden"); msgpack_pack_array (&p->pk, 1); msgpack_pack_uint32 (&p->pk, 4);
    pk_str (p, "activation"); pk_str (p, "relu");
    pk_str (p, "seats");
    msgpack_pack_array (&p->pk, 1);
    msgpack_pack_map (&p->pk, 5);
    pk_str (p, "id"); msgpack_pack_int64 (&p->pk, 0);
    pk_str (p, "version"); msgpack_pack_uint64 (&p->pk, 3);
    pk_str (p, "slot"); msgpack_pack_uint32 (&p->pk, 0);
    pk_str (p, "train"); msgpack_pack_true (&p->pk);
    pk_str (p, "state");
    msgpack_pack_map (&p->pk, 5);
    pk_str (p, "n_params"); msgpack_pack_uint32 (&p->pk, n_params);
    pk_str (p, "params"); pk_zeros_bin (p, params_bytes);
    pk_str (p, "adam_m"); pk_zeros_bin (p, params_bytes);
    pk_str (p, "adam_v"); pk_zeros_bin (p, params_bytes);
    pk_str (p, "adam_t"); msgpack_pack_uint64 (&p->pk, 0);
}

//  Limit how much more memory this (forked) test process may map, so an
//  allocation the frame did not pay for fails instead of succeeding
//  quietly. Sanitizer runtimes map huge shadows, so the limit is skipped
//  there.
static bool
limit_heap (size_t slack)
{
#if defined(__SANITIZE_ADDRESS__)
    (void) slack;
    return false;
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
    (void) slack;
    return false;
#  endif
#endif
    FILE *f = fopen ("/proc/self/status", "r");
    cr_assert_not_null (f);
    char line [256];
    unsigned long kb = 0;
    while (fgets (line, sizeof (line), f))
        if (sscanf (line, "VmData: %lu kB", &kb) == 1)
            break;
    fclose (f);
    cr_assert_gt (kb, 0);
    struct rlimit rl = { .rlim_cur = kb * 1024 + slack, .rlim_max = kb * 1024 + slack };
    cr_assert_eq (setrlimit (RLIMIT_DATA, &rl), 0);
    //  The limit must bite, or the tests below prove nothing.
    void *big = malloc (16u << 20);
    cr_assert_null (big, "RLIMIT_DATA did not limit malloc");
    return true;
}

//  ---------------------------------------------------------------------
//  Names

Test (proto, names)
{
    cr_assert_str_eq (proto_type_name (PROTO_HELLO), "hello");
    cr_assert_str_eq (proto_type_name (PROTO_CTL_REPLY), "ctl_reply");
    cr_assert_null (proto_type_name ((proto_type_t) 99));
    cr_assert_str_eq (proto_code_name (PROTO_E_VERSION), "bad_version");
    cr_assert_str_eq (proto_code_name (PROTO_E_BAD_STATE_DATA), "bad_weights");
    cr_assert_str_eq (proto_code_name (PROTO_E_UNKNOWN), "unknown_assignment");
    cr_assert_eq (proto_code_parse ("stale_version"), PROTO_E_STALE);
    cr_assert_eq (proto_code_parse ("paused"), PROTO_E_PAUSED);
    cr_assert_eq (proto_code_parse ("no_such_code"), PROTO_E_INTERNAL);
}

Test (proto, kvs_and_state_helpers)
{
    proto_kvs_t kvs = { 0 };
    cr_assert_eq (proto_kvs_set (&kvs, "lr", 1e-3), 0);
    cr_assert_eq (proto_kvs_set (&kvs, "lr", 2e-3), 0);
    cr_assert_eq (kvs.count, 1);
    cr_assert_eq (proto_kvs_get (&kvs, "lr", 0), 2e-3);
    cr_assert_eq (proto_kvs_get (&kvs, "gamma", 0.5), 0.5);
    cr_assert (proto_kvs_has (&kvs, "lr"));
    cr_assert_not (proto_kvs_has (&kvs, "gamma"));
    char long_name [PROTO_MAX_NAME + 1];
    memset (long_name, 'x', PROTO_MAX_NAME);
    long_name [PROTO_MAX_NAME] = 0;
    cr_assert_eq (proto_kvs_set (&kvs, long_name, 1), -1);
    for (int i = 1; i < PROTO_MAX_KV; i++) {
        char name [16];
        snprintf (name, sizeof (name), "k%d", i);
        cr_assert_eq (proto_kvs_set (&kvs, name, i), 0);
    }
    cr_assert_eq (proto_kvs_set (&kvs, "one_too_many", 1), -1);

    proto_state_t st;
    cr_assert_eq (proto_state_alloc (&st, 5), 0);
    cr_assert (proto_state_finite (&st));
    st.adam_v [4] = -INFINITY;
    cr_assert_not (proto_state_finite (&st));
    st.adam_v [4] = 0;
    st.params [0] = NAN;
    cr_assert_not (proto_state_finite (&st));
    proto_state_free (&st);
    cr_assert_null (st.params);
    cr_assert_eq (proto_state_alloc (&st, PROTO_MAX_PARAMS + 1), -1);
}

//  ---------------------------------------------------------------------
//  Wire format against hand-written bytes

Test (proto, request_bytes)
{
    //  {"v":1,"type":"request"}
    static const uint8_t want [] = {
        0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
        0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't'
    };
    proto_msg_t m = { .type = PROTO_REQUEST };
    uint8_t *buf;
    size_t len;
    encode_ok (&m, &buf, &len);
    cr_assert_eq (len, sizeof (want));
    cr_assert_eq (memcmp (buf, want, len), 0);
    free (buf);
    proto_msg_t out;
    cr_assert_eq (decode (want, sizeof (want), &out), PROTO_OK, "%s", err);
    cr_assert_eq (out.type, PROTO_REQUEST);
}

Test (proto, welcome_bytes)
{
    //  {"v":1,"type":"welcome","heartbeat_ms":1000,"lease_ms":30000}
    static const uint8_t want [] = {
        0x84, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
        0xa7, 'w', 'e', 'l', 'c', 'o', 'm', 'e',
        0xac, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't', '_', 'm', 's', 0xcd, 0x03, 0xe8,
        0xa8, 'l', 'e', 'a', 's', 'e', '_', 'm', 's', 0xcd, 0x75, 0x30,
    };
    proto_msg_t m = { .type = PROTO_WELCOME, .u.welcome = { .heartbeat_ms = 1000, .lease_ms = 30000 } };
    uint8_t *buf;
    size_t len;
    encode_ok (&m, &buf, &len);
    cr_assert_eq (len, sizeof (want));
    cr_assert_eq (memcmp (buf, want, len), 0);
    free (buf);
}

Test (proto, floats_are_little_endian)
{
    proto_msg_t m;
    make_assign (&m);
    m.u.assign.seats [1].state.params [0] = 1.0f;      // 00 00 80 3f
    m.u.assign.seats [1].state.params [1] = -2.0f;     // 00 00 00 c0
    uint8_t *buf;
    size_t len;
    encode_ok (&m, &buf, &len);
    static const uint8_t want [] = { 0xc4, 47 * 4, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0 };
    cr_assert_not_null (memmem (buf, len, want, sizeof (want)));
    free (buf);
    proto_msg_clear (&m);
}

//  ---------------------------------------------------------------------
//  Round trips

Test (proto, round_trip_hello_welcome_request)
{
    proto_msg_t in = { .type = PROTO_HELLO }, out;
    strcpy (in.u.hello.worker_id, "node7:4242");
    strcpy (in.u.hello.host, "node7");
    in.u.hello.pid = 4242;
    strcpy (in.u.hello.software, "pbt-worker/0.1.0");
    round_trip (&in, &out);
    cr_assert_str_eq (out.u.hello.worker_id, "node7:4242");
    cr_assert_str_eq (out.u.hello.host, "node7");
    cr_assert_eq (out.u.hello.pid, 4242);
    cr_assert_str_eq (out.u.hello.software, "pbt-worker/0.1.0");

    proto_msg_t w = { .type = PROTO_WELCOME, .u.welcome = { .heartbeat_ms = 2000, .lease_ms = 4000000000u } };
    round_trip (&w, &out);
    cr_assert_eq (out.u.welcome.heartbeat_ms, 2000);
    cr_assert_eq (out.u.welcome.lease_ms, 4000000000u);

    proto_msg_t r = { .type = PROTO_REQUEST };
    round_trip (&r, &out);
}

Test (proto, round_trip_assign)
{
    proto_msg_t in, out;
    make_assign (&in);
    round_trip (&in, &out);
    const proto_assign_t *a = &in.u.assign, *b = &out.u.assign;
    cr_assert_eq (b->assignment_id, 0xfedcba9876543210ull);
    cr_assert_eq (b->seed, 42);
    cr_assert_eq (b->lease_ms, 60000);
    cr_assert_str_eq (b->env, "soccer");
    assert_kvs_eq (&a->env_options, &b->env_options);
    assert_kvs_eq (&a->ppo, &b->ppo);
    cr_assert_eq (b->model.obs_dim, 3);
    cr_assert_eq (b->model.n_actions, 2);
    cr_assert_eq (b->model.n_hidden, 1);
    cr_assert_eq (b->model.hidden [0], 4);
    cr_assert_str_eq (b->model.activation, "tanh");
    cr_assert_eq (b->n_seats, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq (b->seats [i].id, a->seats [i].id);
        cr_assert_eq (b->seats [i].version, a->seats [i].version);
        cr_assert_eq (b->seats [i].slot, a->seats [i].slot);
        cr_assert_eq (b->seats [i].train, a->seats [i].train);
        cr_assert_str_eq (b->seats [i].script, a->seats [i].script);
        assert_kvs_eq (&a->seats [i].hparams, &b->seats [i].hparams);
        assert_state_eq (&a->seats [i].state, &b->seats [i].state);
    }
    cr_assert_eq (b->seats [2].id, -1);
    cr_assert_str_eq (b->seats [2].script, "chase_ball");
    cr_assert_null (b->seats [2].state.params);
    cr_assert (isnan (b->seats [0].state.params [1]));
    cr_assert (signbit (b->seats [0].state.params [0]));
    cr_assert_not (proto_state_finite (&b->seats [0].state));
    proto_msg_clear (&out);
    proto_msg_clear (&in);
    cr_assert_eq (in.type, 0);
}

Test (proto, round_trip_heartbeat_ack_error)
{
    proto_msg_t out;
    proto_msg_t hb = { .type = PROTO_HEARTBEAT, .u.heartbeat = { .assignment_id = 9, .frames_done = 1ull << 40 } };
    round_trip (&hb, &out);
    cr_assert_eq (out.u.heartbeat.assignment_id, 9);
    cr_assert_eq (out.u.heartbeat.frames_done, 1ull << 40);

    proto_msg_t ack = { .type = PROTO_ACK, .u.ack = { .assignment_id = UINT64_MAX, .applied = true } };
    round_trip (&ack, &out);
    cr_assert_eq (out.u.ack.assignment_id, UINT64_MAX);
    cr_assert (out.u.ack.applied);

    for (proto_code_t code = PROTO_E_TOO_LARGE; code <= PROTO_E_NOT_YOURS; code++) {
        proto_msg_t e = { .type = PROTO_ERROR, .u.error = { .code = code, .assignment_id = 77 } };
        snprintf (e.u.error.message, sizeof (e.u.error.message), "problem \"%s\" \xc3\xa9", proto_code_name (code));
        round_trip (&e, &out);
        cr_assert_eq (out.u.error.code, code);
        cr_assert_eq (out.u.error.assignment_id, 77);
        cr_assert_str_eq (out.u.error.message, e.u.error.message);
    }
    //  "ok" is not an error code.
    proto_msg_t ok = { .type = PROTO_ERROR, .u.error = { .code = PROTO_OK } };
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (&ok, &buf, &len), -1);
}

Test (proto, round_trip_result)
{
    proto_msg_t in = { .type = PROTO_RESULT }, out;
    proto_result_t *r = &in.u.result;
    r->assignment_id = 5;
    r->samples_per_s = 12345.5;
    r->seconds = 61.25;
    r->n_seats = 2;
    r->seats [0].id = 3;
    r->seats [0].version = 8;
    r->seats [0].frames = 65536;
    cr_assert_eq (proto_state_alloc (&r->seats [0].state, 10), 0);
    fill_floats (r->seats [0].state.params, 10, 0.5f);
    fill_floats (r->seats [0].state.adam_m, 10, -3.0f);
    fill_floats (r->seats [0].state.adam_v, 10, 7.0f);
    r->seats [0].state.adam_t = 99;
    r->seats [1].id = -1;               // scripted: no state back
    r->n_episodes = 3;
    r->scores = malloc (3 * 2 * sizeof (float));
    const float scores [6] = { 1, 0, 0.5f, 0.5f, -1, NAN };
    memcpy (r->scores, scores, sizeof (scores));
    round_trip (&in, &out);
    const proto_result_t *o = &out.u.result;
    cr_assert_eq (o->assignment_id, 5);
    cr_assert_eq (o->samples_per_s, 12345.5);
    cr_assert_eq (o->seconds, 61.25);
    cr_assert_eq (o->n_seats, 2);
    cr_assert_eq (o->seats [0].id, 3);
    cr_assert_eq (o->seats [0].version, 8);
    cr_assert_eq (o->seats [0].frames, 65536);
    assert_state_eq (&r->seats [0].state, &o->seats [0].state);
    cr_assert_eq (o->seats [1].id, -1);
    cr_assert_eq (o->seats [1].state.n_params, 0);
    cr_assert_eq (o->n_episodes, 3);
    cr_assert_eq (memcmp (o->scores, scores, sizeof (scores)), 0);
    proto_msg_clear (&out);
    proto_msg_clear (&in);
}

Test (proto, round_trip_ctl)
{
    //  args {"agent": 3, "lr": 0.5, "name": "x", "force": true}
    static const uint8_t args [] = {
        0x84, 0xa5, 'a', 'g', 'e', 'n', 't', 0x03,
        0xa2, 'l', 'r', 0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0,
        0xa4, 'n', 'a', 'm', 'e', 0xa1, 'x',
        0xa5, 'f', 'o', 'r', 'c', 'e', 0xc3,
    };
    proto_msg_t in = { .type = PROTO_CTL }, out;
    strcpy (in.u.ctl.cmd, "set_hparam");
    strcpy (in.u.ctl.token, "s3cret");
    in.u.ctl.args = malloc (sizeof (args));
    memcpy (in.u.ctl.args, args, sizeof (args));
    in.u.ctl.args_len = sizeof (args);
    round_trip (&in, &out);
    cr_assert_str_eq (out.u.ctl.cmd, "set_hparam");
    cr_assert_str_eq (out.u.ctl.token, "s3cret");
    cr_assert_eq (out.u.ctl.args_len, sizeof (args));
    cr_assert_eq (memcmp (out.u.ctl.args, args, sizeof (args)), 0);
    cr_assert_eq (proto_args_int (out.u.ctl.args, out.u.ctl.args_len, "agent", -1), 3);
    cr_assert_eq (proto_args_double (out.u.ctl.args, out.u.ctl.args_len, "lr", 0), 0.5);
    cr_assert_eq (proto_args_double (out.u.ctl.args, out.u.ctl.args_len, "agent", 0), 3.0);
    cr_assert_eq (proto_args_int (out.u.ctl.args, out.u.ctl.args_len, "lr", -7), -7);
    cr_assert (proto_args_bool (out.u.ctl.args, out.u.ctl.args_len, "force", false));
    cr_assert_not (proto_args_bool (out.u.ctl.args, out.u.ctl.args_len, "missing", false));
    char name [8];
    cr_assert_eq (proto_args_str (out.u.ctl.args, out.u.ctl.args_len, "name", name, sizeof (name)), 0);
    cr_assert_str_eq (name, "x");
    cr_assert_eq (proto_args_str (out.u.ctl.args, out.u.ctl.args_len, "agent", name, sizeof (name)), -1);
    cr_assert_eq (proto_args_int (NULL, 0, "agent", 11), 11);
    proto_msg_clear (&out);

    //  No args, no token.
    free (in.u.ctl.args);
    in.u.ctl.args = NULL;
    in.u.ctl.args_len = 0;
    in.u.ctl.token [0] = 0;
    round_trip (&in, &out);
    cr_assert_null (out.u.ctl.args);
    cr_assert_str_eq (out.u.ctl.token, "");

    //  args must be a map.
    uint8_t not_map [] = { 0x91, 0x01 };
    in.u.ctl.args = not_map;
    in.u.ctl.args_len = sizeof (not_map);
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (&in, &buf, &len), -1);
}

Test (proto, round_trip_ctl_reply)
{
    //  body ["a", nil]
    static const uint8_t body [] = { 0x92, 0xa1, 'a', 0xc0 };
    proto_msg_t in = { .type = PROTO_CTL_REPLY }, out;
    in.u.ctl_reply.ok = true;
    in.u.ctl_reply.body = malloc (sizeof (body));
    memcpy (in.u.ctl_reply.body, body, sizeof (body));
    in.u.ctl_reply.body_len = sizeof (body);
    round_trip (&in, &out);
    cr_assert (out.u.ctl_reply.ok);
    cr_assert_eq (out.u.ctl_reply.body_len, sizeof (body));
    cr_assert_eq (memcmp (out.u.ctl_reply.body, body, sizeof (body)), 0);
    proto_msg_clear (&out);
    proto_msg_clear (&in);

    proto_msg_t e = { .type = PROTO_CTL_REPLY }, eout;
    strcpy (e.u.ctl_reply.error, "no such agent agt_9");
    round_trip (&e, &eout);
    cr_assert_not (eout.u.ctl_reply.ok);
    cr_assert_str_eq (eout.u.ctl_reply.error, "no such agent agt_9");
    cr_assert_null (eout.u.ctl_reply.body);

    //  A body that is not one well-formed value is refused on encode.
    uint8_t bad [] = { 0x92, 0x01 };
    e.u.ctl_reply.body = bad;
    e.u.ctl_reply.body_len = sizeof (bad);
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (&e, &buf, &len), -1);
}

//  ---------------------------------------------------------------------
//  Decode errors

Test (proto, version_errors)
{
    proto_msg_t m;
    //  {"v":2,"type":"request"}
    static const uint8_t v2 [] = { 0x82, 0xa1, 'v', 0x02, 0xa4, 't', 'y', 'p', 'e',
                                   0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't' };
    cr_assert_eq (decode (v2, sizeof (v2), &m), PROTO_E_VERSION);
    cr_assert (strstr (err, "version 2"), "%s", err);
    cr_assert (strstr (err, "speaks 1"), "%s", err);
    //  {"type":"request"}
    static const uint8_t none [] = { 0x81, 0xa4, 't', 'y', 'p', 'e',
                                     0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't' };
    cr_assert_eq (decode (none, sizeof (none), &m), PROTO_E_VERSION);
    cr_assert (strstr (err, "missing"), "%s", err);
    //  {"v":"1","type":"request"}
    static const uint8_t str [] = { 0x82, 0xa1, 'v', 0xa1, '1', 0xa4, 't', 'y', 'p', 'e',
                                    0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't' };
    cr_assert_eq (decode (str, sizeof (str), &m), PROTO_E_VERSION);
    //  {"v":-1,...}
    static const uint8_t neg [] = { 0x82, 0xa1, 'v', 0xff, 0xa4, 't', 'y', 'p', 'e',
                                    0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't' };
    cr_assert_eq (decode (neg, sizeof (neg), &m), PROTO_E_VERSION);
    cr_assert (strstr (err, "version -1"), "%s", err);
}

Test (proto, type_errors)
{
    proto_msg_t m;
    //  {"v":1,"type":"bogus"}
    static const uint8_t bogus [] = { 0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                      0xa5, 'b', 'o', 'g', 'u', 's' };
    cr_assert_eq (decode (bogus, sizeof (bogus), &m), PROTO_E_TYPE);
    cr_assert (strstr (err, "\"bogus\""), "%s", err);
    //  {"v":1}
    static const uint8_t none [] = { 0x81, 0xa1, 'v', 0x01 };
    cr_assert_eq (decode (none, sizeof (none), &m), PROTO_E_TYPE);
    //  {"v":1,"type":7}
    static const uint8_t num [] = { 0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0x07 };
    cr_assert_eq (decode (num, sizeof (num), &m), PROTO_E_TYPE);
    //  Top level not a map: [1]
    static const uint8_t arr [] = { 0x91, 0x01 };
    cr_assert_eq (decode (arr, sizeof (arr), &m), PROTO_E_MALFORMED);
}

Test (proto, field_errors)
{
    proto_msg_t m;
    //  {"v":1,"type":"welcome","heartbeat_ms":1000}: lease_ms missing
    static const uint8_t missing [] = {
        0x83, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'w', 'e', 'l', 'c', 'o', 'm', 'e',
        0xac, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't', '_', 'm', 's', 0xcd, 0x03, 0xe8 };
    cr_assert_eq (decode (missing, sizeof (missing), &m), PROTO_E_FIELD);
    cr_assert_str_eq (err, "welcome.lease_ms: missing");
    //  heartbeat_ms as a string
    static const uint8_t mistyped [] = {
        0x84, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'w', 'e', 'l', 'c', 'o', 'm', 'e',
        0xac, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't', '_', 'm', 's', 0xa2, '1', '0',
        0xa8, 'l', 'e', 'a', 's', 'e', '_', 'm', 's', 0x05 };
    cr_assert_eq (decode (mistyped, sizeof (mistyped), &m), PROTO_E_FIELD);
    cr_assert_str_eq (err, "welcome.heartbeat_ms: expected uint, got str");
    //  heartbeat_ms 0 is out of range [1, ...]
    static const uint8_t zero [] = {
        0x84, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'w', 'e', 'l', 'c', 'o', 'm', 'e',
        0xac, 'h', 'e', 'a', 'r', 't', 'b', 'e', 'a', 't', '_', 'm', 's', 0x00,
        0xa8, 'l', 'e', 'a', 's', 'e', '_', 'm', 's', 0x05 };
    cr_assert_eq (decode (zero, sizeof (zero), &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "welcome.heartbeat_ms: expected uint in [1, 4294967295], got 0"), "%s", err);
    //  Duplicate key: {"v":1,"type":"request","v":1}
    static const uint8_t dup [] = { 0x83, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                    0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0xa1, 'v', 0x01 };
    cr_assert_eq (decode (dup, sizeof (dup), &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "duplicate"), "%s", err);
    //  A non-string key: {"v":1,"type":"request",1:2}
    static const uint8_t intkey [] = { 0x83, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                       0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0x01, 0x02 };
    cr_assert_eq (decode (intkey, sizeof (intkey), &m), PROTO_E_FIELD);
}

//  A hello whose worker_id is the given bytes, packed by msgpack-c.
static proto_code_t
decode_hello_id (const char *id, size_t len, proto_msg_t *m)
{
    pack_t p;
    pk_init (&p);
    pk_head (&p, 1, "hello");
    pk_str (&p, "worker_id");
    msgpack_pack_str (&p.pk, len);
    msgpack_pack_str_body (&p.pk, id, len);
    proto_code_t code = decode (p.sb.data, p.sb.size, m);
    msgpack_sbuffer_destroy (&p.sb);
    return code;
}

Test (proto, identities_are_utf8_without_controls)
{
    proto_msg_t m;
    cr_assert_eq (decode_hello_id ("n\xc3\xb6" "de \"7\"", 9, &m), PROTO_OK, "%s", err);
    cr_assert_str_eq (m.u.hello.worker_id, "n\xc3\xb6" "de \"7\"");
    cr_assert_eq (decode_hello_id ("a\nlevel=error", 13, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "hello.worker_id: control character 0x0a at byte 1"), "%s", err);
    cr_assert_eq (decode_hello_id ("ab\xff", 3, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "hello.worker_id: invalid UTF-8 at byte 2"), "%s", err);
    //  Overlong "/" and a UTF-16 surrogate are not UTF-8 either.
    cr_assert_eq (decode_hello_id ("\xc0\xaf", 2, &m), PROTO_E_FIELD);
    cr_assert_eq (decode_hello_id ("\xed\xa0\x80", 3, &m), PROTO_E_FIELD);
    cr_assert_eq (proto_code_parse ("not_yours"), PROTO_E_NOT_YOURS);
    cr_assert_str_eq (proto_code_name (PROTO_E_NOT_YOURS), "not_yours");
}

Test (proto, unknown_keys_are_ignored)
{
    proto_msg_t m;
    //  {"future":[1,{"x":nil}],"v":1,"type":"request"}
    static const uint8_t extra [] = {
        0x83, 0xa6, 'f', 'u', 't', 'u', 'r', 'e', 0x92, 0x01, 0x81, 0xa1, 'x', 0xc0,
        0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't' };
    cr_assert_eq (decode (extra, sizeof (extra), &m), PROTO_OK, "%s", err);
    cr_assert_eq (m.type, PROTO_REQUEST);
}

Test (proto, weights_of_wrong_size)
{
    //  n_params must agree with the model (47 for 3 -> [4] -> 2)...
    pack_t p;
    proto_msg_t m;
    pk_assign (&p, 47, 47 * 4);
    cr_assert_eq (decode (p.sb.data, p.sb.size, &m), PROTO_OK, "%s", err);
    cr_assert_eq (m.u.assign.seats [0].state.n_params, 47);
    cr_assert_str_eq (m.u.assign.model.activation, "relu");
    proto_msg_clear (&m);
    msgpack_sbuffer_destroy (&p.sb);
    //  ... and each vector must be exactly 4*n_params bytes.
    pk_assign (&p, 47, 100);
    cr_assert_eq (decode (p.sb.data, p.sb.size, &m), PROTO_E_FIELD);
    cr_assert_str_eq (err, "assign.seats[0].state.params: expected bin of 4*n_params=188 bytes, got 100");
    msgpack_sbuffer_destroy (&p.sb);
    pk_assign (&p, 46, 46 * 4);
    cr_assert_eq (decode (p.sb.data, p.sb.size, &m), PROTO_E_FIELD);
    cr_assert_str_eq (err, "assign.seats[0].state.n_params: model needs 47 parameters, got 46");
    msgpack_sbuffer_destroy (&p.sb);
}

Test (proto, ints_for_floats)
{
    pack_t p;
    pk_init (&p);
    pk_head (&p, 6, "result");
    pk_str (&p, "assignment_id"); msgpack_pack_uint64 (&p.pk, 1);
    pk_str (&p, "samples_per_s"); msgpack_pack_uint32 (&p.pk, 300);      // int for a float
    pk_str (&p, "seconds"); msgpack_pack_float (&p.pk, 2.5f);            // float32 too
    pk_str (&p, "seats");
    msgpack_pack_array (&p.pk, 1);
    msgpack_pack_map (&p.pk, 3);
    pk_str (&p, "id"); msgpack_pack_int8 (&p.pk, 4);
    pk_str (&p, "version"); msgpack_pack_uint8 (&p.pk, 2);
    pk_str (&p, "frames"); msgpack_pack_uint8 (&p.pk, 0);
    pk_str (&p, "n_episodes"); msgpack_pack_uint8 (&p.pk, 2);
    pk_str (&p, "scores"); pk_zeros_bin (&p, 8);
    proto_msg_t m;
    cr_assert_eq (decode (p.sb.data, p.sb.size, &m), PROTO_OK, "%s", err);
    cr_assert_eq (m.u.result.samples_per_s, 300.0);
    cr_assert_eq (m.u.result.seconds, 2.5);
    cr_assert_eq (m.u.result.n_episodes, 2);
    cr_assert_eq (m.u.result.scores [1], 0.0f);
    proto_msg_clear (&m);
    msgpack_sbuffer_destroy (&p.sb);
}

Test (proto, truncated_at_every_prefix)
{
    proto_msg_t in, m;
    make_assign (&in);
    uint8_t *buf;
    size_t len;
    encode_ok (&in, &buf, &len);
    cr_assert_eq (decode (buf, len, &m), PROTO_OK, "%s", err);
    proto_msg_clear (&m);
    for (size_t k = 0; k < len; k++) {
        //  A copy of exactly k bytes, so ASan sees any read past the end.
        uint8_t *cut = malloc (k ? k : 1);
        memcpy (cut, buf, k);
        proto_code_t rc = decode (cut, k, &m);
        cr_assert_eq (rc, PROTO_E_MALFORMED, "prefix %zu: %s (%s)", k, proto_code_name (rc), err);
        if (k > 0)
            cr_assert (strstr (err, "offset"), "prefix %zu: %s", k, err);
        free (cut);
    }
    free (buf);
    proto_msg_clear (&in);
}

Test (proto, trailing_bytes)
{
    //  {"v":1,"type":"request"} then nil
    static const uint8_t buf [] = { 0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                    0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0xc0 };
    proto_msg_t m;
    cr_assert_eq (decode (buf, sizeof (buf), &m), PROTO_E_MALFORMED);
    cr_assert_str_eq (err, "malformed: trailing 1 bytes at offset 17");
}

Test (proto, huge_claims_in_tiny_frames)
{
    bool limited = limit_heap (4u << 20);
    proto_msg_t m;
    //  Containers and payloads claiming 2^32-1 in a handful of bytes.
    static const uint8_t frames [][6] = {
        { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00 },     // array32
        { 0xdf, 0xff, 0xff, 0xff, 0xff, 0x00 },     // map32
        { 0xdb, 0xff, 0xff, 0xff, 0xff, 0x00 },     // str32
        { 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00 },     // bin32
        { 0xc9, 0xff, 0xff, 0xff, 0xff, 0x00 },     // ext32
        { 0xdc, 0xff, 0xff, 0x00, 0x00, 0x00 },     // array16: 65535 > 4
    };
    for (size_t i = 0; i < sizeof (frames) / sizeof (frames [0]); i++) {
        cr_assert_eq (decode (frames [i], 6, &m), PROTO_E_MALFORMED, "frame %zu", i);
        cr_assert_eq (proto_value_check (frames [i], 6, err, sizeof (err)), -1);
        cr_assert_null (proto_value_to_json (frames [i], 6, false));
    }
    //  A map of 3 pairs with 5 bytes after the header is a lie (needs 6).
    static const uint8_t map3 [] = { 0x83, 0x01, 0x02, 0x03, 0x04, 0x05 };
    cr_assert_eq (proto_value_check (map3, sizeof (map3), err, sizeof (err)), -1);
    cr_assert (strstr (err, "claims 3 pairs"), "%s", err);

    //  Plausible claims inside a valid frame: 4M parameters (16 MB per
    //  vector) with 100 bytes sent. Must be refused before allocating.
    pack_t p;
    pk_assign (&p, PROTO_MAX_PARAMS, 100);
    proto_code_t rc = decode (p.sb.data, p.sb.size, &m);
    cr_assert_eq (rc, PROTO_E_FIELD, "%s: %s", proto_code_name (rc), err);
    msgpack_sbuffer_destroy (&p.sb);
    //  Over the limit outright.
    pk_assign (&p, PROTO_MAX_PARAMS + 1, 0);
    cr_assert_eq (decode (p.sb.data, p.sb.size, &m), PROTO_E_FIELD);
    msgpack_sbuffer_destroy (&p.sb);
    //  A result claiming 2^20 episodes with an empty scores bin.
    pk_init (&p);
    pk_head (&p, 6, "result");
    pk_str (&p, "assignment_id"); msgpack_pack_uint8 (&p.pk, 1);
    pk_str (&p, "samples_per_s"); msgpack_pack_uint8 (&p.pk, 1);
    pk_str (&p, "seconds"); msgpack_pack_uint8 (&p.pk, 1);
    pk_str (&p, "seats"); msgpack_pack_array (&p.pk, 1); msgpack_pack_map (&p.pk, 3);
    pk_str (&p, "id"); msgpack_pack_int8 (&p.pk, 0);
    pk_str (&p, "version"); msgpack_pack_uint8 (&p.pk, 0);
    pk_str (&p, "frames"); msgpack_pack_uint8 (&p.pk, 0);
    pk_str (&p, "n_episodes"); msgpack_pack_uint32 (&p.pk, PROTO_MAX_EPISODES);
    pk_str (&p, "scores"); pk_zeros_bin (&p, 0);
    cr_assert_eq (decode (p.sb.data, p.sb.size, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "result.scores"), "%s", err);
    msgpack_sbuffer_destroy (&p.sb);
    if (!limited)
        cr_log_info ("heap limit skipped under a sanitizer");
}

Test (proto, too_large)
{
    //  calloc'd pages are never touched, so this costs no real memory.
    size_t len = (size_t) PROTO_MAX_FRAME + 1;
    uint8_t *big = calloc (1, len);
    cr_assert_not_null (big);
    proto_msg_t m;
    cr_assert_eq (decode (big, len, &m), PROTO_E_TOO_LARGE);
    free (big);
}

static size_t
nested_arrays (uint8_t *buf, int depth)
{
    for (int i = 0; i < depth; i++)
        buf [i] = 0x91;
    buf [depth] = 0x01;
    return (size_t) depth + 1;
}

Test (proto, nesting_depth)
{
    uint8_t buf [64];
    size_t len = nested_arrays (buf, 32);
    cr_assert_eq (proto_value_check (buf, len, err, sizeof (err)), 0, "%s", err);
    char *json = proto_value_to_json (buf, len, false);
    cr_assert_not_null (json);
    cr_assert_eq (strlen (json), 32 * 2 + 1);
    free (json);
    len = nested_arrays (buf, 33);
    cr_assert_eq (proto_value_check (buf, len, err, sizeof (err)), -1);
    cr_assert (strstr (err, "nesting"), "%s", err);
    cr_assert_null (proto_value_to_json (buf, len, false));

    //  A message whose unknown field nests 32 arrays under the top map
    //  (33 levels in all) is refused as malformed.
    uint8_t msg [80] = { 0x83, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e',
                         0xa7, 'r', 'e', 'q', 'u', 'e', 's', 't', 0xa1, 'x' };
    size_t n = 19 + nested_arrays (msg + 19, 32);
    proto_msg_t m;
    cr_assert_eq (decode (msg, n, &m), PROTO_E_MALFORMED);
    n = 19 + nested_arrays (msg + 19, 31);
    cr_assert_eq (decode (msg, n, &m), PROTO_OK, "%s", err);
}

Test (proto, reserved_and_ext)
{
    static const uint8_t reserved [] = { 0xc1 };
    cr_assert_eq (proto_value_check (reserved, 1, err, sizeof (err)), -1);
    cr_assert (strstr (err, "0xc1"), "%s", err);
    static const uint8_t fixext [] = { 0xd4, 0x01, 0x00 };
    cr_assert_eq (proto_value_check (fixext, sizeof (fixext), err, sizeof (err)), -1);
    cr_assert (strstr (err, "extension"), "%s", err);
}

//  ---------------------------------------------------------------------
//  JSON and views

Test (proto, json_rendering)
{
    //  {"a":[1,-2,1.5,nil,true,false],"s":"q\"\n\x01é\xff",7:bin(00 ff 10),
    //   "f":NaN(float64),"g":0.1(float32),"u":2^64-1,"i":-2^63,"e":{},"z":[]}
    static const uint8_t buf [] = {
        0x89,
        0xa1, 'a', 0x96, 0x01, 0xfe, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xc0, 0xc3, 0xc2,
        0xa1, 's', 0xa7, 'q', '"', '\n', 0x01, 0xc3, 0xa9, 0xff,
        0x07, 0xc4, 0x03, 0x00, 0xff, 0x10,
        0xa1, 'f', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0,
        0xa1, 'g', 0xca, 0x3d, 0xcc, 0xcc, 0xcd,
        0xa1, 'u', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xa1, 'i', 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,
        0xa1, 'e', 0x80,
        0xa1, 'z', 0x90,
    };
    cr_assert_eq (proto_value_check (buf, sizeof (buf), err, sizeof (err)), 0, "%s", err);
    char *json = proto_value_to_json (buf, sizeof (buf), false);
    cr_assert_not_null (json);
    cr_assert_str_eq (json,
        "{\"a\":[1,-2,1.5,null,true,false],\"s\":\"q\\\"\\n\\u0001\xc3\xa9\\ufffd\","
        "\"7\":\"AP8Q\",\"f\":null,\"g\":0.1,\"u\":18446744073709551615,"
        "\"i\":-9223372036854775808,\"e\":{},\"z\":[]}");
    free (json);

    //  {"k":[1,{"x":"y"}],[1]:0.25}
    static const uint8_t small [] = {
        0x82, 0xa1, 'k', 0x92, 0x01, 0x81, 0xa1, 'x', 0xa1, 'y',
        0x91, 0x01, 0xcb, 0x3f, 0xd0, 0, 0, 0, 0, 0, 0 };
    json = proto_value_to_json (small, sizeof (small), true);
    cr_assert_not_null (json);
    cr_assert_str_eq (json,
        "{\n"
        "  \"k\": [\n"
        "    1,\n"
        "    {\n"
        "      \"x\": \"y\"\n"
        "    }\n"
        "  ],\n"
        "  \"[1]\": 0.25\n"
        "}");
    free (json);

    //  Keys within keys: {{[1]:2}:3}. The outer key is rendered and quoted;
    //  a container key inside key text is only named, which keeps the
    //  output linear in the input.
    static const uint8_t keykey [] = { 0x81, 0x81, 0x91, 0x01, 0x02, 0x03 };
    json = proto_value_to_json (keykey, sizeof (keykey), false);
    cr_assert_not_null (json);
    cr_assert_str_eq (json, "{\"{\\\"[...]\\\":2}\":3}");
    free (json);

    //  Doubles come out in the shortest form that reads back exactly.
    static const uint8_t tenth [] = { 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a };
    json = proto_value_to_json (tenth, sizeof (tenth), false);
    cr_assert_str_eq (json, "0.1");
    free (json);
    //  1/3 reads back from 16 digits; 0.1+0.2 needs all 17.
    static const uint8_t third [] = { 0xcb, 0x3f, 0xd5, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55 };
    json = proto_value_to_json (third, sizeof (third), false);
    cr_assert_str_eq (json, "0.3333333333333333");
    free (json);
    static const uint8_t sum [] = { 0xcb, 0x3f, 0xd3, 0x33, 0x33, 0x33, 0x33, 0x33, 0x34 };
    json = proto_value_to_json (sum, sizeof (sum), false);
    cr_assert_str_eq (json, "0.30000000000000004");
    free (json);
    //  base64 padding: "a" -> YQ==, "ab" -> YWI=
    static const uint8_t b1 [] = { 0xc4, 0x01, 'a' }, b2 [] = { 0xc4, 0x02, 'a', 'b' };
    json = proto_value_to_json (b1, sizeof (b1), false);
    cr_assert_str_eq (json, "\"YQ==\"");
    free (json);
    json = proto_value_to_json (b2, sizeof (b2), false);
    cr_assert_str_eq (json, "\"YWI=\"");
    free (json);
}

Test (proto, views)
{
    //  {"agents":[{"id":"agt_0","rating":12.5,"matches":3,"busy":true,"parent":nil},
    //             {"id":"agt_1","rating":-4,"busy":false,"parent":"agt_0"}],
    //   "workers":2,"samples_per_s":1000.5}
    pack_t p;
    pk_init (&p);
    msgpack_pack_map (&p.pk, 3);
    pk_str (&p, "agents");
    msgpack_pack_array (&p.pk, 2);
    msgpack_pack_map (&p.pk, 5);
    pk_str (&p, "id"); pk_str (&p, "agt_0");
    pk_str (&p, "rating"); msgpack_pack_double (&p.pk, 12.5);
    pk_str (&p, "matches"); msgpack_pack_uint8 (&p.pk, 3);
    pk_str (&p, "busy"); msgpack_pack_true (&p.pk);
    pk_str (&p, "parent"); msgpack_pack_nil (&p.pk);
    msgpack_pack_map (&p.pk, 4);
    pk_str (&p, "id"); pk_str (&p, "agt_1");
    pk_str (&p, "rating"); msgpack_pack_int8 (&p.pk, -4);
    pk_str (&p, "busy"); msgpack_pack_false (&p.pk);
    pk_str (&p, "parent"); pk_str (&p, "agt_0");
    pk_str (&p, "workers"); msgpack_pack_uint8 (&p.pk, 2);
    pk_str (&p, "samples_per_s"); msgpack_pack_double (&p.pk, 1000.5);

    proto_view_t root, agents, a0, a1, v;
    cr_assert_eq (proto_view_init (&root, (uint8_t *) p.sb.data, p.sb.size), 0);
    cr_assert_eq (proto_view_get (root, "agents", &agents), 0);
    cr_assert_eq (proto_view_array_len (agents), 2);
    cr_assert_eq (proto_view_array_len (root), -1);
    cr_assert_eq (proto_view_array_at (agents, 0, &a0), 0);
    cr_assert_eq (proto_view_array_at (agents, 1, &a1), 0);
    cr_assert_eq (proto_view_array_at (agents, 2, &v), -1);
    char s [16];
    cr_assert_eq (proto_view_get (a1, "id", &v), 0);
    cr_assert_eq (proto_view_str (v, s, sizeof (s)), 0);
    cr_assert_str_eq (s, "agt_1");
    cr_assert_eq (proto_view_str (v, s, 4), 0);         // truncated
    cr_assert_str_eq (s, "agt");
    cr_assert_eq (proto_view_get (a0, "rating", &v), 0);
    cr_assert_eq (proto_view_double (v, 0), 12.5);
    cr_assert_eq (proto_view_int (v, -99), -99);        // a double is not an int
    cr_assert_eq (proto_view_get (a1, "rating", &v), 0);
    cr_assert_eq (proto_view_double (v, 0), -4.0);
    cr_assert_eq (proto_view_int (v, 0), -4);
    cr_assert_eq (proto_view_get (a0, "matches", &v), 0);
    cr_assert_eq (proto_view_int (v, 0), 3);
    cr_assert_eq (proto_view_get (a0, "busy", &v), 0);
    cr_assert (proto_view_bool (v, false));
    //  Map entries in wire order: a1 is {"id","rating","busy","parent"}.
    proto_view_t key;
    cr_assert_eq (proto_view_map_len (a1), 4);
    cr_assert_eq (proto_view_map_len (agents), -1);
    cr_assert_eq (proto_view_map_at (a1, 1, &key, &v), 0);
    cr_assert_eq (proto_view_str (key, s, sizeof (s)), 0);
    cr_assert_str_eq (s, "rating");
    cr_assert_eq (proto_view_int (v, 0), -4);
    cr_assert_eq (proto_view_map_at (a1, 3, &key, &v), 0);
    cr_assert_eq (proto_view_str (v, s, sizeof (s)), 0);
    cr_assert_str_eq (s, "agt_0");
    cr_assert_eq (proto_view_map_at (a1, 4, &key, &v), -1);
    cr_assert_eq (proto_view_get (a0, "parent", &v), 0);
    cr_assert (proto_view_is_nil (v));
    cr_assert_eq (proto_view_str (v, s, sizeof (s)), -1);
    cr_assert_eq (proto_view_get (a1, "parent", &v), 0);
    cr_assert_not (proto_view_is_nil (v));
    cr_assert_eq (proto_view_get (a1, "matches", &v), -1);
    cr_assert_eq (proto_view_get (agents, "id", &v), -1);   // not a map
    cr_assert_eq (proto_view_get (root, "workers", &v), 0);
    cr_assert_eq (proto_view_int (v, 0), 2);
    cr_assert_eq (proto_view_get (root, "samples_per_s", &v), 0);
    cr_assert_eq (proto_view_double (v, 0), 1000.5);
    //  A view of a truncated buffer cannot be made.
    cr_assert_eq (proto_view_init (&root, (uint8_t *) p.sb.data, p.sb.size - 1), -1);
    msgpack_sbuffer_destroy (&p.sb);
}

//  ---------------------------------------------------------------------
//  Training statistics in results (PROTOCOL.md §3.6.1)

//  A result frame with one trained seat whose "stats" map holds `name`:
//  value (as float64) and the counts, packed with msgpack-c, not
//  proto_encode. kind 's' packs the value as a string instead.
static void
pack_stat_result (msgpack_sbuffer *sb, const char *name, double value, char kind, bool counts)
{
    msgpack_packer pk;
    msgpack_sbuffer_init (sb);
    msgpack_packer_init (&pk, sb, msgpack_sbuffer_write);
#define KEY(s) (msgpack_pack_str (&pk, strlen (s)), msgpack_pack_str_body (&pk, s, strlen (s)))
    msgpack_pack_map (&pk, 8);
    KEY ("v"); msgpack_pack_uint8 (&pk, 1);
    KEY ("type"); KEY ("result");
    KEY ("assignment_id"); msgpack_pack_uint8 (&pk, 9);
    KEY ("samples_per_s"); msgpack_pack_double (&pk, 1);
    KEY ("seconds"); msgpack_pack_double (&pk, 1);
    KEY ("n_episodes"); msgpack_pack_uint8 (&pk, 0);
    KEY ("scores"); msgpack_pack_bin (&pk, 0);
    KEY ("seats"); msgpack_pack_array (&pk, 1);
    msgpack_pack_map (&pk, 4);
    KEY ("id"); msgpack_pack_uint8 (&pk, 0);
    KEY ("version"); msgpack_pack_uint8 (&pk, 1);
    KEY ("frames"); msgpack_pack_uint8 (&pk, 10);
    KEY ("stats"); msgpack_pack_map (&pk, 1 + (counts ? 3 : 0));
    KEY (name);
    if (kind == 's')
        KEY ("0.5");
    else
        msgpack_pack_double (&pk, value);
    if (counts) {
        KEY ("episodes"); msgpack_pack_uint8 (&pk, 4);
        KEY ("updates"); msgpack_pack_uint8 (&pk, 16);
        KEY ("iterations"); msgpack_pack_uint8 (&pk, 2);
    }
#undef KEY
}

static proto_code_t
decode_stat (const char *name, double value, char kind, bool counts, proto_msg_t *m)
{
    msgpack_sbuffer sb;
    pack_stat_result (&sb, name, value, kind, counts);
    proto_code_t rc = decode (sb.data, sb.size, m);
    msgpack_sbuffer_destroy (&sb);
    return rc;
}

Test (proto, round_trip_result_stats)
{
    proto_msg_t in = { .type = PROTO_RESULT }, out;
    proto_result_t *r = &in.u.result;
    r->assignment_id = 6;
    r->n_seats = 3;
    r->seats [0].id = 1;
    r->seats [0].has_stats = true;
    //  Written out by name, not from the table, with a different value each.
    const char *names [] = { "game_return", "shaped_return", "episode_length", "policy_loss",
                             "value_loss", "entropy", "approx_kl", "clip_fraction",
                             "explained_variance", "grad_norm", "lr" };
    const double values [] = { -3.5, 0.125, 17, -0.0123, 0.75, 1.0986, 0.0042, 0.15,
                               -2.25, 0.33, 3e-4 };
    cr_assert_eq (sizeof names / sizeof names [0], PROTO_STAT_COUNT);
    for (int i = 0; i < PROTO_STAT_COUNT; i++) {
        int id = proto_stat_find (names [i]);
        cr_assert_geq (id, 0, "%s is not a statistic", names [i]);
        proto_stats_set (&r->seats [0].stats, (proto_stat_id_t) id, values [i]);
    }
    r->seats [0].stats.count [PROTO_STAT_PER_EPISODE] = 40;
    r->seats [0].stats.count [PROTO_STAT_PER_UPDATE] = 32;
    r->seats [0].stats.count [PROTO_STAT_PER_ITERATION] = 8;
    r->seats [1].id = 2;
    r->seats [1].has_stats = true;      // an empty map: no points, still valid
    r->seats [2].id = -1;               // no stats at all
    round_trip (&in, &out);
    const proto_outcome_t *o = out.u.result.seats;
    cr_assert (o [0].has_stats);
    for (int i = 0; i < PROTO_STAT_COUNT; i++) {
        int id = proto_stat_find (names [i]);
        cr_assert (proto_stats_has (&o [0].stats, (proto_stat_id_t) id), "%s lost", names [i]);
        cr_assert_eq (o [0].stats.value [id], values [i], "%s", names [i]);
    }
    cr_assert_eq (o [0].stats.count [PROTO_STAT_PER_EPISODE], 40);
    cr_assert_eq (o [0].stats.count [PROTO_STAT_PER_UPDATE], 32);
    cr_assert_eq (o [0].stats.count [PROTO_STAT_PER_ITERATION], 8);
    cr_assert (o [1].has_stats);
    cr_assert_eq (o [1].stats.have, 0);
    cr_assert (!o [2].has_stats);
    proto_msg_clear (&out);
}

Test (proto, stats_out_of_range_are_refused)
{
    //  Each documented range, probed just outside (hand-written here, so a
    //  wrong bound in the table fails the test).
    static const struct { const char *name; double bad; } cases [] = {
        { "episode_length", 0.5 }, { "episode_length", 0 }, { "value_loss", -1e-9 },
        { "entropy", -0.01 }, { "approx_kl", -1e-6 }, { "clip_fraction", -0.1 },
        { "clip_fraction", 1.0001 }, { "explained_variance", 1.5 }, { "grad_norm", -1 },
        { "lr", 0 }, { "lr", -1e-4 }, { "lr", 2 },
    };
    proto_msg_t m;
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        cr_assert_eq (decode_stat (cases [i].name, cases [i].bad, 'd', true, &m), PROTO_E_FIELD,
                      "%s = %g was accepted", cases [i].name, cases [i].bad);
        char want [96];
        snprintf (want, sizeof want, "result.seats[0].stats.%s: expected ", cases [i].name);
        cr_assert (strstr (err, want), "%s = %g: %s", cases [i].name, cases [i].bad, err);
    }
    //  NaN and both infinities, for every statistic.
    const char *all [] = { "game_return", "shaped_return", "episode_length", "policy_loss",
                           "value_loss", "entropy", "approx_kl", "clip_fraction",
                           "explained_variance", "grad_norm", "lr" };
    const double nonfinite [] = { NAN, INFINITY, -INFINITY };
    for (size_t i = 0; i < sizeof all / sizeof all [0]; i++)
        for (int k = 0; k < 3; k++) {
            cr_assert_eq (decode_stat (all [i], nonfinite [k], 'd', true, &m), PROTO_E_FIELD,
                          "%s = %g was accepted", all [i], nonfinite [k]);
            cr_assert (strstr (err, all [i]) && strstr (err, "seats[0]"), "%s", err);
        }
    //  The edges of the ranges are in them.
    static const struct { const char *name; double ok; } edges [] = {
        { "episode_length", 1 }, { "value_loss", 0 }, { "entropy", 0 }, { "approx_kl", 0 },
        { "clip_fraction", 0 }, { "clip_fraction", 1 }, { "explained_variance", 1 },
        { "explained_variance", -1e6 }, { "grad_norm", 0 }, { "lr", 1e-7 }, { "lr", 1 },
        { "game_return", -1e9 }, { "shaped_return", 1e9 }, { "policy_loss", -7 },
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges [0]; i++) {
        cr_assert_eq (decode_stat (edges [i].name, edges [i].ok, 'd', true, &m), PROTO_OK,
                      "%s = %g: %s", edges [i].name, edges [i].ok, err);
        int id = proto_stat_find (edges [i].name);
        cr_assert_eq (m.u.result.seats [0].stats.value [id], edges [i].ok);
        proto_msg_clear (&m);
    }
}

Test (proto, stats_need_their_counts_and_numbers)
{
    proto_msg_t m;
    cr_assert_eq (decode_stat ("entropy", 0.5, 'd', false, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "result.seats[0].stats.entropy: needs updates"), "%s", err);
    cr_assert_eq (decode_stat ("game_return", 0.5, 'd', false, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "needs episodes"), "%s", err);
    cr_assert_eq (decode_stat ("explained_variance", 0.5, 'd', false, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "needs iterations"), "%s", err);
    cr_assert_eq (decode_stat ("entropy", 0, 's', true, &m), PROTO_E_FIELD);
    cr_assert (strstr (err, "result.seats[0].stats.entropy: expected float, got str"), "%s", err);
    //  Unknown statistics are ignored like any unknown key.
    cr_assert_eq (decode_stat ("fps_of_the_future", 3, 'd', false, &m), PROTO_OK, "%s", err);
    cr_assert (m.u.result.seats [0].has_stats);
    cr_assert_eq (m.u.result.seats [0].stats.have, 0);
    proto_msg_clear (&m);
}

Test (proto, encoder_refuses_bad_stats)
{
    proto_msg_t in = { .type = PROTO_RESULT };
    in.u.result.n_seats = 1;
    in.u.result.seats [0].has_stats = true;
    proto_stats_set (&in.u.result.seats [0].stats, PROTO_STAT_CLIP_FRACTION, 1.5);
    in.u.result.seats [0].stats.count [PROTO_STAT_PER_UPDATE] = 4;
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq (proto_encode (&in, &buf, &len), -1);
    cr_assert_null (buf);
    char why [128];
    cr_assert_eq (proto_stats_check (&in.u.result.seats [0].stats, why, sizeof why), -1);
    cr_assert (strstr (why, "clip_fraction: expected a value in [0, 1], got 1.5"), "%s", why);
}

//  ---------------------------------------------------------------------
//  bye, the id a failed frame is about, and the returned-state check

Test (proto, bye_bytes_and_limits)
{
    //  {"v":1,"type":"bye","returned":[7]}
    static const uint8_t want [] = {
        0x83, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'b', 'y', 'e',
        0xa8, 'r', 'e', 't', 'u', 'r', 'n', 'e', 'd', 0x91, 0x07,
    };
    proto_msg_t m = { .type = PROTO_BYE, .u.bye = { .n_returned = 1, .returned = { 7 } } };
    uint8_t *buf;
    size_t len;
    encode_ok (&m, &buf, &len);
    cr_assert_eq (len, sizeof (want));
    cr_assert_eq (memcmp (buf, want, len), 0);
    free (buf);
    proto_msg_t out;
    //  "returned" is optional.
    static const uint8_t bare [] = { 0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'y', 'p', 'e', 0xa3, 'b', 'y', 'e' };
    cr_assert_eq (decode (bare, sizeof (bare), &out), PROTO_OK, "%s", err);
    cr_assert_eq (out.u.bye.n_returned, 0);
    //  0 names no assignment, and more than PROTO_MAX_RETURNED is refused.
    uint8_t zero [sizeof (want)];
    memcpy (zero, want, sizeof (want));
    zero [sizeof (want) - 1] = 0;
    cr_assert_eq (decode (zero, sizeof (zero), &out), PROTO_E_FIELD);
    cr_assert (strstr (err, "bye.returned[0]"), "%s", err);
    m.u.bye.n_returned = PROTO_MAX_RETURNED + 1;
    cr_assert_eq (proto_encode (&m, &buf, &len), -1);
}

static size_t
pack_partial (uint8_t *out, const char *type, int id_kind)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init (&sb);
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 4);
    msgpack_pack_str (&pk, 1); msgpack_pack_str_body (&pk, "v", 1);
    msgpack_pack_uint8 (&pk, 1);
    msgpack_pack_str (&pk, 4); msgpack_pack_str_body (&pk, "type", 4);
    msgpack_pack_str (&pk, strlen (type)); msgpack_pack_str_body (&pk, type, strlen (type));
    msgpack_pack_str (&pk, 13); msgpack_pack_str_body (&pk, "assignment_id", 13);
    if (id_kind == 0)
        msgpack_pack_uint64 (&pk, 4242);
    else
        msgpack_pack_int8 (&pk, -3);
    msgpack_pack_str (&pk, 7); msgpack_pack_str_body (&pk, "seconds", 7);
    msgpack_pack_str (&pk, 3); msgpack_pack_str_body (&pk, "bad", 3);
    size_t n = sb.size;
    memcpy (out, sb.data, n);
    msgpack_sbuffer_destroy (&sb);
    return n;
}

Test (proto, peek_assignment_id)
{
    uint8_t buf [256];
    proto_msg_t out;
    size_t n = pack_partial (buf, "result", 0);
    cr_assert_eq (decode (buf, n, &out), PROTO_E_FIELD);
    cr_assert_eq (proto_peek_assignment_id (buf, n), 4242);
    //  Cut inside the last entry: the entries before it still count.
    cr_assert_eq (decode (buf, n - 2, &out), PROTO_E_MALFORMED);
    cr_assert_eq (proto_peek_assignment_id (buf, n - 2), 4242);
    n = pack_partial (buf, "heartbeat", 0);
    cr_assert_eq (proto_peek_assignment_id (buf, n), 4242);
    //  Not a message that names an assignment, or an id that is no uint.
    n = pack_partial (buf, "hello", 0);
    cr_assert_eq (proto_peek_assignment_id (buf, n), 0);
    n = pack_partial (buf, "result", 1);
    cr_assert_eq (proto_peek_assignment_id (buf, n), 0);
    cr_assert_eq (proto_peek_assignment_id (buf, 0), 0);
    cr_assert_eq (proto_peek_assignment_id ((const uint8_t *) "\x93\x01\x02\x03", 4), 0);
}

Test (proto, state_check_names_the_offender)
{
    proto_state_t st;
    char why [128];
    cr_assert_eq (proto_state_alloc (&st, 4), 0);
    cr_assert_eq (proto_state_check (&st, why, sizeof why), 0);
    st.adam_v [2] = -0.5f;
    cr_assert_eq (proto_state_check (&st, why, sizeof why), -1);
    cr_assert (strstr (why, "adam_v[2]") && strstr (why, ">= 0"), "%s", why);
    st.adam_v [2] = 0;
    st.adam_m [3] = -0.5f;          // the first moment may be negative
    cr_assert_eq (proto_state_check (&st, why, sizeof why), 0);
    st.adam_m [1] = INFINITY;
    cr_assert_eq (proto_state_check (&st, why, sizeof why), -1);
    cr_assert (strstr (why, "adam_m[1] is inf"), "%s", why);
    proto_state_free (&st);
}

Test (proto, max_held_and_duty_counters)
{
    proto_msg_t w = { .type = PROTO_WELCOME, .u.welcome = { .heartbeat_ms = 5, .lease_ms = 50, .max_held = 2 } };
    proto_msg_t out;
    round_trip (&w, &out);
    cr_assert_eq (out.u.welcome.max_held, 2);
    w.u.welcome.max_held = PROTO_MAX_RETURNED + 1;
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (&w, &buf, &len), -1, "max_held over its range");
    proto_msg_t hb = { .type = PROTO_HEARTBEAT };
    hb.u.heartbeat.assignment_id = 9;
    hb.u.heartbeat.duty = (proto_duty_t) { .busy_ms = 700, .uptime_ms = 1000 };
    round_trip (&hb, &out);
    cr_assert_eq (out.u.heartbeat.duty.busy_ms, 700);
    cr_assert_eq (out.u.heartbeat.duty.uptime_ms, 1000);
    //  Absent counters stay absent (uptime 0), and busy may not exceed uptime.
    hb.u.heartbeat.duty = (proto_duty_t) { 0 };
    round_trip (&hb, &out);
    cr_assert_eq (out.u.heartbeat.duty.uptime_ms, 0);
    hb.u.heartbeat.duty = (proto_duty_t) { .busy_ms = 1001, .uptime_ms = 1000 };
    cr_assert_eq (proto_encode (&hb, &buf, &len), -1, "busy_ms over uptime_ms");
    cr_assert_eq (proto_code_parse ("over_limit"), PROTO_E_OVER_LIMIT);
}

//  Games in hello, and seats that carry an init seed instead of a state.
Test (proto, envs_in_hello_and_init_seed_in_seats)
{
    proto_msg_t in = { .type = PROTO_HELLO }, out;
    strcpy (in.u.hello.worker_id, "w");
    in.u.hello.n_envs = 2;
    strcpy (in.u.hello.envs [0].name, "kuhn");
    strcpy (in.u.hello.envs [0].version, "1.0");
    strcpy (in.u.hello.envs [0].hash, "0123456789abcdef");
    strcpy (in.u.hello.envs [1].name, "rps");
    strcpy (in.u.hello.envs [1].version, "2");
    strcpy (in.u.hello.envs [1].hash, "fedcba9876543210");
    round_trip (&in, &out);
    cr_assert_eq (out.u.hello.n_envs, 2);
    cr_assert_str_eq (out.u.hello.envs [1].name, "rps");
    cr_assert_str_eq (out.u.hello.envs [1].version, "2");
    cr_assert_str_eq (out.u.hello.envs [0].hash, "0123456789abcdef");
    in.u.hello.envs [1].hash [0] = 0;
    uint8_t *buf;
    size_t len;
    cr_assert_eq (proto_encode (&in, &buf, &len), -1, "an empty hash is refused");
    cr_assert_eq (proto_code_parse ("wrong_env"), PROTO_E_WRONG_ENV);
    cr_assert_str_eq (proto_code_name (PROTO_E_WRONG_ENV), "wrong_env");

    //  A network seat without a state carries its init seed (all 64 bits).
    proto_msg_t a;
    make_assign (&a);
    proto_state_free (&a.u.assign.seats [1].state);
    a.u.assign.seats [1].state.init_seed = 0xfedcba9876543210ull;
    round_trip (&a, &out);
    cr_assert_eq (out.u.assign.seats [1].state.n_params, 0);
    cr_assert_eq (out.u.assign.seats [1].state.init_seed, 0xfedcba9876543210ull);
    cr_assert_eq (out.u.assign.seats [0].state.n_params, TEST_N_PARAMS);
    proto_msg_clear (&out);
    proto_msg_clear (&a);
}
