/*  args: pbtctl's strict command-line values. See args.h. */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
s_refuse (const char *what, const char *text, const char *expected)
{
    if (text)
        fprintf (stderr, "pbtctl: %s: expected %s, got '%s'\n", what, expected, text);
    else
        fprintf (stderr, "pbtctl: %s: expected %s, got nothing\n", what, expected);
    return -1;
}

int
args_uint (const char *what, const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char expected [96];
    snprintf (expected, sizeof expected, "a whole number in %llu..%llu",
              (unsigned long long) min, (unsigned long long) max);
    //  strtoull alone would take " 5", "+5", "-1" (as 2^64-1) and "5x".
    if (!text || !isdigit ((unsigned char) text [0]))
        return s_refuse (what, text, expected);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull (text, &end, 10);
    if (errno || *end || v < min || v > max)
        return s_refuse (what, text, expected);
    *out = v;
    return 0;
}

int
args_real (const char *what, const char *text, double min, double max, double *out)
{
    char expected [96];
    snprintf (expected, sizeof expected, "a number in %g..%g", min, max);
    if (!text || !*text || isspace ((unsigned char) text [0]))
        return s_refuse (what, text, expected);
    char *end = NULL;
    errno = 0;
    double v = strtod (text, &end);
    if (errno || *end || !isfinite (v) || v < min || v > max)
        return s_refuse (what, text, expected);
    *out = v;
    return 0;
}

//  HOST of tcp://HOST:PORT: a DNS name or IPv4 address (letters, digits,
//  '-', '.', '_'), "*", or an IPv6 address in brackets.
static bool
s_host_ok (const char *host, size_t len)
{
    if (len == 0)
        return false;
    if (len == 1 && host [0] == '*')
        return true;
    if (host [0] == '[') {
        if (len < 3 || host [len - 1] != ']')
            return false;
        for (size_t i = 1; i < len - 1; i++)
            if (!isxdigit ((unsigned char) host [i]) && host [i] != ':' && host [i] != '.')
                return false;
        return true;
    }
    for (size_t i = 0; i < len; i++)
        if (!isalnum ((unsigned char) host [i]) && !strchr ("-._", host [i]))
            return false;
    return true;
}

int
args_endpoint (const char *what, const char *text)
{
    static const char *expected =
        "tcp://HOST:PORT, ipc://PATH or inproc://NAME (e.g. tcp://127.0.0.1:5556)";
    if (!text)
        return s_refuse (what, text, expected);
    if (!strncmp (text, "ipc://", 6) || !strncmp (text, "inproc://", 9)) {
        const char *rest = strstr (text, "://") + 3;
        return *rest ? 0 : s_refuse (what, text, expected);
    }
    if (strncmp (text, "tcp://", 6))
        return s_refuse (what, text, expected);
    const char *host = text + 6, *colon = strrchr (host, ':');
    uint64_t port;
    if (!colon || !s_host_ok (host, (size_t) (colon - host)))
        return s_refuse (what, text, expected);
    char port_what [64];
    snprintf (port_what, sizeof port_what, "%s: port", what);
    return args_uint (port_what, colon + 1, 1, 65535, &port);
}
