import CStasisSpawn
import StasisImage
import StasisSystem

/// TIMERFD: a new timerfd armed with the remaining time and interval, its unread ticks set back.
extension FileDescriptorPlan {
    mutating func makeTimerfd(_ record: FileDescriptorRecord, _ timer: TimerfdPayload) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_timerfd(timer.clock, nonblocking(record), timer.ticks, timer.valueSeconds, timer.valueNanoseconds,
                                     timer.intervalSeconds, timer.intervalNanoseconds)
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "fd \(record.fd): cannot recreate a timerfd: \(Errno(rawValue: -fd))") }
        return try keep(FileDescriptor(rawValue: fd), record)
    }
}
