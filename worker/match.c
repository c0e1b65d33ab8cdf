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
#include "nn.h"
#include "ppo.h"
#include "rng.h"
#include "settings.h"

typedef struct {
    const proto_seat_t *seat;
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

int
match_run (const proto_assign_t *assign, proto_result_t *result,
           match_progress_fn *progress, void *progress_arg,
           char *err, size_t err_len)
{
    assert (assign && result);
    int rc = -1;
    memset (result, 0, sizeof *result);
    seat_run_t seats [PROTO_MAX_AGENTS];
    memset (seats, 0, sizeof seats);
    env_vec_t *env = NULL;
    float *obs = NULL, *rewards = NULL, *shaping = NULL, *scores = NULL, *seat_rew = NULL;
    uint8_t *env_done = NULL;       // first_episode_only: env already reported an episode
    uint32_t *ep_len = NULL;        // [E] decisions so far in env e's running episode
    int32_t *actions = NULL, *seat_act = NULL;
    uint8_t *terminals = NULL;
    size_t ep_cap = 0;
    bool ep_warned = false;
    nn_blas_init ();

    const envspec_t *spec = env_find (assign->env, err, err_len);
    if (!spec)
        goto cleanup;
    const pbt_env_t *cls = envspec_env (spec);
    if (envspec_options (spec, &assign->env_options, NULL, err, err_len) != 0)
        goto cleanup;
    int P = cls->n_players, S = cls->n_shaping, D = envspec_obs_dim (spec, &assign->env_options);
    int A = cls->n_actions;
    assert (P >= 1 && P <= PROTO_MAX_AGENTS && S >= 0 && S <= PROTO_MAX_KV);
    nn_arch_t arch;
    if (nn_arch_from_proto (&arch, &assign->model, err, err_len) != 0)
        goto cleanup;
    if (arch.obs_dim != D || arch.n_actions != cls->n_actions) {
        snprintf (err, err_len, "model obs_dim=%d n_actions=%d do not fit env %s (obs_dim=%d n_actions=%d)",
                  arch.obs_dim, arch.n_actions, cls->name, D, cls->n_actions);
        goto cleanup;
    }
    int E, T, iters, n_mb;
    if (s_ppo_int (&assign->ppo, "n_envs", &E, err, err_len)
    ||  s_ppo_int (&assign->ppo, "n_steps", &T, err, err_len)
    ||  s_ppo_int (&assign->ppo, "iterations", &iters, err, err_len)
    ||  s_ppo_int (&assign->ppo, "minibatches", &n_mb, err, err_len))
        goto cleanup;
    if (((size_t) E * T) % n_mb != 0) {
        snprintf (err, err_len, "ppo.minibatches=%d does not divide n_envs*n_steps=%zu",
                  n_mb, (size_t) E * T);
        goto cleanup;
    }
    if (assign->n_seats != (uint32_t) P) {
        snprintf (err, err_len, "env %s needs %d seats, assignment has %u", cls->name, P, assign->n_seats);
        goto cleanup;
    }
    size_t n_params = nn_param_count (&arch);
    rng_t master;
    rng_seed (&master, assign->seed);
    uint64_t env_seed = rng_next (&master);
    bool slot_used [PROTO_MAX_AGENTS] = { false };
    int n_net = 0;

    result->assignment_id = assign->assignment_id;
    result->n_seats = assign->n_seats;
    for (int s = 0; s < P; s++) {
        const proto_seat_t *seat = &assign->seats [s];
        seat_run_t *run = &seats [s];
        run->seat = seat;
        rng_seed (&run->act_rng, rng_next (&master));
        rng_seed (&run->ppo_rng, rng_next (&master));
        result->seats [s].id = seat->id;
        result->seats [s].version = seat->version;
        if (seat->slot >= (uint32_t) P || slot_used [seat->slot]) {
            snprintf (err, err_len, "seats[%d].slot=%u is out of range or taken", s, seat->slot);
            goto cleanup;
        }
        slot_used [seat->slot] = true;
        run->slot = (int) seat->slot;
        if (seat->id == -1) {
            run->script = envspec_script_index (spec, seat->script);
            if (run->script < 0) {
                snprintf (err, err_len, "seats[%d].script '%s' is not a script of env %s",
                          s, seat->script, cls->name);
                goto cleanup;
            }
            continue;
        }
        run->script = -1;
        n_net++;
        //  No state: the agent's first weights, made from its init seed.
        bool fresh = seat->state.n_params == 0;
        if (!fresh && (seat->state.n_params != n_params || !seat->state.params)) {
            snprintf (err, err_len, "seats[%d] (agent %lld) has %u params, model needs %zu",
                      s, (long long) seat->id, seat->state.n_params, n_params);
            goto cleanup;
        }
        if (fresh) {
            run->init_params = malloc (sizeof (float) * n_params);
            if (!run->init_params) {
                snprintf (err, err_len, "out of memory for seat %d", s);
                goto cleanup;
            }
            nn_init_seeded (&arch, run->init_params, seat->state.init_seed);
        }
        const float *given = fresh ? run->init_params : seat->state.params;
        if (ppo_hparams_from (&run->hp, &seat->hparams, &assign->ppo, err, err_len) != 0)
            goto cleanup;
        for (int c = 0; c < S; c++) {
            char key [PROTO_MAX_NAME];
            snprintf (key, sizeof key, "shape_%s", cls->shaping_names [c]);
            run->shape [c] = (float) proto_kvs_get (&seat->hparams, key, 0);
        }
        run->ppo = ppo_new (&arch, E, T, n_mb);
        if (!run->ppo) {
            snprintf (err, err_len, "out of memory for seat %d", s);
            goto cleanup;
        }
        run->train = seat->train;
        run->params = given;
        if (run->train) {
            run->ep_game = calloc ((size_t) E, sizeof (double));
            run->ep_shaped = calloc ((size_t) E, sizeof (double));
            if (!run->ep_game || !run->ep_shaped) {
                snprintf (err, err_len, "out of memory for seat %d", s);
                goto cleanup;
            }
            proto_state_t *st = &result->seats [s].state;
            if (proto_state_alloc (st, (uint32_t) n_params) != 0) {
                snprintf (err, err_len, "out of memory for seat %d state", s);
                goto cleanup;
            }
            memcpy (st->params, given, sizeof (float) * n_params);
            if (seat->state.adam_m)
                memcpy (st->adam_m, seat->state.adam_m, sizeof (float) * n_params);
            if (seat->state.adam_v)
                memcpy (st->adam_v, seat->state.adam_v, sizeof (float) * n_params);
            st->adam_t = seat->state.adam_t;
            run->state = st;
            run->params = st->params;
        }
    }

    env = env_vec_new (spec, E, env_seed, &assign->env_options, err, err_len);
    if (!env)
        goto cleanup;
    obs = malloc (sizeof (float) * (size_t) E * P * D);
    actions = malloc (sizeof (int32_t) * (size_t) E * P);
    rewards = malloc (sizeof (float) * (size_t) E * P);
    shaping = malloc (sizeof (float) * ((size_t) E * P * S + 1));
    terminals = malloc ((size_t) E);
    scores = malloc (sizeof (float) * (size_t) E * P);
    seat_act = malloc (sizeof (int32_t) * (size_t) E);
    seat_rew = malloc (sizeof (float) * (size_t) E);
    //  Evaluation counts each env's first episode only: later episodes that
    //  happen to end inside the window are the short ones, and counting
    //  them would bias scores toward quick goals.
    bool first_only = proto_kvs_get (&assign->ppo, "first_episode_only", 0) != 0;
    env_done = calloc ((size_t) E, 1);
    ep_len = calloc ((size_t) E, sizeof (uint32_t));
    if (!env || !obs || !actions || !rewards || !shaping || !terminals || !scores
    ||  !seat_act || !seat_rew || !env_done || !ep_len) {
        snprintf (err, err_len, "out of memory for env %s with %d instances", cls->name, E);
        goto cleanup;
    }
    memset (shaping, 0, sizeof (float) * ((size_t) E * P * S + 1));
    if (env_vec_reset (env, obs, err, err_len))
        goto cleanup;

    double t0 = s_now ();
    for (int it = 0; it < iters; it++) {
        for (int t = 0; t <= T; t++) {
            //  Observations of step t (t == T: the bootstrap for GAE).
            for (int s = 0; s < P; s++) {
                seat_run_t *run = &seats [s];
                if (!run->ppo)
                    continue;
                float *o = ppo_obs (run->ppo, t);
                for (int e = 0; e < E; e++)
                    memcpy (o + (size_t) e * D, obs + ((size_t) e * P + run->slot) * D,
                            sizeof (float) * (size_t) D);
            }
            if (t == T)
                break;
            if (cls->masks)
                s_masks (seats, P, env, E, A, t);
            for (int s = 0; s < P; s++) {
                seat_run_t *run = &seats [s];
                if (!run->ppo) {
                    if (env_vec_script_act (env, run->script, run->slot, actions, err, err_len))
                        goto cleanup;
                    continue;
                }
                ppo_act (run->ppo, run->params, t, &run->act_rng, seat_act);
                for (int e = 0; e < E; e++)
                    actions [(size_t) e * P + run->slot] = seat_act [e];
            }
            if (env_vec_step (env, actions, obs, rewards, shaping, terminals, scores,
                              err, err_len))
                goto cleanup;
            for (int s = 0; s < P; s++) {
                seat_run_t *run = &seats [s];
                if (!run->train)
                    continue;
                for (int e = 0; e < E; e++) {
                    size_t i = (size_t) e * P + run->slot;
                    float r = rewards [i];
                    double sh = 0;
                    for (int c = 0; c < S; c++) {
                        r += run->shape [c] * shaping [i * S + c];
                        sh += (double) run->shape [c] * shaping [i * S + c];
                    }
                    seat_rew [e] = r;
                    run->ep_game [e] += rewards [i];
                    run->ep_shaped [e] += sh;
                }
                ppo_reward (run->ppo, t, seat_rew, terminals);
            }
            //  Episode statistics count every episode that ends, whatever
            //  first_episode_only does to the scores.
            for (int e = 0; e < E; e++) {
                ep_len [e]++;
                if (!terminals [e])
                    continue;
                for (int s = 0; s < P; s++) {
                    seat_run_t *run = &seats [s];
                    if (!run->train)
                        continue;
                    run->game_sum += run->ep_game [e];
                    run->shaped_sum += run->ep_shaped [e];
                    run->len_sum += ep_len [e];
                    run->episodes++;
                    run->ep_game [e] = run->ep_shaped [e] = 0;
                }
                ep_len [e] = 0;
            }
            for (int e = 0; e < E; e++) {
                if (!terminals [e] || (first_only && env_done [e]))
                    continue;
                env_done [e] = 1;
                if (result->n_episodes >= PROTO_MAX_EPISODES) {
                    if (!ep_warned)
                        log_warn ("match_episodes_capped", "assignment=%llu max=%u",
                                  (unsigned long long) assign->assignment_id, PROTO_MAX_EPISODES);
                    ep_warned = true;
                    continue;
                }
                if (result->n_episodes == ep_cap) {
                    size_t cap = ep_cap ? ep_cap * 2 : 1024;
                    float *grown = realloc (result->scores, sizeof (float) * cap * P);
                    if (!grown) {
                        snprintf (err, err_len, "out of memory for episode scores");
                        goto cleanup;
                    }
                    result->scores = grown;
                    ep_cap = cap;
                }
                float *row = result->scores + (size_t) result->n_episodes * P;
                for (int s = 0; s < P; s++)
                    row [s] = scores [(size_t) e * P + seats [s].slot];
                result->n_episodes++;
            }
        }
        for (int s = 0; s < P; s++) {
            seat_run_t *run = &seats [s];
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
                       (unsigned long long) assign->assignment_id, s, it,
                       st.loss, st.pg_loss, st.v_loss, st.entropy, st.approx_kl, st.clipfrac);
        }
        uint64_t frames_done = (uint64_t) E * T * (uint64_t) (it + 1);
        if (progress && !progress (progress_arg, frames_done)) {
            snprintf (err, err_len, "aborted");
            goto cleanup;
        }
    }
    result->seconds = s_now () - t0;
    double samples = (double) E * T * iters * n_net;
    result->samples_per_s = result->seconds > 0 ? samples / result->seconds : 0;
    for (int s = 0; s < P; s++) {
        result->seats [s].frames = seats [s].train ? (uint64_t) E * T * (uint64_t) iters : 0;
        if (seats [s].train)
            s_seat_stats (&seats [s], &result->seats [s], assign->assignment_id, s);
    }
    rc = 0;

cleanup:
    if (rc != 0)
        match_result_clear (result);
    for (int s = 0; s < PROTO_MAX_AGENTS; s++) {
        ppo_destroy (&seats [s].ppo);
        free (seats [s].ep_game);
        free (seats [s].ep_shaped);
        free (seats [s].init_params);
    }
    free (ep_len);
    env_vec_destroy (&env);
    free (obs);
    free (actions);
    free (rewards);
    free (shaping);
    free (terminals);
    free (scores);
    free (seat_act);
    free (seat_rew);
    free (env_done);
    return rc;
}
