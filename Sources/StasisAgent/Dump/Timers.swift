// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// POSIX timers (timer_create), from /proc/self/timers:
///     ID: 42 / signal: 10/0000000000000000 / notify: signal/pid.14014 / ClockID: 1
/// plus timer_gettime for the remaining time and interval.
enum TimerDumper {
    @_noAllocation @_noLocks
    static func dump(arena: inout FreezeArena, into image: inout ImageFile) throws(FreezeFailure) {
        let capacity = 256 * 1024
        guard let text = arena.take(capacity) else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }
        let n = ProcFile.read(literal: "/proc/self/timers", into: text, capacity: capacity)
        guard n > 0 else { return }  // none, or no CONFIG_CHECKPOINT_RESTORE: nothing to save
        let bytes = text.assumingMemoryBound(to: UInt8.self)
        var cursor = ByteCursor(bytes, count: n)
        var record = stasis_posix_timer_record_t()
        var haveTimer = false
        while !cursor.atEnd {
            let start = cursor.index
            cursor.skipPast(UInt8(ascii: "\n"))
            var line = ByteCursor(bytes + start, count: cursor.index - start)
            if line.skipWord("ID: ") {
                if haveTimer { try write(&record, into: &image) }
                record = stasis_posix_timer_record_t()
                record.id = Int32(truncatingIfNeeded: line.decimal() ?? -1)
                haveTimer = record.id >= 0
            } else if line.skipWord("signal: ") {
                record.signal = Int32(truncatingIfNeeded: line.decimal() ?? 0)
                if line.skipWord("/") { record.value = line.hex() ?? 0 }
            } else if line.skipWord("notify: ") {
                if line.skipWord("signal") { record.notify = 0 } else if line.skipWord("none") { record.notify = 1 }
                else if line.skipWord("thread") { record.notify = 2 }
                if line.skipWord("/tid.") {
                    record.notify |= 4
                    record.tid = Int32(truncatingIfNeeded: line.decimal() ?? 0)
                } else if line.skipWord("/pid.") {
                    record.tid = 0
                }
            } else if line.skipWord("ClockID: ") {
                record.clock_id = Int32(truncatingIfNeeded: line.decimal() ?? 0)
            }
        }
        if haveTimer { try write(&record, into: &image) }
    }

    @_noAllocation @_noLocks
    private static func write(_ record: UnsafeMutablePointer<stasis_posix_timer_record_t>, into image: inout ImageFile)
        throws(FreezeFailure)
    {
        // timer_gettime fills interval then value, the record's last four fields.
        _ = RawSyscall.call(STASIS_NR_timer_gettime, Int(record.pointee.id), Int(bitPattern: UnsafeMutableRawPointer(record) + 32))
        record.pointee.overrun = Int32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_timer_getoverrun, Int(record.pointee.id)))
        try image.writeRecord(kind: UInt32(STASIS_RECORD_POSIX_TIMER), fixed: record,
                              fixedBytes: MemoryLayout<stasis_posix_timer_record_t>.size)
    }
}
