/*  kuhn: Kuhn poker as a pbt environment plugin (turn-based, masked).

    Three cards, J < Q < K; each player antes 1 and is dealt one card.
    Player 0 acts first: pass (0) or bet (1). After pass, player 1 passes
    (showdown for 1) or bets; then player 0 folds (passes) or calls (bets:
    showdown for 2). After a bet, player 1 folds or calls. The winner takes
    the pot: rewards are +-1 or +-2, zero-sum, paid at the end of the hand.

    Built against the installed header only:
        cc -shared -fPIC -O2 $(pkg-config --cflags pbt-env) -o kuhn.so kuhn.c

    Observation of each player (9 floats): its card one-hot (J, Q, K),
    the betting history one-hot ("", "p", "b", "pb": the decision points),
    which player it is one-hot (0, 1). Only the player to move has legal
    actions (mask 1, 1); the other's mask row is all zero.

    Scripts: "random" (uniform), "nash" (the equilibrium with alpha = 0:
    never bluff first, call a bet with a queen a third of the time, bet a
    jack a third of the time after a pass).
*/
#include <stdlib.h>
#include <string.h>

#include "pbt/env.h"

#define P 2
#define D 9
#define A 2

enum { PASS = 0, BET = 1 };
//  Decision points (history so far): who acts at each.
enum { H_START = 0, H_P = 1, H_B = 2, H_PB = 3 };
static const int s_to_move [4] = { 0, 1, 1, 0 };

typedef struct {
    pbt_rng_t rng;
    int card [P];
    int hist;                   // H_*
} hand_t;

typedef struct {
    int n_envs;
    hand_t *hands;
} kuhn_t;

static const char *const s_scripts [] = { "random", "nash" };

static void
s_deal (hand_t *h)
{
    int c0 = (int) pbt_rng_below (&h->rng, 3);
    int c1 = (int) pbt_rng_below (&h->rng, 2);
    h->card [0] = c0;
    h->card [1] = c1 >= c0 ? c1 + 1 : c1;
    h->hist = H_START;
}

static void
s_write (const kuhn_t *self, float *obs, uint8_t *mask)
{
    memset (obs, 0, sizeof (float) * (size_t) self->n_envs * P * D);
    memset (mask, 0, (size_t) self->n_envs * P * A);
    for (int e = 0; e < self->n_envs; e++) {
        const hand_t *h = &self->hands [e];
        for (int p = 0; p < P; p++) {
            float *o = obs + ((size_t) e * P + p) * D;
            o [h->card [p]] = 1;
            o [3 + h->hist] = 1;
            o [7 + p] = 1;
        }
        uint8_t *m = mask + ((size_t) e * P + s_to_move [h->hist]) * A;
        m [PASS] = m [BET] = 1;
    }
}

static void *
s_create (int n_envs, uint64_t seed, const double *options)
{
    (void) options;
    kuhn_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->n_envs = n_envs;
    self->hands = calloc ((size_t) n_envs, sizeof (hand_t));
    if (!self->hands) {
        free (self);
        return NULL;
    }
    for (int e = 0; e < n_envs; e++) {
        pbt_rng_seed_stream (&self->hands [e].rng, seed, (uint64_t) e);
        s_deal (&self->hands [e]);
    }
    return self;
}

static void
s_destroy (void *self_)
{
    kuhn_t *self = self_;
    if (self)
        free (self->hands);
    free (self);
}

static void
s_reset (void *self_, const pbt_env_buffers_t *out)
{
    kuhn_t *self = self_;
    for (int e = 0; e < self->n_envs; e++)
        s_deal (&self->hands [e]);
    s_write (self, out->obs, out->mask);
}

//  Player 0's winnings if the hand ends here (0: it goes on).
static int
s_payoff (const hand_t *h, int hist, int action, int *done)
{
    int show = h->card [0] > h->card [1] ? 1 : -1;
    *done = 1;
    switch (hist) {
        case H_START: *done = 0; return 0;
        case H_P:     if (action == PASS) return show;  *done = 0; return 0;
        case H_B:     return action == PASS ? 1 : 2 * show;
        default:      return action == PASS ? -1 : 2 * show;    // H_PB
    }
}

static void
s_step (void *self_, const int32_t *actions, const pbt_env_buffers_t *out)
{
    kuhn_t *self = self_;
    for (int e = 0; e < self->n_envs; e++) {
        hand_t *h = &self->hands [e];
        int mover = s_to_move [h->hist];
        int a = actions [e * P + mover] == BET ? BET : PASS;
        int done;
        int r0 = s_payoff (h, h->hist, a, &done);
        out->rewards [e * P] = (float) r0;
        out->rewards [e * P + 1] = (float) -r0;
        out->terminals [e] = (uint8_t) done;
        if (done) {
            out->scores [e * P] = (float) r0;
            out->scores [e * P + 1] = (float) -r0;
            s_deal (h);
        }
        else
            h->hist = h->hist == H_START ? (a == PASS ? H_P : H_B) : H_PB;
    }
    s_write (self, out->obs, out->mask);
}

//  The alpha = 0 equilibrium: probability of BET at (player, card, history).
static double
s_nash_bet (int player, int card, int hist)
{
    if (player == 0) {
        if (hist == H_START)
            return 0;                           // J, Q, K: check (alpha = 0)
        return card == 2 ? 1 : card == 1 ? 1.0 / 3 : 0;     // H_PB: call
    }
    if (hist == H_B)
        return card == 2 ? 1 : card == 1 ? 1.0 / 3 : 0;     // call a bet
    return card == 2 ? 1 : card == 0 ? 1.0 / 3 : 0;         // H_P: bet
}

static void
s_script_act (void *self_, int script, int player, int32_t *actions)
{
    kuhn_t *self = self_;
    for (int e = 0; e < self->n_envs; e++) {
        hand_t *h = &self->hands [e];
        int32_t *a = &actions [e * P + player];
        if (s_to_move [h->hist] != player) {
            *a = 0;                             // not this player's turn
            continue;
        }
        double bet = script == 0 ? 0.5 : s_nash_bet (player, h->card [player], h->hist);
        *a = pbt_rng_uniform (&h->rng) < bet ? BET : PASS;
    }
}

PBT_ENV_EXPORT const pbt_env_t pbt_env_entry = {
    .abi_version = PBT_ENV_ABI_VERSION,
    .struct_size = sizeof (pbt_env_t),
    .name = "kuhn",
    .version = "1.0",
    .n_players = P,
    .n_teams = 2,
    .turns = PBT_ENV_TURN_BASED,
    .masks = 1,
    .obs_dim = D,
    .n_actions = A,
    .n_scripts = 2,
    .scripts = s_scripts,
    .obs_doc = "9 floats: own card one-hot (J, Q, K); history one-hot (start, pass, bet, "
               "pass-bet); own player index one-hot (0 acts first)",
    .action_doc = "2: 0 pass (check or fold), 1 bet (bet or call); only the player to move "
                  "has legal actions",
    .create = s_create,
    .destroy = s_destroy,
    .reset = s_reset,
    .step = s_step,
    .script_act = s_script_act,
};
