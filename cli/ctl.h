/*  ctl: pbtctl's client for pbtd's control endpoint. */
#ifndef PBT_CTL_H
#define PBT_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define CTL_DEFAULT_ENDPOINT "tcp://127.0.0.1:5556"
//  The installed pbtd's control socket (/etc/pbt/pbtd.ini, docs/service.md).
#define CTL_INSTALLED_SOCKET "/run/pbt/control.sock"

typedef struct _ctl_t ctl_t;

//  pbtctl's endpoint when --endpoint is not given: $PBTCTL_ENDPOINT, else
//  the installed pbtd's control socket if it exists, else
//  CTL_DEFAULT_ENDPOINT (pbtd's own default).
const char *ctl_default_endpoint (void);

//  A successful reply; body is the MessagePack value pbtd sent (checked).
typedef struct {
    const uint8_t *body;
    size_t body_len;
    proto_msg_t msg;                // owns body
} ctl_reply_t;

//  Connect to endpoint; replies are awaited up to timeout_ms. NULL on failure (logged).
ctl_t *ctl_new (const char *endpoint, int timeout_ms);

void ctl_destroy (ctl_t **self_p);

//  Send cmd with args (a MessagePack map, may be NULL) and wait for the reply.
//  Returns 0 with reply filled; 1 if pbtd refused (error printed); 3 if no
//  reply came in time (message printed).
int ctl_call (ctl_t *self, const char *cmd, const uint8_t *args, size_t args_len, ctl_reply_t *reply);

void ctl_reply_clear (ctl_reply_t *reply);

#endif
