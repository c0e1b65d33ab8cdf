/*  fuzz_decode: libFuzzer target for the wire decoder and the generic
    MessagePack walkers. Build and run with scripts/fuzz.sh.

    Properties checked on every input:
      - proto_decode never crashes, leaks or reads out of bounds;
      - whatever decodes re-encodes, the re-encoding decodes, and encoding
        that again gives the same bytes (the encoding is canonical);
      - a value that passes proto_value_check renders as JSON, compact
        JSON never holds a raw control character, and the output stays
        linear in the input;
      - views and ctl argument lookups are safe on any bytes.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proto.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
s_die (const char *what, const char *err)
{
    fprintf (stderr, "fuzz_decode: %s: %s\n", what, err ? err : "");
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        log_set_level (PBT_LOG_ERROR);
        init = true;
    }
    proto_msg_t msg;
    char err [PROTO_MAX_TEXT];
    if (proto_decode (data, size, &msg, err, sizeof (err)) == PROTO_OK) {
        uint8_t *buf, *buf2;
        size_t len, len2;
        if (proto_encode (&msg, &buf, &len))
            s_die ("decoded message does not re-encode", proto_type_name (msg.type));
        proto_msg_t again;
        if (proto_decode (buf, len, &again, err, sizeof (err)) != PROTO_OK)
            s_die ("re-encoded message does not decode", err);
        if (again.type != msg.type)
            s_die ("type changed in round trip", proto_type_name (msg.type));
        if (proto_encode (&again, &buf2, &len2))
            s_die ("second encode failed", proto_type_name (msg.type));
        if (len2 != len || memcmp (buf, buf2, len) != 0)
            s_die ("encoding is not stable", proto_type_name (msg.type));
        free (buf);
        free (buf2);
        proto_msg_clear (&again);
        proto_msg_clear (&msg);
    }
    if (proto_value_check (data, size, err, sizeof (err)) == 0) {
        char *json = proto_value_to_json (data, size, false);
        if (!json)
            s_die ("checked value did not render", NULL);
        for (const char *p = json; *p; p++)
            if ((unsigned char) *p < 0x20)
                s_die ("raw control character in JSON", json);
        //  Output must stay linear in the input (no escaping blow-up).
        if (strlen (json) > 16 * size + 32)
            s_die ("compact JSON out of proportion to its input", NULL);
        free (json);
        json = proto_value_to_json (data, size, true);
        if (!json)
            s_die ("checked value did not render (pretty)", NULL);
        if (strlen (json) > 80 * size + 32)
            s_die ("pretty JSON out of proportion to its input", NULL);
        free (json);

        proto_view_t root, v;
        if (proto_view_init (&root, data, size))
            s_die ("view_init refused a checked value", NULL);
        char s [32];
        if (proto_view_get (root, "agents", &v) == 0) {
            int64_t n = proto_view_array_len (v);
            for (int64_t i = 0; i < n && i < 64; i++) {
                proto_view_t e, f;
                if (proto_view_array_at (v, (uint32_t) i, &e))
                    s_die ("array_at failed inside the length", NULL);
                if (proto_view_get (e, "id", &f) == 0)
                    proto_view_str (f, s, sizeof (s));
            }
        }
        if (proto_view_get (root, "v", &v) == 0) {
            (void) proto_view_int (v, 0);
            (void) proto_view_double (v, 0);
            (void) proto_view_bool (v, false);
            (void) proto_view_is_nil (v);
        }
    }
    (void) proto_args_int (data, size, "agent", 0);
    (void) proto_args_double (data, size, "lr", 0);
    (void) proto_args_bool (data, size, "force", false);
    char s [16];
    (void) proto_args_str (data, size, "type", s, sizeof (s));
    return 0;
}
