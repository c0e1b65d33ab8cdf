/*  pbt-bench load: many simulated workers against a real pbtd.

    The benchmark starts pbtd (fork/exec) on a fresh database in a temporary
    directory with ipc endpoints, then plays N workers over real ZeroMQ from
    one thread: N DEALER sockets under one zmq_poll. Each simulated worker
    follows the worker state machine of proto/PROTOCOL.md (hello, request,
    assign, result, ack) but replaces training with a timer: it sends back
    the state vectors it received, slightly changed and finite, so pbtd
    moves and stores realistic volumes, plus E zero-sum fake episodes.

    It prints key=value figures (throughput, latencies, pbtd's memory and
    CPU, database size) and then checks correctness: after a drain phase
    (no new requests; everything outstanding completed) it asks pbtd for
    status (no agent may be busy), stops pbtd with SIGTERM and reads the
    SQLite file directly: every acknowledged assignment must be 'done' with
    exactly the episodes we sent, once (lost=, doubled=, stuck_busy=).
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"
#include "envspec.h"
#include "proto.h"
#include "rng.h"

#define S_FRAMES_PER_SEAT   1280        // what a 32 env x 40 step iteration reports

typedef struct {
    int workers;
    double seconds;
    double warmup;
    double state_kib;
    int population;
    int train_ms;
    int episodes;
    int lease_ms;
    int drain_s;
    int status_calls;
    int progress_s;
    long long matches_keep;     // pbtd's [daemon] matches_keep, -1: pbtd's default
    bool episode_rows;          // pbtd's [daemon] episode_rows
    const char *pbtd;
    const char *log_level;
    const char *tmpdir;
    bool keep;
} opts_t;

typedef enum { W_HELLO, W_WAIT, W_TRAIN, W_ACK, W_IDLE } wstate_t;

typedef struct {
    void *sock;
    wstate_t state;
    int64_t t_sent;             // us: when the request / result in flight went out
    int64_t t_retry;            // us: resend time for hello / a refused request
    uint64_t pending_id;        // assignment whose result awaits its ack
    uint32_t pending_episodes;
    int64_t pending_agents [PROTO_MAX_AGENTS];  // trained agents pbtd frees on commit
    uint32_t n_pending_agents;
    proto_msg_t assign;         // held while "training"
    int64_t due;                // us: training done
    int64_t next_hb;            // us: next heartbeat while training
} sim_worker_t;

typedef struct {
    double *v;
    size_t n, cap;
} samples_t;

typedef struct {
    uint64_t id;
    uint32_t episodes;
} acked_t;

typedef struct {
    opts_t o;
    char dir [PATH_MAX];
    char db_path [PATH_MAX + 16];
    char wep [PATH_MAX + 16];
    char cep [PATH_MAX + 16];
    pid_t pid;
    void *ctx;
    void *ctl;                  // DEALER to the control endpoint
    sim_worker_t *w;
    rng_t rng;
    uint32_t heartbeat_ms;
    //  Phases (us, monotonic)
    int64_t t_start, t_warm, t_end;
    bool measuring, draining;
    //  Training timers: every worker trains for the same time, so due times
    //  are in send order and a FIFO ring is a priority queue.
    int *trainq;
    int tq_head, tq_len;
    //  Agents currently held by a simulated worker (trained seats only):
    //  a second assignment of a held agent is a double assignment.
    uint8_t *held;
    int64_t *released_at;       // us: when the agent's last result went out
    size_t n_agent_slots;
    //  Figures
    samples_t assign_ms, reply_ms, free_ms, status_ms;
    acked_t *acked;
    size_t n_acked, cap_acked;
    uint64_t results_window, results_total, not_applied, errors, error_codes [PROTO_E_PAUSED + 1];
    uint64_t double_assigned, unexpected, bad_frames, send_failed, heartbeats;
    //  Status probes
    bool status_inflight;
    double status_rtt_ms;       // round trip of the last reply, up to its arrival
    int64_t status_sent, status_next, status_every;
    //  pbtd resources
    double rss_start, rss_end, rss_max;
    double cpu_start, cpu_end;          // pbtd seconds of CPU
    double self_cpu_start, self_cpu_end;
    double db_mb, wal_mb, states_mb;
    //  pbtd's own assignment turnaround (status assign_turnaround_ms).
    int64_t turn_n;
    double turn_p50, turn_p99, turn_max;
} load_t;

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
s_push (samples_t *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *v = realloc (s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v [s->n++] = x;
    return 0;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Nearest-rank percentile of the samples (sorted in place); NAN if empty.
static double
s_pct (samples_t *s, double p)
{
    if (s->n == 0)
        return NAN;
    qsort (s->v, s->n, sizeof *s->v, s_cmp_double);
    size_t rank = (size_t) ceil (p / 100.0 * (double) s->n);
    if (rank < 1)
        rank = 1;
    return s->v [rank - 1];
}

//  --------------------------------------------------------------------
//  pbtd process: start, watch, stop

static int
s_rm_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void) sb; (void) flag; (void) ftw;
    return remove (path);
}

//  VmRSS of pid in MiB, or -1.
static double
s_rss_mb (pid_t pid)
{
    char path [64], line [256];
    snprintf (path, sizeof path, "/proc/%d/status", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    double mb = -1;
    while (fgets (line, sizeof line, f))
        if (strncmp (line, "VmRSS:", 6) == 0) {
            mb = strtod (line + 6, NULL) / 1024.0;
            break;
        }
    fclose (f);
    return mb;
}

//  utime + stime of pid in seconds, or -1.
static double
s_cpu_s (pid_t pid)
{
    char path [64], buf [1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    size_t n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf [n] = 0;
    //  Fields after the command name, which may hold spaces: skip to ')'.
    char *p = strrchr (buf, ')');
    if (!p)
        return -1;
    unsigned long utime = 0, stime = 0;
    if (sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

static double
s_self_cpu_s (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
         + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double
s_file_mb (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (double) st.st_size / (1024.0 * 1024.0) : 0;
}

//  The state store directory beside the database: every file in it.
static double
s_dir_mb (const char *db_path)
{
    char dir [PATH_MAX + 32];
    snprintf (dir, sizeof dir, "%s-states", db_path);
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    double total = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        char path [2 * PATH_MAX];
        struct stat st;
        snprintf (path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name [0] != '.' && stat (path, &st) == 0 && S_ISREG (st.st_mode))
            total += (double) st.st_size;
    }
    closedir (d);
    return total / (1024.0 * 1024.0);
}

//  pbtd's binary: --pbtd, else <dir of this program>/../daemon/pbtd.
static int
s_find_pbtd (const opts_t *o, char *out, size_t out_len)
{
    if (o->pbtd) {
        snprintf (out, out_len, "%s", o->pbtd);
        return access (out, X_OK);
    }
    char self [PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self [n] = 0;
    char *slash = strrchr (self, '/');
    if (!slash)
        return -1;
    *slash = 0;
    if ((size_t) snprintf (out, out_len, "%s/../daemon/pbtd", self) >= out_len)
        return -1;
    return access (out, X_OK);
}

//  Model width that makes params + adam_m + adam_v about kib KiB: RPS has 3
//  observations and 3 actions, so one hidden layer of h gives 12h + 4 floats.
static int
s_hidden_for (double kib)
{
    double floats = kib * 1024.0 / 12.0;
    long h = lround ((floats - 4.0) / 12.0);
    return h < 1 ? 1 : (int) h;
}

static int
s_write_config (load_t *self, char *path, size_t path_len)
{
    snprintf (path, path_len, "%s/pbtd.ini", self->dir);
    FILE *f = fopen (path, "w");
    if (!f)
        return -1;
    int hb = self->o.lease_ms / 4;
    if (hb < 10)
        hb = 10;
    char keep [32] = "";
    if (self->o.matches_keep >= 0)
        snprintf (keep, sizeof keep, "%lld", self->o.matches_keep);
    fprintf (f,
        "# written by pbt-bench load\n"
        "[daemon]\n"
        "%s%s%s"
        "episode_rows = %s\n"
        "lease_ms = %d\n"
        "heartbeat_ms = %d\n"
        "log_level = %s\n"
        "[population]\n"
        "size = %d\n"
        "env = rps\n"
        "preset = seed\n"
        "[model]\n"
        "hidden = %d\n",
        self->o.matches_keep >= 0 ? "matches_keep = " : "", keep,
        self->o.matches_keep >= 0 ? "\n" : "",
        self->o.episode_rows ? "true" : "false", self->o.lease_ms, hb, self->o.log_level, self->o.population,
        s_hidden_for (self->o.state_kib));
    return fclose (f);
}

static int
s_start_pbtd (load_t *self)
{
    char bin [PATH_MAX + 32], cfg [PATH_MAX + 16], logp [PATH_MAX + 16];
    if (s_find_pbtd (&self->o, bin, sizeof bin) != 0) {
        fprintf (stderr, "pbt-bench: no pbtd binary at '%s' (use --pbtd PATH)\n", bin);
        return -1;
    }
    if (s_write_config (self, cfg, sizeof cfg) != 0) {
        fprintf (stderr, "pbt-bench: cannot write the config in %s\n", self->dir);
        return -1;
    }
    snprintf (logp, sizeof logp, "%s/pbtd.log", self->dir);
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open (logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open ("/dev/null", O_RDWR);
        if (fd >= 0)
            dup2 (fd, 2);
        if (null >= 0) {
            dup2 (null, 0);
            dup2 (null, 1);
        }
        execl (bin, bin, "--config", cfg, "--db", self->db_path,
               "--worker-endpoint", self->wep, "--control-endpoint", self->cep, (char *) NULL);
        _exit (127);
    }
    self->pid = pid;
    return 0;
}

static bool
s_pbtd_alive (load_t *self)
{
    if (self->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid (self->pid, &status, WNOHANG);
    if (r == self->pid) {
        fprintf (stderr, "pbt-bench: pbtd exited early (%s %d); see %s/pbtd.log\n",
                 WIFEXITED (status) ? "status" : "signal",
                 WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status), self->dir);
        self->pid = -1;
        return false;
    }
    return true;
}

//  SIGTERM, then wait up to 30 s (SIGKILL after). Returns the exit status
//  (0 is a clean stop) or -1.
static int
s_stop_pbtd (load_t *self)
{
    if (self->pid <= 0)
        return -1;
    kill (self->pid, SIGTERM);
    int status = 0;
    int64_t deadline = s_now_us () + 30 * 1000000LL;
    while (true) {
        pid_t r = waitpid (self->pid, &status, WNOHANG);
        if (r == self->pid)
            break;
        if (s_now_us () > deadline) {
            fprintf (stderr, "pbt-bench: pbtd ignored SIGTERM for 30 s; killing it\n");
            kill (self->pid, SIGKILL);
            waitpid (self->pid, &status, 0);
            self->pid = -1;
            return -1;
        }
        usleep (20000);
    }
    self->pid = -1;
    return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

//  --------------------------------------------------------------------
//  Sending

static void
s_free_buf (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  Encode and send msg on sock without blocking; zero copy.
static int
s_send (load_t *self, void *sock, const proto_msg_t *msg)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_encode (msg, &buf, &len) != 0) {
        fprintf (stderr, "pbt-bench: cannot encode a %s\n", proto_type_name (msg->type));
        self->send_failed++;
        return -1;
    }
    zmq_msg_t m;
    zmq_msg_init_data (&m, buf, len, s_free_buf, NULL);
    if (zmq_msg_send (&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&m);
        self->send_failed++;
        return -1;
    }
    return 0;
}

static void
s_send_hello (load_t *self, int i)
{
    sim_worker_t *w = &self->w [i];
    proto_msg_t msg = { .type = PROTO_HELLO };
    snprintf (msg.u.hello.worker_id, sizeof msg.u.hello.worker_id, "load-%d-%d", (int) getpid (), i);
    snprintf (msg.u.hello.host, sizeof msg.u.hello.host, "localhost");
    msg.u.hello.pid = (uint32_t) getpid ();
    snprintf (msg.u.hello.software, sizeof msg.u.hello.software, "pbt-bench/load");
    envspec_announce (&msg.u.hello);
    s_send (self, w->sock, &msg);
    w->state = W_HELLO;
    w->t_retry = s_now_us () + 2000000;
}

static void
s_send_request (load_t *self, int i)
{
    sim_worker_t *w = &self->w [i];
    if (self->draining) {
        w->state = W_IDLE;
        return;
    }
    proto_msg_t msg = { .type = PROTO_REQUEST };
    w->t_sent = s_now_us ();
    w->t_retry = 0;
    w->state = W_WAIT;
    s_send (self, w->sock, &msg);
}

static int
s_agent_slots (load_t *self, int64_t id)
{
    if (id < 0)
        return -1;
    if ((size_t) id >= self->n_agent_slots) {
        size_t n = self->n_agent_slots ? self->n_agent_slots : 64;
        while (n <= (size_t) id)
            n *= 2;
        uint8_t *held = realloc (self->held, n);
        int64_t *rel = realloc (self->released_at, n * sizeof *rel);
        if (held)
            self->held = held;
        if (rel)
            self->released_at = rel;
        if (!held || !rel)
            return -1;
        memset (held + self->n_agent_slots, 0, n - self->n_agent_slots);
        memset (rel + self->n_agent_slots, 0, (n - self->n_agent_slots) * sizeof *rel);
        self->n_agent_slots = n;
    }
    return 0;
}

//  From the moment the result (or the lease) is gone pbtd may hand these
//  agents to someone else, so they stop being ours before the ack.
static void
s_release_agents (load_t *self, const proto_assign_t *a)
{
    for (uint32_t s = 0; s < a->n_seats; s++) {
        const proto_seat_t *seat = &a->seats [s];
        if (seat->train && seat->id >= 0 && (size_t) seat->id < self->n_agent_slots)
            self->held [seat->id] = 0;
    }
}

//  Build the result of the assignment w holds: the received vectors, a few
//  floats nudged (still finite), and E zero-sum episodes; send it.
static void
s_send_result (load_t *self, int i)
{
    sim_worker_t *w = &self->w [i];
    proto_assign_t *a = &w->assign.u.assign;
    int64_t now = s_now_us ();
    s_release_agents (self, a);
    w->n_pending_agents = 0;
    for (uint32_t s = 0; s < a->n_seats; s++)
        if (a->seats [s].train && a->seats [s].id >= 0)
            w->pending_agents [w->n_pending_agents++] = a->seats [s].id;

    proto_msg_t out = { .type = PROTO_RESULT };
    proto_result_t *r = &out.u.result;
    r->assignment_id = a->assignment_id;
    r->n_seats = a->n_seats;
    uint64_t frames = 0;
    for (uint32_t s = 0; s < a->n_seats; s++) {
        proto_seat_t *seat = &a->seats [s];
        proto_outcome_t *o = &r->seats [s];
        o->id = seat->id;
        o->version = seat->version;
        //  A seat without weights yet: make zeros of the model's size (a
        //  real worker makes them from the seat's init_seed).
        //  (Out of memory leaves none: pbtd refuses the result, counted.)
        if (seat->train && seat->state.n_params == 0 && seat->id >= 0)
            (void) proto_state_alloc (&seat->state, (uint32_t) proto_model_params (&a->model));
        if (seat->train && seat->state.n_params > 0) {
            //  Take the vectors over instead of copying them.
            o->state = seat->state;
            memset (&seat->state, 0, sizeof seat->state);
            o->frames = S_FRAMES_PER_SEAT;
            frames += o->frames;
            for (uint32_t k = (uint32_t) rng_below (&self->rng, 61); k < o->state.n_params; k += 61) {
                o->state.params [k] += 1e-3f * (rng_uniformf (&self->rng) - 0.5f);
                o->state.adam_m [k] = 0.9f * o->state.adam_m [k] + 1e-4f;
                o->state.adam_v [k] = 0.999f * o->state.adam_v [k] + 1e-8f;
            }
            o->state.adam_t += 1;
        }
    }
    r->n_episodes = (uint32_t) self->o.episodes;
    r->scores = calloc ((size_t) r->n_episodes * (r->n_seats ? r->n_seats : 1), sizeof (float));
    if (!r->scores) {
        proto_msg_clear (&out);
        proto_msg_clear (&w->assign);
        self->send_failed++;
        s_send_request (self, i);
        return;
    }
    //  RPS over 10 rounds: seat 0 scores in [-10, 10], seat 1 the opposite.
    for (uint32_t e = 0; e < r->n_episodes && r->n_seats >= 2; e++) {
        float v = (float) ((int) rng_below (&self->rng, 21) - 10);
        r->scores [e * r->n_seats + 0] = v;
        r->scores [e * r->n_seats + 1] = -v;
    }
    r->seconds = (double) self->o.train_ms / 1000.0;
    r->samples_per_s = r->seconds > 0 ? (double) frames / r->seconds : 0;

    w->pending_id = a->assignment_id;
    w->pending_episodes = r->n_episodes;
    w->t_sent = now;
    w->state = W_ACK;
    s_send (self, w->sock, &out);
    proto_msg_clear (&out);
    proto_msg_clear (&w->assign);
}

//  --------------------------------------------------------------------
//  Receiving

static void
s_on_assign (load_t *self, int i, proto_msg_t *msg)
{
    sim_worker_t *w = &self->w [i];
    proto_assign_t *a = &msg->u.assign;
    if (w->state != W_WAIT) {
        //  Like the real worker: not expected, so let its lease lapse.
        self->unexpected++;
        return;
    }
    int64_t now = s_now_us ();
    if (w->t_sent >= self->t_warm && w->t_sent < self->t_end)
        s_push (&self->assign_ms, (double) (now - w->t_sent) / 1000.0);
    int64_t freed = 0;
    for (uint32_t s = 0; s < a->n_seats; s++) {
        const proto_seat_t *seat = &a->seats [s];
        if (!seat->train || seat->id < 0 || s_agent_slots (self, seat->id) != 0)
            continue;
        if (self->held [seat->id])
            self->double_assigned++;
        self->held [seat->id] = 1;
        if (self->released_at [seat->id] > freed)
            freed = self->released_at [seat->id];
    }
    //  Turnaround: how long pbtd took to hand out agents that had just come
    //  back, when this request was already waiting for them.
    if (freed > w->t_sent && w->t_sent >= self->t_warm && w->t_sent < self->t_end)
        s_push (&self->free_ms, (double) (now - freed) / 1000.0);

    w->assign = *msg;
    memset (msg, 0, sizeof *msg);
    w->state = W_TRAIN;
    if (self->o.train_ms <= 0) {
        s_send_result (self, i);
        return;
    }
    w->due = now + (int64_t) self->o.train_ms * 1000;
    w->next_hb = now + (int64_t) self->heartbeat_ms * 1000;
    int n = self->o.workers;
    self->trainq [(self->tq_head + self->tq_len) % n] = i;
    self->tq_len++;
}

static void
s_on_ack (load_t *self, int i, const proto_ack_t *ack)
{
    sim_worker_t *w = &self->w [i];
    if (w->state != W_ACK || ack->assignment_id != w->pending_id)
        return;                 // a heartbeat's ack
    int64_t now = s_now_us ();
    if (w->t_sent >= self->t_warm && w->t_sent < self->t_end)
        s_push (&self->reply_ms, (double) (now - w->t_sent) / 1000.0);
    if (now >= self->t_warm && now < self->t_end)
        self->results_window++;
    self->results_total++;
    //  pbtd frees the agents when it commits, just before this ack.
    for (uint32_t k = 0; k < w->n_pending_agents; k++)
        if ((size_t) w->pending_agents [k] < self->n_agent_slots)
            self->released_at [w->pending_agents [k]] = now;
    if (ack->applied) {
        if (self->n_acked == self->cap_acked) {
            size_t cap = self->cap_acked ? self->cap_acked * 2 : 4096;
            acked_t *v = realloc (self->acked, cap * sizeof *v);
            if (v) {
                self->acked = v;
                self->cap_acked = cap;
            }
        }
        if (self->n_acked < self->cap_acked)
            self->acked [self->n_acked++] = (acked_t) { w->pending_id, w->pending_episodes };
    }
    else
        self->not_applied++;
    w->pending_id = 0;
    s_send_request (self, i);
}

static void
s_on_error (load_t *self, int i, const proto_error_t *e)
{
    sim_worker_t *w = &self->w [i];
    self->errors++;
    if (e->code <= PROTO_E_PAUSED)
        self->error_codes [e->code]++;
    if (self->errors <= 5)
        fprintf (stderr, "pbt-bench: worker %d got error %s (assignment %" PRIu64 "): %s\n",
                 i, proto_code_name (e->code), e->assignment_id, e->message);
    if (e->code == PROTO_E_STATE) {
        //  pbtd does not know us (restarted?): what we held is gone.
        if (w->state == W_TRAIN) {
            s_release_agents (self, &w->assign.u.assign);
            proto_msg_clear (&w->assign);
        }
        s_send_hello (self, i);
        return;
    }
    switch (w->state) {
        case W_ACK:
            if (e->assignment_id == w->pending_id) {
                w->pending_id = 0;
                s_send_request (self, i);
            }
            break;
        case W_WAIT:
            //  Refused (paused, stopping): ask again a little later.
            w->t_retry = s_now_us () + 200000;
            break;
        case W_TRAIN:
            //  The lease is gone; the timer still fires and finds nothing.
            if (e->assignment_id == w->assign.u.assign.assignment_id
            && (e->code == PROTO_E_EXPIRED || e->code == PROTO_E_UNKNOWN)) {
                s_release_agents (self, &w->assign.u.assign);
                proto_msg_clear (&w->assign);
                s_send_request (self, i);
            }
            break;
        default:
            break;
    }
}

static void
s_on_message (load_t *self, int i, proto_msg_t *msg)
{
    sim_worker_t *w = &self->w [i];
    switch (msg->type) {
        case PROTO_WELCOME:
            self->heartbeat_ms = msg->u.welcome.heartbeat_ms ? msg->u.welcome.heartbeat_ms : 2000;
            if (w->state == W_HELLO)
                s_send_request (self, i);
            break;
        case PROTO_ASSIGN:
            s_on_assign (self, i, msg);
            break;
        case PROTO_ACK:
            s_on_ack (self, i, &msg->u.ack);
            break;
        case PROTO_ERROR:
            s_on_error (self, i, &msg->u.error);
            break;
        default:
            self->unexpected++;
            break;
    }
}

//  Read everything waiting on worker i's socket.
static void
s_drain_socket (load_t *self, int i)
{
    while (true) {
        zmq_msg_t m;
        zmq_msg_init (&m);
        if (zmq_msg_recv (&m, self->w [i].sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&m);
            return;
        }
        bool more = zmq_msg_more (&m);
        proto_msg_t msg;
        char err [PROTO_MAX_TEXT];
        proto_code_t code = proto_decode ((const uint8_t *) zmq_msg_data (&m), zmq_msg_size (&m),
                                          &msg, err, sizeof err);
        zmq_msg_close (&m);
        if (more) {
            //  One frame per message; skip the rest of this one.
            self->bad_frames++;
            if (code == PROTO_OK)
                proto_msg_clear (&msg);
            continue;
        }
        if (code != PROTO_OK) {
            self->bad_frames++;
            if (self->bad_frames <= 3)
                fprintf (stderr, "pbt-bench: undecodable message: %s: %s\n", proto_code_name (code), err);
            continue;
        }
        s_on_message (self, i, &msg);
        proto_msg_clear (&msg);
    }
}

//  --------------------------------------------------------------------
//  Control endpoint: status probes

static void
s_send_status (load_t *self)
{
    proto_msg_t msg = { .type = PROTO_CTL };
    snprintf (msg.u.ctl.cmd, sizeof msg.u.ctl.cmd, "status");
    self->status_sent = s_now_us ();
    self->status_inflight = s_send (self, self->ctl, &msg) == 0;
}

//  Read one status reply if there is one. Returns 1 with *busy and *agents
//  (-1 if absent), 0 if nothing, -1 on an unusable reply. With busy NULL
//  the body is not walked (proto_view_array_at is linear in the index, so
//  counting is quadratic in the population: fine once at the end, not in
//  the timed loop).
static int
s_recv_status (load_t *self, int *busy, int *agents)
{
    zmq_msg_t m;
    zmq_msg_init (&m);
    if (zmq_msg_recv (&m, self->ctl, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close (&m);
        return 0;
    }
    self->status_inflight = false;
    //  Time the round trip up to arrival: walking the body is our cost, not pbtd's.
    self->status_rtt_ms = (double) (s_now_us () - self->status_sent) / 1000.0;
    proto_msg_t msg;
    char err [PROTO_MAX_TEXT];
    proto_code_t code = proto_decode ((const uint8_t *) zmq_msg_data (&m), zmq_msg_size (&m),
                                      &msg, err, sizeof err);
    zmq_msg_close (&m);
    if (code != PROTO_OK)
        return -1;
    int rc = -1;
    proto_view_t body, list, agent, flag;
    if (!busy)
        rc = msg.type == PROTO_CTL_REPLY && msg.u.ctl_reply.ok ? 1 : -1;
    else
    if (msg.type == PROTO_CTL_REPLY && msg.u.ctl_reply.ok && msg.u.ctl_reply.body
    &&  proto_view_init (&body, msg.u.ctl_reply.body, msg.u.ctl_reply.body_len) == 0
    &&  proto_view_get (body, "agents", &list) == 0) {
        proto_view_t turn, v;
        if (proto_view_get (body, "assign_turnaround_ms", &turn) == 0) {
            self->turn_n = proto_view_get (turn, "n", &v) == 0 ? proto_view_int (v, 0) : 0;
            self->turn_p50 = proto_view_get (turn, "p50", &v) == 0 ? proto_view_double (v, -1) : -1;
            self->turn_p99 = proto_view_get (turn, "p99", &v) == 0 ? proto_view_double (v, -1) : -1;
            self->turn_max = proto_view_get (turn, "max", &v) == 0 ? proto_view_double (v, -1) : -1;
        }
        int64_t n = proto_view_array_len (list);
        *agents = (int) n;
        *busy = 0;
        for (int64_t k = 0; k < n; k++)
            if (proto_view_array_at (list, (uint32_t) k, &agent) == 0
            &&  proto_view_get (agent, "busy", &flag) == 0
            &&  (proto_view_bool (flag, false) || proto_view_int (flag, 0) != 0))
                (*busy)++;
        rc = 1;
    }
    else
    if (msg.type == PROTO_CTL_REPLY && !msg.u.ctl_reply.ok)
        fprintf (stderr, "pbt-bench: status refused: %s\n", msg.u.ctl_reply.error);
    proto_msg_clear (&msg);
    return rc;
}

//  Blocking status call (also used to wait for pbtd to come up). Returns
//  the round trip in ms, or -1 (timeout, pbtd gone, bad reply).
static double
s_status_call (load_t *self, int timeout_ms, int *busy, int *agents)
{
    //  Drop a reply still owed to an earlier probe.
    while (s_recv_status (self, NULL, NULL) != 0)
        ;
    if (self->status_inflight) {
        zmq_pollitem_t item = { self->ctl, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, 5000) > 0)
            s_recv_status (self, NULL, NULL);
        self->status_inflight = false;
    }
    s_send_status (self);
    int64_t deadline = s_now_us () + (int64_t) timeout_ms * 1000;
    while (s_now_us () < deadline) {
        zmq_pollitem_t item = { self->ctl, 0, ZMQ_POLLIN, 0 };
        int rc = zmq_poll (&item, 1, 100);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0)
            return s_recv_status (self, busy, agents) == 1 ? self->status_rtt_ms : -1;
        if (!s_pbtd_alive (self))
            return -1;
    }
    return -1;
}

//  --------------------------------------------------------------------
//  Verification against the database

static int
s_cmp_acked (const void *a, const void *b)
{
    uint64_t x = ((const acked_t *) a)->id, y = ((const acked_t *) b)->id;
    return x < y ? -1 : x > y;
}

typedef struct {
    uint64_t id;
    bool done;
    int64_t rows, distinct;
} dbrow_t;

static int
s_cmp_dbrow (const void *a, const void *b)
{
    uint64_t x = ((const dbrow_t *) a)->id, y = ((const dbrow_t *) b)->id;
    return x < y ? -1 : x > y;
}

//  lost: acked but not 'done', or fewer match rows than episodes sent.
//  doubled: acked twice, more match rows than episodes, a repeated
//  episode, or (counted by the caller) an agent handed out twice at once.
//  An integer from one SQL query on db, or dflt when there is no row.
static int64_t
s_db_int (sqlite3 *db, const char *sql, int64_t dflt)
{
    sqlite3_stmt *st = NULL;
    int64_t v = dflt;
    if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW
    &&  sqlite3_column_type (st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    return v;
}

//  pruned: acked assignments whose rows pbtd's match retention
//  ([daemon] matches_keep) deleted. Those can only be checked by count:
//  no more than the results pbtd counted as pruned (meta results_pruned),
//  beyond that they are lost.
static int
s_verify_db (load_t *self, uint64_t *lost, uint64_t *doubled, uint64_t *unacked_done,
             uint64_t *pruned)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    dbrow_t *rows = NULL;
    size_t n_rows = 0, cap = 0;
    int rc = -1;
    *lost = *doubled = *unacked_done = *pruned = 0;
    if (sqlite3_open_v2 (self->db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf (stderr, "pbt-bench: cannot open %s: %s\n", self->db_path, sqlite3_errmsg (db));
        goto cleanup;
    }
    sqlite3_busy_timeout (db, 10000);
    int64_t results_pruned = s_db_int (db, "SELECT CAST(value AS INTEGER) FROM meta "
                                           "WHERE key = 'results_pruned'", 0);
    //  One pass over the per-result rows (every seat counts the result's
    //  episodes; a result applied twice would show twice as many).
    const char *sql =
        "SELECT a.id, a.state = 'done', COALESCE (r.n, 0), COALESCE (r.n, 0) FROM assignments a "
        "LEFT JOIN (SELECT assignment_id, SUM (episodes) / COUNT (*) AS n "
        "           FROM result_seats GROUP BY assignment_id) r ON r.assignment_id = a.id";
    if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf (stderr, "pbt-bench: cannot query %s: %s\n", self->db_path, sqlite3_errmsg (db));
        goto cleanup;
    }
    int step;
    while ((step = sqlite3_step (st)) == SQLITE_ROW) {
        if (n_rows == cap) {
            cap = cap ? cap * 2 : 4096;
            dbrow_t *v = realloc (rows, cap * sizeof *v);
            if (!v)
                goto cleanup;
            rows = v;
        }
        rows [n_rows++] = (dbrow_t) {
            (uint64_t) sqlite3_column_int64 (st, 0), sqlite3_column_int (st, 1) != 0,
            sqlite3_column_int64 (st, 2), sqlite3_column_int64 (st, 3)
        };
    }
    if (step != SQLITE_DONE) {
        fprintf (stderr, "pbt-bench: query failed: %s\n", sqlite3_errmsg (db));
        goto cleanup;
    }
    if (n_rows > 0)
        qsort (rows, n_rows, sizeof *rows, s_cmp_dbrow);
    if (self->n_acked > 0)
        qsort (self->acked, self->n_acked, sizeof *self->acked, s_cmp_acked);
    for (size_t k = 0; k < self->n_acked; k++) {
        const acked_t *a = &self->acked [k];
        if (k > 0 && self->acked [k - 1].id == a->id) {
            (*doubled)++;
            continue;
        }
        dbrow_t key = { .id = a->id };
        const dbrow_t *r = n_rows ? bsearch (&key, rows, n_rows, sizeof *rows, s_cmp_dbrow) : NULL;
        if (!r && (int64_t) *pruned < results_pruned)
            (*pruned)++;
        else
        if (!r || !r->done || r->rows < a->episodes)
            (*lost)++;
        else
        if (r->rows > a->episodes || r->distinct != r->rows)
            (*doubled)++;
    }
    for (size_t k = 0; k < n_rows; k++) {
        if (!rows [k].done)
            continue;
        acked_t key = { .id = rows [k].id };
        if (self->n_acked == 0 || !bsearch (&key, self->acked, self->n_acked, sizeof *self->acked, s_cmp_acked))
            (*unacked_done)++;
    }
    rc = 0;
cleanup:
    sqlite3_finalize (st);
    sqlite3_close (db);
    free (rows);
    return rc;
}

//  --------------------------------------------------------------------
//  The run

static int
s_open_workers (load_t *self)
{
    int n = self->o.workers;
    self->w = calloc ((size_t) (n ? n : 1), sizeof *self->w);
    self->trainq = calloc ((size_t) (n ? n : 1), sizeof *self->trainq);
    if (!self->w || !self->trainq)
        return -1;
    int linger = 0;
    int64_t maxsize = PROTO_MAX_FRAME;
    for (int i = 0; i < n; i++) {
        void *s = zmq_socket (self->ctx, ZMQ_DEALER);
        if (!s) {
            fprintf (stderr, "pbt-bench: socket %d: %s\n", i, zmq_strerror (errno));
            return -1;
        }
        self->w [i].sock = s;
        zmq_setsockopt (s, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt (s, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
        if (zmq_connect (s, self->wep) != 0) {
            fprintf (stderr, "pbt-bench: connect %s: %s\n", self->wep, zmq_strerror (errno));
            return -1;
        }
    }
    return 0;
}

//  Everyone idle: nothing in flight, nothing parked.
static bool
s_all_idle (load_t *self)
{
    for (int i = 0; i < self->o.workers; i++)
        if (self->w [i].state != W_IDLE && self->w [i].state != W_HELLO)
            return false;
    return true;
}

static int
s_count_state (load_t *self, wstate_t state)
{
    int n = 0;
    for (int i = 0; i < self->o.workers; i++)
        n += self->w [i].state == state;
    return n;
}

static void
s_begin_window (load_t *self)
{
    self->measuring = true;
    self->rss_start = s_rss_mb (self->pid);
    self->cpu_start = s_cpu_s (self->pid);
    self->self_cpu_start = s_self_cpu_s ();
}

static void
s_end_window (load_t *self)
{
    self->rss_end = s_rss_mb (self->pid);
    self->cpu_end = s_cpu_s (self->pid);
    self->self_cpu_end = s_self_cpu_s ();
    char wal [PATH_MAX + 32];
    snprintf (wal, sizeof wal, "%s-wal", self->db_path);
    self->db_mb = s_file_mb (self->db_path);
    self->wal_mb = s_file_mb (wal);
    self->states_mb = s_dir_mb (self->db_path);
    self->draining = true;
}

static int
s_loop (load_t *self)
{
    int n = self->o.workers;
    zmq_pollitem_t *items = calloc ((size_t) n + 1, sizeof *items);
    if (!items)
        return -1;
    for (int i = 0; i < n; i++)
        items [i] = (zmq_pollitem_t) { self->w [i].sock, 0, ZMQ_POLLIN, 0 };
    items [n] = (zmq_pollitem_t) { self->ctl, 0, ZMQ_POLLIN, 0 };
    for (int i = 0; i < n; i++)
        s_send_hello (self, i);

    int64_t drain_deadline = 0, next_scan = 0, next_rss = 0;
    int64_t next_progress = self->o.progress_s > 0 ? self->t_warm : INT64_MAX;
    uint64_t progress_results = 0;
    int rc = 0;
    while (true) {
        int64_t now = s_now_us ();
        if (!self->measuring && now >= self->t_warm)
            s_begin_window (self);
        if (!self->draining && now >= self->t_end) {
            s_end_window (self);
            drain_deadline = now + (int64_t) self->o.drain_s * 1000000;
            for (int i = 0; i < n; i++)
                if (self->w [i].state == W_HELLO)
                    self->w [i].state = W_IDLE;
        }
        if (self->draining && (s_all_idle (self) || now >= drain_deadline))
            break;
        //  Training timers, in due order.
        while (self->tq_len > 0) {
            int i = self->trainq [self->tq_head];
            if (self->w [i].due > now)
                break;
            self->tq_head = (self->tq_head + 1) % n;
            self->tq_len--;
            if (self->w [i].state == W_TRAIN)
                s_send_result (self, i);
        }
        //  Slow timers: heartbeats, retries, RSS.
        if (now >= next_scan) {
            next_scan = now + 20000;
            for (int i = 0; i < n; i++) {
                sim_worker_t *w = &self->w [i];
                if (w->state == W_TRAIN && now >= w->next_hb) {
                    proto_msg_t hb = { .type = PROTO_HEARTBEAT };
                    hb.u.heartbeat.assignment_id = w->assign.u.assign.assignment_id;
                    s_send (self, w->sock, &hb);
                    w->next_hb = now + (int64_t) self->heartbeat_ms * 1000;
                    self->heartbeats++;
                }
                else
                if (w->state == W_HELLO && !self->draining && now >= w->t_retry)
                    s_send_hello (self, i);
                else
                if (w->state == W_WAIT && w->t_retry && now >= w->t_retry)
                    s_send_request (self, i);
            }
            if (!s_pbtd_alive (self)) {
                rc = -1;
                break;
            }
        }
        if (now >= next_progress && !self->draining) {
            //  One line per interval, to show RSS staying flat on long runs.
            //  ...and the database (file + WAL) staying bounded.
            double rss = s_rss_mb (self->pid);
            char wal [PATH_MAX + 32];
            snprintf (wal, sizeof wal, "%s-wal", self->db_path);
            printf ("progress t=%.0f results=%" PRIu64 " results_per_s=%.1f rss_mb=%.1f "
                    "db_file_mb=%.1f wal_mb=%.1f states_mb=%.1f\n",
                    (double) (now - self->t_warm) / 1e6, self->results_total,
                    (double) (self->results_total - progress_results) / self->o.progress_s, rss,
                    s_file_mb (self->db_path), s_file_mb (wal), s_dir_mb (self->db_path));
            fflush (stdout);
            progress_results = self->results_total;
            next_progress = now + (int64_t) self->o.progress_s * 1000000;
        }
        if (now >= next_rss) {
            next_rss = now + 1000000;
            double rss = s_rss_mb (self->pid);
            if (rss > self->rss_max)
                self->rss_max = rss;
        }
        if (self->status_every > 0 && !self->status_inflight && now >= self->status_next
        &&  now >= self->t_warm && !self->draining) {
            s_send_status (self);
            self->status_next = now + self->status_every;
        }
        int64_t wake = next_scan;
        if (self->tq_len > 0 && self->w [self->trainq [self->tq_head]].due < wake)
            wake = self->w [self->trainq [self->tq_head]].due;
        int timeout = (int) ((wake - now + 999) / 1000);
        if (timeout < 0)
            timeout = 0;
        int got = zmq_poll (items, n + 1, timeout);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf (stderr, "pbt-bench: zmq_poll: %s\n", zmq_strerror (errno));
            rc = -1;
            break;
        }
        for (int i = 0; i < n && got > 0; i++)
            if (items [i].revents & ZMQ_POLLIN) {
                got--;
                s_drain_socket (self, i);
            }
        if (items [n].revents & ZMQ_POLLIN) {
            if (s_recv_status (self, NULL, NULL) == 1)
                s_push (&self->status_ms, self->status_rtt_ms);
        }
    }
    free (items);
    return rc;
}

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: pbt-bench load [options]\n"
        "  --workers N          simulated workers (default 32)\n"
        "  --seconds S          measured window (default 10)\n"
        "  --warmup S           unmeasured start (default 2)\n"
        "  --state-kib K        params+adam_m+adam_v per agent, KiB (default 64)\n"
        "  --population P       agents (default 16)\n"
        "  --status-population P  alias of --population that defaults --workers to 0,\n"
        "                       to time status against a large idle population\n"
        "  --train-ms T         simulated training time per assignment (default 0)\n"
        "  --episodes E         fake episodes per result (default 4)\n"
        "  --lease-ms L         pbtd lease (default 10000; heartbeats every L/4)\n"
        "  --status-calls C     status round trips timed over the window (default 20)\n"
        "  --progress S         print results and pbtd's RSS every S seconds\n"
        "  --drain S            seconds allowed to finish outstanding work (default 20)\n"
        "  --log-level L        pbtd log level (default warn)\n"
        "  --tmpdir DIR         where the temporary directory goes (default /tmp;\n"
        "                       /dev/shm takes the disk out of the picture)\n"
        "  --pbtd PATH          pbtd binary (default <dir of pbt-bench>/../daemon/pbtd)\n"
        "  --matches-keep N     pbtd's [daemon] matches_keep (match rows kept; 0 = all;\n"
        "                       default: pbtd's); acked results whose rows retention\n"
        "                       deleted are counted as pruned_by_retention, not lost\n"
        "  --episode-rows       pbtd's [daemon] episode_rows = true (one row per episode)\n"
        "  --keep               keep the temporary directory (database, pbtd.log)\n"
        "Prints key=value figures; exits 0 only if lost=0 doubled=0 stuck_busy=0 errors=0\n"
        "bad_frames=0 and pbtd stopped cleanly (pbtd_exit=0).\n");
}

static int
s_parse (opts_t *o, int argc, char **argv)
{
    static struct option longs [] = {
        { "workers", required_argument, 0, 'w' }, { "seconds", required_argument, 0, 's' },
        { "warmup", required_argument, 0, 'W' }, { "state-kib", required_argument, 0, 'k' },
        { "population", required_argument, 0, 'p' }, { "status-population", required_argument, 0, 'P' },
        { "train-ms", required_argument, 0, 't' }, { "episodes", required_argument, 0, 'e' },
        { "lease-ms", required_argument, 0, 'l' }, { "status-calls", required_argument, 0, 'c' },
        { "drain", required_argument, 0, 'd' }, { "log-level", required_argument, 0, 'L' },
        { "pbtd", required_argument, 0, 'b' }, { "tmpdir", required_argument, 0, 'T' },
        { "progress", required_argument, 0, 'g' }, { "keep", no_argument, 0, 'K' },
        { "matches-keep", required_argument, 0, 'M' }, { "episode-rows", no_argument, 0, 'R' },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 }
    };
    *o = (opts_t) { .workers = -1, .seconds = 10, .warmup = 2, .state_kib = 64, .population = 16,
                    .episodes = 4, .lease_ms = 10000, .drain_s = 20, .status_calls = 20,
                    .log_level = "warn", .tmpdir = "/tmp", .matches_keep = -1 };
    bool status_mode = false;
    optind = 1;
    int c;
    while ((c = getopt_long (argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
            case 'w': o->workers = atoi (optarg); break;
            case 's': o->seconds = atof (optarg); break;
            case 'W': o->warmup = atof (optarg); break;
            case 'k': o->state_kib = atof (optarg); break;
            case 'P': status_mode = true; /* fall through */
            case 'p': o->population = atoi (optarg); break;
            case 't': o->train_ms = atoi (optarg); break;
            case 'e': o->episodes = atoi (optarg); break;
            case 'l': o->lease_ms = atoi (optarg); break;
            case 'c': o->status_calls = atoi (optarg); break;
            case 'd': o->drain_s = atoi (optarg); break;
            case 'L': o->log_level = optarg; break;
            case 'b': o->pbtd = optarg; break;
            case 'T': o->tmpdir = optarg; break;
            case 'g': o->progress_s = atoi (optarg); break;
            case 'K': o->keep = true; break;
            case 'M': o->matches_keep = atoll (optarg); break;
            case 'R': o->episode_rows = true; break;
            case 'h': s_usage (stdout); return 1;
            default: s_usage (stderr); return -1;
        }
    }
    if (o->workers < 0)
        o->workers = status_mode ? 0 : 32;
    if (optind != argc || o->workers > 100000 || o->seconds <= 0 || o->warmup < 0
    ||  o->state_kib <= 0 || o->population < 2 || o->train_ms < 0 || o->episodes < 1
    ||  o->episodes > 100000 || o->lease_ms < 100 || o->status_calls < 0 || o->drain_s < 1) {
        fprintf (stderr, "pbt-bench load: bad arguments\n");
        s_usage (stderr);
        return -1;
    }
    return 0;
}

int
bench_load_main (int argc, char **argv)
{
    load_t *self = calloc (1, sizeof *self);
    if (!self)
        return 1;
    int rc = s_parse (&self->o, argc, argv);
    if (rc != 0) {
        free (self);
        return rc > 0 ? 0 : 2;
    }
    int exit_code = 1;
    self->pid = -1;
    self->heartbeat_ms = 2000;
    self->rss_max = -1;
    rng_seed (&self->rng, (uint64_t) getpid ());
    //  A broken pipe to pbtd must not kill the benchmark.
    signal (SIGPIPE, SIG_IGN);

    if ((size_t) snprintf (self->dir, sizeof self->dir, "%s/pbt-load-XXXXXX", self->o.tmpdir)
        >= sizeof self->dir - 64) {
        fprintf (stderr, "pbt-bench: --tmpdir path too long\n");
        free (self);
        return 2;
    }
    if (!mkdtemp (self->dir)) {
        fprintf (stderr, "pbt-bench: mkdtemp: %s\n", strerror (errno));
        free (self);
        return 1;
    }
    snprintf (self->db_path, sizeof self->db_path, "%s/pbt.db", self->dir);
    snprintf (self->wep, sizeof self->wep, "ipc://%s/w.sock", self->dir);
    snprintf (self->cep, sizeof self->cep, "ipc://%s/c.sock", self->dir);
    printf ("dir=%s workers=%d population=%d state_kib=%.1f hidden=%d train_ms=%d episodes=%d seconds=%g\n",
            self->dir, self->o.workers, self->o.population,
            12.0 * (12.0 * s_hidden_for (self->o.state_kib) + 4) / 1024.0,
            s_hidden_for (self->o.state_kib), self->o.train_ms, self->o.episodes, self->o.seconds);
    fflush (stdout);

    uint64_t lost = 0, doubled = 0, unacked_done = 0, pruned = 0;
    int stuck_busy = -1, pbtd_exit = -1;
    bool verified = false;
    int busy = -1, agents = -1;
    double sim_cpu_pct = 0;
    int parked_left = 0, inflight_left = 0;

    self->ctx = zmq_ctx_new ();
    if (!self->ctx)
        goto cleanup;
    self->ctl = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->ctl)
        goto cleanup;
    int linger = 0;
    zmq_setsockopt (self->ctl, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect (self->ctl, self->cep) != 0)
        goto cleanup;
    if (s_start_pbtd (self) != 0)
        goto cleanup;

    //  pbtd is up when it answers status (creating a big population takes a while).
    int64_t t0 = s_now_us ();
    double up_ms = s_status_call (self, 120000, &busy, &agents);
    if (up_ms < 0) {
        fprintf (stderr, "pbt-bench: pbtd did not answer status; see %s/pbtd.log\n", self->dir);
        goto cleanup;
    }
    printf ("startup_ms=%.0f agents=%d rss_idle_mb=%.1f\n",
            (double) (s_now_us () - t0) / 1000.0, agents, s_rss_mb (self->pid));
    fflush (stdout);

    if (s_open_workers (self) != 0)
        goto cleanup;
    self->t_start = s_now_us ();
    self->t_warm = self->t_start + (int64_t) (self->o.warmup * 1e6);
    self->t_end = self->t_warm + (int64_t) (self->o.seconds * 1e6);
    self->status_every = self->o.status_calls > 0
                       ? (int64_t) (self->o.seconds * 1e6 / self->o.status_calls) : 0;
    self->status_next = self->t_warm;
    if (s_loop (self) != 0)
        goto cleanup;
    parked_left = s_count_state (self, W_WAIT);
    inflight_left = s_count_state (self, W_TRAIN) + s_count_state (self, W_ACK);

    double window = self->o.seconds;
    sim_cpu_pct = 100.0 * (self->self_cpu_end - self->self_cpu_start) / window;
    double pbtd_cpu_pct = 100.0 * (self->cpu_end - self->cpu_start) / window;
    printf ("results=%" PRIu64 " results_window=%" PRIu64 " results_per_s=%.1f\n",
            self->results_total, self->results_window, (double) self->results_window / window);
    printf ("p50_ms=%.3f p99_ms=%.3f max_ms=%.3f assign_samples=%zu\n",
            s_pct (&self->assign_ms, 50), s_pct (&self->assign_ms, 99),
            s_pct (&self->assign_ms, 100), self->assign_ms.n);
    printf ("reply_p50_ms=%.3f reply_p99_ms=%.3f reply_max_ms=%.3f\n",
            s_pct (&self->reply_ms, 50), s_pct (&self->reply_ms, 99), s_pct (&self->reply_ms, 100));
    printf ("free_to_assign_p50_ms=%.3f free_to_assign_p99_ms=%.3f free_samples=%zu\n",
            s_pct (&self->free_ms, 50), s_pct (&self->free_ms, 99), self->free_ms.n);
    printf ("status_ms_p50=%.3f status_ms_p99=%.3f status_calls=%zu\n",
            s_pct (&self->status_ms, 50), s_pct (&self->status_ms, 99), self->status_ms.n);
    printf ("rss_start_mb=%.1f rss_mb=%.1f rss_max_mb=%.1f db_mb=%.1f db_file_mb=%.1f wal_mb=%.1f "
            "states_mb=%.1f\n", self->rss_start, self->rss_end, self->rss_max,
            self->db_mb + self->wal_mb + self->states_mb, self->db_mb, self->wal_mb,
            self->states_mb);
    printf ("pbtd_cpu_pct=%.0f sim_cpu_pct=%.0f\n", pbtd_cpu_pct, sim_cpu_pct);
    fflush (stdout);

    //  Nothing may stay busy once every worker has finished. If some
    //  requests stayed parked past the drain, their leases must lapse.
    for (int i = 0; i < self->o.workers; i++)
        if (self->w [i].sock) {
            zmq_close (self->w [i].sock);
            self->w [i].sock = NULL;
        }
    int64_t busy_deadline = s_now_us () + (int64_t) (parked_left || inflight_left
                                                     ? self->o.lease_ms + 5000 : 3000) * 1000;
    while (true) {
        if (s_status_call (self, 10000, &busy, &agents) < 0) {
            fprintf (stderr, "pbt-bench: final status failed\n");
            break;
        }
        stuck_busy = busy;
        if (busy == 0 || s_now_us () > busy_deadline)
            break;
        usleep (200000);
    }
    if (self->turn_n > 0)
        printf ("pbtd_turnaround_p50_ms=%.3f pbtd_turnaround_p99_ms=%.3f pbtd_turnaround_max_ms=%.3f "
                "turnaround_samples=%" PRId64 "\n", self->turn_p50, self->turn_p99, self->turn_max,
                self->turn_n);
    pbtd_exit = s_stop_pbtd (self);
    if (s_verify_db (self, &lost, &doubled, &unacked_done, &pruned) == 0)
        verified = true;
    doubled += self->double_assigned;
    printf ("errors=%" PRIu64, self->errors);
    for (int c = 1; c <= PROTO_E_PAUSED; c++)
        if (self->error_codes [c])
            printf (" error_%s=%" PRIu64, proto_code_name ((proto_code_t) c), self->error_codes [c]);
    printf (" not_applied=%" PRIu64 " unexpected=%" PRIu64 " bad_frames=%" PRIu64
            " send_failed=%" PRIu64 " heartbeats=%" PRIu64 "\n",
            self->not_applied, self->unexpected, self->bad_frames, self->send_failed, self->heartbeats);
    printf ("parked_at_end=%d inflight_at_end=%d unacked_done=%" PRIu64 " double_assigned=%" PRIu64
            " pbtd_exit=%d\n", parked_left, inflight_left, unacked_done, self->double_assigned, pbtd_exit);
    printf ("lost=%" PRIu64 " doubled=%" PRIu64 " stuck_busy=%d verified=%d "
            "pruned_by_retention=%" PRIu64 "\n", lost, doubled, stuck_busy, verified, pruned);
    if (verified && lost == 0 && doubled == 0 && stuck_busy == 0 && self->errors == 0
    &&  self->bad_frames == 0 && pbtd_exit == 0)
        exit_code = 0;

cleanup:
    if (self->pid > 0)
        s_stop_pbtd (self);
    for (int i = 0; self->w && i < self->o.workers; i++) {
        if (self->w [i].sock)
            zmq_close (self->w [i].sock);
        proto_msg_clear (&self->w [i].assign);
    }
    if (self->ctl)
        zmq_close (self->ctl);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->o.keep || exit_code != 0)
        fprintf (stderr, "pbt-bench: kept %s\n", self->dir);
    else
        nftw (self->dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free (self->w);
    free (self->trainq);
    free (self->held);
    free (self->released_at);
    free (self->acked);
    free (self->assign_ms.v);
    free (self->reply_ms.v);
    free (self->free_ms.v);
    free (self->status_ms.v);
    free (self);
    return exit_code;
}
