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

//  The thread: one job at a time, in the order handed over, each answered.
static void
s_actor (zsock_t *pipe, void *arg)
{
    s_args_t *args = arg;
    zsock_signal (pipe, 0);
    while (true) {
        zmsg_t *msg = zmsg_recv (pipe);
        if (!msg)
            break;              // interrupted
        char *cmd = zmsg_popstr (msg);
        if (!cmd || streq (cmd, "$TERM")) {
            free (cmd);
            zmsg_destroy (&msg);
            break;
        }
        zframe_t *f = zmsg_first (msg);
        uint32_t job = 0;
        uint64_t seq = 0;
        int fd = -1;
        if (f && zframe_size (f) == sizeof job + sizeof seq + sizeof fd) {
            memcpy (&job, zframe_data (f), sizeof job);
            memcpy (&seq, zframe_data (f) + sizeof job, sizeof seq);
            memcpy (&fd, zframe_data (f) + sizeof job + sizeof seq, sizeof fd);
        }
        bool ok = false;
        if (job == COMMITTER_STORE)
            ok = s_sync_store (fd, seq);
        else
        if (job == COMMITTER_WAL) {
            if (args->delay_ms)
                zclock_sleep ((int) args->delay_ms);
            ok = s_sync_wal (args->wal_path, seq);
        }
        else
            log_error ("committer_bad_job", "job=%" PRIu32, job);
        free (cmd);
        zmsg_destroy (&msg);
        if (zsock_send (pipe, "481", job, seq, (byte) ok))
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
