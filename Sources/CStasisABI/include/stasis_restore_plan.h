/* stasis_restore_plan.h: what `stasis restart` hands the restorer besides the image, in a memfd.
 *
 * For an incremental image the launcher follows the PARENT chain and resolves every inherited page
 * run to the image that holds its data: one segment per contiguous piece, sorted by address. The
 * restorer reads each segment into place right after the area that contains it is mapped. Pages an
 * inherited run covers but no segment does are as mapped (zero, or the file's contents).
 *
 * The parents' page data is checked against its CRCs too, once: every parent area a segment takes
 * pages from is listed as a check (its whole page data and data_crc); the restorer checks them before
 * the program runs, or, in a lazy restart, the pager does while it pages in.
 *
 *   PLAN ::= stasis_restore_plan_header_t  stasis_page_segment_t[segment_count]  stasis_plan_check_t[check_count] */
#ifndef STASIS_RESTORE_PLAN_H
#define STASIS_RESTORE_PLAN_H

#include <stdint.h>

#define STASIS_PLAN_MAGIC 0x4e414c5053415453ull /* "STASPLAN" */
#define STASIS_PLAN_MAX_IMAGES 256

typedef struct stasis_restore_plan_header {
    uint64_t magic;
    uint32_t segment_count;
    uint32_t image_count;                      /* parent images, oldest last */
    uint32_t check_count;
    uint32_t reserved;
    int32_t image_fds[STASIS_PLAN_MAX_IMAGES]; /* the restorer's descriptor for each */
} stasis_restore_plan_header_t;
_Static_assert(sizeof(stasis_restore_plan_header_t) == 1048, "plan ABI: header");

typedef struct stasis_page_segment {
    uint64_t address;     /* page aligned */
    uint64_t bytes;       /* multiple of the page size */
    uint64_t file_offset; /* in image image_fds[image] */
    uint32_t image;
    uint32_t reserved;
} stasis_page_segment_t;
_Static_assert(sizeof(stasis_page_segment_t) == 32, "plan ABI: segment");

typedef struct stasis_plan_check {
    uint64_t file_offset; /* a parent area's page data: data_offset */
    uint64_t bytes;       /* data_bytes */
    uint32_t image;       /* index into image_fds */
    uint32_t crc;         /* data_crc */
} stasis_plan_check_t;
_Static_assert(sizeof(stasis_plan_check_t) == 24, "plan ABI: check");

#endif
