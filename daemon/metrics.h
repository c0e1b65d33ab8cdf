/*  metrics: pbtd's Prometheus endpoint ([metrics] in the configuration,
    off by default; docs/metrics.md lists the series).

    The reactor owns every number. Each housekeeping pass it renders them
    as Prometheus text (metrics_publish) and swaps the text in under a
    mutex; an HTTP server thread (libmicrohttpd) serves a copy of the last
    text on GET /metrics. The HTTP thread never touches SQLite or the
    server's state, and a slow or stalled client never blocks the reactor:
    the reactor only waits for the mutex, which is held for a pointer swap
    or one memcpy of the text.

    Every reactor-side function accepts NULL (metrics off) and does nothing.
*/
#ifndef PBTD_METRICS_H
#define PBTD_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server.h"

typedef struct _metrics_t metrics_t;

//  Parse "ADDRESS:PORT", ADDRESS a numeric IPv4 address or an IPv6 one in
//  brackets ("127.0.0.1:9556", "[::1]:9556", "0.0.0.0:9556"), PORT 1..65535.
//  Fills addr (if not NULL). Returns 0, or -1 with what was expected in why.
int metrics_parse_listen (const char *text, struct sockaddr_storage *addr, char *why, size_t why_len);

//  Bind listen and start the HTTP thread; until the first metrics_publish
//  it answers 503. NULL with the reason (naming the address) in err.
metrics_t *metrics_new (const char *listen, char *err, size_t err_len);

//  Stop the HTTP thread, close the socket, free everything.
void metrics_destroy (metrics_t **self_p);

//  Reactor side: one group commit took usecs (commit latency histogram).
void metrics_observe_commit (metrics_t *self, int64_t usecs);

//  Reactor side: a lease expired (deadline, late heartbeat or result,
//  undeliverable assignment).
void metrics_lease_expired (metrics_t *self);

//  Reactor side: render the server's numbers and publish them as the text
//  the HTTP thread serves from now on.
void metrics_publish (metrics_t *self, server_t *server);

#endif
