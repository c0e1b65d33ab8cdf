/*  export: `pbtctl export AGENT -o FILE.safetensors`.

    Fetches an agent's current training state from pbtd ("agent_state")
    and writes its actor and critic as a safetensors file that PyTorch
    loads straight into two nn.Sequential MLPs (names actor.0.weight,
    actor.0.bias, actor.2.weight, ..., critic.0.weight, ...; little-endian
    float32), with the environment, observation encoding, architecture,
    rating and hyperparameters in __metadata__.

    The agent record is also what `pbtctl eval` plays with, so the fetch
    lives here and eval shares it.
*/
#ifndef PBT_EXPORT_H
#define PBT_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "ctl.h"
#include "nn.h"
#include "proto.h"

//  One agent as pbtd's agent_state reply describes it. A plain record
//  (like proto's messages): fill with export_agent_fetch, free with
//  export_agent_clear.
typedef struct {
    char id [PROTO_MAX_NAME];       // "agt_3"
    int64_t num_id;                 // 3
    char env [PROTO_MAX_NAME];
    proto_kvs_t env_options;
    proto_kvs_t hparams;
    proto_kvs_t ppo;                // PPO settings if pbtd sent them (else empty)
    proto_model_t model;
    nn_arch_t arch;
    double rating;
    uint64_t frames;
    uint64_t version;
    uint64_t generation;
    uint32_t n_params;
    float *params;                  // [n_params], nn.h layout
} export_agent_t;

//  pbtctl export. argv[0] is "export". Returns a pbtctl exit code.
int export_cmd (ctl_t *ctl, int argc, char **argv);

//  Ask pbtd for agent's state and fill out. Returns 0, or a pbtctl exit
//  code (1 refused or malformed, 3 unreachable) with the reason printed.
int export_agent_fetch (ctl_t *ctl, const char *agent, export_agent_t *out);

//  Fill out from an agent_state reply body (a MessagePack map). Returns 0,
//  or -1 with the reason in err.
int export_agent_parse (const uint8_t *body, size_t len, export_agent_t *out,
                        char *err, size_t err_len);

void export_agent_clear (export_agent_t *agent);

//  Write agent as a safetensors file at path. Returns 0, or -1 with err.
int export_write_safetensors (const char *path, const export_agent_t *agent,
                              char *err, size_t err_len);

//  At most this many policies in an exported mixture.
#define EXPORT_MAX_MIXTURE 256

//  Write k agents (one architecture) and their mixture weights [k] as one
//  safetensors file: agent i's tensors are "policies.<i>.actor.0.weight",
//  ..., "policies.<i>.critic.<2L>.bias", then "mixture.weights" [k]; the
//  __metadata__ holds the shared description (env, observation, layers)
//  and "mixture", a JSON list of {index, agent, version, weight}. Returns
//  0, or -1 with err.
int export_write_mixture (const char *path, const export_agent_t *agents, const float *weights,
                          int k, char *err, size_t err_len);

//  What an observation of env (with options) holds, in words.
const char *export_obs_description (const char *env, const proto_kvs_t *options);

#endif
