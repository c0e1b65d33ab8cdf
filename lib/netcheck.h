/*  netcheck: what libzmq will need to bind or connect an endpoint, checked
    before libzmq is given it. libzmq aborts the process when it cannot
    list the network interfaces (a sandbox without AF_NETLINK), and retries
    an unresolvable host forever without a word; a check at start turns
    both into one sentence that the caller prefixes with where the endpoint
    came from (file and key). */
#ifndef PBT_NETCHECK_H
#define PBT_NETCHECK_H

#include <stdbool.h>
#include <stddef.h>

//  Returns 0 if the endpoint looks usable, 1 if it may become usable later
//  (a temporary name-resolution failure: err says so, carry on), -1 if it
//  cannot work (err says why). bind: pbtd's side (interfaces listed, the
//  socket's directory exists); otherwise a connecting side.
int netcheck_endpoint (const char *endpoint, bool bind, char *err, size_t err_len);

#endif
