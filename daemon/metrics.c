/*  metrics: pbtd's Prometheus endpoint. See metrics.h and docs/metrics.md. */
#include "metrics.h"
#include "server_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "pbt_version.h"

//  Commit latency buckets, seconds: a group commit is one fsync, from well
//  under a millisecond (tmpfs, SSD) to seconds (a stalled disk).
static const double s_bounds [] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5
};
#define METRICS_BUCKETS (sizeof s_bounds / sizeof s_bounds [0])

//  Results per second: results counted at each publish, over the newest
//  METRICS_RATE_MS of them.
#define METRICS_RATE_POINTS 256
#define METRICS_RATE_MS     30000

//  A scraper gets this long to send its request and read the reply, and
//  at most this many connections are open at once.
#define METRICS_CONN_TIMEOUT_S 10
#define METRICS_CONN_LIMIT     16

struct _metrics_t {
    struct MHD_Daemon *httpd;
    char listen [128];
    double start_time;                      // wall clock, seconds since the epoch
    //  Owned by the reactor.
    uint64_t buckets [METRICS_BUCKETS + 1]; // per bucket (not cumulative), last = +Inf
    double commit_sum;                      // seconds
    uint64_t commit_count;
    uint64_t leases_expired;
    int64_t rate_t [METRICS_RATE_POINTS];   // zclock_mono ms
    uint64_t rate_results [METRICS_RATE_POINTS];
    uint32_t rate_head, rate_count;
    int64_t render_us;                      // what the previous metrics_publish took
    //  Shared with the HTTP thread, under mutex.
    pthread_mutex_t mutex;
    char *text;                             // the published snapshot, NULL before the first
    size_t text_len;
};

int
metrics_parse_listen (const char *text, struct sockaddr_storage *addr, char *why, size_t why_len)
{
    struct sockaddr_storage tmp;
    if (!addr)
        addr = &tmp;
    memset (addr, 0, sizeof *addr);
    char host [64];
    const char *colon = strrchr (text, ':');
    size_t hlen = colon ? (size_t) (colon - text) : 0;
    unsigned long port = 0;
    char *end = NULL;
    if (colon && colon [1] >= '0' && colon [1] <= '9') {
        errno = 0;
        port = strtoul (colon + 1, &end, 10);
        if (errno || *end)
            port = 0;
    }
    bool ok = colon && hlen > 0 && hlen < sizeof host && port >= 1 && port <= 65535;
    if (ok) {
        memcpy (host, text, hlen);
        host [hlen] = 0;
        if (host [0] == '[' && host [hlen - 1] == ']') {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *) addr;
            host [hlen - 1] = 0;
            a6->sin6_family = AF_INET6;
            a6->sin6_port = htons ((uint16_t) port);
            ok = inet_pton (AF_INET6, host + 1, &a6->sin6_addr) == 1;
        }
        else {
            struct sockaddr_in *a4 = (struct sockaddr_in *) addr;
            a4->sin_family = AF_INET;
            a4->sin_port = htons ((uint16_t) port);
            ok = inet_pton (AF_INET, host, &a4->sin_addr) == 1;
        }
    }
    if (!ok) {
        snprintf (why, why_len, "expected ADDRESS:PORT with a numeric IPv4 address or an IPv6 one "
                  "in brackets and a port in 1..65535, like 127.0.0.1:9556 or [::1]:9556, got '%s'", text);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  The HTTP thread

static enum MHD_Result
s_reply (struct MHD_Connection *conn, unsigned int status, const char *type, const char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer (len, (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header (resp, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response (conn, status, resp);
    MHD_destroy_response (resp);
    return rc;
}

static enum MHD_Result
s_on_request (void *cls, struct MHD_Connection *conn, const char *url, const char *method,
              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    (void) upload_data;
    (void) con_cls;
    metrics_t *self = (metrics_t *) cls;
    static const char *plain = "text/plain; charset=utf-8";
    if (*upload_data_size)
        return MHD_NO;          // we take no request bodies
    if (strcmp (method, "GET") && strcmp (method, "HEAD")) {
        static const char msg [] = "only GET /metrics\n";
        return s_reply (conn, MHD_HTTP_METHOD_NOT_ALLOWED, plain, msg, sizeof msg - 1);
    }
    if (strcmp (url, "/metrics")) {
        static const char msg [] = "not found: pbtd serves /metrics\n";
        return s_reply (conn, MHD_HTTP_NOT_FOUND, plain, msg, sizeof msg - 1);
    }
    //  MHD copies the text while we hold the lock; the reactor waits for
    //  at most that memcpy.
    pthread_mutex_lock (&self->mutex);
    enum MHD_Result rc;
    if (self->text)
        rc = s_reply (conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                      self->text, self->text_len);
    else {
        static const char msg [] = "pbtd is starting: no metrics yet\n";
        rc = s_reply (conn, MHD_HTTP_SERVICE_UNAVAILABLE, plain, msg, sizeof msg - 1);
    }
    pthread_mutex_unlock (&self->mutex);
    return rc;
}

//  Our own socket, so a failure says why (MHD_start_daemon only says NULL).
static int
s_listen_socket (const char *where, char *err, size_t err_len)
{
    struct sockaddr_storage addr;
    char why [256];
    if (metrics_parse_listen (where, &addr, why, sizeof why)) {
        snprintf (err, err_len, "[metrics] listen: %s", why);
        return -1;
    }
    socklen_t alen = addr.ss_family == AF_INET6 ? sizeof (struct sockaddr_in6) : sizeof (struct sockaddr_in);
    int fd = socket (addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0
    ||  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)
    ||  bind (fd, (struct sockaddr *) &addr, alen)
    ||  listen (fd, 64)) {
        snprintf (err, err_len, "[metrics] listen %s: cannot listen there: %s", where, strerror (errno));
        if (fd >= 0)
            close (fd);
        return -1;
    }
    return fd;
}

metrics_t *
metrics_new (const char *listen, char *err, size_t err_len)
{
    int fd = s_listen_socket (listen, err, err_len);
    if (fd < 0)
        return NULL;
    metrics_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_len, "out of memory");
        close (fd);
        return NULL;
    }
    pthread_mutex_init (&self->mutex, NULL);
    snprintf (self->listen, sizeof self->listen, "%s", listen);
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    self->start_time = (double) ts.tv_sec + ts.tv_nsec / 1e9;
    //  One internal thread polls every connection (no thread per client).
    self->httpd = MHD_start_daemon (MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
                                    s_on_request, self,
                                    MHD_OPTION_LISTEN_SOCKET, (MHD_socket) fd,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned int) METRICS_CONN_LIMIT,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) METRICS_CONN_TIMEOUT_S,
                                    MHD_OPTION_END);
    if (!self->httpd) {
        snprintf (err, err_len, "[metrics] listen %s: could not start the HTTP server thread", listen);
        close (fd);
        metrics_destroy (&self);
        return NULL;
    }
    log_info ("metrics_listening", "url=http://%s/metrics", listen);
    return self;
}

void
metrics_destroy (metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    metrics_t *self = *self_p;
    //  Joins the HTTP thread and closes the listening socket.
    if (self->httpd)
        MHD_stop_daemon (self->httpd);
    pthread_mutex_destroy (&self->mutex);
    free (self->text);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  The reactor side

void
metrics_observe_commit (metrics_t *self, int64_t usecs)
{
    if (!self)
        return;
    double s = usecs > 0 ? (double) usecs / 1e6 : 0;
    size_t b = 0;
    while (b < METRICS_BUCKETS && s > s_bounds [b])
        b++;
    self->buckets [b]++;
    self->commit_sum += s;
    self->commit_count++;
}

void
metrics_lease_expired (metrics_t *self)
{
    if (self)
        self->leases_expired++;
}

//  Results per second over the newest METRICS_RATE_MS of publishes.
static double
s_results_rate (metrics_t *self, int64_t now, uint64_t results)
{
    self->rate_t [self->rate_head] = now;
    self->rate_results [self->rate_head] = results;
    self->rate_head = (self->rate_head + 1) % METRICS_RATE_POINTS;
    if (self->rate_count < METRICS_RATE_POINTS)
        self->rate_count++;
    uint32_t oldest = (self->rate_head + METRICS_RATE_POINTS - 1) % METRICS_RATE_POINTS;
    for (uint32_t k = 1; k < self->rate_count; k++) {
        uint32_t i = (self->rate_head + METRICS_RATE_POINTS - 1 - k) % METRICS_RATE_POINTS;
        if (now - self->rate_t [i] > METRICS_RATE_MS)
            break;
        oldest = i;
    }
    int64_t dt = now - self->rate_t [oldest];
    return dt > 0 ? (double) (results - self->rate_results [oldest]) * 1000.0 / (double) dt : 0;
}

static uint64_t
s_file_bytes (const char *path)
{
    struct stat st;
    return stat (path, &st) == 0 ? (uint64_t) st.st_size : 0;
}

static void
s_family (FILE *f, const char *name, const char *type, const char *help)
{
    fprintf (f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
s_render_totals (metrics_t *self, server_t *server, FILE *f)
{
    s_family (f, "pbt_build_info", "gauge", "pbtd's version (the value is always 1).");
    fprintf (f, "pbt_build_info{version=\"%s\"} 1\n", PBT_VERSION);
    s_family (f, "process_start_time_seconds", "gauge", "Start time of pbtd since the Unix epoch in seconds.");
    fprintf (f, "process_start_time_seconds %.3f\n", self->start_time);
    s_family (f, "pbt_results_total", "counter", "Results applied (all time, from the database).");
    fprintf (f, "pbt_results_total %" PRIu64 "\n", server->results);
    s_family (f, "pbt_results_per_second", "gauge", "Results applied per second over the last 30 s.");
    fprintf (f, "pbt_results_per_second %.6g\n", s_results_rate (self, zclock_mono (), server->results));
    s_family (f, "pbt_samples_total", "counter", "Frames trained (all time).");
    fprintf (f, "pbt_samples_total %" PRIu64 "\n", server->samples);
    s_family (f, "pbt_samples_per_second", "gauge", "Frames trained per second over the last 30 s.");
    fprintf (f, "pbt_samples_per_second %.6g\n", server_samples_per_s (server));
    s_family (f, "pbt_evolutions_total", "counter", "Evolutions (all time).");
    fprintf (f, "pbt_evolutions_total %" PRIu64 "\n", server->evolutions);
    s_family (f, "pbt_commits_total", "counter", "Group commits (database transactions) since start.");
    fprintf (f, "pbt_commits_total %" PRIu64 "\n", server->batches);
    s_family (f, "pbt_commit_duration_seconds", "histogram", "Time to commit a group commit (one fsync).");
    uint64_t cum = 0;
    for (size_t b = 0; b <= METRICS_BUCKETS; b++) {
        cum += self->buckets [b];
        if (b < METRICS_BUCKETS)
            fprintf (f, "pbt_commit_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", s_bounds [b], cum);
        else
            fprintf (f, "pbt_commit_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    fprintf (f, "pbt_commit_duration_seconds_sum %.9f\npbt_commit_duration_seconds_count %" PRIu64 "\n",
             self->commit_sum, self->commit_count);
    s_family (f, "pbt_leases_in_flight", "gauge", "Assignments leased to workers and not yet done.");
    fprintf (f, "pbt_leases_in_flight %u\n", server_leases_in_flight (server));
    s_family (f, "pbt_leases_expired_total", "counter", "Leases that expired since start.");
    fprintf (f, "pbt_leases_expired_total %" PRIu64 "\n", self->leases_expired);
    s_family (f, "pbt_workers_connected", "gauge", "Workers that said hello and were heard from recently.");
    fprintf (f, "pbt_workers_connected %zu\n", zhashx_size (server->peers));
    s_family (f, "pbt_paused", "gauge", "1 while pbtd hands out no assignments (pbtctl pause).");
    fprintf (f, "pbt_paused %d\n", server->paused ? 1 : 0);
    char path [CONFIG_MAX_PATH + 8];
    snprintf (path, sizeof path, "%s-wal", server->cfg->db);
    s_family (f, "pbt_wal_bytes", "gauge", "Size of the SQLite write-ahead log.");
    fprintf (f, "pbt_wal_bytes %" PRIu64 "\n", s_file_bytes (path));
    s_family (f, "pbt_database_bytes", "gauge", "Size of the SQLite database file.");
    fprintf (f, "pbt_database_bytes %" PRIu64 "\n", s_file_bytes (server->cfg->db));
    s_family (f, "pbt_state_store_bytes", "gauge", "Bytes of training states in the state store's segments.");
    fprintf (f, "pbt_state_store_bytes %" PRIu64 "\n", db_store_bytes (server->db));
    s_family (f, "pbt_metrics_render_seconds", "gauge",
              "Reactor time the previous metrics snapshot took to render and publish.");
    fprintf (f, "pbt_metrics_render_seconds %.6f\n", (double) self->render_us / 1e6);
}

static void
s_render_agents (server_t *server, FILE *f)
{
    static const struct { const char *name, *type, *help; } fam [] = {
        { "pbt_agent_rating", "gauge", "The agent's Elo rating." },
        { "pbt_agent_frames_total", "counter", "Frames the agent has trained." },
        { "pbt_agent_matches_total", "counter", "Episodes the agent has played." },
        { "pbt_agent_generation", "gauge", "Evolutions of the agent so far." },
        { "pbt_agent_busy", "gauge", "1 while the agent is seated in a leased assignment." },
    };
    for (size_t k = 0; k < sizeof fam / sizeof fam [0]; k++) {
        s_family (f, fam [k].name, fam [k].type, fam [k].help);
        for (int i = 0; i < server->n_agents; i++) {
            const agent_t *a = &server->agents [i];
            fprintf (f, "%s{agent=\"agt_%" PRId64 "\"} ", fam [k].name, a->a.id);
            switch (k) {
                case 0: fprintf (f, "%.17g\n", a->a.rating); break;
                case 1: fprintf (f, "%" PRIu64 "\n", a->a.frames); break;
                case 2: fprintf (f, "%" PRIu64 "\n", a->a.matches); break;
                case 3: fprintf (f, "%" PRIu64 "\n", a->a.generation); break;
                default: fprintf (f, "%d\n", a->busy ? 1 : 0); break;
            }
        }
    }
}

void
metrics_publish (metrics_t *self, server_t *server)
{
    if (!self)
        return;
    int64_t start = zclock_usecs ();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream (&text, &len);
    if (!f) {
        log_warn ("metrics_render_failed", "why=\"out of memory\"");
        return;
    }
    s_render_totals (self, server, f);
    s_render_agents (server, f);
    if (fclose (f) != 0 || !text) {
        log_warn ("metrics_render_failed", "why=\"out of memory\"");
        free (text);
        return;
    }
    pthread_mutex_lock (&self->mutex);
    char *old = self->text;
    self->text = text;
    self->text_len = len;
    pthread_mutex_unlock (&self->mutex);
    free (old);
    self->render_us = zclock_usecs () - start;
}
