/* stasis_image_abi.h: the on-disk layout of a Stasis image.
 *
 * One definition of the format for every part: the agent writes these structs
 * byte for byte, the restorer reads them, and StasisImage decodes the same
 * fields in the same order (Tests/StasisImageTests checks the offsets).
 * Docs/IMAGE-FORMAT.md is the normative description. Append fields only; a
 * change of meaning bumps STASIS_IMAGE_VERSION.
 *
 *   IMAGE   ::= HEADER PROGRAM-PATH { RECORD } END-RECORD
 *   RECORD  ::= stasis_record_header PAYLOAD [pad to 8] [pad to page DATA]
 *
 * All integers little-endian. Every record starts 8-byte aligned. A record
 * with bulk data (page contents) stores it at data_offset, which is the first
 * page boundary after the payload; the next record starts right after it.
 */
#ifndef STASIS_IMAGE_ABI_H
#define STASIS_IMAGE_ABI_H

#include <stdint.h>

#define STASIS_IMAGE_MAGIC "STASIS\0\x01"
#define STASIS_IMAGE_MAGIC_BYTES 8
#define STASIS_IMAGE_MAGIC_WORD 0x0100534953415453ull /* the same 8 bytes read as a little-endian uint64 */
#define STASIS_IMAGE_VERSION 4        /* 4: compressed page data (PAGE_BLOCKS); 3: process trees (SHARED_DESCRIPTION, TREE_PROCESS) */
#define STASIS_IMAGE_VERSION_PLAIN 3  /* what an image without compressed page data says: older readers take it */
#define STASIS_IMAGE_VERSION_OLDEST 2 /* readers accept STASIS_IMAGE_VERSION_OLDEST ... STASIS_IMAGE_VERSION */
#define STASIS_ARCH_X86_64 62 /* ELF e_machine EM_X86_64 */
#define STASIS_PAGE_SIZE 4096
#define STASIS_RECORD_ALIGN 8 /* records (and the first, after the program path) start on this boundary */
#define STASIS_RECORD_ALIGN_UP(x) (((x) + STASIS_RECORD_ALIGN - 1) & ~(uint64_t)(STASIS_RECORD_ALIGN - 1))
#define STASIS_MAX_PATH 4096
#define STASIS_MAX_XSAVE 16384

typedef struct stasis_image_header {
    char magic[8];             /* STASIS_IMAGE_MAGIC */
    uint32_t version;          /* STASIS_IMAGE_VERSION */
    uint32_t header_bytes;     /* sizeof(stasis_image_header_t) */
    uint32_t arch;             /* STASIS_ARCH_X86_64 */
    uint32_t page_size;        /* 4096 */
    uint64_t xcr0;             /* xsave features enabled where the image was taken */
    uint32_t xsave_size;       /* bytes of each thread's xsave area (incl. FP_XSTATE_MAGIC2) */
    uint32_t thread_count;
    int32_t pid;               /* pid of the checkpointed process */
    uint32_t uid;              /* real uid of the checkpointed process */
    uint64_t sequence;         /* checkpoint number within this process, from 1 */
    uint64_t time_ns;          /* CLOCK_REALTIME at the checkpoint */
    char kernel_release[72];   /* uname -r, NUL padded */
    uint32_t program_bytes;    /* length of the program path that follows the header */
    uint32_t header_crc;       /* CRC32C of the header (this field as 0) and the program path */
} stasis_image_header_t;
_Static_assert(sizeof(stasis_image_header_t) == 144, "image ABI: stasis_image_header_t");

/* Record kinds. Written to disk: append, never renumber. */
enum {
    STASIS_RECORD_END = 0,
    STASIS_RECORD_PROCESS = 1,
    STASIS_RECORD_MEMORY_AREA = 2,
    STASIS_RECORD_THREAD = 3,
    STASIS_RECORD_SIGNAL_ACTIONS = 4,
    STASIS_RECORD_FILE_DESCRIPTOR = 5,
    STASIS_RECORD_AGENT = 6,
    STASIS_RECORD_POSIX_TIMER = 7,
    STASIS_RECORD_PARENT = 8,
    STASIS_RECORD_PENDING_SIGNAL = 9,
    STASIS_RECORD_SHARED_DESCRIPTION = 10, /* tree member images only */
    STASIS_RECORD_TREE_PROCESS = 11,       /* tree manifests only */
    STASIS_RECORD_PAGE_BLOCKS = 12,        /* format 4: compressed page data of the MEMORY_AREA before it */
};

/* PARENT: this image is incremental (`stasis checkpoint --incremental`). It stores only the pages
 * written since its parent was taken; its inherited page runs (STASIS_RUN_INHERITED) are as the
 * parent image has them, and so on up the chain to a full image. The first record after the
 * header, so that a reader finds an image's chain without decoding the rest. */
typedef struct stasis_parent_record {
    uint64_t sequence;       /* the parent's header.sequence */
    uint64_t time_ns;        /* the parent's header.time_ns */
    int32_t pid;             /* the parent's header.pid */
    uint32_t chain_length;   /* images in the chain including this one: >= 2 */
    uint32_t name_bytes;     /* followed by the parent's file name, in this image's directory (no '/') */
    uint32_t reserved;
} stasis_parent_record_t;
_Static_assert(sizeof(stasis_parent_record_t) == 32, "image ABI: stasis_parent_record_t");

/* Incremental images: a page run whose first_page has this bit holds no data here; its pages are as
 * the parent image has them. */
#define STASIS_RUN_INHERITED (1ull << 63)

/* POSIX_TIMER: one timer_create timer (from /proc/self/timers and timer_gettime). Restored with the
 * same id (prctl PR_TIMER_CREATE_RESTORE_IDS), notification and remaining time; a pending overrun
 * count is not restored. */
typedef struct stasis_posix_timer_record {
    int32_t id;
    int32_t clock_id;
    int32_t signal;          /* sigev_signo */
    int32_t notify;          /* sigev_notify: SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2, | SIGEV_THREAD_ID 4 */
    int32_t tid;             /* SIGEV_THREAD_ID: the thread */
    int32_t overrun;         /* timer_getoverrun, informational */
    uint64_t value;          /* sigev_value */
    int64_t interval_sec, interval_nsec, value_sec, value_nsec; /* timer_gettime: value = remaining */
} stasis_posix_timer_record_t;
_Static_assert(sizeof(stasis_posix_timer_record_t) == 64, "image ABI: stasis_posix_timer_record_t");

typedef struct stasis_record_header {
    uint32_t kind;          /* STASIS_RECORD_* */
    uint32_t payload_bytes; /* bytes of payload after this header, before padding to 8 */
    uint64_t data_offset;   /* absolute file offset of bulk data (page aligned), or 0 */
    uint64_t data_bytes;    /* bytes of bulk data; multiple of the page size */
    uint32_t payload_crc;   /* CRC32C of the four fields above and the payload (not the padding) */
    uint32_t data_crc;      /* CRC32C of the bulk data (0 when there is none) */
} stasis_record_header_t;
_Static_assert(sizeof(stasis_record_header_t) == 32, "image ABI: stasis_record_header_t");
#define STASIS_RECORD_CRC_OFFSET 24 /* payload_crc, data_crc: filled in when the record is complete */
#define STASIS_HEADER_CRC_OFFSET 140 /* offsetof(stasis_image_header_t, header_crc) */
_Static_assert(__builtin_offsetof(stasis_image_header_t, header_crc) == STASIS_HEADER_CRC_OFFSET, "image ABI: header_crc");
_Static_assert(__builtin_offsetof(stasis_record_header_t, payload_crc) == STASIS_RECORD_CRC_OFFSET, "image ABI: payload_crc");

/* END: the last record. Its presence and counts prove the file is complete.
 * With a key (--key), mac is the HMAC-SHA256 of every byte of the file before it, read with the
 * CRC fields (header_crc, each record header's payload_crc and data_crc) as zero. */
typedef struct stasis_end_record {
    uint64_t record_count;  /* records before this one */
    uint64_t end_offset;    /* file offset of this record's header */
    uint64_t magic;         /* STASIS_END_MAGIC */
    uint64_t flags;         /* STASIS_END_SIGNED */
    uint8_t mac[32];        /* zero unless signed */
} stasis_end_record_t;
#define STASIS_END_MAGIC 0x444E454953415453ull /* "STASIEND" */
#define STASIS_END_SIGNED 1ull
#define STASIS_END_MAC_OFFSET 32 /* within the END payload */
_Static_assert(sizeof(stasis_end_record_t) == 64, "image ABI: stasis_end_record_t");
_Static_assert(__builtin_offsetof(stasis_end_record_t, mac) == STASIS_END_MAC_OFFSET, "image ABI: END mac");

/* PROCESS: whole-process state. Followed by cwd, exe path, then auxv bytes. */
typedef struct stasis_process_record {
    int32_t pid, ppid;
    uint32_t uid, gid, euid, egid;
    uint32_t umask;
    uint32_t personality;
    char comm[16];          /* process name (prctl PR_GET_NAME) */
    /* mm layout for prctl(PR_SET_MM_MAP), from /proc/self/stat and brk(0) */
    uint64_t start_code, end_code, start_data, end_data;
    uint64_t start_brk, brk, start_stack;
    uint64_t arg_start, arg_end, env_start, env_end;
    uint32_t cwd_bytes;
    uint32_t exe_bytes;
    uint32_t auxv_bytes;
    uint32_t reserved;
    uint64_t rlimits[16][2];   /* prlimit64 (soft, hard) for RLIMIT_CPU ... RLIMIT_RTTIME */
    int64_t itimers[3][4];     /* getitimer REAL, VIRTUAL, PROF: interval sec, usec, value sec, usec */
    uint32_t no_new_privs;     /* PR_GET_NO_NEW_PRIVS */
    uint32_t dumpable;         /* PR_GET_DUMPABLE */
    uint64_t cap_effective;    /* capget: effective capabilities (restart as non-root refuses nonzero) */
} stasis_process_record_t;
_Static_assert(sizeof(stasis_process_record_t) == 520, "image ABI: stasis_process_record_t");

/* MEMORY_AREA flags */
enum {
    STASIS_AREA_SHARED = 1 << 0,      /* MAP_SHARED */
    STASIS_AREA_ANONYMOUS = 1 << 1,   /* no backing file (incl. shared anonymous) */
    STASIS_AREA_HEAP = 1 << 2,        /* [heap] */
    STASIS_AREA_STACK = 1 << 3,       /* [stack]: restored MAP_GROWSDOWN */
    STASIS_AREA_VDSO = 1 << 4,        /* [vdso]: not stored, the new one is moved here */
    STASIS_AREA_VVAR = 1 << 5,        /* [vvar]: not stored, moved with the vdso */
    STASIS_AREA_VVAR_VCLOCK = 1 << 6, /* [vvar_vclock]: not stored, moved with the vdso */
    STASIS_AREA_VSYSCALL = 1 << 7,    /* [vsyscall]: fixed by the kernel, skipped */
    STASIS_AREA_SCRATCH = 1 << 8,     /* agent scratch: mapped, contents not stored */
    STASIS_AREA_FILE_OBJECT = 1 << 9, /* with SHARED|ANONYMOUS: MAP_SHARED of a memfd or a deleted file;
                                         device/inode name that file as its FILE_DESCRIPTOR record does
                                         (st_dev encoding); the restorer maps the file recreated for that
                                         record again, else one memfd of its own per device/inode */
    STASIS_AREA_COMPRESSED = 1 << 10, /* format 4: the record holds no page data itself; the PAGE_BLOCKS
                                         records right after it hold its stored runs' pages, in blocks */
};

/* MEMORY_AREA: one line of /proc/self/maps. Followed by run_count runs, then
 * the path (path_bytes). Bulk data: the pages of each run, in order. */
typedef struct stasis_memory_area_record {
    uint64_t start, end;    /* page aligned, end exclusive */
    uint64_t file_offset;   /* pgoff * page size, for file mappings */
    uint32_t prot;          /* PROT_READ | PROT_WRITE | PROT_EXEC */
    uint32_t flags;         /* STASIS_AREA_* */
    uint64_t device, inode; /* of the mapped file (st_dev, st_ino), else 0 */
    uint64_t file_size;     /* st_size at checkpoint, for change detection */
    int64_t file_mtime_ns;  /* st_mtim at checkpoint */
    uint32_t run_count;     /* stored page runs */
    uint32_t path_bytes;
} stasis_memory_area_record_t;
_Static_assert(sizeof(stasis_memory_area_record_t) == 72, "image ABI: stasis_memory_area_record_t");

/* PAGE_BLOCKS (format 4): page data of a STASIS_AREA_COMPRESSED area, in blocks. The area's stored
 * pages (its runs that are not inherited, in order, back to back) are cut into blocks of at most
 * STASIS_BLOCK_MAX_PAGES pages that never cross a run; the records after the area hold those blocks
 * in order, each record a few of them, until the area's stored pages are all there. The record's bulk
 * data is the blocks' stored bytes back to back, zero padded to a page multiple (data_crc covers
 * it all); each block also has its own CRC so that a lazy restart can check one block alone. A
 * block is compressed with stasis_lz.h (stored_bytes < its pages' bytes), or raw (STASIS_BLOCK_RAW:
 * stored_bytes = its pages' bytes). Payload: this struct, then block_count stasis_page_block_t. */
typedef struct stasis_page_blocks_record {
    uint64_t first_page;   /* the first block's first page, counted in the area's stored pages */
    uint32_t block_count;  /* 1 ... STASIS_BLOCKS_PER_RECORD */
    uint32_t reserved;
} stasis_page_blocks_record_t;
_Static_assert(sizeof(stasis_page_blocks_record_t) == 16, "image ABI: stasis_page_blocks_record_t");

typedef struct stasis_page_block {
    uint32_t pages;        /* 1 ... STASIS_BLOCK_MAX_PAGES */
    uint32_t stored_bytes; /* bytes in the record's data */
    uint32_t crc;          /* CRC32C of those stored bytes */
    uint32_t flags;        /* STASIS_BLOCK_RAW, or STASIS_BLOCK_SHUFFLED */
} stasis_page_block_t;
_Static_assert(sizeof(stasis_page_block_t) == 16, "image ABI: stasis_page_block_t");
#define STASIS_BLOCK_RAW 1u
#define STASIS_BLOCK_SHUFFLED 2u /* compressed after stasis_lz.h's numeric filter (undo it after decoding) */
#define STASIS_BLOCK_MAX_PAGES 64        /* 256 KiB: the unit a lazy restart decompresses */
#define STASIS_BLOCKS_PER_RECORD 16      /* 4 MiB of pages per record: what the writer holds at once */

/* A run of stored pages inside an area: pages [first_page, first_page + page_count). */
typedef struct stasis_page_run {
    uint64_t first_page;
    uint64_t page_count;
} stasis_page_run_t;
_Static_assert(sizeof(stasis_page_run_t) == 16, "image ABI: stasis_page_run_t");

/* General registers in the kernel's struct sigcontext order (= glibc REG_*). */
enum {
    STASIS_REG_R8 = 0, STASIS_REG_R9, STASIS_REG_R10, STASIS_REG_R11, STASIS_REG_R12, STASIS_REG_R13,
    STASIS_REG_R14, STASIS_REG_R15, STASIS_REG_RDI, STASIS_REG_RSI, STASIS_REG_RBP, STASIS_REG_RBX,
    STASIS_REG_RDX, STASIS_REG_RAX, STASIS_REG_RCX, STASIS_REG_RSP, STASIS_REG_RIP, STASIS_REG_EFL,
    STASIS_REG_CSGSFS, STASIS_REG_ERR, STASIS_REG_TRAPNO, STASIS_REG_OLDMASK, STASIS_REG_CR2,
    STASIS_REG_COUNT
};

/* THREAD: one thread's state as captured by itself in its signal handler.
 * Followed by xsave_bytes of xsave area (the signal frame's fpstate, with the
 * software-reserved bytes and FP_XSTATE_MAGIC2). */
typedef struct stasis_thread_record {
    int32_t tid;
    uint32_t xsave_bytes;
    uint64_t gregs[STASIS_REG_COUNT]; /* interrupted context */
    uint64_t uc_flags;                /* ucontext uc_flags from the frame */
    uint64_t sigmask;                 /* blocked signals of the interrupted context */
    uint64_t fs_base, gs_base;
    uint64_t clear_child_tid;         /* PR_GET_TID_ADDRESS: glibc's struct pthread tid field */
    uint64_t robust_list, robust_list_len;
    uint64_t rseq_address;            /* 0: none registered */
    uint32_t rseq_length, rseq_signature;
    uint64_t altstack_sp, altstack_size;
    int32_t altstack_flags;
    int32_t in_syscall;               /* nonzero: interrupted in a system call (orig rax follows) */
    int64_t syscall_number;
    char name[16];                    /* thread name */
    uint64_t pending_signals;         /* rt_sigpending: pending for this thread (with the process's);
                                         the restorer raises once those without PENDING_SIGNAL records */
} stasis_thread_record_t;
_Static_assert(sizeof(stasis_thread_record_t) == 320, "image ABI: stasis_thread_record_t");

/* PENDING_SIGNAL: one instance of a signal pending at the checkpoint, with the siginfo the program
 * would have received (taken out with rt_sigtimedwait in the thread it was queued to, put back with
 * rt_tgsigqueueinfo / rt_sigqueueinfo by the main thread). Records come in queue order: within one
 * queue and one signal number, the first record is the first instance delivered. */
typedef struct stasis_pending_signal_record {
    int32_t tid;             /* the thread whose own queue held it (thread-directed), or the tid of the
                                thread that took it from the process's queue */
    uint32_t flags;          /* STASIS_PENDING_PROCESS: in the process's (shared) queue */
    int32_t signal;          /* 1..64, never SIGKILL or SIGSTOP; equals the siginfo's si_signo */
    uint32_t reserved;
    uint8_t siginfo[128];    /* the kernel's siginfo_t: si_signo at 0, si_errno 4, si_code 8, then
                                si_pid 16, si_uid 20, si_value 24 for SI_QUEUE / SI_USER / SI_TKILL */
} stasis_pending_signal_record_t;
_Static_assert(sizeof(stasis_pending_signal_record_t) == 144, "image ABI: stasis_pending_signal_record_t");
#define STASIS_PENDING_PROCESS 1u
#define STASIS_MAX_PENDING_SIGNALS 1024 /* per image; more stay pending in the program, raised once at restart */

/* SIGNAL_ACTIONS: the kernel's struct sigaction for signals 1..64. */
typedef struct stasis_signal_action {
    uint64_t handler;   /* SIG_DFL = 0, SIG_IGN = 1, else an address */
    uint64_t flags;     /* SA_* */
    uint64_t restorer;
    uint64_t mask;
} stasis_signal_action_t;
#define STASIS_SIGNAL_COUNT 64
typedef struct stasis_signal_actions_record {
    stasis_signal_action_t actions[STASIS_SIGNAL_COUNT]; /* index = signal number - 1 */
} stasis_signal_actions_record_t;
_Static_assert(sizeof(stasis_signal_actions_record_t) == 2048, "image ABI: stasis_signal_actions_record_t");

/* FILE_DESCRIPTOR and the per-kind state that follows it: stasis_descriptor_abi.h.
 * SHARED_DESCRIPTION and TREE_PROCESS (process trees): stasis_tree_abi.h. */
#include "stasis_descriptor_abi.h"
#include "stasis_tree_abi.h"

/* AGENT: where the agent's restore hooks live in the program's memory. */
typedef struct stasis_agent_record {
    uint64_t restore_tail;   /* stasis_restore_tail: munmap(restorer) + rt_sigreturn (main thread) */
    uint64_t state_address;  /* stasis_agent_state_t, updated by the restorer */
    int32_t trigger_signal;
    uint32_t reserved;
    uint64_t restore_thread_tail; /* stasis_restore_thread_tail: set a done flag + rt_sigreturn (other threads) */
    uint64_t key_slot;       /* stasis_key_slot_t in agent scratch memory (never in an image) */
} stasis_agent_record_t;
_Static_assert(sizeof(stasis_agent_record_t) == 40, "image ABI: stasis_agent_record_t");

/* The signing key, in the agent's scratch arena: images never contain it. The restorer fills it
 * when `stasis restart --key` gives one. */
typedef struct stasis_key_slot {
    uint32_t key_bytes;      /* 0: images are not signed */
    uint8_t key[4092];
} stasis_key_slot_t;

/* The agent's state that a restore must change, at stasis_agent_record.state_address. */
typedef struct stasis_agent_state {
    uint64_t magic;               /* STASIS_AGENT_STATE_MAGIC */
    volatile int32_t busy;        /* a checkpoint is being written; the restorer clears it */
    int32_t restored_count;       /* restores of this process image so far */
    uint64_t sequence;            /* last checkpoint number */
    /* the freeze protocol (Docs/ARCHITECTURE.md); the restorer clears freeze_active */
    volatile int32_t freeze_active;     /* followers capture only while this is set */
    volatile int32_t freeze_generation; /* bumped by the leader to thaw the followers (futex word) */
    volatile int32_t captured;          /* followers that have captured themselves (futex word) */
    volatile int32_t slot_count;        /* next free capture slot */
    int32_t writer_pid;                 /* --fork: the child still writing the last image, to reap */
    int32_t pager_pid;                  /* lazy restart: the pager still bringing pages in (restorer sets it) */
} stasis_agent_state_t;
#define STASIS_AGENT_STATE_MAGIC 0x5354415445414753ull

/* x86-64 xsave signal-frame magics (defined here: the kernel header clashes with glibc's). */
#define STASIS_FP_XSTATE_MAGIC1 0x46505853u
#define STASIS_FP_XSTATE_MAGIC2 0x46505845u
#define STASIS_FP_SW_BYTES_OFFSET 464

/* CRC32C (Castagnoli), as iSCSI and ext4 use it: start with stasis_crc32c_begin(), feed bytes,
 * finish with stasis_crc32c_end(). SSE4.2 instructions; every x86-64 CPU since 2008 has them. */
static inline uint32_t stasis_crc32c_begin(void) { return 0xffffffffu; }
static inline uint32_t stasis_crc32c_end(uint32_t crc) { return crc ^ 0xffffffffu; }

/* a * b mod P, bit-reflected as the crc32 instruction keeps its state (bit 31 is x^0). */
static inline uint32_t stasis_crc32c_multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        product ^= (0u - ((a >> (31 - i)) & 1u)) & b;
        b = (b >> 1) ^ ((0u - (b & 1u)) & 0x82f63b78u);
    }
    return product;
}

/* Three streams of STASIS_CRC32C_STRIDE bytes at once: the crc32 instruction takes 3 cycles and can
 * start one a cycle, so one stream runs at a third of its speed (~7 GB/s here, slower than memory).
 * The streams' states are joined by the linearity of the CRC: feeding n zero bytes multiplies the
 * state by x^(8n) mod P, STASIS_CRC32C_SHIFT for n = STRIDE (the state after 8192 zero bytes fed
 * from x^0 = 0x80000000; a test checks it). */
#define STASIS_CRC32C_STRIDE 8192
#define STASIS_CRC32C_SHIFT 0x28461564u
__attribute__((target("sse4.2"))) static inline uint32_t stasis_crc32c_update(uint32_t crc, const void *data,
                                                                                unsigned long count) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t c = crc;
    while (count >= 3 * STASIS_CRC32C_STRIDE) {
        uint64_t c1 = 0, c2 = 0;
        for (unsigned long i = 0; i < STASIS_CRC32C_STRIDE; i += 8) {
            uint64_t v0, v1, v2;
            __builtin_memcpy(&v0, p + i, 8);
            __builtin_memcpy(&v1, p + STASIS_CRC32C_STRIDE + i, 8);
            __builtin_memcpy(&v2, p + 2 * STASIS_CRC32C_STRIDE + i, 8);
            c = __builtin_ia32_crc32di(c, v0);
            c1 = __builtin_ia32_crc32di(c1, v1);
            c2 = __builtin_ia32_crc32di(c2, v2);
        }
        uint32_t joined = stasis_crc32c_multiply(STASIS_CRC32C_SHIFT, (uint32_t)c) ^ (uint32_t)c1;
        c = stasis_crc32c_multiply(STASIS_CRC32C_SHIFT, joined) ^ (uint32_t)c2;
        p += 3 * STASIS_CRC32C_STRIDE;
        count -= 3 * STASIS_CRC32C_STRIDE;
    }
    while (count >= 8) {
        uint64_t v;
        __builtin_memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        count -= 8;
    }
    while (count--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    return (uint32_t)c;
}

#endif
