#include "ctl.h"

#include <czmq.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _ctl_t {
    zsock_t *sock;
    char endpoint [256];
    int timeout_ms;
};

const char *
ctl_default_endpoint (void)
{
    const char *env = getenv ("PBTCTL_ENDPOINT");
    if (env && *env)
        return env;
    //  EACCES: the socket's directory is closed to us; ctl_new says so.
    struct stat st;
    if (stat (CTL_INSTALLED_SOCKET, &st) == 0 || errno == EACCES)
        return "ipc://" CTL_INSTALLED_SOCKET;
    return CTL_DEFAULT_ENDPOINT;
}

ctl_t *
ctl_new (const char *endpoint, int timeout_ms)
{
    ctl_t *self = (ctl_t *) zmalloc (sizeof (ctl_t));
    if (!self)
        return NULL;
    snprintf (self->endpoint, sizeof self->endpoint, "%s", endpoint);
    self->timeout_ms = timeout_ms;
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock)
        goto fail;
    zsock_set_linger (self->sock, 0);
    zsock_set_maxmsgsize (self->sock, PROTO_MAX_FRAME);
    //  CURVE when pbtd's key is given: PBTCTL_SERVER_KEY holds the 40-char
    //  Z85 key or names pbtd's public certificate; PBTCTL_CERT names ours.
    const char *server_key = getenv ("PBTCTL_SERVER_KEY");
    const char *cert_path = getenv ("PBTCTL_CERT");
    if (server_key && *server_key) {
        char key [41] = "";
        if (strlen (server_key) == 40)
            snprintf (key, sizeof key, "%s", server_key);
        else {
            zcert_t *server = zcert_load (server_key);
            if (!server) {
                fprintf (stderr, "pbtctl: PBTCTL_SERVER_KEY: not a 40-character key nor a certificate file: %s\n",
                         server_key);
                goto fail;
            }
            snprintf (key, sizeof key, "%s", zcert_public_txt (server));
            zcert_destroy (&server);
        }
        zcert_t *cert = cert_path && *cert_path ? zcert_load (cert_path) : NULL;
        if (!cert) {
            fprintf (stderr, "pbtctl: CURVE needs our certificate too: set PBTCTL_CERT "
                             "(make one with pbtctl keygen)\n");
            goto fail;
        }
        zcert_apply (cert, self->sock);
        zcert_destroy (&cert);
        zsock_set_curve_serverkey (self->sock, key);
    }
    //  libzmq connects ipc:// in the background, so a socket we may not
    //  use would only show as a timeout: say why now.
    if (strncmp (endpoint, "ipc://", 6) == 0 && access (endpoint + 6, R_OK | W_OK) != 0
        && errno == EACCES) {
        fprintf (stderr, "pbtctl: %s: %s (the installed pbtd's socket is for root and group pbt)\n",
                 endpoint + 6, strerror (errno));
        goto fail;
    }
    if (zsock_connect (self->sock, "%s", endpoint) != 0) {
        fprintf (stderr, "pbtctl: cannot use endpoint '%s'\n", endpoint);
        goto fail;
    }
    return self;
fail:
    ctl_destroy (&self);
    return NULL;
}

void
ctl_destroy (ctl_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        ctl_t *self = *self_p;
        zsock_destroy (&self->sock);
        free (self);
        *self_p = NULL;
    }
}

int
ctl_call (ctl_t *self, const char *cmd, const uint8_t *args, size_t args_len, ctl_reply_t *reply)
{
    memset (reply, 0, sizeof *reply);
    proto_msg_t req = { .type = PROTO_CTL };
    snprintf (req.u.ctl.cmd, sizeof req.u.ctl.cmd, "%s", cmd);
    const char *token = getenv ("PBTCTL_TOKEN");
    if (token)
        snprintf (req.u.ctl.token, sizeof req.u.ctl.token, "%s", token);
    req.u.ctl.args = (uint8_t *) args;
    req.u.ctl.args_len = args_len;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_encode (&req, &buf, &len) != 0) {
        fprintf (stderr, "pbtctl: could not encode the '%s' request\n", cmd);
        return 1;
    }
    zframe_t *frame = zframe_new (buf, len);
    free (buf);
    if (zframe_send (&frame, self->sock, ZFRAME_DONTWAIT) != 0)
        zframe_destroy (&frame);

    zpoller_t *poller = zpoller_new (self->sock, NULL);
    void *which = zpoller_wait (poller, self->timeout_ms);
    zpoller_destroy (&poller);
    if (!which) {
        fprintf (stderr, "pbtctl: no reply from pbtd at %s within %d ms (is pbtd running?)\n",
                 self->endpoint, self->timeout_ms);
        return 3;
    }
    zmsg_t *zmsg = zmsg_recv (self->sock);
    if (!zmsg || zmsg_size (zmsg) != 1) {
        fprintf (stderr, "pbtctl: malformed reply from pbtd\n");
        zmsg_destroy (&zmsg);
        return 1;
    }
    zframe_t *f = zmsg_first (zmsg);
    char err [PROTO_MAX_TEXT];
    proto_code_t code = proto_decode (zframe_data (f), zframe_size (f), &reply->msg, err, sizeof err);
    zmsg_destroy (&zmsg);
    if (code != PROTO_OK) {
        fprintf (stderr, "pbtctl: undecodable reply from pbtd: %s\n", err);
        return 1;
    }
    if (reply->msg.type == PROTO_ERROR) {
        fprintf (stderr, "pbtctl: pbtd refused '%s': %s (%s)\n", cmd, reply->msg.u.error.message,
                 proto_code_name (reply->msg.u.error.code));
        ctl_reply_clear (reply);
        return 1;
    }
    if (reply->msg.type != PROTO_CTL_REPLY) {
        fprintf (stderr, "pbtctl: unexpected '%s' reply from pbtd\n", proto_type_name (reply->msg.type));
        ctl_reply_clear (reply);
        return 1;
    }
    if (!reply->msg.u.ctl_reply.ok) {
        fprintf (stderr, "pbtctl: %s: %s\n", cmd, reply->msg.u.ctl_reply.error);
        ctl_reply_clear (reply);
        return 1;
    }
    reply->body = reply->msg.u.ctl_reply.body;
    reply->body_len = reply->msg.u.ctl_reply.body_len;
    return 0;
}

void
ctl_reply_clear (ctl_reply_t *reply)
{
    proto_msg_clear (&reply->msg);
    reply->body = NULL;
    reply->body_len = 0;
}
