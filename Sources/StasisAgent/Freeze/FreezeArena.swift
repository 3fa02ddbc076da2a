// FREEZE WINDOW: see RawSyscall.swift. Scratch memory comes from the arena the C constructor mapped.

/// A bump allocator over the agent's pre-mapped scratch memory. Reset at the start of every checkpoint.
struct FreezeArena {
    let base: UnsafeMutableRawPointer
    let capacity: Int
    private(set) var used = 0

    @_noAllocation @_noLocks
    init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    /// Where the arena stands now: `reset(to:)` gives back everything taken since (scratch for one step).
    var mark: Int { used }

    @_noAllocation @_noLocks
    mutating func reset(to mark: Int) { used = min(used, mark) }

    /// `count` bytes aligned to `alignment` (a power of two), or nil when the arena is exhausted.
    @_noAllocation @_noLocks
    mutating func take(_ count: Int, alignment: Int = 16) -> UnsafeMutableRawPointer? {
        let start = (used + alignment - 1) & ~(alignment - 1)
        guard count >= 0, start <= capacity, count <= capacity - start else { return nil }
        used = start + count
        return base + start
    }
}
