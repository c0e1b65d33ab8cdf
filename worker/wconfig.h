/*  wconfig: pbt-worker's settings, from the command line and an optional
    INI file (command-line flags win). */
#ifndef PBT_WCONFIG_H
#define PBT_WCONFIG_H

#include <czmq.h>
#include <stdint.h>

#include "log.h"

typedef struct {
    char connect [256];             // pbtd worker endpoint
    char worker_id [256];           // defaults to host:pid
    uint64_t max_assignments;       // 0: no limit
    int reply_timeout_ms;           // resend hello/result after this long without a reply
    int request_retry_ms;           // re-send a parked request this often
    log_level_t log_level;
    char server_public_key [64];    // Z85 public key of pbtd; enables CURVE when set
    char cert_path [512];           // worker's CURVE certificate (secret) file
    int plaintext;                  // 1: explicitly allowed to talk without CURVE
} wconfig_t;

//  Parse argv (and --config FILE). Returns 0 to run, 1 if --help was
//  printed, -1 on a usage error (message printed).
int wconfig_parse (wconfig_t *cfg, int argc, char **argv);

//  Configure CURVE on the socket if keys are configured. Returns 0 or -1.
int wconfig_apply_security (const wconfig_t *cfg, zsock_t *sock);

void wconfig_clear (wconfig_t *cfg);

#endif
