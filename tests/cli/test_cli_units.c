/*  Unit tests of pbtctl's eval statistics and the safetensors writer.
    Expected values are published ones (Wilson intervals, Student's t
    tables) or worked out by hand from the nn.h layout.
*/
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "eval.h"
#include "export.h"

Test (eval, wilson_matches_published_intervals)
{
    double lo, hi;
    //  8 of 10 at 95%: 0.4902 .. 0.9433 (Wilson 1927; e.g. Newcombe 1998 table I)
    eval_wilson (8, 10, 1.959963984540054, &lo, &hi);
    cr_assert (fabs (lo - 0.4902) < 5e-4 && fabs (hi - 0.9433) < 5e-4, "got %f %f", lo, hi);
    //  0 of 10: 0 .. 0.2775
    eval_wilson (0, 10, 1.959963984540054, &lo, &hi);
    cr_assert (fabs (lo) < 1e-12 && fabs (hi - 0.2775) < 5e-4, "got %f %f", lo, hi);
    //  Symmetric: k of n mirrors n-k of n.
    double lo2, hi2;
    eval_wilson (3, 17, 1.96, &lo, &hi);
    eval_wilson (14, 17, 1.96, &lo2, &hi2);
    cr_assert (fabs (lo - (1 - hi2)) < 1e-12 && fabs (hi - (1 - lo2)) < 1e-12);
}

Test (eval, t_quantiles_match_the_table)
{
    //  Two-sided 95% (upper 0.975) quantiles from standard tables.
    static const struct { int df; double t; } cases [] = {
        { 1, 12.706 }, { 2, 4.303 }, { 10, 2.228 }, { 30, 2.042 }, { 31, 2.040 },
        { 40, 2.021 }, { 60, 2.000 }, { 120, 1.980 }, { 1000, 1.962 }, { 100000, 1.960 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++)
        cr_assert (fabs (eval_t95 (cases [i].df) - cases [i].t) < 1.5e-3,
                   "df=%d: %f, table %f", cases [i].df, eval_t95 (cases [i].df), cases [i].t);
}

//  An agent record packed as pbtd's agent_state packs it.
static void
s_pack_agent (msgpack_sbuffer *sbuf, const float *params, size_t n, bool with_params)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, with_params ? 8 : 7);
#define KEY(s) do { msgpack_pack_str (&pk, strlen (s)); msgpack_pack_str_body (&pk, s, strlen (s)); } while (0)
    KEY ("agent"); KEY ("agt_5");
    KEY ("version"); msgpack_pack_uint64 (&pk, 7);
    KEY ("model");
    msgpack_pack_map (&pk, 4);
    KEY ("obs_dim"); msgpack_pack_uint32 (&pk, 3);
    KEY ("n_actions"); msgpack_pack_uint32 (&pk, 2);
    KEY ("hidden"); msgpack_pack_array (&pk, 1); msgpack_pack_uint32 (&pk, 4);
    KEY ("activation"); KEY ("relu");
    KEY ("env"); KEY ("rps");
    KEY ("env_options"); msgpack_pack_map (&pk, 1); KEY ("episode_len"); msgpack_pack_double (&pk, 5);
    KEY ("hparams"); msgpack_pack_map (&pk, 1); KEY ("lr"); msgpack_pack_double (&pk, 0.001);
    KEY ("rating"); msgpack_pack_double (&pk, 1.25);
    if (with_params) {
        KEY ("params");
        msgpack_pack_bin (&pk, n * 4);
        msgpack_pack_bin_body (&pk, params, n * 4);
    }
#undef KEY
}

Test (export, parse_and_write_safetensors)
{
    //  obs 3 -> 4 -> 2 actions (relu), critic 3 -> 4 -> 1:
    //  actor 12 + 4 + 8 + 2 = 26 floats, critic 12 + 4 + 4 + 1 = 21; 47 in all.
    float params [47];
    for (int i = 0; i < 47; i++)
        params [i] = 0.5f * (float) i - 3.0f;
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_agent (&sbuf, params, 47, true);
    export_agent_t agent;
    char err [256];
    cr_assert_eq (export_agent_parse ((const uint8_t *) sbuf.data, sbuf.size, &agent, err, sizeof err), 0, "%s", err);
    msgpack_sbuffer_destroy (&sbuf);
    cr_assert_str_eq (agent.id, "agt_5");
    cr_assert_eq (agent.num_id, 5);
    cr_assert_eq (agent.n_params, 47);
    cr_assert_eq (agent.arch.activation, NN_RELU);

    char path [] = "/tmp/test_cli_units_XXXXXX";
    int fd = mkstemp (path);
    cr_assert (fd >= 0);
    close (fd);
    cr_assert_eq (export_write_safetensors (path, &agent, err, sizeof err), 0, "%s", err);
    FILE *f = fopen (path, "rb");
    uint8_t buf [8192];
    size_t len = fread (buf, 1, sizeof buf, f);
    fclose (f);
    unlink (path);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t) buf [i] << (8 * i);
    cr_assert_eq (n % 8, 0, "header length %llu is not a multiple of 8", (unsigned long long) n);
    cr_assert_eq (len, 8 + n + 47 * 4, "file is %zu bytes, header %llu", len, (unsigned long long) n);
    char *header = strndup ((const char *) buf + 8, n);
    static const char *const expect [] = {
        "\"actor.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[0,48]}",
        "\"actor.0.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]}",
        "\"actor.2.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[64,96]}",
        "\"actor.2.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[96,104]}",
        "\"critic.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,3],\"data_offsets\":[104,152]}",
        "\"critic.0.bias\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[152,168]}",
        "\"critic.2.weight\":{\"dtype\":\"F32\",\"shape\":[1,4],\"data_offsets\":[168,184]}",
        "\"critic.2.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[184,188]}",
        "\"activation\":\"relu\"", "\"actor_layers\":\"[3, 4, 2]\"", "\"critic_layers\":\"[3, 4, 1]\"",
        "\"agent\":\"agt_5\"", "\"env_options\":\"{\\\"episode_len\\\": 5}\"",
        "\"hyperparameters\":\"{\\\"lr\\\": 0.001}\"",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect [0]; i++)
        cr_assert (strstr (header, expect [i]), "header lacks %s:\n%s", expect [i], header);
    //  Data: the floats verbatim, little-endian.
    for (int i = 0; i < 47; i++) {
        const uint8_t *p = buf + 8 + n + 4 * i;
        uint32_t bits = p [0] | p [1] << 8 | p [2] << 16 | (uint32_t) p [3] << 24;
        float x;
        memcpy (&x, &bits, 4);
        cr_assert_eq (x, 0.5f * (float) i - 3.0f);
    }
    free (header);
    export_agent_clear (&agent);
}

Test (export, refuses_a_reply_without_params)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    s_pack_agent (&sbuf, NULL, 0, false);
    export_agent_t agent;
    char err [256] = "";
    cr_assert_eq (export_agent_parse ((const uint8_t *) sbuf.data, sbuf.size, &agent, err, sizeof err), -1);
    cr_assert (strstr (err, "params"), "%s", err);
    cr_assert_null (agent.params);
    msgpack_sbuffer_destroy (&sbuf);
}

//  ---------------------------------------------------------------------
//  status's trend of a series, against hand-worked answers.

#include "curves.h"

Test (curves, trend_by_hand)
{
    curves_trend_t t;
    //  [1 1 1 | 2 2 2]: newer half 2, older 1, no spread: up by 1.
    double up [6] = { 1, 1, 1, 2, 2, 2 };
    curves_trend (up, NULL, 6, &t);
    cr_expect_eq (t.verdict, 1);
    cr_expect_float_eq (t.recent, 2.0, 1e-12);
    cr_expect_float_eq (t.delta, 1.0, 1e-12);
    cr_expect_float_eq (t.se, 0.0, 1e-12);
    //  [1 2 1 | 2 1 2]: means 4/3 and 5/3, delta 1/3; each half's sample
    //  variance 1/3, se = sqrt(1/9 + 1/9) = 0.4714 > delta/2: flat.
    double noisy [6] = { 1, 2, 1, 2, 1, 2 };
    curves_trend (noisy, NULL, 6, &t);
    cr_expect_eq (t.verdict, 0);
    cr_expect_float_eq (t.delta, 1.0 / 3.0, 1e-12);
    cr_expect_float_eq (t.se, sqrt (2.0 / 9.0), 1e-12);
    //  Weighted: newer half [1 3 5] with weights [1 1 2]: (1 + 3 + 10) / 4 = 3.5.
    //  Odd n: the older half is the smaller one, [9 9 9] of 7 points here.
    double v [7] = { 9, 9, 9, 0, 1, 3, 5 }, w [7] = { 1, 1, 1, 5, 1, 1, 2 };
    curves_trend (v + 1, w + 1, 6, &t);
    cr_expect_float_eq (t.recent, 3.5, 1e-12);
    curves_trend (v, w, 7, &t);
    //  older [9 9 9], newer [0 1 3 5] weights [5 1 1 2]: (0 + 1 + 3 + 10) / 9.
    cr_expect_float_eq (t.recent, 14.0 / 9.0, 1e-12);
    cr_expect_eq (t.verdict, -1);
    char buf [32];
    cr_expect_str_eq (curves_trend_text (&t, buf, sizeof buf), "down -7.44");
    //  Too few points to say.
    curves_trend (up, NULL, 5, &t);
    cr_expect_eq (t.verdict, -2);
    cr_expect_str_eq (curves_trend_text (&t, buf, sizeof buf), "-");
}
