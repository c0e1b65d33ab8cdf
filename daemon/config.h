/*  config: pbtd's settings, from an INI file (or the embedded default) and
    command-line overrides. Keys, types, ranges and defaults are the table
    of lib/settings.h; docs/config.md is generated from it.

    Loading is strict: an unknown section or key, or a value that does not
    parse or is out of range, fails the whole load with "file:line: ..." so
    pbtd never runs on a configuration it half understood.
*/
#ifndef PBTD_CONFIG_H
#define PBTD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pbt.h"
#include "proto.h"

//  spec/envspec.h: a game's spec, read from its plugin.
typedef struct _envspec_t envspec_t;

#define CONFIG_MAX_PATH 1024
#define CONFIG_MAX_EP   256

typedef struct {
    char path [CONFIG_MAX_PATH];            // config file, "" for the embedded default
    //  [daemon]
    char db [CONFIG_MAX_PATH];
    char worker_endpoint [CONFIG_MAX_EP];
    char control_endpoint [CONFIG_MAX_EP];
    uint32_t lease_ms;
    uint32_t heartbeat_ms;
    uint64_t seed;
    int log_level;
    uint32_t housekeeping_ms;
    uint32_t frame_timeout_ms;
    uint32_t segment_mb;                    // state store segments roll over (and are freed) at this size              // a connection whose frame is still partial this long is closed
    uint32_t snapshots_keep;
    uint64_t matches_keep;                  // newest match rows (episodes) kept, 0 = all
    bool lineage_keep;                      // keep the snapshots evolutions copied
    bool episode_rows;                      // also one row per episode (matches, match_seats)
    uint64_t results_keep;                  // newest results' rows kept without episode rows, 0 = all
    uint64_t payoff_window;                 // episodes per recent bucket of a payoff cell
    uint32_t checkpoint_ms;                 // WAL checkpoint interval (checkpointer thread)
    uint32_t wal_max_mb;                    // WAL size that forces a truncating checkpoint
    uint32_t state_cache_mb;                // budget for keeping current states in memory
    //  [security]
    char cert [CONFIG_MAX_PATH];            // pbtd's CURVE certificate (secret file); "" = no CURVE
    char allowed_keys [CONFIG_MAX_PATH];    // directory of public certificates allowed to connect
    bool plaintext;                         // explicitly allow plaintext on non-local endpoints
    bool repair;                            // --repair: start on a damaged state store, falling back
    uint32_t control_mode;                  // file mode of an ipc:// control socket (default 0660)
    char admin_token [128];                 // read from admin_token_file; "" = none
    char admin_token_file [CONFIG_MAX_PATH];
    //  [metrics]
    bool metrics_enabled;                   // serve Prometheus text (default false)
    char metrics_listen [CONFIG_MAX_EP];    // ADDRESS:PORT, default 127.0.0.1:9556
    //  [population]
    uint32_t size;
    char env [PROTO_MAX_NAME];
    char preset [PROTO_MAX_NAME];
    const envspec_t *spec;                  // the game's spec (loaded once, kept)
    char env_plugin [CONFIG_MAX_PATH];      // [env] plugin = PATH, or "" (by name)
    //  [env], [model], [ppo]
    proto_kvs_t env_options;
    proto_model_t model;                    // obs_dim and n_actions from the env
    uint32_t n_params;                      // proto_model_params of the model
    proto_kvs_t ppo;
    //  [pbt], [hparam.*]
    pbt_config_t pbt;
} config_t;

//  The configuration used when pbtd runs without --config: only what
//  differs from lib/settings.c's defaults.
extern const char *config_embedded;

//  Load path (NULL: the embedded default) and print it as an INI file
//  naming every key pbtd reads: the ones it sets as key = value, the
//  others commented out with their default, each under its one-line doc.
//  Returns 0, or -1 with err as config_load.
int config_print (FILE *out, const char *path, char *err, size_t err_len);

//  Load path (NULL: the embedded default) into cfg. Returns 0, or -1 with
//  a message naming file:line, the key and what was expected.
int config_load (config_t *cfg, const char *path, char *err, size_t err_len);

//  Re-read cfg->path and, if it is valid, replace only cfg->pbt (the [pbt]
//  and [hparam.*] sections). Returns 0, or -1 (cfg untouched) with err.
int config_reload_pbt (config_t *cfg, char *err, size_t err_len);

//  After command-line overrides: refuse plaintext on endpoints that leave
//  the host unless [security] plaintext = true, and read the admin token.
//  Returns 0, or -1 with a message in err.
int config_check_security (config_t *cfg, char *err, size_t err_len);

//  A short stable fingerprint of the settings that shape stored state
//  (env, options, model, population size), hex in out (>= 17 bytes).
void config_fingerprint (const config_t *cfg, char *out, size_t out_len);

#endif
