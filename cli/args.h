/*  args: pbtctl's strict command-line values.

    Every numeric argument goes through args_uint or args_real, and the
    control endpoint through args_endpoint, so "--timeout abc" or
    "--endpoint bogus" is a usage error (exit 2) naming the argument,
    never a silent 0 or a connection that cannot work.
*/
#ifndef PBT_ARGS_H
#define PBT_ARGS_H

#include <stdint.h>

//  Parse text as a whole decimal number in min..max (no sign, no spaces, no
//  trailing characters). Returns 0 with *out set, or -1 after printing
//  "pbtctl: WHAT: expected a whole number in MIN..MAX, got 'TEXT'".
//  A NULL text (the value is missing) is an error too.
int args_uint (const char *what, const char *text, uint64_t min, uint64_t max, uint64_t *out);

//  The same for a finite decimal number in min..max.
int args_real (const char *what, const char *text, double min, double max, double *out);

//  Check an endpoint's syntax: tcp://HOST:PORT (HOST a name, an IPv4
//  address, [IPv6] or *; PORT 1..65535), ipc://PATH or inproc://NAME.
//  Returns 0, or -1 after printing "pbtctl: WHAT: ... got 'TEXT'".
int args_endpoint (const char *what, const char *text);

#endif
