/*  pbt-worker: a stateless worker.

    It connects a DEALER socket to pbtd, says hello, asks for work, plays
    each assignment with match_run (all the compute lives there), heartbeats
    while it trains, and sends back the result. Between assignments it holds
    nothing but the result it is still trying to deliver, so pbtd or the
    worker can be restarted at any moment. The session follows the state
    machine in proto/PROTOCOL.md.
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
#include "proto.h"
#include "wconfig.h"

typedef enum {
    W_EXPECT_WELCOME,
    W_WAITING,
    W_EXPECT_ACK,
} wstate_t;

typedef struct {
    zsock_t *sock;
    wconfig_t cfg;
    wstate_t state;
    uint32_t heartbeat_ms;
    uint32_t lease_ms;
    int64_t deadline;               // resend time for the current state
    uint8_t *pending;               // encoded result not yet acknowledged
    size_t pending_len;
    uint64_t pending_id;
    uint64_t done;                  // assignments delivered
    //  While working
    uint64_t working_id;
    int64_t next_heartbeat;
    bool lease_lost;
    bool refused;                   // pbtd trains a game this worker does not have
} worker_t;

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int sig)
{
    (void) sig;
    s_stop = 1;
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
    self->deadline = zclock_mono () + self->cfg.reply_timeout_ms;
}

static void
s_send_request (worker_t *self)
{
    proto_msg_t msg = { .type = PROTO_REQUEST };
    s_send (self, &msg);
    self->state = W_WAITING;
    self->deadline = zclock_mono () + self->cfg.request_retry_ms;
}

static void
s_send_pending (worker_t *self)
{
    s_send_raw (self, self->pending, self->pending_len);
    self->state = W_EXPECT_ACK;
    self->deadline = zclock_mono () + self->cfg.reply_timeout_ms;
}

static void
s_drop_pending (worker_t *self)
{
    free (self->pending);
    self->pending = NULL;
    self->pending_len = 0;
    self->pending_id = 0;
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

//  Messages that can arrive while a match runs: heartbeat acks, and errors
//  that tell us the lease is gone or pbtd forgot us.
static void
s_handle_while_working (worker_t *self, proto_msg_t *msg)
{
    if (msg->type == PROTO_ERROR) {
        proto_error_t *e = &msg->u.error;
        if (e->code == PROTO_E_EXPIRED || e->code == PROTO_E_UNKNOWN) {
            if (e->assignment_id == self->working_id) {
                log_warn ("lease_lost", "assignment=%" PRIu64 " code=%s", e->assignment_id,
                          proto_code_name (e->code));
                self->lease_lost = true;
            }
        }
        else
        if (e->code == PROTO_E_STATE)
            //  pbtd restarted: introduce ourselves again; the lease survives
            //  a restart, so the next heartbeat keeps it.
            s_send_hello (self);
        else
            log_warn ("error_reply", "code=%s message=\"%s\"", proto_code_name (e->code), e->message);
    }
    else
    if (msg->type == PROTO_WELCOME) {
        self->heartbeat_ms = msg->u.welcome.heartbeat_ms;
        self->lease_ms = msg->u.welcome.lease_ms;
    }
}

static bool
s_progress (void *arg, uint64_t frames_done)
{
    worker_t *self = (worker_t *) arg;
    proto_msg_t msg;
    while (s_recv (self, &msg, 0) == 1) {
        s_handle_while_working (self, &msg);
        proto_msg_clear (&msg);
    }
    if (self->lease_lost || s_stop)
        return false;
    if (zclock_mono () >= self->next_heartbeat) {
        proto_msg_t hb = { .type = PROTO_HEARTBEAT };
        hb.u.heartbeat.assignment_id = self->working_id;
        hb.u.heartbeat.frames_done = frames_done;
        s_send (self, &hb);
        self->next_heartbeat = zclock_mono () + self->heartbeat_ms;
    }
    return true;
}

static void
s_work (worker_t *self, proto_assign_t *assign)
{
    self->working_id = assign->assignment_id;
    self->lease_lost = false;
    self->next_heartbeat = zclock_mono () + self->heartbeat_ms;
    log_info ("assignment_started", "assignment=%" PRIu64 " env=%s seats=%u",
              assign->assignment_id, assign->env, assign->n_seats);

    proto_msg_t out = { .type = PROTO_RESULT };
    char err [256] = "";
    int rc = match_run (assign, &out.u.result, s_progress, self, err, sizeof err);
    self->working_id = 0;
    if (rc != 0) {
        //  Nothing to deliver: the lease lapses and pbtd hands the agents out again.
        log_warn ("assignment_failed", "assignment=%" PRIu64 " error=\"%s\"", assign->assignment_id, err);
        proto_msg_clear (&out);
        if (!s_stop)
            s_send_request (self);
        return;
    }
    out.u.result.assignment_id = assign->assignment_id;
    log_info ("assignment_finished", "assignment=%" PRIu64 " episodes=%u samples_per_s=%.0f seconds=%.2f",
              assign->assignment_id, out.u.result.n_episodes, out.u.result.samples_per_s,
              out.u.result.seconds);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_encode (&out, &buf, &len) != 0) {
        log_error ("encode_failed", "assignment=%" PRIu64, assign->assignment_id);
        proto_msg_clear (&out);
        s_send_request (self);
        return;
    }
    proto_msg_clear (&out);
    s_drop_pending (self);
    self->pending = buf;
    self->pending_len = len;
    self->pending_id = assign->assignment_id;
    s_send_pending (self);
}

static void
s_handle (worker_t *self, proto_msg_t *msg)
{
    switch (msg->type) {
        case PROTO_WELCOME:
            self->heartbeat_ms = msg->u.welcome.heartbeat_ms ? msg->u.welcome.heartbeat_ms : 2000;
            self->lease_ms = msg->u.welcome.lease_ms;
            if (self->state != W_EXPECT_WELCOME)
                break;
            log_info ("welcomed", "heartbeat_ms=%u lease_ms=%u", self->heartbeat_ms, self->lease_ms);
            if (self->pending)
                s_send_pending (self);
            else
                s_send_request (self);
            break;
        case PROTO_ASSIGN:
            if (self->state != W_WAITING) {
                //  Not expected (we still owe a result): let the lease lapse.
                log_warn ("unexpected_assign", "assignment=%" PRIu64, msg->u.assign.assignment_id);
                break;
            }
            s_work (self, &msg->u.assign);
            break;
        case PROTO_ACK:
            if (self->state == W_EXPECT_ACK && msg->u.ack.assignment_id == self->pending_id) {
                log_info ("result_acked", "assignment=%" PRIu64, self->pending_id);
                s_drop_pending (self);
                self->done++;
                if (self->cfg.max_assignments && self->done >= self->cfg.max_assignments)
                    s_stop = 1;
                else
                    s_send_request (self);
            }
            break;
        case PROTO_ERROR: {
            proto_error_t *e = &msg->u.error;
            log_warn ("error_reply", "code=%s assignment=%" PRIu64 " message=\"%s\"",
                      proto_code_name (e->code), e->assignment_id, e->message);
            if (e->code == PROTO_E_STATE) {
                s_send_hello (self);
                break;
            }
            if (e->code == PROTO_E_WRONG_ENV) {
                //  Another build of the game (or none): no retry can help.
                log_error ("refused", "code=wrong_env message=\"%s\" hint=\"install the "
                           "population's game plugin (PBT_ENV_PATH)\"", e->message);
                self->refused = true;
                s_stop = 1;
                break;
            }
            if (self->state == W_EXPECT_ACK && e->assignment_id == self->pending_id
            &&  (e->code == PROTO_E_INTERNAL || e->code == PROTO_E_PAUSED))
                //  pbtd could not commit now (disk trouble, shutting down):
                //  keep the result and send it again when the timeout fires.
                break;
            if (self->state == W_EXPECT_ACK && e->assignment_id == self->pending_id) {
                //  Refused for good (duplicate: already applied; expired, stale,
                //  unknown, bad weights: pbtd will not take it): move on.
                s_drop_pending (self);
                if (e->code == PROTO_E_DUPLICATE)
                    self->done++;
                s_send_request (self);
            }
            break;
        }
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

static void
s_timeout (worker_t *self)
{
    switch (self->state) {
        case W_EXPECT_WELCOME:
            //  libzmq does not reconnect after pbtd refuses our CURVE key,
            //  so a fresh socket is what lets a worker whose key is allowed
            //  later (or a pbtd restarted with new keys) get in.
            log_info ("no_welcome", "retrying=1");
            if (s_socket_open (self) != 0) {
                s_stop = 1;
                break;
            }
            s_send_hello (self);
            break;
        case W_WAITING:
            s_send_request (self);
            break;
        case W_EXPECT_ACK:
            log_info ("no_ack", "assignment=%" PRIu64 " retrying=1", self->pending_id);
            s_send_pending (self);
            break;
    }
}

int
main (int argc, char **argv)
{
    worker_t self = { .heartbeat_ms = 2000 };
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

    if (s_socket_open (&self) != 0)
        return 1;
    log_info ("started", "endpoint=%s worker_id=%s", self.cfg.connect, self.cfg.worker_id);
    s_send_hello (&self);

    while (!s_stop) {
        int64_t wait = self.deadline - zclock_mono ();
        if (wait > 500)
            wait = 500;         // wake up now and then to notice signals
        proto_msg_t msg;
        int got = s_recv (&self, &msg, (int) wait);
        if (got < 0)
            break;
        if (got == 1) {
            s_handle (&self, &msg);
            proto_msg_clear (&msg);
        }
        else
        if (zclock_mono () >= self.deadline)
            s_timeout (&self);
    }
    log_info ("stopped", "assignments=%" PRIu64, self.done);
    s_drop_pending (&self);
    zsock_destroy (&self.sock);
    wconfig_clear (&self.cfg);
    return self.refused ? 1 : 0;
}
