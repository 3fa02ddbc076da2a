/* rst_blocks.c: compressed page data (format 4, Docs/IMAGE-FORMAT.md 4.11). A MEMORY_AREA record with
 * STASIS_AREA_COMPRESSED holds no pages itself: rst_restore_area maps it and starts a cursor over its
 * stored runs (rst_blocks_begin), and each PAGE_BLOCKS record after it places its blocks in order,
 * each inside one run: read in now (checked against its CRC, decompressed straight into place), or,
 * in a lazy restart, handed to the pager as one piece per block. The area gets its recorded
 * protection back once its last block is in. */
#include "rst.h"

void rst_blocks_begin(struct rst_args *args, const stasis_memory_area_record_t *area, uint64_t runs_offset, int lazy) {
    struct rst_block_area *b = &args->blocks_area;
    b->active = 1;
    b->lazy = lazy;
    b->start = area->start;
    b->end = area->end;
    b->prot = area->prot;
    b->run_count = area->run_count;
    b->runs_offset = runs_offset;
    b->run_index = 0;
    b->run_page = 0;
    b->run_left = 0;
    b->stored_pages = 0;
    b->stored_done = 0;
    /* the stored pages in all (rst_restore_area has checked every run against the area) */
    stasis_page_run_t run;
    for (uint32_t i = 0; i < area->run_count; i++) {
        if (rst_read_image(args, &run, sizeof run, runs_offset + (uint64_t)i * sizeof run) < 0)
            rst_fail_image(args, "bad page run of compressed area", area->start);
        if (!(run.first_page & STASIS_RUN_INHERITED)) b->stored_pages += run.page_count;
    }
    if (!b->stored_pages) rst_fail_image(args, "compressed area without stored pages", area->start);
}

/* Where the next block of `pages` pages goes: the rest of the current stored run, which must hold it. */
static int next_block_address(struct rst_args *args, struct rst_block_area *b, uint64_t pages, uint64_t *address) {
    while (b->run_left == 0) {
        if (b->run_index >= b->run_count) return -1;
        stasis_page_run_t run;
        if (rst_read_image(args, &run, sizeof run, b->runs_offset + (uint64_t)b->run_index++ * sizeof run) < 0) return -1;
        if (run.first_page & STASIS_RUN_INHERITED) continue;
        b->run_page = run.first_page;
        b->run_left = run.page_count;
    }
    if (pages > b->run_left) return -1;
    *address = b->start + b->run_page * RST_PAGE;
    b->run_page += pages;
    b->run_left -= pages;
    return 0;
}

/* A block's pages from its stored bytes: 0, or -1 when they fail their CRC or do not decode to
 * exactly `raw` bytes. A raw block's stored bytes are its pages (`stored` may be `pages` then); a
 * filtered one is decoded into `scratch` (a block's room) and unfiltered into place. */
int rst_decode_block(const uint8_t *stored, uint32_t stored_bytes, uint32_t crc, uint32_t flags, uint8_t *pages, uint64_t raw,
                     uint8_t *scratch) {
    if (stasis_crc32c_end(stasis_crc32c_update(stasis_crc32c_begin(), stored, stored_bytes)) != crc) return -1;
    if (flags & STASIS_BLOCK_RAW) {
        if (stored != pages) memcpy(pages, stored, raw);
        return 0;
    }
    if (flags & STASIS_BLOCK_SHUFFLED) {
        if (stasis_lz_decompress(stored, stored_bytes, scratch, raw) < 0) return -1;
        stasis_lz_unshuffle(scratch, pages, raw);
        return 0;
    }
    return stasis_lz_decompress(stored, stored_bytes, pages, raw);
}

/* A block read in now: its stored bytes into the work region's buffer (a raw block straight into
 * place), checked and decoded into place. */
static void read_block_now(struct rst_args *args, uint64_t address, const stasis_page_block_t *block, uint64_t offset) {
    uint8_t *stored = block->flags & STASIS_BLOCK_RAW ? (uint8_t *)address : args->block_buffer;
    if (rst_pread_all(args->image_fd, stored, block->stored_bytes, offset) < 0)
        rst_fail(args, "cannot read page data for area", args->blocks_area.start);
    if (rst_decode_block(stored, block->stored_bytes, block->crc, block->flags, (uint8_t *)address,
                         (uint64_t)block->pages * RST_PAGE, args->block_buffer + RST_BLOCK_BYTES) < 0)
        rst_fail_image(args, "compressed page data damaged (checksum or block) in area", args->blocks_area.start);
}

void rst_lazy_add_block(struct rst_args *args, uint64_t address, const stasis_page_block_t *block, uint64_t offset, int area) {
    if (args->lazy_piece_count >= args->lazy_piece_capacity) { /* too fragmented for the table: read it now */
        read_block_now(args, address, block, offset);
        return;
    }
    struct rst_lazy_piece *p = &args->lazy_pieces[args->lazy_piece_count++];
    p->address = address;
    p->pages = block->pages;
    p->offset = offset;
    p->fd = args->image_fd;
    p->area = area;
    p->first = args->lazy_page_count;
    p->flags = RST_PIECE_BLOCK | (block->flags & STASIS_BLOCK_RAW ? RST_PIECE_RAW : 0)
             | (block->flags & STASIS_BLOCK_SHUFFLED ? RST_PIECE_SHUFFLED : 0);
    p->stored_bytes = block->stored_bytes;
    p->crc = block->crc;
    args->lazy_page_count += block->pages;
}

int rst_restore_blocks(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset) {
    struct rst_block_area *b = &args->blocks_area;
    if (!b->active) rst_fail_image(args, "compressed page data without its memory area at", offset);
    stasis_page_blocks_record_t head;
    stasis_page_block_t blocks[STASIS_BLOCKS_PER_RECORD];
    uint64_t payload = offset + sizeof *record;
    if (record->payload_bytes < sizeof head || rst_read_image(args, &head, sizeof head, payload) < 0) return -1;
    if (head.block_count < 1 || head.block_count > STASIS_BLOCKS_PER_RECORD || head.first_page != b->stored_done ||
        record->payload_bytes != sizeof head + head.block_count * sizeof blocks[0])
        return -1;
    if (rst_read_image(args, blocks, head.block_count * sizeof blocks[0], payload + sizeof head) < 0) return -1;
    uint64_t data = record->data_offset, data_end = record->data_offset + record->data_bytes;
    for (uint32_t i = 0; i < head.block_count; i++) {
        const stasis_page_block_t *k = &blocks[i];
        uint64_t raw = (uint64_t)k->pages * RST_PAGE;
        int is_raw = (k->flags & STASIS_BLOCK_RAW) != 0;
        if (k->pages < 1 || k->pages > STASIS_BLOCK_MAX_PAGES || (k->flags & ~(STASIS_BLOCK_RAW | STASIS_BLOCK_SHUFFLED)) ||
            (k->flags == (STASIS_BLOCK_RAW | STASIS_BLOCK_SHUFFLED)) ||
            (is_raw ? k->stored_bytes != raw : (k->stored_bytes == 0 || k->stored_bytes >= raw)) ||
            k->stored_bytes > data_end - data)
            return -1;
        uint64_t address;
        if (next_block_address(args, b, k->pages, &address) < 0) return -1;
        if (b->lazy >= 0) rst_lazy_add_block(args, address, k, data, b->lazy);
        else read_block_now(args, address, k, data);
        data += k->stored_bytes;
        b->stored_done += k->pages;
    }
    if (b->stored_done > b->stored_pages) return -1;
    if (b->stored_done == b->stored_pages) {
        b->active = 0;
        /* mapped readable and writable for the blocks: back to the recorded protection, if it differs */
        if ((b->prot & (RST_PROT_READ | RST_PROT_WRITE)) != (RST_PROT_READ | RST_PROT_WRITE)) {
            long r = stasis_syscall3(STASIS_NR_mprotect, (long)b->start, (long)(b->end - b->start), (long)b->prot);
            if (r < 0) rst_fail(args, "cannot protect memory area", b->start);
        }
    }
    return 0;
}
