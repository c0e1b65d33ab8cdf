/*  lib/rng.c and the header-only generator of the env ABI
    (include/pbt/env.h) are two copies of xoshiro256** seeded by splitmix64:
    pbt's own code links the first, a plugin compiles the second, and the
    header promises the same streams. This holds them to each other, and
    the first to the reference output of xoshiro256**.
*/
#include <criterion/criterion.h>
#include <math.h>

#include "rng.h"
#include "pbt/env.h"

//  xoshiro256** from the state {1, 2, 3, 4}: the well-known first outputs of
//  the authors' algorithm (prng.di.unimi.it), which a ten-line Python
//  transcription of the paper's update also gives. The first is
//  rotl(2 * 5, 7) * 9 = 11520.
Test (rng, xoshiro_reference_outputs)
{
    rng_t r = { { 1, 2, 3, 4 } };
    cr_assert_eq (rng_next (&r), 11520ULL);
    cr_assert_eq (rng_next (&r), 0ULL);
    cr_assert_eq (rng_next (&r), 1509978240ULL);
    cr_assert_eq (rng_next (&r), 1215971899390074240ULL);
}

Test (rng, the_abi_header_draws_the_same_streams)
{
    const uint64_t seeds [] = { 0, 1, 42, 0x9e3779b97f4a7c15ULL, UINT64_MAX };
    for (size_t k = 0; k < sizeof seeds / sizeof seeds [0]; k++)
        for (uint64_t stream = 0; stream < 4; stream++) {
            rng_t a;
            pbt_rng_t b;
            if (stream == 0) {
                rng_seed (&a, seeds [k]);
                pbt_rng_seed (&b, seeds [k]);
            }
            else {
                rng_seed_stream (&a, seeds [k], stream);
                pbt_rng_seed_stream (&b, seeds [k], stream);
            }
            for (int i = 0; i < 1000; i++) {
                cr_assert_eq (rng_next (&a), pbt_rng_next (&b), "seed %zu stream %lu draw %d",
                              k, (unsigned long) stream, i);
                cr_assert_eq (rng_uniform (&a), pbt_rng_uniform (&b));
                cr_assert_eq (rng_uniformf (&a), pbt_rng_uniformf (&b));
                uint64_t n = 1 + (uint64_t) i * 7919;
                cr_assert_eq (rng_below (&a, n), pbt_rng_below (&b, n));
            }
        }
}
