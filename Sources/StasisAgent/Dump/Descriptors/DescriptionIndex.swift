// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// Finding descriptors that are one open file description (dup, fork, SCM_RIGHTS) without comparing
// every pair: kcmp(KCMP_FILE) is a total order, not just an equality test. The kernel compares the
// two struct file pointers after one fixed per-boot obfuscation (kernel/kcmp.c, kcmp_ptr) and
// returns 0 (same), 1 (first below), 2 (first above), in one order for every pair of processes.
//
// Algorithm:
//   1. one entry per descriptor: (device, inode, pid, fd, rank, slot), in arena memory
//   2. merge sort by (device, inode, the file's kcmp order, rank, slot): kcmp only between entries of
//      the same inode, so distinct files cost no system call; a run already in order costs one call
//      per merge (n dups of one fd: about n calls); n opens of one file (/dev/null) n log n calls
//   3. equal descriptions are now adjacent, lowest rank first: the owner of a run is its first entry
// Bottom-up, with a scratch copy as large as the entries: no recursion, no allocation.
import CStasisABI

/// One descriptor of one process. `rank` then `slot` break ties between entries of one description:
/// the lowest wins (a process's fd number; a tree member's index then its list position).
struct DescriptionEntry {
    var device: UInt64
    var inode: UInt64
    var pid: Int32
    var fd: Int32
    var rank: Int32
    var slot: Int32
}

/// The kcmp order of descriptions. `strict`: a kcmp error is a failure (a tree: two objects where the
/// program had one); else (one process) kcmp that fails once (ENOSYS, a seccomp filter's EPERM) is
/// not asked again, and descriptors then only ever share when they are the same fd.
struct DescriptionOrder {
    let strict: Bool
    var kcmpFailed = false

    @_noAllocation @_noLocks
    init(strict: Bool) { self.strict = strict }

    /// -1, 0 or 1: `a` before, the same description as, or after `b` (device, inode, kcmp order).
    @_noAllocation @_noLocks
    mutating func compareFiles(_ a: DescriptionEntry, _ b: DescriptionEntry) throws(FreezeFailure) -> Int {
        if a.device != b.device { return a.device < b.device ? -1 : 1 }
        if a.inode != b.inode { return a.inode < b.inode ? -1 : 1 }
        if a.pid == b.pid && a.fd == b.fd { return 0 }
        if kcmpFailed { return a.fd < b.fd ? -1 : (a.fd > b.fd ? 1 : (a.pid < b.pid ? -1 : 1)) }
        let r = RawSyscall.call(STASIS_NR_kcmp, Int(a.pid), Int(b.pid), 0 /* KCMP_FILE */, Int(a.fd), Int(b.fd))
        switch r {
        case 0: return 0
        case 1: return -1
        case 2: return 1
        default:
            if strict { throw FreezeFailure(step: .readProc, errno: r < 0 ? -r : RawErrno.notSupported, object: Int(b.pid)) }
            kcmpFailed = true
            return a.fd < b.fd ? -1 : (a.fd > b.fd ? 1 : (a.pid < b.pid ? -1 : 1))
        }
    }

    /// Whether `a` sorts before or with `b`: the files' order, then rank, then slot.
    @_noAllocation @_noLocks
    mutating func inOrder(_ a: DescriptionEntry, _ b: DescriptionEntry) throws(FreezeFailure) -> Bool {
        let files = try compareFiles(a, b)
        if files != 0 { return files < 0 }
        if a.rank != b.rank { return a.rank < b.rank }
        return a.slot <= b.slot
    }

    /// Sorts `count` entries; `scratch` has room for as many. Stable, O(n log n) comparisons, O(n)
    /// when the entries are already in order.
    @_noAllocation @_noLocks
    mutating func sort(_ entries: UnsafeMutablePointer<DescriptionEntry>, count: Int,
                       scratch: UnsafeMutablePointer<DescriptionEntry>) throws(FreezeFailure) {
        var source = entries, target = scratch
        var width = 1
        while width < count {
            var start = 0
            while start < count {
                let middle = min(start + width, count), end = min(start + 2 * width, count)
                try merge(source, start, middle, end, into: target)
                start = end
            }
            let other = source
            source = target
            target = other
            width *= 2
        }
        if source != entries { Self.copy(entries, from: source, count) }
    }

    @_noAllocation @_noLocks
    private mutating func merge(_ from: UnsafeMutablePointer<DescriptionEntry>, _ start: Int, _ middle: Int, _ end: Int,
                                into to: UnsafeMutablePointer<DescriptionEntry>) throws(FreezeFailure) {
        // Already in order (a run of one file's dups, or of distinct inodes): one comparison.
        var sorted = middle >= end
        if !sorted { sorted = try inOrder(from[middle - 1], from[middle]) }
        if sorted {
            Self.copy(to + start, from: from + start, end - start)
            return
        }
        var i = start, j = middle, k = start
        while i < middle && j < end {
            if try inOrder(from[i], from[j]) {
                to[k] = from[i]
                i += 1
            } else {
                to[k] = from[j]
                j += 1
            }
            k += 1
        }
        if i < middle { Self.copy(to + k, from: from + i, middle - i) }
        if j < end { Self.copy(to + k, from: from + j, end - j) }
    }

    /// The entries are plain values: a byte copy.
    @_noAllocation @_noLocks
    private static func copy(_ to: UnsafeMutablePointer<DescriptionEntry>, from: UnsafeMutablePointer<DescriptionEntry>, _ count: Int) {
        UnsafeMutableRawPointer(to).copyMemory(from: UnsafeRawPointer(from), byteCount: count * MemoryLayout<DescriptionEntry>.stride)
    }

    /// The first of `count` sorted entries with the same description as `key`, or nil (binary search:
    /// O(log n) kcmp calls).
    @_noAllocation @_noLocks
    mutating func first(sameAs key: DescriptionEntry, in entries: UnsafeMutablePointer<DescriptionEntry>,
                        count: Int) throws(FreezeFailure) -> Int? {
        var low = 0, high = count
        while low < high {
            let middle = low + (high - low) / 2
            if try compareFiles(entries[middle], key) < 0 { low = middle + 1 } else { high = middle }
        }
        guard low < count, try compareFiles(entries[low], key) == 0 else { return nil }
        return low
    }
}
