/*  config: pbtd's INI configuration. See config.h and docs/config.md. */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envspec.h"
#include "ini.h"
#include "log.h"
#include "metrics.h"

const char *config_embedded =
    "# pbtd's embedded default: rock-paper-scissors, a population of 8,\n"
    "# the seed preset (the Ray reproduction's rules).\n"
    "[daemon]\n"
    "db = pbt.db\n"
    "worker_endpoint = tcp://127.0.0.1:5555\n"
    "control_endpoint = tcp://127.0.0.1:5556\n"
    "lease_ms = 60000\n"
    "heartbeat_ms = 2000\n"
    "seed = 1\n"
    "log_level = info\n"
    "housekeeping_ms = 1000\n"
    "snapshots_keep = 4\n"
    "matches_keep = 1000000\n"
    "lineage_keep = false\n"
    "episode_rows = false\n"
    "results_keep = 100000\n"
    "payoff_window = 20000\n"
    "checkpoint_ms = 100\n"
    "wal_max_mb = 256\n"
    "state_cache_mb = 1024\n"
    "[security]\n"
    "# The defaults listen on loopback only; say so to use it without CURVE.\n"
    "plaintext = true\n"
    "[metrics]\n"
    "# Prometheus text format on http://LISTEN/metrics (docs/metrics.md).\n"
    "enabled = false\n"
    "listen = 127.0.0.1:9556\n"
    "[population]\n"
    "size = 8\n"
    "env = rps\n"
    "preset = seed\n"
    "[env]\n"
    "episode_len = 10\n"
    "[hparam.ent_coef]\n"
    "# An entropy bonus strong enough that self-play settles near rps's Nash\n"
    "# equilibrium (uniform play) instead of chasing the last opponent: the\n"
    "# seed preset's 0.01 leaves agents exploitable (docs/evaluation.md).\n"
    "init = 0.3\n"
    "min = 0.3\n"
    "max = 0.3\n"
    "[model]\n"
    "hidden = 64,64\n"
    "activation = tanh\n"
    "[ppo]\n"
    "n_envs = 32\n"
    "n_steps = 128\n"
    "iterations = 8\n"
    "epochs = 4\n"
    "minibatches = 4\n"
    "vf_coef = 0.5\n"
    "max_grad_norm = 0.5\n"
    "clip_vloss = 1\n"
    "norm_adv = 1\n";

#define S_ERR(e, ...) do { \
    snprintf (err, err_len, "%s:%d: [%s] %s: " , ini_name (ini), (e)->line, (e)->section, (e)->key); \
    size_t _n = strlen (err); \
    snprintf (err + _n, err_len > _n ? err_len - _n : 0, __VA_ARGS__); \
    return -1; \
} while (0)

static int
s_parse_double (const char *s, double *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod (s, &end);
    if (errno || *end || !isfinite (v))
        return -1;
    *out = v;
    return 0;
}

static int
s_parse_u64 (const char *s, uint64_t *out)
{
    if (!*s || !isdigit ((unsigned char) *s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull (s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

static int
s_parse_bool (const char *s, bool *out)
{
    if (!strcmp (s, "true") || !strcmp (s, "1") || !strcmp (s, "yes") || !strcmp (s, "on"))
        *out = true;
    else
    if (!strcmp (s, "false") || !strcmp (s, "0") || !strcmp (s, "no") || !strcmp (s, "off"))
        *out = false;
    else
        return -1;
    return 0;
}

static int
s_copy (char *dst, size_t size, const char *src)
{
    if (strlen (src) >= size)
        return -1;
    strcpy (dst, src);
    return 0;
}

static int
s_script_index (const pbt_env_t *env, const char *name)
{
    for (int i = 0; i < env->n_scripts; i++)
        if (!strcmp (env->scripts [i], name))
            return i;
    return -1;
}

static bool
s_hparam_name_ok (const pbt_env_t *env, const char *name)
{
    static const char *known [] = { "lr", "gamma", "gae_lambda", "ent_coef", "clip_coef", NULL };
    for (int i = 0; known [i]; i++)
        if (!strcmp (known [i], name))
            return true;
    if (!strncmp (name, "shape_", 6))
        for (int i = 0; i < env->n_shaping; i++)
            if (!strcmp (env->shaping_names [i], name + 6))
                return true;
    return false;
}

static int
s_daemon_key (config_t *cfg, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    const char *k = e->key, *v = e->value;
    uint64_t u;
    if (!strcmp (k, "db")) {
        if (!*v || s_copy (cfg->db, sizeof cfg->db, v))
            S_ERR (e, "expected a path (1..%d bytes)", CONFIG_MAX_PATH - 1);
    }
    else
    if (!strcmp (k, "worker_endpoint") || !strcmp (k, "control_endpoint")) {
        char *dst = k [0] == 'w' ? cfg->worker_endpoint : cfg->control_endpoint;
        if (!strstr (v, "://") || s_copy (dst, CONFIG_MAX_EP, v))
            S_ERR (e, "expected a ZeroMQ endpoint like tcp://127.0.0.1:5555, got '%s'", v);
    }
    else
    if (!strcmp (k, "lease_ms") || !strcmp (k, "heartbeat_ms") || !strcmp (k, "housekeeping_ms")) {
        if (s_parse_u64 (v, &u) || u < 10 || u > 86400000)
            S_ERR (e, "expected milliseconds in 10..86400000, got '%s'", v);
        if (k [0] == 'l')
            cfg->lease_ms = (uint32_t) u;
        else
        if (k [0] == 'h' && k [1] == 'e')
            cfg->heartbeat_ms = (uint32_t) u;
        else
            cfg->housekeeping_ms = (uint32_t) u;
    }
    else
    if (!strcmp (k, "seed")) {
        if (s_parse_u64 (v, &u))
            S_ERR (e, "expected an unsigned 64-bit integer, got '%s'", v);
        cfg->seed = u;
    }
    else
    if (!strcmp (k, "log_level")) {
        int level = log_level_parse (v);
        if (level < 0)
            S_ERR (e, "expected debug, info, warn or error, got '%s'", v);
        cfg->log_level = level;
    }
    else
    if (!strcmp (k, "snapshots_keep")) {
        if (s_parse_u64 (v, &u) || u < 1 || u > 1000000)
            S_ERR (e, "expected an integer >= 1, got '%s'", v);
        cfg->snapshots_keep = (uint32_t) u;
    }
    else
    if (!strcmp (k, "lineage_keep")) {
        bool b;
        if (s_parse_bool (v, &b))
            S_ERR (e, "expected true or false, got '%s'", v);
        cfg->lineage_keep = b;
    }
    else
    if (!strcmp (k, "episode_rows")) {
        bool b;
        if (s_parse_bool (v, &b))
            S_ERR (e, "expected true or false, got '%s'", v);
        cfg->episode_rows = b;
    }
    else
    if (!strcmp (k, "results_keep")) {
        if (s_parse_u64 (v, &u) || u > (1ull << 62))
            S_ERR (e, "expected a number of results (0 = keep all), got '%s'", v);
        cfg->results_keep = u;
    }
    else
    if (!strcmp (k, "payoff_window")) {
        if (s_parse_u64 (v, &u) || u < 1 || u > (1ull << 40))
            S_ERR (e, "expected a number of episodes >= 1, got '%s'", v);
        cfg->payoff_window = u;
    }
    else
    if (!strcmp (k, "matches_keep")) {
        if (s_parse_u64 (v, &u) || u > (1ull << 62))
            S_ERR (e, "expected a number of episodes (0 = keep all), got '%s'", v);
        cfg->matches_keep = u;
    }
    else
    if (!strcmp (k, "checkpoint_ms")) {
        if (s_parse_u64 (v, &u) || u < 1 || u > 600000)
            S_ERR (e, "expected milliseconds in 1..600000, got '%s'", v);
        cfg->checkpoint_ms = (uint32_t) u;
    }
    else
    if (!strcmp (k, "wal_max_mb")) {
        if (s_parse_u64 (v, &u) || u < 1 || u > 1048576)
            S_ERR (e, "expected MiB in 1..1048576, got '%s'", v);
        cfg->wal_max_mb = (uint32_t) u;
    }
    else
    if (!strcmp (k, "segment_mb")) {
        if (s_parse_u64 (v, &u) || u < 1 || u > 1024)
            S_ERR (e, "expected MiB in 1..1024, got '%s'", v);
        cfg->segment_mb = (uint32_t) u;
    }
    else
    if (!strcmp (k, "frame_timeout_ms")) {
        if (s_parse_u64 (v, &u) || u < 100 || u > 3600000)
            S_ERR (e, "expected milliseconds in 100..3600000, got '%s'", v);
        cfg->frame_timeout_ms = (uint32_t) u;
    }
    else
    if (!strcmp (k, "state_cache_mb")) {
        if (s_parse_u64 (v, &u) || u > 1048576)
            S_ERR (e, "expected MiB in 0..1048576 (0 = no cache), got '%s'", v);
        cfg->state_cache_mb = (uint32_t) u;
    }
    else
        S_ERR (e, "unknown key (known: db, worker_endpoint, control_endpoint, lease_ms, "
               "heartbeat_ms, seed, log_level, housekeeping_ms, snapshots_keep, matches_keep, lineage_keep, "
               "episode_rows, results_keep, payoff_window, checkpoint_ms, wal_max_mb, state_cache_mb, "
               "frame_timeout_ms, segment_mb)");
    return 0;
}

static int
s_security_key (config_t *cfg, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    const char *k = e->key, *v = e->value;
    if (!strcmp (k, "cert") || !strcmp (k, "allowed_keys") || !strcmp (k, "admin_token_file")) {
        char *dst = k [0] == 'c' ? cfg->cert : k [1] == 'l' ? cfg->allowed_keys : cfg->admin_token_file;
        if (!*v || s_copy (dst, CONFIG_MAX_PATH, v))
            S_ERR (e, "expected a path (1..%d bytes)", CONFIG_MAX_PATH - 1);
    }
    else
    if (!strcmp (k, "plaintext")) {
        if (!strcmp (v, "true"))
            cfg->plaintext = true;
        else
        if (!strcmp (v, "false"))
            cfg->plaintext = false;
        else
            S_ERR (e, "expected true or false, got '%s'", v);
    }
    else
    if (!strcmp (k, "control_mode")) {
        char *end = NULL;
        unsigned long mode = strtoul (v, &end, 8);
        if (!*v || *end || mode > 0777)
            S_ERR (e, "expected an octal file mode like 0660, got '%s'", v);
        cfg->control_mode = (uint32_t) mode;
    }
    else
        S_ERR (e, "unknown key (known: cert, allowed_keys, plaintext, control_mode, admin_token_file)");
    return 0;
}

//  [metrics]: the address is checked here (syntax); whether it can be
//  bound is found out at start, by metrics_new.
static int
s_metrics_key (config_t *cfg, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    const char *k = e->key, *v = e->value;
    if (!strcmp (k, "enabled")) {
        if (s_parse_bool (v, &cfg->metrics_enabled))
            S_ERR (e, "expected true or false, got '%s'", v);
    }
    else
    if (!strcmp (k, "listen")) {
        char why [200];
        if (metrics_parse_listen (v, NULL, why, sizeof why)
        ||  s_copy (cfg->metrics_listen, sizeof cfg->metrics_listen, v))
            S_ERR (e, "%s", why);
    }
    else
        S_ERR (e, "unknown key (known: enabled, listen)");
    return 0;
}

int
config_check_security (config_t *cfg, char *err, size_t err_len)
{
    if (cfg->cert [0] && !cfg->allowed_keys [0]) {
        snprintf (err, err_len, "[security] cert is set but allowed_keys is not: name the directory "
                  "of public certificates that may connect");
        return -1;
    }
    if (!cfg->cert [0] && !cfg->plaintext) {
        const char *eps [2] = { cfg->worker_endpoint, cfg->control_endpoint };
        for (int i = 0; i < 2; i++)
            if (!proto_endpoint_is_local (eps [i])) {
                snprintf (err, err_len, "%s is a tcp endpoint: configure CURVE ([security] cert and "
                          "allowed_keys), use ipc://, or set [security] plaintext = true explicitly", eps [i]);
                return -1;
            }
    }
    if (cfg->admin_token_file [0]) {
        FILE *f = fopen (cfg->admin_token_file, "r");
        if (!f) {
            snprintf (err, err_len, "[security] admin_token_file %s: %s", cfg->admin_token_file,
                      strerror (errno));
            return -1;
        }
        size_t n = fread (cfg->admin_token, 1, sizeof cfg->admin_token - 1, f);
        fclose (f);
        cfg->admin_token [n] = 0;
        while (n && (cfg->admin_token [n - 1] == '\n' || cfg->admin_token [n - 1] == ' '))
            cfg->admin_token [--n] = 0;
        if (n < 16) {
            snprintf (err, err_len, "[security] admin_token_file %s: expected a token of at least 16 "
                      "characters", cfg->admin_token_file);
            return -1;
        }
    }
    return 0;
}

static int
s_model_key (config_t *cfg, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    const char *k = e->key, *v = e->value;
    if (!strcmp (k, "hidden")) {
        proto_model_t *m = &cfg->model;
        m->n_hidden = 0;
        const char *p = v;
        while (true) {
            while (isspace ((unsigned char) *p))
                p++;
            char *end;
            errno = 0;
            long h = strtol (p, &end, 10);
            if (end == p || errno || h < 1 || h > 65536 || m->n_hidden == PROTO_MAX_HIDDEN)
                S_ERR (e, "expected 1..%d comma-separated layer widths in 1..65536, got '%s'",
                       PROTO_MAX_HIDDEN, v);
            m->hidden [m->n_hidden++] = (uint32_t) h;
            p = end;
            while (isspace ((unsigned char) *p))
                p++;
            if (*p == 0)
                break;
            if (*p != ',')
                S_ERR (e, "expected comma-separated layer widths, got '%s'", v);
            p++;
        }
    }
    else
    if (!strcmp (k, "activation")) {
        if (strcmp (v, "tanh") && strcmp (v, "relu"))
            S_ERR (e, "expected tanh or relu, got '%s'", v);
        snprintf (cfg->model.activation, sizeof cfg->model.activation, "%s", v);
    }
    else
        S_ERR (e, "unknown key (known: hidden, activation)");
    return 0;
}

static int
s_ppo_key (config_t *cfg, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    static const struct { const char *name; double min, max; bool integer; } keys [] = {
        { "n_envs", 1, 1 << 20, true },
        { "n_steps", 1, 1 << 20, true },
        { "iterations", 1, 1 << 20, true },
        { "epochs", 1, 1000, true },
        { "minibatches", 1, 1 << 20, true },
        { "vf_coef", 0, 1e6, false },
        { "max_grad_norm", 0, 1e9, false },
        { "clip_vloss", 0, 1, true },
        { "norm_adv", 0, 1, true },
        { NULL, 0, 0, false }
    };
    for (int i = 0; keys [i].name; i++)
        if (!strcmp (keys [i].name, e->key)) {
            double d;
            bool b;
            if (keys [i].max == 1 && keys [i].integer && s_parse_bool (e->value, &b) == 0)
                d = b;
            else
            if (s_parse_double (e->value, &d) || d < keys [i].min || d > keys [i].max
            ||  (keys [i].integer && d != floor (d)))
                S_ERR (e, "expected %s in %g..%g, got '%s'",
                       keys [i].integer ? "an integer" : "a number",
                       keys [i].min, keys [i].max, e->value);
            proto_kvs_set (&cfg->ppo, e->key, d);
            return 0;
        }
    S_ERR (e, "unknown key (known: n_envs, n_steps, iterations, epochs, minibatches, "
           "vf_coef, max_grad_norm, clip_vloss, norm_adv)");
}

static int
s_pbt_key (pbt_config_t *p, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    const char *k = e->key, *v = e->value;
    double d;
    uint64_t u;
    struct { const char *name; double *dst; } dkeys [] = {
        { "elo_k", &p->elo_k }, { "elo_initial", &p->elo_initial },
        { "t_select", &p->t_select }, { "truncation_quantile", &p->truncation_quantile },
        { "crossover_prob", &p->crossover_prob }, { "ftw_sigma", &p->ftw_sigma },
        { "pfsp_p", &p->pfsp_p }, { "snapshot_prob", &p->snapshot_prob },
        { "eval_rate", &p->eval_rate }, { "script_rate", &p->script_rate }, { NULL, NULL }
    };
    for (int i = 0; dkeys [i].name; i++)
        if (!strcmp (k, dkeys [i].name)) {
            if (s_parse_double (v, &d))
                S_ERR (e, "expected a number, got '%s'", v);
            *dkeys [i].dst = d;
            return 0;
        }
    if (!strcmp (k, "eligible_frames") || !strcmp (k, "eligible_matches")) {
        if (s_parse_u64 (v, &u))
            S_ERR (e, "expected an unsigned integer, got '%s'", v);
        if (k [9] == 'f')
            p->eligible_frames = u;
        else
            p->eligible_matches = u;
    }
    else
    if (!strcmp (k, "frozen_keep")) {
        if (s_parse_u64 (v, &u) || u > 1000)
            S_ERR (e, "expected an integer in 0..1000, got '%s'", v);
        p->frozen_keep = (uint32_t) u;
    }
    else
    if (!strcmp (k, "rating")) {
        if (!strcmp (v, "result"))
            p->rating = PBT_RATING_RESULT;
        else
        if (!strcmp (v, "episode"))
            p->rating = PBT_RATING_EPISODE;
        else
            S_ERR (e, "expected result or episode, got '%s'", v);
    }
    else
    if (!strcmp (k, "selection")) {
        if (!strcmp (v, "paper"))
            p->selection = PBT_SELECT_PAPER;
        else
        if (!strcmp (v, "truncation"))
            p->selection = PBT_SELECT_TRUNCATION;
        else
            S_ERR (e, "expected paper or truncation, got '%s'", v);
    }
    else
    if (!strcmp (k, "matchmaking")) {
        if (!strcmp (v, "uniform"))
            p->matchmaking = PBT_MATCH_UNIFORM;
        else
        if (!strcmp (v, "ftw"))
            p->matchmaking = PBT_MATCH_FTW;
        else
        if (!strcmp (v, "pfsp"))
            p->matchmaking = PBT_MATCH_PFSP;
        else
            S_ERR (e, "expected uniform, ftw or pfsp, got '%s'", v);
    }
    else
    if (!strcmp (k, "script_opponents")) {
        //  Names are checked against the environment's scripts once it is known.
        p->n_scripts = 0;
        char list [256];
        if (strlen (v) >= sizeof list)
            S_ERR (e, "list too long");
        snprintf (list, sizeof list, "%s", v);
        char *save = NULL;
        for (char *t = strtok_r (list, ", ", &save); t; t = strtok_r (NULL, ", ", &save)) {
            if (p->n_scripts >= PBT_MAX_SCRIPTS || strlen (t) >= PBT_NAME_LEN)
                S_ERR (e, "at most %d names of fewer than %d characters", PBT_MAX_SCRIPTS,
                       PBT_NAME_LEN);
            snprintf (p->scripts [p->n_scripts++], PBT_NAME_LEN, "%s", t);
        }
        if (p->n_scripts == 0)
            S_ERR (e, "expected a comma-separated list of script names");
    }
    else
        S_ERR (e, "unknown key (known: rating, elo_k, elo_initial, eligible_frames, eligible_matches, "
               "selection, t_select, truncation_quantile, crossover_prob, matchmaking, "
               "ftw_sigma, pfsp_p, snapshot_prob, frozen_keep, eval_rate, script_rate, "
               "script_opponents)");
    return 0;
}

static int
s_hparam_key (pbt_hparam_spec_t *s, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    const char *k = e->key, *v = e->value;
    double d;
    bool b;
    if (!strcmp (k, "prior")) {
        if (!strcmp (v, "uniform"))
            s->prior = PBT_PRIOR_UNIFORM;
        else
        if (!strcmp (v, "loguniform"))
            s->prior = PBT_PRIOR_LOGUNIFORM;
        else
            S_ERR (e, "expected uniform or loguniform, got '%s'", v);
    }
    else
    if (!strcmp (k, "mode")) {
        if (!strcmp (v, "perturb"))
            s->mode = PBT_MODE_PERTURB;
        else
        if (!strcmp (v, "resample"))
            s->mode = PBT_MODE_RESAMPLE;
        else
        if (!strcmp (v, "both"))
            s->mode = PBT_MODE_BOTH;
        else
            S_ERR (e, "expected perturb, resample or both, got '%s'", v);
    }
    else
    if (!strcmp (k, "factors")) {
        double f0, f1;
        char extra;
        if (sscanf (v, " %lf , %lf %c", &f0, &f1, &extra) != 2 || !(f0 > 0) || !(f1 > 0)
        ||  !isfinite (f0) || !isfinite (f1))
            S_ERR (e, "expected two positive factors like 0.8,1.2, got '%s'", v);
        s->perturb_factors [0] = f0;
        s->perturb_factors [1] = f1;
    }
    else
    if (!strcmp (k, "evolve")) {
        if (s_parse_bool (v, &b))
            S_ERR (e, "expected true or false, got '%s'", v);
        s->evolve = b;
    }
    else
    if (!strcmp (k, "min") || !strcmp (k, "max") || !strcmp (k, "init")
    ||  !strcmp (k, "resample_prob") || !strcmp (k, "mutate_prob")) {
        if (s_parse_double (v, &d))
            S_ERR (e, "expected a number, got '%s'", v);
        if (!strcmp (k, "min"))
            s->min = d;
        else
        if (!strcmp (k, "max"))
            s->max = d;
        else
        if (!strcmp (k, "init")) {
            s->init = d;
            s->has_init = true;
        }
        else {
            if (d < 0 || d > 1)
                S_ERR (e, "expected a probability in [0, 1], got '%s'", v);
            if (k [0] == 'r')
                s->resample_prob = d;
            else
                s->mutate_prob = d;
        }
    }
    else
        S_ERR (e, "unknown key (known: prior, min, max, mode, factors, resample_prob, "
               "mutate_prob, evolve, init)");
    return 0;
}

//  The [pbt] and [hparam.*] sections, on top of the preset and the env's
//  shaping channels.
static int
s_load_pbt (pbt_config_t *p, ini_t *ini, const char *preset, const pbt_env_t *env,
            char *err, size_t err_len)
{
    if (pbt_config_preset (p, preset)) {
        const ini_entry_t *e = ini_find (ini, "population", "preset");
        snprintf (err, err_len, "%s:%d: [population] preset: expected seed or paper, got '%s'",
                  ini_name (ini), e ? e->line : 0, preset);
        return -1;
    }
    for (int i = 0; i < env->n_shaping; i++)
        if (pbt_config_add_shaping (p, env->shaping_names [i])) {
            snprintf (err, err_len, "%s: cannot add shaping channel '%s'",
                      ini_name (ini), env->shaping_names [i]);
            return -1;
        }
    //  Hyperparameters not in the preset must be given min and max.
    bool added [PBT_MAX_HPARAMS] = { false };
    int need [PBT_MAX_HPARAMS] = { 0 };
    int line [PBT_MAX_HPARAMS] = { 0 };
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (!e->key)
            continue;
        if (!strcmp (e->section, "pbt")) {
            if (s_pbt_key (p, ini, e, err, err_len))
                return -1;
        }
        else
        if (!strncmp (e->section, "hparam.", 7)) {
            const char *name = e->section + 7;
            pbt_hparam_spec_t *s = pbt_config_hparam (p, name);
            if (!s) {
                if (!s_hparam_name_ok (env, name))
                    S_ERR (e, "unknown hyperparameter '%s' (known: lr, gamma, gae_lambda, "
                           "ent_coef, clip_coef, shape_<channel of %s>)", name, env->name);
                if (p->n_hparams >= PBT_MAX_HPARAMS)
                    S_ERR (e, "too many hyperparameters");
                s = &p->hparams [p->n_hparams];
                memset (s, 0, sizeof *s);
                snprintf (s->name, sizeof s->name, "%s", name);
                s->prior = PBT_PRIOR_UNIFORM;
                s->mode = PBT_MODE_BOTH;
                s->perturb_factors [0] = 0.8;
                s->perturb_factors [1] = 1.2;
                s->resample_prob = 0.2;
                s->mutate_prob = 1.0;
                s->evolve = true;
                added [p->n_hparams] = true;
                line [p->n_hparams] = e->line;
                p->n_hparams++;
            }
            uint32_t idx = (uint32_t) (s - p->hparams);
            if (!strcmp (e->key, "min"))
                need [idx] |= 1;
            if (!strcmp (e->key, "max"))
                need [idx] |= 2;
            if (s_hparam_key (s, ini, e, err, err_len))
                return -1;
        }
    }
    for (uint32_t i = 0; i < p->n_hparams; i++)
        if (added [i] && need [i] != 3) {
            snprintf (err, err_len, "%s:%d: [hparam.%s]: not in preset '%s', so min and max are "
                      "required", ini_name (ini), line [i], p->hparams [i].name, preset);
            return -1;
        }
    //  The seed's own rule, asked for without a K: the seed's K per episode.
    if (p->rating == PBT_RATING_EPISODE && !ini_find (ini, "pbt", "elo_k")
    &&  !strcmp (preset, "seed"))
        p->elo_k = 0.1;
    //  Scripted opponents must be the environment's; none named means all.
    for (uint32_t i = 0; i < p->n_scripts; i++)
        if (s_script_index (env, p->scripts [i]) < 0) {
            const ini_entry_t *e = ini_find (ini, "pbt", "script_opponents");
            char known [200] = "";
            size_t n = 0;
            for (int k = 0; k < env->n_scripts && n < sizeof known; k++)
                n += (size_t) snprintf (known + n, sizeof known - n, "%s%s", k ? ", " : "",
                                        env->scripts [k]);
            snprintf (err, err_len, "%s:%d: [pbt] script_opponents: '%s' is not a script of %s "
                      "(scripts: %s)", ini_name (ini), e ? e->line : 0, p->scripts [i],
                      env->name, n ? known : "none");
            return -1;
        }
    if (p->script_rate > 0 && p->n_scripts == 0)
        for (int k = 0; k < env->n_scripts && p->n_scripts < PBT_MAX_SCRIPTS; k++)
            snprintf (p->scripts [p->n_scripts++], PBT_NAME_LEN, "%s", env->scripts [k]);
    if (p->script_rate > 0 && p->n_scripts == 0) {
        snprintf (err, err_len, "%s: [pbt] script_rate: %s has no scripted policies",
                  ini_name (ini), env->name);
        return -1;
    }
    char perr [200];
    if (pbt_config_check (p, perr, sizeof perr)) {
        snprintf (err, err_len, "%s: [pbt]/[hparam.*]: %s", ini_name (ini), perr);
        return -1;
    }
    return 0;
}

static int
s_load (config_t *cfg, ini_t *ini, char *err, size_t err_len)
{
    memset (cfg, 0, sizeof *cfg);
    strcpy (cfg->db, "pbt.db");
    strcpy (cfg->worker_endpoint, "tcp://127.0.0.1:5555");
    strcpy (cfg->control_endpoint, "tcp://127.0.0.1:5556");
    cfg->lease_ms = 60000;
    cfg->heartbeat_ms = 2000;
    cfg->seed = 1;
    cfg->log_level = PBT_LOG_INFO;
    cfg->housekeeping_ms = 1000;
    cfg->frame_timeout_ms = 60000;
    cfg->segment_mb = 64;
    cfg->snapshots_keep = 4;
    cfg->matches_keep = 1000000;
    cfg->results_keep = 100000;
    cfg->payoff_window = 20000;
    cfg->checkpoint_ms = 100;
    cfg->wal_max_mb = 256;
    cfg->state_cache_mb = 1024;
    cfg->control_mode = 0660;
    strcpy (cfg->metrics_listen, "127.0.0.1:9556");
    cfg->size = 8;
    strcpy (cfg->env, "rps");
    strcpy (cfg->preset, "seed");
    cfg->model.n_hidden = 2;
    cfg->model.hidden [0] = cfg->model.hidden [1] = 64;
    strcpy (cfg->model.activation, "tanh");
    static const proto_kv_t ppo [] = {
        { "n_envs", 32 }, { "n_steps", 128 }, { "iterations", 8 }, { "epochs", 4 },
        { "minibatches", 4 }, { "vf_coef", 0.5 }, { "max_grad_norm", 0.5 },
        { "clip_vloss", 1 }, { "norm_adv", 1 }
    };
    for (size_t i = 0; i < sizeof ppo / sizeof ppo [0]; i++)
        proto_kvs_set (&cfg->ppo, ppo [i].name, ppo [i].value);

    //  Sections first: any unknown one is an error even if empty.
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        const char *s = e->section;
        if (strcmp (s, "daemon") && strcmp (s, "population") && strcmp (s, "env")
        &&  strcmp (s, "model") && strcmp (s, "ppo") && strcmp (s, "pbt")
        &&  strcmp (s, "security") && strcmp (s, "metrics") && strncmp (s, "hparam.", 7)) {
            snprintf (err, err_len, "%s:%d: unknown section [%s] (known: daemon, security, metrics, "
                      "population, env, model, ppo, pbt, hparam.NAME)", ini_name (ini), e->line, s);
            return -1;
        }
    }
    //  [population] decides the env and the preset everything else builds on.
    bool env_named = false;
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (!e->key || strcmp (e->section, "population"))
            continue;
        uint64_t u;
        if (!strcmp (e->key, "size")) {
            if (s_parse_u64 (e->value, &u) || u < 2 || u > 100000)
                S_ERR (e, "expected an integer in 2..100000, got '%s'", e->value);
            cfg->size = (uint32_t) u;
        }
        else
        if (!strcmp (e->key, "env")) {
            if (s_copy (cfg->env, sizeof cfg->env, e->value))
                S_ERR (e, "name too long: '%s'", e->value);
            env_named = true;
        }
        else
        if (!strcmp (e->key, "preset")) {
            if (s_copy (cfg->preset, sizeof cfg->preset, e->value))
                S_ERR (e, "expected seed or paper, got '%s'", e->value);
        }
        else
            S_ERR (e, "unknown key (known: size, env, preset)");
    }
    //  The game's spec: [env] plugin = PATH, or the plugin named by
    //  [population] env. pbtd reads its data and never runs its code.
    char lerr [PROTO_MAX_TEXT * 2] = "";
    const ini_entry_t *plugin = NULL;
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (e->key && !strcmp (e->section, "env") && !strcmp (e->key, "plugin"))
            plugin = e;
    }
    if (plugin && s_copy (cfg->env_plugin, sizeof cfg->env_plugin, plugin->value))
        S_ERR (plugin, "path too long");
    cfg->spec = envspec_find (plugin ? plugin->value : cfg->env, lerr, sizeof lerr);
    if (!cfg->spec) {
        if (plugin)
            S_ERR (plugin, "%s", lerr);
        snprintf (err, err_len, "%s: [population] env: %s", ini_name (ini), lerr);
        return -1;
    }
    if (plugin && env_named && strcmp (cfg->env, envspec_name (cfg->spec))) {
        S_ERR (plugin, "the plugin is the game '%s', [population] env says '%s'",
               envspec_name (cfg->spec), cfg->env);
    }
    snprintf (cfg->env, sizeof cfg->env, "%s", envspec_name (cfg->spec));
    const pbt_env_t *env = envspec_env (cfg->spec);
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (!e->key)
            continue;
        int rc = 0;
        if (!strcmp (e->section, "daemon"))
            rc = s_daemon_key (cfg, ini, e, err, err_len);
        else
        if (!strcmp (e->section, "security"))
            rc = s_security_key (cfg, ini, e, err, err_len);
        else
        if (!strcmp (e->section, "metrics"))
            rc = s_metrics_key (cfg, ini, e, err, err_len);
        else
        if (!strcmp (e->section, "model"))
            rc = s_model_key (cfg, ini, e, err, err_len);
        else
        if (!strcmp (e->section, "ppo"))
            rc = s_ppo_key (cfg, ini, e, err, err_len);
        else
        if (!strcmp (e->section, "env") && e != plugin) {
            double d;
            if (s_parse_double (e->value, &d))
                S_ERR (e, "expected a number, got '%s'", e->value);
            if (strlen (e->key) >= PROTO_MAX_NAME || proto_kvs_set (&cfg->env_options, e->key, d))
                S_ERR (e, "too many options or name too long");
        }
        if (rc)
            return -1;
    }
    if (s_load_pbt (&cfg->pbt, ini, cfg->preset, env, err, err_len))
        return -1;

    char cerr [200] = "";
    if (envspec_options (cfg->spec, &cfg->env_options, NULL, cerr, sizeof cerr)) {
        snprintf (err, err_len, "%s: [env]: %s", ini_name (ini), cerr);
        return -1;
    }
    if ((uint32_t) env->n_players > cfg->size) {
        snprintf (err, err_len, "%s: [population] size %u is smaller than %s's %d players",
                  ini_name (ini), cfg->size, env->name, env->n_players);
        return -1;
    }
    if (cfg->heartbeat_ms >= cfg->lease_ms) {
        snprintf (err, err_len, "%s: [daemon] heartbeat_ms (%u) must be below lease_ms (%u)",
                  ini_name (ini), cfg->heartbeat_ms, cfg->lease_ms);
        return -1;
    }
    cfg->model.obs_dim = (uint32_t) envspec_obs_dim (cfg->spec, &cfg->env_options);
    cfg->model.n_actions = (uint32_t) env->n_actions;
    uint64_t n = proto_model_params (&cfg->model);
    if (n == 0 || n > PROTO_MAX_PARAMS) {
        snprintf (err, err_len, "%s: [model]: %llu parameters (limit %u)",
                  ini_name (ini), (unsigned long long) n, PROTO_MAX_PARAMS);
        return -1;
    }
    cfg->n_params = (uint32_t) n;
    return 0;
}

int
config_load (config_t *cfg, const char *path, char *err, size_t err_len)
{
    assert (cfg);
    ini_t *ini = path ? ini_load_file (path, err, err_len)
                      : ini_load_string (config_embedded, "<embedded>", err, err_len);
    if (!ini)
        return -1;
    config_t *tmp = malloc (sizeof *tmp);
    int rc = -1;
    if (!tmp) {
        snprintf (err, err_len, "out of memory");
        goto cleanup;
    }
    if (s_load (tmp, ini, err, err_len))
        goto cleanup;
    if (path && s_copy (tmp->path, sizeof tmp->path, path)) {
        snprintf (err, err_len, "%s: path too long", path);
        goto cleanup;
    }
    *cfg = *tmp;
    rc = 0;
cleanup:
    free (tmp);
    ini_destroy (&ini);
    return rc;
}

int
config_reload_pbt (config_t *cfg, char *err, size_t err_len)
{
    assert (cfg);
    config_t *fresh = malloc (sizeof *fresh);
    if (!fresh) {
        snprintf (err, err_len, "out of memory");
        return -1;
    }
    int rc = config_load (fresh, cfg->path [0] ? cfg->path : NULL, err, err_len);
    if (rc == 0)
        cfg->pbt = fresh->pbt;
    free (fresh);
    return rc;
}

static uint64_t
s_fnv (uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p [i];
        h *= 1099511628211ull;
    }
    return h;
}

void
config_fingerprint (const config_t *cfg, char *out, size_t out_len)
{
    char text [512];
    int n = snprintf (text, sizeof text, "env=%s size=%u model=%u,%u,%s,%u:",
                      cfg->env, cfg->size, cfg->model.obs_dim, cfg->model.n_actions,
                      cfg->model.activation, cfg->model.n_hidden);
    for (uint32_t i = 0; i < cfg->model.n_hidden && n > 0 && (size_t) n < sizeof text; i++)
        n += snprintf (text + n, sizeof text - n, "%u,", cfg->model.hidden [i]);
    uint64_t h = s_fnv (14695981039346656037ull, text, strlen (text));
    snprintf (out, out_len, "%016llx", (unsigned long long) h);
}
