// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc

/// TIMERFD: the clock, the remaining time, the interval and the unread expirations.
extension FileDescriptorDumper {
    /// stasis_timerfd_state_t into extraBuffer; returns its size.
    @_noAllocation @_noLocks
    func captureTimerfd(_ fd: Int32, into record: inout stasis_file_descriptor_record_t) throws(FreezeFailure) -> Int {
        record.kind = UInt32(STASIS_FD_TIMERFD)
        // A periodic timer that expired and was not read is not re-armed by the kernel until the
        // next read or timerfd_gettime (only `ticks` was bumped, once): fdinfo then shows it_value 0
        // and one tick. timerfd_gettime forwards it, adds the missed expirations to the unread count
        // and re-arms it, without consuming anything; fdinfo is read after it.
        var now: (Int64, Int64, Int64, Int64) = (0, 0, 0, 0)
        _ = withUnsafeMutablePointer(to: &now) { RawSyscall.call(STASIS_NR_timerfd_gettime, Int(fd), Int(bitPattern: $0)) }
        let info = try readInfo(fd)
        record.object_id = info.decimalField("clockid:") ?? 1
        var timer = stasis_timerfd_state_t()
        timer.ticks = info.decimalField("ticks:") ?? 0
        (timer.value_sec, timer.value_nsec) = info.pairField("it_value:") ?? (0, 0)
        (timer.interval_sec, timer.interval_nsec) = info.pairField("it_interval:") ?? (0, 0)
        extraBuffer.storeBytes(of: timer, as: stasis_timerfd_state_t.self)
        return MemoryLayout<stasis_timerfd_state_t>.size
    }
}
