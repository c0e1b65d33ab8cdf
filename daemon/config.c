/*  config: pbtd's INI configuration. See config.h and docs/config.md.

    Which keys exist, their types, ranges and defaults are lib/settings.c's
    table; this file only says where each parsed value is stored (the
    bindings below) and checks what spans keys (heartbeat below lease, a
    game's players against the population, ...).
*/
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envspec.h"
#include "ini.h"
#include "log.h"
#include "metrics.h"
#include "settings.h"

//  Only what differs from the table's defaults (a test checks that it
//  restates none); `pbtd --print-config` shows every key.
const char *config_embedded =
    "# pbtd's embedded default: rock-paper-scissors, a population of 8,\n"
    "# the seed preset (the Ray reproduction's rules).\n"
    "[security]\n"
    "# The defaults listen on loopback only; say so to use it without CURVE.\n"
    "plaintext = true\n"
    "[env]\n"
    "episode_len = 10\n"
    "[hparam.ent_coef]\n"
    "# An entropy bonus strong enough that self-play settles near rps's Nash\n"
    "# equilibrium (uniform play) instead of chasing the last opponent: the\n"
    "# seed preset's 0.01 leaves agents exploitable (docs/evaluation.md).\n"
    "init = 0.3\n"
    "min = 0.3\n"
    "max = 0.3\n";

#define S_ERR(e, ...) do { \
    snprintf (err, err_len, "%s:%d: [%s] %s: " , ini_name (ini), (e)->line, (e)->section, (e)->key); \
    size_t _n = strlen (err); \
    snprintf (err + _n, err_len > _n ? err_len - _n : 0, __VA_ARGS__); \
    return -1; \
} while (0)

//  CHOICE keys are stored as their index in the table's choices, so the
//  enums must list them in the same order.
_Static_assert (PBT_RATING_RESULT == 0 && PBT_RATING_EPISODE == 1, "[pbt] rating: result|episode");
_Static_assert (PBT_SELECT_PAPER == 0 && PBT_SELECT_TRUNCATION == 1, "[pbt] selection: paper|truncation");
_Static_assert (PBT_MATCH_UNIFORM == 0 && PBT_MATCH_FTW == 1 && PBT_MATCH_PFSP == 2,
                "[pbt] matchmaking: uniform|ftw|pfsp");
_Static_assert (PBT_PRIOR_UNIFORM == 0 && PBT_PRIOR_LOGUNIFORM == 1, "prior: uniform|loguniform");
_Static_assert (PBT_MODE_PERTURB == 0 && PBT_MODE_RESAMPLE == 1 && PBT_MODE_BOTH == 2,
                "mode: perturb|resample|both");
_Static_assert (PBT_LOG_DEBUG == 0 && PBT_LOG_INFO == 1 && PBT_LOG_WARN == 2 && PBT_LOG_ERROR == 3,
                "log_level: debug|info|warn|error");

//  --------------------------------------------------------------------------
//  Where each key goes

typedef enum {
    B_U32, B_U64, B_ENUM, B_BOOL, B_DOUBLE,
    B_STR,          // a char array of `size`
    B_KVS,          // proto_kvs_t: name = number (every key of [ppo])
    B_FN            // text the binding's function parses
} s_kind_t;

//  For B_FN: store text (already checked by the table) at field, or -1
//  with why.
typedef int (s_set_fn) (void *field, const char *text, char *why, size_t why_len);

typedef struct {
    const char *section;
    const char *name;       // NULL: every key of the section
    s_kind_t kind;
    size_t offset;
    size_t size;
    s_set_fn *set;
} s_bind_t;

static int
s_set_control_mode (void *field, const char *text, char *why, size_t why_len)
{
    char *end = NULL;
    unsigned long mode = strtoul (text, &end, 8);
    if (!*text || *end || mode > 0777) {
        snprintf (why, why_len, "expected an octal file mode like 0660, got '%s'", text);
        return -1;
    }
    *(uint32_t *) field = (uint32_t) mode;
    return 0;
}

//  [metrics] listen: the syntax is checked here; whether it can be bound
//  is found out at start, by metrics_new.
static int
s_set_listen (void *field, const char *text, char *why, size_t why_len)
{
    if (metrics_parse_listen (text, NULL, why, why_len))
        return -1;
    if (strlen (text) >= CONFIG_MAX_EP) {
        snprintf (why, why_len, "too long");
        return -1;
    }
    strcpy ((char *) field, text);
    return 0;
}

static int
s_set_hidden (void *field, const char *text, char *why, size_t why_len)
{
    proto_model_t *m = field;
    m->n_hidden = 0;
    const char *p = text;
    while (true) {
        while (isspace ((unsigned char) *p))
            p++;
        char *end;
        errno = 0;
        long h = strtol (p, &end, 10);
        if (end == p || errno || h < 1 || h > 65536 || m->n_hidden == PROTO_MAX_HIDDEN) {
            snprintf (why, why_len, "expected 1..%d comma-separated layer widths in 1..65536, got '%s'",
                      PROTO_MAX_HIDDEN, text);
            return -1;
        }
        m->hidden [m->n_hidden++] = (uint32_t) h;
        p = end;
        while (isspace ((unsigned char) *p))
            p++;
        if (*p == 0)
            return 0;
        if (*p != ',') {
            snprintf (why, why_len, "expected comma-separated layer widths, got '%s'", text);
            return -1;
        }
        p++;
    }
}

//  Names are checked against the environment's scripts once it is known.
static int
s_set_scripts (void *field, const char *text, char *why, size_t why_len)
{
    pbt_config_t *p = field;
    p->n_scripts = 0;
    char list [256];
    if (strlen (text) >= sizeof list) {
        snprintf (why, why_len, "list too long");
        return -1;
    }
    snprintf (list, sizeof list, "%s", text);
    char *save = NULL;
    for (char *t = strtok_r (list, ", ", &save); t; t = strtok_r (NULL, ", ", &save)) {
        if (p->n_scripts >= PBT_MAX_SCRIPTS || strlen (t) >= PBT_NAME_LEN) {
            snprintf (why, why_len, "at most %d names of fewer than %d characters", PBT_MAX_SCRIPTS,
                      PBT_NAME_LEN);
            return -1;
        }
        snprintf (p->scripts [p->n_scripts++], PBT_NAME_LEN, "%s", t);
    }
    if (p->n_scripts == 0) {
        snprintf (why, why_len, "expected a comma-separated list of script names");
        return -1;
    }
    return 0;
}

static int
s_set_factors (void *field, const char *text, char *why, size_t why_len)
{
    double f0, f1;
    char extra;
    if (sscanf (text, " %lf , %lf %c", &f0, &f1, &extra) != 2 || !(f0 > 0) || !(f1 > 0)
    ||  !isfinite (f0) || !isfinite (f1)) {
        snprintf (why, why_len, "expected two positive factors like 0.8,1.2, got '%s'", text);
        return -1;
    }
    double *f = field;
    f [0] = f0;
    f [1] = f1;
    return 0;
}

static int
s_set_init (void *field, const char *text, char *why, size_t why_len)
{
    (void) why;
    (void) why_len;
    pbt_hparam_spec_t *s = field;
    s->init = strtod (text, NULL);      // the table checked it is a number
    s->has_init = true;
    return 0;
}

#define C_(f)  offsetof (config_t, f), sizeof (((config_t *) 0)->f)
#define P_(f)  offsetof (pbt_config_t, f), sizeof (((pbt_config_t *) 0)->f)
#define H_(f)  offsetof (pbt_hparam_spec_t, f), sizeof (((pbt_hparam_spec_t *) 0)->f)

//  Sections stored in config_t.
static const s_bind_t s_config_binds [] = {
    { "daemon", "db", B_STR, C_(db), NULL },
    { "daemon", "worker_endpoint", B_STR, C_(worker_endpoint), NULL },
    { "daemon", "control_endpoint", B_STR, C_(control_endpoint), NULL },
    { "daemon", "lease_ms", B_U32, C_(lease_ms), NULL },
    { "daemon", "heartbeat_ms", B_U32, C_(heartbeat_ms), NULL },
    { "daemon", "seed", B_U64, C_(seed), NULL },
    { "daemon", "log_level", B_ENUM, C_(log_level), NULL },
    { "daemon", "housekeeping_ms", B_U32, C_(housekeeping_ms), NULL },
    { "daemon", "snapshots_keep", B_U32, C_(snapshots_keep), NULL },
    { "daemon", "matches_keep", B_U64, C_(matches_keep), NULL },
    { "daemon", "lineage_keep", B_BOOL, C_(lineage_keep), NULL },
    { "daemon", "episode_rows", B_BOOL, C_(episode_rows), NULL },
    { "daemon", "results_keep", B_U64, C_(results_keep), NULL },
    { "daemon", "payoff_window", B_U64, C_(payoff_window), NULL },
    { "daemon", "checkpoint_ms", B_U32, C_(checkpoint_ms), NULL },
    { "daemon", "wal_max_mb", B_U32, C_(wal_max_mb), NULL },
    { "daemon", "state_cache_mb", B_U32, C_(state_cache_mb), NULL },
    { "daemon", "frame_timeout_ms", B_U32, C_(frame_timeout_ms), NULL },
    { "daemon", "segment_mb", B_U32, C_(segment_mb), NULL },
    { "security", "cert", B_STR, C_(cert), NULL },
    { "security", "allowed_keys", B_STR, C_(allowed_keys), NULL },
    { "security", "plaintext", B_BOOL, C_(plaintext), NULL },
    { "security", "control_mode", B_FN, C_(control_mode), s_set_control_mode },
    { "security", "admin_token_file", B_STR, C_(admin_token_file), NULL },
    { "metrics", "enabled", B_BOOL, C_(metrics_enabled), NULL },
    { "metrics", "listen", B_FN, C_(metrics_listen), s_set_listen },
    { "population", "size", B_U32, C_(size), NULL },
    { "population", "env", B_STR, C_(env), NULL },
    { "population", "preset", B_STR, C_(preset), NULL },
    { "env", "plugin", B_STR, C_(env_plugin), NULL },
    { "model", "hidden", B_FN, C_(model), s_set_hidden },
    { "model", "activation", B_STR, C_(model.activation), NULL },
    { "ppo", NULL, B_KVS, C_(ppo), NULL },
    { NULL }
};

static const s_bind_t s_pbt_binds [] = {
    { "pbt", "rating", B_ENUM, P_(rating), NULL },
    { "pbt", "elo_k", B_DOUBLE, P_(elo_k), NULL },
    { "pbt", "elo_initial", B_DOUBLE, P_(elo_initial), NULL },
    { "pbt", "eligible_frames", B_U64, P_(eligible_frames), NULL },
    { "pbt", "eligible_matches", B_U64, P_(eligible_matches), NULL },
    { "pbt", "selection", B_ENUM, P_(selection), NULL },
    { "pbt", "t_select", B_DOUBLE, P_(t_select), NULL },
    { "pbt", "truncation_quantile", B_DOUBLE, P_(truncation_quantile), NULL },
    { "pbt", "crossover_prob", B_DOUBLE, P_(crossover_prob), NULL },
    { "pbt", "matchmaking", B_ENUM, P_(matchmaking), NULL },
    { "pbt", "ftw_sigma", B_DOUBLE, P_(ftw_sigma), NULL },
    { "pbt", "pfsp_p", B_DOUBLE, P_(pfsp_p), NULL },
    { "pbt", "snapshot_prob", B_DOUBLE, P_(snapshot_prob), NULL },
    { "pbt", "frozen_keep", B_U32, P_(frozen_keep), NULL },
    { "pbt", "eval_rate", B_DOUBLE, P_(eval_rate), NULL },
    { "pbt", "script_rate", B_DOUBLE, P_(script_rate), NULL },
    { "pbt", "script_opponents", B_FN, 0, sizeof (pbt_config_t), s_set_scripts },
    { NULL }
};

static const s_bind_t s_hparam_binds [] = {
    { "hparam.NAME", "prior", B_ENUM, H_(prior), NULL },
    { "hparam.NAME", "min", B_DOUBLE, H_(min), NULL },
    { "hparam.NAME", "max", B_DOUBLE, H_(max), NULL },
    { "hparam.NAME", "mode", B_ENUM, H_(mode), NULL },
    { "hparam.NAME", "factors", B_FN, H_(perturb_factors), s_set_factors },
    { "hparam.NAME", "resample_prob", B_DOUBLE, H_(resample_prob), NULL },
    { "hparam.NAME", "mutate_prob", B_DOUBLE, H_(mutate_prob), NULL },
    { "hparam.NAME", "evolve", B_BOOL, H_(evolve), NULL },
    { "hparam.NAME", "init", B_FN, 0, sizeof (pbt_hparam_spec_t), s_set_init },
    { NULL }
};

static const s_bind_t *
s_binding (const s_bind_t *binds, const setting_t *s)
{
    for (; binds->section; binds++)
        if (!strcmp (binds->section, s->section) && (!binds->name || !strcmp (binds->name, s->name)))
            return binds;
    return NULL;
}

//  One key: the table checks the text, the binding stores it in base.
//  Returns 0, or -1 with why (no file or line: the caller adds them).
static int
s_apply (void *base, const s_bind_t *binds, const char *section, const char *key,
         const char *text, char *why, size_t why_len)
{
    const setting_t *s = settings_find (section, key);
    const s_bind_t *b = s ? s_binding (binds, s) : NULL;
    if (!b) {
        char known [400];
        settings_known (section, known, sizeof known);
        snprintf (why, why_len, "unknown key (known: %s)", known);
        return -1;
    }
    double v;
    if (settings_parse (s, text, &v, why, why_len))
        return -1;
    char *field = (char *) base + b->offset;
    switch (b->kind) {
        case B_U32: assert (b->size == sizeof (uint32_t)); *(uint32_t *) field = (uint32_t) v; break;
        case B_U64:
            //  Read again as an integer: a double does not hold every seed.
            assert (b->size == sizeof (uint64_t));
            *(uint64_t *) field = strtoull (text, NULL, 10);
            break;
        case B_ENUM: assert (b->size == sizeof (int)); *(int *) field = (int) v; break;
        case B_BOOL: assert (b->size == sizeof (bool)); *(bool *) field = v != 0; break;
        case B_DOUBLE: assert (b->size == sizeof (double)); *(double *) field = v; break;
        case B_STR:
            if (strlen (text) >= b->size) {
                snprintf (why, why_len, "too long (at most %zu bytes): '%s'", b->size - 1, text);
                return -1;
            }
            strcpy (field, text);
            break;
        case B_KVS:
            if (proto_kvs_set ((proto_kvs_t *) field, s->name, v)) {
                snprintf (why, why_len, "too many keys");
                return -1;
            }
            break;
        case B_FN:
            return b->set (field, text, why, why_len);
    }
    return 0;
}

//  Every default of section from the table, through the same bindings as
//  a file's keys.
static int
s_apply_defaults (void *base, const s_bind_t *binds, const char *section, char *err, size_t err_len)
{
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        if (strcmp (s->section, section) || !s->dflt)
            continue;
        char why [300];
        if (s_apply (base, binds, section, s->name, s->dflt, why, sizeof why)) {
            snprintf (err, err_len, "[%s] %s: the default '%s': %s", section, s->name, s->dflt, why);
            return -1;
        }
    }
    return 0;
}

//  An entry of the file: s_apply with file:line, section and key.
static int
s_apply_entry (void *base, const s_bind_t *binds, ini_t *ini, const ini_entry_t *e,
               char *err, size_t err_len)
{
    char why [600];
    if (s_apply (base, binds, e->section, e->key, e->value, why, sizeof why))
        S_ERR (e, "%s", why);
    return 0;
}

static bool
s_section_ok (const char *section)
{
    return settings_section_known (section) && settings_owner (section) == SETTING_PBTD;
}

//  "daemon, security, ..." from the table.
static void
s_known_sections (char *out, size_t out_len)
{
    size_t n = 0;
    out [0] = 0;
    const char *last = "";
    for (size_t i = 0; i < settings_count () && n < out_len; i++) {
        const char *sec = settings_at (i)->section;
        if (strcmp (sec, last) && s_section_ok (sec))
            n += (size_t) snprintf (out + n, out_len - n, "%s%s", n ? ", " : "", sec);
        last = sec;
    }
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

//  A hyperparameter pbtd may evolve: one the worker reads (the table's
//  [hparam] values) or a shaping channel of the game.
static bool
s_hparam_name_ok (const pbt_env_t *env, const char *name)
{
    const setting_t *s = settings_find ("hparam", name);
    if (s)
        return true;
    if (!strncmp (name, "shape_", 6))
        for (int i = 0; i < env->n_shaping; i++)
            if (!strcmp (env->shaping_names [i], name + 6))
                return true;
    return false;
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
            if (s_apply_entry (p, s_pbt_binds, ini, e, err, err_len))
                return -1;
        }
        else
        if (!strncmp (e->section, "hparam.", 7)) {
            const char *name = e->section + 7;
            pbt_hparam_spec_t *s = pbt_config_hparam (p, name);
            if (!s) {
                if (!s_hparam_name_ok (env, name))
                {
                    char known [300];
                    settings_known ("hparam", known, sizeof known);
                    S_ERR (e, "unknown hyperparameter '%s' (known: %s, shape_<channel of %s>)",
                           name, known, env->name);
                }
                if (p->n_hparams >= PBT_MAX_HPARAMS)
                    S_ERR (e, "too many hyperparameters");
                s = &p->hparams [p->n_hparams];
                memset (s, 0, sizeof *s);
                snprintf (s->name, sizeof s->name, "%s", name);
                if (s_apply_defaults (s, s_hparam_binds, "hparam.NAME", err, err_len))
                    return -1;
                added [p->n_hparams] = true;
                line [p->n_hparams] = e->line;
                p->n_hparams++;
            }
            uint32_t idx = (uint32_t) (s - p->hparams);
            if (!strcmp (e->key, "min"))
                need [idx] |= 1;
            if (!strcmp (e->key, "max"))
                need [idx] |= 2;
            if (s_apply_entry (s, s_hparam_binds, ini, e, err, err_len))
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
    //  A value the worker would refuse is refused here, at start.
    for (uint32_t i = 0; i < p->n_hparams; i++) {
        const pbt_hparam_spec_t *h = &p->hparams [i];
        const setting_t *s = settings_find ("hparam", h->name);
        if (s && (h->min < s->min || h->max > s->max)) {
            char section [PROTO_MAX_NAME + 8];
            snprintf (section, sizeof section, "hparam.%s", h->name);
            const ini_entry_t *e = ini_find (ini, section, h->max > s->max ? "max" : "min");
            char what [200];
            settings_describe (s, what, sizeof what);
            snprintf (err, err_len, "%s:%d: [%s]: min %g and max %g must be within what a "
                      "worker accepts, %s", ini_name (ini), e ? e->line : 0, section, h->min, h->max,
                      what);
            return -1;
        }
    }
    return 0;
}
//  Any unknown section is an error, even an empty one.
static int
s_check_sections (ini_t *ini, char *err, size_t err_len)
{
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (!s_section_ok (e->section)) {
            char known [300];
            s_known_sections (known, sizeof known);
            snprintf (err, err_len, "%s:%d: unknown section [%s] (known: %s)",
                      ini_name (ini), e->line, e->section, known);
            return -1;
        }
    }
    return 0;
}

//  The game's spec: [env] plugin = PATH, or the plugin named by
//  [population] env. pbtd reads its data and never runs its code.
static int
s_load_spec (config_t *cfg, ini_t *ini, char *err, size_t err_len)
{
    char lerr [PROTO_MAX_TEXT * 2] = "";
    const ini_entry_t *plugin = ini_find (ini, "env", "plugin");
    cfg->spec = envspec_find (plugin ? plugin->value : cfg->env, lerr, sizeof lerr);
    if (!cfg->spec) {
        if (plugin)
            S_ERR (plugin, "%s", lerr);
        snprintf (err, err_len, "%s: [population] env: %s", ini_name (ini), lerr);
        return -1;
    }
    if (plugin && ini_find (ini, "population", "env") && strcmp (cfg->env, envspec_name (cfg->spec)))
        S_ERR (plugin, "the plugin is the game '%s', [population] env says '%s'",
               envspec_name (cfg->spec), cfg->env);
    snprintf (cfg->env, sizeof cfg->env, "%s", envspec_name (cfg->spec));
    return 0;
}

//  An [env] key that is not the table's: an option of the game, which its
//  spec names and bounds. Checked alone first, so a misspelled or
//  out-of-range option is refused with its line.
static int
s_env_option (config_t *cfg, ini_t *ini, const ini_entry_t *e, char *err, size_t err_len)
{
    char *end;
    errno = 0;
    double d = strtod (e->value, &end);
    if (!*e->value || errno || *end || !isfinite (d))
        S_ERR (e, "expected a number, got '%s'", e->value);
    if (strlen (e->key) >= PROTO_MAX_NAME || proto_kvs_set (&cfg->env_options, e->key, d))
        S_ERR (e, "too many options or name too long");
    proto_kvs_t one = { 0 };
    proto_kvs_set (&one, e->key, d);
    char oerr [200] = "";
    if (envspec_options (cfg->spec, &one, NULL, oerr, sizeof oerr))
        S_ERR (e, "%s", oerr);
    return 0;
}

static int
s_load (config_t *cfg, ini_t *ini, char *err, size_t err_len)
{
    memset (cfg, 0, sizeof *cfg);
    if (s_check_sections (ini, err, err_len))
        return -1;
    static const char *sections [] = { "daemon", "security", "metrics", "population", "env",
                                       "model", "ppo", NULL };
    for (int i = 0; sections [i]; i++)
        if (s_apply_defaults (cfg, s_config_binds, sections [i], err, err_len))
            return -1;
    //  [population] decides the env and the preset everything else builds
    //  on, and [env] plugin where the game is read from.
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (e->key && (!strcmp (e->section, "population")
                   || (!strcmp (e->section, "env") && settings_find ("env", e->key)))
        &&  s_apply_entry (cfg, s_config_binds, ini, e, err, err_len))
            return -1;
    }
    if (s_load_spec (cfg, ini, err, err_len))
        return -1;
    const pbt_env_t *env = envspec_env (cfg->spec);
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (!e->key || !strcmp (e->section, "population") || !strncmp (e->section, "hparam.", 7)
        ||  !strcmp (e->section, "pbt"))
            continue;
        if (!strcmp (e->section, "env")) {
            if (settings_find ("env", e->key))
                continue;
            if (s_env_option (cfg, ini, e, err, err_len))
                return -1;
        }
        else
        if (s_apply_entry (cfg, s_config_binds, ini, e, err, err_len))
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

//  What the source sets in section beyond the table's keys ([env]'s game
//  options), as written.
static void
s_print_extra (FILE *out, ini_t *ini, const char *section)
{
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (e->key && !strcmp (e->section, section) && !settings_find (section, e->key))
            fprintf (out, "%s = %s\n", e->key, e->value);
    }
}

static void
s_print_key (FILE *out, ini_t *ini, const setting_t *s, bool template)
{
    char what [200];
    settings_describe (s, what, sizeof what);
    fprintf (out, "# %s (%s)\n", s->doc, what);
    const ini_entry_t *e = template ? NULL : ini_find (ini, s->section, s->name);
    if (e)
        fprintf (out, "%s = %s\n", s->name, e->value);
    else
    if (s->dflt)
        fprintf (out, "#%s = %s\n", s->name, s->dflt);
    else
        fprintf (out, "#%s =\n", s->name);
}

int
config_print (FILE *out, const char *path, char *err, size_t err_len)
{
    assert (out);
    config_t *cfg = malloc (sizeof *cfg);
    if (!cfg) {
        snprintf (err, err_len, "out of memory");
        return -1;
    }
    int rc = config_load (cfg, path, err, err_len);
    free (cfg);
    if (rc)
        return -1;
    ini_t *ini = path ? ini_load_file (path, err, err_len)
                      : ini_load_string (config_embedded, "<embedded>", err, err_len);
    if (!ini)
        return -1;
    fprintf (out, "# pbtd's configuration from %s: a key it sets reads key = value,\n"
                  "# any other #key = its default (docs/config.md).\n", path ? path : "the embedded default");
    const char *last = "";
    for (size_t i = 0; i < settings_count (); i++) {
        const setting_t *s = settings_at (i);
        if (!s_section_ok (s->section))
            continue;
        bool template = !strcmp (s->section, "hparam.NAME");
        if (strcmp (s->section, last)) {
            s_print_extra (out, ini, last);
            if (template) {
                char known [300];
                settings_known ("hparam", known, sizeof known);
                fprintf (out, "\n# One section per evolved hyperparameter, NAME one of %s\n"
                              "# or shape_<channel of the game>; the keys and their defaults:\n", known);
            }
            fprintf (out, "\n%s[%s]\n", template ? "#" : "", s->section);
            last = s->section;
        }
        s_print_key (out, ini, s, template);
    }
    //  The source's own [hparam.*] sections, as written.
    const char *hsec = "";
    for (size_t i = 0; i < ini_count (ini); i++) {
        const ini_entry_t *e = ini_entry (ini, i);
        if (!e->key || strncmp (e->section, "hparam.", 7))
            continue;
        if (strcmp (e->section, hsec))
            fprintf (out, "\n[%s]\n", e->section);
        hsec = e->section;
        fprintf (out, "%s = %s\n", e->key, e->value);
    }
    ini_destroy (&ini);
    return 0;
}
