/*  committer: the fsyncs of pbtd's group commit, on a thread of their own,
    so the reactor never waits for the disk (as Redis' background fsync).

    The reactor hands over jobs, each naming a batch by sequence number;
    the thread answers each on the same socket, which the reactor polls
    in its zloop. Of the jobs queued when it looks, it runs the store jobs
    first, then all the WAL jobs with one fsync (it covers every batch
    committed before it), answering each kind in the order handed over:
    - a store job: fdatasync the state store's active segment (a dup'ed
      descriptor, which the thread closes); the reactor commits the
      batch's rows only after it succeeded;
    - a WAL job: fsync the database's WAL file after the batch committed
      at synchronous=NORMAL; the batch's acks are sent only after it
      succeeded.
    server.c's "Commit path" comment has the whole hand-off.

    For tests only: PBTD_TEST_COMMIT_DELAY_MS in the environment delays
    every WAL job by that many milliseconds, so a test can see that no ack
    arrives before its batch's fsync.
*/
#ifndef PBTD_COMMITTER_H
#define PBTD_COMMITTER_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _committer_t committer_t;

typedef enum {
    COMMITTER_STORE = 1,
    COMMITTER_WAL = 2
} committer_job_t;

//  Start the thread; wal_path is the file the WAL jobs fsync. NULL on failure.
committer_t *committer_new (const char *wal_path);
//  Finish every job handed over (their answers are dropped), stop the thread.
void committer_destroy (committer_t **self_p);

//  The socket answers arrive on (readable: committer_recv will not block).
zsock_t *committer_sock (committer_t *self);

//  Hand over a job: COMMITTER_STORE with fd (taken, closed by the
//  thread), or COMMITTER_WAL (fd -1). 0, or -1 (fd closed).
int committer_submit (committer_t *self, committer_job_t job, uint64_t seq, int fd);

//  Take the next answer, blocking until there is one: the job, its
//  sequence number and whether its fsync succeeded. 0, or -1 (interrupted).
int committer_recv (committer_t *self, committer_job_t *job, uint64_t *seq, bool *ok);

//  Jobs handed over and not yet answered through committer_recv.
uint32_t committer_in_flight (committer_t *self);

#endif
