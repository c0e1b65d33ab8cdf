/*  rng: a small, fast, seedable PRNG (xoshiro256** seeded by splitmix64).

    Every component that draws random numbers owns an rng_t, so runs are
    reproducible from a seed and nothing shares hidden global state (no rand()).
    rng_t is a plain value type so environments can embed one per instance
    without allocating.
*/
#ifndef PBT_RNG_H
#define PBT_RNG_H

#include <stdint.h>

typedef struct { uint64_t s [4]; } rng_t;

//  Seed the generator; any 64-bit seed, including 0, is fine.
void rng_seed (rng_t *self, uint64_t seed);

//  Derive an independent stream: seed mixed with a stream index.
void rng_seed_stream (rng_t *self, uint64_t seed, uint64_t stream);

//  Next raw 64-bit value.
uint64_t rng_next (rng_t *self);

//  Uniform double in [0, 1).
double rng_uniform (rng_t *self);

//  Uniform float in [0, 1).
float rng_uniformf (rng_t *self);

//  Uniform integer in [0, n), n > 0, without modulo bias.
uint64_t rng_below (rng_t *self, uint64_t n);

//  Standard normal (Box-Muller; one value per call).
double rng_normal (rng_t *self);

#endif
