/* rng.c: the library's one pseudo-random generator (xoshiro256**, seeded by
 * splitmix64), so that weights, data order and sampling are the same bytes on
 * every machine for the same seed. Its state is plain data, saved in
 * checkpoints so that a resumed run continues the same sequence. */
#include <math.h>

#include "elementwise.h"
#include "llm.h"

static uint64_t splitmix64(uint64_t *x)
{
    return llm_mix64(*x += 0x9e3779b97f4a7c15ULL);
}

void llm_rng_seed(llm_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t llm_rng_u64(llm_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double llm_rng_uniform(llm_rng *r)
{
    return (double)(llm_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t llm_rng_below(llm_rng *r, uint64_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased. */
    if (n == 0)
        return 0;
    uint64_t x = llm_rng_u64(r);
    __uint128_t m = (__uint128_t)x * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
        uint64_t t = -n % n;
        while (l < t) {
            x = llm_rng_u64(r);
            m = (__uint128_t)x * n;
            l = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double llm_rng_normal(llm_rng *r)
{
    /* Box-Muller; one value per call keeps the state a plain 4-word array. */
    double u1 = llm_rng_uniform(r), u2 = llm_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void llm_rng_permutation(llm_rng *r, size_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        a[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)llm_rng_below(r, i), t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}
