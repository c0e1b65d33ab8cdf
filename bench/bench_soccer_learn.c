/*  pbt-bench soccer-learn: does one soccer team learn, and how fast?

    Trains team 0 (players 0 and 1, two independent networks, as match_run
    trains every seat as its own agent) with PPO against a training
    opponent for team 1: the "random" or "chaser" script, or "self" (team 1
    plays frozen copies of team 0's current weights, refreshed every
    assignment, a one-pair stand-in for the population). Training runs in
    assignments exactly as pbt-worker plays them (match_run with fresh
    environments each time, training state carried over), so the figures
    say what a worker's agent would learn with the same settings.

    Every --eval-every frames (per seat) the current weights play one
    episode in each of --eval-envs fresh environments against the random
    and the chaser scripts. Each environment counts exactly its first
    episode, so slow episodes weigh as much as quick goals (a "first N
    episodes to end" count would favour quick ones). Prints one CSV row per
    evaluation. Single thread.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "env.h"
#include "soccer.h"
#include "log.h"
#include "match.h"
#include "nn_fast.h"
#include "rng.h"

typedef struct {
    double frames, eval_every;
    int eval_envs;
    const char *opp;
    double lr, gamma, lambda, ent, clip, shape_ball, shape_goal;
    double vf_coef, max_grad_norm;
    int clip_vloss, repeat;
    int n_envs, n_steps, iters, epochs, minibatches, hidden, episode_steps;
    unsigned long long seed;
} s_opts_t;

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: pbt-bench soccer-learn [options]\n"
        "  --frames N (5e6)        frames per trained seat\n"
        "  --eval-every N (5e5)    frames between evaluations\n"
        "  --eval-envs N (100)     episodes per evaluation and opponent\n"
        "  --opp random|chaser|self (random)  training opponent of team 0\n"
        "  --lr X (3e-4) --gamma X (0.99) --lambda X (0.95) --ent X (0.01) --clip X (0.2)\n"
        "  --shape-ball X (0) --shape-goal X (0)   shaping weights\n"
        "  --vf X (0.5) --max-grad-norm X (0.5) --clip-vloss 0|1 (1)   fixed PPO settings\n"
        "  --envs N (8) --steps N (256) --iters N (8) --epochs N (4) --mb N (4)\n"
        "  --hidden N (64)  two hidden layers of N\n"
        "  --episode-steps N (1800) --repeat N (1: env option action_repeat) --seed N (1)\n"
        "  --log debug   print every PPO update's statistics to stderr\n"
        "Prints CSV: frames,seconds,train_mean,train_episodes,rnd_win,rnd_loss,rnd_len,"
        "chs_win,chs_loss,chs_len\n");
}

typedef struct {
    double win, loss, mean_len;
} s_eval_t;

//  One episode per env: team 0 by the two nets (sampled actions), team 1
//  by `script`.
static s_eval_t
s_evaluate (const nn_arch_t *arch, float *const params [2], int script,
            int n_envs, const proto_kvs_t *opts, uint64_t seed)
{
    char err [PROTO_MAX_TEXT * 2];
    const envspec_t *spec = env_find ("soccer", err, sizeof err);
    env_vec_t *env = spec ? env_vec_new (spec, n_envs, seed, opts, err, sizeof err) : NULL;
    if (!env)
        fprintf (stderr, "soccer-learn: %s\n", err);
    const int P = 4, D = SOCCER_OBS_DIM, A = SOCCER_N_ACTIONS;
    float *obs = malloc (sizeof (float) * (size_t) n_envs * P * D);
    float *o = malloc (sizeof (float) * (size_t) n_envs * D);
    float *logp = malloc (sizeof (float) * (size_t) n_envs * A);
    float *rew = malloc (sizeof (float) * (size_t) n_envs * P);
    float *shp = malloc (sizeof (float) * (size_t) n_envs * P * SOCCER_N_SHAPING);
    float *scores = malloc (sizeof (float) * (size_t) n_envs * P);
    int32_t *act = malloc (sizeof (int32_t) * (size_t) n_envs * P);
    int32_t *a = malloc (sizeof (int32_t) * (size_t) n_envs);
    uint8_t *term = malloc ((size_t) n_envs);
    uint8_t *done = calloc ((size_t) n_envs, 1);
    nn_work_t *work = nn_work_new (arch, n_envs);
    s_eval_t ev = { 0, 0, 0 };
    if (!env || !obs || !o || !logp || !rew || !shp || !scores || !act || !a || !term || !done
    ||  !work) {
        fprintf (stderr, "soccer-learn: out of memory\n");
        goto cleanup;
    }
    rng_t rng;
    rng_seed (&rng, seed ^ 0xe7a1u);
    if (env_vec_reset (env, obs, err, sizeof err))
        goto cleanup;
    int n_done = 0;
    for (int t = 0; n_done < n_envs; t++) {
        for (int p = 0; p < 2; p++) {
            for (int e = 0; e < n_envs; e++)
                memcpy (o + (size_t) e * D, obs + ((size_t) e * P + p) * D, sizeof (float) * D);
            const float *logits = nn_forward (work, NN_ACTOR, params [p], o, n_envs);
            nn_categorical_forward (logp, NULL, logits, n_envs, A);
            nn_categorical_sample (a, logp, n_envs, A, &rng);
            for (int e = 0; e < n_envs; e++)
                act [e * P + p] = a [e];
        }
        if (env_vec_script_act (env, script, 2, act, err, sizeof err)
        ||  env_vec_script_act (env, script, 3, act, err, sizeof err)
        ||  env_vec_step (env, act, obs, rew, shp, term, scores, err, sizeof err)) {
            fprintf (stderr, "soccer-learn: %s\n", err);
            goto cleanup;
        }
        for (int e = 0; e < n_envs; e++) {
            if (!term [e] || done [e])
                continue;
            done [e] = 1;
            n_done++;
            ev.win += scores [e * P] > 0;
            ev.loss += scores [e * P] < 0;
            ev.mean_len += t + 1;
        }
    }
    ev.win /= n_envs;
    ev.loss /= n_envs;
    ev.mean_len /= n_envs;

cleanup:
    nn_work_destroy (&work);
    env_vec_destroy (&env);
    free (obs); free (o); free (logp); free (rew); free (shp); free (scores);
    free (act); free (a); free (term); free (done);
    return ev;
}

int
bench_soccer_learn_main (int argc, char **argv)
{
    s_opts_t op = {
        .frames = 5e6, .eval_every = 5e5, .eval_envs = 100, .opp = "random",
        .lr = 3e-4, .gamma = 0.99, .lambda = 0.95, .ent = 0.01, .clip = 0.2,
        .shape_ball = 0, .shape_goal = 0, .vf_coef = 0.5, .max_grad_norm = 0.5, .clip_vloss = 1, .repeat = 1,
        .n_envs = 8, .n_steps = 256, .iters = 8, .epochs = 4, .minibatches = 4,
        .hidden = 64, .episode_steps = 1800, .seed = 1,
    };
    for (int i = 1; i < argc; i++) {
        const char *k = argv [i];
        if (strcmp (k, "--help") == 0 || strcmp (k, "-h") == 0) {
            s_usage (stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            s_usage (stderr);
            return 2;
        }
        const char *v = argv [++i];
        if      (!strcmp (k, "--frames"))        op.frames = atof (v);
        else if (!strcmp (k, "--eval-every"))    op.eval_every = atof (v);
        else if (!strcmp (k, "--eval-envs"))     op.eval_envs = atoi (v);
        else if (!strcmp (k, "--opp"))           op.opp = v;
        else if (!strcmp (k, "--lr"))            op.lr = atof (v);
        else if (!strcmp (k, "--gamma"))         op.gamma = atof (v);
        else if (!strcmp (k, "--lambda"))        op.lambda = atof (v);
        else if (!strcmp (k, "--ent"))           op.ent = atof (v);
        else if (!strcmp (k, "--clip"))          op.clip = atof (v);
        else if (!strcmp (k, "--shape-ball"))    op.shape_ball = atof (v);
        else if (!strcmp (k, "--shape-goal"))    op.shape_goal = atof (v);
        else if (!strcmp (k, "--vf"))            op.vf_coef = atof (v);
        else if (!strcmp (k, "--max-grad-norm")) op.max_grad_norm = atof (v);
        else if (!strcmp (k, "--clip-vloss"))    op.clip_vloss = atoi (v) != 0;
        else if (!strcmp (k, "--repeat"))        op.repeat = atoi (v);
        else if (!strcmp (k, "--envs"))          op.n_envs = atoi (v);
        else if (!strcmp (k, "--steps"))         op.n_steps = atoi (v);
        else if (!strcmp (k, "--iters"))         op.iters = atoi (v);
        else if (!strcmp (k, "--epochs"))        op.epochs = atoi (v);
        else if (!strcmp (k, "--mb"))            op.minibatches = atoi (v);
        else if (!strcmp (k, "--hidden"))        op.hidden = atoi (v);
        else if (!strcmp (k, "--episode-steps")) op.episode_steps = atoi (v);
        else if (!strcmp (k, "--seed"))          op.seed = strtoull (v, NULL, 10);
        else if (!strcmp (k, "--log") && log_level_parse (v) >= 0)
            log_set_level ((log_level_t) log_level_parse (v));
        else {
            s_usage (stderr);
            return 2;
        }
    }
    bool self_play = strcmp (op.opp, "self") == 0;
    if (!self_play && strcmp (op.opp, "random") && strcmp (op.opp, "chaser")) {
        fprintf (stderr, "soccer-learn: --opp must be random, chaser or self\n");
        return 2;
    }
    if (op.repeat < 1 || op.eval_envs < 1 || op.n_envs < 1 || op.n_steps < 1 || op.iters < 1 || op.hidden < 1) {
        s_usage (stderr);
        return 2;
    }

    int rc = 1;
    proto_assign_t as;
    memset (&as, 0, sizeof as);
    strcpy (as.env, "soccer");
    proto_kvs_set (&as.env_options, "episode_steps", op.episode_steps);
    proto_kvs_set (&as.env_options, "action_repeat", op.repeat);
    proto_kvs_set (&as.ppo, "n_envs", op.n_envs);
    proto_kvs_set (&as.ppo, "n_steps", op.n_steps);
    proto_kvs_set (&as.ppo, "iterations", op.iters);
    proto_kvs_set (&as.ppo, "epochs", op.epochs);
    proto_kvs_set (&as.ppo, "minibatches", op.minibatches);
    proto_kvs_set (&as.ppo, "vf_coef", op.vf_coef);
    proto_kvs_set (&as.ppo, "max_grad_norm", op.max_grad_norm);
    proto_kvs_set (&as.ppo, "clip_vloss", op.clip_vloss);
    as.model = (proto_model_t) { .obs_dim = SOCCER_OBS_DIM, .n_actions = SOCCER_N_ACTIONS,
                                 .n_hidden = 2, .hidden = { op.hidden, op.hidden } };
    strcpy (as.model.activation, "tanh");
    nn_arch_t arch;
    char err [256];
    if (nn_arch_from_proto (&arch, &as.model, err, sizeof err) != 0) {
        fprintf (stderr, "soccer-learn: %s\n", err);
        return 2;
    }
    uint32_t n_params = (uint32_t) nn_param_count (&arch);
    as.n_seats = 4;
    rng_t init_rng;
    rng_seed (&init_rng, op.seed * 7919 + 1);
    for (int s = 0; s < 4; s++) {
        proto_seat_t *seat = &as.seats [s];
        seat->slot = (uint32_t) s;
        if (s < 2 || self_play) {
            seat->id = s + 1;
            seat->train = s < 2;
            proto_kvs_t *h = &seat->hparams;
            proto_kvs_set (h, "lr", op.lr);
            proto_kvs_set (h, "gamma", op.gamma);
            proto_kvs_set (h, "gae_lambda", op.lambda);
            proto_kvs_set (h, "ent_coef", op.ent);
            proto_kvs_set (h, "clip_coef", op.clip);
            proto_kvs_set (h, "shape_vel_to_ball", op.shape_ball);
            proto_kvs_set (h, "shape_vel_ball_to_goal", op.shape_goal);
            if (proto_state_alloc (&seat->state, n_params) != 0) {
                fprintf (stderr, "soccer-learn: out of memory\n");
                goto cleanup;
            }
            if (s < 2)
                nn_init (&arch, seat->state.params, &init_rng);
        }
        else {
            seat->id = -1;
            snprintf (seat->script, sizeof seat->script, "%s", op.opp);
        }
    }
    printf ("# lr=%g gamma=%g lambda=%g ent=%g clip=%g shape_ball=%g shape_goal=%g opp=%s "
            "repeat=%d vf=%g mgn=%g clip_vloss=%d envs=%d steps=%d iters=%d epochs=%d mb=%d hidden=%d seed=%llu\n",
            op.lr, op.gamma, op.lambda, op.ent, op.clip, op.shape_ball, op.shape_goal, op.opp,
            op.repeat, op.vf_coef, op.max_grad_norm, op.clip_vloss, op.n_envs, op.n_steps, op.iters, op.epochs, op.minibatches, op.hidden, op.seed);
    printf ("frames,seconds,train_mean,train_episodes,rnd_win,rnd_loss,rnd_len,"
            "chs_win,chs_loss,chs_len\n");
    fflush (stdout);

    double frames = 0, next_eval = 0, t0 = bench_now (), score_sum = 0, n_ep = 0;
    uint64_t assignment = 0;
    for (;;) {
        if (frames >= next_eval) {
            float *params [2] = { as.seats [0].state.params, as.seats [1].state.params };
            uint64_t es = op.seed * 1000003 + (uint64_t) (frames / 1000);
            s_eval_t r = s_evaluate (&arch, params, 0, op.eval_envs, &as.env_options, es);
            s_eval_t c = s_evaluate (&arch, params, 1, op.eval_envs, &as.env_options, es + 1);
            printf ("%.0f,%.1f,%.3f,%.0f,%.3f,%.3f,%.0f,%.3f,%.3f,%.0f\n", frames, bench_now () - t0,
                    n_ep > 0 ? score_sum / n_ep : 0.0, n_ep,
                    r.win, r.loss, r.mean_len, c.win, c.loss, c.mean_len);
            fflush (stdout);
            score_sum = n_ep = 0;
            next_eval += op.eval_every;
        }
        if (frames >= op.frames)
            break;
        if (self_play)
            for (int s = 2; s < 4; s++)
                memcpy (as.seats [s].state.params, as.seats [s - 2].state.params,
                        sizeof (float) * n_params);
        as.assignment_id = ++assignment;
        as.seed = op.seed * 7777 + assignment;
        proto_result_t res;
        if (match_run (&as, &res, NULL, NULL, err, sizeof err) != 0) {
            fprintf (stderr, "soccer-learn: match_run: %s\n", err);
            goto cleanup;
        }
        for (int s = 0; s < 2; s++) {
            proto_state_t *st = &as.seats [s].state, *nw = &res.seats [s].state;
            memcpy (st->params, nw->params, sizeof (float) * n_params);
            memcpy (st->adam_m, nw->adam_m, sizeof (float) * n_params);
            memcpy (st->adam_v, nw->adam_v, sizeof (float) * n_params);
            st->adam_t = nw->adam_t;
        }
        for (uint32_t e = 0; e < res.n_episodes; e++)
            score_sum += res.scores [(size_t) e * res.n_seats];
        n_ep += res.n_episodes;
        frames += (double) res.seats [0].frames;
        match_result_clear (&res);
    }
    rc = 0;

cleanup:
    for (int s = 0; s < 4; s++)
        proto_state_free (&as.seats [s].state);
    return rc;
}
