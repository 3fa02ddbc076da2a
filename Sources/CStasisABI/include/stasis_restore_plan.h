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
 * A member of a process tree (Docs/ARCHITECTURE.md 3.6) gets a plan too, even when it is not
 * incremental: its objects are the memory objects its MAP_SHARED areas of memfds, deleted files and
 * shared anonymous memory (STASIS_AREA_FILE_OBJECT) map, one per (device, inode) for the whole tree,
 * made and filled by the launcher before any process of the tree exists. The restorer maps the
 * object named by an area's device and inode, reads none of the area's pages, and closes the
 * objects' descriptors once memory is in place.
 *
 *   PLAN ::= stasis_restore_plan_header_t  stasis_page_segment_t[segment_count]  stasis_plan_check_t[check_count]
 *            stasis_plan_object_t[object_count] */
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
    uint32_t object_count;                     /* shared memory objects (process trees), after the checks */
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

#define STASIS_PLAN_MAX_OBJECTS 256

typedef struct stasis_plan_object {
    uint64_t device, inode; /* as MEMORY_AREA records with STASIS_AREA_FILE_OBJECT name it */
    int32_t fd;             /* the restorer's descriptor for it (a memfd or recreated file, read-write) */
    uint32_t reserved;
} stasis_plan_object_t;
_Static_assert(sizeof(stasis_plan_object_t) == 24, "plan ABI: object");

#endif
