/*  cron: pbtd's housekeeping, run every housekeeping_ms from the reactor
    (Redis serverCron style): everything time-driven happens here, so the
    message handlers only react to messages.
*/
#include "server_priv.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"

#define CRON_METRICS_MS 10000
#define CRON_GC_MOVE_BYTES (8u << 20)
#define CRON_WAL_RESTART_BYTES (32ll << 20)

void
cron_run (server_t *self)
{
    int64_t now = server_now_ms ();
    int64_t mono = zclock_mono ();
    bool released = false;
    //  One transaction for the whole pass (expiries, the assignments that
    //  follow them, the metrics row): one fsync.
    server_batch_begin (self);

    //  Leases past their deadline: the assignment is expired, the agents
    //  free again; a late result will get 'expired'.
    //  Expiring a lease deletes it from the list and moves the list's
    //  cursor, so each expiry restarts the scan instead of trusting a
    //  "next" pointer taken before the deletion.
    for (;;) {
        lease_t *due = NULL;
        for (lease_t *l = zlistx_first (self->leases); l && !due; l = zlistx_next (self->leases))
            if (now > l->a.deadline_ms)
                due = l;
        if (!due)
            break;
        server_expire_lease (self, due, "deadline");
        released = true;
    }
    //  Peers silent for three leases are gone (a working worker heartbeats
    //  every heartbeat_ms; a waiting one re-sends its request).
    int64_t silence = 3 * (int64_t) self->cfg->lease_ms;
    peer_t *peer = zhashx_first (self->peers);
    while (peer) {
        peer_t *next = zhashx_next (self->peers);
        if (mono - peer->last_seen > silence) {
            server_forget_peer (self, peer);
            //  The hash table's cursor is not valid after a delete.
            next = zhashx_first (self->peers);
        }
        peer = next;
    }
    if (released)
        server_dispatch (self);

    //  No snapshot or match sweep here: each result and evolution trims
    //  its own agent's snapshots and the oldest matches in its own
    //  transaction (db_set_retention), so no pass ever blocks the loop on
    //  a bulk delete. WAL checkpoints run on db_ckpt.c's checkpointer thread.
    if (mono - self->last_metrics >= CRON_METRICS_MS) {
        db_metrics_append (self->db, now, self->results, self->samples, self->evolutions);
        //  The same on the shared time axis, bounded for a run of any length.
        double rate = server_samples_per_s (self);
        if (db_series_append (self->db, DB_SERIES_POPULATION, "samples_per_s", now, self->samples,
                              isfinite (rate) && rate >= 0 ? rate : 0, 1, NULL))
            log_warn ("series_failed", "name=samples_per_s");
        self->last_metrics = mono;
        log_debug ("batches", "commits=%" PRIu64 " messages=%" PRIu64 " work_ms=%" PRIu64
                   " commit_ms=%" PRIu64 " checkpoints=%" PRIu64, self->batches, self->batched,
                   self->batch_work_us / 1000, self->commit_us / 1000, db_checkpoints (self->db));
    }
    server_batch_end (self);
    //  Training states no snapshot row names any more: whole segments go
    //  at once; live records in mostly-dead segments move a few MiB a pass.
    //  Not while the pass's batch still waits for its state sync (it
    //  would if a dispatch in it had written a state): next pass.
    if (!self->batching && db_store_gc (self->db, CRON_GC_MOVE_BYTES) < 0)
        log_warn ("store_gc_failed", "why=\"see the error before; retried next pass\"");
    //  Keep the WAL short without the checkpointer's blocking TRUNCATE
    //  (under load it made status p99 105-183 ms; 12.6 ms without it).
    if (!self->batching && db_wal_catch_up (self->db, CRON_WAL_RESTART_BYTES) < 0)
        log_warn ("wal_catch_up_failed", "why=\"see the error before; retried next pass\"");
    metrics_publish (self->metrics, self);
#ifdef HAVE_SYSTEMD
    int busy = 0;
    for (int i = 0; i < self->n_agents; i++)
        busy += self->agents [i].busy;
    sd_notifyf (0, "WATCHDOG=1\nSTATUS=%s%zu workers, %d/%d agents busy, %" PRIu64
                " results, %" PRIu64 " evolutions, %.0f samples/s",
                self->paused ? "paused; " : "", zhashx_size (self->peers), busy,
                self->n_agents, self->results, self->evolutions, server_samples_per_s (self));
#endif
}
