/* stasis_syscall.h: raw x86-64 system calls. Each returns the result or -errno
 * and never touches errno, so it is safe in a signal handler, in the freeze
 * window and in the libc-free restorer. */
#ifndef STASIS_SYSCALL_H
#define STASIS_SYSCALL_H

#include <stdint.h>

#define STASIS_NR_read 0
#define STASIS_NR_write 1
#define STASIS_NR_open 2
#define STASIS_NR_poll 7
#define STASIS_NR_close 3
#define STASIS_NR_fstat 5
#define STASIS_NR_lseek 8
#define STASIS_NR_mmap 9
#define STASIS_NR_mprotect 10
#define STASIS_NR_munmap 11
#define STASIS_NR_brk 12
#define STASIS_NR_rt_sigaction 13
#define STASIS_NR_rt_sigprocmask 14
#define STASIS_NR_rt_sigreturn 15
#define STASIS_NR_ioctl 16
#define STASIS_NR_pread64 17
#define STASIS_NR_pwrite64 18
#define STASIS_NR_mremap 25
#define STASIS_NR_getpid 39
#define STASIS_NR_exit 60
#define STASIS_NR_kill 62
#define STASIS_NR_uname 63
#define STASIS_NR_sched_getaffinity 204
#define STASIS_NR_fcntl 72
#define STASIS_NR_fsync 74
#define STASIS_NR_ftruncate 77
#define STASIS_NR_getdents64 217
#define STASIS_NR_rename 82
#define STASIS_NR_symlink 88
#define STASIS_NR_fchdir 81
#define STASIS_NR_chdir 80
#define STASIS_NR_dup2 33
#define STASIS_NR_dup3 292
#define STASIS_NR_setsid 112
#define STASIS_NR_wait4 61
#define STASIS_NR_unlink 87
#define STASIS_NR_readlink 89
#define STASIS_NR_umask 95
#define STASIS_NR_getuid 102
#define STASIS_NR_getgid 104
#define STASIS_NR_geteuid 107
#define STASIS_NR_getegid 108
#define STASIS_NR_getppid 110
#define STASIS_NR_sigaltstack 131
#define STASIS_NR_personality 135
#define STASIS_NR_prctl 157
#define STASIS_NR_arch_prctl 158
#define STASIS_NR_gettid 186
#define STASIS_NR_tgkill 234
#define STASIS_NR_rt_tgsigqueueinfo 297
#define STASIS_NR_sched_yield 24
#define STASIS_NR_set_tid_address 218
#define STASIS_NR_clock_gettime 228
#define STASIS_NR_exit_group 231
#define STASIS_NR_openat 257
#define STASIS_NR_newfstatat 262
#define STASIS_NR_readlinkat 267
#define STASIS_NR_set_robust_list 273
#define STASIS_NR_get_robust_list 274
#define STASIS_NR_renameat2 316
#define STASIS_NR_rseq 334
#define STASIS_NR_nanosleep 35
#define STASIS_NR_waitid 247
#define STASIS_NR_timer_gettime 224
#define STASIS_NR_timer_getoverrun 225
#define STASIS_NR_capget 125
#define STASIS_NR_prlimit64 302
#define STASIS_NR_memfd_create 319
#define STASIS_NR_getitimer 36
#define STASIS_NR_madvise 28
#define STASIS_NR_clone 56
#define STASIS_NR_clone3 435
#define STASIS_NR_kcmp 312
#define STASIS_NR_mkdir 83
#define STASIS_NR_rmdir 84
#define STASIS_NR_unlinkat 263
#define STASIS_NR_rt_sigqueueinfo 129
#define STASIS_NR_getpgid 121
#define STASIS_NR_getsid 124
#define STASIS_NR_execve 59
#define STASIS_NR_epoll_ctl 233
#define STASIS_NR_eventfd2 290
#define STASIS_NR_epoll_create1 291
#define STASIS_NR_pipe2 293
#define STASIS_NR_socket 41
#define STASIS_NR_sendto 44
#define STASIS_NR_recvfrom 45
#define STASIS_NR_getsockname 51
#define STASIS_NR_setsockopt 54
#define STASIS_NR_getsockopt 55
#define STASIS_NR_tee 276
#define STASIS_NR_sync_file_range 277
#define STASIS_NR_timerfd_gettime 287

static inline long stasis_syscall0(long n) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n) : "rcx", "r11", "memory");
    return ret;
}
static inline long stasis_syscall1(long n, long a1) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a1) : "rcx", "r11", "memory");
    return ret;
}
static inline long stasis_syscall2(long n, long a1, long a2) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a1), "S"(a2) : "rcx", "r11", "memory");
    return ret;
}
static inline long stasis_syscall3(long n, long a1, long a2, long a3) {
    long ret;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a1), "S"(a2), "d"(a3) : "rcx", "r11", "memory");
    return ret;
}
static inline long stasis_syscall4(long n, long a1, long a2, long a3, long a4) {
    long ret;
    register long r10 __asm__("r10") = a4;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}
static inline long stasis_syscall5(long n, long a1, long a2, long a3, long a4, long a5) {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
static inline long stasis_syscall6(long n, long a1, long a2, long a3, long a4, long a5, long a6) {
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* XCR0: the xsave features the OS enabled on this CPU. */
static inline uint64_t stasis_xgetbv0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Size of the xsave area for the features in XCR0 (CPUID.(EAX=0DH,ECX=0):EBX). */
static inline uint32_t stasis_xsave_size(void) {
    uint32_t a = 0x0d, b, c = 0, d;
    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return b;
}

#endif
