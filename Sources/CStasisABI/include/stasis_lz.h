/* stasis_lz.h: Stasis's block codec for page data (issue 16, `--compress`; not yet used by images).
 *
 * LZ77 with LZ4-style sequences, written for Stasis. Header-only and `static inline` like the CRC32C
 * in stasis_image_abi.h, so that the agent, the launcher, the tests and the freestanding restorer
 * and pager all compile the same code: no libc, no allocation, no globals (the hash table lives in
 * caller scratch), only constant-size __builtin_memcpy (plain loads and stores). A .c would need a
 * library target every part links, and the restorer links none; inline functions cost nothing
 * where unused (the restorer only ever instantiates the decoder).
 *
 * Block format (Docs/IMAGE-FORMAT.md, "Compressed blocks"). A block is a sequence of SEQUENCEs:
 *
 *   SEQUENCE ::= TOKEN [LITLEN-EXT] LITERALS [ OFFSET [MATCHLEN-EXT] ]
 *   TOKEN        one byte: high 4 bits L, low 4 bits M
 *   LITLEN-EXT   present when L = 15: bytes b1 b2 ... up to and including the first that is not 255;
 *                the literal count is 15 + their sum. Otherwise the count is L.
 *   LITERALS     that many bytes, copied to the output as they are
 *   OFFSET       u16 little-endian, 1 .. 65535: the match starts OFFSET bytes before the current
 *                output position, and never before the block's first output byte
 *   MATCHLEN-EXT present when M = 15, as LITLEN-EXT; the match length is 4 + M (+ the sum)
 *
 * The match is copied byte by byte in order, so OFFSET < length repeats a pattern (OFFSET 1 is a
 * run). The block ends when the input ends right after a sequence's LITERALS: the last sequence
 * has no OFFSET (and its M must be 0), and the output must then be exactly the expected length.
 * Anything else (input ending inside a token, a length or an offset, OFFSET 0 or reaching before
 * the output's start, output longer or shorter than expected, an extension overflowing) is a
 * malformed block. Unlike LZ4 blocks there is no rule about the last bytes: a match may run to the
 * very end (the final sequence then has 0 literals: one byte 0x00).
 *
 * The decoder never reads outside [src, src + src_len) nor writes outside [dst, dst + dst_len),
 * whatever the input; bytes it wrote before finding a block malformed are unspecified.
 */
#ifndef STASIS_LZ_H
#define STASIS_LZ_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of caller scratch stasis_lz_compress needs (a 4096-entry hash table of u32 positions). */
#define STASIS_LZ_HASH_LOG 12
#define STASIS_LZ_SCRATCH_BYTES (4u << STASIS_LZ_HASH_LOG)
/* Largest block the encoder takes (positions are kept as u32). */
#define STASIS_LZ_MAX_BLOCK 0x7fffffffu
#define STASIS_LZ_MIN_MATCH 4
#define STASIS_LZ_MAX_OFFSET 65535u

static inline uint64_t stasis_lz_load64(const uint8_t *_Nonnull p) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}
static inline uint32_t stasis_lz_load32(const uint8_t *_Nonnull p) {
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}
static inline void stasis_lz_copy8(uint8_t *_Nonnull d, const uint8_t *_Nonnull s) { __builtin_memcpy(d, s, 8); }
static inline void stasis_lz_copy16(uint8_t *_Nonnull d, const uint8_t *_Nonnull s) { __builtin_memcpy(d, s, 16); }

/* Hash of the 5 low bytes of an 8-byte load (as LZ4 does on 64-bit): page data is mostly words. */
static inline uint32_t stasis_lz_hash(uint64_t v) {
    return (uint32_t)(((v << 24) * 889523592379ull) >> (64 - STASIS_LZ_HASH_LOG));
}

/* Bytes a length extension takes for `extra` (the part beyond the 15 of the nibble). */
static inline size_t stasis_lz_ext_bytes(size_t extra) { return extra / 255 + 1; }

static inline uint8_t *_Nonnull stasis_lz_put_ext(uint8_t *_Nonnull op, size_t extra) {
    while (extra >= 255) {
        *op++ = 255;
        extra -= 255;
    }
    *op++ = (uint8_t)extra;
    return op;
}

/* Writes one sequence (literals [anchor, anchor+lit), then a match unless final) when it fits in
 * [op, limit); returns the new output position, or NULL when it would not fit. */
static inline uint8_t *_Nullable stasis_lz_put_sequence(uint8_t *_Nonnull op, const uint8_t *_Nonnull limit,
                                                        const uint8_t *_Nonnull anchor, size_t lit, size_t offset,
                                                        size_t match, int final, const uint8_t *_Nonnull dst_end,
                                                        const uint8_t *_Nonnull src_end) {
    size_t need = 1 + lit + (lit >= 15 ? stasis_lz_ext_bytes(lit - 15) : 0);
    if (!final) need += 2 + (match - 4 >= 15 ? stasis_lz_ext_bytes(match - 4 - 15) : 0);
    if (need > (size_t)(limit - op)) return NULL;
    uint8_t *token = op++;
    unsigned t = (unsigned)(lit >= 15 ? 15 : lit) << 4;
    if (lit >= 15) op = stasis_lz_put_ext(op, lit - 15);
    /* Literals: 8 bytes at a time when 8 bytes of slack remain in both buffers. */
    if ((size_t)(dst_end - op) >= lit + 8 && (size_t)(src_end - anchor) >= lit + 8) {
        uint8_t *e = op + lit;
        while (op < e) {
            stasis_lz_copy8(op, anchor);
            op += 8;
            anchor += 8;
        }
        op = e;
    } else {
        for (size_t i = 0; i < lit; i++) *op++ = anchor[i];
    }
    if (!final) {
        *op++ = (uint8_t)offset;
        *op++ = (uint8_t)(offset >> 8);
        size_t m = match - 4;
        t |= m >= 15 ? 15 : (unsigned)m;
        if (m >= 15) op = stasis_lz_put_ext(op, m - 15);
    }
    *token = (uint8_t)t;
    return op;
}

/* Compresses src_len bytes of src into dst (dst_cap bytes). Returns the compressed length, which is
 * always < src_len, or 0 when the block does not shrink (store it raw), src_len is 0 or above
 * STASIS_LZ_MAX_BLOCK, or the result does not fit in dst_cap. scratch: STASIS_LZ_SCRATCH_BYTES,
 * 4-byte aligned, contents irrelevant (overwritten). src and dst must not overlap. Greedy: the
 * first match found is taken. Blocks under 16 bytes are never compressed. */
static inline size_t stasis_lz_compress(const void *_Nonnull src, size_t src_len, void *_Nonnull dst, size_t dst_cap,
                                        void *_Nonnull scratch) {
    if (src_len == 0 || src_len > STASIS_LZ_MAX_BLOCK) return 0;
    const uint8_t *const base = (const uint8_t *)src, *const iend = base + src_len;
    uint8_t *op = (uint8_t *)dst;
    const uint8_t *const dst_end = op + dst_cap;
    /* The result must be shorter than the input: everything is written below `limit`. */
    const uint8_t *const limit = op + (dst_cap < src_len - 1 ? dst_cap : src_len - 1);
    uint32_t *const table = (uint32_t *)scratch;
    for (unsigned i = 0; i < (1u << STASIS_LZ_HASH_LOG); i++) table[i] = 0;

    const uint8_t *anchor = base, *ip = base;
    if (src_len >= 16) {
        /* Searching needs 8 readable bytes at ip; extending a match reads up to iend. */
        const uint8_t *const search_end = iend - 8;
        table[stasis_lz_hash(stasis_lz_load64(ip))] = 0;
        ip++;
        for (;;) {
            /* Find a match: skip faster the longer nothing is found (random data). */
            const uint8_t *match;
            unsigned attempts = 1u << 6;
            for (;;) {
                if (ip > search_end) goto last_literals;
                uint64_t v = stasis_lz_load64(ip);
                uint32_t h = stasis_lz_hash(v);
                match = base + table[h];
                table[h] = (uint32_t)(ip - base);
                if ((size_t)(ip - match) <= STASIS_LZ_MAX_OFFSET && match < ip &&
                    stasis_lz_load32(match) == (uint32_t)v)
                    break;
                ip += attempts++ >> 6;
            }
            /* Extend backwards over equal literals, then forwards. */
            while (ip > anchor && match > base && ip[-1] == match[-1]) {
                ip--;
                match--;
            }
            for (;;) {
                const uint8_t *p = ip + 4, *m = match + 4;
                while (p + 8 <= iend) {
                    uint64_t x = stasis_lz_load64(p) ^ stasis_lz_load64(m);
                    if (x) {
                        p += __builtin_ctzll(x) >> 3;
                        goto extended;
                    }
                    p += 8;
                    m += 8;
                }
                while (p < iend && *p == *m) {
                    p++;
                    m++;
                }
            extended:;
                size_t length = (size_t)(p - ip);
                op = stasis_lz_put_sequence(op, limit, anchor, (size_t)(ip - anchor), (size_t)(ip - match), length, 0,
                                            dst_end, iend);
                if (!op) return 0;
                ip = p;
                anchor = ip;
                if (ip > search_end) goto last_literals;
                /* Remember a position inside the match, then try the next one right away. */
                table[stasis_lz_hash(stasis_lz_load64(ip - 2))] = (uint32_t)(ip - 2 - base);
                uint64_t v = stasis_lz_load64(ip);
                uint32_t h = stasis_lz_hash(v);
                match = base + table[h];
                table[h] = (uint32_t)(ip - base);
                if ((size_t)(ip - match) <= STASIS_LZ_MAX_OFFSET && match < ip && stasis_lz_load32(match) == (uint32_t)v)
                    continue;
                ip++;
                break;
            }
        }
    }
last_literals:
    op = stasis_lz_put_sequence(op, limit, anchor, (size_t)(iend - anchor), 0, 0, 1, dst_end, iend);
    if (!op) return 0;
    return (size_t)(op - (uint8_t *)dst);
}

/* Reads a length extension into *length (adding to it). 0, or -1 when the input ends first or the
 * length would exceed `bound`. */
static inline int stasis_lz_get_ext(const uint8_t *_Nonnull *_Nonnull ip, const uint8_t *_Nonnull iend,
                                    size_t *_Nonnull length, size_t bound) {
    const uint8_t *p = *ip;
    size_t n = *length;
    for (;;) {
        if (p >= iend) return -1;
        unsigned b = *p++;
        n += b;
        if (n > bound) return -1;
        if (b != 255) break;
    }
    *ip = p;
    *length = n;
    return 0;
}

/* Decompresses the block src (src_len bytes) into exactly dst_len bytes at dst. 0 on success, -1 on
 * any malformed block (see the format above), including one that decodes to another length. */
static inline int stasis_lz_decompress(const void *_Nonnull src, size_t src_len, void *_Nonnull dst, size_t dst_len) {
    const uint8_t *ip = (const uint8_t *)src;
    const uint8_t *const iend = ip + src_len;
    uint8_t *op = (uint8_t *)dst;
    uint8_t *const ostart = op, *const oend = op + dst_len;
    for (;;) {
        if (ip >= iend) return -1;
        unsigned token = *ip++;
        size_t lit = token >> 4;
        /* Fast path, most sequences of page data: < 15 literals, a match of < 19 bytes, far from
         * both ends (so 16-byte copies may run past what they need). */
        if (lit < 15 && (size_t)(iend - ip) >= 32 && (size_t)(oend - op) >= 48) {
            stasis_lz_copy16(op, ip);
            op += lit;
            ip += lit;
            size_t offset = (size_t)ip[0] | (size_t)ip[1] << 8;
            size_t length = token & 15;
            if (length < 15 && offset != 0 && offset <= (size_t)(op - ostart)) {
                ip += 2;
                const uint8_t *match = op - offset;
                if (offset >= 8) { /* each 8-byte copy reads only bytes already written */
                    stasis_lz_copy8(op, match);
                    stasis_lz_copy8(op + 8, match + 8);
                    stasis_lz_copy8(op + 16, match + 16);
                } else { /* a short period (runs of one byte): 18 bytes one at a time */
                    for (int i = 0; i < 18; i++) op[i] = match[i];
                }
                op += length + 4;
                continue;
            }
            lit = 0; /* the literals are done; the general path below takes the match */
        } else {
            if (lit == 15 && stasis_lz_get_ext(&ip, iend, &lit, dst_len) < 0) return -1;
            if (lit > (size_t)(iend - ip) || lit > (size_t)(oend - op)) return -1;
            if ((size_t)(iend - ip) >= lit + 8 && (size_t)(oend - op) >= lit + 8) {
                for (size_t i = 0; i < lit; i += 8) stasis_lz_copy8(op + i, ip + i);
            } else {
                for (size_t i = 0; i < lit; i++) op[i] = ip[i];
            }
            op += lit;
            ip += lit;
            if (ip == iend) return (op == oend && (token & 15) == 0) ? 0 : -1;
        }
        if ((size_t)(iend - ip) < 2) return -1;
        size_t offset = (size_t)ip[0] | (size_t)ip[1] << 8;
        ip += 2;
        if (offset == 0 || offset > (size_t)(op - ostart)) return -1;
        size_t length = token & 15;
        if (length == 15 && stasis_lz_get_ext(&ip, iend, &length, dst_len) < 0) return -1;
        length += 4;
        if (length > (size_t)(oend - op)) return -1;
        const uint8_t *match = op - offset;
        uint8_t *const end = op + length;
        if ((size_t)(oend - op) >= length + 8) {
            if (offset < 8) {
                /* A short period: copy it bytewise until a multiple of it is >= 8 bytes back. */
                size_t step = offset;
                while (step < 8) step += offset;
                for (size_t i = 0; i < step - offset; i++) *op++ = *match++;
                match = op - step;
            }
            while (op < end) { /* 8 bytes at a time: each chunk reads only bytes already written */
                stasis_lz_copy8(op, match);
                op += 8;
                match += 8;
            }
            op = end;
        } else {
            while (op < end) *op++ = *match++;
        }
    }
}

/* ---- the numeric filter ----------------------------------------------------------------------
 * Page data of numbers (a smooth double field, counters, timestamps) has no repeated byte strings
 * for LZ77 to find, but neighbouring 8-byte words differ little. The filter stores each word's
 * difference from the word before it (mod 2^64; the first from 0) and transposes those differences
 * into 8 planes of one byte each (plane b holds byte b of every difference): the high planes are
 * then long runs that the codec compresses. A PAGE_BLOCKS block with STASIS_BLOCK_SHUFFLED holds the
 * compressed filtered bytes. Lengths are multiples of 8. */

/* Whether a block looks numeric enough to try the filter: most of 64 word pairs spread over it
 * agree in their top 3 bytes (random data almost never does: one pair in 16 million). */
static inline int stasis_lz_looks_numeric(const void *_Nonnull src, size_t len) {
    const uint8_t *p = (const uint8_t *)src;
    size_t words = len / 8;
    if (words < 128) return 0;
    int close = 0;
    for (size_t k = 0; k < 64; k++) {
        size_t i = k * (words - 1) / 64;
        uint64_t a = stasis_lz_load64(p + 8 * i), b = stasis_lz_load64(p + 8 * i + 8);
        if (((a ^ b) >> 40) == 0) close++;
    }
    return close >= 32;
}

static inline void stasis_lz_shuffle(const void *_Nonnull src, void *_Nonnull dst, size_t len) {
    const uint8_t *p = (const uint8_t *)src;
    uint8_t *q = (uint8_t *)dst;
    size_t words = len / 8;
    uint64_t previous = 0;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = stasis_lz_load64(p + 8 * i);
        uint64_t d = w - previous;
        previous = w;
        for (int b = 0; b < 8; b++) q[b * words + i] = (uint8_t)(d >> (8 * b));
    }
}

static inline void stasis_lz_unshuffle(const void *_Nonnull src, void *_Nonnull dst, size_t len) {
    const uint8_t *q = (const uint8_t *)src;
    uint8_t *p = (uint8_t *)dst;
    size_t words = len / 8;
    uint64_t previous = 0;
    for (size_t i = 0; i < words; i++) {
        uint64_t d = 0;
        for (int b = 0; b < 8; b++) d |= (uint64_t)q[b * words + i] << (8 * b);
        previous += d;
        __builtin_memcpy(p + 8 * i, &previous, 8);
    }
}

#endif
