/*  soccer: 2v2 top-down continuous soccer, vectorized.

    Discs on a walled field: four players (radius 0.5, mass 1) and a ball
    (radius 0.25, mass 0.2). Players accelerate in one of 8 directions, keep
    momentum (damped) and are capped at 5 m/s; the ball rolls with friction
    and bounces off walls, goal posts and players. A kick adds 10 m/s to the
    ball along player->ball when the ball is within reach. The ball crossing
    a goal line inside the mouth is a goal: +1 to the scoring team, -1 to the
    other, and the episode ends; otherwise it ends after episode_steps
    control steps with 0. docs/soccer.md has the layouts and the constants.

    Everything a step needs lives in the per-instance struct; nothing is
    allocated after create. Each instance owns two rngs (seeded from the
    vec seed and its index): one for episode starts, one for the scripts,
    so a scripted seat does not change how episodes are drawn.
*/
#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbt/env.h"
#include "soccer.h"

#define S_MAX_EPISODE_STEPS 10000000
#define S_MAX_ACTION_REPEAT 100
#define S_BALL              4
#define S_REACH             (SOCCER_PLAYER_R + SOCCER_BALL_R + SOCCER_KICK_GAP)
#define S_INV_VMAX          (1.0f / SOCCER_PLAYER_MAX_SPEED)
//  Scripts draw from a stream derived with this tag, apart from episode starts.
#define S_SCRIPT_STREAM_TAG 0x5c0cce2ull

enum { S_SCRIPT_RANDOM = 0, S_SCRIPT_CHASER = 1 };

static const char *const s_scripts [] = { "random", "chaser" };
static const char *const s_shaping_names [] = { "vel_to_ball", "vel_ball_to_goal" };

//  Move directions in the team frame (+x toward the opponents' goal):
//  0 none, then counter-clockwise from +x in 45 degree steps.
#define S_D 0.70710678f
static const float s_dir_x [9] = { 0, 1,  S_D, 0, -S_D, -1, -S_D,  0,  S_D };
static const float s_dir_y [9] = { 0, 0,  S_D, 1,  S_D,  0, -S_D, -1, -S_D };

typedef struct {
    float x [5], y [5], vx [5], vy [5];
    float hw, hh;           // half field width / height
    float gh;               // goal mouth half width
    float inv_hw, inv_hh;
    int step;
    float goal_diff;        // full_time: team 0's goals minus team 1's so far
    pbt_rng_t rng;              // episode starts
    pbt_rng_t script_rng;       // "random" script
} s_game_t;

typedef struct {
    int n_envs;
    int episode_steps;      // time limit in control ticks
    int action_repeat;      // control ticks per vec_step
    bool random_field;
    bool full_time;         // a goal restarts play; the episode lasts episode_steps
    s_game_t *games;        // [n_envs]
} s_vec_t;

//  --------------------------------------------------------------------------
//  Options

//  In spec order: create() gets the values in this order.
enum { OPT_EPISODE_STEPS, OPT_RANDOM_FIELD, OPT_ACTION_REPEAT, OPT_FULL_TIME, S_N_OPTIONS };
static const pbt_env_option_t s_options [S_N_OPTIONS] = {
    { .name = "episode_steps", .min = 1, .max = S_MAX_EPISODE_STEPS, .dflt = 1800, .integer = 1,
      .doc = "episode length in control steps (1800 = 45 s at 40 Hz)" },
    { .name = "random_field", .min = 0, .max = 1, .dflt = 1, .integer = 1,
      .doc = "1: field width uniform in [20, 28] m; 0: always 24 x 18 m" },
    { .name = "action_repeat", .min = 1, .max = S_MAX_ACTION_REPEAT, .dflt = 1, .integer = 1,
      .doc = "control ticks per decision" },
    { .name = "full_time", .min = 0, .max = 1, .dflt = 0, .integer = 1,
      .doc = "1: a goal restarts play; the episode lasts episode_steps" },
};

//  --------------------------------------------------------------------------
//  Episode start

static void
s_set_field (s_game_t *g, float w, float h)
{
    g->hw = 0.5f * w;
    g->hh = 0.5f * h;
    g->gh = 0.5f * SOCCER_GOAL_FRAC * h;
    g->inv_hw = 1.0f / g->hw;
    g->inv_hh = 1.0f / g->hh;
}

//  Players and ball to a kick-off: at an episode's start, and after each
//  goal of a full-time game (same field, same clock).
static void
s_kickoff (s_game_t *g)
{
    memset (g->vx, 0, sizeof g->vx);
    memset (g->vy, 0, sizeof g->vy);
    //  Each player somewhere in its own half, clear of the walls, the
    //  centre line and the players already placed (a few redraws at most).
    float margin = SOCCER_PLAYER_R + 0.5f;
    for (int p = 0; p < 4; p++) {
        float side = p < 2 ? -1.0f : 1.0f;
        for (int tries = 0; tries < 32; tries++) {
            float ax = 1.5f + (g->hw - margin - 1.5f) * pbt_rng_uniformf (&g->rng);
            g->x [p] = side * ax;
            g->y [p] = (g->hh - margin) * (2.0f * pbt_rng_uniformf (&g->rng) - 1.0f);
            bool clear = true;
            for (int q = 0; q < p; q++) {
                float dx = g->x [p] - g->x [q], dy = g->y [p] - g->y [q];
                if (dx * dx + dy * dy < 4.0f * SOCCER_PLAYER_R * SOCCER_PLAYER_R * 1.21f)
                    clear = false;
            }
            if (clear)
                break;
        }
    }
    g->x [S_BALL] = 0.0f;
    g->y [S_BALL] = 0.5f * g->hh * (2.0f * pbt_rng_uniformf (&g->rng) - 1.0f);
}

static void
s_game_reset (s_game_t *g, bool random_field)
{
    //  Width uniform in [20, 28] m, height 3/4 of it (so [15, 21] m): the
    //  goals and the normalized observations keep the same shape.
    float w = random_field ? 20.0f + 8.0f * pbt_rng_uniformf (&g->rng) : 24.0f;
    s_set_field (g, w, 0.75f * w);
    s_kickoff (g);
    g->step = 0;
    g->goal_diff = 0;
}

//  --------------------------------------------------------------------------
//  Physics

//  Disc-disc contact: push the discs apart along the centre line in
//  proportion to their inverse masses, then, if they approach, exchange the
//  impulse of a collision with restitution e (momentum is conserved).
static inline void
s_collide (s_game_t *g, int i, int j, float rsum, float wi, float wj, float e)
{
    float dx = g->x [j] - g->x [i], dy = g->y [j] - g->y [i];
    float d2 = dx * dx + dy * dy;
    if (d2 >= rsum * rsum)
        return;
    float nx = 1.0f, ny = 0.0f, d = 0.0f;
    if (d2 > 1e-12f) {
        d = sqrtf (d2);
        nx = dx / d;
        ny = dy / d;
    }
    float corr = (rsum - d) / (wi + wj);
    g->x [i] -= nx * corr * wi;
    g->y [i] -= ny * corr * wi;
    g->x [j] += nx * corr * wj;
    g->y [j] += ny * corr * wj;
    float vn = (g->vx [j] - g->vx [i]) * nx + (g->vy [j] - g->vy [i]) * ny;
    if (vn < 0.0f) {
        float J = -(1.0f + e) * vn / (wi + wj);
        g->vx [i] -= J * wi * nx;
        g->vy [i] -= J * wi * ny;
        g->vx [j] += J * wj * nx;
        g->vy [j] += J * wj * ny;
    }
}

//  The ball against a goal post, a fixed point at (px, py).
static inline void
s_post (s_game_t *g, float px, float py)
{
    float dx = g->x [S_BALL] - px, dy = g->y [S_BALL] - py;
    float d2 = dx * dx + dy * dy;
    if (d2 >= SOCCER_BALL_R * SOCCER_BALL_R || d2 <= 1e-12f)
        return;
    float d = sqrtf (d2);
    float nx = dx / d, ny = dy / d;
    g->x [S_BALL] = px + nx * SOCCER_BALL_R;
    g->y [S_BALL] = py + ny * SOCCER_BALL_R;
    float vn = g->vx [S_BALL] * nx + g->vy [S_BALL] * ny;
    if (vn < 0.0f) {
        g->vx [S_BALL] -= (1.0f + SOCCER_E_BALL_WALL) * vn * nx;
        g->vy [S_BALL] -= (1.0f + SOCCER_E_BALL_WALL) * vn * ny;
    }
}

static inline void
s_cap_speed (float *vx, float *vy, float vmax)
{
    float s2 = *vx * *vx + *vy * *vy;
    if (s2 > vmax * vmax) {
        float k = vmax / sqrtf (s2);
        *vx *= k;
        *vy *= k;
    }
}

//  Advance one control step. Returns 1 if team 0 scored, 2 if team 1
//  scored, else 0. Does not reset.
static int
s_advance (s_game_t *g, const int32_t *actions)
{
    const float acc = SOCCER_PLAYER_ACCEL * SOCCER_DT;
    for (int p = 0; p < 4; p++) {
        uint32_t a = (uint32_t) actions [p];
        if (a >= SOCCER_N_ACTIONS)
            a = 0;          // out-of-range actions mean "stand still"
        uint32_t mv = a % 9;
        //  Team 1's frame is the world turned by 180 degrees.
        float s = p < 2 ? acc : -acc;
        g->vx [p] = g->vx [p] * SOCCER_PLAYER_DAMP + s * s_dir_x [mv];
        g->vy [p] = g->vy [p] * SOCCER_PLAYER_DAMP + s * s_dir_y [mv];
        s_cap_speed (&g->vx [p], &g->vy [p], SOCCER_PLAYER_MAX_SPEED);
    }
    g->vx [S_BALL] *= SOCCER_BALL_DAMP;
    g->vy [S_BALL] *= SOCCER_BALL_DAMP;
    bool kicked = false;
    for (int p = 0; p < 4; p++) {
        if ((uint32_t) actions [p] < 9 || (uint32_t) actions [p] >= SOCCER_N_ACTIONS)
            continue;
        float dx = g->x [S_BALL] - g->x [p], dy = g->y [S_BALL] - g->y [p];
        float d2 = dx * dx + dy * dy;
        if (d2 <= S_REACH * S_REACH && d2 > 1e-12f) {
            float k = SOCCER_KICK_SPEED / sqrtf (d2);
            g->vx [S_BALL] += k * dx;
            g->vy [S_BALL] += k * dy;
            kicked = true;
        }
    }
    if (kicked)
        s_cap_speed (&g->vx [S_BALL], &g->vy [S_BALL], SOCCER_BALL_MAX_SPEED);

    const float h = SOCCER_DT / SOCCER_SUBSTEPS;
    const float wp = 1.0f / SOCCER_PLAYER_MASS, wb = 1.0f / SOCCER_BALL_MASS;
    const float px_lim = g->hw - SOCCER_PLAYER_R, py_lim = g->hh - SOCCER_PLAYER_R;
    const float bx_lim = g->hw - SOCCER_BALL_R, by_lim = g->hh - SOCCER_BALL_R;
    for (int sub = 0; sub < SOCCER_SUBSTEPS; sub++) {
        for (int i = 0; i < 5; i++) {
            g->x [i] += g->vx [i] * h;
            g->y [i] += g->vy [i] * h;
        }
        for (int i = 0; i < 4; i++)
            for (int j = i + 1; j < 4; j++)
                s_collide (g, i, j, 2 * SOCCER_PLAYER_R, wp, wp, SOCCER_E_PLAYER);
        for (int i = 0; i < 4; i++)
            s_collide (g, i, S_BALL, SOCCER_PLAYER_R + SOCCER_BALL_R, wp, wb,
                       SOCCER_E_BALL_PLAYER);
        //  Players stop at the walls (no bounce) and never enter the goals.
        for (int i = 0; i < 4; i++) {
            if (g->x [i] > px_lim)  { g->x [i] = px_lim;  if (g->vx [i] > 0) g->vx [i] = 0; }
            if (g->x [i] < -px_lim) { g->x [i] = -px_lim; if (g->vx [i] < 0) g->vx [i] = 0; }
            if (g->y [i] > py_lim)  { g->y [i] = py_lim;  if (g->vy [i] > 0) g->vy [i] = 0; }
            if (g->y [i] < -py_lim) { g->y [i] = -py_lim; if (g->vy [i] < 0) g->vy [i] = 0; }
        }
        //  Ball: posts first (they may push it out of the mouth), then the
        //  end walls outside the mouth, then the side walls.
        float bx = g->x [S_BALL];
        if (bx > bx_lim || bx < -bx_lim)
            s_post (g, bx > 0 ? g->hw : -g->hw, g->y [S_BALL] > 0 ? g->gh : -g->gh);
        if (fabsf (g->y [S_BALL]) >= g->gh) {
            if (g->x [S_BALL] > bx_lim) {
                g->x [S_BALL] = bx_lim;
                if (g->vx [S_BALL] > 0) g->vx [S_BALL] *= -SOCCER_E_BALL_WALL;
            }
            if (g->x [S_BALL] < -bx_lim) {
                g->x [S_BALL] = -bx_lim;
                if (g->vx [S_BALL] < 0) g->vx [S_BALL] *= -SOCCER_E_BALL_WALL;
            }
        }
        if (g->y [S_BALL] > by_lim) {
            g->y [S_BALL] = by_lim;
            if (g->vy [S_BALL] > 0) g->vy [S_BALL] *= -SOCCER_E_BALL_WALL;
        }
        if (g->y [S_BALL] < -by_lim) {
            g->y [S_BALL] = -by_lim;
            if (g->vy [S_BALL] < 0) g->vy [S_BALL] *= -SOCCER_E_BALL_WALL;
        }
        if (g->x [S_BALL] > g->hw) {
            g->step++;
            return 1;
        }
        if (g->x [S_BALL] < -g->hw) {
            g->step++;
            return 2;
        }
    }
    g->step++;
    return 0;
}

//  --------------------------------------------------------------------------
//  Observations and shaping

static void
s_observe (const s_game_t *g, int episode_steps, float *obs)
{
    const float ihw = g->inv_hw, ihh = g->inv_hh;
    const float t = (float) g->step / (float) episode_steps;
    const float fw = g->hw * (2.0f / 28.0f), fh = g->hh * (2.0f / 21.0f);
    for (int p = 0; p < 4; p++) {
        float *o = obs + p * SOCCER_OBS_DIM;
        float s = p < 2 ? 1.0f : -1.0f;
        float sx = s * ihw, sy = s * ihh, sv = s * S_INV_VMAX;
        float x = g->x [p], y = g->y [p];
        o [0] = x * sx;
        o [1] = y * sy;
        o [2] = g->vx [p] * sv;
        o [3] = g->vy [p] * sv;
        //  Ball, teammate, then the two opponents in index order.
        int mate = p ^ 1, opp = p < 2 ? 2 : 0;
        const int others [4] = { S_BALL, mate, opp, opp + 1 };
        for (int k = 0; k < 4; k++) {
            int q = others [k];
            o [4 + 4 * k] = (g->x [q] - x) * sx;
            o [5 + 4 * k] = (g->y [q] - y) * sy;
            o [6 + 4 * k] = g->vx [q] * sv;
            o [7 + 4 * k] = g->vy [q] * sv;
        }
        o [20] = 1.0f - o [0];      // opponents' goal centre, relative
        o [21] = -o [1];
        o [22] = -1.0f - o [0];     // own goal centre, relative
        o [23] = -o [1];
        o [24] = fw;
        o [25] = fh;
        o [26] = t;
        float bdx = g->x [S_BALL] - x, bdy = g->y [S_BALL] - y;
        o [27] = bdx * bdx + bdy * bdy <= S_REACH * S_REACH ? 1.0f : 0.0f;
    }
}

static void
s_shaping (const s_game_t *g, float *shaping)
{
    const float bx = g->x [S_BALL], by = g->y [S_BALL];
    const float bvx = g->vx [S_BALL], bvy = g->vy [S_BALL];
    float to_goal [2];
    for (int team = 0; team < 2; team++) {
        float gx = (team == 0 ? g->hw : -g->hw) - bx, gy = -by;
        float d2 = gx * gx + gy * gy;
        to_goal [team] = d2 > 1e-12f ? (bvx * gx + bvy * gy) / sqrtf (d2) : 0.0f;
    }
    for (int p = 0; p < 4; p++) {
        float dx = bx - g->x [p], dy = by - g->y [p];
        float dot = g->vx [p] * dx + g->vy [p] * dy;
        float d2 = dx * dx + dy * dy;
        shaping [2 * p] = dot > 0.0f && d2 > 1e-12f ? dot / sqrtf (d2) : 0.0f;
        shaping [2 * p + 1] = to_goal [p >> 1];
    }
}

//  --------------------------------------------------------------------------
//  Vector interface

static void *
s_create (int n_envs, uint64_t seed, const double *options)
{
    s_vec_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n_envs = n_envs;
    self->episode_steps = (int) options [OPT_EPISODE_STEPS];
    self->random_field = options [OPT_RANDOM_FIELD] != 0;
    self->action_repeat = (int) options [OPT_ACTION_REPEAT];
    self->full_time = options [OPT_FULL_TIME] != 0;
    self->games = calloc ((size_t) n_envs, sizeof (s_game_t));
    if (!self->games) {
        free (self);
        return NULL;
    }
    for (int e = 0; e < n_envs; e++) {
        s_game_t *g = &self->games [e];
        pbt_rng_seed_stream (&g->rng, seed, (uint64_t) e);
        pbt_rng_seed_stream (&g->script_rng, seed ^ S_SCRIPT_STREAM_TAG, (uint64_t) e);
        s_game_reset (g, self->random_field);
    }
    return self;
}

static void
s_destroy (void *self_)
{
    s_vec_t *self = self_;
    if (!self)
        return;
    free (self->games);
    free (self);
}

static void
s_reset (void *self_, const pbt_env_buffers_t *out)
{
    s_vec_t *self = self_;
    float *obs = out->obs;
    for (int e = 0; e < self->n_envs; e++) {
        s_game_reset (&self->games [e], self->random_field);
        s_observe (&self->games [e], self->episode_steps, obs + (size_t) e * 4 * SOCCER_OBS_DIM);
    }
}

static void
s_step (void *self_, const int32_t *actions, const pbt_env_buffers_t *out)
{
    s_vec_t *self = self_;
    float *obs = out->obs, *rewards = out->rewards, *shaping = out->shaping, *scores = out->scores;
    uint8_t *terminals = out->terminals;
    for (int e = 0; e < self->n_envs; e++) {
        s_game_t *g = &self->games [e];
        float *sh = shaping + (size_t) e * 4 * SOCCER_N_SHAPING;
        //  The actions hold for action_repeat ticks (fewer if the episode
        //  ends first); the shaping written is the mean over those ticks,
        //  so it stays in m/s whatever the repeat.
        int goal = 0, ticks = 0;
        float sum [4 * SOCCER_N_SHAPING] = { 0 };
        bool done = false;
        while (!done && ticks < self->action_repeat) {
            goal = s_advance (g, actions + 4 * e);
            ticks++;
            s_shaping (g, sh);
            for (int c = 0; c < 4 * SOCCER_N_SHAPING; c++)
                sum [c] += sh [c];
            done = (goal != 0 && !self->full_time) || g->step >= self->episode_steps;
            if (goal != 0 && self->full_time) {
                //  Play restarts; the decision's reward is this goal.
                g->goal_diff += goal == 1 ? 1.0f : -1.0f;
                s_kickoff (g);
                break;
            }
        }
        if (ticks > 1)
            for (int c = 0; c < 4 * SOCCER_N_SHAPING; c++)
                sh [c] = sum [c] / (float) ticks;
        float r0 = goal == 1 ? 1.0f : goal == 2 ? -1.0f : 0.0f;
        float *r = rewards + 4 * e;
        r [0] = r [1] = r0;
        r [2] = r [3] = -r0;
        terminals [e] = done;
        if (done) {
            //  A goal-ended episode scores its one goal; a full-time one
            //  the goal difference over the whole game.
            float d = self->full_time ? g->goal_diff : r0;
            float *sc = scores + 4 * e;
            sc [0] = sc [1] = d;
            sc [2] = sc [3] = -d;
            s_game_reset (g, self->random_field);
        }
        s_observe (g, self->episode_steps, obs + (size_t) e * 4 * SOCCER_OBS_DIM);
    }
}

//  Quantize a world-frame direction into the move index of player p.
static int
s_move_toward (int p, float dx, float dy)
{
    if (p >= 2) {
        dx = -dx;
        dy = -dy;
    }
    if (dx * dx + dy * dy < 0.01f)
        return 0;
    int k = (int) lrintf (atan2f (dy, dx) * (float) (4.0 / M_PI));
    return 1 + ((k % 8) + 8) % 8;
}

//  Run to the spot behind the ball (seen from the opponents' goal), going
//  around it when on the wrong side, and kick when lined up and in reach.
static int
s_chaser (const s_game_t *g, int p)
{
    float gx = p < 2 ? g->hw : -g->hw;
    float bx = g->x [S_BALL], by = g->y [S_BALL];
    float ux = gx - bx, uy = -by;
    float ul = sqrtf (ux * ux + uy * uy);
    if (ul < 1e-6f)
        return 0;
    ux /= ul;
    uy /= ul;
    float rx = bx - g->x [p], ry = by - g->y [p];
    float rl = sqrtf (rx * rx + ry * ry);
    float along = rx * ux + ry * uy;    // > 0: the player is behind the ball
    if (rl <= S_REACH && along > 0.8f * rl)
        return 9 + s_move_toward (p, rx, ry);
    const float back = SOCCER_PLAYER_R + SOCCER_BALL_R + 0.2f;
    float tx, ty;
    if (along > 0.5f * rl) {
        tx = bx - ux * back;
        ty = by - uy * back;
    }
    else {
        //  Detour: a point behind and beside the ball, on the player's side.
        float side = (g->x [p] - bx) * -uy + (g->y [p] - by) * ux >= 0 ? 1.0f : -1.0f;
        tx = bx - ux * 1.5f - uy * side * 1.5f;
        ty = by - uy * 1.5f + ux * side * 1.5f;
    }
    //  Near a wall or corner the spot behind the ball can be off the field;
    //  then, close to the ball and not facing the own goal, charge it and
    //  kick it loose rather than wait for a spot that cannot be reached.
    float lx = g->hw - SOCCER_PLAYER_R, ly = g->hh - SOCCER_PLAYER_R;
    float cx = fminf (fmaxf (tx, -lx), lx), cy = fminf (fmaxf (ty, -ly), ly);
    if (fabsf (cx - tx) + fabsf (cy - ty) > 0.3f && rl < 2.5f && along > -0.3f * rl)
        return 9 + s_move_toward (p, rx, ry);
    return s_move_toward (p, cx - g->x [p], cy - g->y [p]);
}

static void
s_script_act (void *self_, int script, int player, int32_t *actions)
{
    s_vec_t *self = self_;
    assert (player >= 0 && player < 4);
    for (int e = 0; e < self->n_envs; e++) {
        s_game_t *g = &self->games [e];
        int a;
        switch (script) {
            case S_SCRIPT_RANDOM:
                a = (int) pbt_rng_below (&g->script_rng, SOCCER_N_ACTIONS);
                break;
            case S_SCRIPT_CHASER:
                a = s_chaser (g, player);
                break;
            default:
                assert (!"unknown soccer script");
                a = 0;
        }
        actions [4 * e + player] = a;
    }
}

PBT_ENV_EXPORT const pbt_env_t pbt_env_entry = {
    .abi_version = PBT_ENV_ABI_VERSION,
    .struct_size = sizeof (pbt_env_t),
    .name = "soccer",
    .version = "1.0",
    .n_players = 4,
    .n_teams = 2,
    .turns = PBT_ENV_SIMULTANEOUS,
    .masks = 0,
    .obs_dim = SOCCER_OBS_DIM,
    .n_actions = SOCCER_N_ACTIONS,
    .n_shaping = SOCCER_N_SHAPING,
    .shaping_names = s_shaping_names,
    .n_scripts = 2,
    .scripts = s_scripts,
    .n_options = S_N_OPTIONS,
    .options = s_options,
    .obs_doc = "28 floats in the player's team frame (+x toward the opponents' goal), positions "
               "over the half field size, velocities over 5 m/s: own x, y, vx, vy; then ball, "
               "teammate, opponent, opponent as dx, dy, vx, vy relative to the player; "
               "opponents' goal centre dx, dy; own goal centre dx, dy; field width/28, "
               "height/21; episode time fraction; 1 if the ball is within kick reach "
               "(docs/soccer.md)",
    .action_doc = "18: move (a % 9: 0 none, 1..8 counter-clockwise from +x in 45 degree steps) "
                  "x kick (a / 9)",
    .create = s_create,
    .destroy = s_destroy,
    .reset = s_reset,
    .step = s_step,
    .script_act = s_script_act,
};

//  --------------------------------------------------------------------------
//  Test hooks

void
soccer_debug_get_state (void *self_, int env, soccer_state_t *state)
{
    s_vec_t *self = self_;
    assert (self && env >= 0 && env < self->n_envs && state);
    const s_game_t *g = &self->games [env];
    state->w = 2.0f * g->hw;
    state->h = 2.0f * g->hh;
    memcpy (state->x, g->x, sizeof g->x);
    memcpy (state->y, g->y, sizeof g->y);
    memcpy (state->vx, g->vx, sizeof g->vx);
    memcpy (state->vy, g->vy, sizeof g->vy);
    state->step = g->step;
}

void
soccer_debug_set_state (void *self_, int env, const soccer_state_t *state)
{
    s_vec_t *self = self_;
    assert (self && env >= 0 && env < self->n_envs && state);
    assert (state->w > 0 && state->h > 0);
    s_game_t *g = &self->games [env];
    s_set_field (g, state->w, state->h);
    memcpy (g->x, state->x, sizeof g->x);
    memcpy (g->y, state->y, sizeof g->y);
    memcpy (g->vx, state->vx, sizeof g->vx);
    memcpy (g->vy, state->vy, sizeof g->vy);
    g->step = state->step;
}

void
soccer_debug_observe (void *self_, int env, float *obs, float *shaping)
{
    s_vec_t *self = self_;
    assert (self && env >= 0 && env < self->n_envs);
    if (obs)
        s_observe (&self->games [env], self->episode_steps, obs);
    if (shaping)
        s_shaping (&self->games [env], shaping);
}

//  --------------------------------------------------------------------------
//  Replay as animated SVG

static void
s_svg_track (FILE *f, const float *v, int n_frames, int stride, float sign, const char *attr,
             double dur)
{
    fprintf (f, "<animate attributeName=\"%s\" dur=\"%.3fs\" repeatCount=\"indefinite\" "
                "values=\"", attr, dur);
    for (int t = 0; t < n_frames; t++)
        fprintf (f, "%s%.2f", t ? ";" : "", sign * v [(size_t) t * stride]);
    fprintf (f, "\"/>\n");
}

int
soccer_replay_svg (const char *path, uint64_t seed, int max_steps,
                   const double *options,
                   soccer_policy_fn *policy, void *policy_arg,
                   const char *script0, const char *script1)
{
    assert (path);
    int rc = -1;
    s_vec_t *vec = NULL;
    float *track = NULL;
    FILE *f = NULL;
    int sc [2] = { -1, -1 };
    if (max_steps < 1) {
        fprintf (stderr, "soccer replay: max_steps must be >= 1\n");
        goto cleanup;
    }
    for (int i = 0; i < 2; i++) {
        if (script0 && strcmp (script0, s_scripts [i]) == 0)
            sc [0] = i;
        if (script1 && strcmp (script1, s_scripts [i]) == 0)
            sc [1] = i;
    }
    //  Without a policy both teams need a script; with one, a named script
    //  still drives its team (agent against scripted team).
    if ((script0 && sc [0] < 0) || (script1 && sc [1] < 0) || (!policy && (sc [0] < 0 || sc [1] < 0))) {
        {
            fprintf (stderr, "soccer replay: unknown script (blue %s, red %s)\n",
                     script0 ? script0 : "(null)", script1 ? script1 : "(null)");
            goto cleanup;
        }
    }
    double dflt [S_N_OPTIONS];
    for (int i = 0; i < S_N_OPTIONS; i++)
        dflt [i] = s_options [i].dflt;
    vec = s_create (1, seed, options ? options : dflt);
    if (!vec)
        goto cleanup;
    //  [frame][x0..x4, y0..y4]
    track = malloc ((size_t) (max_steps + 1) * 10 * sizeof (float));
    if (!track) {
        fprintf (stderr, "soccer replay: out of memory\n");
        goto cleanup;
    }
    s_game_t *g = &vec->games [0];
    float obs [4 * SOCCER_OBS_DIM];
    int32_t actions [4];
    int n_frames = 0, goal = 0;
    for (;;) {
        memcpy (track + (size_t) n_frames * 10, g->x, 5 * sizeof (float));
        memcpy (track + (size_t) n_frames * 10 + 5, g->y, 5 * sizeof (float));
        n_frames++;
        if (goal || g->step >= vec->episode_steps || g->step >= max_steps)
            break;
        //  Decisions every action_repeat ticks, as vec_step takes them.
        if (g->step % vec->action_repeat == 0) {
            if (policy) {
                s_observe (g, vec->episode_steps, obs);
                policy (policy_arg, obs, actions);
            }
            for (int p = 0; p < 4; p++)
                if (sc [p >> 1] >= 0)
                    s_script_act (vec, sc [p >> 1], p, actions);
        }
        goal = s_advance (g, actions);
    }

    f = fopen (path, "w");
    if (!f) {
        fprintf (stderr, "soccer replay: cannot open %s\n", path);
        goto cleanup;
    }
    float hw = g->hw, hh = g->hh, gh = g->gh;
    double dur = n_frames * (double) SOCCER_DT;
    fprintf (f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "viewBox=\"%.2f %.2f %.2f %.2f\">\n",
             (int) ((2 * hw + 4) * 30), (int) ((2 * hh + 5) * 30),
             -hw - 2, -hh - 3, 2 * hw + 4, 2 * hh + 5);
    fprintf (f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#2e7d32\"/>\n",
             -hw - 2, -hh - 3, 2 * hw + 4, 2 * hh + 5);
    fprintf (f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"none\" "
                "stroke=\"white\" stroke-width=\"0.1\"/>\n", -hw, -hh, 2 * hw, 2 * hh);
    fprintf (f, "<line x1=\"0\" y1=\"%.2f\" x2=\"0\" y2=\"%.2f\" stroke=\"white\" "
                "stroke-width=\"0.05\"/>\n", -hh, hh);
    //  Goals: the +x one is red's (blue attacks it), the -x one blue's.
    fprintf (f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"1\" height=\"%.2f\" fill=\"#ffcdd2\"/>\n",
             hw, -gh, 2 * gh);
    fprintf (f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"1\" height=\"%.2f\" fill=\"#bbdefb\"/>\n",
             -hw - 1, -gh, 2 * gh);
    const char *result = goal == 1 ? "blue scores" : goal == 2 ? "red scores" : "no goal";
    fprintf (f, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"1\" fill=\"white\">"
                "seed %llu: blue (%s) vs red (%s), %d steps, %s</text>\n",
             -hw, -hh - 1, (unsigned long long) seed,
             script0 ? script0 : "policy", script1 ? script1 : "policy",
             g->step, result);
    for (int i = 0; i < 5; i++) {
        const char *fill = i == S_BALL ? "white" : i < 2 ? "#1565c0" : "#c62828";
        float r = i == S_BALL ? SOCCER_BALL_R : SOCCER_PLAYER_R;
        //  SVG y points down; the world's points up.
        fprintf (f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.2f\" fill=\"%s\" stroke=\"black\" "
                    "stroke-width=\"0.05\">\n", track [i], -track [5 + i], r, fill);
        s_svg_track (f, track + i, n_frames, 10, 1.0f, "cx", dur);
        s_svg_track (f, track + 5 + i, n_frames, 10, -1.0f, "cy", dur);
        fprintf (f, "</circle>\n");
    }
    fprintf (f, "</svg>\n");
    if (ferror (f)) {
        fprintf (stderr, "soccer replay: write error on %s\n", path);
        goto cleanup;
    }
    rc = goal;

cleanup:
    if (f && fclose (f) != 0 && rc >= 0) {
        fprintf (stderr, "soccer replay: close error on %s\n", path);
        rc = -1;
    }
    free (track);
    s_destroy (vec);
    return rc;
}
