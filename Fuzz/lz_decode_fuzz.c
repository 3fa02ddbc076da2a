/* libFuzzer target for the block codec (Sources/CStasisABI/include/stasis_lz.h), the decoder the
 * restorer and the pager will run on page data from the image. The first two bytes of the input
 * choose the output length (0 .. 65535); the rest is the block. The output buffer is a heap
 * allocation of exactly that length, so AddressSanitizer sees any write outside it, and the block
 * is copied to one of exactly its length, so it sees any read past it. Then the same bytes are
 * compressed and must decompress to themselves. Built by Fuzz/run.sh with clang -fsanitize=fuzzer,address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stasis_lz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t length = (size_t)data[0] | (size_t)data[1] << 8;
    size_t block_bytes = size - 2;
    uint8_t *block = malloc(block_bytes ? block_bytes : 1), *out = malloc(length ? length : 1);
    memcpy(block, data + 2, block_bytes);
    int result = stasis_lz_decompress(block, block_bytes, out, length);
    if (result != 0 && result != -1) abort();

    /* Round trip of the whole input as data. */
    static uint32_t scratch[STASIS_LZ_SCRATCH_BYTES / 4];
    uint8_t *compressed = malloc(size), *back = malloc(size);
    size_t n = stasis_lz_compress(data, size, compressed, size, scratch);
    if (n >= size && n != 0) abort();
    if (n != 0) {
        uint8_t *exact = malloc(n);
        memcpy(exact, compressed, n);
        if (stasis_lz_decompress(exact, n, back, size) != 0 || memcmp(back, data, size) != 0) abort();
        free(exact);
    }
    free(compressed);
    free(back);
    free(block);
    free(out);
    return 0;
}
