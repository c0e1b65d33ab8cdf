/*  envspec: what pbt knows about a game, read from its plugin's spec.

    Loads an environment plugin (include/pbt/env.h) by name or path,
    checks its ABI version and that its spec is consistent, and answers the
    questions pbtd needs (players, teams, observation and action sizes,
    shaping channels, scripts, options and their ranges, a hash of the
    spec) without ever calling the plugin's code. pbtd links this and
    proto and lib only; the worker core (worker/env.c) adds running the
    game on top of the same loaded object, so there is one loader and one
    set of checks for built-in and third-party games alike.

    Search order for a name: each directory of $PBT_ENV_PATH (colon
    separated), then envs/ beside the running program's directory (the
    build tree), then the installed plugin directory relative to the
    program, then the configured absolute one (PBT_ENV_DIR). A name with
    a '/' is a path.
*/
#ifndef PBT_ENVSPEC_H
#define PBT_ENVSPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "pbt/env.h"
#include "proto.h"

typedef struct _envspec_t envspec_t;

//  Load a plugin by name or path. NULL with err naming the file and what
//  is wrong (not found, not loadable, missing symbol, other ABI version,
//  inconsistent spec).
envspec_t *envspec_load (const char *name_or_path, char *err, size_t err_len);
void envspec_destroy (envspec_t **self_p);

//  A game linked into the program (a test): the same checks as a loaded
//  plugin, `path` naming it in messages. NULL with err.
envspec_t *envspec_wrap (const pbt_env_t *entry, const char *path, char *err, size_t err_len);

//  Loaded once per process and kept (the worker, pbtctl, pbt-bench):
//  the same object for the same name. NULL with err as envspec_load.
const envspec_t *envspec_find (const char *name_or_path, char *err, size_t err_len);

//  Check a spec: returns 0, or -1 with "path: what is wrong". need_code:
//  also require the functions (pbtd passes false).
int envspec_validate (const pbt_env_t *env, const char *path, bool need_code,
                      char *err, size_t err_len);

const pbt_env_t *envspec_env (const envspec_t *self);
const char *envspec_name (const envspec_t *self);
const char *envspec_version (const envspec_t *self);
const char *envspec_path (const envspec_t *self);
//  16 hex digits: FNV-1a over the spec's data (ABI version, name,
//  version, sizes, names, option ranges). Same game build, same hash.
const char *envspec_hash (const envspec_t *self);
//  A further symbol the plugin exports (a game's own extension, e.g.
//  soccer_replay_svg), or NULL.
void *envspec_symbol (const envspec_t *self, const char *name);

//  Options: check kvs (names and ranges against the spec) and write the
//  values in spec order with defaults filled in (values may be NULL).
//  0, or -1 with a message naming the option.
int envspec_options (const envspec_t *self, const proto_kvs_t *kvs, double *values,
                     char *err, size_t err_len);
//  Observation size for options kvs (already checked).
int envspec_obs_dim (const envspec_t *self, const proto_kvs_t *kvs);
//  Index of a script name, or -1.
int envspec_script_index (const envspec_t *self, const char *script);
//  The one seat-to-team rule (pbt/env.h): player p of n_players split
//  evenly into n_teams teams in index order is on team
//  p / (n_players / n_teams). Data only, so pbtd uses it too.
int envspec_team_of (int n_players, int n_teams, int player);
//  The same for this game.
int envspec_team (const envspec_t *self, int player);

//  Every plugin in the search path (first of each name), loaded and kept
//  as envspec_find would. Returns how many (<= max), writing them to out.
int envspec_scan (const envspec_t **out, int max);

//  Fill hello's envs with every game of envspec_scan (name, version,
//  hash): what a worker announces so pbtd can refuse another build.
void envspec_announce (proto_hello_t *hello);

#endif
