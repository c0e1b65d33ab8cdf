/*  log: levelled, one line per event, key=value pairs, to stderr.

    Lines look like
        ts=2026-11-24T04:15:10.123Z level=info comp=pbtd event=result_applied assignment=42 agents=2
    so journald keeps them and `grep`/`awk` can take them apart.
*/
#ifndef PBT_LOG_H
#define PBT_LOG_H

#include <stdarg.h>

typedef enum { PBT_LOG_DEBUG = 0, PBT_LOG_INFO = 1, PBT_LOG_WARN = 2, PBT_LOG_ERROR = 3 } log_level_t;

//  Set the component name printed as comp=... (e.g. "pbtd", "worker").
void log_set_component (const char *component);

//  Lines below this level are dropped. Default PBT_LOG_INFO.
void log_set_level (log_level_t level);

//  Parse "debug", "info", "warn" or "error"; returns -1 if unknown.
int log_level_parse (const char *name);

//  Emit one line: `event` is a short snake_case name; `fmt` formats the rest
//  of the key=value pairs (may be NULL or ""). A trailing newline is added.
void log_emit (log_level_t level, const char *event, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#define log_debug(ev, ...) log_emit (PBT_LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...)  log_emit (PBT_LOG_INFO,  ev, __VA_ARGS__)
#define log_warn(ev, ...)  log_emit (PBT_LOG_WARN,  ev, __VA_ARGS__)
#define log_error(ev, ...) log_emit (PBT_LOG_ERROR, ev, __VA_ARGS__)

#endif
