/*  proto: the pbt wire protocol, MessagePack over ZeroMQ.

    Every message is one ZeroMQ frame holding one MessagePack map with string
    keys. Every map carries "v" (protocol version, PROTO_VERSION) and "type"
    (a string naming the message). proto/PROTOCOL.md is the normative spec;
    this header is the C view of it.

    Messages are plain data records (proto_msg_t, a tagged union) so that
    the daemon, the worker, pbtctl and the tests can build and inspect them
    directly. Decoding never trusts the frame: every length and count is
    checked against the bytes that remain before anything is allocated, and
    every failure is reported with a code and a message naming the field.
*/
#ifndef PBT_PROTO_H
#define PBT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto_stats.h"

#define PROTO_VERSION        1
//  Frames larger than this are refused before decoding.
#define PROTO_MAX_FRAME      (64u << 20)
#define PROTO_MAX_AGENTS     8       // agents in one assignment (soccer: 4)
#define PROTO_MAX_KV         32      // entries in an hparams/options map
#define PROTO_MAX_NAME       48      // bytes, including the terminating NUL
#define PROTO_MAX_TEXT       256     // error messages, hostnames
#define PROTO_MAX_HIDDEN     4       // hidden layers in a model
#define PROTO_MAX_PARAMS     (4u << 20)   // floats in one parameter vector
#define PROTO_MAX_EPISODES   (1u << 20)   // episode records in one result
#define PROTO_MAX_RETURNED   8       // assignments one bye may hand back
#define PROTO_MAX_ENVS       16      // games one worker announces in hello

typedef enum {
    PROTO_HELLO = 1,        // worker -> pbtd: "hello"
    PROTO_WELCOME,          // pbtd -> worker: "welcome"
    PROTO_REQUEST,          // worker -> pbtd: "request"  (ask for work)
    PROTO_ASSIGN,           // pbtd -> worker: "assign"
    PROTO_HEARTBEAT,        // worker -> pbtd: "heartbeat" (renews a lease)
    PROTO_RESULT,           // worker -> pbtd: "result"
    PROTO_ACK,              // pbtd -> worker: "ack" (result or heartbeat accepted)
    PROTO_ERROR,            // either way: "error"
    PROTO_CTL,              // pbtctl -> pbtd: "ctl"
    PROTO_CTL_REPLY,        // pbtd -> pbtctl: "ctl_reply"
    PROTO_BYE,              // worker -> pbtd: "bye" (leaving; hands work back)
} proto_type_t;

//  Error codes carried in PROTO_ERROR.code (as strings on the wire, see
//  proto_error_name). Decoding failures map onto the first group.
typedef enum {
    PROTO_OK = 0,
    PROTO_E_TOO_LARGE,      // "too_large": frame over PROTO_MAX_FRAME
    PROTO_E_MALFORMED,      // "malformed": not valid MessagePack / truncated / trailing bytes
    PROTO_E_VERSION,        // "bad_version": "v" missing or not PROTO_VERSION
    PROTO_E_TYPE,           // "unknown_type": "type" missing or unknown
    PROTO_E_FIELD,          // "bad_field": field missing, mistyped or out of range
    PROTO_E_STATE,          // "bad_state": message not valid in the peer's state (e.g. no hello)
    PROTO_E_UNKNOWN,        // "unknown_assignment"
    PROTO_E_EXPIRED,        // "expired": the lease ran out
    PROTO_E_DUPLICATE,      // "duplicate": result already applied
    PROTO_E_STALE,          // "stale_version": agent versions do not match
    PROTO_E_BAD_STATE_DATA, // "bad_weights": NaN/Inf or wrong size
    PROTO_E_DENIED,         // "denied": not allowed (e.g. admin command on read-only endpoint)
    PROTO_E_INTERNAL,       // "internal": pbtd could not complete (e.g. disk error)
    PROTO_E_PAUSED,         // "paused": population is paused / daemon is stopping
    PROTO_E_NOT_YOURS,      // "not_yours": the assignment was given to another worker
    PROTO_E_OVER_LIMIT,     // "over_limit": a request from a worker that holds max_held assignments
    PROTO_E_WRONG_ENV,      // "wrong_env": the worker does not have the population's game build
} proto_code_t;

//  Name/value pair: hyperparameters, environment options, PPO settings.
typedef struct {
    char name [PROTO_MAX_NAME];
    double value;
} proto_kv_t;

typedef struct {
    uint32_t count;
    proto_kv_t items [PROTO_MAX_KV];
} proto_kvs_t;

//  Full training state of one agent. All vectors have n_params floats,
//  little-endian IEEE-754 float32 on the wire, in the layout of nn.h.
typedef struct {
    uint32_t n_params;
    float *params;          // [n_params] policy+value weights
    float *adam_m;          // [n_params] Adam first moment
    float *adam_v;          // [n_params] Adam second moment
    uint64_t adam_t;        // Adam step count
    //  n_params == 0 in a network seat: the agent has no weights yet; the
    //  worker makes them from this seed (nn_init_seeded). On the wire it
    //  is the seat's "init_seed" field.
    uint64_t init_seed;
} proto_state_t;

//  Model architecture; both ends compute n_params from it (nn.h).
typedef struct {
    uint32_t obs_dim;
    uint32_t n_actions;
    uint32_t n_hidden;
    uint32_t hidden [PROTO_MAX_HIDDEN];
    char activation [PROTO_MAX_NAME];   // "tanh" or "relu"
} proto_model_t;

//  One seat in an assignment.
typedef struct {
    int64_t id;             // agent id (agt_<id>); -1 for a scripted seat
    uint64_t version;       // version of the state sent; results must echo it
    uint32_t slot;          // player index in the environment (0..n_players-1)
    bool train;             // false: play with these weights, do not train
    char script [PROTO_MAX_NAME];   // scripted policy name when id == -1
    proto_kvs_t hparams;    // lr, gamma, gae_lambda, ent_coef, clip_coef, shape_*
    proto_state_t state;    // absent (n_params == 0) for scripted seats
} proto_seat_t;

//  A game build a worker can play: its spec's name, version and hash.
typedef struct {
    char name [PROTO_MAX_NAME];
    char version [PROTO_MAX_NAME];
    char hash [PROTO_MAX_NAME];         // 16 hex digits (spec/envspec.h)
} proto_env_id_t;

typedef struct {
    char worker_id [PROTO_MAX_TEXT];    // stable per process, e.g. host:pid
    char host [PROTO_MAX_TEXT];
    uint32_t pid;
    char software [PROTO_MAX_NAME];     // e.g. "pbt-worker/0.1.0"
    uint32_t n_envs;                    // games it has ("envs", may be absent = none)
    proto_env_id_t envs [PROTO_MAX_ENVS];
} proto_hello_t;

typedef struct {
    uint32_t heartbeat_ms;  // worker sends heartbeats at least this often
    uint32_t lease_ms;      // leases last this long after each renewal
    uint32_t max_held;      // assignments a worker may hold at once; 0 = absent (means 1)
} proto_welcome_t;

//  A worker's own time counters, in heartbeats and results (optional:
//  uptime_ms 0 = absent): time spent playing and training since it
//  started, and time since it started. pbtd shows their ratio, the
//  worker's duty cycle.
typedef struct {
    uint64_t busy_ms;
    uint64_t uptime_ms;
} proto_duty_t;

typedef struct {
    uint64_t assignment_id;
    uint64_t seed;
    uint32_t lease_ms;
    char env [PROTO_MAX_NAME];      // "rps", "soccer"
    proto_kvs_t env_options;        // environment options
    proto_kvs_t ppo;                // n_envs, n_steps, iterations, epochs, minibatches, vf_coef, max_grad_norm
    proto_model_t model;
    uint32_t n_seats;
    proto_seat_t seats [PROTO_MAX_AGENTS];
} proto_assign_t;

typedef struct {
    uint64_t assignment_id;
    uint64_t frames_done;           // progress so far, for pbtctl workers
    proto_duty_t duty;
} proto_heartbeat_t;

//  Per seat outcome of an assignment.
typedef struct {
    int64_t id;
    uint64_t version;               // the version received in the assignment
    uint64_t frames;                // frames (actions) trained in this assignment
    proto_state_t state;            // new state; n_params == 0 if not trained
    bool has_stats;                 // "stats" was sent (it may still be empty)
    proto_stats_t stats;            // training statistics (proto_stats.h)
} proto_outcome_t;

typedef struct {
    uint64_t assignment_id;
    double samples_per_s;
    double seconds;
    uint32_t n_seats;
    proto_outcome_t seats [PROTO_MAX_AGENTS];
    uint32_t n_episodes;
    float *scores;                  // [n_episodes][n_seats] episode score per seat, seat order as assigned
    proto_duty_t duty;
} proto_result_t;

typedef struct {
    uint64_t assignment_id;         // 0 when not about an assignment
    bool applied;                   // result: committed now
} proto_ack_t;

//  A worker that stops: the assignments it gives back unfinished. pbtd
//  also gives back whatever else it leased to that peer.
typedef struct {
    uint32_t n_returned;
    uint64_t returned [PROTO_MAX_RETURNED];
} proto_bye_t;

typedef struct {
    proto_code_t code;
    uint64_t assignment_id;         // 0 when not about an assignment
    char message [PROTO_MAX_TEXT];  // human readable, names the problem
} proto_error_t;

//  pbtctl request: a command name and an argument map. Argument values are
//  strings, integers, doubles or booleans; kept as raw MessagePack here and
//  read with proto_args_*.
typedef struct {
    char cmd [PROTO_MAX_NAME];
    char token [PROTO_MAX_TEXT];    // admin token (empty if none)
    uint8_t *args;                  // MessagePack map, may be NULL
    size_t args_len;
} proto_ctl_t;

//  pbtctl reply: ok + a MessagePack body (any value), or an error.
typedef struct {
    bool ok;
    char error [PROTO_MAX_TEXT];
    uint8_t *body;                  // MessagePack value, may be NULL
    size_t body_len;
} proto_ctl_reply_t;

typedef struct {
    proto_type_t type;
    union {
        proto_hello_t hello;
        proto_welcome_t welcome;
        proto_assign_t assign;
        proto_heartbeat_t heartbeat;
        proto_result_t result;
        proto_ack_t ack;
        proto_error_t error;
        proto_ctl_t ctl;
        proto_ctl_reply_t ctl_reply;
        proto_bye_t bye;
    } u;
} proto_msg_t;

//  True for endpoints that may carry plaintext without the config saying
//  so: ipc:// and inproc://, guarded by file permissions or the process
//  and crossing no network stack. Any tcp endpoint, loopback included,
//  needs CURVE or an explicit plaintext setting.
bool proto_endpoint_is_local (const char *endpoint);

//  Wire name of a message type ("hello", ...), or NULL.
const char *proto_type_name (proto_type_t type);

//  Wire name of an error code ("bad_version", ...).
const char *proto_code_name (proto_code_t code);

//  Parse an error code name; returns PROTO_E_INTERNAL if unknown.
proto_code_t proto_code_parse (const char *name);

//  Encode msg into a freshly malloc'd buffer. Returns 0, or -1 if msg is
//  invalid (e.g. counts over the limits). Caller frees *buf_p.
int proto_encode (const proto_msg_t *msg, uint8_t **buf_p, size_t *len_p);

//  Decode one frame into msg (zeroed first). Returns PROTO_OK, or an error
//  code with a NUL-terminated message naming the problem (field name, offset)
//  written to err. On failure msg holds nothing that needs freeing. On
//  success free it with proto_msg_clear.
proto_code_t proto_decode (const uint8_t *buf, size_t len, proto_msg_t *msg,
                           char *err, size_t err_len);

//  The assignment a frame that failed to decode is about, when it can be
//  read: the frame starts with a map whose entries, read in order up to
//  the first one that does not decode, include "type" naming a message
//  that carries an assignment id (heartbeat, result) and exactly one
//  "assignment_id" holding a uint. 0 otherwise. Errors about such a frame
//  carry this id, so the sender can tell which of its messages failed.
uint64_t proto_peek_assignment_id (const uint8_t *buf, size_t len);

//  Free everything a decoded (or hand-built, malloc-owned) message owns and
//  zero it.
void proto_msg_clear (proto_msg_t *msg);

//  Floats in the parameter vector of a model (actor and critic MLPs, the
//  layout of worker/nn.h): the wire's check that a state fits its model.
//  The one count: pbtd (which never links nn) and nn_param_count use it.
uint64_t proto_model_params (const proto_model_t *model);
//  The same for one head: 0 the actor, 1 the critic.
uint64_t proto_model_head_params (const proto_model_t *model, int head);

//  State helpers: allocate zeroed vectors of n floats / free them.
int proto_state_alloc (proto_state_t *state, uint32_t n_params);
void proto_state_free (proto_state_t *state);

//  True if every float in the state is finite.
bool proto_state_finite (const proto_state_t *state);

//  What pbtd checks in a returned training state: every float finite and
//  no negative Adam second moment (its square root is taken). Returns 0,
//  or -1 with the first offender named in err ("adam_v[12] is -0.5").
int proto_state_check (const proto_state_t *state, char *err, size_t err_len);

//  kv helpers. get returns dflt if absent; set replaces or appends
//  (returns -1 if full or name too long).
double proto_kvs_get (const proto_kvs_t *kvs, const char *name, double dflt);
bool proto_kvs_has (const proto_kvs_t *kvs, const char *name);
int proto_kvs_set (proto_kvs_t *kvs, const char *name, double value);

//  Argument helpers for proto_ctl_t.args (a MessagePack map). Each returns
//  dflt when the key is absent or of another type.
int64_t proto_args_int (const uint8_t *args, size_t len, const char *key, int64_t dflt);
double proto_args_double (const uint8_t *args, size_t len, const char *key, double dflt);
//  Copies a string argument into out (NUL-terminated); returns 0, or -1 if absent.
int proto_args_str (const uint8_t *args, size_t len, const char *key, char *out, size_t out_len);
bool proto_args_bool (const uint8_t *args, size_t len, const char *key, bool dflt);

//  Validate that buf holds exactly one well-formed MessagePack value,
//  nested no deeper than 32, with every length within the buffer.
//  Returns 0 or -1 (with err).
int proto_value_check (const uint8_t *buf, size_t len, char *err, size_t err_len);

//  A view of one checked MessagePack value inside a buffer, for walking
//  ctl_reply bodies (pbtctl) without building a tree. Views never own memory.
typedef struct {
    const uint8_t *p;       // first byte of the value
    size_t len;             // bytes of the value (exactly)
} proto_view_t;

//  Make a view of the single value that fills buf (checked as
//  proto_value_check does). Returns 0 or -1.
int proto_view_init (proto_view_t *view, const uint8_t *buf, size_t len);
//  Map lookup by string key; returns 0 and sets out, or -1 if absent/not a map.
int proto_view_get (proto_view_t map, const char *key, proto_view_t *out);
//  Array length (-1 if not an array) and element i (0 or -1).
int64_t proto_view_array_len (proto_view_t array);
int proto_view_array_at (proto_view_t array, uint32_t index, proto_view_t *out);
//  Map size (-1 if not a map) and entry i in wire order (0 or -1).
int64_t proto_view_map_len (proto_view_t map);
int proto_view_map_at (proto_view_t map, uint32_t index, proto_view_t *key, proto_view_t *val);
//  Scalars; return dflt when of another type. Integers read as doubles too.
double proto_view_double (proto_view_t v, double dflt);
int64_t proto_view_int (proto_view_t v, int64_t dflt);
bool proto_view_bool (proto_view_t v, bool dflt);
bool proto_view_is_nil (proto_view_t v);
//  Copy a string value into out (NUL-terminated, truncated); 0 or -1.
int proto_view_str (proto_view_t v, char *out, size_t out_len);

//  Write a MessagePack value (already checked) as JSON to a malloc'd,
//  NUL-terminated string. Binary data is written as a base64 string.
//  Returns NULL on failure.
char *proto_value_to_json (const uint8_t *buf, size_t len, bool pretty);

#endif
