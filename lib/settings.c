/*  settings: the one table of every configuration key. See settings.h. */
#include "settings.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A number with no bound of its own (its owner checks what it means).
#define ANY 1e300
#define U64_MAX 18446744073709551615.0
#define P62 4611686018427387904.0

#define INT(sec, name, dflt, lo, hi, doc)   { sec, name, SETTING_INT, dflt, lo, hi, NULL, doc }
#define REAL(sec, name, dflt, lo, hi, doc)  { sec, name, SETTING_REAL, dflt, lo, hi, NULL, doc }
#define BOOL(sec, name, dflt, doc)          { sec, name, SETTING_BOOL, dflt, 0, 1, NULL, doc }
#define CHOICE(sec, name, dflt, ch, doc)    { sec, name, SETTING_CHOICE, dflt, 0, 0, ch, doc }
#define PATH(sec, name, dflt, doc)          { sec, name, SETTING_PATH, dflt, 0, 0, NULL, doc }
#define ENDPOINT(sec, name, dflt, doc)      { sec, name, SETTING_ENDPOINT, dflt, 0, 0, NULL, doc }
#define TEXT(sec, name, dflt, doc)          { sec, name, SETTING_TEXT, dflt, 0, 0, NULL, doc }

static const setting_t s_table [] = {
    //  pbtd --config FILE
    PATH ("daemon", "db", "pbt.db", "SQLite database path (created if absent)"),
    ENDPOINT ("daemon", "worker_endpoint", "tcp://127.0.0.1:5555", "ROUTER the workers connect to"),
    ENDPOINT ("daemon", "control_endpoint", "tcp://127.0.0.1:5556", "ROUTER pbtctl connects to"),
    INT ("daemon", "lease_ms", "60000", 10, 86400000,
         "an assignment's lease; renewed by each heartbeat"),
    INT ("daemon", "heartbeat_ms", "2000", 10, 86400000,
         "heartbeat interval told to workers; must be below `lease_ms`"),
    INT ("daemon", "seed", "1", 0, U64_MAX,
         "seeds initial weights and hparams (agent i uses stream i), matchmaking, PBT draws and assignment seeds"),
    CHOICE ("daemon", "log_level", "info", "debug|info|warn|error", "least severe log line written"),
    INT ("daemon", "housekeeping_ms", "1000", 10, 86400000,
         "period of the housekeeping pass (lease expiry, silent peers, metrics, systemd status and watchdog)"),
    INT ("daemon", "snapshots_keep", "4", 1, 1000000,
         "snapshot versions kept per agent, newest first; frozen ones are always kept"),
    INT ("daemon", "matches_keep", "1000000", 0, P62,
         "match rows (episodes) of history kept, newest first, whole assignments at a time; `0` keeps all"),
    BOOL ("daemon", "lineage_keep", "false",
          "also keep every snapshot an evolution copied, so each step of the lineage stays readable"),
    BOOL ("daemon", "episode_rows", "false",
          "also write one `matches` row per episode and one `match_seats` row per seat"),
    INT ("daemon", "results_keep", "100000", 0, P62,
         "without episode rows: the newest results whose rows are kept; `0` keeps all"),
    INT ("daemon", "payoff_window", "20000", 1, 1099511627776.0,
         "episodes per bucket of a payoff cell's recent window"),
    INT ("daemon", "checkpoint_ms", "100", 1, 600000,
         "how often the checkpointer thread copies the WAL into the database (PASSIVE)"),
    INT ("daemon", "wal_max_mb", "256", 1, 1048576,
         "WAL size at which the checkpointer forces a TRUNCATE checkpoint"),
    INT ("daemon", "state_cache_mb", "1024", 0, 1048576,
         "memory for keeping every agent's current training state in pbtd; `0` disables"),
    INT ("daemon", "frame_timeout_ms", "60000", 100, 3600000,
         "a connection whose frame is still partial this long is closed"),
    INT ("daemon", "segment_mb", "64", 1, 1024,
         "state store segments roll over (and are freed) at this size"),

    PATH ("security", "cert", NULL, "pbtd's CURVE certificate (the secret file, e.g. from `pbtctl keygen`)"),
    PATH ("security", "allowed_keys", NULL,
          "directory of public certificates allowed to connect; required with `cert`"),
    BOOL ("security", "plaintext", "false",
          "allow plaintext on tcp endpoints (without `cert`, only ipc:// and inproc:// are otherwise accepted)"),
    TEXT ("security", "control_mode", "0660", "octal file mode of an `ipc://` control socket"),
    PATH ("security", "admin_token_file", NULL,
          "file holding the admin token (16 characters or more) that admin commands need"),

    BOOL ("metrics", "enabled", "false", "serve Prometheus text on `http://LISTEN/metrics`"),
    TEXT ("metrics", "listen", "127.0.0.1:9556",
          "`ADDRESS:PORT`, a numeric IPv4 address or an IPv6 one in brackets (`[::1]:9556`)"),

    INT ("population", "size", "8", 2, 100000, "number of agents (at least the env's players)"),
    TEXT ("population", "env", "rps", "the game: the name of its plugin (`rps`, `soccer`, any `NAME.so` in the plugin path)"),
    CHOICE ("population", "preset", "seed", "seed|paper", "PBT rule preset giving the `[pbt]` and `[hparam.*]` defaults"),

    PATH ("env", "plugin", NULL, "load the game from this file instead of finding `<env>.so` by name"),

    TEXT ("model", "hidden", "64,64", "hidden layer widths, 1 to 4 comma-separated, each 1..65536"),
    CHOICE ("model", "activation", "tanh", "tanh|relu", "hidden layers' activation"),

    //  Sent to workers in every assignment; the worker checks them here too.
    INT ("ppo", "n_envs", "32", 1, 65536, "environments stepped side by side per assignment"),
    INT ("ppo", "n_steps", "128", 1, 100000, "steps per environment per rollout"),
    INT ("ppo", "iterations", "8", 1, 1000000, "rollout-and-update rounds per assignment"),
    INT ("ppo", "epochs", "4", 1, 1000, "passes over each rollout"),
    INT ("ppo", "minibatches", "4", 1, 1048576, "minibatches per epoch; must divide `n_envs × n_steps`"),
    REAL ("ppo", "vf_coef", "0.5", 0, 1e6, "value loss weight"),
    REAL ("ppo", "max_grad_norm", "0.5", 0, 1e9, "global gradient norm clip; `0` disables clipping"),
    BOOL ("ppo", "clip_vloss", "true", "clip the value loss as the policy's"),
    BOOL ("ppo", "norm_adv", "true", "normalise advantages per minibatch"),

    //  Defaults are the presets' common base (daemon/pbt.c reads them
    //  here); a preset changes some, as the docs say.
    CHOICE ("pbt", "rating", "result", "result|episode",
            "`result`: one Elo update per result from its win fraction; `episode`: the seed's update per episode"),
    REAL ("pbt", "elo_k", "16", 0, 1e9,
          "Elo K factor (400-point scale) per result; with `rating = episode` per episode, and the seed preset's is then 0.1"),
    REAL ("pbt", "elo_initial", "0", -1e9, 1e9, "rating of a new agent"),
    INT ("pbt", "eligible_frames", "0", 0, U64_MAX,
         "frames trained since the last evolution before an agent may evolve (paper preset: 200000)"),
    INT ("pbt", "eligible_matches", "0", 0, U64_MAX,
         "episodes played since the last evolution before an agent may evolve (paper preset: 100)"),
    CHOICE ("pbt", "selection", "paper", "paper|truncation",
            "`paper`: random eligible donor, evolve if P(win) < `t_select`; or `truncation`"),
    REAL ("pbt", "t_select", "0.3", 0, 1, "selection threshold"),
    REAL ("pbt", "truncation_quantile", "0.25", 0, 1, "truncation selection's bottom/top fraction (above 0)"),
    REAL ("pbt", "crossover_prob", "0.5", 0, 1, "P(each hyperparameter comes from the donor)"),
    CHOICE ("pbt", "matchmaking", "uniform", "uniform|ftw|pfsp", "how opponents are drawn"),
    REAL ("pbt", "ftw_sigma", "0.3333333333333333", 0, 1e9, "FTW opponent weight width (above 0)"),
    REAL ("pbt", "pfsp_p", "2", 0, 1e9, "PFSP hardness exponent"),
    REAL ("pbt", "snapshot_prob", "0.2", 0, 1,
          "PFSP, 2-player envs: P(an agent's opponent is a frozen past snapshot) once any exists"),
    INT ("pbt", "frozen_keep", "4", 0, 1000,
         "PFSP: frozen past snapshots kept per agent; `0` disables freezing"),
    REAL ("pbt", "eval_rate", "0", 0, 1, "fraction of assignments that are evaluation-only (no seat trains)"),
    REAL ("pbt", "script_rate", "0", 0, 1,
          "fraction of training matches against a scripted team (ratings do not move)"),
    TEXT ("pbt", "script_opponents", NULL,
          "comma-separated script names for `script_rate`; unset means every script of the env"),

    //  One section per evolved hyperparameter; defaults for one the
    //  preset does not already define.
    CHOICE ("hparam.NAME", "prior", "uniform", "uniform|loguniform", "initial values and resamples"),
    REAL ("hparam.NAME", "min", NULL, -ANY, ANY, "lower bound; mutated values are clamped"),
    REAL ("hparam.NAME", "max", NULL, -ANY, ANY, "upper bound; mutated values are clamped"),
    CHOICE ("hparam.NAME", "mode", "both", "perturb|resample|both", "how an evolution mutates it"),
    TEXT ("hparam.NAME", "factors", "0.8,1.2", "the two perturbation factors (positive)"),
    REAL ("hparam.NAME", "resample_prob", "0.2", 0, 1,
          "mode both: P(resample) else perturb; mode resample: P(resample) else keep"),
    REAL ("hparam.NAME", "mutate_prob", "1", 0, 1, "P(this hyperparameter mutates at all in an evolution)"),
    BOOL ("hparam.NAME", "evolve", "true", "`false` keeps the initial value forever"),
    REAL ("hparam.NAME", "init", NULL, -ANY, ANY, "start here instead of sampling the prior"),

    //  The values each seat of an assignment carries; the worker refuses
    //  one out of range and uses the default for one absent.
    REAL ("hparam", "lr", "0.00025", 0, 1, "Adam learning rate"),
    REAL ("hparam", "gamma", "0.99", 0, 1, "discount"),
    REAL ("hparam", "gae_lambda", "0.95", 0, 1, "GAE lambda"),
    REAL ("hparam", "ent_coef", "0.01", 0, 100, "entropy bonus weight"),
    REAL ("hparam", "clip_coef", "0.2", 0, 100, "PPO ratio clip"),

    //  pbt-worker --config FILE
    ENDPOINT ("worker", "connect", "tcp://127.0.0.1:5555", "pbtd's worker endpoint"),
    TEXT ("worker", "id", NULL, "worker id reported to pbtd (unset: `host:pid`)"),
    TEXT ("worker", "server_key", NULL, "pbtd's CURVE public key (Z85, 40 characters) or a file holding it"),
    PATH ("worker", "cert", NULL, "this worker's CURVE certificate (`pbtctl keygen`)"),
    BOOL ("worker", "plaintext", "false", "talk without CURVE on a tcp endpoint that leaves the host"),
    CHOICE ("worker", "log_level", "info", "debug|info|warn|error", "least severe log line written"),
    INT ("worker", "reply_timeout_ms", "5000", 100, 3600000, "resend hello or result after this long without a reply"),
    TEXT ("worker", "env_path", NULL, "directories of game plugins, `:`-separated (sets `PBT_ENV_PATH`)"),
};

#define S_COUNT (sizeof s_table / sizeof s_table [0])

size_t
settings_count (void)
{
    return S_COUNT;
}

const setting_t *
settings_at (size_t index)
{
    return index < S_COUNT ? &s_table [index] : NULL;
}

static const char *
s_section (const char *section)
{
    return strncmp (section, "hparam.", 7) == 0 ? "hparam.NAME" : section;
}

const setting_t *
settings_find (const char *section, const char *name)
{
    assert (section && name);
    section = s_section (section);
    for (size_t i = 0; i < S_COUNT; i++)
        if (!strcmp (s_table [i].section, section) && !strcmp (s_table [i].name, name))
            return &s_table [i];
    return NULL;
}

bool
settings_section_known (const char *section)
{
    section = s_section (section);
    for (size_t i = 0; i < S_COUNT; i++)
        if (!strcmp (s_table [i].section, section))
            return true;
    return false;
}

setting_owner_t
settings_owner (const char *section)
{
    section = s_section (section);
    if (!strcmp (section, "worker"))
        return SETTING_WORKER;
    if (!strcmp (section, "hparam"))
        return SETTING_SEAT;
    return SETTING_PBTD;
}

void
settings_known (const char *section, char *out, size_t out_len)
{
    section = s_section (section);
    size_t n = 0;
    out [0] = 0;
    for (size_t i = 0; i < S_COUNT && n < out_len; i++)
        if (!strcmp (s_table [i].section, section))
            n += (size_t) snprintf (out + n, out_len - n, "%s%s", n ? ", " : "", s_table [i].name);
}

//  CHOICE: index of text in "a|b|c", or -1.
static int
s_choice (const char *choices, const char *text)
{
    size_t len = strlen (text);
    int index = 0;
    for (const char *p = choices; *p; index++) {
        const char *bar = strchr (p, '|');
        size_t n = bar ? (size_t) (bar - p) : strlen (p);
        if (n == len && !strncmp (p, text, n))
            return index;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int
s_parse_bool (const char *s, double *out)
{
    if (!strcmp (s, "true") || !strcmp (s, "1") || !strcmp (s, "yes") || !strcmp (s, "on"))
        *out = 1;
    else
    if (!strcmp (s, "false") || !strcmp (s, "0") || !strcmp (s, "no") || !strcmp (s, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

//  A number written in full: integers are read exactly (seeds are 64-bit),
//  then checked as doubles against the range.
static int
s_parse_number (const char *s, bool integer, double *out)
{
    if (!*s || isspace ((unsigned char) *s))
        return -1;
    char *end;
    errno = 0;
    if (integer) {
        if (*s == '-') {
            long long v = strtoll (s, &end, 10);
            *out = (double) v;
        }
        else {
            unsigned long long v = strtoull (s, &end, 10);
            *out = (double) v;
        }
    }
    else
        *out = strtod (s, &end);
    return errno || *end || !isfinite (*out) ? -1 : 0;
}

//  A bound as people write it: 65536, 0.25, 2^40, 2^64-1.
static void
s_bound (double v, char *out, size_t out_len)
{
    int e;
    if (v == U64_MAX)
        snprintf (out, out_len, "2^64-1");
    else
    if (v >= 4294967296.0 && frexp (v, &e) == 0.5)
        snprintf (out, out_len, "2^%d", e - 1);
    else
        snprintf (out, out_len, "%.15g", v);
}

void
settings_describe (const setting_t *s, char *out, size_t out_len)
{
    assert (s);
    char lo [32], hi [32];
    s_bound (s->min, lo, sizeof lo);
    s_bound (s->max, hi, sizeof hi);
    switch (s->type) {
        case SETTING_INT:
            snprintf (out, out_len, "an integer in %s..%s", lo, hi);
            break;
        case SETTING_REAL:
            if (s->min <= -ANY && s->max >= ANY)
                snprintf (out, out_len, "a number");
            else
                snprintf (out, out_len, "a number in %s..%s", lo, hi);
            break;
        case SETTING_BOOL:
            snprintf (out, out_len, "true or false");
            break;
        case SETTING_CHOICE: {
            size_t n = (size_t) snprintf (out, out_len, "one of ");
            for (const char *p = s->choices; *p && n + 2 < out_len; p++)
                n += (size_t) snprintf (out + n, out_len - n, *p == '|' ? ", " : "%c", *p);
            break;
        }
        case SETTING_PATH:
            snprintf (out, out_len, "a path");
            break;
        case SETTING_ENDPOINT:
            snprintf (out, out_len, "a ZeroMQ endpoint like tcp://127.0.0.1:5555");
            break;
        case SETTING_TEXT:
            snprintf (out, out_len, "text");
            break;
    }
}

int
settings_parse (const setting_t *s, const char *text, double *number, char *err, size_t err_len)
{
    assert (s && text && number);
    *number = 0;
    bool ok = true;
    switch (s->type) {
        case SETTING_INT:
        case SETTING_REAL:
            ok = s_parse_number (text, s->type == SETTING_INT, number) == 0
              && *number >= s->min && *number <= s->max;
            break;
        case SETTING_BOOL:
            ok = s_parse_bool (text, number) == 0;
            break;
        case SETTING_CHOICE: {
            int index = s_choice (s->choices, text);
            ok = index >= 0;
            *number = index;
            break;
        }
        case SETTING_PATH:
            ok = *text != 0;
            break;
        case SETTING_ENDPOINT:
            ok = strstr (text, "://") != NULL;
            break;
        case SETTING_TEXT:
            break;
    }
    if (ok)
        return 0;
    char what [200];
    settings_describe (s, what, sizeof what);
    snprintf (err, err_len, "expected %s, got '%s'", what, text);
    return -1;
}

int
settings_check (const setting_t *s, double value, char *err, size_t err_len)
{
    assert (s);
    assert (s->type == SETTING_INT || s->type == SETTING_REAL || s->type == SETTING_BOOL);
    bool ok = value >= s->min && value <= s->max;
    if (s->type != SETTING_REAL)
        ok = ok && value == floor (value);
    if (ok)
        return 0;
    char what [200];
    settings_describe (s, what, sizeof what);
    snprintf (err, err_len, "%s.%s=%g out of range: expected %s", s->section, s->name, value,
              s->type == SETTING_BOOL ? "0 or 1" : what);
    return -1;
}

double
settings_default (const char *section, const char *name)
{
    const setting_t *s = settings_find (section, name);
    assert (s && s->dflt);
    double v = 0;
    char err [200];
    int rc = settings_parse (s, s->dflt, &v, err, sizeof err);
    assert (rc == 0);
    (void) rc;
    return v;
}
