/*  proto: encode and decode pbt wire messages. See proto.h and PROTOCOL.md.

    Encoding uses msgpack-c's packer. Decoding does not: the frame is first
    checked as a whole (mp_skip: every length and count against the bytes
    that remain, nesting depth, no trailing bytes), then each map is
    scanned once into a table of the fields the message type defines, and
    each field is read and range-checked from its own view. Allocation
    happens only for float vectors whose bin payload was already found in
    the frame at exactly the expected size, so the frame always pays for
    what it makes us allocate.

    proto_encode re-decodes what it packed: a sender can then never put on
    the wire something a receiver would reject, and the two directions
    cannot drift apart.
*/
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "log.h"
#include "mpread.h"
#include "proto.h"

//  Architecture limits, shared by model checks on both sides.
#define PROTO_MAX_DIM 65536

//  ---------------------------------------------------------------------
//  Names

static const char *s_type_names [] = {
    [PROTO_HELLO] = "hello",
    [PROTO_WELCOME] = "welcome",
    [PROTO_REQUEST] = "request",
    [PROTO_ASSIGN] = "assign",
    [PROTO_HEARTBEAT] = "heartbeat",
    [PROTO_RESULT] = "result",
    [PROTO_ACK] = "ack",
    [PROTO_ERROR] = "error",
    [PROTO_CTL] = "ctl",
    [PROTO_CTL_REPLY] = "ctl_reply",
    [PROTO_BYE] = "bye",
};
#define N_TYPES (sizeof (s_type_names) / sizeof (s_type_names [0]))

static const char *s_code_names [] = {
    [PROTO_OK] = "ok",
    [PROTO_E_TOO_LARGE] = "too_large",
    [PROTO_E_MALFORMED] = "malformed",
    [PROTO_E_VERSION] = "bad_version",
    [PROTO_E_TYPE] = "unknown_type",
    [PROTO_E_FIELD] = "bad_field",
    [PROTO_E_STATE] = "bad_state",
    [PROTO_E_UNKNOWN] = "unknown_assignment",
    [PROTO_E_EXPIRED] = "expired",
    [PROTO_E_DUPLICATE] = "duplicate",
    [PROTO_E_STALE] = "stale_version",
    [PROTO_E_BAD_STATE_DATA] = "bad_weights",
    [PROTO_E_DENIED] = "denied",
    [PROTO_E_INTERNAL] = "internal",
    [PROTO_E_PAUSED] = "paused",
    [PROTO_E_NOT_YOURS] = "not_yours",
    [PROTO_E_OVER_LIMIT] = "over_limit",
    [PROTO_E_WRONG_ENV] = "wrong_env",
};
#define N_CODES (sizeof (s_code_names) / sizeof (s_code_names [0]))

const char *
proto_type_name (proto_type_t type)
{
    if ((size_t) type >= N_TYPES)
        return NULL;
    return s_type_names [type];
}

const char *
proto_code_name (proto_code_t code)
{
    if ((size_t) code >= N_CODES)
        return "internal";
    return s_code_names [code];
}

proto_code_t
proto_code_parse (const char *name)
{
    for (size_t i = 0; name && i < N_CODES; i++)
        if (strcmp (name, s_code_names [i]) == 0)
            return (proto_code_t) i;
    return PROTO_E_INTERNAL;
}

//  ---------------------------------------------------------------------
//  States and key/value lists

int
proto_state_alloc (proto_state_t *state, uint32_t n_params)
{
    assert (state);
    memset (state, 0, sizeof (*state));
    if (n_params > PROTO_MAX_PARAMS)
        return -1;
    if (n_params == 0)
        return 0;
    state->params = calloc (n_params, sizeof (float));
    state->adam_m = calloc (n_params, sizeof (float));
    state->adam_v = calloc (n_params, sizeof (float));
    if (!state->params || !state->adam_m || !state->adam_v) {
        proto_state_free (state);
        return -1;
    }
    state->n_params = n_params;
    return 0;
}

void
proto_state_free (proto_state_t *state)
{
    if (!state)
        return;
    free (state->params);
    free (state->adam_m);
    free (state->adam_v);
    memset (state, 0, sizeof (*state));
}

static bool
s_finite (const float *v, uint32_t n)
{
    if (!v)
        return n == 0;
    for (uint32_t i = 0; i < n; i++)
        if (!isfinite (v [i]))
            return false;
    return true;
}

bool
proto_state_finite (const proto_state_t *state)
{
    assert (state);
    return s_finite (state->params, state->n_params)
        && s_finite (state->adam_m, state->n_params)
        && s_finite (state->adam_v, state->n_params);
}

int
proto_state_check (const proto_state_t *state, char *err, size_t err_len)
{
    assert (state);
    const struct { const char *name; const float *v; } vecs [] = {
        { "params", state->params }, { "adam_m", state->adam_m }, { "adam_v", state->adam_v },
    };
    for (int k = 0; k < 3; k++) {
        if (!vecs [k].v) {
            if (state->n_params == 0)
                continue;
            snprintf (err, err_len, "%s missing", vecs [k].name);
            return -1;
        }
        for (uint32_t i = 0; i < state->n_params; i++) {
            float x = vecs [k].v [i];
            //  The second moment goes under a square root in the next
            //  Adam step: a negative one would turn the weights to NaN.
            if (isfinite (x) && (k < 2 || x >= 0))
                continue;
            snprintf (err, err_len, "%s[%u] is %g%s", vecs [k].name, i, (double) x,
                      isfinite (x) ? " (must be >= 0)" : "");
            return -1;
        }
    }
    return 0;
}

double
proto_kvs_get (const proto_kvs_t *kvs, const char *name, double dflt)
{
    assert (kvs && name);
    for (uint32_t i = 0; i < kvs->count && i < PROTO_MAX_KV; i++)
        if (strcmp (kvs->items [i].name, name) == 0)
            return kvs->items [i].value;
    return dflt;
}

bool
proto_kvs_has (const proto_kvs_t *kvs, const char *name)
{
    assert (kvs && name);
    for (uint32_t i = 0; i < kvs->count && i < PROTO_MAX_KV; i++)
        if (strcmp (kvs->items [i].name, name) == 0)
            return true;
    return false;
}

int
proto_kvs_set (proto_kvs_t *kvs, const char *name, double value)
{
    assert (kvs && name);
    if (strlen (name) >= PROTO_MAX_NAME)
        return -1;
    for (uint32_t i = 0; i < kvs->count && i < PROTO_MAX_KV; i++)
        if (strcmp (kvs->items [i].name, name) == 0) {
            kvs->items [i].value = value;
            return 0;
        }
    if (kvs->count >= PROTO_MAX_KV)
        return -1;
    proto_kv_t *kv = &kvs->items [kvs->count++];
    memset (kv->name, 0, sizeof (kv->name));
    strcpy (kv->name, name);
    kv->value = value;
    return 0;
}

void
proto_msg_clear (proto_msg_t *msg)
{
    if (!msg)
        return;
    switch (msg->type) {
        case PROTO_ASSIGN:
            for (uint32_t i = 0; i < PROTO_MAX_AGENTS; i++)
                proto_state_free (&msg->u.assign.seats [i].state);
            break;
        case PROTO_RESULT:
            for (uint32_t i = 0; i < PROTO_MAX_AGENTS; i++)
                proto_state_free (&msg->u.result.seats [i].state);
            free (msg->u.result.scores);
            break;
        case PROTO_CTL:
            free (msg->u.ctl.args);
            break;
        case PROTO_CTL_REPLY:
            free (msg->u.ctl_reply.body);
            break;
        default:
            break;
    }
    memset (msg, 0, sizeof (*msg));
}

uint64_t
proto_model_head_params (const proto_model_t *model, int head)
{
    //  Each layer: weight [out][in] and bias [out]; the head ends in
    //  n_actions logits (actor) or one value (critic).
    uint64_t total = 0, in = model->obs_dim;
    for (uint32_t l = 0; l < model->n_hidden && l < PROTO_MAX_HIDDEN; l++) {
        total += in * model->hidden [l] + model->hidden [l];
        in = model->hidden [l];
    }
    uint64_t out = head == 0 ? model->n_actions : 1;
    return total + in * out + out;
}

uint64_t
proto_model_params (const proto_model_t *model)
{
    return proto_model_head_params (model, 0) + proto_model_head_params (model, 1);
}

//  ---------------------------------------------------------------------
//  Decoding

typedef struct {
    const uint8_t *buf;         // the whole frame, for offsets
    char *err;
    size_t err_len;
    //  Check only (proto_encode's self-check): float vectors are checked
    //  for type and length but not copied out.
    bool skip_floats;
} dc_t;

typedef struct {
    const char *name;
    proto_view_t v;
    bool have;
} fld_t;

#define TRY(expr) do { proto_code_t rc_ = (expr); if (rc_ != PROTO_OK) return rc_; } while (0)

static proto_code_t
s_fail (dc_t *c, proto_code_t code, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static proto_code_t
s_fail (dc_t *c, proto_code_t code, const char *fmt, ...)
{
    if (c->err && c->err_len) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (c->err, c->err_len, fmt, ap);
        va_end (ap);
    }
    return code;
}

//  Copy untrusted text into out for an error message: printable ASCII
//  only, truncated.
static void
s_printable (char *out, size_t out_len, const uint8_t *s, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < out_len; i++)
        out [j++] = s [i] >= 0x20 && s [i] < 0x7f ? (char) s [i] : '?';
    if (n > 0 && j == out_len - 1 && j < n && out_len > 4)
        memcpy (out + out_len - 4, "...", 3), j = out_len - 1;
    out [j] = 0;
}

static void
s_reader (dc_t *c, proto_view_t v, mp_rd_t *rd)
{
    mp_rd_init (rd, v.p, v.len);
    rd->base = (size_t) (v.p - c->buf);
}

//  Read the header of the value a view covers. The frame was checked, so
//  this cannot fail on a view made here; failing anyway is "malformed".
static proto_code_t
s_tok (dc_t *c, proto_view_t v, mp_rd_t *rd, mp_tok_t *tok)
{
    char err [128];
    s_reader (c, v, rd);
    if (mp_read (rd, tok, err, sizeof (err)))
        return s_fail (c, PROTO_E_MALFORMED, "%s", err);
    return PROTO_OK;
}

//  Next complete value at the cursor as a view.
static proto_code_t
s_next (dc_t *c, mp_rd_t *rd, proto_view_t *out)
{
    char err [128];
    size_t start = rd->pos;
    if (mp_skip (rd, 2, err, sizeof (err)))
        return s_fail (c, PROTO_E_MALFORMED, "%s", err);
    out->p = rd->buf + start;
    out->len = rd->pos - start;
    return PROTO_OK;
}

//  Scan a map once and note where each known field's value is. Unknown
//  keys are skipped (forward compatibility); a known key twice is an
//  error, as is a key that is not a string.
static proto_code_t
s_fields (dc_t *c, proto_view_t map, const char *path, fld_t *f, size_t n)
{
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, map, &rd, &tok));
    if (tok.kind != MP_MAP)
        return s_fail (c, PROTO_E_FIELD, "%s: expected map, got %s", path, mp_kind_name (&tok));
    for (uint32_t k = 0; k < tok.count; k++) {
        proto_view_t key = { 0 }, val = { 0 };
        TRY (s_next (c, &rd, &key));
        TRY (s_next (c, &rd, &val));
        mp_rd_t krd;
        mp_tok_t kt;
        TRY (s_tok (c, key, &krd, &kt));
        if (kt.kind != MP_STR)
            return s_fail (c, PROTO_E_FIELD, "%s: key at offset %zu is %s, keys must be strings",
                           path, (size_t) (key.p - c->buf), mp_kind_name (&kt));
        for (size_t i = 0; i < n; i++) {
            if (strlen (f [i].name) == kt.len && memcmp (f [i].name, kt.data, kt.len) == 0) {
                if (f [i].have)
                    return s_fail (c, PROTO_E_FIELD, "%s.%s: duplicate key at offset %zu",
                                   path, f [i].name, (size_t) (key.p - c->buf));
                f [i].have = true;
                f [i].v = val;
                break;
            }
        }
    }
    return PROTO_OK;
}

static proto_code_t
s_missing (dc_t *c, const char *path, const fld_t *f)
{
    return s_fail (c, PROTO_E_FIELD, "%s.%s: missing", path, f->name);
}

static proto_code_t
s_get_uint (dc_t *c, const char *path, const fld_t *f, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_INT)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected uint, got %s",
                       path, f->name, mp_kind_name (&tok));
    if (tok.neg)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected uint in [%llu, %llu], got %lld",
                       path, f->name, (unsigned long long) min, (unsigned long long) max,
                       (long long) tok.i);
    if (tok.u < min || tok.u > max)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected uint in [%llu, %llu], got %llu",
                       path, f->name, (unsigned long long) min, (unsigned long long) max,
                       (unsigned long long) tok.u);
    *out = tok.u;
    return PROTO_OK;
}

static proto_code_t
s_get_u32 (dc_t *c, const char *path, const fld_t *f, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    TRY (s_get_uint (c, path, f, min, max, &v));
    *out = (uint32_t) v;
    return PROTO_OK;
}

static proto_code_t
s_get_int (dc_t *c, const char *path, const fld_t *f, int64_t min, int64_t max, int64_t *out)
{
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_INT)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected int, got %s",
                       path, f->name, mp_kind_name (&tok));
    if ((!tok.neg && tok.u > (uint64_t) max) || tok.i < min || tok.i > max)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected int in [%lld, %lld], got %s%llu",
                       path, f->name, (long long) min, (long long) max,
                       tok.neg ? "-" : "",
                       tok.neg ? (unsigned long long) -(tok.i + 1) + 1 : (unsigned long long) tok.u);
    *out = tok.i;
    return PROTO_OK;
}

static proto_code_t
s_get_double (dc_t *c, const char *path, const fld_t *f, double min, double max, double *out)
{
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    double d;
    if (tok.kind == MP_FLOAT)
        d = tok.d;
    else
    if (tok.kind == MP_INT)
        d = tok.neg ? (double) tok.i : (double) tok.u;
    else
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected float, got %s",
                       path, f->name, mp_kind_name (&tok));
    if (!isfinite (d) || d < min || d > max)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected finite float in [%g, %g], got %g",
                       path, f->name, min, max, d);
    *out = d;
    return PROTO_OK;
}

static proto_code_t
s_get_bool (dc_t *c, const char *path, const fld_t *f, bool *out)
{
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_BOOL)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected bool, got %s",
                       path, f->name, mp_kind_name (&tok));
    *out = tok.b;
    return PROTO_OK;
}

//  Strings are copied NUL-terminated, so embedded NULs are refused. Free
//  text (error messages) is truncated at a UTF-8 boundary instead of being
//  refused for its length; identifiers must fit.
static proto_code_t
s_get_str (dc_t *c, const char *path, const fld_t *f, char *out, size_t cap,
           bool nonempty, bool truncate)
{
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_STR)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected str, got %s",
                       path, f->name, mp_kind_name (&tok));
    if (memchr (tok.data, 0, tok.len))
        return s_fail (c, PROTO_E_FIELD, "%s.%s: string contains a NUL byte", path, f->name);
    if (nonempty && tok.len == 0)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: must not be empty", path, f->name);
    size_t n = tok.len;
    if (n > cap - 1) {
        if (!truncate)
            return s_fail (c, PROTO_E_FIELD, "%s.%s: expected str of at most %zu bytes, got %zu",
                           path, f->name, cap - 1, n);
        n = cap - 1;
        while (n > 0 && (tok.data [n] & 0xc0) == 0x80)
            n--;
    }
    memcpy (out, tok.data, n);
    out [n] = 0;
    return PROTO_OK;
}

//  A map of name -> number (hparams, env_options, ppo).
static proto_code_t
s_get_kvs (dc_t *c, const char *path, const fld_t *f, proto_kvs_t *out)
{
    memset (out, 0, sizeof (*out));
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_MAP)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected map, got %s",
                       path, f->name, mp_kind_name (&tok));
    if (tok.count > PROTO_MAX_KV)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: at most %d entries, got %u",
                       path, f->name, PROTO_MAX_KV, tok.count);
    for (uint32_t k = 0; k < tok.count; k++) {
        proto_view_t key = { 0 }, val = { 0 };
        TRY (s_next (c, &rd, &key));
        TRY (s_next (c, &rd, &val));
        char sub [160];
        snprintf (sub, sizeof (sub), "%s.%s", path, f->name);
        fld_t kf = { .name = "<key>", .v = key, .have = true };
        proto_kv_t *kv = &out->items [k];
        TRY (s_get_str (c, sub, &kf, kv->name, sizeof (kv->name), false, false));
        for (uint32_t j = 0; j < k; j++)
            if (strcmp (out->items [j].name, kv->name) == 0)
                return s_fail (c, PROTO_E_FIELD, "%s.%s: duplicate key", sub, kv->name);
        fld_t vf = { .name = kv->name, .v = val, .have = true };
        TRY (s_get_double (c, sub, &vf, -HUGE_VAL, HUGE_VAL, &kv->value));
        out->count = k + 1;
    }
    return PROTO_OK;
}

//  A float vector: bin of exactly 4*n bytes, little-endian float32.
static proto_code_t
s_get_floats (dc_t *c, const char *path, const fld_t *f, uint32_t n, float **out)
{
    *out = NULL;
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_BIN)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected bin of 4*n_params=%llu bytes, got %s",
                       path, f->name, 4ull * n, mp_kind_name (&tok));
    if ((uint64_t) tok.len != 4ull * n)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected bin of 4*n_params=%llu bytes, got %u",
                       path, f->name, 4ull * n, tok.len);
    if (n == 0 || c->skip_floats)
        return PROTO_OK;
    //  The payload is in the frame, so this allocation is paid for.
    float *v = malloc ((size_t) n * sizeof (float));
    if (!v)
        return s_fail (c, PROTO_E_INTERNAL, "%s.%s: out of memory", path, f->name);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy (v, tok.data, (size_t) n * 4);
#else
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = tok.data + 4 * (size_t) i;
        uint32_t raw = (uint32_t) p [0] | (uint32_t) p [1] << 8
                     | (uint32_t) p [2] << 16 | (uint32_t) p [3] << 24;
        memcpy (&v [i], &raw, 4);
    }
#endif
    *out = v;
    return PROTO_OK;
}

static proto_code_t
s_get_state (dc_t *c, const char *path, const fld_t *f, proto_state_t *st)
{
    char sub [160];
    snprintf (sub, sizeof (sub), "%s.%s", path, f->name);
    fld_t fl [] = {
        { .name = "n_params" }, { .name = "params" }, { .name = "adam_m" },
        { .name = "adam_v" }, { .name = "adam_t" },
    };
    TRY (s_fields (c, f->v, sub, fl, 5));
    uint32_t n;
    TRY (s_get_u32 (c, sub, &fl [0], 0, PROTO_MAX_PARAMS, &n));
    TRY (s_get_floats (c, sub, &fl [1], n, &st->params));
    st->n_params = n;   // so that a failure below frees what was read
    TRY (s_get_floats (c, sub, &fl [2], n, &st->adam_m));
    TRY (s_get_floats (c, sub, &fl [3], n, &st->adam_v));
    TRY (s_get_uint (c, sub, &fl [4], 0, UINT64_MAX, &st->adam_t));
    return PROTO_OK;
}

static proto_code_t
s_get_model (dc_t *c, const char *path, const fld_t *f, proto_model_t *m)
{
    if (!f->have)
        return s_missing (c, path, f);
    char sub [160];
    snprintf (sub, sizeof (sub), "%s.%s", path, f->name);
    fld_t fl [] = {
        { .name = "obs_dim" }, { .name = "n_actions" }, { .name = "hidden" },
        { .name = "activation" },
    };
    TRY (s_fields (c, f->v, sub, fl, 4));
    TRY (s_get_u32 (c, sub, &fl [0], 1, PROTO_MAX_DIM, &m->obs_dim));
    TRY (s_get_u32 (c, sub, &fl [1], 1, PROTO_MAX_DIM, &m->n_actions));
    if (!fl [2].have)
        return s_missing (c, sub, &fl [2]);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, fl [2].v, &rd, &tok));
    if (tok.kind != MP_ARRAY || tok.count > PROTO_MAX_HIDDEN)
        return s_fail (c, PROTO_E_FIELD, "%s.hidden: expected array of at most %d uints, got %s of %u",
                       sub, PROTO_MAX_HIDDEN, mp_kind_name (&tok), tok.count);
    for (uint32_t i = 0; i < tok.count; i++) {
        char name [24];
        snprintf (name, sizeof (name), "hidden[%u]", i);
        fld_t hf = { .name = name, .have = true };
        TRY (s_next (c, &rd, &hf.v));
        TRY (s_get_u32 (c, sub, &hf, 1, PROTO_MAX_DIM, &m->hidden [i]));
    }
    m->n_hidden = tok.count;
    TRY (s_get_str (c, sub, &fl [3], m->activation, sizeof (m->activation), true, false));
    return PROTO_OK;
}

//  Walk an array of maps: calls fn for each element with its path.
typedef proto_code_t (s_elem_fn) (dc_t *c, const char *path, proto_view_t v, uint32_t i, void *arg);

static proto_code_t
s_get_array (dc_t *c, const char *path, const fld_t *f, uint32_t min, uint32_t max,
             uint32_t *count, s_elem_fn *fn, void *arg)
{
    if (!f->have)
        return s_missing (c, path, f);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, f->v, &rd, &tok));
    if (tok.kind != MP_ARRAY)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected array, got %s",
                       path, f->name, mp_kind_name (&tok));
    if (tok.count < min || tok.count > max)
        return s_fail (c, PROTO_E_FIELD, "%s.%s: expected %u to %u elements, got %u",
                       path, f->name, min, max, tok.count);
    for (uint32_t i = 0; i < tok.count; i++) {
        proto_view_t v;
        TRY (s_next (c, &rd, &v));
        char sub [160];
        snprintf (sub, sizeof (sub), "%s.%s[%u]", path, f->name, i);
        *count = i + 1;     // so that clearing frees elements read so far
        TRY (fn (c, sub, v, i, arg));
    }
    *count = tok.count;
    return PROTO_OK;
}

static proto_code_t
s_seat (dc_t *c, const char *path, proto_view_t v, uint32_t i, void *arg)
{
    proto_assign_t *a = arg;
    proto_seat_t *s = &a->seats [i];
    fld_t fl [] = {
        { .name = "id" }, { .name = "version" }, { .name = "slot" }, { .name = "train" },
        { .name = "script" }, { .name = "hparams" }, { .name = "state" },
        { .name = "init_seed" },
    };
    TRY (s_fields (c, v, path, fl, 8));
    TRY (s_get_int (c, path, &fl [0], -1, INT64_MAX, &s->id));
    TRY (s_get_uint (c, path, &fl [1], 0, UINT64_MAX, &s->version));
    TRY (s_get_u32 (c, path, &fl [2], 0, PROTO_MAX_AGENTS - 1, &s->slot));
    TRY (s_get_bool (c, path, &fl [3], &s->train));
    if (fl [4].have)
        TRY (s_get_str (c, path, &fl [4], s->script, sizeof (s->script), false, false));
    if (fl [5].have)
        TRY (s_get_kvs (c, path, &fl [5], &s->hparams));
    if (fl [6].have)
        TRY (s_get_state (c, path, &fl [6], &s->state));
    if (fl [7].have && fl [6].have)
        return s_fail (c, PROTO_E_FIELD, "%s.init_seed: a seat has a state or an init_seed, "
                       "not both", path);
    if (fl [7].have)
        TRY (s_get_uint (c, path, &fl [7], 0, UINT64_MAX, &s->state.init_seed));
    if (s->id == -1 && s->script [0] == 0)
        return s_fail (c, PROTO_E_FIELD, "%s.script: required when id is -1", path);
    if (s->id == -1 && s->state.n_params > 0)
        return s_fail (c, PROTO_E_FIELD, "%s.state: a scripted seat (id -1) has no state", path);
    if (s->state.n_params > 0) {
        uint64_t want = proto_model_params (&a->model);
        if (want != s->state.n_params)
            return s_fail (c, PROTO_E_FIELD,
                           "%s.state.n_params: model needs %llu parameters, got %u",
                           path, (unsigned long long) want, s->state.n_params);
    }
    return PROTO_OK;
}

//  A seat's training statistics: every key optional, each value then
//  checked against proto_stat_defs (one message format for all of them).
static proto_code_t
s_get_stats (dc_t *c, const char *path, const fld_t *f, proto_stats_t *st)
{
    char sub [160];
    snprintf (sub, sizeof (sub), "%s.%s", path, f->name);
    fld_t fl [PROTO_STAT_COUNT + PROTO_STAT_COUNTS] = { { 0 } };
    for (int i = 0; i < PROTO_STAT_COUNT; i++)
        fl [i].name = proto_stat_defs [i].name;
    for (int i = 0; i < PROTO_STAT_COUNTS; i++)
        fl [PROTO_STAT_COUNT + i].name = proto_stat_count_names [i];
    TRY (s_fields (c, f->v, sub, fl, PROTO_STAT_COUNT + PROTO_STAT_COUNTS));
    memset (st, 0, sizeof (*st));
    for (int i = 0; i < PROTO_STAT_COUNT; i++) {
        if (!fl [i].have)
            continue;
        mp_rd_t rd;
        mp_tok_t tok;
        TRY (s_tok (c, fl [i].v, &rd, &tok));
        if (tok.kind != MP_FLOAT && tok.kind != MP_INT)
            return s_fail (c, PROTO_E_FIELD, "%s.%s: expected float, got %s",
                           sub, fl [i].name, mp_kind_name (&tok));
        proto_stats_set (st, (proto_stat_id_t) i, tok.kind == MP_FLOAT ? tok.d
                         : tok.neg ? (double) tok.i : (double) tok.u);
    }
    for (int i = 0; i < PROTO_STAT_COUNTS; i++)
        if (fl [PROTO_STAT_COUNT + i].have)
            TRY (s_get_u32 (c, sub, &fl [PROTO_STAT_COUNT + i], 1, UINT32_MAX, &st->count [i]));
    char why [PROTO_MAX_TEXT];
    if (proto_stats_check (st, why, sizeof why))
        return s_fail (c, PROTO_E_FIELD, "%s.%s", sub, why);
    return PROTO_OK;
}

static proto_code_t
s_outcome (dc_t *c, const char *path, proto_view_t v, uint32_t i, void *arg)
{
    proto_result_t *r = arg;
    proto_outcome_t *o = &r->seats [i];
    fld_t fl [] = {
        { .name = "id" }, { .name = "version" }, { .name = "frames" }, { .name = "state" },
        { .name = "stats" },
    };
    TRY (s_fields (c, v, path, fl, 5));
    TRY (s_get_int (c, path, &fl [0], -1, INT64_MAX, &o->id));
    TRY (s_get_uint (c, path, &fl [1], 0, UINT64_MAX, &o->version));
    TRY (s_get_uint (c, path, &fl [2], 0, UINT64_MAX, &o->frames));
    if (fl [3].have)
        TRY (s_get_state (c, path, &fl [3], &o->state));
    if (fl [4].have) {
        TRY (s_get_stats (c, path, &fl [4], &o->stats));
        o->has_stats = true;
    }
    return PROTO_OK;
}

//  Length in bytes of the valid UTF-8 sequence at s[0..n), or 0 if none
//  (overlong forms, surrogates and code points past U+10FFFF are invalid).
static size_t
s_utf8_char (const unsigned char *s, size_t n)
{
    unsigned char b = s [0];
    if (b < 0x80)
        return 1;
    size_t len = b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3
               : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s [i] & 0xc0) != 0x80)
            return 0;
    if ((b == 0xe0 && s [1] < 0xa0) || (b == 0xed && s [1] > 0x9f)
    ||  (b == 0xf0 && s [1] < 0x90) || (b == 0xf4 && s [1] > 0x8f))
        return 0;
    return len;
}

//  Identities (hello's worker_id, host, software) end up in logs, status
//  and the database: valid UTF-8 without control characters, or bad_field.
static proto_code_t
s_check_identity (dc_t *c, const char *field, const char *s)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t n = strlen (s);
    for (size_t i = 0; i < n; ) {
        if (p [i] < 0x20 || p [i] == 0x7f)
            return s_fail (c, PROTO_E_FIELD, "hello.%s: control character 0x%02x at byte %zu",
                           field, p [i], i);
        size_t len = s_utf8_char (p + i, n - i);
        if (len == 0)
            return s_fail (c, PROTO_E_FIELD, "hello.%s: invalid UTF-8 at byte %zu", field, i);
        i += len;
    }
    return PROTO_OK;
}

static proto_code_t
s_env_id (dc_t *c, const char *path, proto_view_t v, uint32_t i, void *arg)
{
    proto_env_id_t *e = &((proto_hello_t *) arg)->envs [i];
    fld_t fl [] = { { .name = "name" }, { .name = "version" }, { .name = "hash" } };
    TRY (s_fields (c, v, path, fl, 3));
    TRY (s_get_str (c, path, &fl [0], e->name, sizeof (e->name), true, false));
    TRY (s_get_str (c, path, &fl [1], e->version, sizeof (e->version), true, false));
    TRY (s_get_str (c, path, &fl [2], e->hash, sizeof (e->hash), true, false));
    return PROTO_OK;
}

static proto_code_t
s_decode_hello (dc_t *c, proto_view_t top, proto_hello_t *m)
{
    fld_t fl [] = { { .name = "worker_id" }, { .name = "host" }, { .name = "pid" },
                    { .name = "software" }, { .name = "envs" } };
    TRY (s_fields (c, top, "hello", fl, 5));
    if (fl [4].have)
        TRY (s_get_array (c, "hello", &fl [4], 0, PROTO_MAX_ENVS, &m->n_envs, s_env_id, m));
    TRY (s_get_str (c, "hello", &fl [0], m->worker_id, sizeof (m->worker_id), true, false));
    if (fl [1].have)
        TRY (s_get_str (c, "hello", &fl [1], m->host, sizeof (m->host), false, false));
    if (fl [2].have)
        TRY (s_get_u32 (c, "hello", &fl [2], 0, UINT32_MAX, &m->pid));
    if (fl [3].have)
        TRY (s_get_str (c, "hello", &fl [3], m->software, sizeof (m->software), false, false));
    TRY (s_check_identity (c, "worker_id", m->worker_id));
    TRY (s_check_identity (c, "host", m->host));
    TRY (s_check_identity (c, "software", m->software));
    return PROTO_OK;
}

static proto_code_t
s_decode_welcome (dc_t *c, proto_view_t top, proto_welcome_t *m)
{
    fld_t fl [] = { { .name = "heartbeat_ms" }, { .name = "lease_ms" }, { .name = "max_held" } };
    TRY (s_fields (c, top, "welcome", fl, 3));
    TRY (s_get_u32 (c, "welcome", &fl [0], 1, UINT32_MAX, &m->heartbeat_ms));
    TRY (s_get_u32 (c, "welcome", &fl [1], 1, UINT32_MAX, &m->lease_ms));
    if (fl [2].have)
        TRY (s_get_u32 (c, "welcome", &fl [2], 1, PROTO_MAX_RETURNED, &m->max_held));
    return PROTO_OK;
}

static proto_code_t
s_decode_assign (dc_t *c, proto_view_t top, proto_assign_t *m)
{
    fld_t fl [] = {
        { .name = "assignment_id" }, { .name = "seed" }, { .name = "lease_ms" },
        { .name = "env" }, { .name = "env_options" }, { .name = "ppo" },
        { .name = "model" }, { .name = "seats" },
    };
    TRY (s_fields (c, top, "assign", fl, 8));
    TRY (s_get_uint (c, "assign", &fl [0], 0, UINT64_MAX, &m->assignment_id));
    TRY (s_get_uint (c, "assign", &fl [1], 0, UINT64_MAX, &m->seed));
    TRY (s_get_u32 (c, "assign", &fl [2], 1, UINT32_MAX, &m->lease_ms));
    TRY (s_get_str (c, "assign", &fl [3], m->env, sizeof (m->env), true, false));
    if (fl [4].have)
        TRY (s_get_kvs (c, "assign", &fl [4], &m->env_options));
    if (fl [5].have)
        TRY (s_get_kvs (c, "assign", &fl [5], &m->ppo));
    TRY (s_get_model (c, "assign", &fl [6], &m->model));
    TRY (s_get_array (c, "assign", &fl [7], 1, PROTO_MAX_AGENTS, &m->n_seats, s_seat, m));
    return PROTO_OK;
}

//  The optional busy_ms/uptime_ms pair: both or neither, busy <= uptime.
static proto_code_t
s_get_duty (dc_t *c, const char *path, const fld_t *busy, const fld_t *up, proto_duty_t *d)
{
    if (!busy->have && !up->have)
        return PROTO_OK;
    if (!busy->have || !up->have)
        return s_missing (c, path, busy->have ? up : busy);
    TRY (s_get_uint (c, path, up, 1, UINT64_MAX, &d->uptime_ms));
    TRY (s_get_uint (c, path, busy, 0, d->uptime_ms, &d->busy_ms));
    return PROTO_OK;
}

static proto_code_t
s_decode_heartbeat (dc_t *c, proto_view_t top, proto_heartbeat_t *m)
{
    fld_t fl [] = { { .name = "assignment_id" }, { .name = "frames_done" },
                    { .name = "busy_ms" }, { .name = "uptime_ms" } };
    TRY (s_fields (c, top, "heartbeat", fl, 4));
    TRY (s_get_uint (c, "heartbeat", &fl [0], 0, UINT64_MAX, &m->assignment_id));
    TRY (s_get_uint (c, "heartbeat", &fl [1], 0, UINT64_MAX, &m->frames_done));
    TRY (s_get_duty (c, "heartbeat", &fl [2], &fl [3], &m->duty));
    return PROTO_OK;
}

static proto_code_t
s_decode_result (dc_t *c, proto_view_t top, proto_result_t *m)
{
    fld_t fl [] = {
        { .name = "assignment_id" }, { .name = "samples_per_s" }, { .name = "seconds" },
        { .name = "seats" }, { .name = "n_episodes" }, { .name = "scores" },
        { .name = "busy_ms" }, { .name = "uptime_ms" },
    };
    TRY (s_fields (c, top, "result", fl, 8));
    TRY (s_get_duty (c, "result", &fl [6], &fl [7], &m->duty));
    TRY (s_get_uint (c, "result", &fl [0], 0, UINT64_MAX, &m->assignment_id));
    TRY (s_get_double (c, "result", &fl [1], 0, HUGE_VAL, &m->samples_per_s));
    TRY (s_get_double (c, "result", &fl [2], 0, HUGE_VAL, &m->seconds));
    TRY (s_get_array (c, "result", &fl [3], 1, PROTO_MAX_AGENTS, &m->n_seats, s_outcome, m));
    TRY (s_get_u32 (c, "result", &fl [4], 0, PROTO_MAX_EPISODES, &m->n_episodes));
    //  n_episodes * n_seats <= 2^20 * 8 floats; the bin check below holds
    //  the allocation to what the frame carries.
    fld_t *sf = &fl [5];
    if (!sf->have)
        return s_missing (c, "result", sf);
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, sf->v, &rd, &tok));
    uint64_t want = 4ull * m->n_episodes * m->n_seats;
    if (tok.kind != MP_BIN || tok.len != want)
        return s_fail (c, PROTO_E_FIELD,
                       "result.scores: expected bin of 4*n_episodes*n_seats=%llu bytes, got %s of %u",
                       (unsigned long long) want, mp_kind_name (&tok), tok.len);
    return s_get_floats (c, "result", sf, m->n_episodes * m->n_seats, &m->scores);
}

static proto_code_t
s_decode_ack (dc_t *c, proto_view_t top, proto_ack_t *m)
{
    fld_t fl [] = { { .name = "assignment_id" }, { .name = "applied" } };
    TRY (s_fields (c, top, "ack", fl, 2));
    if (fl [0].have)
        TRY (s_get_uint (c, "ack", &fl [0], 0, UINT64_MAX, &m->assignment_id));
    if (fl [1].have)
        TRY (s_get_bool (c, "ack", &fl [1], &m->applied));
    return PROTO_OK;
}

static proto_code_t
s_decode_error (dc_t *c, proto_view_t top, proto_error_t *m)
{
    fld_t fl [] = { { .name = "code" }, { .name = "assignment_id" }, { .name = "message" } };
    TRY (s_fields (c, top, "error", fl, 3));
    char code [PROTO_MAX_NAME];
    TRY (s_get_str (c, "error", &fl [0], code, sizeof (code), true, true));
    //  Codes this build does not know read as "internal", so a newer peer
    //  can add codes without breaking older ones.
    m->code = proto_code_parse (code);
    if (m->code == PROTO_OK)
        return s_fail (c, PROTO_E_FIELD, "error.code: ok is not an error code");
    if (fl [1].have)
        TRY (s_get_uint (c, "error", &fl [1], 0, UINT64_MAX, &m->assignment_id));
    if (fl [2].have)
        TRY (s_get_str (c, "error", &fl [2], m->message, sizeof (m->message), false, true));
    return PROTO_OK;
}

static proto_code_t
s_decode_bye (dc_t *c, proto_view_t top, proto_bye_t *m)
{
    fld_t fl [] = { { .name = "returned" } };
    TRY (s_fields (c, top, "bye", fl, 1));
    if (fl [0].have) {
        mp_rd_t rd;
        mp_tok_t tok;
        TRY (s_tok (c, fl [0].v, &rd, &tok));
        if (tok.kind != MP_ARRAY || tok.count > PROTO_MAX_RETURNED)
            return s_fail (c, PROTO_E_FIELD, "bye.returned: expected array of at most %d uints, "
                           "got %s of %u", PROTO_MAX_RETURNED, mp_kind_name (&tok), tok.count);
        for (uint32_t i = 0; i < tok.count; i++) {
            char name [32];
            snprintf (name, sizeof name, "returned[%u]", i);
            fld_t f = { .name = name, .have = true };
            TRY (s_next (c, &rd, &f.v));
            TRY (s_get_uint (c, "bye", &f, 1, UINT64_MAX, &m->returned [i]));
        }
        m->n_returned = tok.count;
    }
    return PROTO_OK;
}

//  Copies one value's bytes (already checked as part of the frame).
static proto_code_t
s_get_raw (dc_t *c, const char *path, const fld_t *f, uint8_t **out, size_t *out_len)
{
    uint8_t *copy = malloc (f->v.len);
    if (!copy)
        return s_fail (c, PROTO_E_INTERNAL, "%s.%s: out of memory", path, f->name);
    memcpy (copy, f->v.p, f->v.len);
    *out = copy;
    *out_len = f->v.len;
    return PROTO_OK;
}

static proto_code_t
s_decode_ctl (dc_t *c, proto_view_t top, proto_ctl_t *m)
{
    fld_t fl [] = { { .name = "cmd" }, { .name = "token" }, { .name = "args" } };
    TRY (s_fields (c, top, "ctl", fl, 3));
    TRY (s_get_str (c, "ctl", &fl [0], m->cmd, sizeof (m->cmd), true, false));
    if (fl [1].have)
        TRY (s_get_str (c, "ctl", &fl [1], m->token, sizeof (m->token), false, false));
    if (fl [2].have) {
        mp_rd_t rd;
        mp_tok_t tok;
        TRY (s_tok (c, fl [2].v, &rd, &tok));
        if (tok.kind == MP_MAP)
            TRY (s_get_raw (c, "ctl", &fl [2], &m->args, &m->args_len));
        else
        if (tok.kind != MP_NIL)
            return s_fail (c, PROTO_E_FIELD, "ctl.args: expected map or nil, got %s",
                           mp_kind_name (&tok));
    }
    return PROTO_OK;
}

static proto_code_t
s_decode_ctl_reply (dc_t *c, proto_view_t top, proto_ctl_reply_t *m)
{
    fld_t fl [] = { { .name = "ok" }, { .name = "error" }, { .name = "body" } };
    TRY (s_fields (c, top, "ctl_reply", fl, 3));
    TRY (s_get_bool (c, "ctl_reply", &fl [0], &m->ok));
    if (fl [1].have)
        TRY (s_get_str (c, "ctl_reply", &fl [1], m->error, sizeof (m->error), false, true));
    if (fl [2].have)
        TRY (s_get_raw (c, "ctl_reply", &fl [2], &m->body, &m->body_len));
    return PROTO_OK;
}

static proto_code_t
s_decode (dc_t *c, const uint8_t *buf, size_t len, proto_msg_t *msg)
{
    if (len > PROTO_MAX_FRAME)
        return s_fail (c, PROTO_E_TOO_LARGE, "frame of %zu bytes is over the %u byte limit",
                       len, PROTO_MAX_FRAME);
    if (!buf || len == 0)
        return s_fail (c, PROTO_E_MALFORMED, "malformed: empty frame");
    char err [160];
    if (proto_value_check (buf, len, err, sizeof (err)))
        return s_fail (c, PROTO_E_MALFORMED, "%s", err);

    proto_view_t top = { .p = buf, .len = len };
    mp_rd_t rd;
    mp_tok_t tok;
    TRY (s_tok (c, top, &rd, &tok));
    if (tok.kind != MP_MAP)
        return s_fail (c, PROTO_E_MALFORMED, "malformed: message is %s, expected a map",
                       mp_kind_name (&tok));
    fld_t head [] = { { .name = "v" }, { .name = "type" } };
    TRY (s_fields (c, top, "message", head, 2));

    if (!head [0].have)
        return s_fail (c, PROTO_E_VERSION,
                       "\"v\" missing: protocol version required, this build speaks %d",
                       PROTO_VERSION);
    TRY (s_tok (c, head [0].v, &rd, &tok));
    if (tok.kind != MP_INT)
        return s_fail (c, PROTO_E_VERSION,
                       "\"v\" is %s, expected uint %d (the version this build speaks)",
                       mp_kind_name (&tok), PROTO_VERSION);
    if (tok.neg || tok.u != PROTO_VERSION)
        return s_fail (c, PROTO_E_VERSION,
                       "unsupported protocol version %s%llu, this build speaks %d",
                       tok.neg ? "-" : "",
                       tok.neg ? (unsigned long long) -(tok.i + 1) + 1 : (unsigned long long) tok.u,
                       PROTO_VERSION);

    if (!head [1].have)
        return s_fail (c, PROTO_E_TYPE, "\"type\" missing");
    TRY (s_tok (c, head [1].v, &rd, &tok));
    if (tok.kind != MP_STR)
        return s_fail (c, PROTO_E_TYPE, "\"type\" is %s, expected str", mp_kind_name (&tok));
    proto_type_t type = 0;
    for (size_t i = 1; i < N_TYPES; i++)
        if (strlen (s_type_names [i]) == tok.len
        &&  memcmp (s_type_names [i], tok.data, tok.len) == 0)
            type = (proto_type_t) i;
    if (type == 0) {
        char shown [64];
        s_printable (shown, sizeof (shown), tok.data, tok.len);
        return s_fail (c, PROTO_E_TYPE, "unknown message type \"%s\"", shown);
    }
    msg->type = type;
    switch (type) {
        case PROTO_HELLO:     return s_decode_hello (c, top, &msg->u.hello);
        case PROTO_WELCOME:   return s_decode_welcome (c, top, &msg->u.welcome);
        case PROTO_REQUEST:   return PROTO_OK;
        case PROTO_ASSIGN:    return s_decode_assign (c, top, &msg->u.assign);
        case PROTO_HEARTBEAT: return s_decode_heartbeat (c, top, &msg->u.heartbeat);
        case PROTO_RESULT:    return s_decode_result (c, top, &msg->u.result);
        case PROTO_ACK:       return s_decode_ack (c, top, &msg->u.ack);
        case PROTO_ERROR:     return s_decode_error (c, top, &msg->u.error);
        case PROTO_CTL:       return s_decode_ctl (c, top, &msg->u.ctl);
        case PROTO_CTL_REPLY: return s_decode_ctl_reply (c, top, &msg->u.ctl_reply);
        case PROTO_BYE:       return s_decode_bye (c, top, &msg->u.bye);
    }
    return s_fail (c, PROTO_E_TYPE, "unknown message type");
}

proto_code_t
proto_decode (const uint8_t *buf, size_t len, proto_msg_t *msg, char *err, size_t err_len)
{
    assert (msg);
    memset (msg, 0, sizeof (*msg));
    if (err && err_len)
        err [0] = 0;
    dc_t c = { .buf = buf, .err = err, .err_len = err_len };
    proto_code_t rc = s_decode (&c, buf, len, msg);
    if (rc != PROTO_OK)
        proto_msg_clear (msg);
    return rc;
}

uint64_t
proto_peek_assignment_id (const uint8_t *buf, size_t len)
{
    if (!buf || len == 0 || len > PROTO_MAX_FRAME)
        return 0;
    mp_rd_t rd;
    mp_tok_t tok;
    mp_rd_init (&rd, buf, len);
    if (mp_read (&rd, &tok, NULL, 0) || tok.kind != MP_MAP)
        return 0;
    bool carries = false;
    int n_ids = 0;
    uint64_t id = 0;
    for (uint32_t k = 0; k < tok.count; k++) {
        mp_tok_t key, val;
        if (mp_read (&rd, &key, NULL, 0) || key.kind != MP_STR)
            break;
        size_t at = rd.pos;
        if (mp_read (&rd, &val, NULL, 0))
            break;
        rd.pos = at;
        if (mp_skip (&rd, 2, NULL, 0))
            break;
        if (key.len == 4 && !memcmp (key.data, "type", 4) && val.kind == MP_STR)
            carries = (val.len == 9 && !memcmp (val.data, "heartbeat", 9))
                   || (val.len == 6 && !memcmp (val.data, "result", 6));
        else
        if (key.len == 13 && !memcmp (key.data, "assignment_id", 13)) {
            n_ids++;
            id = val.kind == MP_INT && !val.neg ? val.u : 0;
        }
    }
    return carries && n_ids == 1 ? id : 0;
}

//  Every check proto_decode makes, without copying the state vectors out.
static proto_code_t
s_check (const uint8_t *buf, size_t len, char *err, size_t err_len)
{
    proto_msg_t *msg = malloc (sizeof (proto_msg_t));
    if (!msg) {
        snprintf (err, err_len, "out of memory");
        return PROTO_E_INTERNAL;
    }
    memset (msg, 0, sizeof (*msg));
    err [0] = 0;
    dc_t c = { .buf = buf, .err = err, .err_len = err_len, .skip_floats = true };
    proto_code_t rc = s_decode (&c, buf, len, msg);
    proto_msg_clear (msg);
    free (msg);
    return rc;
}

//  ---------------------------------------------------------------------
//  Encoding

#define PK(expr) do { if ((expr) != 0) goto fail; } while (0)

static int
s_pack_str (msgpack_packer *pk, const char *s)
{
    size_t n = strlen (s);
    return msgpack_pack_str (pk, n) || msgpack_pack_str_body (pk, s, n);
}

static int
s_pack_key (msgpack_packer *pk, const char *key)
{
    return s_pack_str (pk, key);
}

static int
s_pack_floats (msgpack_packer *pk, const float *v, uint32_t n)
{
    if (msgpack_pack_bin (pk, (size_t) n * 4))
        return -1;
    if (n == 0)
        return 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return msgpack_pack_bin_body (pk, v, (size_t) n * 4);
#else
    for (uint32_t i = 0; i < n; i++) {
        uint32_t raw;
        memcpy (&raw, &v [i], 4);
        uint8_t le [4] = { raw, raw >> 8, raw >> 16, raw >> 24 };
        if (msgpack_pack_bin_body (pk, le, 4))
            return -1;
    }
    return 0;
#endif
}

static int
s_pack_kvs (msgpack_packer *pk, const proto_kvs_t *kvs)
{
    if (msgpack_pack_map (pk, kvs->count))
        return -1;
    for (uint32_t i = 0; i < kvs->count; i++)
        if (s_pack_str (pk, kvs->items [i].name)
        ||  msgpack_pack_double (pk, kvs->items [i].value))
            return -1;
    return 0;
}

static int
s_pack_duty (msgpack_packer *pk, const proto_duty_t *d)
{
    if (!d->uptime_ms)
        return 0;
    return s_pack_key (pk, "busy_ms") || msgpack_pack_uint64 (pk, d->busy_ms)
        || s_pack_key (pk, "uptime_ms") || msgpack_pack_uint64 (pk, d->uptime_ms);
}

static int
s_pack_state (msgpack_packer *pk, const proto_state_t *st)
{
    return msgpack_pack_map (pk, 5)
        || s_pack_key (pk, "n_params") || msgpack_pack_uint32 (pk, st->n_params)
        || s_pack_key (pk, "params") || s_pack_floats (pk, st->params, st->n_params)
        || s_pack_key (pk, "adam_m") || s_pack_floats (pk, st->adam_m, st->n_params)
        || s_pack_key (pk, "adam_v") || s_pack_floats (pk, st->adam_v, st->n_params)
        || s_pack_key (pk, "adam_t") || msgpack_pack_uint64 (pk, st->adam_t);
}

//  Present statistics as float64, then the nonzero counts.
static int
s_pack_stats (msgpack_packer *pk, const proto_stats_t *st)
{
    uint32_t n = 0;
    for (int i = 0; i < PROTO_STAT_COUNT; i++)
        n += proto_stats_has (st, (proto_stat_id_t) i);
    for (int i = 0; i < PROTO_STAT_COUNTS; i++)
        n += st->count [i] > 0;
    if (msgpack_pack_map (pk, n))
        return -1;
    for (int i = 0; i < PROTO_STAT_COUNT; i++)
        if (proto_stats_has (st, (proto_stat_id_t) i)
        &&  (s_pack_key (pk, proto_stat_defs [i].name) || msgpack_pack_double (pk, st->value [i])))
            return -1;
    for (int i = 0; i < PROTO_STAT_COUNTS; i++)
        if (st->count [i] > 0
        &&  (s_pack_key (pk, proto_stat_count_names [i]) || msgpack_pack_uint32 (pk, st->count [i])))
            return -1;
    return 0;
}

//  What must hold before packing at all: the packer reads these arrays,
//  so counts must be in bounds, strings terminated and vectors present.
//  Everything else is checked by decoding the packed frame.
static bool
s_str_ok (const char *s, size_t cap)
{
    return strnlen (s, cap) < cap;
}

static bool
s_kvs_ok (const proto_kvs_t *kvs)
{
    if (kvs->count > PROTO_MAX_KV)
        return false;
    for (uint32_t i = 0; i < kvs->count; i++)
        if (!s_str_ok (kvs->items [i].name, PROTO_MAX_NAME))
            return false;
    return true;
}

static bool
s_state_ok (const proto_state_t *st)
{
    return st->n_params <= PROTO_MAX_PARAMS
        && (st->n_params == 0 || (st->params && st->adam_m && st->adam_v));
}

//  Bytes of float vectors a message carries.
static size_t
s_state_bytes (const proto_msg_t *msg)
{
    size_t total = 0;
    if (msg->type == PROTO_ASSIGN)
        for (uint32_t i = 0; i < msg->u.assign.n_seats && i < PROTO_MAX_AGENTS; i++)
            total += 12 * (size_t) msg->u.assign.seats [i].state.n_params;
    if (msg->type == PROTO_RESULT)
        for (uint32_t i = 0; i < msg->u.result.n_seats && i < PROTO_MAX_AGENTS; i++)
            total += 12 * (size_t) msg->u.result.seats [i].state.n_params;
    return total;
}

static const char *
s_precheck (const proto_msg_t *msg)
{
    const proto_assign_t *a = &msg->u.assign;
    const proto_result_t *r = &msg->u.result;
    switch (msg->type) {
        case PROTO_HELLO:
            if (!s_str_ok (msg->u.hello.worker_id, PROTO_MAX_TEXT)
            ||  !s_str_ok (msg->u.hello.host, PROTO_MAX_TEXT)
            ||  !s_str_ok (msg->u.hello.software, PROTO_MAX_NAME))
                return "hello: unterminated string";
            if (msg->u.hello.n_envs > PROTO_MAX_ENVS)
                return "hello: n_envs over the limit";
            for (uint32_t i = 0; i < msg->u.hello.n_envs; i++) {
                const proto_env_id_t *e = &msg->u.hello.envs [i];
                if (!s_str_ok (e->name, PROTO_MAX_NAME) || !s_str_ok (e->version, PROTO_MAX_NAME)
                ||  !s_str_ok (e->hash, PROTO_MAX_NAME) || !e->name [0] || !e->version [0]
                ||  !e->hash [0])
                    return "hello: envs entry empty or unterminated";
            }
            break;
        case PROTO_ASSIGN:
            if (a->n_seats > PROTO_MAX_AGENTS || a->model.n_hidden > PROTO_MAX_HIDDEN)
                return "assign: n_seats or model.n_hidden over the limit";
            if (!s_str_ok (a->env, PROTO_MAX_NAME) || !s_str_ok (a->model.activation, PROTO_MAX_NAME)
            ||  !s_kvs_ok (&a->env_options) || !s_kvs_ok (&a->ppo))
                return "assign: bad string or kv list";
            for (uint32_t i = 0; i < a->n_seats; i++)
                if (!s_str_ok (a->seats [i].script, PROTO_MAX_NAME)
                ||  !s_kvs_ok (&a->seats [i].hparams) || !s_state_ok (&a->seats [i].state))
                    return "assign: bad seat";
            break;
        case PROTO_RESULT:
            if (r->n_seats > PROTO_MAX_AGENTS || r->n_episodes > PROTO_MAX_EPISODES)
                return "result: n_seats or n_episodes over the limit";
            if (r->n_episodes && r->n_seats && !r->scores)
                return "result: scores missing";
            for (uint32_t i = 0; i < r->n_seats; i++)
                if (!s_state_ok (&r->seats [i].state))
                    return "result: bad seat state";
            break;
        case PROTO_ERROR:
            if (!s_str_ok (msg->u.error.message, PROTO_MAX_TEXT))
                return "error: unterminated message";
            break;
        case PROTO_BYE:
            if (msg->u.bye.n_returned > PROTO_MAX_RETURNED)
                return "bye: more returned assignments than the limit";
            break;
        case PROTO_CTL:
            if (!s_str_ok (msg->u.ctl.cmd, PROTO_MAX_NAME) || !s_str_ok (msg->u.ctl.token, PROTO_MAX_TEXT))
                return "ctl: unterminated string";
            if (msg->u.ctl.args) {
                mp_rd_t rd;
                mp_tok_t tok;
                mp_rd_init (&rd, msg->u.ctl.args, msg->u.ctl.args_len);
                if (proto_value_check (msg->u.ctl.args, msg->u.ctl.args_len, NULL, 0)
                ||  mp_read (&rd, &tok, NULL, 0) || tok.kind != MP_MAP)
                    return "ctl: args is not one well-formed MessagePack map";
            }
            break;
        case PROTO_CTL_REPLY:
            if (!s_str_ok (msg->u.ctl_reply.error, PROTO_MAX_TEXT))
                return "ctl_reply: unterminated error";
            if (msg->u.ctl_reply.body
            &&  proto_value_check (msg->u.ctl_reply.body, msg->u.ctl_reply.body_len, NULL, 0))
                return "ctl_reply: body is not one well-formed MessagePack value";
            break;
        default:
            break;
    }
    return NULL;
}

static int
s_pack_body (msgpack_packer *pk, const proto_msg_t *msg)
{
    const char *type = proto_type_name (msg->type);
    uint32_t n = 0;
    switch (msg->type) {
        case PROTO_HELLO:     n = 5; break;
        case PROTO_WELCOME:   n = 2 + (msg->u.welcome.max_held != 0); break;
        case PROTO_REQUEST:   n = 0; break;
        case PROTO_ASSIGN:    n = 8; break;
        case PROTO_HEARTBEAT: n = 2 + 2 * (msg->u.heartbeat.duty.uptime_ms != 0); break;
        case PROTO_RESULT:    n = 6 + 2 * (msg->u.result.duty.uptime_ms != 0); break;
        case PROTO_ACK:       n = 2; break;
        case PROTO_ERROR:     n = 3; break;
        case PROTO_CTL:       n = 1 + (msg->u.ctl.token [0] != 0) + (msg->u.ctl.args != NULL); break;
        case PROTO_CTL_REPLY: n = 1 + (msg->u.ctl_reply.error [0] != 0) + (msg->u.ctl_reply.body != NULL); break;
        case PROTO_BYE:       n = 1; break;
    }
    PK (msgpack_pack_map (pk, 2 + n));
    PK (s_pack_key (pk, "v"));
    PK (msgpack_pack_uint32 (pk, PROTO_VERSION));
    PK (s_pack_key (pk, "type"));
    PK (s_pack_str (pk, type));

    switch (msg->type) {
        case PROTO_HELLO: {
            const proto_hello_t *m = &msg->u.hello;
            PK (s_pack_key (pk, "worker_id") || s_pack_str (pk, m->worker_id));
            PK (s_pack_key (pk, "host") || s_pack_str (pk, m->host));
            PK (s_pack_key (pk, "pid") || msgpack_pack_uint32 (pk, m->pid));
            PK (s_pack_key (pk, "software") || s_pack_str (pk, m->software));
            PK (s_pack_key (pk, "envs") || msgpack_pack_array (pk, m->n_envs));
            for (uint32_t i = 0; i < m->n_envs; i++) {
                PK (msgpack_pack_map (pk, 3));
                PK (s_pack_key (pk, "name") || s_pack_str (pk, m->envs [i].name));
                PK (s_pack_key (pk, "version") || s_pack_str (pk, m->envs [i].version));
                PK (s_pack_key (pk, "hash") || s_pack_str (pk, m->envs [i].hash));
            }
            break;
        }
        case PROTO_WELCOME:
            PK (s_pack_key (pk, "heartbeat_ms") || msgpack_pack_uint32 (pk, msg->u.welcome.heartbeat_ms));
            PK (s_pack_key (pk, "lease_ms") || msgpack_pack_uint32 (pk, msg->u.welcome.lease_ms));
            if (msg->u.welcome.max_held)
                PK (s_pack_key (pk, "max_held") || msgpack_pack_uint32 (pk, msg->u.welcome.max_held));
            break;
        case PROTO_REQUEST:
            break;
        case PROTO_ASSIGN: {
            const proto_assign_t *m = &msg->u.assign;
            PK (s_pack_key (pk, "assignment_id") || msgpack_pack_uint64 (pk, m->assignment_id));
            PK (s_pack_key (pk, "seed") || msgpack_pack_uint64 (pk, m->seed));
            PK (s_pack_key (pk, "lease_ms") || msgpack_pack_uint32 (pk, m->lease_ms));
            PK (s_pack_key (pk, "env") || s_pack_str (pk, m->env));
            PK (s_pack_key (pk, "env_options") || s_pack_kvs (pk, &m->env_options));
            PK (s_pack_key (pk, "ppo") || s_pack_kvs (pk, &m->ppo));
            PK (s_pack_key (pk, "model") || msgpack_pack_map (pk, 4));
            PK (s_pack_key (pk, "obs_dim") || msgpack_pack_uint32 (pk, m->model.obs_dim));
            PK (s_pack_key (pk, "n_actions") || msgpack_pack_uint32 (pk, m->model.n_actions));
            PK (s_pack_key (pk, "hidden") || msgpack_pack_array (pk, m->model.n_hidden));
            for (uint32_t i = 0; i < m->model.n_hidden; i++)
                PK (msgpack_pack_uint32 (pk, m->model.hidden [i]));
            PK (s_pack_key (pk, "activation") || s_pack_str (pk, m->model.activation));
            PK (s_pack_key (pk, "seats") || msgpack_pack_array (pk, m->n_seats));
            for (uint32_t i = 0; i < m->n_seats; i++) {
                const proto_seat_t *s = &m->seats [i];
                bool has_state = s->state.n_params > 0;
                bool has_init = !has_state && s->id >= 0;
                PK (msgpack_pack_map (pk, 6 + has_state + has_init));
                PK (s_pack_key (pk, "id") || msgpack_pack_int64 (pk, s->id));
                PK (s_pack_key (pk, "version") || msgpack_pack_uint64 (pk, s->version));
                PK (s_pack_key (pk, "slot") || msgpack_pack_uint32 (pk, s->slot));
                PK (s_pack_key (pk, "train") || (s->train ? msgpack_pack_true (pk) : msgpack_pack_false (pk)));
                PK (s_pack_key (pk, "script") || s_pack_str (pk, s->script));
                PK (s_pack_key (pk, "hparams") || s_pack_kvs (pk, &s->hparams));
                if (has_state)
                    PK (s_pack_key (pk, "state") || s_pack_state (pk, &s->state));
                if (has_init)
                    PK (s_pack_key (pk, "init_seed") || msgpack_pack_uint64 (pk, s->state.init_seed));
            }
            break;
        }
        case PROTO_HEARTBEAT:
            PK (s_pack_key (pk, "assignment_id") || msgpack_pack_uint64 (pk, msg->u.heartbeat.assignment_id));
            PK (s_pack_key (pk, "frames_done") || msgpack_pack_uint64 (pk, msg->u.heartbeat.frames_done));
            PK (s_pack_duty (pk, &msg->u.heartbeat.duty));
            break;
        case PROTO_RESULT: {
            const proto_result_t *m = &msg->u.result;
            PK (s_pack_key (pk, "assignment_id") || msgpack_pack_uint64 (pk, m->assignment_id));
            PK (s_pack_key (pk, "samples_per_s") || msgpack_pack_double (pk, m->samples_per_s));
            PK (s_pack_key (pk, "seconds") || msgpack_pack_double (pk, m->seconds));
            PK (s_pack_key (pk, "seats") || msgpack_pack_array (pk, m->n_seats));
            for (uint32_t i = 0; i < m->n_seats; i++) {
                const proto_outcome_t *o = &m->seats [i];
                bool has_state = o->state.n_params > 0;
                PK (msgpack_pack_map (pk, 3 + has_state + o->has_stats));
                PK (s_pack_key (pk, "id") || msgpack_pack_int64 (pk, o->id));
                PK (s_pack_key (pk, "version") || msgpack_pack_uint64 (pk, o->version));
                PK (s_pack_key (pk, "frames") || msgpack_pack_uint64 (pk, o->frames));
                if (has_state)
                    PK (s_pack_key (pk, "state") || s_pack_state (pk, &o->state));
                if (o->has_stats)
                    PK (s_pack_key (pk, "stats") || s_pack_stats (pk, &o->stats));
            }
            PK (s_pack_key (pk, "n_episodes") || msgpack_pack_uint32 (pk, m->n_episodes));
            PK (s_pack_key (pk, "scores") || s_pack_floats (pk, m->scores, m->n_episodes * m->n_seats));
            PK (s_pack_duty (pk, &m->duty));
            break;
        }
        case PROTO_ACK:
            PK (s_pack_key (pk, "assignment_id") || msgpack_pack_uint64 (pk, msg->u.ack.assignment_id));
            PK (s_pack_key (pk, "applied") || (msg->u.ack.applied ? msgpack_pack_true (pk) : msgpack_pack_false (pk)));
            break;
        case PROTO_ERROR:
            PK (s_pack_key (pk, "code") || s_pack_str (pk, proto_code_name (msg->u.error.code)));
            PK (s_pack_key (pk, "assignment_id") || msgpack_pack_uint64 (pk, msg->u.error.assignment_id));
            PK (s_pack_key (pk, "message") || s_pack_str (pk, msg->u.error.message));
            break;
        case PROTO_CTL:
            PK (s_pack_key (pk, "cmd") || s_pack_str (pk, msg->u.ctl.cmd));
            if (msg->u.ctl.token [0])
                PK (s_pack_key (pk, "token") || s_pack_str (pk, msg->u.ctl.token));
            if (msg->u.ctl.args) {
                PK (s_pack_key (pk, "args"));
                //  Raw, already-encoded MessagePack goes in as is.
                PK (msgpack_sbuffer_write (pk->data, (const char *) msg->u.ctl.args, msg->u.ctl.args_len));
            }
            break;
        case PROTO_CTL_REPLY:
            PK (s_pack_key (pk, "ok") || (msg->u.ctl_reply.ok ? msgpack_pack_true (pk) : msgpack_pack_false (pk)));
            if (msg->u.ctl_reply.error [0])
                PK (s_pack_key (pk, "error") || s_pack_str (pk, msg->u.ctl_reply.error));
            if (msg->u.ctl_reply.body) {
                PK (s_pack_key (pk, "body"));
                PK (msgpack_sbuffer_write (pk->data, (const char *) msg->u.ctl_reply.body, msg->u.ctl_reply.body_len));
            }
            break;
        case PROTO_BYE:
            PK (s_pack_key (pk, "returned") || msgpack_pack_array (pk, msg->u.bye.n_returned));
            for (uint32_t i = 0; i < msg->u.bye.n_returned; i++)
                PK (msgpack_pack_uint64 (pk, msg->u.bye.returned [i]));
            break;
    }
    return 0;
fail:
    return -1;
}

int
proto_encode (const proto_msg_t *msg, uint8_t **buf_p, size_t *len_p)
{
    assert (msg && buf_p && len_p);
    *buf_p = NULL;
    *len_p = 0;
    const char *type = proto_type_name (msg->type);
    if (!type) {
        log_warn ("proto_encode_failed", "reason=\"unknown message type %d\"", (int) msg->type);
        return -1;
    }
    const char *why = s_precheck (msg);
    if (why) {
        log_warn ("proto_encode_failed", "type=%s reason=\"%s\"", type, why);
        return -1;
    }
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init (&sbuf);
    //  Sized for the state vectors up front: growing by doubling would
    //  copy a 2 x 64 KiB assignment three more times.
    size_t need = s_state_bytes (msg) + 4096;
    if (need > 8192) {
        sbuf.data = malloc (need);
        sbuf.alloc = sbuf.data ? need : 0;
    }
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    if (s_pack_body (&pk, msg)) {
        log_warn ("proto_encode_failed", "type=%s reason=\"out of memory\"", type);
        msgpack_sbuffer_destroy (&sbuf);
        return -1;
    }
    //  Decode what we packed: whatever a receiver would refuse is refused
    //  here, with the same message.
    //  (The state vectors' values are the sender's to check: pbtd checks
    //  every state it stores, the worker every state it trains.)
    char err [PROTO_MAX_TEXT];
    proto_code_t rc = s_check ((const uint8_t *) sbuf.data, sbuf.size, err, sizeof (err));
    if (rc != PROTO_OK) {
        log_warn ("proto_encode_failed", "type=%s code=%s reason=\"%s\"",
                  type, proto_code_name (rc), err);
        msgpack_sbuffer_destroy (&sbuf);
        return -1;
    }
    *len_p = sbuf.size;
    *buf_p = (uint8_t *) msgpack_sbuffer_release (&sbuf);
    return 0;
}

bool
proto_endpoint_is_local (const char *endpoint)
{
    return !strncmp (endpoint, "ipc://", 6) || !strncmp (endpoint, "inproc://", 9);
}
