/*  reader: the control queries whose work grows with history (history,
    matches, lineage, metrics, payoff, series) run here, on a thread of
    their own with a read-only SQLite connection (WAL lets it read
    committed data while pbtd's connection writes). The reactor only hands
    each request over and sends the reply back; it never waits for one.
    docs/scaling.md ("Looking at a long run") says why.
*/
#ifndef PBTD_READER_H
#define PBTD_READER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

//  Requests queued or running at most; beyond it the reactor answers
//  "busy" at once.
#define READER_MAX_IN_FLIGHT 64

typedef struct _reader_t reader_t;

//  Start the thread on the database at db_path (already open and at the
//  current schema) for a population of n_agents. NULL on failure (logged).
reader_t *reader_new (const char *db_path, int n_agents, double elo_initial,
                      uint64_t payoff_window);
void reader_destroy (reader_t **self_p);

//  Whether cmd is one the reader serves.
bool reader_serves (const char *cmd);

//  Hand over one request: the client's routing id and the ctl message as
//  received (both copied). -1 if READER_MAX_IN_FLIGHT are in flight.
int reader_submit (reader_t *self, zframe_t *routing_id, zframe_t *body);

//  The socket the replies come back on (for zloop_reader), and one reply:
//  the routing id and the encoded ctl_reply, both the caller's. 0 or -1.
zsock_t *reader_sock (reader_t *self);
int reader_recv (reader_t *self, zframe_t **routing_id, zframe_t **reply);

//  Requests served since start, and in flight now.
uint64_t reader_served (reader_t *self);
uint32_t reader_in_flight (reader_t *self);

#endif
