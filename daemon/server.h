/*  server: pbtd's single-threaded zloop reactor.

    A ROUTER on the worker endpoint speaks the worker protocol
    (proto/PROTOCOL.md: hello/welcome, request/assign, heartbeat/ack,
    result/ack, error); a ROUTER on the control endpoint answers pbtctl's
    ctl messages. Every state change goes through the database layer
    (db.h) first and is acknowledged only after its transaction committed.
*/
#ifndef PBTD_SERVER_H
#define PBTD_SERVER_H

#include "config.h"

typedef struct _server_t server_t;

//  Open the database (creating the population on first start), load the
//  agents and leased assignments, bind both sockets. cfg is borrowed and
//  must outlive the server (SIGHUP reloads update it in place). sigfd is a
//  pipe's read end carrying one byte (the signal number) per
//  SIGINT/SIGTERM/SIGHUP, or -1. NULL (logged) on failure.
server_t *server_new (config_t *cfg, int sigfd);
void server_destroy (server_t **self_p);

//  Serve until SIGINT/SIGTERM. Returns 0 on a clean stop, -1 on failure.
int server_run (server_t *self);

#endif
