// /proc/PID/stat and /proc/PID/status, as a tree checkpoint reads them for each process it freezes.
// No allocation (the agent's freeze window uses them); unit-tested in StasisImageTests/ProcessStatTests.

/// The fields of /proc/PID/stat a tree checkpoint needs ("pid (comm) S ppid pgrp session ...";
/// comm may hold spaces and parentheses, so parsing starts after the last ')').
public struct ProcessStat: Equatable {
    /// R, S, D, T (stopped), t (traced), Z (zombie), X, I...
    public var state: UInt8 = 0
    public var ppid: Int32 = 0
    public var pgrp: Int32 = 0
    public var session: Int32 = 0
    /// Field 38: the signal the parent gets at exit.
    public var exitSignal: Int32 = 0
    /// Field 52: the status wait() reports, for a zombie (waitpid encoding).
    public var exitCode: Int32 = 0

    @inlinable @_noAllocation @_noLocks
    public init() {}

    @inlinable @_noAllocation @_noLocks
    public static func parse(_ bytes: UnsafePointer<UInt8>, count: Int) -> ProcessStat? {
        var close = -1
        for i in 0..<count where bytes[i] == UInt8(ascii: ")") { close = i }
        guard close >= 0, close + 2 < count else { return nil }
        var cursor = ByteCursor(bytes + close + 2, count: count - close - 2)
        var stat = ProcessStat()
        stat.state = cursor.current
        cursor.skipPast(UInt8(ascii: " "))
        // Fields 4 on; field N is the (N - 3)th after the state.
        var field = 4
        while !cursor.atEnd {
            let value = cursor.decimal()
            switch field {
            case 4: stat.ppid = Int32(truncatingIfNeeded: value ?? 0)
            case 5: stat.pgrp = Int32(truncatingIfNeeded: value ?? 0)
            case 6: stat.session = Int32(truncatingIfNeeded: value ?? 0)
            case 38: stat.exitSignal = Int32(truncatingIfNeeded: value ?? 0)
            case 52: stat.exitCode = Int32(truncatingIfNeeded: value ?? 0)
            default: break
            }
            cursor.skipPast(UInt8(ascii: " "))
            field += 1
        }
        guard field > 6 else { return nil }
        return stat
    }

    @inlinable public var isZombie: Bool { state == UInt8(ascii: "Z") }
    @inlinable public var isStopped: Bool { state == UInt8(ascii: "T") || state == UInt8(ascii: "t") }
}

/// The lines of /proc/PID/status a tree checkpoint needs.
public struct ProcessStatus: Equatable {
    /// Signals with a handler installed (bit N-1 for signal N).
    public var caught: UInt64 = 0
    /// Signals blocked by the main thread.
    public var blocked: UInt64 = 0
    public var tracerPID: Int32 = 0

    @inlinable @_noAllocation @_noLocks
    public init() {}

    @inlinable @_noAllocation @_noLocks
    public static func parse(_ bytes: UnsafePointer<UInt8>, count: Int) -> ProcessStatus {
        var status = ProcessStatus()
        var text = ByteCursor(bytes, count: count)
        while var line = text.nextLine() {
            if line.skipWord("SigCgt:") {
                line.skip(UInt8(ascii: "\t"))
                status.caught = line.hex() ?? 0
            } else if line.skipWord("SigBlk:") {
                line.skip(UInt8(ascii: "\t"))
                status.blocked = line.hex() ?? 0
            } else if line.skipWord("TracerPid:") {
                line.skip(UInt8(ascii: "\t"))
                status.tracerPID = Int32(truncatingIfNeeded: line.decimal() ?? 0)
            }
        }
        return status
    }
}
