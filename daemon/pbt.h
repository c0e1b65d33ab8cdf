/*  pbt: the PBT-MARL rules, as pure functions over in-memory values.

    Rating (paper appendix B.1), eligibility (B.2), selection (B.3),
    inheritance with hyperparameter crossover and mutation (B.4), and
    matchmaking. Nothing here touches the database or the network: pbtd's
    server calls these inside its transactions, and the tests call them with
    seeded rng_t to check every rule at its boundaries.
*/
#ifndef PBT_PBT_H
#define PBT_PBT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "rng.h"

#define PBT_MAX_HPARAMS PROTO_MAX_KV
#define PBT_MAX_SCRIPTS 8
#define PBT_NAME_LEN PROTO_MAX_NAME

typedef enum { PBT_PRIOR_UNIFORM = 0, PBT_PRIOR_LOGUNIFORM = 1 } pbt_prior_t;
typedef enum { PBT_MODE_PERTURB = 0, PBT_MODE_RESAMPLE = 1, PBT_MODE_BOTH = 2 } pbt_mode_t;
typedef enum { PBT_SELECT_PAPER = 0, PBT_SELECT_TRUNCATION = 1 } pbt_selection_t;
typedef enum { PBT_MATCH_UNIFORM = 0, PBT_MATCH_FTW = 1, PBT_MATCH_PFSP = 2 } pbt_matchmaking_t;
typedef enum { PBT_RATING_RESULT = 0, PBT_RATING_EPISODE = 1 } pbt_rating_t;

//  How one hyperparameter is initialised and mutated.
typedef struct {
    char name [PROTO_MAX_NAME];     // "lr", "gamma", "gae_lambda", "ent_coef", "clip_coef", "shape_<ch>"
    pbt_prior_t prior;              // initial values and resamples come from this prior
    double min, max;                // bounds; mutated values are clamped to them
    pbt_mode_t mode;
    double perturb_factors [2];     // perturb multiplies by one of these, 50/50 (default 0.8, 1.2)
    double resample_prob;           // mode both: P(resample) else perturb; mode resample: P(resample) else keep
    double mutate_prob;             // P(this hyperparameter is mutated at all) per evolution (default 1)
    bool evolve;                    // false: fixed at its initial value
    bool has_init;                  // true: start at init instead of sampling the prior
    double init;
} pbt_hparam_spec_t;

typedef struct {
    //  Rating (B.1)
    pbt_rating_t rating;            // result (default): one update per result; episode: the seed's
    double elo_k;                   // K per result (16); with rating = episode, K per episode
    double elo_initial;             // default 0
    //  Eligibility (B.2)
    uint64_t eligible_frames;       // frames trained since creation / last evolution
    uint64_t eligible_matches;      // matches (episodes) played since creation / last evolution
    //  Selection (B.3)
    pbt_selection_t selection;
    double t_select;                // default 0.3
    double truncation_quantile;     // default 0.25
    //  Inheritance (B.4)
    double crossover_prob;          // P(take each hyperparameter from the donor), default 0.5
    uint32_t n_hparams;
    pbt_hparam_spec_t hparams [PBT_MAX_HPARAMS];
    //  Matchmaking
    pbt_matchmaking_t matchmaking;
    double ftw_sigma;               // FTW: weight exp(-(P(win)-0.5)^2 / (2 sigma^2)), default 1/3
    double pfsp_p;                  // PFSP: f_hard(x) = (1-x)^p, default 2
    double snapshot_prob;           // PFSP: P(opponent is a frozen snapshot), default 0.2
    double eval_rate;               // fraction of assignments that are evaluation-only, default 0
    uint32_t frozen_keep;           // PFSP: frozen past snapshots kept per agent, default 4 (0: none)
    //  Scripted opponents: a fraction of training matches puts agents on
    //  one team against one of the environment's scripted policies on the
    //  other. They train the agents; ratings move only in population play.
    double script_rate;             // default 0
    uint32_t n_scripts;             // names below; 0 with script_rate > 0: all of the env's
    char scripts [PBT_MAX_SCRIPTS][PBT_NAME_LEN];
} pbt_config_t;

//  One population member as the rules see it.
typedef struct {
    int64_t id;
    double rating;
    uint64_t frames_since_evolve;
    uint64_t matches_since_evolve;
    bool busy;
} pbt_member_t;

//  Fill cfg with a named preset: "seed" (the Ray reproduction: K=0.1, no
//  eligibility, lr perturbed x0.8/x1.2 or resampled log-uniform [1e-5,1e-2]
//  with p=0.1, gamma only resampled uniform [0.9,0.999] with p=0.1) or
//  "paper" (eligibility on, all of lr, gamma, gae_lambda, ent_coef,
//  clip_coef evolve). Returns 0, or -1 for an unknown name.
int pbt_config_preset (pbt_config_t *cfg, const char *name);

//  Spec for a hyperparameter by name, or NULL.
pbt_hparam_spec_t *pbt_config_hparam (pbt_config_t *cfg, const char *name);

//  Add the spec of an environment shaping channel "shape_<channel>" with
//  defaults (uniform [0, 1], both) unless one exists. Returns 0 or -1.
int pbt_config_add_shaping (pbt_config_t *cfg, const char *channel);

//  Validate a config (e.g. one edited by an operator): probabilities in
//  [0, 1], finite min <= max, log-uniform priors with min > 0, known enums,
//  unique names, init within bounds. Returns 0, or -1 with a message naming
//  the offending field in err. The other functions assert on what this
//  rejects, so pbtd should call it on every config it did not build itself.
int pbt_config_check (const pbt_config_t *cfg, char *err, size_t err_len);

//  Elo expected score of a rated ra against rb: 1/(1+10^((rb-ra)/400)).
double pbt_elo_expected (double ra, double rb);

//  Update ra and rb for one finished episode with scores sa, sb:
//  s = (sign(sa-sb)+1)/2, delta = K (s - E); ra += delta, rb -= delta, so
//  the pair's sum is unchanged.
void pbt_elo_update (const pbt_config_t *cfg, double *ra, double *rb, double sa, double sb);

//  Team rule: each agent is updated against the opposing team's mean
//  rating, using its team's result (s from sign of team scores).
//  ratings[0..n_a-1] are team A, ratings[n_a..n_a+n_b-1] team B.
void pbt_elo_update_teams (const pbt_config_t *cfg, double *ratings, int n_a, int n_b,
                           double score_a, double score_b);

//  One result's rating update, by cfg->rating, from the episodes' scores
//  [n_episodes][n_seats] (seat order). ratings [n_seats] are updated in
//  place; team [n_seats] is each seat's team (0 or 1).
//
//  PBT_RATING_RESULT: one Elo update from the result's aggregate. For each
//  seat, s is its team's mean outcome over the episodes, (wins + draws/2) /
//  episodes, and delta = K (s - E), E against the opponent (two seats) or
//  the opposing team's mean rating (teams, as pbt_elo_update_teams). K does
//  not depend on the number of episodes: a result moves a rating by less
//  than K whatever the assignment's size, and a result's update depends on
//  its episodes only through their outcome counts, so the same games in
//  any order, or every episode count scaled by the same factor, give the
//  same ratings. The fixed point of a pair playing only each other is the
//  Elo gap whose expected score is their win fraction.
//
//  PBT_RATING_EPISODE: the seed's rule, pbt_elo_update (or the team form)
//  once per episode in order.
//
//  Returns 0, or -1 if the seats do not form two non-empty teams.
int pbt_rate_result (const pbt_config_t *cfg, double *ratings, const int *team, int n_seats,
                     const float *scores, uint32_t n_episodes);

//  B.2: may this member evolve now?
bool pbt_eligible (const pbt_config_t *cfg, const pbt_member_t *member);

//  B.3 (or truncation): the donor for pop[i], as an index into pop, or -1
//  for no evolution this time. Only eligible members are considered, i
//  itself must be eligible.
int pbt_select_donor (const pbt_config_t *cfg, const pbt_member_t *pop, int n, int i, rng_t *rng);

//  Initial hyperparameters for a new agent, from the specs.
void pbt_initial_hparams (const pbt_config_t *cfg, proto_kvs_t *out, rng_t *rng);

//  B.4 crossover: each hyperparameter is taken from donor with
//  crossover_prob, else kept from own. Writes out (may alias own).
void pbt_crossover (const pbt_config_t *cfg, const proto_kvs_t *own, const proto_kvs_t *donor,
                    proto_kvs_t *out, rng_t *rng);

//  B.4 mutation of hp in place, per spec, clamped to bounds.
void pbt_mutate (const pbt_config_t *cfg, proto_kvs_t *hp, rng_t *rng);

//  Matchmaking: probabilities of picking each candidate (ratings[0..n-1])
//  as the opponent of an agent rated r, under cfg->matchmaking. probs sums
//  to 1 (uniform if all weights are 0).
void pbt_opponent_probs (const pbt_config_t *cfg, double r, const double *ratings, int n, double *probs);

//  Draw an opponent index by pbt_opponent_probs; -1 if n == 0.
int pbt_pick_opponent (const pbt_config_t *cfg, double r, const double *ratings, int n, rng_t *rng);

#endif
