/*  match: play one assignment to the end (see match.h).

    Seeding: one master rng from the assignment seed hands out the env seed
    and, per seat, an action-sampling stream and a minibatch-shuffling
    stream, so a run is bit-identical for a given seed (OpenBLAS runs
    single-threaded) whatever the number of envs or seats.
*/
#include "match.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "env.h"
#include "log.h"
#include "nn_fast.h"
#include "ppo.h"
#include "rng.h"
#include "settings.h"

typedef struct {
    int slot;
    int script;             // index into cls->scripts, or -1 for a network seat
    bool train;
    ppo_t *ppo;             // network seats
    ppo_hparams_t hp;
    float shape [PROTO_MAX_KV];     // [n_shaping] shaping weights
    const float *params;    // weights acted with
    float *init_params;     // untrained, seat without state: weights made from its init_seed
    proto_state_t *state;   // trained seats: the result's state, updated in place
    rng_t act_rng;
    rng_t ppo_rng;
    //  Trained seats: the statistics the result carries (proto_stats.h).
    double *ep_game;        // [E] game return of the episode running in env e
    double *ep_shaped;      // [E] its shaping return
    double game_sum, shaped_sum, len_sum;
    uint32_t episodes;
    ppo_stats_t upd_sum;    // sums over iterations of the per-update means
    double ev_sum;
    uint32_t ev_n, iters;
} seat_run_t;

//  Fill a trained seat's statistics from its sums. A value the protocol
//  would refuse (a diverged run's NaN) drops the statistics, not the
//  result: the new state still goes back and pbtd judges it.
static void
s_seat_stats (seat_run_t *run, proto_outcome_t *out, uint64_t assignment_id, int seat)
{
    proto_stats_t *st = &out->stats;
    memset (st, 0, sizeof *st);
    if (run->episodes > 0) {
        double n = run->episodes;
        proto_stats_set (st, PROTO_STAT_GAME_RETURN, run->game_sum / n);
        proto_stats_set (st, PROTO_STAT_SHAPED_RETURN, run->shaped_sum / n);
        proto_stats_set (st, PROTO_STAT_EPISODE_LENGTH, run->len_sum / n);
        st->count [PROTO_STAT_PER_EPISODE] = run->episodes;
    }
    if (run->iters > 0) {
        //  Every iteration makes the same number of minibatch steps, so the
        //  mean of the iterations' means is the mean over all steps.
        const ppo_stats_t *u = &run->upd_sum;
        double n = run->iters;
        proto_stats_set (st, PROTO_STAT_POLICY_LOSS, u->pg_loss / n);
        proto_stats_set (st, PROTO_STAT_VALUE_LOSS, u->v_loss / n);
        proto_stats_set (st, PROTO_STAT_ENTROPY, u->entropy / n);
        proto_stats_set (st, PROTO_STAT_APPROX_KL, u->approx_kl / n);
        proto_stats_set (st, PROTO_STAT_CLIP_FRACTION, u->clipfrac / n);
        proto_stats_set (st, PROTO_STAT_GRAD_NORM, u->grad_norm / n);
        if (run->hp.lr > 0)
            proto_stats_set (st, PROTO_STAT_LR, run->hp.lr);
        st->count [PROTO_STAT_PER_UPDATE] = (uint32_t) u->updates;
    }
    if (run->ev_n > 0) {
        proto_stats_set (st, PROTO_STAT_EXPLAINED_VARIANCE, run->ev_sum / run->ev_n);
        st->count [PROTO_STAT_PER_ITERATION] = run->ev_n;
    }
    char why [PROTO_MAX_TEXT];
    out->has_stats = proto_stats_check (st, why, sizeof why) == 0;
    if (!out->has_stats) {
        log_warn ("stats_dropped", "assignment=%llu seat=%d reason=\"%s\"",
                  (unsigned long long) assignment_id, seat, why);
        memset (st, 0, sizeof *st);
        return;
    }
    //  Every value at full precision, so what pbtd stores can be compared.
    //  The values become part of the format (numbers and the table's
    //  names hold no '%'): passed through %s, the logger would quote the
    //  whole run of pairs as one value.
    char fmt [1024];
    int n = snprintf (fmt, sizeof fmt, "assignment=%%llu seat=%%d agent=%%lld episodes=%%u updates=%%u");
    for (int i = 0; i < PROTO_STAT_COUNT && n > 0 && (size_t) n < sizeof fmt; i++)
        if (proto_stats_has (st, (proto_stat_id_t) i))
            n += snprintf (fmt + n, sizeof fmt - (size_t) n, " %s=%.17g",
                           proto_stat_defs [i].name, st->value [i]);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    log_debug ("seat_stats", fmt, (unsigned long long) assignment_id, seat, (long long) out->id,
               st->count [PROTO_STAT_PER_EPISODE], st->count [PROTO_STAT_PER_UPDATE]);
#pragma GCC diagnostic pop
}

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

//  A [ppo] setting of the assignment, or the table's default when it is
//  absent; -1 with err naming it when out of the table's range.
static int
s_ppo_int (const proto_kvs_t *ppo, const char *name, int *out, char *err, size_t err_len)
{
    const setting_t *s = settings_find ("ppo", name);
    assert (s && s->type == SETTING_INT);
    double v = proto_kvs_get (ppo, name, settings_default ("ppo", name));
    if (settings_check (s, v, err, err_len))
        return -1;
    *out = (int) v;
    return 0;
}

//  Each network seat's legal actions at step t, from the game's masks. A
//  player with none (not its turn) is recorded as forced: only action 0,
//  which the game ignores, so the step has no policy gradient.
static void
s_masks (seat_run_t *seats, int P, const env_vec_t *env, int E, int A, int t)
{
    const uint8_t *mask = env_vec_mask (env);
    for (int s = 0; s < P; s++) {
        seat_run_t *run = &seats [s];
        if (!run->ppo)
            continue;
        uint8_t *m = ppo_mask (run->ppo, t);
        for (int e = 0; e < E; e++) {
            memcpy (m + (size_t) e * A, mask + ((size_t) e * P + run->slot) * A, (size_t) A);
            if (!env_vec_active (env, e, run->slot))
                m [(size_t) e * A] = 1;
        }
    }
}

void
match_result_clear (proto_result_t *result)
{
    if (!result)
        return;
    for (uint32_t s = 0; s < PROTO_MAX_AGENTS; s++)
        proto_state_free (&result->seats [s].state);
    free (result->scores);
    memset (result, 0, sizeof *result);
}

struct _match_t {
    const envspec_t *spec;
    const pbt_env_t *cls;
    int P, S, D, A;         // players, shaping channels, obs size, actions
    int E, T, iters, n_mb;  // envs, steps per rollout, iterations, minibatches
    int iters_done;
    int n_net;              // network seats
    bool first_only;        // each env scores its first episode only
    bool ep_warned;
    nn_arch_t arch;
    size_t n_params;
    rng_t master;
    uint64_t env_seed;
    seat_run_t seats [PROTO_MAX_AGENTS];
    env_vec_t *env;
    float *obs;             // [E][P][D]
    int32_t *actions;       // [E][P]
    float *rewards;         // [E][P]
    float *shaping;         // [E][P][S] (+1: never a zero-sized allocation)
    uint8_t *terminals;     // [E]
    float *scores;          // [E][P]
    int32_t *seat_act;      // [E] one seat's actions
    float *seat_rew;        // [E] one seat's training rewards
    uint8_t *env_done;      // [E] first_only: env already reported an episode
    uint32_t *ep_len;       // [E] decisions so far in env e's running episode
    size_t ep_cap;          // rows allocated in result.scores
    proto_result_t result;
    double t0;
};

//  What both constructors share: the game, its options and the model
//  checked against each other, the master rng seeded. NULL with err.
static match_t *
s_new (const char *env_name, const proto_kvs_t *env_options, const proto_model_t *model,
       uint64_t seed, char *err, size_t err_len)
{
    nn_blas_init ();
    match_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (err, err_len, "out of memory for a match");
        return NULL;
    }
    self->spec = env_find (env_name, err, err_len);
    if (!self->spec)
        goto failed;
    const pbt_env_t *cls = self->cls = envspec_env (self->spec);
    if (envspec_options (self->spec, env_options, NULL, err, err_len) != 0)
        goto failed;
    self->P = cls->n_players;
    self->S = cls->n_shaping;
    self->D = envspec_obs_dim (self->spec, env_options);
    self->A = cls->n_actions;
    assert (self->P >= 1 && self->P <= PROTO_MAX_AGENTS && self->S >= 0 && self->S <= PROTO_MAX_KV);
    if (nn_arch_from_proto (&self->arch, model, err, err_len) != 0)
        goto failed;
    if (self->arch.obs_dim != self->D || self->arch.n_actions != cls->n_actions) {
        snprintf (err, err_len, "model obs_dim=%d n_actions=%d do not fit env %s (obs_dim=%d n_actions=%d)",
                  self->arch.obs_dim, self->arch.n_actions, cls->name, self->D, cls->n_actions);
        goto failed;
    }
    self->n_params = nn_param_count (&self->arch);
    rng_seed (&self->master, seed);
    self->env_seed = rng_next (&self->master);
    return self;
failed:
    match_destroy (&self);
    return NULL;
}

//  Seat s in slot `slot`: its rng streams (drawn in seat order whatever
//  the seat turns out to be, so seeds do not depend on seat kinds).
static int
s_seat_begin (match_t *self, int s, uint32_t slot, char *err, size_t err_len)
{
    seat_run_t *run = &self->seats [s];
    rng_seed (&run->act_rng, rng_next (&self->master));
    rng_seed (&run->ppo_rng, rng_next (&self->master));
    bool taken = false;
    for (int o = 0; o < s; o++)
        taken = taken || self->seats [o].slot == (int) slot;
    if (slot >= (uint32_t) self->P || taken) {
        snprintf (err, err_len, "seats[%d].slot=%u is out of range or taken", s, slot);
        return -1;
    }
    run->slot = (int) slot;
    return 0;
}

static int
s_seat_script (match_t *self, int s, const char *script, char *err, size_t err_len)
{
    seat_run_t *run = &self->seats [s];
    run->script = envspec_script_index (self->spec, script);
    if (run->script < 0) {
        snprintf (err, err_len, "seats[%d].script '%s' is not a script of env %s",
                  s, script, self->cls->name);
        return -1;
    }
    return 0;
}

//  A network seat acting with params, or (params NULL) with weights made
//  from init_seed: the agent's first weights.
static int
s_seat_net (match_t *self, int s, const float *params, uint64_t init_seed,
            char *err, size_t err_len)
{
    seat_run_t *run = &self->seats [s];
    run->script = -1;
    self->n_net++;
    if (!params) {
        run->init_params = malloc (sizeof (float) * self->n_params);
        if (!run->init_params) {
            snprintf (err, err_len, "out of memory for seat %d", s);
            return -1;
        }
        nn_init_seeded (&self->arch, run->init_params, init_seed);
        params = run->init_params;
    }
    run->params = params;
    run->ppo = ppo_new (&self->arch, self->E, self->T, self->n_mb);
    if (!run->ppo) {
        snprintf (err, err_len, "out of memory for seat %d", s);
        return -1;
    }
    return 0;
}

//  A trained seat: the result's state starts as the weights it acts
//  with and the Adam moments it arrived with, and is updated in place.
static int
s_seat_train (match_t *self, int s, const proto_state_t *given, char *err, size_t err_len)
{
    seat_run_t *run = &self->seats [s];
    size_t n_params = self->n_params;
    run->train = true;
    run->ep_game = calloc ((size_t) self->E, sizeof (double));
    run->ep_shaped = calloc ((size_t) self->E, sizeof (double));
    if (!run->ep_game || !run->ep_shaped) {
        snprintf (err, err_len, "out of memory for seat %d", s);
        return -1;
    }
    proto_state_t *st = &self->result.seats [s].state;
    if (proto_state_alloc (st, (uint32_t) n_params) != 0) {
        snprintf (err, err_len, "out of memory for seat %d state", s);
        return -1;
    }
    memcpy (st->params, run->params, sizeof (float) * n_params);
    if (given->adam_m)
        memcpy (st->adam_m, given->adam_m, sizeof (float) * n_params);
    if (given->adam_v)
        memcpy (st->adam_v, given->adam_v, sizeof (float) * n_params);
    st->adam_t = given->adam_t;
    run->state = st;
    run->params = st->params;
    return 0;
}

//  Seat s of a wire assignment.
static int
s_seat_from (match_t *self, int s, const proto_seat_t *seat, const proto_kvs_t *ppo,
             char *err, size_t err_len)
{
    seat_run_t *run = &self->seats [s];
    self->result.seats [s].id = seat->id;
    self->result.seats [s].version = seat->version;
    if (s_seat_begin (self, s, seat->slot, err, err_len))
        return -1;
    if (seat->id == -1)
        return s_seat_script (self, s, seat->script, err, err_len);
    //  No state: the agent's first weights, made from its init seed.
    bool fresh = seat->state.n_params == 0;
    if (!fresh && (seat->state.n_params != self->n_params || !seat->state.params)) {
        snprintf (err, err_len, "seats[%d] (agent %lld) has %u params, model needs %zu",
                  s, (long long) seat->id, seat->state.n_params, self->n_params);
        return -1;
    }
    if (ppo_hparams_from (&run->hp, &seat->hparams, ppo, err, err_len) != 0)
        return -1;
    for (int c = 0; c < self->S; c++) {
        char key [PROTO_MAX_NAME];
        snprintf (key, sizeof key, "shape_%s", self->cls->shaping_names [c]);
        run->shape [c] = (float) proto_kvs_get (&seat->hparams, key, 0);
    }
    if (s_seat_net (self, s, fresh ? NULL : seat->state.params, seat->state.init_seed,
                    err, err_len))
        return -1;
    return seat->train ? s_seat_train (self, s, &seat->state, err, err_len) : 0;
}

//  The environment and the step buffers, then the first observations.
static int
s_buffers (match_t *self, const proto_kvs_t *env_options, char *err, size_t err_len)
{
    size_t E = (size_t) self->E, P = (size_t) self->P;
    self->env = env_vec_new (self->spec, self->E, self->env_seed, env_options, err, err_len);
    if (!self->env)
        return -1;
    self->obs = malloc (sizeof (float) * E * P * (size_t) self->D);
    self->actions = malloc (sizeof (int32_t) * E * P);
    self->rewards = malloc (sizeof (float) * E * P);
    self->shaping = calloc (E * P * (size_t) self->S + 1, sizeof (float));
    self->terminals = malloc (E);
    self->scores = malloc (sizeof (float) * E * P);
    self->seat_act = malloc (sizeof (int32_t) * E);
    self->seat_rew = malloc (sizeof (float) * E);
    self->env_done = calloc (E, 1);
    self->ep_len = calloc (E, sizeof (uint32_t));
    if (!self->obs || !self->actions || !self->rewards || !self->shaping || !self->terminals
    ||  !self->scores || !self->seat_act || !self->seat_rew || !self->env_done || !self->ep_len) {
        snprintf (err, err_len, "out of memory for env %s with %d instances",
                  self->cls->name, self->E);
        return -1;
    }
    if (env_vec_reset (self->env, self->obs, err, err_len))
        return -1;
    self->t0 = s_now ();
    return 0;
}

match_t *
match_new (const proto_assign_t *assign, char *err, size_t err_len)
{
    assert (assign);
    match_t *self = s_new (assign->env, &assign->env_options, &assign->model, assign->seed,
                           err, err_len);
    if (!self)
        return NULL;
    int E, T, iters, n_mb;
    if (s_ppo_int (&assign->ppo, "n_envs", &E, err, err_len)
    ||  s_ppo_int (&assign->ppo, "n_steps", &T, err, err_len)
    ||  s_ppo_int (&assign->ppo, "iterations", &iters, err, err_len)
    ||  s_ppo_int (&assign->ppo, "minibatches", &n_mb, err, err_len))
        goto failed;
    if (((size_t) E * T) % n_mb != 0) {
        snprintf (err, err_len, "ppo.minibatches=%d does not divide n_envs*n_steps=%zu",
                  n_mb, (size_t) E * T);
        goto failed;
    }
    self->E = E, self->T = T, self->iters = iters, self->n_mb = n_mb;
    if (assign->n_seats != (uint32_t) self->P) {
        snprintf (err, err_len, "env %s needs %d seats, assignment has %u",
                  self->cls->name, self->P, assign->n_seats);
        goto failed;
    }
    //  Evaluation counts each env's first episode only: later episodes that
    //  happen to end inside the window are the short ones, and counting
    //  them would bias scores toward quick goals.
    self->first_only = proto_kvs_get (&assign->ppo, "first_episode_only", 0) != 0;
    self->result.assignment_id = assign->assignment_id;
    self->result.n_seats = assign->n_seats;
    for (int s = 0; s < self->P; s++)
        if (s_seat_from (self, s, &assign->seats [s], &assign->ppo, err, err_len))
            goto failed;
    if (s_buffers (self, &assign->env_options, err, err_len))
        goto failed;
    return self;
failed:
    match_destroy (&self);
    return NULL;
}

match_t *
match_new_frozen (const char *env, const proto_kvs_t *env_options,
                  const proto_model_t *model, const match_player_t *players,
                  int n_envs, int n_steps, uint64_t seed, char *err, size_t err_len)
{
    assert (env && env_options && model && players);
    match_t *self = s_new (env, env_options, model, seed, err, err_len);
    if (!self)
        return NULL;
    //  The same ranges as an assignment's [ppo] keys (the settings table).
    if (settings_check (settings_find ("ppo", "n_envs"), n_envs, err, err_len)
    ||  settings_check (settings_find ("ppo", "n_steps"), n_steps, err, err_len))
        goto failed;
    self->E = n_envs, self->T = n_steps, self->iters = 1, self->n_mb = 1;
    self->first_only = true;
    self->result.n_seats = (uint32_t) self->P;
    for (int s = 0; s < self->P; s++) {
        const match_player_t *who = &players [s];
        if (s_seat_begin (self, s, (uint32_t) s, err, err_len))
            goto failed;
        self->result.seats [s].id = -1;
        if (who->script) {
            if (s_seat_script (self, s, who->script, err, err_len))
                goto failed;
            continue;
        }
        if (!who->params || who->n_params != self->n_params) {
            snprintf (err, err_len, "player %d has %zu params, model needs %zu",
                      s, who->n_params, self->n_params);
            goto failed;
        }
        if (s_seat_net (self, s, who->params, 0, err, err_len))
            goto failed;
    }
    if (s_buffers (self, env_options, err, err_len))
        goto failed;
    return self;
failed:
    match_destroy (&self);
    return NULL;
}

void
match_destroy (match_t **self_p)
{
    assert (self_p);
    match_t *self = *self_p;
    if (!self)
        return;
    match_result_clear (&self->result);
    for (int s = 0; s < PROTO_MAX_AGENTS; s++) {
        ppo_destroy (&self->seats [s].ppo);
        free (self->seats [s].ep_game);
        free (self->seats [s].ep_shaped);
        free (self->seats [s].init_params);
    }
    env_vec_destroy (&self->env);
    free (self->obs);
    free (self->actions);
    free (self->rewards);
    free (self->shaping);
    free (self->terminals);
    free (self->scores);
    free (self->seat_act);
    free (self->seat_rew);
    free (self->env_done);
    free (self->ep_len);
    free (self);
    *self_p = NULL;
}

int
match_iterations (const match_t *self)
{
    return self->iters;
}

//  ---------------------------------------------------------------------
//  Rollout

//  Each network seat's observations of step t (t == T: the bootstrap).
static void
s_observe (match_t *self, int t)
{
    int E = self->E, P = self->P, D = self->D;
    for (int s = 0; s < P; s++) {
        seat_run_t *run = &self->seats [s];
        if (!run->ppo)
            continue;
        float *o = ppo_obs (run->ppo, t);
        for (int e = 0; e < E; e++)
            memcpy (o + (size_t) e * D, self->obs + ((size_t) e * P + run->slot) * D,
                    sizeof (float) * (size_t) D);
    }
}

//  Every seat's actions of step t into self->actions.
static int
s_act (match_t *self, int t, char *err, size_t err_len)
{
    int E = self->E, P = self->P;
    if (self->cls->masks)
        s_masks (self->seats, P, self->env, E, self->A, t);
    for (int s = 0; s < P; s++) {
        seat_run_t *run = &self->seats [s];
        if (!run->ppo) {
            if (env_vec_script_act (self->env, run->script, run->slot, self->actions,
                                    err, err_len))
                return -1;
            continue;
        }
        ppo_act (run->ppo, run->params, t, &run->act_rng, self->seat_act);
        for (int e = 0; e < E; e++)
            self->actions [(size_t) e * P + run->slot] = self->seat_act [e];
    }
    return 0;
}

//  Trained seats' rewards of step t: the game's plus their own shaping.
static void
s_reward (match_t *self, int t)
{
    int E = self->E, P = self->P, S = self->S;
    for (int s = 0; s < P; s++) {
        seat_run_t *run = &self->seats [s];
        if (!run->train)
            continue;
        for (int e = 0; e < E; e++) {
            size_t i = (size_t) e * P + run->slot;
            float r = self->rewards [i];
            double sh = 0;
            for (int c = 0; c < S; c++) {
                r += run->shape [c] * self->shaping [i * S + c];
                sh += (double) run->shape [c] * self->shaping [i * S + c];
            }
            self->seat_rew [e] = r;
            run->ep_game [e] += self->rewards [i];
            run->ep_shaped [e] += sh;
        }
        ppo_reward (run->ppo, t, self->seat_rew, self->terminals);
    }
}

//  Episode statistics count every episode that ends, whatever
//  first_episode_only does to the scores.
static void
s_episode_stats (match_t *self)
{
    for (int e = 0; e < self->E; e++) {
        self->ep_len [e]++;
        if (!self->terminals [e])
            continue;
        for (int s = 0; s < self->P; s++) {
            seat_run_t *run = &self->seats [s];
            if (!run->train)
                continue;
            run->game_sum += run->ep_game [e];
            run->shaped_sum += run->ep_shaped [e];
            run->len_sum += self->ep_len [e];
            run->episodes++;
            run->ep_game [e] = run->ep_shaped [e] = 0;
        }
        self->ep_len [e] = 0;
    }
}

//  Append the scores of the episodes that ended this step. The rows grow
//  by doubling, so this allocates O(log episodes) times per match.
static int
s_episode_scores (match_t *self, char *err, size_t err_len)
{
    proto_result_t *result = &self->result;
    int P = self->P;
    for (int e = 0; e < self->E; e++) {
        if (!self->terminals [e] || (self->first_only && self->env_done [e]))
            continue;
        self->env_done [e] = 1;
        if (result->n_episodes >= PROTO_MAX_EPISODES) {
            if (!self->ep_warned)
                log_warn ("match_episodes_capped", "assignment=%llu max=%u",
                          (unsigned long long) result->assignment_id, PROTO_MAX_EPISODES);
            self->ep_warned = true;
            continue;
        }
        if (result->n_episodes == self->ep_cap) {
            size_t cap = self->ep_cap ? self->ep_cap * 2 : 1024;
            float *grown = realloc (result->scores, sizeof (float) * cap * P);
            if (!grown) {
                snprintf (err, err_len, "out of memory for episode scores");
                return -1;
            }
            result->scores = grown;
            self->ep_cap = cap;
        }
        float *row = result->scores + (size_t) result->n_episodes * P;
        for (int s = 0; s < P; s++)
            row [s] = self->scores [(size_t) e * P + self->seats [s].slot];
        result->n_episodes++;
    }
    return 0;
}

int
match_rollout (match_t *self, char *err, size_t err_len)
{
    assert (self);
    for (int t = 0; t < self->T; t++) {
        s_observe (self, t);
        if (s_act (self, t, err, err_len))
            return -1;
        if (env_vec_step (self->env, self->actions, self->obs, self->rewards, self->shaping,
                          self->terminals, self->scores, err, err_len))
            return -1;
        s_reward (self, t);
        s_episode_stats (self);
        if (s_episode_scores (self, err, err_len))
            return -1;
    }
    s_observe (self, self->T);
    return 0;
}

//  ---------------------------------------------------------------------
//  Update and result

void
match_update (match_t *self)
{
    assert (self);
    int it = self->iters_done++;
    for (int s = 0; s < self->P; s++) {
        seat_run_t *run = &self->seats [s];
        if (!run->train)
            continue;
        ppo_stats_t st;
        ppo_update (run->ppo, &run->hp, run->state->params, run->state->adam_m,
                    run->state->adam_v, &run->state->adam_t, &run->ppo_rng, &st);
        run->upd_sum.pg_loss += st.pg_loss;
        run->upd_sum.v_loss += st.v_loss;
        run->upd_sum.entropy += st.entropy;
        run->upd_sum.approx_kl += st.approx_kl;
        run->upd_sum.clipfrac += st.clipfrac;
        run->upd_sum.grad_norm += st.grad_norm;
        run->upd_sum.updates += st.updates;
        run->iters++;
        if (isfinite (st.explained_var)) {
            run->ev_sum += st.explained_var;
            run->ev_n++;
        }
        log_debug ("ppo_update", "assignment=%llu seat=%d iter=%d loss=%.5f pg=%.5f v=%.5f ent=%.4f kl=%.5f clipfrac=%.3f",
                   (unsigned long long) self->result.assignment_id, s, it,
                   st.loss, st.pg_loss, st.v_loss, st.entropy, st.approx_kl, st.clipfrac);
    }
}

const float *
match_scores (const match_t *self, size_t *n_episodes)
{
    assert (self && n_episodes);
    *n_episodes = self->result.n_episodes;
    return self->result.scores;
}

void
match_result (match_t *self, proto_result_t *result)
{
    assert (self && result);
    proto_result_t *r = &self->result;
    r->seconds = s_now () - self->t0;
    //  Frames count the iterations trained, so an aborted match reports
    //  what it did.
    uint64_t frames = (uint64_t) self->E * self->T * (uint64_t) self->iters_done;
    double samples = (double) frames * self->n_net;
    r->samples_per_s = r->seconds > 0 ? samples / r->seconds : 0;
    for (int s = 0; s < self->P; s++) {
        seat_run_t *run = &self->seats [s];
        r->seats [s].frames = run->train ? frames : 0;
        if (run->train)
            s_seat_stats (run, &r->seats [s], r->assignment_id, s);
    }
    *result = *r;
    memset (r, 0, sizeof *r);
    for (int s = 0; s < self->P; s++)
        self->seats [s].state = NULL;
}

proto_state_t *
match_seat_state (match_t *self, int seat)
{
    assert (self);
    if (seat < 0 || seat >= self->P || !self->seats [seat].train)
        return NULL;
    return self->seats [seat].state;
}

int
match_run (const proto_assign_t *assign, proto_result_t *result,
           match_progress_fn *progress, void *progress_arg,
           char *err, size_t err_len)
{
    assert (assign && result);
    memset (result, 0, sizeof *result);
    match_t *self = match_new (assign, err, err_len);
    if (!self)
        return -1;
    int E = self->E, T = self->T;
    for (int it = 0; it < self->iters; it++) {
        if (match_rollout (self, err, err_len)) {
            match_destroy (&self);
            return -1;
        }
        match_update (self);
        uint64_t frames_done = (uint64_t) E * T * (uint64_t) (it + 1);
        if (progress && !progress (progress_arg, frames_done)) {
            snprintf (err, err_len, "aborted");
            match_destroy (&self);
            return -1;
        }
    }
    match_result (self, result);
    match_destroy (&self);
    return 0;
}
