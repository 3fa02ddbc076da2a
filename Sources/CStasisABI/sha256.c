/* sha256.c: FIPS 180-4 SHA-256 and RFC 2104 HMAC, written for Stasis (no allocation, no libc). */
#include "stasis_sha256.h"

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static void compress(uint32_t s[8], const uint8_t p[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    s[0] += a; s[1] += b; s[2] += c; s[3] += d; s[4] += e; s[5] += f; s[6] += g; s[7] += h;
}

void stasis_sha256_init(stasis_sha256_t *h) {
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    for (int i = 0; i < 8; i++) h->state[i] = initial[i];
    h->length = 0;
    h->used = 0;
}

void stasis_sha256_update(stasis_sha256_t *h, const void *data, size_t count) {
    const uint8_t *p = data;
    h->length += count;
    if (h->used) {
        while (count && h->used < 64) { h->block[h->used++] = *p++; count--; }
        if (h->used < 64) return;
        compress(h->state, h->block);
        h->used = 0;
    }
    while (count >= 64) { compress(h->state, p); p += 64; count -= 64; }
    while (count) { h->block[h->used++] = *p++; count--; }
}

void stasis_sha256_final(stasis_sha256_t *h, uint8_t out[32]) {
    uint64_t bits = h->length * 8;
    uint8_t pad = 0x80;
    stasis_sha256_update(h, &pad, 1);
    uint8_t zero = 0;
    while (h->used != 56) stasis_sha256_update(h, &zero, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; i++) length[i] = (uint8_t)(bits >> (56 - 8 * i));
    stasis_sha256_update(h, length, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(h->state[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h->state[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h->state[i] >> 8);
        out[4 * i + 3] = (uint8_t)h->state[i];
    }
}

void stasis_hmac_init(stasis_hmac_t *m, const uint8_t *key, size_t key_bytes) {
    uint8_t block[64];
    for (int i = 0; i < 64; i++) block[i] = 0;
    if (key_bytes > 64) {
        stasis_sha256_t k;
        stasis_sha256_init(&k);
        stasis_sha256_update(&k, key, key_bytes);
        stasis_sha256_final(&k, block);
    } else {
        for (size_t i = 0; i < key_bytes; i++) block[i] = key[i];
    }
    uint8_t ipad[64], opad[64];
    for (int i = 0; i < 64; i++) {
        ipad[i] = block[i] ^ 0x36;
        opad[i] = block[i] ^ 0x5c;
    }
    stasis_sha256_init(&m->inner);
    stasis_sha256_update(&m->inner, ipad, 64);
    stasis_sha256_init(&m->outer);
    stasis_sha256_update(&m->outer, opad, 64);
}

void stasis_hmac_update(stasis_hmac_t *m, const void *data, size_t count) { stasis_sha256_update(&m->inner, data, count); }

void stasis_hmac_final(stasis_hmac_t *m, uint8_t out[32]) {
    uint8_t inner[32];
    stasis_sha256_final(&m->inner, inner);
    stasis_sha256_update(&m->outer, inner, 32);
    stasis_sha256_final(&m->outer, out);
}
