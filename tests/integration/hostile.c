/*  hostile: send malformed messages to a running pbtd's worker endpoint.

    usage: hostile ENDPOINT COUNT SEED

    Mixes random bytes, valid messages cut short or with bytes appended,
    wrong versions, unknown types, mistyped fields, containers that claim
    huge counts, and multipart messages. Every single-frame message must get
    an error reply naming the problem; the program counts the replies by
    code and exits 0 only if each one came back as an error with a message.
*/
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envspec.h"
#include "proto.h"
#include "rng.h"

static size_t
s_valid_hello (uint8_t *out, size_t cap)
{
    proto_msg_t msg = { .type = PROTO_HELLO };
    snprintf (msg.u.hello.worker_id, sizeof msg.u.hello.worker_id, "hostile");
    snprintf (msg.u.hello.host, sizeof msg.u.hello.host, "localhost");
    msg.u.hello.pid = 1;
    envspec_announce (&msg.u.hello);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (proto_encode (&msg, &buf, &len) != 0 || len > cap)
        return 0;
    memcpy (out, buf, len);
    free (buf);
    return len;
}

//  fixmap header + "v" + version + "type" + type string
static size_t
s_header (uint8_t *p, int entries, int version, const char *type)
{
    size_t n = 0;
    p [n++] = (uint8_t) (0x80 | entries);
    p [n++] = 0xa1; p [n++] = 'v';
    p [n++] = (uint8_t) version;
    p [n++] = 0xa4; memcpy (p + n, "type", 4); n += 4;
    size_t tl = strlen (type);
    p [n++] = (uint8_t) (0xa0 | tl);
    memcpy (p + n, type, tl);
    return n + tl;
}

int
main (int argc, char **argv)
{
    if (argc != 4) {
        fprintf (stderr, "usage: hostile ENDPOINT COUNT SEED\n");
        return 2;
    }
    int count = atoi (argv [2]);
    rng_t rng;
    rng_seed (&rng, strtoull (argv [3], NULL, 10));
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    zsock_set_linger (sock, 0);
    zsock_set_rcvtimeo (sock, 5000);
    if (zsock_connect (sock, "%s", argv [1]) != 0) {
        fprintf (stderr, "hostile: cannot connect to %s\n", argv [1]);
        return 2;
    }
    uint8_t valid [512];
    size_t valid_len = s_valid_hello (valid, sizeof valid);
    if (!valid_len) {
        fprintf (stderr, "hostile: could not encode a hello\n");
        return 2;
    }
    int replies = 0, errors = 0, multipart = 0, unanswered = 0;
    int by_code [32] = { 0 };
    for (int i = 0; i < count; i++) {
        uint8_t buf [1024];
        size_t len = 0;
        int kind = (int) rng_below (&rng, 9);
        switch (kind) {
            case 0:         // random bytes
                len = 1 + rng_below (&rng, 200);
                for (size_t k = 0; k < len; k++)
                    buf [k] = (uint8_t) rng_next (&rng);
                break;
            case 1:         // a valid message cut short
                len = 1 + rng_below (&rng, valid_len - 1);
                memcpy (buf, valid, len);
                break;
            case 2:         // a valid message with trailing bytes
                memcpy (buf, valid, valid_len);
                len = valid_len + 1 + rng_below (&rng, 8);
                for (size_t k = valid_len; k < len; k++)
                    buf [k] = (uint8_t) rng_next (&rng);
                break;
            case 3:         // wrong version
                len = s_header (buf, 2, 2 + (int) rng_below (&rng, 100), "hello");
                break;
            case 4:         // unknown type
                len = s_header (buf, 2, PROTO_VERSION, "gimme");
                break;
            case 5:         // heartbeat with a mistyped field
                len = s_header (buf, 3, PROTO_VERSION, "heartbeat");
                buf [len++] = 0xad; memcpy (buf + len, "assignment_id", 13); len += 13;
                buf [len++] = 0xa3; memcpy (buf + len, "abc", 3); len += 3;
                break;
            case 6:         // an array claiming 2^32-1 elements in a few bytes
                len = s_header (buf, 3, PROTO_VERSION, "result");
                buf [len++] = 0xa5; memcpy (buf + len, "seats", 5); len += 5;
                buf [len++] = 0xdd; buf [len++] = 0xff; buf [len++] = 0xff;
                buf [len++] = 0xff; buf [len++] = 0xff;
                break;
            case 7:         // a bin claiming 4 GiB
                len = s_header (buf, 3, PROTO_VERSION, "result");
                buf [len++] = 0xa6; memcpy (buf + len, "scores", 6); len += 6;
                buf [len++] = 0xc6; buf [len++] = 0xff; buf [len++] = 0xff;
                buf [len++] = 0xff; buf [len++] = 0xff;
                break;
            default: {      // two frames where one is expected
                zmsg_t *m = zmsg_new ();
                zmsg_addmem (m, valid, valid_len);
                zmsg_addmem (m, "x", 1);
                zmsg_send (&m, sock);
                multipart++;
                break;
            }
        }
        if (kind < 8)
            zmq_send (zsock_resolve (sock), buf, len, 0);
        zmsg_t *reply = zmsg_recv (sock);
        if (!reply) {
            unanswered++;
            continue;
        }
        replies++;
        zframe_t *f = zmsg_first (reply);
        proto_msg_t msg;
        char err [PROTO_MAX_TEXT];
        if (f && proto_decode (zframe_data (f), zframe_size (f), &msg, err, sizeof err) == PROTO_OK) {
            if (msg.type == PROTO_ERROR && msg.u.error.message [0]) {
                errors++;
                if (msg.u.error.code < 32)
                    by_code [msg.u.error.code]++;
            }
            proto_msg_clear (&msg);
        }
        zmsg_destroy (&reply);
    }
    printf ("sent=%d multipart=%d replies=%d errors=%d unanswered=%d\n",
            count, multipart, replies, errors, unanswered);
    for (int c = 0; c < 32; c++)
        if (by_code [c])
            printf ("code %s: %d\n", proto_code_name ((proto_code_t) c), by_code [c]);
    zsock_destroy (&sock);
    return (replies == count && errors == count) ? 0 : 1;
}
