/* rst.h: the restorer's shared declarations.
 *
 * The restorer is a freestanding static-pie: no libc, no globals (it copies
 * itself to a hole in the address space and runs from there, so everything it
 * knows travels in one struct rst_args). Raw syscalls only. */
#ifndef RST_H
#define RST_H

#include <stddef.h>
#include <stdint.h>

#include "stasis_image_abi.h"
#include "stasis_kernel.h"
#include "stasis_sha256.h"
#include "stasis_lz.h"
#include "stasis_syscall.h"
#include "stasis_restore_plan.h"
#include "stasis_protocol.h"

/* mmap, mremap, open flags (the kernel's values; the restorer has no libc headers for them) */
#define RST_MAP_PRIVATE 0x02
#define RST_MAP_SHARED 0x01
#define RST_MAP_FIXED 0x10
#define RST_MAP_ANONYMOUS 0x20
#define RST_MAP_FIXED_NOREPLACE 0x100000
#define RST_MAP_GROWSDOWN 0x100
#define RST_MREMAP_MAYMOVE 1
#define RST_MREMAP_FIXED 2
#define RST_PROT_READ 1
#define RST_PROT_WRITE 2
#define RST_O_RDONLY 0
#define RST_O_RDWR 2
#define RST_O_CLOEXEC 02000000

#define RST_PAGE 4096ul
#define RST_USER_TOP 0x7ffffffff000ul
#define RST_MMAP_MIN 0x10000ul
#define RST_STACK_BYTES (256ul << 10)
#define RST_STACK_GUARD (1ul << 20) /* kept free below the restorer's own stack (the kernel's stack_guard_gap) */
#define RST_MAX_CURRENT 64
#define RST_MAX_THREADS 4096
#define RST_THREAD_STACK_BYTES (32ul << 10)
#define RST_EXIT_FAILED 86
#define RST_MAX_FILE_OBJECTS 256

struct rst_range {
    uint64_t start, end;
    uint32_t vdso_kind; /* 0, or STASIS_AREA_VDSO / _VVAR / _VVAR_VCLOCK */
};

/* One thread to restore: its record, where its xsave bytes are, and the flag its
 * restore tail sets once it no longer uses restorer memory. */
struct rst_thread {
    stasis_thread_record_t record;
    uint64_t xsave_offset;
    volatile int32_t done;
    int32_t index;
    int32_t new_tid;                /* the id it got (its old one when set_tid worked) */
    volatile int32_t prepared;      /* tree members: its state and frame are ready; it waits for `released` */
    struct rst_args *args;
};

struct rst_args {
    int image_fd;
    int status_fd;
    uint64_t image_size;
    stasis_image_header_t header;
    uint64_t first_record;          /* file offset of the first record */
    /* rst_read_image's window of record bytes (headers, payloads; never page data) */
    uint64_t window_offset, window_bytes;
    unsigned char window[8192];
    /* where the restorer runs after moving itself */
    uint64_t work_start, work_bytes;
    uint64_t code_start, code_bytes; /* the copy of the restorer's own mapping */
    uint64_t vdso_temp;              /* scratch range for moving the vDSO family */
    uint64_t vdso_image_start[3], vdso_image_end[3]; /* the image's vDSO family, found by rst_find_hole */
    struct rst_range current[RST_MAX_CURRENT]; /* the restorer's own mappings at start */
    int current_count;
    /* collected while mapping memory */
    stasis_process_record_t process;
    uint64_t process_offset;        /* payload offset of the PROCESS record (for cwd/exe/auxv) */
    stasis_agent_record_t agent;
    stasis_signal_actions_record_t signals;
    struct rst_thread *threads;     /* header.thread_count entries, in the work region */
    int thread_count;
    uint64_t thread_stacks;         /* RST_THREAD_STACK_BYTES per thread, in the work region */
    int have_process, have_agent, have_signals;
    int key_fd;                     /* -1, or a pipe with the signing key (`stasis restart --key`) */
    int key_slot_ok;                /* the agent's key slot lies in a scratch area of the image */
    stasis_posix_timer_record_t timers[64]; /* POSIX timers, created once every thread exists */
    int timer_count;
    uint64_t raised_signals;        /* pending signals raised again so far (each once: rt_sigpending
                                       shows process-wide ones in every thread) */
    stasis_pending_signal_record_t pending[STASIS_MAX_PENDING_SIGNALS]; /* PENDING_SIGNAL records, in order */
    int pending_count;
    int plan_fd;                    /* -1, or the launcher's restore plan (stasis_restore_plan.h) */
    stasis_restore_plan_header_t plan;
    uint32_t next_segment;          /* the first plan segment not yet read in */
    /* lazy restart (rst_lazy.c) */
    int lazy_requested;             /* argv[5] == 1 */
    int64_t pager_delay_ms;         /* argv[6]: the pager serves only faults this long (tests) */
    int uffd;                       /* -1: every page is read in now */
    long lazy_unavailable;          /* -errno of the userfaultfd that could not be had */
    int lazy_missed;                /* an area would have been lazy: say why it was not */
    int32_t program_pid, pager_pid;
    struct rst_lazy_piece *lazy_pieces;
    struct rst_lazy_area *lazy_areas;
    uint64_t lazy_piece_count, lazy_piece_capacity, lazy_page_count;
    uint32_t lazy_area_count, lazy_area_capacity;
    /* Memfds and deleted files, for areas mapped MAP_SHARED from them (STASIS_AREA_FILE_OBJECT): the
     * program's fd that has each one (from its FILE_DESCRIPTOR record; those come before the areas), or
     * a memfd of the restorer's own (own = 1, closed once memory is in place), or the launcher's object
     * for a tree (own = 2: from the restore plan, already filled; closed once memory is in place). */
    struct rst_file_object { uint64_t device, inode; int32_t fd, own; } file_objects[RST_MAX_FILE_OBJECTS];
    int file_object_count;
    /* process trees (rst_thread.c): the go pipe (-1: a single process), STASIS_RESTORER_TREE_*, and the
     * word the other threads wait on until the go */
    int go_fd;
    uint32_t tree_flags;
    volatile int32_t released;
    char path[STASIS_MAX_PATH + 1]; /* scratch */
    /* compressed areas (rst_blocks.c): 2 * RST_BLOCK_BYTES of the work region, for a block's stored
     * bytes and a filtered block's decoded bytes, and the area whose PAGE_BLOCKS records come next */
    uint8_t *block_buffer;
    struct rst_block_area {
        int active, lazy;             /* lazy: its rst_lazy_area index, or -1 */
        uint64_t start, end;
        uint32_t prot, run_count;
        uint64_t runs_offset;         /* file offset of its page runs */
        uint32_t run_index;           /* the next run to read */
        uint64_t run_page, run_left;  /* where in the current stored run the next block goes */
        uint64_t stored_pages, stored_done;
    } blocks_area;
};

/* Lazy restart (rst_lazy.c): a run of pages the pager serves, and an area whose CRC it checks. */
struct rst_lazy_piece {
    uint64_t address;
    uint64_t pages;
    uint64_t offset;  /* in fd */
    uint64_t first;   /* pager page number of its first page (pieces are numbered back to back) */
    int32_t fd;
    int32_t area;     /* rst_lazy_area index whose CRC covers it, or -1 (a parent's pages: checked by the launcher) */
    uint32_t flags;   /* RST_PIECE_*: a compressed area's block (offset: its stored bytes) */
    uint32_t stored_bytes, crc; /* a block's, checked by the pager before it uses the block */
};
#define RST_PIECE_BLOCK 1u
#define RST_PIECE_RAW 2u
#define RST_PIECE_SHUFFLED 4u
#define RST_BLOCK_BYTES ((uint64_t)STASIS_BLOCK_MAX_PAGES * RST_PAGE)
#define RST_LAZY_PIECES (256u << 10)
#define RST_LAZY_AREAS (16u << 10)
struct rst_lazy_area {
    uint64_t start, end;
    uint64_t data_bytes;  /* 0: not checked */
    uint64_t seen;
    uint32_t expected_crc, crc;
};

/* rst_lib.c */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
size_t rst_strlen(const char *s);
/* Fresh private read-write memory, or NULL. */
static inline void *rst_map_anonymous(uint64_t bytes) {
    long p = stasis_syscall6(STASIS_NR_mmap, 0, (long)bytes, 3 /* rw */, RST_MAP_PRIVATE | RST_MAP_ANONYMOUS, -1, 0);
    return p < 0 && p > -4096 ? 0 : (void *)p;
}
void rst_write_text(int fd, const char *text);
/* A status line built in pieces and written with one write(2) (rst_lib.c). */
struct rst_line {
    char text[1024];
    size_t length;
};
void rst_line_text(struct rst_line *line, const char *text);
void rst_line_hex(struct rst_line *line, uint64_t value);
void rst_line_send(struct rst_line *line, int fd);
__attribute__((noreturn)) void rst_fail(struct rst_args *args, const char *what, uint64_t value);
/* The image itself is damaged (a checksum, a length, an offset): `stasis restart` exits 3. */
__attribute__((noreturn)) void rst_fail_image(struct rst_args *args, const char *what, uint64_t value);
void rst_warn(struct rst_args *args, const char *what, uint64_t value);
int rst_pread_all(int fd, void *buffer, uint64_t count, uint64_t offset);
int rst_read_image(struct rst_args *args, void *buffer, uint64_t count, uint64_t offset);

/* rst_image.c: iterate and validate records */
typedef int (*rst_record_fn)(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset);
void rst_read_header(struct rst_args *args);
void rst_for_each_record(struct rst_args *args, rst_record_fn fn);
uint32_t rst_crc_of_file(struct rst_args *args, uint32_t crc, uint64_t offset, uint64_t count);

/* rst_memory.c */
void rst_read_current_maps(struct rst_args *args);
void rst_find_hole(struct rst_args *args);
void rst_unmap_restorer(struct rst_args *args);
void rst_move_vdso(struct rst_args *args);
int rst_restore_area(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset);
void rst_restore_mm(struct rst_args *args);
void rst_restore_timers(struct rst_args *args);
void rst_drop_capabilities(struct rst_args *args); /* rst_process.c */
void rst_read_plan(struct rst_args *args);

/* rst_lazy.c */
void rst_lazy_open(struct rst_args *args);
int rst_lazy_wants(struct rst_args *args, const stasis_memory_area_record_t *area);
int rst_lazy_add_area(struct rst_args *args, uint64_t start, uint64_t end, uint64_t data_bytes, uint32_t crc);
void rst_lazy_add_piece(struct rst_args *args, uint64_t address, uint64_t bytes, int fd, uint64_t offset, int area);
void rst_lazy_start(struct rst_args *args);
void rst_read_path(struct rst_args *args, uint64_t offset, uint32_t length); /* rst_memory.c */
void rst_plan_skip_segments(struct rst_args *args, const stasis_memory_area_record_t *area); /* rst_plan.c */
void rst_plan_read_segments(struct rst_args *args, const stasis_memory_area_record_t *area, int lazy); /* rst_plan.c */
__attribute__((noreturn)) void rst_pager_main(struct rst_args *args, int go_fd, int hello_fd); /* rst_pager.c */
uint64_t rst_lazy_table_bytes(void);
void rst_lazy_place_tables(struct rst_args *args, uint64_t at);
void rst_check_plan_done(struct rst_args *args);
void rst_close_plan(struct rst_args *args);
void rst_note_file_object(struct rst_args *args, const stasis_file_descriptor_record_t *fd);
void rst_close_file_objects(struct rst_args *args);
int rst_plan_check(struct rst_args *args, uint32_t index, stasis_plan_check_t *check);
void rst_verify_plan_checks(struct rst_args *args);

/* rst_blocks.c */
void rst_blocks_begin(struct rst_args *args, const stasis_memory_area_record_t *area, uint64_t runs_offset, int lazy);
int rst_restore_blocks(struct rst_args *args, const stasis_record_header_t *record, uint64_t offset);
int rst_decode_block(const uint8_t *stored, uint32_t stored_bytes, uint32_t crc, uint32_t flags, uint8_t *pages, uint64_t raw,
                     uint8_t *scratch);
void rst_lazy_add_block(struct rst_args *args, uint64_t address, const stasis_page_block_t *block, uint64_t offset, int area);

/* rst_thread.c */
__attribute__((noreturn)) void rst_restore_threads(struct rst_args *args);
long rst_clone3_thread(void *clone_args, unsigned long size, void (*fn)(struct rst_thread *), struct rst_thread *arg);

#endif
