/*  mpread: bounds-checked MessagePack reader, value checking, views and
    ctl argument helpers. See mpread.h and proto.h.
*/
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mpread.h"
#include "proto.h"

static void
s_err (char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, err_len, fmt, ap);
    va_end (ap);
}

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p [i];
    return v;
}

void
mp_rd_init (mp_rd_t *rd, const uint8_t *buf, size_t len)
{
    rd->buf = buf;
    rd->len = len;
    rd->pos = 0;
    rd->base = 0;
}

const char *
mp_kind_name (const mp_tok_t *tok)
{
    switch (tok->kind) {
        case MP_NIL:   return "nil";
        case MP_BOOL:  return "bool";
        case MP_INT:   return tok->neg ? "negative int" : "uint";
        case MP_FLOAT: return tok->f32 ? "float32" : "float64";
        case MP_STR:   return "str";
        case MP_BIN:   return "bin";
        case MP_ARRAY: return "array";
        case MP_MAP:   return "map";
        case MP_EXT:   return "ext";
    }
    return "?";
}

//  Makes sure `need` more bytes exist after the cursor; the message says
//  what was being read and where it started.
static int
s_need (mp_rd_t *rd, size_t start, uint64_t need, const char *what,
        char *err, size_t err_len)
{
    size_t remain = rd->len - rd->pos;
    if (need > remain) {
        s_err (err, err_len,
               "truncated: %s at offset %zu needs %llu bytes, %zu remain",
               what, rd->base + start, (unsigned long long) need, remain);
        return -1;
    }
    return 0;
}

int
mp_read (mp_rd_t *rd, mp_tok_t *tok, char *err, size_t err_len)
{
    memset (tok, 0, sizeof (*tok));
    size_t start = rd->pos;
    tok->offset = start;
    if (rd->pos >= rd->len) {
        s_err (err, err_len, "truncated: value expected at offset %zu, input ends",
               rd->base + start);
        return -1;
    }
    uint8_t b = rd->buf [rd->pos++];
    const uint8_t *p = rd->buf + rd->pos;

    //  Fixed formats first: they carry their value in the type byte.
    if (b <= 0x7f) {
        tok->kind = MP_INT;
        tok->u = b;
        tok->i = b;
        return 0;
    }
    if (b >= 0xe0) {
        tok->kind = MP_INT;
        tok->neg = true;
        tok->i = (int8_t) b;
        return 0;
    }
    uint64_t n = 0;         // payload length or element count
    int nb = 0;             // bytes of the length/count field
    const char *what = NULL;
    if (b >= 0x80 && b <= 0x8f) {
        tok->kind = MP_MAP; n = b & 0x0f; what = "fixmap";
    }
    else
    if (b >= 0x90 && b <= 0x9f) {
        tok->kind = MP_ARRAY; n = b & 0x0f; what = "fixarray";
    }
    else
    if (b >= 0xa0 && b <= 0xbf) {
        tok->kind = MP_STR; n = b & 0x1f; what = "fixstr";
    }
    else
    switch (b) {
        case 0xc0: tok->kind = MP_NIL; return 0;
        case 0xc2: tok->kind = MP_BOOL; tok->b = false; return 0;
        case 0xc3: tok->kind = MP_BOOL; tok->b = true; return 0;
        case 0xcc: case 0xcd: case 0xce: case 0xcf: {
            nb = 1 << (b - 0xcc);
            if (s_need (rd, start, nb, "uint", err, err_len))
                return -1;
            tok->kind = MP_INT;
            tok->u = s_be (p, nb);
            tok->i = tok->u <= INT64_MAX ? (int64_t) tok->u : INT64_MAX;
            rd->pos += nb;
            return 0;
        }
        case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
            nb = 1 << (b - 0xd0);
            if (s_need (rd, start, nb, "int", err, err_len))
                return -1;
            uint64_t raw = s_be (p, nb);
            int64_t v;
            //  Sign-extend from nb bytes.
            if (nb == 8)
                memcpy (&v, &raw, 8);
            else {
                uint64_t sign = (uint64_t) 1 << (nb * 8 - 1);
                v = (int64_t) ((raw ^ sign)) - (int64_t) sign;
            }
            tok->kind = MP_INT;
            tok->neg = v < 0;
            tok->i = v;
            tok->u = v < 0 ? 0 : (uint64_t) v;
            rd->pos += nb;
            return 0;
        }
        case 0xca: {
            if (s_need (rd, start, 4, "float32", err, err_len))
                return -1;
            uint32_t raw = (uint32_t) s_be (p, 4);
            float f;
            memcpy (&f, &raw, 4);
            tok->kind = MP_FLOAT;
            tok->f32 = true;
            tok->d = f;
            rd->pos += 4;
            return 0;
        }
        case 0xcb: {
            if (s_need (rd, start, 8, "float64", err, err_len))
                return -1;
            uint64_t raw = s_be (p, 8);
            memcpy (&tok->d, &raw, 8);
            tok->kind = MP_FLOAT;
            rd->pos += 8;
            return 0;
        }
        case 0xd9: tok->kind = MP_STR; nb = 1; what = "str8"; break;
        case 0xda: tok->kind = MP_STR; nb = 2; what = "str16"; break;
        case 0xdb: tok->kind = MP_STR; nb = 4; what = "str32"; break;
        case 0xc4: tok->kind = MP_BIN; nb = 1; what = "bin8"; break;
        case 0xc5: tok->kind = MP_BIN; nb = 2; what = "bin16"; break;
        case 0xc6: tok->kind = MP_BIN; nb = 4; what = "bin32"; break;
        case 0xdc: tok->kind = MP_ARRAY; nb = 2; what = "array16"; break;
        case 0xdd: tok->kind = MP_ARRAY; nb = 4; what = "array32"; break;
        case 0xde: tok->kind = MP_MAP; nb = 2; what = "map16"; break;
        case 0xdf: tok->kind = MP_MAP; nb = 4; what = "map32"; break;
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            //  fixext 1/2/4/8/16: a type byte then 2^k data bytes.
            tok->kind = MP_EXT;
            n = (uint64_t) 1 << (b - 0xd4);
            what = "fixext";
            break;
        case 0xc7: tok->kind = MP_EXT; nb = 1; what = "ext8"; break;
        case 0xc8: tok->kind = MP_EXT; nb = 2; what = "ext16"; break;
        case 0xc9: tok->kind = MP_EXT; nb = 4; what = "ext32"; break;
        default:
            s_err (err, err_len, "malformed: reserved type byte 0x%02x at offset %zu",
                   b, rd->base + start);
            return -1;
    }
    if (nb) {
        if (s_need (rd, start, nb, what, err, err_len))
            return -1;
        n = s_be (p, nb);
        rd->pos += nb;
    }
    if (tok->kind == MP_ARRAY || tok->kind == MP_MAP) {
        //  Every element takes at least one byte, so a count larger than
        //  the rest of the buffer is a lie; refuse it before anyone loops
        //  or allocates on it.
        uint64_t min_bytes = tok->kind == MP_MAP ? 2 * n : n;
        size_t remain = rd->len - rd->pos;
        if (min_bytes > remain) {
            s_err (err, err_len,
                   "truncated: %s at offset %zu claims %llu %s, only %zu bytes remain",
                   what, rd->base + start, (unsigned long long) n,
                   tok->kind == MP_MAP ? "pairs" : "elements", remain);
            return -1;
        }
        tok->count = (uint32_t) n;
        return 0;
    }
    if (tok->kind == MP_EXT) {
        if (s_need (rd, start, 1, what, err, err_len))
            return -1;
        tok->ext_type = (int8_t) rd->buf [rd->pos++];
    }
    if (s_need (rd, start, n, what, err, err_len))
        return -1;
    tok->data = rd->buf + rd->pos;
    tok->len = (uint32_t) n;
    rd->pos += n;
    return 0;
}

int
mp_skip (mp_rd_t *rd, int depth, char *err, size_t err_len)
{
    mp_tok_t tok;
    if (mp_read (rd, &tok, err, err_len))
        return -1;
    if (tok.kind == MP_EXT) {
        s_err (err, err_len, "malformed: extension type %d at offset %zu is not supported",
               tok.ext_type, rd->base + tok.offset);
        return -1;
    }
    if (tok.kind != MP_ARRAY && tok.kind != MP_MAP)
        return 0;
    if (depth > MP_MAX_DEPTH) {
        s_err (err, err_len, "malformed: nesting deeper than %d at offset %zu",
               MP_MAX_DEPTH, rd->base + tok.offset);
        return -1;
    }
    uint64_t items = tok.kind == MP_MAP ? 2 * (uint64_t) tok.count : tok.count;
    for (uint64_t k = 0; k < items; k++)
        if (mp_skip (rd, depth + 1, err, err_len))
            return -1;
    return 0;
}

int
proto_value_check (const uint8_t *buf, size_t len, char *err, size_t err_len)
{
    if (!buf || len == 0) {
        s_err (err, err_len, "malformed: empty input");
        return -1;
    }
    mp_rd_t rd;
    mp_rd_init (&rd, buf, len);
    if (mp_skip (&rd, 1, err, err_len))
        return -1;
    if (rd.pos != len) {
        s_err (err, err_len, "malformed: trailing %zu bytes at offset %zu",
               len - rd.pos, rd.pos);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  Views. A view always covers exactly one checked value, so reads below
//  only fail if someone hands in a view not made by these functions; they
//  still stay inside view.len.

int
proto_view_init (proto_view_t *view, const uint8_t *buf, size_t len)
{
    if (!view)
        return -1;
    view->p = NULL;
    view->len = 0;
    if (proto_value_check (buf, len, NULL, 0))
        return -1;
    view->p = buf;
    view->len = len;
    return 0;
}

//  Reads the header of the value a view covers.
static int
s_view_tok (proto_view_t v, mp_rd_t *rd, mp_tok_t *tok)
{
    if (!v.p || v.len == 0)
        return -1;
    mp_rd_init (rd, v.p, v.len);
    return mp_read (rd, tok, NULL, 0);
}

//  Makes a view of the next complete value at the cursor.
static int
s_next_view (mp_rd_t *rd, int depth, proto_view_t *out)
{
    size_t start = rd->pos;
    if (mp_skip (rd, depth, NULL, 0))
        return -1;
    out->p = rd->buf + start;
    out->len = rd->pos - start;
    return 0;
}

int
proto_view_get (proto_view_t map, const char *key, proto_view_t *out)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (!key || s_view_tok (map, &rd, &tok) || tok.kind != MP_MAP)
        return -1;
    size_t key_len = strlen (key);
    for (uint32_t k = 0; k < tok.count; k++) {
        mp_tok_t kt;
        proto_view_t val;
        size_t key_start = rd.pos;
        if (mp_read (&rd, &kt, NULL, 0))
            return -1;
        if (kt.kind == MP_ARRAY || kt.kind == MP_MAP || kt.kind == MP_EXT) {
            //  Container keys are legal MessagePack; step over them.
            rd.pos = key_start;
            if (mp_skip (&rd, 2, NULL, 0))
                return -1;
        }
        if (s_next_view (&rd, 2, &val))
            return -1;
        if (kt.kind == MP_STR && kt.len == key_len
        &&  memcmp (kt.data, key, key_len) == 0) {
            if (out)
                *out = val;
            return 0;
        }
    }
    return -1;
}

int64_t
proto_view_array_len (proto_view_t array)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (array, &rd, &tok) || tok.kind != MP_ARRAY)
        return -1;
    return tok.count;
}

int
proto_view_array_at (proto_view_t array, uint32_t index, proto_view_t *out)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (array, &rd, &tok) || tok.kind != MP_ARRAY || index >= tok.count)
        return -1;
    for (uint32_t k = 0; k < index; k++)
        if (mp_skip (&rd, 2, NULL, 0))
            return -1;
    proto_view_t val;
    if (s_next_view (&rd, 2, &val))
        return -1;
    if (out)
        *out = val;
    return 0;
}

int64_t
proto_view_map_len (proto_view_t map)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (map, &rd, &tok) || tok.kind != MP_MAP)
        return -1;
    return tok.count;
}

int
proto_view_map_at (proto_view_t map, uint32_t index, proto_view_t *key, proto_view_t *val)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (map, &rd, &tok) || tok.kind != MP_MAP || index >= tok.count)
        return -1;
    for (uint32_t k = 0; k < index; k++)
        if (mp_skip (&rd, 2, NULL, 0) || mp_skip (&rd, 2, NULL, 0))
            return -1;
    proto_view_t k, v;
    if (s_next_view (&rd, 2, &k) || s_next_view (&rd, 2, &v))
        return -1;
    if (key)
        *key = k;
    if (val)
        *val = v;
    return 0;
}

double
proto_view_double (proto_view_t v, double dflt)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (v, &rd, &tok))
        return dflt;
    if (tok.kind == MP_FLOAT)
        return tok.d;
    if (tok.kind == MP_INT)
        return tok.neg ? (double) tok.i : (double) tok.u;
    return dflt;
}

int64_t
proto_view_int (proto_view_t v, int64_t dflt)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (v, &rd, &tok) || tok.kind != MP_INT)
        return dflt;
    if (!tok.neg && tok.u > INT64_MAX)
        return dflt;
    return tok.i;
}

bool
proto_view_bool (proto_view_t v, bool dflt)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (s_view_tok (v, &rd, &tok) || tok.kind != MP_BOOL)
        return dflt;
    return tok.b;
}

bool
proto_view_is_nil (proto_view_t v)
{
    mp_rd_t rd;
    mp_tok_t tok;
    return s_view_tok (v, &rd, &tok) == 0 && tok.kind == MP_NIL;
}

int
proto_view_str (proto_view_t v, char *out, size_t out_len)
{
    mp_rd_t rd;
    mp_tok_t tok;
    if (!out || out_len == 0 || s_view_tok (v, &rd, &tok) || tok.kind != MP_STR)
        return -1;
    size_t n = tok.len < out_len - 1 ? tok.len : out_len - 1;
    memcpy (out, tok.data, n);
    out [n] = 0;
    return 0;
}

//  ---------------------------------------------------------------------
//  ctl arguments: a MessagePack map, checked before every lookup so the
//  helpers are safe on any bytes.

static int
s_arg (const uint8_t *args, size_t len, const char *key, proto_view_t *out)
{
    proto_view_t map;
    if (!args || !key || proto_view_init (&map, args, len))
        return -1;
    return proto_view_get (map, key, out);
}

int64_t
proto_args_int (const uint8_t *args, size_t len, const char *key, int64_t dflt)
{
    proto_view_t v;
    if (s_arg (args, len, key, &v))
        return dflt;
    return proto_view_int (v, dflt);
}

double
proto_args_double (const uint8_t *args, size_t len, const char *key, double dflt)
{
    proto_view_t v;
    if (s_arg (args, len, key, &v))
        return dflt;
    return proto_view_double (v, dflt);
}

int
proto_args_str (const uint8_t *args, size_t len, const char *key, char *out, size_t out_len)
{
    proto_view_t v;
    if (s_arg (args, len, key, &v))
        return -1;
    return proto_view_str (v, out, out_len);
}

bool
proto_args_bool (const uint8_t *args, size_t len, const char *key, bool dflt)
{
    proto_view_t v;
    if (s_arg (args, len, key, &v))
        return dflt;
    return proto_view_bool (v, dflt);
}
