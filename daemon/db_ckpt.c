/*  db_ckpt: the WAL checkpointer thread and the writer's own WAL catch-up. */
#include "db_priv.h"

#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Checkpointer: a thread with its own connection copies committed WAL
//  frames into the database file (PASSIVE: it never blocks the writer),
//  so the reactor never pays for a checkpoint inline. SQLite restarts the
//  WAL from its beginning once a checkpoint has caught up; if the writer
//  outruns the checkpointer and the WAL passes wal_max, one TRUNCATE
//  checkpoint waits for a gap between the writer's transactions.

static int64_t
s_file_size (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (int64_t) st.st_size : 0;
}

static void *
s_checkpointer (void *arg)
{
    db_t *self = arg;
    sqlite3 *h = NULL;
    char wal [4096];
    snprintf (wal, sizeof wal, "%s-wal", self->path);
    if (sqlite3_open_v2 (self->path, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)
        != SQLITE_OK) {
        log_error ("checkpointer_open_failed", "path=%s", self->path);
        sqlite3_close (h);
        return NULL;
    }
    sqlite3_busy_timeout (h, 2000);
    //  A connection opens the WAL on its first read; until then a
    //  checkpoint on it is a no-op.
    if (sqlite3_exec (h, "PRAGMA schema_version", NULL, NULL, NULL) != SQLITE_OK)
        log_warn ("checkpointer_read_failed", "msg=\"%s\"", sqlite3_errmsg (h));
    pthread_mutex_lock (&self->ckpt_mutex);
    bool behind = false;
    while (!self->ckpt_stop) {
        //  SQLite restarts the WAL only when a write transaction begins
        //  with every frame backfilled; a pass that ended behind the
        //  writer goes again at once to catch it between two commits.
        if (behind) {
            pthread_mutex_unlock (&self->ckpt_mutex);
            sched_yield ();
            pthread_mutex_lock (&self->ckpt_mutex);
            if (self->ckpt_stop)
                break;
            goto pass;
        }
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long) (self->ckpt_ms % 1000) * 1000000L;
        ts.tv_sec += self->ckpt_ms / 1000 + ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait (&self->ckpt_cond, &self->ckpt_mutex, &ts);
        if (self->ckpt_stop)
            break;
pass:
        pthread_mutex_unlock (&self->ckpt_mutex);
        int mode = s_file_size (wal) > self->wal_max ? SQLITE_CHECKPOINT_TRUNCATE
                                                     : SQLITE_CHECKPOINT_PASSIVE;
        int log_frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2 (h, NULL, mode, &log_frames, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warn ("checkpoint_failed", "rc=%d msg=\"%s\"", rc, sqlite3_errmsg (h));
        else
        if (mode == SQLITE_CHECKPOINT_TRUNCATE)
            log_info ("checkpoint_truncate", "rc=%d frames=%d", rc, log_frames);
        behind = rc == SQLITE_OK && done >= 0 && done < log_frames;
        pthread_mutex_lock (&self->ckpt_mutex);
        self->checkpoints++;
        self->checkpoint_frames += done > 0 ? (uint64_t) done : 0;
    }
    pthread_mutex_unlock (&self->ckpt_mutex);
    //  Last one on the way out: a clean stop leaves a small WAL.
    sqlite3_wal_checkpoint_v2 (h, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    sqlite3_close (h);
    return NULL;
}

int
db_wal_catch_up (db_t *self, int64_t min_bytes)
{
    assert (!self->batch);
    char wal [4096];
    snprintf (wal, sizeof wal, "%s-wal", self->path);
    if (s_file_size (wal) < min_bytes)
        return 0;
    //  The writer is always between two of its own transactions here, so
    //  once this pass has copied the few frames the checkpointer thread
    //  has not, the next BEGIN starts the WAL over from its beginning.
    int log_frames = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2 (self->handle, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                        &log_frames, &done);
    if (rc == SQLITE_BUSY)
        return 0;               // the thread is mid-pass: next time
    if (rc != SQLITE_OK) {
        s_fail (self, "wal_catch_up");
        return -1;
    }
    return done >= 0 && done == log_frames ? 1 : 0;
}

int
db_checkpointer_start (db_t *self, uint32_t interval_ms, uint64_t wal_max_bytes)
{
    assert (!self->ckpt_running);
    assert (interval_ms > 0);
    self->ckpt_ms = interval_ms;
    self->wal_max = (int64_t) wal_max_bytes;
    self->ckpt_stop = false;
    //  The thread does every checkpoint from now on.
    if (db_pragma (self, "PRAGMA wal_autocheckpoint = 0"))
        return -1;
    if (pthread_mutex_init (&self->ckpt_mutex, NULL))
        return -1;
    if (pthread_cond_init (&self->ckpt_cond, NULL)) {
        pthread_mutex_destroy (&self->ckpt_mutex);
        return -1;
    }
    if (pthread_create (&self->ckpt_thread, NULL, s_checkpointer, self)) {
        pthread_cond_destroy (&self->ckpt_cond);
        pthread_mutex_destroy (&self->ckpt_mutex);
        db_pragma (self, "PRAGMA wal_autocheckpoint = 1000");
        return -1;
    }
    self->ckpt_running = true;
    return 0;
}

void
db_checkpointer_stop (db_t *self)
{
    if (!self->ckpt_running)
        return;
    pthread_mutex_lock (&self->ckpt_mutex);
    self->ckpt_stop = true;
    pthread_cond_signal (&self->ckpt_cond);
    pthread_mutex_unlock (&self->ckpt_mutex);
    pthread_join (self->ckpt_thread, NULL);
    pthread_mutex_destroy (&self->ckpt_mutex);
    pthread_cond_destroy (&self->ckpt_cond);
}

uint64_t
db_checkpoints (db_t *self)
{
    if (!self->ckpt_running)
        return 0;
    pthread_mutex_lock (&self->ckpt_mutex);
    uint64_t n = self->checkpoints;
    pthread_mutex_unlock (&self->ckpt_mutex);
    return n;
}
