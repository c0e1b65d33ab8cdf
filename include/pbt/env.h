/*  pbt/env.h: the environment ABI of pbt, version 1.

    A game is a shared object that exports ONE symbol, `pbt_env_entry`, a
    constant pbt_env_t: what the game is (its spec: pure data) and how to
    run it (five functions). pbt-worker, pbtctl and pbt-bench load it with
    dlopen by name (<name>.so in a plugin directory) or by path; pbtd reads
    only the data part (it never calls a function of a game). Build one
    with nothing but this header:

        cc -shared -fPIC -O2 $(pkg-config --cflags pbt-env) -o kuhn.so kuhn.c

    Style: PufferLib Ocean. One object runs n_envs independent instances
    (vectorized); reset and step write into caller-owned arrays; every
    instance has its own seeded pbt_rng_t; nothing is allocated after
    create. Instances auto-reset: when an episode ends, step sets its
    terminal flag and its final scores, and the observation (and mask)
    written is the first of the next episode.

    Array layouts (row-major, P = n_players, D = obs_dim, A = n_actions,
    S = n_shaping):
        actions   [n_envs][P]          int32    what each player does
        obs       [n_envs][P][D]       float32  each player's own view
        mask      [n_envs][P][A]       uint8    1 = legal this step
        rewards   [n_envs][P]          float32  game reward (sparse, zero-sum or not)
        shaping   [n_envs][P][S]       float32  shaping channels (unweighted)
        terminals [n_envs]             uint8    1 if the episode ended this step
        scores    [n_envs][P]          float32  the episode's total game reward,
                                                valid where terminal

    Turns. In a SIMULTANEOUS game every player acts every step. In a
    TURN_BASED game only the players with a legal action act: the env
    writes an all-zero mask row for every other player, and ignores the
    action the host passes for them (0). Rewards may arrive for any player
    at any step (e.g. a showdown pays both). A player with no legal action
    does not act: its step is recorded as a forced one (no policy
    gradient, no entropy).

    Masks. A game that declares masks = 1 writes the mask on every reset
    and step; the policy puts -inf on the logits of illegal actions before
    its softmax (training, sampling, evaluation and the exported policy:
    probabilities are softmax(where(mask, logits, -inf))). A game with
    masks = 0 has every action legal always (the host fills the mask).

    What the host refuses (with the plugin's path in the message): another
    abi_version, a missing entry symbol or function, a spec that
    contradicts itself, an observation with NaN or Inf, a script action
    outside the mask.

    Options. The spec lists every option with its range and default; the
    host checks a configuration's values against it and passes create()
    the values in spec order (defaults filled in). An option with
    obs_per_unit k adds k * value to obs_dim (e.g. a switch that adds a
    feature block).

    Teams. Players split evenly into n_teams teams in index order: the
    team of player p is p / (n_players / n_teams). Ratings use scores
    per team.
*/
#ifndef PBT_ENV_ABI_H
#define PBT_ENV_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PBT_ENV_ABI_VERSION 1
//  The one symbol a plugin exports (a const pbt_env_t, not a function).
#define PBT_ENV_ENTRY       "pbt_env_entry"
//  Limits the host enforces on a spec.
#define PBT_ENV_MAX_PLAYERS 8
#define PBT_ENV_MAX_ACTIONS 1024
#define PBT_ENV_MAX_SHAPING 16
#define PBT_ENV_MAX_OPTIONS 16
#define PBT_ENV_MAX_SCRIPTS 16
#define PBT_ENV_MAX_OBS     65536
#define PBT_ENV_MAX_NAME    47      // bytes of a name, without the NUL

#if defined(__GNUC__)
#   define PBT_ENV_EXPORT __attribute__ ((visibility ("default")))
#else
#   define PBT_ENV_EXPORT
#endif

//  --------------------------------------------------------------------------
//  The per-instance RNG: xoshiro256** seeded by splitmix64 (header-only, so
//  a plugin links nothing of pbt). Same streams as pbt's own rng.

typedef struct { uint64_t s [4]; } pbt_rng_t;

static inline uint64_t
pbt_rng_splitmix64 (uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void
pbt_rng_seed (pbt_rng_t *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s [i] = pbt_rng_splitmix64 (&x);
}

//  An independent stream from one seed: instance e seeds with stream e.
static inline void
pbt_rng_seed_stream (pbt_rng_t *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    uint64_t mixed = pbt_rng_splitmix64 (&x);
    pbt_rng_seed (r, mixed ^ stream);
}

static inline uint64_t
pbt_rng_next (pbt_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t x = s [1] * 5;
    uint64_t result = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s [1] << 17;
    s [2] ^= s [0];
    s [3] ^= s [1];
    s [1] ^= s [2];
    s [0] ^= s [3];
    s [2] ^= t;
    s [3] = (s [3] << 45) | (s [3] >> 19);
    return result;
}

//  Uniform double / float in [0, 1).
static inline double
pbt_rng_uniform (pbt_rng_t *r)
{
    return (double) (pbt_rng_next (r) >> 11) * 0x1.0p-53;
}

static inline float
pbt_rng_uniformf (pbt_rng_t *r)
{
    return (float) (pbt_rng_next (r) >> 40) * 0x1.0p-24f;
}

//  Uniform integer in [0, n), n > 0, without modulo bias.
static inline uint64_t
pbt_rng_below (pbt_rng_t *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = pbt_rng_next (r);
    while (x >= limit);
    return x % n;
}

//  --------------------------------------------------------------------------
//  The spec and the entry

typedef enum {
    PBT_ENV_SIMULTANEOUS = 0,       // every player acts every step
    PBT_ENV_TURN_BASED = 1,         // only players with a legal action act (masks required)
} pbt_env_turns_t;

typedef struct {
    const char *name;               // [a-z0-9_], as written in [env] NAME = VALUE
    double min, max;                // inclusive range
    double dflt;                    // value when the configuration omits it
    int integer;                    // 1: values must be integers
    int obs_per_unit;               // obs_dim grows by this times the value (integer options)
    const char *doc;                // one line
} pbt_env_option_t;

//  Where reset and step write. shaping may have no channels; every pointer
//  is valid (the host provides scratch for what it does not read).
typedef struct {
    float *obs;                     // [n_envs][P][D]
    uint8_t *mask;                  // [n_envs][P][A]
    float *rewards;                 // [n_envs][P]          (step only)
    float *shaping;                 // [n_envs][P][S]       (step only)
    uint8_t *terminals;             // [n_envs]             (step only)
    float *scores;                  // [n_envs][P]          (step only, where terminal)
} pbt_env_buffers_t;

typedef struct {
    //  Identity: checked before anything else is read.
    uint32_t abi_version;           // PBT_ENV_ABI_VERSION
    uint32_t struct_size;           // sizeof (pbt_env_t)
    const char *name;               // file name without ".so", [a-z0-9_-]
    const char *version;            // the game's own version, e.g. "1.0"

    //  The spec: data only (pbtd reads this part and nothing else).
    int n_players;                  // seats per match, 1..PBT_ENV_MAX_PLAYERS
    int n_teams;                    // divides n_players
    int turns;                      // pbt_env_turns_t
    int masks;                      // 1: the env writes legal-action masks
    int obs_dim;                    // observation floats (plus options' obs_per_unit)
    int n_actions;                  // discrete actions
    int n_shaping;                  // shaping channels (weights "shape_<name>")
    const char *const *shaping_names;   // [n_shaping]
    int n_scripts;                  // scripted policies (opponents)
    const char *const *scripts;     // [n_scripts]
    int n_options;
    const pbt_env_option_t *options;    // [n_options]
    const char *obs_doc;            // what an observation holds, in words (export metadata)
    const char *action_doc;         // what each action means

    //  The code (workers, pbtctl, pbt-bench).
    //  n_envs instances seeded from seed (instance e: stream e); options
    //  [n_options] in spec order, already checked. NULL on failure.
    void *(*create) (int n_envs, uint64_t seed, const double *options);
    void (*destroy) (void *self);
    //  Start a new episode in every instance: obs and mask.
    void (*reset) (void *self, const pbt_env_buffers_t *out);
    //  One step of every instance with actions [n_envs][P].
    void (*step) (void *self, const int32_t *actions, const pbt_env_buffers_t *out);
    //  Scripted policy `script` (0..n_scripts-1) plays `player`: write
    //  actions [e * P + player] for every instance (legal ones). May be
    //  NULL when n_scripts is 0.
    void (*script_act) (void *self, int script, int player, int32_t *actions);
} pbt_env_t;

#ifdef __cplusplus
}
#endif

#endif
