/*  committer: the group commit's fsyncs on their own thread (committer.h).
*/
#include "committer.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct _committer_t {
    zactor_t *actor;
    uint32_t in_flight;             // submitted, not yet received
};

typedef struct {
    char *wal_path;
    uint32_t delay_ms;              // PBTD_TEST_COMMIT_DELAY_MS (tests only)
    uint32_t store_delay_ms;        // PBTD_TEST_STORE_DELAY_MS (tests only)
} s_args_t;

static bool
s_sync_wal (const char *path, uint64_t seq)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fdatasync (fd)) {
        log_error ("wal_sync_failed", "path=%s batch=%" PRIu64 " errno=\"%s\"", path, seq,
                   strerror (errno));
        if (fd >= 0)
            close (fd);
        return false;
    }
    close (fd);
    return true;
}

static bool
s_sync_store (int fd, uint64_t seq)
{
    if (fd < 0)
        return true;            // the batch wrote no state
    bool ok = fdatasync (fd) == 0;
    if (!ok)
        log_error ("store_sync_failed", "batch=%" PRIu64 " errno=\"%s\"", seq, strerror (errno));
    close (fd);
    return ok;
}

typedef struct {
    uint32_t job;
    uint64_t seq;
    int fd;
} s_job_t;

//  Jobs taken per pass: more than the reactor ever has in flight
//  (one store job, SERVER_COMMIT_PENDING WAL jobs, a few at a stop).
#define S_TAKE_MAX 64

//  Read one message: 1 a job, 0 $TERM or interrupted, -1 a malformed one.
static int
s_take (zsock_t *pipe, s_job_t *j)
{
    zmsg_t *msg = zmsg_recv (pipe);
    if (!msg)
        return 0;
    char *cmd = zmsg_popstr (msg);
    int rc = 0;
    zframe_t *f = zmsg_first (msg);
    if (cmd && streq (cmd, "JOB") && f
    &&  zframe_size (f) == sizeof j->job + sizeof j->seq + sizeof j->fd) {
        memcpy (&j->job, zframe_data (f), sizeof j->job);
        memcpy (&j->seq, zframe_data (f) + sizeof j->job, sizeof j->seq);
        memcpy (&j->fd, zframe_data (f) + sizeof j->job + sizeof j->seq, sizeof j->fd);
        rc = 1;
    }
    else
    if (cmd && !streq (cmd, "$TERM")) {
        log_error ("committer_bad_job", "cmd=%s", cmd);
        rc = -1;
    }
    free (cmd);
    zmsg_destroy (&msg);
    return rc;
}

//  Run the jobs taken in one pass: store jobs first (the reactor waits
//  for them before it reads workers again; a WAL job never depends on a
//  later batch's states), then every WAL job with one fsync, which covers
//  all of them: each was handed over after its batch committed.
static int
s_run (zsock_t *pipe, s_args_t *args, s_job_t *jobs, int n)
{
    bool wal = false;
    for (int i = 0; i < n; i++) {
        if (jobs [i].job == COMMITTER_WAL)
            wal = true;
        else {
            if (args->store_delay_ms)
                zclock_sleep ((int) args->store_delay_ms);
            if (zsock_send (pipe, "481", jobs [i].job, jobs [i].seq,
                            (byte) s_sync_store (jobs [i].fd, jobs [i].seq)))
                return -1;
        }
    }
    if (!wal)
        return 0;
    if (args->delay_ms)
        zclock_sleep ((int) args->delay_ms);
    byte ok = s_sync_wal (args->wal_path, jobs [n - 1].seq);
    for (int i = 0; i < n; i++)
        if (jobs [i].job == COMMITTER_WAL
        &&  zsock_send (pipe, "481", jobs [i].job, jobs [i].seq, ok))
            return -1;
    return 0;
}

//  The thread: waits for a job, takes every other one already queued,
//  runs them, answers each (in the order handed over within its kind).
static void
s_actor (zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    zsock_signal (pipe, 0);
    s_job_t jobs [S_TAKE_MAX];
    bool more = true;
    while (more) {
        int n = 0;
        do {
            int rc = s_take (pipe, &jobs [n]);
            if (rc == 0)
                more = false;   // $TERM: the jobs before it still run
            else
            if (rc == 1 && jobs [n].job != COMMITTER_STORE && jobs [n].job != COMMITTER_WAL) {
                log_error ("committer_bad_job", "job=%" PRIu32, jobs [n].job);
                if (jobs [n].fd >= 0)
                    close (jobs [n].fd);
            }
            else
            if (rc == 1)
                n++;
        } while (more && n < S_TAKE_MAX && (zsock_events (pipe) & ZMQ_POLLIN));
        if (s_run (pipe, args, jobs, n))
            break;
    }
    free (args->wal_path);
    free (args);
}

committer_t *
committer_new (const char *wal_path)
{
    assert (wal_path);
    committer_t *self = calloc (1, sizeof *self);
    s_args_t *args = calloc (1, sizeof *args);
    if (!self || !args)
        goto fail;
    args->wal_path = strdup (wal_path);
    if (!args->wal_path)
        goto fail;
    const char *delay = getenv ("PBTD_TEST_COMMIT_DELAY_MS");
    if (delay && *delay) {
        args->delay_ms = (uint32_t) strtoul (delay, NULL, 10);
        log_warn ("committer_test_delay", "ms=%" PRIu32 " why=\"PBTD_TEST_COMMIT_DELAY_MS is "
                  "set: for tests only\"", args->delay_ms);
    }
    delay = getenv ("PBTD_TEST_STORE_DELAY_MS");
    if (delay && *delay) {
        args->store_delay_ms = (uint32_t) strtoul (delay, NULL, 10);
        log_warn ("committer_test_delay", "store_ms=%" PRIu32 " why=\"PBTD_TEST_STORE_DELAY_MS "
                  "is set: for tests only\"", args->store_delay_ms);
    }
    //  From here the thread owns args.
    self->actor = zactor_new (s_actor, args);
    if (!self->actor) {
        free (args->wal_path);
        goto fail;
    }
    return self;
fail:
    log_error ("committer_failed", "why=\"could not start the commit thread\"");
    free (args);
    free (self);
    return NULL;
}

void
committer_destroy (committer_t **self_p)
{
    assert (self_p);
    committer_t *self = *self_p;
    if (!self)
        return;
    //  $TERM queues behind every job handed over: they all run first.
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}

zsock_t *
committer_sock (committer_t *self)
{
    return zactor_sock (self->actor);
}

int
committer_submit (committer_t *self, committer_job_t job, uint64_t seq, int fd)
{
    uint32_t j = job;
    byte body [sizeof j + sizeof seq + sizeof fd];
    memcpy (body, &j, sizeof j);
    memcpy (body + sizeof j, &seq, sizeof seq);
    memcpy (body + sizeof j + sizeof seq, &fd, sizeof fd);
    if (zsock_send (self->actor, "sb", "JOB", body, sizeof body)) {
        log_error ("committer_submit_failed", "batch=%" PRIu64, seq);
        if (fd >= 0)
            close (fd);
        return -1;
    }
    self->in_flight++;
    return 0;
}

int
committer_recv (committer_t *self, committer_job_t *job, uint64_t *seq, bool *ok)
{
    uint32_t j = 0;
    uint64_t s = 0;
    byte k = 0;
    if (zsock_recv (self->actor, "481", &j, &s, &k))
        return -1;
    assert (self->in_flight > 0);
    self->in_flight--;
    *job = (committer_job_t) j;
    *seq = s;
    *ok = k != 0;
    return 0;
}

uint32_t
committer_in_flight (committer_t *self)
{
    return self->in_flight;
}
