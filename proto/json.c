/*  json: render a checked MessagePack value as JSON, for pbtctl.

    The output is always valid JSON whatever the input holds: strings are
    escaped and invalid UTF-8 becomes U+FFFD, non-finite floats become
    null, bin becomes a base64 string, and map keys that are not strings
    are rendered as JSON and then quoted.
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpread.h"
#include "proto.h"

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} jbuf_t;

static void
s_put (jbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *data = realloc (b->data, cap);
        if (!data) {
            b->failed = true;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy (b->data + b->len, s, n);
    b->len += n;
    b->data [b->len] = 0;
}

static void
s_puts (jbuf_t *b, const char *s)
{
    s_put (b, s, strlen (s));
}

static void
s_printf (jbuf_t *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_printf (jbuf_t *b, const char *fmt, ...)
{
    char tmp [64];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (tmp, sizeof (tmp), fmt, ap);
    va_end (ap);
    if (n < 0 || (size_t) n >= sizeof (tmp)) {
        b->failed = true;
        return;
    }
    s_put (b, tmp, (size_t) n);
}

//  Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid.
static int
s_utf8_len (const uint8_t *p, size_t n)
{
    uint8_t c = p [0];
    int len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    else
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else
    if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else
    if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    else
        return 0;
    if ((size_t) len > n)
        return 0;
    for (int i = 1; i < len; i++) {
        if ((p [i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p [i] & 0x3f);
    }
    //  Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)
    ||  (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

static void
s_string (jbuf_t *b, const uint8_t *s, size_t n)
{
    s_put (b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        uint8_t c = s [i];
        if (c == '"')
            s_put (b, "\\\"", 2);
        else
        if (c == '\\')
            s_put (b, "\\\\", 2);
        else
        if (c == '\n')
            s_put (b, "\\n", 2);
        else
        if (c == '\r')
            s_put (b, "\\r", 2);
        else
        if (c == '\t')
            s_put (b, "\\t", 2);
        else
        if (c < 0x20)
            s_printf (b, "\\u%04x", c);
        else {
            int len = s_utf8_len (s + i, n - i);
            if (len == 0) {
                s_puts (b, "\\ufffd");
                len = 1;
            }
            else
                s_put (b, (const char *) s + i, (size_t) len);
            i += (size_t) len;
            continue;
        }
        i++;
    }
    s_put (b, "\"", 1);
}

static void
s_base64 (jbuf_t *b, const uint8_t *p, size_t n)
{
    static const char alphabet [] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    s_put (b, "\"", 1);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) p [i] << 16;
        if (i + 1 < n)
            v |= (uint32_t) p [i + 1] << 8;
        if (i + 2 < n)
            v |= p [i + 2];
        char out [4] = {
            alphabet [(v >> 18) & 63], alphabet [(v >> 12) & 63],
            i + 1 < n ? alphabet [(v >> 6) & 63] : '=',
            i + 2 < n ? alphabet [v & 63] : '='
        };
        s_put (b, out, 4);
    }
    s_put (b, "\"", 1);
}

static bool
s_reads_back (char *tmp, size_t size, int prec, double d, bool f32)
{
    snprintf (tmp, size, "%.*g", prec, d);
    return f32 ? strtof (tmp, NULL) == (float) d : strtod (tmp, NULL) == d;
}

//  Shortest decimal that reads back as the same value (JSON has no
//  float32, so a float32 is printed as the shortest text that parses back
//  to that float32). Reading back is monotone in the precision (the
//  nearest p+1-digit decimal is at least as near as the nearest p-digit
//  one, which is also a p+1-digit decimal), so a binary search finds the
//  shortest in ~4 tries instead of up to 17: most doubles need 15-17
//  digits, and `history --json` spent most of its time here.
static void
s_number (jbuf_t *b, double d, bool f32)
{
    if (!isfinite (d)) {
        s_puts (b, "null");
        return;
    }
    char tmp [40];
    int lo = 1, hi = f32 ? 9 : 17;          // hi always reads back
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (s_reads_back (tmp, sizeof tmp, mid, d, f32))
            hi = mid;
        else
            lo = mid + 1;
    }
    s_reads_back (tmp, sizeof tmp, hi, d, f32);
    s_puts (b, tmp);
}

static void
s_newline (jbuf_t *b, bool pretty, int indent)
{
    if (!pretty)
        return;
    s_put (b, "\n", 1);
    for (int i = 0; i < indent; i++)
        s_put (b, "  ", 2);
}

static int s_value (jbuf_t *b, mp_rd_t *rd, int depth, bool pretty, bool in_key);

//  in_key: rendering the text of a non-string map key. Container keys
//  nested inside such a key become "[...]" / "{...}": quoting key text
//  inside key text doubles every backslash per level, so a small frame of
//  keys within keys could otherwise blow the output up exponentially.
static int
s_value (jbuf_t *b, mp_rd_t *rd, int depth, bool pretty, bool in_key)
{
    mp_tok_t tok;
    if (depth > MP_MAX_DEPTH + 1 || mp_read (rd, &tok, NULL, 0))
        return -1;
    switch (tok.kind) {
        case MP_NIL:
            s_puts (b, "null");
            break;
        case MP_BOOL:
            s_puts (b, tok.b ? "true" : "false");
            break;
        case MP_INT:
            if (tok.neg)
                s_printf (b, "%lld", (long long) tok.i);
            else
                s_printf (b, "%llu", (unsigned long long) tok.u);
            break;
        case MP_FLOAT:
            s_number (b, tok.d, tok.f32);
            break;
        case MP_STR:
            s_string (b, tok.data, tok.len);
            break;
        case MP_BIN:
            s_base64 (b, tok.data, tok.len);
            break;
        case MP_EXT:
            return -1;
        case MP_ARRAY:
            if (depth > MP_MAX_DEPTH)
                return -1;
            s_put (b, "[", 1);
            for (uint32_t k = 0; k < tok.count; k++) {
                if (k)
                    s_put (b, ",", 1);
                s_newline (b, pretty, depth);
                if (s_value (b, rd, depth + 1, pretty, in_key))
                    return -1;
            }
            if (tok.count)
                s_newline (b, pretty, depth - 1);
            s_put (b, "]", 1);
            break;
        case MP_MAP:
            if (depth > MP_MAX_DEPTH)
                return -1;
            s_put (b, "{", 1);
            for (uint32_t k = 0; k < tok.count; k++) {
                if (k)
                    s_put (b, ",", 1);
                s_newline (b, pretty, depth);
                size_t key_start = rd->pos;
                mp_tok_t kt;
                if (mp_read (rd, &kt, NULL, 0))
                    return -1;
                if (kt.kind == MP_STR)
                    s_string (b, kt.data, kt.len);
                else
                if (in_key && (kt.kind == MP_ARRAY || kt.kind == MP_MAP)) {
                    rd->pos = key_start;
                    if (mp_skip (rd, depth + 1, NULL, 0))
                        return -1;
                    s_puts (b, kt.kind == MP_ARRAY ? "\"[...]\"" : "\"{...}\"");
                }
                else {
                    //  JSON keys must be strings: render the key compactly
                    //  on its own, then quote that text.
                    rd->pos = key_start;
                    jbuf_t kb = { 0 };
                    int rc = s_value (&kb, rd, depth + 1, false, true);
                    if (rc == 0 && !kb.failed && kb.data)
                        s_string (b, (const uint8_t *) kb.data, kb.len);
                    free (kb.data);
                    if (rc || kb.failed)
                        return -1;
                }
                s_puts (b, pretty ? ": " : ":");
                if (s_value (b, rd, depth + 1, pretty, in_key))
                    return -1;
            }
            if (tok.count)
                s_newline (b, pretty, depth - 1);
            s_put (b, "}", 1);
            break;
    }
    return 0;
}

char *
proto_value_to_json (const uint8_t *buf, size_t len, bool pretty)
{
    if (proto_value_check (buf, len, NULL, 0))
        return NULL;
    jbuf_t b = { 0 };
    mp_rd_t rd;
    mp_rd_init (&rd, buf, len);
    if (s_value (&b, &rd, 1, pretty, false) || b.failed) {
        free (b.data);
        return NULL;
    }
    return b.data;
}
