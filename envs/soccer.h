/*  soccer: 2v2 top-down continuous soccer (the PBT-MARL paper's game).

    The game is a plugin like any other (pbt_env_entry in soccer.so, the
    pbt/env.h interface). Beyond the ABI, soccer.so exports the extension
    symbols declared here (pbtctl replay finds soccer_replay_svg with
    dlsym; the tests compile soccer.c in), besides the physical constants
    (so tests can work answers out by hand): a recorder that writes one episode as an animated
    SVG, and test-only hooks that read and set an instance's state.
    docs/soccer.md describes the physics and the observation/action layouts.

    World frame: origin at the centre spot, +x toward the goal team 0 attacks,
    metres and m/s. Players 0,1 are team 0 (blue, attack +x); 2,3 team 1
    (red, attack -x). Index 4 in a state is the ball.
*/
#ifndef PBT_ENV_SOCCER_H
#define PBT_ENV_SOCCER_H

#include <stdint.h>

#include "pbt/env.h"

extern const pbt_env_t pbt_env_entry;

#define SOCCER_OBS_DIM          28
#define SOCCER_N_ACTIONS        18      // move (a % 9) x kick (a / 9)
#define SOCCER_N_SHAPING        2       // vel_to_ball, vel_ball_to_goal (m/s)
#define SOCCER_DT               0.025f  // 40 Hz control
#define SOCCER_SUBSTEPS         4       // physics substeps per control step
#define SOCCER_PLAYER_R         0.5f
#define SOCCER_BALL_R           0.25f
#define SOCCER_PLAYER_MASS      1.0f
#define SOCCER_BALL_MASS        0.2f
#define SOCCER_PLAYER_ACCEL     15.0f   // m/s^2 while a move is held
#define SOCCER_PLAYER_DAMP      0.95f   // player velocity factor per control step
#define SOCCER_PLAYER_MAX_SPEED 5.0f
#define SOCCER_BALL_DAMP        0.98f   // ball velocity factor per control step (friction)
#define SOCCER_BALL_MAX_SPEED   15.0f
#define SOCCER_KICK_SPEED       10.0f   // added to the ball along player->ball
#define SOCCER_KICK_GAP         0.3f    // kick reach beyond touching (centre gap - radii)
#define SOCCER_E_PLAYER         0.5f    // restitution player-player
#define SOCCER_E_BALL_PLAYER    0.7f    // restitution ball-player
#define SOCCER_E_BALL_WALL      0.8f    // restitution ball-wall and ball-post
#define SOCCER_GOAL_FRAC        0.3f    // goal mouth width / field height

//  One instance's physical state, world frame. Goal mouth half width is
//  SOCCER_GOAL_FRAC * h / 2.
typedef struct {
    float w, h;             // field size, metres
    float x [5], y [5];     // positions: players 0..3, ball 4
    float vx [5], vy [5];   // velocities
    int step;               // control steps played in this episode
} soccer_state_t;

//  Test hooks. `self` is the game's own instance pointer (create()).
void soccer_debug_get_state (void *self, int env, soccer_state_t *state);
void soccer_debug_set_state (void *self, int env, const soccer_state_t *state);
//  Observations [4][SOCCER_OBS_DIM] and shaping [4][SOCCER_N_SHAPING] of
//  the current state (either may be NULL), exactly as vec_step writes them.
void soccer_debug_observe (void *self, int env, float *obs, float *shaping);

//  Decides the 4 players' actions from their observations [4][obs_dim].
typedef void (soccer_policy_fn) (void *arg, const float *obs, int32_t *actions);

//  Play one episode (to its end or max_steps control steps) from seed and
//  write it to path as an animated SVG (SMIL, plays in a browser). A team
//  with a script name (script0 for team 0, script1 for team 1, names from
//  the spec's scripts) plays that script; a team whose script is NULL
//  plays by policy, which must then be given. Returns the outcome: 1 team 0 scored, 2 team 1
//  scored, 0 no goal; -1 on error (on stderr). options: the values in
//  spec order (pbt_env_entry.options), or NULL for the defaults.
int soccer_replay_svg (const char *path, uint64_t seed, int max_steps,
                       const double *options,
                       soccer_policy_fn *policy, void *policy_arg,
                       const char *script0, const char *script1);

#endif
