// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// A checkpoint right after a lazy restart waits until the pager has brought every page in.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// After a lazy restart a pager process brings pages in for a second or so; pages not yet there
    /// would be missing from an image. Waits (threads still running) until it is gone, up to 120 s.
    @_noAllocation @_noLocks
    mutating func waitForPager() throws(FreezeFailure) {
        let state = capture.pointee.state
        let pager = Int(state.pointee.pager_pid)
        guard pager > 0 else { return }
        let deadline = monotonicNanoseconds() + 120_000_000_000
        while true {
            // /proc/PID/stat: "PID (stasis-pager) S ..."; gone, reaped into another process, or a zombie: done.
            scratch.removeAll()
            scratch.append("/proc/")
            scratch.append(decimal: pager)
            scratch.append("/stat")
            // (the whole line: ProcFile.read refuses a file that does not fit)
            let n = ProcFile.read(scratch.cString, into: UnsafeMutableRawPointer(message.bytes), capacity: message.capacity)
            let text = message.bytes
            let name: StaticString = ") "
            var running = false
            if n > 0 {
                var cursor = ByteCursor(text, count: n)
                cursor.skipPast(UInt8(ascii: "("))
                if cursor.skipWord("stasis-pager") && cursor.skipWord(name) && cursor.index < n {
                    running = text[cursor.index] != UInt8(ascii: "Z") && text[cursor.index] != UInt8(ascii: "X")
                }
            }
            message.removeAll()
            scratch.removeAll()
            if !running {
                state.pointee.pager_pid = 0
                return
            }
            if monotonicNanoseconds() > deadline { throw FreezeFailure(step: .stillPagingIn, errno: 0, object: pager) }
            var pause: (Int, Int) = (0, 2_000_000)
            withUnsafeMutablePointer(to: &pause) { _ = RawSyscall.call(STASIS_NR_nanosleep, Int(bitPattern: $0), 0) }
        }
    }
}
