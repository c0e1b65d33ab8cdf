#include "log.h"

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
    if (fmt && *fmt && n > 0 && (size_t) n < sizeof line - 2) {
        line [n++] = ' ';
        va_list ap;
        va_start (ap, fmt);
        int m = vsnprintf (line + n, sizeof line - (size_t) n, fmt, ap);
        va_end (ap);
        if (m > 0)
            n += m;
    }
    if (n < 0)
        return;
    if ((size_t) n > sizeof line - 2)
        n = (int) sizeof line - 2;
    line [n++] = '\n';
    //  One write per line so lines from concurrent processes don't interleave.
    fwrite (line, 1, (size_t) n, stderr);
    fflush (stderr);
}
