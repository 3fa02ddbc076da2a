/* stasis_sha256.h: SHA-256 and HMAC-SHA256 for image signatures (--key). Freestanding C: no
 * allocation, no libc, usable in the agent's freeze window, the launcher and the tests. */
#ifndef STASIS_SHA256_H
#define STASIS_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct stasis_sha256 {
    uint32_t state[8];
    uint64_t length;      /* bytes hashed so far */
    uint8_t block[64];
    uint32_t used;        /* bytes in block */
} stasis_sha256_t;

typedef struct stasis_hmac {
    stasis_sha256_t inner, outer;
} stasis_hmac_t;

#define STASIS_MAC_BYTES 32
#define STASIS_KEY_MAX 4000

void stasis_sha256_init(stasis_sha256_t *_Nonnull h);
void stasis_sha256_update(stasis_sha256_t *_Nonnull h, const void *_Nonnull data, size_t count);
void stasis_sha256_final(stasis_sha256_t *_Nonnull h, uint8_t out[_Nonnull 32]);
void stasis_hmac_init(stasis_hmac_t *_Nonnull m, const uint8_t *_Nonnull key, size_t key_bytes);
void stasis_hmac_update(stasis_hmac_t *_Nonnull m, const void *_Nonnull data, size_t count);
void stasis_hmac_final(stasis_hmac_t *_Nonnull m, uint8_t out[_Nonnull 32]);

#endif
