/*  server_priv: the server's state, shared by server.c, ctl.c (control
    commands) and cron.c (housekeeping). Nothing outside daemon/ includes
    this; the public face is server.h.
*/
#ifndef PBTD_SERVER_PRIV_H
#define PBTD_SERVER_PRIV_H

#include <czmq.h>

#include "committer.h"
#include "config.h"
#include "db.h"
#include "envspec.h"
#include "reader.h"
#include "metrics.h"
#include "rng.h"
#include "server.h"

//  An agent in the in-memory cache: the metadata row and, when the
//  population fits [daemon] state_cache_mb, its current training state, so
//  building an assignment reads no snapshot from SQLite.
typedef struct {
    db_agent_t a;
    bool busy;                      // seated in a leased assignment
    uint64_t assignment;            // that assignment, 0 if idle
    bool state_cached;              // state holds snapshot state_version
    uint64_t state_version;
    proto_state_t state;
    int64_t freed_us;               // when it last became free (zclock_usecs)
    bool unreadable;                // no snapshot of it reads back: left out of matches
} agent_t;

//  A message encoded during a batch, sent only after the batch commits.
typedef struct {
    zsock_t *sock;
    zframe_t *routing_id;
    uint8_t *buf;
    size_t len;
    proto_type_t type;
    bool applied;                   // an ack of an applied result
    uint64_t assignment_id;
    char peer_key [2 * 256 + 1];
    int64_t t_in;                   // when pbtd read the message this answers (zclock_usecs)
} outmsg_t;

//  A worker that said hello (unknown peers have no entry).
typedef struct {
    char *key;                      // hex routing id
    zframe_t *routing_id;
    char worker_id [PROTO_MAX_TEXT];
    char host [PROTO_MAX_TEXT];
    uint32_t pid;
    char software [PROTO_MAX_NAME];
    char curve_key [64];            // its CURVE public key (Z85) from the handshake, "" without CURVE
    int64_t last_seen;              // zclock_mono ms
    int64_t request_us;             // when its pending request was read (zclock_usecs)
    uint32_t request_held;          // assignments it held when it asked (0: not a prefetch)
    bool parked;                    // in the waiting FIFO
    uint64_t assignment;            // last assignment handed to it, 0 if none
    uint64_t frames_done;           // from its last heartbeat
    double samples_per_s;           // from its last result
    //  The worker's own busy/uptime counters (heartbeats, results): the
    //  duty cycle shown is (last - base), base trailing by 15-30 s.
    proto_duty_t duty_base, duty_mid, duty_last;
} peer_t;

//  Assignments one worker may hold at once (welcome.max_held): one it
//  plays and one waiting, so it never waits for an assign between two.
#define SERVER_MAX_HELD       2
#define SERVER_DUTY_WINDOW_MS 15000

//  A leased assignment in flight. It belongs to the peer it was handed
//  to (peer_key); a hello with the lease's worker id and CURVE key
//  (a.worker, a.worker_key) binds it to that peer's routing id again
//  after a reconnect or a pbtd restart.
typedef struct {
    db_assignment_t a;
    char peer_key [2 * 256 + 1];    // "" if leased before a restart and not re-bound yet
} lease_t;

#define SERVER_RATE_WINDOW_MS 30000
//  Worker messages handled per reactor wakeup (one group commit), and the
//  time a batch may spend handling them before it commits. Everything a
//  batch does waits for its commit, and the next batch waits for this
//  one: the time cap bounds pbtd's own part of an assignment's latency
//  (free -> assign) at about two caps plus a commit, whatever the load.
//  Measured (pbt-bench load, 256 workers): a 64-message batch alone is
//  ~10 ms, and uncapped batches gave a p99 of ~20 ms.
//  Batches committed and waiting for their WAL sync before the reactor
//  stops reading workers (server.c, "Commit path"). A constant for now,
//  not a setting.
#define SERVER_COMMIT_PENDING 4
#define SERVER_BATCH_MAX      64
#define SERVER_BATCH_US       2000
#define SERVER_TURN_RING      65536
//  Assignment ids reserved ahead in meta (s_assign_ids_reserve): a
//  restart skips at most this many.
#define SERVER_ASSIGN_ID_BLOCK 4096
#define SERVER_RATE_EVENTS    1024

struct _server_t {
    config_t *cfg;
    const pbt_env_t *env;           // the game's spec (data only: pbtd runs no game code)
    char env_hash [17];             // the spec hash the population is pinned to
    db_t *db;
    zsock_t *worker;
    zsock_t *control;
    zactor_t *auth;                 // zauth (ZAP) when CURVE is on
    zcert_t *cert;                  // pbtd's CURVE certificate, or NULL
    bool worker_curve;              // the worker endpoint speaks CURVE
    int lock_fd;                    // flock'ed <db>.lock, -1 if none
    bool fell_back;                 // a state fallback made progress: dispatch may retry
    zloop_t *loop;
    int sigfd;
    rng_t rng;
    agent_t *agents;
    int n_agents;
    zhashx_t *peers;                // key -> peer_t
    zlistx_t *waiting;              // peer keys (strings) in arrival order
    zlistx_t *leases;               // lease_t
    bool paused;
    bool stopping;
    bool batching;                  // a db batch is open: sends go to outbox
    bool dispatch_pending;          // dispatch requested during the batch
    zlistx_t *outbox;               // outmsg_t, in send order
    //  The commit path (server.c): the fsync thread, batches committed and
    //  waiting for their WAL sync (pending_t, oldest first), the batch
    //  waiting for its store sync (its transaction still open).
    committer_t *committer;
    zlistx_t *pending;
    bool commit_waiting;
    uint64_t waiting_seq;
    uint64_t commit_seq;            // batches handed to the committer
    uint64_t durable_seq;           // the last batch whose WAL sync succeeded
    uint64_t asg_ceiling;           // the id ceiling last written to meta
    uint64_t asg_ceiling_durable;   // ...and the one known durable: ids below go out at once
    uint64_t asg_ceiling_seq;       // the batch that wrote asg_ceiling (0: durable)
    int64_t batch_end_us;
    bool worker_off, control_off;   // their readers ended (s_readers_update)
    bool tick_deferred;             // housekeeping waits for the store sync
    bool wal_failed;                // a WAL sync failed: nothing more is acked
    bool unsynced;                  // a batch committed after the last WAL job
    bool cache_states;              // the population fits state_cache_mb
    uint64_t batches, batched;      // group commits, messages in them
    int64_t batch_start_us;         // when the open batch began
    uint64_t batch_work_us, commit_us;  // time spent in batches: handling, committing
    uint64_t store_started_seen;    // state store roll-overs already collected after
    //  Turnaround of the last SERVER_TURN_RING assignments: from the
    //  moment pbtd could have formed it (the later of reading the worker's
    //  request and its agents becoming free; for a worker's second one,
    //  also of any agent becoming free, since the margin rule waits for
    //  that) to handing it to ZeroMQ after the commit, in ms.
    int64_t msg_in_us;
    int64_t any_freed_us;           // when any agent last became free
    float *turn_ms;
    uint32_t turn_n, turn_i;
    uint64_t results;               // results applied (all time)
    uint64_t evolutions;            // evolutions (all time)
    uint64_t state_fallbacks;       // agents fallen back to an intact snapshot (all time)
    uint64_t samples;               // frames trained (all time)
    //  Recent results for samples_per_s: (mono ms, frames) ring.
    int64_t rate_t [SERVER_RATE_EVENTS];
    uint64_t rate_frames [SERVER_RATE_EVENTS];
    uint32_t rate_head, rate_count;
    int64_t started;                // zclock_mono at start
    int64_t last_metrics;           // zclock_mono of the last metrics row
    reader_t *reader;               // history-sized queries, off the reactor (reader.h)
    //  Housekeeping ticks: how many ran, and how late the timer fired
    //  against its period (the systemd watchdog is fed from it).
    uint64_t ticks;
    int64_t last_tick_us;
    double tick_slip_ms_max, tick_slip_ms_last;
    metrics_t *metrics;             // the Prometheus endpoint, NULL when off
};

//  server.c
int64_t server_now_ms (void);                     // wall clock, ms
void server_release_lease (server_t *self, lease_t *lease);     // frees agents, drops lease
void server_expire_lease (server_t *self, lease_t *lease, const char *why);
void server_forget_peer (server_t *self, peer_t *peer);
//  Match idle agents to waiting workers. Inside a batch this only marks
//  dispatch as due; server_batch_end runs it before committing.
void server_dispatch (server_t *self);
//  Group commit: open one database transaction for everything until
//  server_batch_end, queue every outgoing message, then commit once and
//  only then send (acks never precede durability). If the commit fails,
//  applied-result acks become 'internal' errors (the worker retries),
//  queued assignments are dropped (their workers wait again) and the
//  in-memory state is reloaded from the database.
void server_batch_begin (server_t *self);
void server_batch_end (server_t *self);
double server_samples_per_s (server_t *self);
//  Assignments in flight handed to this peer.
uint32_t server_peer_held (server_t *self, const peer_t *peer);
//  The peer's recent duty cycle from its own counters, or -1 if unknown.
double server_peer_duty (const peer_t *peer);
uint32_t server_leases_in_flight (server_t *self);

//  ctl.c: run one control command; fills reply (body malloc'd).
void ctl_handle (server_t *self, const proto_ctl_t *ctl, proto_ctl_reply_t *reply);

//  cron.c: one housekeeping pass, one batch (expire leases, forget silent peers,
//  metrics, sd_notify).
void cron_run (server_t *self);

#endif
