/*  export: an agent as a safetensors file (see export.h).

    safetensors layout: 8 bytes little-endian header length N, N bytes of
    JSON header padded with spaces to a multiple of 8, then the raw tensor
    data; each tensor's data_offsets are relative to the data start. The
    flat parameter buffer of nn.h already is every tensor back to back in
    nn.Sequential order, so the data section is that buffer verbatim (as
    little-endian float32) and each tensor's offsets are its slice.

    The hidden options --probe-obs/--probe-out run the worker's own forward
    pass (nn_policy_eval) on the very parameters written, so a test can
    compare PyTorch's output on the file with the worker's without a race
    against training.
*/
#include "export.h"
#include "mpobj.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "args.h"
#include "env.h"
#include "nn_fast.h"

#define EXIT_REFUSED     1
#define EXIT_USAGE       2

#define NASH_EXPORT_SCAN 4096

//  A map of name -> number into kvs; other entries are skipped.
static int
s_kvs (const msgpack_object *map, proto_kvs_t *kvs)
{
    memset (kvs, 0, sizeof *kvs);
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return map && map->type != MSGPACK_OBJECT_NIL ? -1 : 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        char name [PROTO_MAX_NAME];
        double v;
        if (mpobj_str (&map->via.map.ptr [i].key, name, sizeof name)
        &&  mpobj_num (&map->via.map.ptr [i].val, &v))
            proto_kvs_set (kvs, name, v);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  The agent record

int
export_agent_parse (const uint8_t *body, size_t len, export_agent_t *out,
                    char *err, size_t err_len)
{
    memset (out, 0, sizeof *out);
    int rc = -1;
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    if (mpobj_unpack (&up, body, len) != 0 || up.data.type != MSGPACK_OBJECT_MAP) {
        snprintf (err, err_len, "agent_state reply is not a map");
        goto cleanup;
    }
    const msgpack_object *root = &up.data;
    const msgpack_object *o = mpobj_get (root, "agent");
    if (!o)
        o = mpobj_get (root, "id");
    double d;
    if (mpobj_str (o, out->id, sizeof out->id)) {
        if (sscanf (out->id, "agt_%" SCNd64, &out->num_id) != 1)
            out->num_id = 0;
    }
    else
    if (mpobj_num (o, &d)) {
        out->num_id = (int64_t) d;
        snprintf (out->id, sizeof out->id, "agt_%" PRId64, out->num_id);
    }
    if (!mpobj_str (mpobj_get (root, "env"), out->env, sizeof out->env)) {
        snprintf (err, err_len, "agent_state reply has no env");
        goto cleanup;
    }
    if (s_kvs (mpobj_get (root, "env_options"), &out->env_options) != 0
    ||  s_kvs (mpobj_get (root, "hparams"), &out->hparams) != 0
    ||  s_kvs (mpobj_get (root, "ppo"), &out->ppo) != 0) {
        snprintf (err, err_len, "agent_state reply: env_options, hparams or ppo is not a map");
        goto cleanup;
    }
    //  The architecture: a "model" map as in an assignment, or the same
    //  keys at the top level.
    const msgpack_object *m = mpobj_get (root, "model");
    if (!m || m->type != MSGPACK_OBJECT_MAP)
        m = mpobj_get (root, "arch");
    if (!m || m->type != MSGPACK_OBJECT_MAP)
        m = root;
    out->model.obs_dim = (uint32_t) mpobj_num_or (m, "obs_dim", 0);
    out->model.n_actions = (uint32_t) mpobj_num_or (m, "n_actions", 0);
    if (!mpobj_str (mpobj_get (m, "activation"), out->model.activation, sizeof out->model.activation))
        snprintf (out->model.activation, sizeof out->model.activation, "tanh");
    const msgpack_object *h = mpobj_get (m, "hidden");
    if (!h || h->type != MSGPACK_OBJECT_ARRAY || h->via.array.size > PROTO_MAX_HIDDEN) {
        snprintf (err, err_len, "agent_state reply: model.hidden missing or over %d layers",
                  PROTO_MAX_HIDDEN);
        goto cleanup;
    }
    out->model.n_hidden = h->via.array.size;
    for (uint32_t l = 0; l < h->via.array.size; l++)
        out->model.hidden [l] = mpobj_num (&h->via.array.ptr [l], &d) ? (uint32_t) d : 0;
    if (nn_arch_from_proto (&out->arch, &out->model, err, err_len) != 0)
        goto cleanup;
    out->rating = mpobj_num_or (root, "rating", NAN);
    out->frames = (uint64_t) mpobj_num_or (root, "frames", 0);
    out->version = (uint64_t) mpobj_num_or (root, "version", 0);
    out->generation = (uint64_t) mpobj_num_or (root, "generation", 0);

    size_t n = nn_param_count (&out->arch);
    o = mpobj_get (root, "params");
    const msgpack_object *seed = mpobj_get (root, "init_seed");
    if (o && o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == 0
    &&  seed && seed->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        //  Never trained: the weights the first worker to train it makes.
        out->params = malloc (sizeof (float) * n);
        if (!out->params) {
            snprintf (err, err_len, "out of memory");
            goto cleanup;
        }
        nn_init_seeded (&out->arch, out->params, seed->via.u64);
        out->n_params = (uint32_t) n;
        rc = 0;
        goto cleanup;
    }
    if (!o || o->type != MSGPACK_OBJECT_BIN) {
        snprintf (err, err_len, "agent_state reply has no params (binary float32)");
        goto cleanup;
    }
    if (o->via.bin.size != n * sizeof (float)) {
        snprintf (err, err_len, "agent_state params hold %u bytes, the model needs %zu floats",
                  o->via.bin.size, n);
        goto cleanup;
    }
    out->params = malloc (sizeof (float) * n);
    if (!out->params) {
        snprintf (err, err_len, "out of memory");
        goto cleanup;
    }
    const uint8_t *p = (const uint8_t *) o->via.bin.ptr;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits = (uint32_t) p [4 * i] | (uint32_t) p [4 * i + 1] << 8
                      | (uint32_t) p [4 * i + 2] << 16 | (uint32_t) p [4 * i + 3] << 24;
        memcpy (&out->params [i], &bits, 4);
    }
    out->n_params = (uint32_t) n;
    rc = 0;
cleanup:
    msgpack_unpacked_destroy (&up);
    if (rc != 0)
        export_agent_clear (out);
    return rc;
}

void
export_agent_clear (export_agent_t *agent)
{
    if (!agent)
        return;
    free (agent->params);
    memset (agent, 0, sizeof *agent);
}

int
export_agent_fetch (ctl_t *ctl, const char *agent, export_agent_t *out)
{
    memset (out, 0, sizeof *out);
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    //  agt_N@V names an older kept version of agt_N.
    char name [64];
    snprintf (name, sizeof name, "%s", agent);
    char *at = strchr (name, '@');
    long long version = 0;
    if (at) {
        uint64_t v;
        *at = 0;
        if (args_uint ("AGENT@VERSION", at + 1, 1, INT64_MAX, &v)) {
            msgpack_sbuffer_destroy (&sbuf);
            return EXIT_USAGE;
        }
        version = (long long) v;
    }
    msgpack_pack_map (&pk, version ? 2 : 1);
    msgpack_pack_str (&pk, 5);
    msgpack_pack_str_body (&pk, "agent", 5);
    msgpack_pack_str (&pk, strlen (name));
    msgpack_pack_str_body (&pk, name, strlen (name));
    if (version) {
        msgpack_pack_str (&pk, 7);
        msgpack_pack_str_body (&pk, "version", 7);
        msgpack_pack_int64 (&pk, version);
    }
    ctl_reply_t reply;
    int rc = ctl_call (ctl, "agent_state", (const uint8_t *) sbuf.data, sbuf.size, &reply);
    msgpack_sbuffer_destroy (&sbuf);
    if (rc != 0)
        return rc;
    char err [256];
    if (export_agent_parse (reply.body, reply.body_len, out, err, sizeof err) != 0) {
        fprintf (stderr, "pbtctl: %s: %s\n", agent, err);
        rc = EXIT_REFUSED;
    }
    ctl_reply_clear (&reply);
    return rc;
}

//  ---------------------------------------------------------------------
//  Writing

//  The game's own words (its spec), or a pointer to its documentation
//  when this host does not have its plugin.
static const pbt_env_t *
s_game (const char *env)
{
    char err [PROTO_MAX_TEXT * 2];
    const envspec_t *spec = env_find (env, err, sizeof err);
    return spec ? envspec_env (spec) : NULL;
}

const char *
export_obs_description (const char *env, const proto_kvs_t *options)
{
    (void) options;
    const pbt_env_t *g = s_game (env);
    return g && g->obs_doc ? g->obs_doc : "see the environment's documentation";
}

static const char *
s_action_description (const char *env)
{
    const pbt_env_t *g = s_game (env);
    return g && g->action_doc ? g->action_doc : "";
}

//  JSON string literal of s.
static void
s_json_str (FILE *f, const char *s)
{
    fputc ('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char) *s;
        if (c == '"' || c == '\\')
            fprintf (f, "\\%c", c);
        else
        if (c < 0x20)
            fprintf (f, "\\u%04x", c);
        else
            fputc (c, f);
    }
    fputc ('"', f);
}

//  {"name": value, ...} of kvs.
static void
s_json_kvs (FILE *f, const proto_kvs_t *kvs)
{
    fputc ('{', f);
    for (uint32_t i = 0; i < kvs->count; i++) {
        fprintf (f, "%s", i ? ", " : "");
        s_json_str (f, kvs->items [i].name);
        fprintf (f, ": %.12g", kvs->items [i].value);
    }
    fputc ('}', f);
}

//  A metadata entry: key -> the string val (JSON-escaped).
static void
s_meta (FILE *f, bool *first, const char *key, const char *val)
{
    fprintf (f, "%s", *first ? "" : ",");
    *first = false;
    s_json_str (f, key);
    fputc (':', f);
    s_json_str (f, val);
}

//  The metadata values are JSON texts themselves; build one with fmt.
static char *
s_kvs_text (const proto_kvs_t *kvs)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream (&text, &len);
    if (!f)
        return NULL;
    s_json_kvs (f, kvs);
    fclose (f);
    return text;
}

//  The JSON header (unpadded), malloc'd; NULL on failure. With k > 0 the
//  file is a mixture of k agents (all of agent [0]'s architecture): the
//  tensors of agent i are named "policies.<i>.<name>", and mixture (a JSON
//  text) and the "mixture.weights" tensor [k] follow them.
static char *
s_header_mix (const export_agent_t *agents, int k, const char *mixture, size_t *len_p)
{
    const export_agent_t *agent = &agents [0];
    char *text = NULL, *env_opts = s_kvs_text (&agent->env_options),
         *hparams = s_kvs_text (&agent->hparams);
    size_t len = 0;
    FILE *f = open_memstream (&text, &len);
    if (!f || !env_opts || !hparams) {
        if (f)
            fclose (f);
        free (text);
        free (env_opts);
        free (hparams);
        return NULL;
    }
    const nn_arch_t *arch = &agent->arch;
    char layers [128], num [64];
    int n = snprintf (layers, sizeof layers, "[%d", arch->obs_dim);
    for (int l = 0; l < arch->n_hidden; l++)
        n += snprintf (layers + n, sizeof layers - (size_t) n, ", %d", arch->hidden [l]);
    snprintf (layers + n, sizeof layers - (size_t) n, ", %d]", arch->n_actions);

    fprintf (f, "{\"__metadata__\":{");
    bool first = true;
    s_meta (f, &first, "format", "pt");
    s_meta (f, &first, "producer", "pbtctl export");
    s_meta (f, &first, "agent", agent->id);
    s_meta (f, &first, "env", agent->env);
    s_meta (f, &first, "env_options", env_opts);
    s_meta (f, &first, "observation", export_obs_description (agent->env, &agent->env_options));
    s_meta (f, &first, "actions", s_action_description (agent->env));
    s_meta (f, &first, "activation", nn_activation_name (arch->activation));
    s_meta (f, &first, "actor_layers", layers);
    snprintf (layers + n, sizeof layers - (size_t) n, ", 1]");
    s_meta (f, &first, "critic_layers", layers);
    const pbt_env_t *game = s_game (agent->env);
    if (game)
        s_meta (f, &first, "env_version", game->version);
    if (game && game->turns == PBT_ENV_TURN_BASED)
        s_meta (f, &first, "turns", "turn-based: only the player to move (a legal action) acts");
    if (k > 0) {
        s_meta (f, &first, "policy", game && game->masks
                ? "a mixture: draw policy i with probability mixture.weights[i] (once per episode), "
                  "then act by softmax(where(mask, policies.i.actor(obs), -inf)), mask = the game's "
                  "legal actions; policies.i.critic(obs) is that policy's value"
                : "a mixture: draw policy i with probability mixture.weights[i] "
                  "(once per episode), then act by softmax(policies.i.actor(obs)); "
                  "policies.i.critic(obs) is that policy's value");
        s_meta (f, &first, "mixture", mixture);
        fputc ('}', f);
        nn_tensor_t tensors [4 * (NN_MAX_HIDDEN + 1)];
        int nt = nn_tensors (arch, tensors, (int) (sizeof tensors / sizeof tensors [0]));
        size_t base = 0, per = nn_param_count (arch);
        for (int i = 0; i < k; i++, base += per)
            for (int t = 0; t < nt; t++) {
                const nn_tensor_t *ts = &tensors [t];
                size_t count = ts->cols ? (size_t) ts->rows * ts->cols : (size_t) ts->rows;
                fprintf (f, ",\"policies.%d.%s\"", i, ts->name);
                if (ts->cols)
                    fprintf (f, ":{\"dtype\":\"F32\",\"shape\":[%d,%d]", ts->rows, ts->cols);
                else
                    fprintf (f, ":{\"dtype\":\"F32\",\"shape\":[%d]", ts->rows);
                fprintf (f, ",\"data_offsets\":[%zu,%zu]}", (base + ts->offset) * 4,
                         (base + ts->offset + count) * 4);
            }
        fprintf (f, ",\"mixture.weights\":{\"dtype\":\"F32\",\"shape\":[%d],"
                    "\"data_offsets\":[%zu,%zu]}}", k, base * 4, (base + (size_t) k) * 4);
        fclose (f);
        free (env_opts);
        free (hparams);
        *len_p = len;
        return text;
    }
    s_meta (f, &first, "policy", game && game->masks
            ? "softmax(where(mask, actor(obs), -inf)) over the actions, mask = the game's "
              "legal actions (1 = legal) at that step; critic(obs) is the value"
            : "softmax(actor(obs)) over the actions; critic(obs) is the value");
    snprintf (num, sizeof num, "%.10g", agent->rating);
    s_meta (f, &first, "rating", num);
    snprintf (num, sizeof num, "%llu", (unsigned long long) agent->frames);
    s_meta (f, &first, "frames", num);
    snprintf (num, sizeof num, "%llu", (unsigned long long) agent->version);
    s_meta (f, &first, "version", num);
    snprintf (num, sizeof num, "%llu", (unsigned long long) agent->generation);
    s_meta (f, &first, "generation", num);
    s_meta (f, &first, "hyperparameters", hparams);
    fputc ('}', f);

    nn_tensor_t tensors [4 * (NN_MAX_HIDDEN + 1)];
    int nt = nn_tensors (arch, tensors, (int) (sizeof tensors / sizeof tensors [0]));
    for (int t = 0; t < nt; t++) {
        const nn_tensor_t *ts = &tensors [t];
        size_t count = ts->cols ? (size_t) ts->rows * ts->cols : (size_t) ts->rows;
        fprintf (f, ",");
        s_json_str (f, ts->name);
        if (ts->cols)
            fprintf (f, ":{\"dtype\":\"F32\",\"shape\":[%d,%d]", ts->rows, ts->cols);
        else
            fprintf (f, ":{\"dtype\":\"F32\",\"shape\":[%d]", ts->rows);
        fprintf (f, ",\"data_offsets\":[%zu,%zu]}", ts->offset * 4, (ts->offset + count) * 4);
    }
    fputc ('}', f);
    fclose (f);
    free (env_opts);
    free (hparams);
    *len_p = len;
    return text;
}

static char *
s_header (const export_agent_t *agent, size_t *len_p)
{
    return s_header_mix (agent, 0, NULL, len_p);
}

//  Little-endian float32s.
static bool
s_write_floats (FILE *f, const float *x, size_t n)
{
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        uint32_t bits;
        memcpy (&bits, &x [i], 4);
        uint8_t b [4] = { (uint8_t) bits, (uint8_t) (bits >> 8), (uint8_t) (bits >> 16),
                          (uint8_t) (bits >> 24) };
        ok = fwrite (b, 1, 4, f) == 4;
    }
    return ok;
}

int
export_write_mixture (const char *path, const export_agent_t *agents, const float *weights,
                      int k, char *err, size_t err_len)
{
    assert (agents && weights && k > 0);
    for (int i = 1; i < k; i++)
        if (agents [i].n_params != agents [0].n_params
        ||  agents [i].arch.obs_dim != agents [0].arch.obs_dim
        ||  strcmp (agents [i].env, agents [0].env)) {
            snprintf (err, err_len, "%s and %s have different models", agents [0].id, agents [i].id);
            return -1;
        }
    //  The mixture as JSON: index, agent, version, weight.
    char *mix = NULL;
    size_t mlen = 0;
    FILE *m = open_memstream (&mix, &mlen);
    if (!m) {
        snprintf (err, err_len, "out of memory");
        return -1;
    }
    fputc ('[', m);
    for (int i = 0; i < k; i++) {
        fprintf (m, "%s{\"index\": %d, \"agent\": ", i ? ", " : "", i);
        s_json_str (m, agents [i].id);
        fprintf (m, ", \"version\": %llu, \"weight\": %.9g}",
                 (unsigned long long) agents [i].version, weights [i]);
    }
    fputc (']', m);
    fclose (m);
    size_t hlen = 0;
    char *header = s_header_mix (agents, k, mix, &hlen);
    free (mix);
    int rc = -1;
    FILE *f = NULL;
    if (!header) {
        snprintf (err, err_len, "out of memory");
        goto cleanup;
    }
    size_t padded = (hlen + 7) / 8 * 8;
    f = fopen (path, "wb");
    if (!f) {
        snprintf (err, err_len, "cannot write %s: %s", path, strerror (errno));
        goto cleanup;
    }
    uint8_t le [8];
    for (int i = 0; i < 8; i++)
        le [i] = (uint8_t) ((uint64_t) padded >> (8 * i));
    bool ok = fwrite (le, 1, 8, f) == 8 && fwrite (header, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc (' ', f) != EOF;
    for (int i = 0; ok && i < k; i++)
        ok = s_write_floats (f, agents [i].params, agents [i].n_params);
    ok = ok && s_write_floats (f, weights, (size_t) k);
    if (fclose (f) != 0)
        ok = false;
    f = NULL;
    if (!ok) {
        snprintf (err, err_len, "cannot write %s: %s", path, strerror (errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f)
        fclose (f);
    free (header);
    return rc;
}

int
export_write_safetensors (const char *path, const export_agent_t *agent,
                          char *err, size_t err_len)
{
    assert (agent && agent->params);
    int rc = -1;
    FILE *f = NULL;
    size_t hlen = 0;
    char *header = s_header (agent, &hlen);
    if (!header) {
        snprintf (err, err_len, "out of memory");
        goto cleanup;
    }
    size_t padded = (hlen + 7) / 8 * 8;
    f = fopen (path, "wb");
    if (!f) {
        snprintf (err, err_len, "cannot write %s: %s", path, strerror (errno));
        goto cleanup;
    }
    uint8_t le [8];
    for (int i = 0; i < 8; i++)
        le [i] = (uint8_t) ((uint64_t) padded >> (8 * i));
    bool ok = fwrite (le, 1, 8, f) == 8 && fwrite (header, 1, hlen, f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++)
        ok = fputc (' ', f) != EOF;
    for (uint32_t i = 0; ok && i < agent->n_params; i++) {
        uint32_t bits;
        memcpy (&bits, &agent->params [i], 4);
        uint8_t b [4] = { (uint8_t) bits, (uint8_t) (bits >> 8), (uint8_t) (bits >> 16),
                          (uint8_t) (bits >> 24) };
        ok = fwrite (b, 1, 4, f) == 4;
    }
    if (fclose (f) != 0)
        ok = false;
    f = NULL;
    if (!ok) {
        snprintf (err, err_len, "cannot write %s: %s", path, strerror (errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f)
        fclose (f);
    free (header);
    return rc;
}

//  ---------------------------------------------------------------------
//  Probe: the worker's forward pass on observations from a text file.

static int
s_probe (const export_agent_t *agent, const char *obs_path, const char *out_path)
{
    int rc = EXIT_REFUSED;
    float *obs = NULL, *probs = NULL, *values = NULL;
    FILE *in = fopen (obs_path, "r"), *out = NULL;
    if (!in) {
        fprintf (stderr, "pbtctl export: cannot read %s: %s\n", obs_path, strerror (errno));
        goto cleanup;
    }
    size_t cap = 0, n = 0;
    float x;
    while (fscanf (in, "%f", &x) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            float *grown = realloc (obs, sizeof (float) * cap);
            if (!grown)
                goto cleanup;
            obs = grown;
        }
        obs [n++] = x;
    }
    int D = agent->arch.obs_dim, A = agent->arch.n_actions;
    if (!feof (in) || n == 0 || n % (size_t) D != 0) {
        fprintf (stderr, "pbtctl export: %s must hold rows of %d numbers\n", obs_path, D);
        goto cleanup;
    }
    int B = (int) (n / (size_t) D);
    probs = malloc (sizeof (float) * (size_t) B * A);
    values = malloc (sizeof (float) * (size_t) B);
    if (!probs || !values
    ||  nn_policy_eval (&agent->arch, agent->params, obs, B, probs, values) != 0) {
        fprintf (stderr, "pbtctl export: forward pass failed\n");
        goto cleanup;
    }
    out = fopen (out_path, "w");
    if (!out) {
        fprintf (stderr, "pbtctl export: cannot write %s: %s\n", out_path, strerror (errno));
        goto cleanup;
    }
    //  One row per observation: the action probabilities, then the value.
    for (int b = 0; b < B; b++) {
        for (int a = 0; a < A; a++)
            fprintf (out, "%.9g ", probs [(size_t) b * A + a]);
        fprintf (out, "%.9g\n", values [b]);
    }
    rc = fclose (out) == 0 ? 0 : EXIT_REFUSED;
    out = NULL;
cleanup:
    if (in)
        fclose (in);
    if (out)
        fclose (out);
    free (obs);
    free (probs);
    free (values);
    return rc;
}

//  ---------------------------------------------------------------------

static void
s_usage (void)
{
    fprintf (stderr, "usage: pbtctl export AGENT[@VERSION] -o FILE.safetensors [--json]\n"
                     "       pbtctl export --nash -o FILE.safetensors [--json]\n");
}

//  export --nash: every player with a positive weight in pbtd's Nash
//  mixture (agents and kept frozen snapshots), in one file.
static int
s_export_nash (ctl_t *ctl, const char *path, bool json)
{
    ctl_reply_t reply;
    int rc = ctl_call (ctl, "nash", NULL, 0, &reply);
    if (rc != 0)
        return rc;
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    export_agent_t *agents = calloc (EXPORT_MAX_MIXTURE, sizeof *agents);
    float weights [EXPORT_MAX_MIXTURE];
    int k = 0;
    rc = EXIT_REFUSED;
    const msgpack_object *players = NULL;
    if (!agents) {
        fprintf (stderr, "pbtctl export: out of memory\n");
        goto cleanup;
    }
    if (mpobj_unpack (&up, reply.body, reply.body_len) == 0)
        players = mpobj_get (&up.data, "players");
    if (!players || players->type != MSGPACK_OBJECT_ARRAY) {
        fprintf (stderr, "pbtctl export: pbtd's nash reply has no players\n");
        goto cleanup;
    }
    //  Heaviest first.
    uint32_t n = mpobj_len (players);
    bool taken [NASH_EXPORT_SCAN] = { false };
    for (;;) {
        int best = -1;
        double bw = 0;
        for (uint32_t i = 0; i < n && i < NASH_EXPORT_SCAN; i++) {
            double w = mpobj_num_or (mpobj_at (players, i), "weight", 0);
            if (!taken [i] && w > 1e-9 && w > bw) {
                best = (int) i;
                bw = w;
            }
        }
        if (best < 0)
            break;
        taken [best] = true;
        if (k == EXPORT_MAX_MIXTURE) {
            fprintf (stderr, "pbtctl export: more than %d players in the mixture\n", EXPORT_MAX_MIXTURE);
            goto cleanup;
        }
        char id [PROTO_MAX_NAME];
        if (!mpobj_str (mpobj_get (mpobj_at (players, (uint32_t) best), "id"), id, sizeof id)) {
            fprintf (stderr, "pbtctl export: a player of the nash reply has no id\n");
            goto cleanup;
        }
        if ((rc = export_agent_fetch (ctl, id, &agents [k])) != 0) {
            rc = rc ? rc : EXIT_REFUSED;
            goto cleanup;
        }
        weights [k++] = (float) bw;
        rc = EXIT_REFUSED;
    }
    if (k == 0) {
        fprintf (stderr, "pbtctl export: the Nash mixture is empty\n");
        goto cleanup;
    }
    char err [256];
    if (export_write_mixture (path, agents, weights, k, err, sizeof err) != 0) {
        fprintf (stderr, "pbtctl export: %s\n", err);
        goto cleanup;
    }
    if (json) {
        printf ("{\"file\": ");
        s_json_str (stdout, path);
        printf (", \"mixture\": [");
        for (int i = 0; i < k; i++) {
            printf ("%s{\"agent\": ", i ? ", " : "");
            s_json_str (stdout, agents [i].id);
            printf (", \"version\": %llu, \"weight\": %.9g}", (unsigned long long) agents [i].version,
                    weights [i]);
        }
        printf ("]}\n");
    }
    else {
        printf ("wrote %s: the Nash mixture of %d polic%s:", path, k, k == 1 ? "y" : "ies");
        for (int i = 0; i < k; i++)
            printf (" %s@%llu (%.3f)", agents [i].id, (unsigned long long) agents [i].version,
                    weights [i]);
        printf ("\n");
    }
    rc = 0;
cleanup:
    for (int i = 0; i < k; i++)
        export_agent_clear (&agents [i]);
    free (agents);
    msgpack_unpacked_destroy (&up);
    ctl_reply_clear (&reply);
    return rc;
}

int
export_cmd (ctl_t *ctl, int argc, char **argv)
{
    const char *agent_name = NULL, *path = NULL, *probe_obs = NULL, *probe_out = NULL;
    bool json = false, nash = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--nash") == 0) {
            nash = true;
            continue;
        }
        if ((strcmp (argv [i], "-o") == 0 || strcmp (argv [i], "--output") == 0) && i + 1 < argc)
            path = argv [++i];
        else
        if (strcmp (argv [i], "--probe-obs") == 0 && i + 1 < argc)
            probe_obs = argv [++i];
        else
        if (strcmp (argv [i], "--probe-out") == 0 && i + 1 < argc)
            probe_out = argv [++i];
        else
        if (strcmp (argv [i], "--json") == 0)
            json = true;
        else
        if (argv [i][0] != '-' && !agent_name)
            agent_name = argv [i];
        else {
            fprintf (stderr, "pbtctl export: unexpected argument '%s'\n", argv [i]);
            s_usage ();
            return EXIT_USAGE;
        }
    }
    if (nash && path && !agent_name && !probe_obs && !probe_out)
        return s_export_nash (ctl, path, json);
    if (nash || !agent_name || !path || (!probe_obs != !probe_out)) {
        s_usage ();
        return EXIT_USAGE;
    }
    export_agent_t agent;
    int rc = export_agent_fetch (ctl, agent_name, &agent);
    if (rc != 0)
        return rc;
    char err [256];
    if (export_write_safetensors (path, &agent, err, sizeof err) != 0) {
        fprintf (stderr, "pbtctl export: %s\n", err);
        rc = EXIT_REFUSED;
        goto cleanup;
    }
    if (probe_obs && (rc = s_probe (&agent, probe_obs, probe_out)) != 0)
        goto cleanup;
    if (json) {
        printf ("{\"agent\": ");
        s_json_str (stdout, agent.id);
        printf (", \"file\": ");
        s_json_str (stdout, path);
        printf (", \"tensors\": %d, \"params\": %u, \"rating\": %.10g, \"frames\": %llu, "
                "\"version\": %llu}\n", 4 * (agent.arch.n_hidden + 1), agent.n_params,
                agent.rating, (unsigned long long) agent.frames,
                (unsigned long long) agent.version);
    }
    else
        printf ("wrote %s: %s (%s, %u parameters, rating %.3f, %llu frames)\n", path, agent.id,
                agent.env, agent.n_params, agent.rating, (unsigned long long) agent.frames);
cleanup:
    export_agent_clear (&agent);
    return rc;
}
