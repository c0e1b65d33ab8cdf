#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *s_component = "pbt";
static log_level_t s_level = PBT_LOG_INFO;
static const char *s_names[] = { "debug", "info", "warn", "error" };

void
log_set_component (const char *component)
{
    s_component = component;
}

void
log_set_level (log_level_t level)
{
    s_level = level;
}

int
log_level_parse (const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp (name, s_names [i]) == 0)
            return i;
    return -1;
}

//  --------------------------------------------------------------------------
//  Formatting. Every %s argument is untrusted (worker ids, hosts, error
//  texts from the network): it is written in logfmt's quoting, so a value
//  can never end its pair early or start a line of its own. Inside quotes
//  the format string opened, the value is escaped; elsewhere it is quoted
//  too if it holds anything beyond plain printable ASCII without spaces,
//  '"', '=' or '\'. Escapes: \" \\ \n \r \t, and \xHH for other
//  control bytes and bytes that are not valid UTF-8.

typedef struct {
    char *buf;
    size_t cap, n;                  // n may pass cap: the line is cut
} out_t;

static void
s_put (out_t *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++, o->n++)
        if (o->n < o->cap)
            o->buf [o->n] = s [i];
}

//  Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid.
static size_t
s_utf8_len (const unsigned char *s, size_t n)
{
    unsigned char b = s [0];
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

static void
s_put_escaped (out_t *o, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    for (size_t i = 0; i < len; ) {
        unsigned char c = p [i];
        char esc [8];
        if (c == '"' || c == '\\') {
            esc [0] = '\\';
            esc [1] = (char) c;
            s_put (o, esc, 2);
        }
        else
        if (c == '\n')
            s_put (o, "\\n", 2);
        else
        if (c == '\r')
            s_put (o, "\\r", 2);
        else
        if (c == '\t')
            s_put (o, "\\t", 2);
        else
        if (c < 0x20 || c == 0x7f) {
            snprintf (esc, sizeof esc, "\\x%02x", c);
            s_put (o, esc, 4);
        }
        else
        if (c >= 0x80) {
            size_t u = s_utf8_len (p + i, len - i);
            if (u) {
                s_put (o, s + i, u);
                i += u;
                continue;
            }
            snprintf (esc, sizeof esc, "\\x%02x", c);
            s_put (o, esc, 4);
        }
        else
            s_put (o, s + i, 1);
        i++;
    }
}

static bool
s_is_bare (const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s [i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return false;
    }
    return true;
}

//  One conversion of fmt (spec: from '%' to the conversion character,
//  length spec_len) with its argument(s) from *ap.
static void
s_convert (out_t *o, const char *spec, size_t spec_len, bool quoted, va_list *ap)
{
    char conv = spec [spec_len - 1];
    if (conv == '%') {
        s_put (o, "%", 1);
        return;
    }
    //  Width and precision given as '*' are read first and written into
    //  the spec, so the conversion below takes its value only.
    char f [64];
    size_t k = 0;
    int precision = -1;
    bool in_precision = false;
    for (size_t i = 0; i < spec_len && k < sizeof f - 12; i++) {
        if (spec [i] == '.')
            in_precision = true;
        if (spec [i] == '*') {
            int v = va_arg (*ap, int);
            if (in_precision)
                precision = v;
            k += (size_t) snprintf (f + k, sizeof f - k, "%d", v);
        }
        else {
            if (in_precision && spec [i] >= '0' && spec [i] <= '9')
                precision = (precision < 0 ? 0 : precision * 10) + (spec [i] - '0');
            f [k++] = spec [i];
        }
    }
    f [k] = 0;
    if (conv == 's') {
        const char *s = va_arg (*ap, const char *);
        if (!s)
            s = "(null)";
        size_t len = precision >= 0 ? strnlen (s, (size_t) precision) : strlen (s);
        if (quoted)
            s_put_escaped (o, s, len);
        else
        if (s_is_bare (s, len))
            s_put (o, s, len);
        else {
            s_put (o, "\"", 1);
            s_put_escaped (o, s, len);
            s_put (o, "\"", 1);
        }
        return;
    }
    //  The length modifier decides the argument's type.
    const char *mod = spec + 1;
    while (strchr ("-+ #0'123456789.*", *mod))
        mod++;
    size_t mod_len = (size_t) (spec + spec_len - 1 - mod);
    char tmp [512];
    int m = 0;
    bool is_l = mod_len == 1 && (mod [0] == 'l' || mod [0] == 'z' || mod [0] == 'j'
                                 || mod [0] == 't');
    bool is_ll = mod_len == 2 && mod [0] == 'l' && mod [1] == 'l';
    switch (conv) {
        case 'd': case 'i':
            m = is_ll ? snprintf (tmp, sizeof tmp, f, va_arg (*ap, long long))
              : is_l ? snprintf (tmp, sizeof tmp, f, va_arg (*ap, long))
              : snprintf (tmp, sizeof tmp, f, va_arg (*ap, int));
            break;
        case 'u': case 'o': case 'x': case 'X':
            m = is_ll ? snprintf (tmp, sizeof tmp, f, va_arg (*ap, unsigned long long))
              : is_l ? snprintf (tmp, sizeof tmp, f, va_arg (*ap, unsigned long))
              : snprintf (tmp, sizeof tmp, f, va_arg (*ap, unsigned int));
            break;
        case 'c':
            m = snprintf (tmp, sizeof tmp, f, va_arg (*ap, int));
            break;
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': case 'a': case 'A':
            m = mod_len == 1 && mod [0] == 'L'
              ? snprintf (tmp, sizeof tmp, f, va_arg (*ap, long double))
              : snprintf (tmp, sizeof tmp, f, va_arg (*ap, double));
            break;
        case 'p':
            m = snprintf (tmp, sizeof tmp, f, va_arg (*ap, void *));
            break;
        default:
            s_put (o, "?", 1);      // %n and the like: never written by this code
            return;
    }
    if (m > 0)
        s_put (o, tmp, (size_t) m < sizeof tmp ? (size_t) m : sizeof tmp - 1);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
s_format (out_t *o, const char *fmt, va_list *ap)
{
    bool quoted = false;
    for (const char *p = fmt; *p; ) {
        if (*p != '%') {
            if (*p == '"')
                quoted = !quoted;
            s_put (o, p++, 1);
            continue;
        }
        const char *q = p + 1;
        while (*q && !strchr ("diouxXcsfFeEgGaApn%", *q))
            q++;
        if (!*q)
            break;
        s_convert (o, p, (size_t) (q - p + 1), quoted, ap);
        p = q + 1;
    }
}
#pragma GCC diagnostic pop

void
log_emit (log_level_t level, const char *event, const char *fmt, ...)
{
    if (level < s_level)
        return;
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    char line [2048];
    int n = snprintf (line, sizeof line,
        "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s comp=%s event=%s",
        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
        tm.tm_sec, (int) (tv.tv_usec / 1000), s_names [level], s_component, event);
    if (n < 0)
        return;
    out_t o = { line, sizeof line - 1, (size_t) n };
    if (fmt && *fmt && o.n < o.cap) {
        s_put (&o, " ", 1);
        va_list ap;
        va_start (ap, fmt);
        s_format (&o, fmt, &ap);
        va_end (ap);
    }
    size_t len = o.n < o.cap ? o.n : o.cap;
    line [len++] = '\n';
    //  One write per line so lines from concurrent processes don't interleave.
    fwrite (line, 1, len, stderr);
    fflush (stderr);
}
