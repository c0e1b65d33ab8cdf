/*  pbt-worker: a stateless worker.

    It connects a DEALER socket to pbtd, says hello, asks for work, plays
    each assignment with match_run (all the compute lives there), heartbeats
    while it trains, and sends back the result. Between assignments it holds
    nothing but results it is still trying to deliver and assignments it
    has not started, so pbtd or the worker can be restarted at any moment.
    The session follows the state machine in proto/PROTOCOL.md.

    Pipelined: it may hold up to welcome.max_held assignments (playing one,
    owing the results of others, the rest waiting), and asks for the next
    one as soon as it holds fewer, so the next match is usually in hand
    when one ends and the cores never wait for an ack or an assign. With
    max_held 1 (a pbtd that does not say) this is stop-and-wait.
*/
#include <czmq.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "log.h"
#include "match.h"
#include "pbt_version.h"
#include "proto.h"
#include "wconfig.h"

#define W_MAX_HELD PROTO_MAX_RETURNED

typedef enum {
    W_EXPECT_WELCOME,
    W_READY,                        // welcomed: requests and results may flow
} wstate_t;

//  A result sent and not yet answered.
typedef struct {
    uint8_t *buf;
    size_t len;
    uint64_t id;
    int64_t resend_at;              // zclock_mono
} owed_t;

typedef struct {
    zsock_t *sock;
    wconfig_t cfg;
    wstate_t state;
    uint32_t heartbeat_ms;
    uint32_t lease_ms;
    uint32_t max_held;              // from welcome (1 if pbtd does not say)
    int64_t hello_at;               // resend hello at (EXPECT_WELCOME)
    bool requested;                 // a request is outstanding
    int64_t request_at;             // resend it at
    bool over_limit;                // pbtd says we hold enough: ask after the next resolution
    //  Held: received and not started (FIFO), playing, results owed.
    proto_msg_t *queued [W_MAX_HELD];
    uint32_t n_queued;
    uint64_t working_id;
    owed_t owed [W_MAX_HELD];
    uint32_t n_owed;
    int64_t next_heartbeat;
    bool lease_lost;
    uint64_t done;                  // assignments delivered
    //  Duty cycle counters (sent in heartbeats and results).
    int64_t started_ms;
    uint64_t busy_ms;               // in match_run, matches finished or abandoned
    int64_t work_started_ms;        // the running match's start, 0 if none
    //  Leaving
    uint64_t abandoned_id;
    bool bye_sent;
    bool bye_acked;                 // answered: ack, or an error about no assignment
    bool refused;                   // pbtd trains a game this worker does not have
} worker_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int sig)
{
    (void) sig;
    s_stop = 1;
}

static uint32_t
s_held (const worker_t *self)
{
    return self->n_queued + self->n_owed + (self->working_id != 0);
}

static proto_duty_t
s_duty (const worker_t *self)
{
    int64_t now = zclock_mono ();
    proto_duty_t d = { .busy_ms = self->busy_ms };
    if (self->work_started_ms)
        d.busy_ms += (uint64_t) (now - self->work_started_ms);
    d.uptime_ms = now > self->started_ms ? (uint64_t) (now - self->started_ms) : 1;
    if (d.busy_ms > d.uptime_ms)
        d.busy_ms = d.uptime_ms;
    return d;
}

static int
s_send (worker_t *self, const proto_msg_t *msg)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_encode (msg, &buf, &len) != 0) {
        log_error ("encode_failed", "type=%s", proto_type_name (msg->type));
        return -1;
    }
    zframe_t *frame = zframe_new (buf, len);
    free (buf);
    int rc = zframe_send (&frame, self->sock, ZFRAME_DONTWAIT);
    if (rc != 0) {
        zframe_destroy (&frame);
        log_warn ("send_failed", "type=%s", proto_type_name (msg->type));
    }
    return rc;
}

static int
s_send_raw (worker_t *self, const uint8_t *buf, size_t len)
{
    zframe_t *frame = zframe_new (buf, len);
    int rc = zframe_send (&frame, self->sock, ZFRAME_DONTWAIT);
    if (rc != 0)
        zframe_destroy (&frame);
    return rc;
}

static void
s_send_hello (worker_t *self)
{
    proto_msg_t msg = { .type = PROTO_HELLO };
    snprintf (msg.u.hello.worker_id, sizeof msg.u.hello.worker_id, "%s", self->cfg.worker_id);
    char host [256] = "";
    gethostname (host, sizeof host - 1);
    snprintf (msg.u.hello.host, sizeof msg.u.hello.host, "%s", host);
    msg.u.hello.pid = (uint32_t) getpid ();
    snprintf (msg.u.hello.software, sizeof msg.u.hello.software, "pbt-worker/%s", PBT_VERSION);
    //  The games this worker can play, each by the hash of its spec, so
    //  pbtd can refuse a worker with another build of its game.
    envspec_announce (&msg.u.hello);
    s_send (self, &msg);
    self->state = W_EXPECT_WELCOME;
    self->hello_at = zclock_mono () + self->cfg.reply_timeout_ms;
}

//  Ask for the next assignment if we may hold one more and none is asked
//  for yet. Not when leaving, nor past --max-assignments.
static void
s_maybe_request (worker_t *self)
{
    uint32_t held = s_held (self);
    if (s_stop || self->state != W_READY || self->requested || self->over_limit
    ||  held >= self->max_held
    ||  (self->cfg.max_assignments && self->done + held >= self->cfg.max_assignments))
        return;
    proto_msg_t msg = { .type = PROTO_REQUEST };
    s_send (self, &msg);
    self->requested = true;
    self->request_at = zclock_mono () + self->cfg.request_retry_ms;
}

//  Something we held is resolved: we may ask again.
static void
s_resolved (worker_t *self)
{
    self->over_limit = false;
    s_maybe_request (self);
}

static void
s_owed_send (worker_t *self, owed_t *o)
{
    s_send_raw (self, o->buf, o->len);
    o->resend_at = zclock_mono () + self->cfg.reply_timeout_ms;
}

static owed_t *
s_owed_find (worker_t *self, uint64_t id)
{
    for (uint32_t i = 0; i < self->n_owed; i++)
        if (self->owed [i].id == id)
            return &self->owed [i];
    return NULL;
}

static void
s_owed_drop (worker_t *self, owed_t *o)
{
    free (o->buf);
    *o = self->owed [--self->n_owed];
}

static int
s_queued_find (worker_t *self, uint64_t id)
{
    for (uint32_t i = 0; i < self->n_queued; i++)
        if (self->queued [i]->u.assign.assignment_id == id)
            return (int) i;
    return -1;
}

static void
s_queued_drop (worker_t *self, uint32_t i)
{
    proto_msg_clear (self->queued [i]);
    free (self->queued [i]);
    memmove (&self->queued [i], &self->queued [i + 1],
             (self->n_queued - i - 1) * sizeof self->queued [0]);
    self->n_queued--;
}

//  Receive and decode one message, waiting up to timeout_ms. Returns 1 with
//  msg filled, 0 on timeout, -1 on interrupt.
static int
s_recv (worker_t *self, proto_msg_t *msg, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (self->sock, NULL);
    void *which = zpoller_wait (poller, timeout_ms < 0 ? 0 : timeout_ms);
    bool terminated = zpoller_terminated (poller);
    zpoller_destroy (&poller);
    if (!which)
        return terminated || s_stop ? -1 : 0;
    zmsg_t *zmsg = zmsg_recv (self->sock);
    if (!zmsg)
        return -1;
    int rc = 0;
    if (zmsg_size (zmsg) != 1)
        log_warn ("bad_frame_count", "frames=%zu", zmsg_size (zmsg));
    else {
        zframe_t *frame = zmsg_first (zmsg);
        char err [PROTO_MAX_TEXT];
        proto_code_t code = proto_decode (zframe_data (frame), zframe_size (frame), msg, err, sizeof err);
        if (code == PROTO_OK)
            rc = 1;
        else
            log_warn ("bad_message", "code=%s error=\"%s\"", proto_code_name (code), err);
    }
    zmsg_destroy (&zmsg);
    return rc;
}

static void
s_on_welcome (worker_t *self, const proto_welcome_t *w)
{
    self->heartbeat_ms = w->heartbeat_ms ? w->heartbeat_ms : 2000;
    self->lease_ms = w->lease_ms;
    self->max_held = w->max_held ? w->max_held : 1;
    if (self->max_held > W_MAX_HELD)
        self->max_held = W_MAX_HELD;
    if (self->state != W_EXPECT_WELCOME)
        return;
    log_info ("welcomed", "heartbeat_ms=%u lease_ms=%u max_held=%u", self->heartbeat_ms,
              self->lease_ms, self->max_held);
    self->state = W_READY;
    //  Whatever pbtd did not answer before it (re)welcomed us goes again:
    //  results first, then a request if we may hold more.
    for (uint32_t i = 0; i < self->n_owed; i++)
        s_owed_send (self, &self->owed [i]);
    self->requested = false;
    self->over_limit = false;
    s_maybe_request (self);
}

static void
s_on_assign (worker_t *self, proto_msg_t *msg)
{
    self->requested = false;
    uint64_t id = msg->u.assign.assignment_id;
    if (s_held (self) >= self->max_held || s_queued_find (self, id) >= 0 || id == self->working_id) {
        //  More than we asked for: let its lease lapse (pbtd bounds this).
        log_warn ("unexpected_assign", "assignment=%" PRIu64 " held=%u", id, s_held (self));
        return;
    }
    proto_msg_t *q = malloc (sizeof *q);
    if (!q) {
        log_error ("out_of_memory", "assignment=%" PRIu64, id);
        return;
    }
    *q = *msg;                      // take its buffers
    memset (msg, 0, sizeof *msg);
    self->queued [self->n_queued++] = q;
    if (self->working_id)
        log_info ("assignment_queued", "assignment=%" PRIu64 " playing=%" PRIu64, id,
                  self->working_id);
    s_maybe_request (self);
}

static void
s_on_ack (worker_t *self, const proto_ack_t *ack)
{
    if (self->bye_sent && ack->assignment_id == 0)
        self->bye_acked = true;     // only bye is acknowledged without an id
    //  Only applied:true acknowledges a result: a heartbeat's ack
    //  (applied:false) names the same assignment.
    owed_t *o = ack->applied ? s_owed_find (self, ack->assignment_id) : NULL;
    if (!o)
        return;
    log_info ("result_acked", "assignment=%" PRIu64, o->id);
    s_owed_drop (self, o);
    self->done++;
    if (self->cfg.max_assignments && self->done >= self->cfg.max_assignments)
        s_stop = 1;
    s_resolved (self);
}

static void
s_on_error (worker_t *self, const proto_error_t *e)
{
    if (self->bye_sent && e->assignment_id == 0) {
        //  pbtd did not take the bye (e.g. it restarted and does not know
        //  us): the leases lapse at their deadlines.
        log_warn ("bye_refused", "code=%s message=\"%s\"", proto_code_name (e->code), e->message);
        self->bye_acked = true;
        return;
    }
    log_warn ("error_reply", "code=%s assignment=%" PRIu64 " message=\"%s\"",
              proto_code_name (e->code), e->assignment_id, e->message);
    if (e->code == PROTO_E_STATE) {
        //  pbtd restarted or forgot us: introduce ourselves again; leases
        //  survive a restart, so a running match goes on.
        s_send_hello (self);
        return;
    }
    if (e->code == PROTO_E_WRONG_ENV) {
        //  Another build of the game (or none): no retry can help.
        log_error ("refused", "code=wrong_env message=\"%s\" hint=\"install the "
                   "population's game plugin (PBT_ENV_PATH)\"", e->message);
        self->refused = true;
        s_stop = 1;
        return;
    }
    if (e->code == PROTO_E_OVER_LIMIT) {
        self->requested = false;
        self->over_limit = true;
        return;
    }
    if (e->assignment_id == 0)
        return;                     // about no assignment of ours (PROTOCOL.md §3.8)
    bool lease_gone = e->code == PROTO_E_EXPIRED || e->code == PROTO_E_UNKNOWN
                   || e->code == PROTO_E_NOT_YOURS;
    if (lease_gone && e->assignment_id == self->working_id) {
        log_warn ("lease_lost", "assignment=%" PRIu64 " code=%s", e->assignment_id,
                  proto_code_name (e->code));
        self->lease_lost = true;
        return;
    }
    int q = s_queued_find (self, e->assignment_id);
    if (lease_gone && q >= 0) {
        log_warn ("lease_lost", "assignment=%" PRIu64 " code=%s queued=1", e->assignment_id,
                  proto_code_name (e->code));
        s_queued_drop (self, (uint32_t) q);
        s_resolved (self);
        return;
    }
    owed_t *o = s_owed_find (self, e->assignment_id);
    if (!o || e->code == PROTO_E_INTERNAL || e->code == PROTO_E_PAUSED)
        //  Not ours, or pbtd could not commit now (disk trouble, shutting
        //  down): keep the result and send it again when its timer fires.
        return;
    //  Refused for good (duplicate: already applied; expired, stale,
    //  unknown, bad weights: pbtd will not take it): move on.
    s_owed_drop (self, o);
    if (e->code == PROTO_E_DUPLICATE)
        self->done++;
    s_resolved (self);
}

static void
s_handle (worker_t *self, proto_msg_t *msg)
{
    switch (msg->type) {
        case PROTO_WELCOME:
            s_on_welcome (self, &msg->u.welcome);
            break;
        case PROTO_ASSIGN:
            s_on_assign (self, msg);
            break;
        case PROTO_ACK:
            s_on_ack (self, &msg->u.ack);
            break;
        case PROTO_ERROR:
            s_on_error (self, &msg->u.error);
            break;
        default:
            log_warn ("unexpected_message", "type=%s", proto_type_name (msg->type));
            break;
    }
}

//  A fresh DEALER connected to pbtd, with CURVE if configured.
static int
s_socket_open (worker_t *self)
{
    zsock_destroy (&self->sock);
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        log_error ("socket_failed", "error=\"%s\"", zmq_strerror (zmq_errno ()));
        return -1;
    }
    zsock_set_linger (self->sock, 0);
    zsock_set_sndhwm (self->sock, 16);
    zsock_set_maxmsgsize (self->sock, PROTO_MAX_FRAME);
    zsock_set_reconnect_ivl (self->sock, 200);
    zsock_set_reconnect_ivl_max (self->sock, 2000);
    if (wconfig_apply_security (&self->cfg, self->sock) != 0
    ||  zsock_connect (self->sock, "%s", self->cfg.connect) != 0) {
        log_error ("connect_failed", "endpoint=%s", self->cfg.connect);
        zsock_destroy (&self->sock);
        return -1;
    }
    return 0;
}

//  Timers: hello, request and result resends.
static void
s_timers (worker_t *self)
{
    int64_t now = zclock_mono ();
    if (self->state == W_EXPECT_WELCOME && now >= self->hello_at) {
        //  libzmq does not reconnect after pbtd refuses our CURVE key,
        //  so a fresh socket is what lets a worker whose key is allowed
        //  later (or a pbtd restarted with new keys) get in.
        log_info ("no_welcome", "retrying=1");
        if (s_socket_open (self) != 0) {
            s_stop = 1;
            return;
        }
        s_send_hello (self);
        return;
    }
    if (self->state != W_READY)
        return;
    if (self->requested && now >= self->request_at) {
        self->requested = false;
        s_maybe_request (self);
    }
    for (uint32_t i = 0; i < self->n_owed; i++)
        if (now >= self->owed [i].resend_at) {
            log_info ("no_ack", "assignment=%" PRIu64 " retrying=1", self->owed [i].id);
            s_owed_send (self, &self->owed [i]);
        }
}

static int64_t
s_next_timer (const worker_t *self)
{
    int64_t next = zclock_mono () + 500;    // wake up now and then to notice signals
    if (self->state == W_EXPECT_WELCOME && self->hello_at < next)
        next = self->hello_at;
    if (self->state == W_READY && self->requested && self->request_at < next)
        next = self->request_at;
    for (uint32_t i = 0; self->state == W_READY && i < self->n_owed; i++)
        if (self->owed [i].resend_at < next)
            next = self->owed [i].resend_at;
    return next;
}

//  Every assignment held whose lease runs (playing or waiting) is
//  heartbeated; results owed are not (PROTOCOL.md §4).
static void
s_heartbeats (worker_t *self, uint64_t frames_done)
{
    proto_msg_t hb = { .type = PROTO_HEARTBEAT };
    hb.u.heartbeat.duty = s_duty (self);
    if (self->working_id) {
        hb.u.heartbeat.assignment_id = self->working_id;
        hb.u.heartbeat.frames_done = frames_done;
        s_send (self, &hb);
    }
    for (uint32_t i = 0; i < self->n_queued; i++) {
        hb.u.heartbeat.assignment_id = self->queued [i]->u.assign.assignment_id;
        hb.u.heartbeat.frames_done = 0;
        s_send (self, &hb);
    }
    self->next_heartbeat = zclock_mono () + self->heartbeat_ms;
}

static bool
s_progress (void *arg, uint64_t frames_done)
{
    worker_t *self = (worker_t *) arg;
    proto_msg_t msg;
    while (s_recv (self, &msg, 0) == 1) {
        s_handle (self, &msg);
        proto_msg_clear (&msg);
    }
    s_timers (self);
    if (self->lease_lost || s_stop)
        return false;
    if (zclock_mono () >= self->next_heartbeat)
        s_heartbeats (self, frames_done);
    return true;
}

//  Play the first queued assignment to its end; its result becomes owed.
static void
s_work (worker_t *self)
{
    proto_msg_t *msg = self->queued [0];
    memmove (&self->queued [0], &self->queued [1], (self->n_queued - 1) * sizeof self->queued [0]);
    self->n_queued--;
    proto_assign_t *assign = &msg->u.assign;
    self->working_id = assign->assignment_id;
    self->lease_lost = false;
    self->next_heartbeat = zclock_mono () + self->heartbeat_ms;
    self->work_started_ms = zclock_mono ();
    log_info ("assignment_started", "assignment=%" PRIu64 " env=%s seats=%u",
              assign->assignment_id, assign->env, assign->n_seats);

    proto_msg_t out = { .type = PROTO_RESULT };
    char err [256] = "";
    int rc = match_run (assign, &out.u.result, s_progress, self, err, sizeof err);
    self->busy_ms += (uint64_t) (zclock_mono () - self->work_started_ms);
    self->work_started_ms = 0;
    self->working_id = 0;
    if (rc != 0 && s_stop && !self->lease_lost)
        //  Stopped mid-match: bye hands it back so its agents are free at once.
        self->abandoned_id = assign->assignment_id;
    else
    if (rc != 0)
        //  Nothing to deliver: the lease lapses and pbtd hands the agents out again.
        log_warn ("assignment_failed", "assignment=%" PRIu64 " error=\"%s\"",
                  assign->assignment_id, err);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rc == 0) {
        out.u.result.assignment_id = assign->assignment_id;
        out.u.result.duty = s_duty (self);
        log_info ("assignment_finished", "assignment=%" PRIu64 " episodes=%u samples_per_s=%.0f "
                  "seconds=%.2f", assign->assignment_id, out.u.result.n_episodes,
                  out.u.result.samples_per_s, out.u.result.seconds);
        if (proto_encode (&out, &buf, &len) != 0)
            log_error ("encode_failed", "assignment=%" PRIu64, assign->assignment_id);
    }
    if (buf && self->n_owed < W_MAX_HELD) {
        owed_t *o = &self->owed [self->n_owed++];
        *o = (owed_t) { .buf = buf, .len = len, .id = assign->assignment_id };
        s_owed_send (self, o);
    }
    else
        free (buf);
    proto_msg_clear (&out);
    proto_msg_clear (msg);
    free (msg);
    if (!buf)
        s_resolved (self);          // nothing owed for it: one held fewer
}

//  Wait up to timeout_ms for replies, handling each, until done() holds.
static void
s_drain_until (worker_t *self, int timeout_ms, bool (*done) (worker_t *))
{
    int64_t until = zclock_mono () + timeout_ms;
    while (!done (self) && zclock_mono () < until) {
        proto_msg_t msg;
        //  A second signal only interrupts the wait; the deadline holds.
        if (s_recv (self, &msg, (int) (until - zclock_mono ())) == 1) {
            s_handle (self, &msg);
            proto_msg_clear (&msg);
        }
    }
}

static bool
s_nothing_owed (worker_t *self)
{
    return self->n_owed == 0;
}

static bool
s_bye_done (worker_t *self)
{
    return self->bye_acked;
}

//  Leaving (SIGTERM/SIGINT or --max-assignments reached): finished
//  results still owed are delivered first (one more try, up to the reply
//  timeout); then bye hands back the match abandoned mid-way and the
//  assignments not started, and withdraws a parked request, so pbtd frees
//  the agents now instead of at the lease's deadline and forgets this
//  worker. Waiting for bye's ack keeps the socket open until pbtd has it
//  (linger is 0).
static void
s_goodbye (worker_t *self)
{
    if (self->state == W_EXPECT_WELCOME)
        return;                 // pbtd does not know us (yet, or any more)
    if (self->n_owed) {
        //  A result sent less than T ago is still in flight: its answer
        //  is awaited, not asked for again (pbtd would only answer the
        //  repeat with duplicate). One whose answer is overdue goes again.
        int64_t now = zclock_mono ();
        uint32_t resent = 0;
        for (uint32_t i = 0; i < self->n_owed; i++)
            if (self->owed [i].resend_at <= now) {
                s_owed_send (self, &self->owed [i]);
                resent++;
            }
        log_info ("delivering_before_exit", "results=%u resent=%u", self->n_owed, resent);
        s_drain_until (self, self->cfg.reply_timeout_ms, s_nothing_owed);
    }
    proto_msg_t bye = { .type = PROTO_BYE };
    if (self->abandoned_id)
        bye.u.bye.returned [bye.u.bye.n_returned++] = self->abandoned_id;
    for (uint32_t i = 0; i < self->n_queued && bye.u.bye.n_returned < PROTO_MAX_RETURNED; i++)
        bye.u.bye.returned [bye.u.bye.n_returned++] = self->queued [i]->u.assign.assignment_id;
    if (s_send (self, &bye) != 0)
        return;
    self->bye_sent = true;
    s_drain_until (self, self->cfg.reply_timeout_ms, s_bye_done);
    char ids [PROTO_MAX_RETURNED * 24] = "0";
    size_t n = 0;
    for (uint32_t i = 0; i < bye.u.bye.n_returned && n < sizeof ids; i++)
        n += (size_t) snprintf (ids + n, sizeof ids - n, "%s%" PRIu64, i ? "," : "",
                                bye.u.bye.returned [i]);
    log_info (self->bye_acked ? "bye_answered" : "bye_unanswered", "returned=%s", ids);
}

static void
s_cleanup (worker_t *self)
{
    while (self->n_queued)
        s_queued_drop (self, 0);
    while (self->n_owed)
        s_owed_drop (self, &self->owed [0]);
    zsock_destroy (&self->sock);
    wconfig_clear (&self->cfg);
}

int
main (int argc, char **argv)
{
    worker_t self = { .heartbeat_ms = 2000, .max_held = 1 };
    log_set_component ("worker");
    zsys_init ();
    //  We handle signals ourselves so a match can stop between iterations.
    zsys_handler_set (NULL);
    signal (SIGINT, s_on_signal);
    signal (SIGTERM, s_on_signal);

    int rc = wconfig_parse (&self.cfg, argc, argv);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_set_level (self.cfg.log_level);
    self.started_ms = zclock_mono ();

    if (s_socket_open (&self) != 0)
        return 1;
    log_info ("started", "endpoint=%s worker_id=%s", self.cfg.connect, self.cfg.worker_id);
    s_send_hello (&self);

    while (!s_stop) {
        if (self.n_queued > 0) {
            s_work (&self);
            continue;
        }
        int64_t wait = s_next_timer (&self) - zclock_mono ();
        proto_msg_t msg;
        int got = s_recv (&self, &msg, (int) (wait > 0 ? wait : 0));
        if (got < 0)
            break;
        if (got == 1) {
            s_handle (&self, &msg);
            proto_msg_clear (&msg);
        }
        s_timers (&self);
    }
    s_goodbye (&self);
    log_info ("stopped", "assignments=%" PRIu64, self.done);
    s_cleanup (&self);
    return self.refused ? 1 : 0;
}
