// Parsers shared by the agent's freeze window and the tests. No allocation, no Foundation, no syscalls:
// @inlinable so that the agent's @_noAllocation checks (and its -wmo build) see every body.

/// One line of /proc/self/maps (proc_pid_maps(5)):
///     7f3c2a000000-7f3c2a021000 rw-p 00000000 00:00 0   [heap]
/// `pathStart`/`pathCount` index the caller's buffer, so parsing allocates nothing.
public struct MapsLine {
    public var start: UInt64 = 0
    public var end: UInt64 = 0
    public var isReadable = false
    public var isWritable = false
    public var isExecutable = false
    public var isShared = false
    public var offset: UInt64 = 0
    public var deviceMajor: UInt64 = 0
    public var deviceMinor: UInt64 = 0
    public var inode: UInt64 = 0
    public var pathStart = 0
    public var pathCount = 0

    /// Parses one line (without its newline); nil when it is malformed.
    @inlinable @_noAllocation @_noLocks
    public init?(parsing line: UnsafePointer<UInt8>, count: Int) {
        var cursor = ByteCursor(line, count: count)
        guard let start = cursor.hex(), cursor.current == UInt8(ascii: "-") else { return nil }
        cursor.index += 1
        guard let end = cursor.hex(), cursor.current == UInt8(ascii: " "), start < end else { return nil }
        cursor.index += 1
        guard cursor.index + 4 <= count else { return nil }
        let p = line + cursor.index
        guard p[0] == UInt8(ascii: "r") || p[0] == UInt8(ascii: "-"),
            p[1] == UInt8(ascii: "w") || p[1] == UInt8(ascii: "-"),
            p[2] == UInt8(ascii: "x") || p[2] == UInt8(ascii: "-"),
            p[3] == UInt8(ascii: "s") || p[3] == UInt8(ascii: "p")
        else { return nil }
        self.start = start
        self.end = end
        isReadable = p[0] == UInt8(ascii: "r")
        isWritable = p[1] == UInt8(ascii: "w")
        isExecutable = p[2] == UInt8(ascii: "x")
        isShared = p[3] == UInt8(ascii: "s")
        cursor.index += 4
        cursor.skip(UInt8(ascii: " "))
        guard let offset = cursor.hex() else { return nil }
        self.offset = offset
        cursor.skip(UInt8(ascii: " "))
        guard let major = cursor.hex(), cursor.current == UInt8(ascii: ":") else { return nil }
        cursor.index += 1
        guard let minor = cursor.hex() else { return nil }
        deviceMajor = major
        deviceMinor = minor
        cursor.skip(UInt8(ascii: " "))
        guard let inode = cursor.decimal(), inode >= 0 else { return nil }
        self.inode = UInt64(inode)
        cursor.skip(UInt8(ascii: " "))
        pathStart = cursor.index
        pathCount = count - cursor.index
    }

    /// Whether the path equals `name` (e.g. "[heap]").
    @inlinable @_noAllocation @_noLocks
    public func pathEquals(_ name: StaticString, in line: UnsafePointer<UInt8>) -> Bool {
        guard pathCount == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        for i in 0..<pathCount where line[pathStart + i] != expected[i] { return false }
        return true
    }
}

/// /proc/PID/smaps: each area's maps line is followed by "Key: value" lines, the last being
/// "VmFlags: rd wr mr mw me dc ..." (two-letter flags, e.g. dc = MADV_DONTFORK).
public enum SmapsLine {
    /// Whether `line` is a "VmFlags:" line holding `flag`.
    @inlinable @_noAllocation @_noLocks
    public static func vmFlags(_ line: ByteCursor, contain flag: StaticString) -> Bool {
        var cursor = line
        guard cursor.skipWord("VmFlags:"), flag.utf8CodeUnitCount == 2 else { return false }
        let wanted = flag.utf8Start
        while !cursor.atEnd {
            cursor.skip(UInt8(ascii: " "))
            let start = cursor.index
            cursor.skipPast(UInt8(ascii: " "))
            var end = cursor.index
            if end > start && line.bytes[end - 1] == UInt8(ascii: " ") { end -= 1 }
            if end - start == 2 && line.bytes[start] == wanted[0] && line.bytes[start + 1] == wanted[1] { return true }
        }
        return false
    }
}
