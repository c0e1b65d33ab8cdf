#include "rng.h"

#include <assert.h>
#include <math.h>

static uint64_t
s_splitmix64 (uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t
s_rotl (uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void
rng_seed (rng_t *self, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        self->s [i] = s_splitmix64 (&x);
}

void
rng_seed_stream (rng_t *self, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    uint64_t mixed = s_splitmix64 (&x);
    rng_seed (self, mixed ^ stream);
}

uint64_t
rng_next (rng_t *self)
{
    uint64_t *s = self->s;
    uint64_t result = s_rotl (s [1] * 5, 7) * 9;
    uint64_t t = s [1] << 17;
    s [2] ^= s [0];
    s [3] ^= s [1];
    s [1] ^= s [2];
    s [0] ^= s [3];
    s [2] ^= t;
    s [3] = s_rotl (s [3], 45);
    return result;
}

double
rng_uniform (rng_t *self)
{
    return (double) (rng_next (self) >> 11) * 0x1.0p-53;
}

float
rng_uniformf (rng_t *self)
{
    return (float) (rng_next (self) >> 40) * 0x1.0p-24f;
}

uint64_t
rng_below (rng_t *self, uint64_t n)
{
    assert (n > 0);
    //  Rejection keeps the distribution exactly uniform.
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_next (self);
    while (x >= limit);
    return x % n;
}

double
rng_normal (rng_t *self)
{
    double u1 = rng_uniform (self);
    double u2 = rng_uniform (self);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt (-2.0 * log (u1)) * cos (2.0 * M_PI * u2);
}
