/*  envspec: load and check an environment plugin's spec (see envspec.h). */
#include "envspec.h"

#include <assert.h>
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PBT_ENV_DIR
#   define PBT_ENV_DIR "/usr/local/lib/pbt/envs"
#endif
#ifndef PBT_ENV_RELDIR
#   define PBT_ENV_RELDIR "../lib/pbt/envs"
#endif

#define S_MAX_DIRS   16
#define S_MAX_CACHED 64

struct _envspec_t {
    void *handle;                   // dlopen handle
    const pbt_env_t *env;
    char path [PATH_MAX];
    char hash [17];
};

static void
s_err (char *err, size_t err_len, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
s_err (char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    if (err && err_len)
        vsnprintf (err, err_len, fmt, ap);
    va_end (ap);
}

//  Names appear in config keys, hparam names and file names.
static bool
s_name_ok (const char *name, bool dash)
{
    if (!name || !*name || strlen (name) > PBT_ENV_MAX_NAME)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'
           || (dash && *p == '-')))
            return false;
    return true;
}

//  Names in list [n]: each valid, none twice.
static int
s_names_ok (const char *const *list, int n, const char *what, const char *path,
            char *err, size_t err_len)
{
    if (n > 0 && !list) {
        s_err (err, err_len, "%s: spec: %d %s declared but the list is NULL", path, n, what);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!s_name_ok (list [i], true)) {
            s_err (err, err_len, "%s: spec: %s[%d] '%s' is not a name ([a-z0-9_-], 1..%d bytes)",
                   path, what, i, list [i] ? list [i] : "(null)", PBT_ENV_MAX_NAME);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp (list [i], list [j])) {
                s_err (err, err_len, "%s: spec: %s '%s' appears twice", path, what, list [i]);
                return -1;
            }
    }
    return 0;
}

static int
s_option_ok (const pbt_env_option_t *o, int i, const char *path, char *err, size_t err_len)
{
    if (!s_name_ok (o->name, false)) {
        s_err (err, err_len, "%s: spec: options[%d] name '%s' is not a name ([a-z0-9_])",
               path, i, o->name ? o->name : "(null)");
        return -1;
    }
    if (!isfinite (o->min) || !isfinite (o->max) || !isfinite (o->dflt) || o->min > o->max) {
        s_err (err, err_len, "%s: spec: option %s has range [%g, %g] (needs finite min <= max)",
               path, o->name, o->min, o->max);
        return -1;
    }
    if (o->dflt < o->min || o->dflt > o->max) {
        s_err (err, err_len, "%s: spec: option %s default %g is outside [%g, %g]",
               path, o->name, o->dflt, o->min, o->max);
        return -1;
    }
    if (o->integer && (o->min != floor (o->min) || o->max != floor (o->max)
                    || o->dflt != floor (o->dflt))) {
        s_err (err, err_len, "%s: spec: integer option %s has a non-integer bound or default",
               path, o->name);
        return -1;
    }
    if (o->obs_per_unit < 0 || (o->obs_per_unit && (!o->integer || o->min < 0
        || o->max * o->obs_per_unit > PBT_ENV_MAX_OBS))) {
        s_err (err, err_len, "%s: spec: option %s obs_per_unit %d needs a small non-negative "
               "integer option", path, o->name, o->obs_per_unit);
        return -1;
    }
    return 0;
}

int
envspec_validate (const pbt_env_t *e, const char *path, bool need_code, char *err, size_t err_len)
{
    if (e->abi_version != PBT_ENV_ABI_VERSION) {
        s_err (err, err_len, "%s: built for environment ABI version %u, this pbt speaks version %d "
               "(rebuild it against this pbt/env.h)", path, e->abi_version, PBT_ENV_ABI_VERSION);
        return -1;
    }
    if (e->struct_size != sizeof (pbt_env_t)) {
        s_err (err, err_len, "%s: pbt_env_t is %u bytes in the plugin, %zu here (header mismatch)",
               path, e->struct_size, sizeof (pbt_env_t));
        return -1;
    }
    if (!s_name_ok (e->name, true)) {
        s_err (err, err_len, "%s: spec: name '%s' is not a name ([a-z0-9_-], 1..%d bytes)",
               path, e->name ? e->name : "(null)", PBT_ENV_MAX_NAME);
        return -1;
    }
    if (!e->version || !*e->version || strlen (e->version) > PBT_ENV_MAX_NAME) {
        s_err (err, err_len, "%s: spec: version is empty or longer than %d bytes", path,
               PBT_ENV_MAX_NAME);
        return -1;
    }
#define S_RANGE(field, lo, hi) \
    if (e->field < (lo) || e->field > (hi)) { \
        s_err (err, err_len, "%s: spec: " #field " = %d is outside %d..%d", path, e->field, \
               (int) (lo), (int) (hi)); \
        return -1; \
    }
    S_RANGE (n_players, 1, PBT_ENV_MAX_PLAYERS);
    S_RANGE (n_teams, 1, e->n_players);
    S_RANGE (turns, PBT_ENV_SIMULTANEOUS, PBT_ENV_TURN_BASED);
    S_RANGE (masks, 0, 1);
    S_RANGE (obs_dim, 0, PBT_ENV_MAX_OBS);
    S_RANGE (n_actions, 1, PBT_ENV_MAX_ACTIONS);
    S_RANGE (n_shaping, 0, PBT_ENV_MAX_SHAPING);
    S_RANGE (n_scripts, 0, PBT_ENV_MAX_SCRIPTS);
    S_RANGE (n_options, 0, PBT_ENV_MAX_OPTIONS);
#undef S_RANGE
    if (e->n_players % e->n_teams) {
        s_err (err, err_len, "%s: spec: %d players do not split evenly into %d teams",
               path, e->n_players, e->n_teams);
        return -1;
    }
    if (e->turns == PBT_ENV_TURN_BASED && !e->masks) {
        s_err (err, err_len, "%s: spec: a turn-based game must write masks (masks = 1): "
               "the mask says who is to move", path);
        return -1;
    }
    if (s_names_ok (e->shaping_names, e->n_shaping, "shaping channel", path, err, err_len)
    ||  s_names_ok (e->scripts, e->n_scripts, "script", path, err, err_len))
        return -1;
    for (int i = 0; i < e->n_shaping; i++)
        if (strchr (e->shaping_names [i], '-')) {
            s_err (err, err_len, "%s: spec: shaping channel '%s' may not contain '-'", path,
                   e->shaping_names [i]);
            return -1;
        }
    if (e->n_options > 0 && !e->options) {
        s_err (err, err_len, "%s: spec: %d options declared but the list is NULL", path,
               e->n_options);
        return -1;
    }
    int obs_max = e->obs_dim;
    for (int i = 0; i < e->n_options; i++) {
        if (s_option_ok (&e->options [i], i, path, err, err_len))
            return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp (e->options [i].name, e->options [j].name)) {
                s_err (err, err_len, "%s: spec: option '%s' appears twice", path,
                       e->options [i].name);
                return -1;
            }
        obs_max += (int) e->options [i].max * e->options [i].obs_per_unit;
    }
    if (obs_max < 1 || obs_max > PBT_ENV_MAX_OBS) {
        s_err (err, err_len, "%s: spec: observations of %d floats (needs 1..%d for every option "
               "value)", path, obs_max, PBT_ENV_MAX_OBS);
        return -1;
    }
    if (need_code) {
        const char *missing = !e->create ? "create" : !e->destroy ? "destroy"
                            : !e->reset ? "reset" : !e->step ? "step"
                            : e->n_scripts > 0 && !e->script_act ? "script_act" : NULL;
        if (missing) {
            s_err (err, err_len, "%s: function %s is missing (NULL in %s)", path, missing,
                   PBT_ENV_ENTRY);
            return -1;
        }
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Hash: FNV-1a 64 over a canonical text of the spec's data.

typedef struct {
    uint64_t h;
} s_fnv_t;

static void
s_fnv (s_fnv_t *f, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_fnv (s_fnv_t *f, const char *fmt, ...)
{
    char buf [512];
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (buf, sizeof buf, fmt, ap);
    va_end (ap);
    for (int i = 0; i < n && i < (int) sizeof buf - 1; i++) {
        f->h ^= (uint8_t) buf [i];
        f->h *= 0x100000001b3ULL;
    }
}

static void
s_hash (const pbt_env_t *e, char *out)
{
    s_fnv_t f = { 0xcbf29ce484222325ULL };
    s_fnv (&f, "abi=%u;name=%s;version=%s;players=%d;teams=%d;turns=%d;masks=%d;obs=%d;"
           "actions=%d;", e->abi_version, e->name, e->version, e->n_players, e->n_teams,
           e->turns, e->masks, e->obs_dim, e->n_actions);
    for (int i = 0; i < e->n_shaping; i++)
        s_fnv (&f, "shaping=%s;", e->shaping_names [i]);
    for (int i = 0; i < e->n_scripts; i++)
        s_fnv (&f, "script=%s;", e->scripts [i]);
    for (int i = 0; i < e->n_options; i++) {
        const pbt_env_option_t *o = &e->options [i];
        s_fnv (&f, "option=%s:%.17g:%.17g:%.17g:%d:%d;", o->name, o->min, o->max, o->dflt,
               o->integer, o->obs_per_unit);
    }
    snprintf (out, 17, "%016llx", (unsigned long long) f.h);
}

//  --------------------------------------------------------------------------
//  Loading

envspec_t *
envspec_load (const char *name_or_path, char *err, size_t err_len);

static envspec_t *
s_load_path (const char *path, const char *want_name, char *err, size_t err_len)
{
    //  RTLD_LOCAL: two games may define the same static names.
    void *handle = dlopen (path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        s_err (err, err_len, "%s: cannot load: %s", path, dlerror ());
        return NULL;
    }
    dlerror ();
    const pbt_env_t *e = dlsym (handle, PBT_ENV_ENTRY);
    const char *dl = dlerror ();
    if (dl || !e) {
        s_err (err, err_len, "%s: no symbol %s (not a pbt environment plugin?)", path,
               PBT_ENV_ENTRY);
        dlclose (handle);
        return NULL;
    }
    if (envspec_validate (e, path, true, err, err_len)) {
        dlclose (handle);
        return NULL;
    }
    if (want_name && strcmp (e->name, want_name)) {
        s_err (err, err_len, "%s: declares the game '%s', expected '%s' (file name and spec "
               "name must agree)", path, e->name, want_name);
        dlclose (handle);
        return NULL;
    }
    envspec_t *self = calloc (1, sizeof *self);
    if (!self) {
        dlclose (handle);
        s_err (err, err_len, "%s: out of memory", path);
        return NULL;
    }
    self->handle = handle;
    self->env = e;
    snprintf (self->path, sizeof self->path, "%s", path);
    s_hash (e, self->hash);
    return self;
}

//  The directories searched for NAME.so, in order.
static int
s_dirs (char dirs [S_MAX_DIRS][PATH_MAX])
{
    int n = 0;
    const char *ep = getenv ("PBT_ENV_PATH");
    if (ep && *ep) {
        const char *p = ep;
        while (*p && n < S_MAX_DIRS - 3) {
            size_t len = strcspn (p, ":");
            if (len > 0 && len < PATH_MAX)
                snprintf (dirs [n++], PATH_MAX, "%.*s", (int) len, p);
            p += len;
            if (*p == ':')
                p++;
        }
    }
    char exe [PATH_MAX];
    ssize_t len = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe [len] = 0;
        char *slash = strrchr (exe, '/');
        if (slash) {
            *slash = 0;
            snprintf (dirs [n++], PATH_MAX, "%.*s/../envs", PATH_MAX - 16, exe);
            snprintf (dirs [n++], PATH_MAX, "%.*s/%s", PATH_MAX / 2, exe, PBT_ENV_RELDIR);
        }
    }
    snprintf (dirs [n++], PATH_MAX, "%s", PBT_ENV_DIR);
    return n;
}

envspec_t *
envspec_load (const char *name_or_path, char *err, size_t err_len)
{
    assert (name_or_path);
    if (strchr (name_or_path, '/'))
        return s_load_path (name_or_path, NULL, err, err_len);
    if (!s_name_ok (name_or_path, true)) {
        s_err (err, err_len, "'%s' is not a game name ([a-z0-9_-]) or a path", name_or_path);
        return NULL;
    }
    char dirs [S_MAX_DIRS][PATH_MAX];
    int n = s_dirs (dirs);
    char tried [1024] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        char path [PATH_MAX + 64];
        snprintf (path, sizeof path, "%.*s/%s.so", PATH_MAX - 1, dirs [i], name_or_path);
        if (access (path, F_OK) == 0) {
            char real [PATH_MAX];
            return s_load_path (realpath (path, real) ? real : path, name_or_path, err, err_len);
        }
        if (used < sizeof tried)
            used += (size_t) snprintf (tried + used, sizeof tried - used, "%s%s",
                                       used ? ":" : "", dirs [i]);
    }
    s_err (err, err_len, "no plugin %s.so for the game '%s' (searched %s; set PBT_ENV_PATH or "
           "[env] plugin = PATH)", name_or_path, name_or_path, tried);
    return NULL;
}

envspec_t *
envspec_wrap (const pbt_env_t *e, const char *path, char *err, size_t err_len)
{
    assert (e && path);
    if (envspec_validate (e, path, true, err, err_len))
        return NULL;
    envspec_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_err (err, err_len, "%s: out of memory", path);
        return NULL;
    }
    self->env = e;
    snprintf (self->path, sizeof self->path, "%s", path);
    s_hash (e, self->hash);
    return self;
}

void
envspec_destroy (envspec_t **self_p)
{
    assert (self_p);
    envspec_t *self = *self_p;
    if (!self)
        return;
    if (self->handle)
        dlclose (self->handle);
    free (self);
    *self_p = NULL;
}

//  Process-wide cache for envspec_find: plugins stay loaded (the code of
//  a running game must not be unmapped).
static envspec_t *s_cache [S_MAX_CACHED];
static int s_cached;

static void
s_cache_free (void)
{
    for (int i = 0; i < s_cached; i++)
        envspec_destroy (&s_cache [i]);
    s_cached = 0;
}

static const envspec_t *
s_cache_add (envspec_t *spec)
{
    if (s_cached == 0)
        atexit (s_cache_free);
    if (s_cached == S_MAX_CACHED) {
        envspec_destroy (&spec);
        return NULL;
    }
    s_cache [s_cached++] = spec;
    return spec;
}

const envspec_t *
envspec_find (const char *name_or_path, char *err, size_t err_len)
{
    assert (name_or_path);
    bool is_path = strchr (name_or_path, '/') != NULL;
    char real [PATH_MAX];
    if (is_path && realpath (name_or_path, real))
        name_or_path = real;
    for (int i = 0; i < s_cached; i++) {
        if (is_path ? !strcmp (s_cache [i]->path, name_or_path)
                    : !strcmp (s_cache [i]->env->name, name_or_path))
            return s_cache [i];
    }
    envspec_t *spec = envspec_load (name_or_path, err, err_len);
    if (!spec)
        return NULL;
    //  The same game found again by path: keep the first.
    for (int i = 0; i < s_cached; i++)
        if (!strcmp (s_cache [i]->path, spec->path)) {
            envspec_destroy (&spec);
            return s_cache [i];
        }
    const envspec_t *kept = s_cache_add (spec);
    if (!kept)
        s_err (err, err_len, "%s: too many plugins loaded (%d)", name_or_path, S_MAX_CACHED);
    return kept;
}

int
envspec_scan (const envspec_t **out, int max)
{
    char dirs [S_MAX_DIRS][PATH_MAX];
    int n_dirs = s_dirs (dirs), n = 0;
    for (int d = 0; d < n_dirs && n < max; d++) {
        DIR *dir = opendir (dirs [d]);
        if (!dir)
            continue;
        struct dirent *de;
        while ((de = readdir (dir)) && n < max) {
            size_t len = strlen (de->d_name);
            if (len < 4 || strcmp (de->d_name + len - 3, ".so"))
                continue;
            char name [PBT_ENV_MAX_NAME + 1];
            if (len - 3 > PBT_ENV_MAX_NAME)
                continue;
            snprintf (name, sizeof name, "%.*s", (int) (len - 3), de->d_name);
            bool seen = false;
            for (int i = 0; i < n; i++)
                seen |= !strcmp (out [i]->env->name, name);
            if (seen)
                continue;
            char err [512];
            //  By name: the first directory that has it wins, as for a lookup.
            const envspec_t *spec = envspec_find (name, err, sizeof err);
            if (spec)
                out [n++] = spec;
        }
        closedir (dir);
    }
    return n;
}

void
envspec_announce (proto_hello_t *hello)
{
    const envspec_t *specs [PROTO_MAX_ENVS];
    int n = envspec_scan (specs, PROTO_MAX_ENVS);
    hello->n_envs = 0;
    for (int i = 0; i < n; i++) {
        proto_env_id_t *id = &hello->envs [hello->n_envs++];
        snprintf (id->name, sizeof id->name, "%s", envspec_name (specs [i]));
        snprintf (id->version, sizeof id->version, "%s", envspec_version (specs [i]));
        snprintf (id->hash, sizeof id->hash, "%s", envspec_hash (specs [i]));
    }
}

const pbt_env_t *
envspec_env (const envspec_t *self)
{
    return self->env;
}

const char *
envspec_name (const envspec_t *self)
{
    return self->env->name;
}

const char *
envspec_version (const envspec_t *self)
{
    return self->env->version;
}

const char *
envspec_path (const envspec_t *self)
{
    return self->path;
}

const char *
envspec_hash (const envspec_t *self)
{
    return self->hash;
}

void *
envspec_symbol (const envspec_t *self, const char *name)
{
    return self->handle ? dlsym (self->handle, name) : NULL;
}

int
envspec_options (const envspec_t *self, const proto_kvs_t *kvs, double *values,
                 char *err, size_t err_len)
{
    const pbt_env_t *e = self->env;
    for (int i = 0; values && i < e->n_options; i++)
        values [i] = e->options [i].dflt;
    for (uint32_t k = 0; kvs && k < kvs->count; k++) {
        const proto_kv_t *kv = &kvs->items [k];
        int i = 0;
        while (i < e->n_options && strcmp (e->options [i].name, kv->name))
            i++;
        if (i == e->n_options) {
            char known [512] = "";
            size_t used = 0;
            for (int j = 0; j < e->n_options && used < sizeof known; j++)
                used += (size_t) snprintf (known + used, sizeof known - used, "%s%s",
                                           j ? ", " : "", e->options [j].name);
            s_err (err, err_len, "%s has no option '%s' (known: %s)", e->name, kv->name,
                   used ? known : "none");
            return -1;
        }
        const pbt_env_option_t *o = &e->options [i];
        if (!(kv->value >= o->min && kv->value <= o->max)
        ||  (o->integer && kv->value != floor (kv->value))) {
            if (o->integer && o->min == 0 && o->max == 1)
                s_err (err, err_len, "%s option %s=%g must be 0 or 1", e->name, kv->name,
                       kv->value);
            else
                s_err (err, err_len, "%s option %s=%g must be %s in %g..%g", e->name, kv->name,
                       kv->value, o->integer ? "an integer" : "a number", o->min, o->max);
            return -1;
        }
        if (values)
            values [i] = kv->value;
    }
    return 0;
}

int
envspec_obs_dim (const envspec_t *self, const proto_kvs_t *kvs)
{
    const pbt_env_t *e = self->env;
    int dim = e->obs_dim;
    for (int i = 0; i < e->n_options; i++)
        if (e->options [i].obs_per_unit)
            dim += e->options [i].obs_per_unit
                 * (int) (kvs ? proto_kvs_get (kvs, e->options [i].name, e->options [i].dflt)
                                     : e->options [i].dflt);
    return dim;
}

int
envspec_script_index (const envspec_t *self, const char *script)
{
    for (int i = 0; i < self->env->n_scripts; i++)
        if (!strcmp (self->env->scripts [i], script))
            return i;
    return -1;
}

int
envspec_team_of (int n_players, int n_teams, int player)
{
    assert (n_teams >= 1 && n_players % n_teams == 0);
    assert (player >= 0 && player < n_players);
    return player / (n_players / n_teams);
}

int
envspec_team (const envspec_t *self, int player)
{
    return envspec_team_of (self->env->n_players, self->env->n_teams, player);
}
