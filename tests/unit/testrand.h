/* testrand.h: the kernel tests' random inputs, SplitMix64 from a seed that
 * each test file names (TESTRAND_SEED, defined before the include), and
 * their allocation that gives up on failure. */
#ifndef TESTRAND_H
#define TESTRAND_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t rng_state = TESTRAND_SEED;

static inline uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline float uniform(void)   /* [-1, 1) */
{
    return (float)((next_u64() >> 40) / 16777216.0 * 2.0 - 1.0);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

#endif
