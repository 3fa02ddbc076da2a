// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// Areas marked MADV_DONTFORK, from /proc/self/smaps ("VmFlags: ... dc"). Read only when a child has
/// shown they exist: smaps walks every page table, which costs milliseconds in a large process.
enum DontForkAreas {
    static let dontFork = 10  // MADV_DONTFORK
    static let doFork = 11    // MADV_DOFORK

    /// (start, end) pairs in arena memory and their count; nil when smaps cannot be read or is too large.
    @_noAllocation @_noLocks
    static func find(arena: inout FreezeArena) -> (UnsafeMutablePointer<UInt64>, Int)? {
        let capacity = 64 << 20
        let rangeCapacity = 4096
        guard let text = arena.take(capacity), let raw = arena.take(rangeCapacity * 16) else { return nil }
        let count = ProcFile.read(literal: "/proc/self/smaps", into: text, capacity: capacity)
        guard count > 0 else { return nil }
        let bytes = text.assumingMemoryBound(to: UInt8.self)
        let ranges = raw.assumingMemoryBound(to: UInt64.self)
        var found = 0
        var areaStart: UInt64 = 0, areaEnd: UInt64 = 0
        var lines = ByteCursor(bytes, count: count)
        while let line = lines.nextLine() {
            // An area's maps line starts with a hex digit; its "Key: value" lines with a capital.
            if let area = MapsLine(parsing: line.bytes, count: line.count) {
                (areaStart, areaEnd) = (area.start, area.end)
            } else if SmapsLine.vmFlags(line, contain: "dc") {
                guard found < rangeCapacity else { return nil }
                ranges[2 * found] = areaStart
                ranges[2 * found + 1] = areaEnd
                found += 1
            }
        }
        return (ranges, found)
    }

    @_noAllocation @_noLocks
    static func mark(_ ranges: UnsafeMutablePointer<UInt64>, _ count: Int, advice: Int) {
        for i in 0..<count {
            _ = RawSyscall.call(STASIS_NR_madvise, Int(ranges[2 * i]), Int(ranges[2 * i + 1] - ranges[2 * i]), advice)
        }
    }
}
