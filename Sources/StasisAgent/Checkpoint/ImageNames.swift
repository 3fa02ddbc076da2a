// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// The names an image and its companions get: DIR/COMM-PID-SEQ.stasis, DIR/.COMM-PID.tmp, .latest.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// DIR/COMM-PID-SEQ.stasis
    @_noAllocation @_noLocks
    func appendImageName(_ buffer: inout TextBuffer, sequence: UInt64) {
        appendBaseName(&buffer, hidden: false)
        buffer.append("-")
        buffer.append(decimal: Int(sequence), minimumDigits: 4)
        buffer.append(".stasis")
    }

    /// DIR/.COMM-PID plus `suffix`: the agent's temporary names beside the images.
    @_noAllocation @_noLocks
    func appendHiddenName(_ buffer: inout TextBuffer, suffix: StaticString) {
        appendBaseName(&buffer, hidden: true)
        buffer.append(suffix)
    }

    /// DIR/COMM-PID or DIR/.COMM-PID: every name the agent writes starts so (the one path builder).
    @_noAllocation @_noLocks
    func appendBaseName(_ buffer: inout TextBuffer, hidden: Bool) {
        appendBaseName(&buffer, hidden: hidden, in: directory)
    }

    /// The same in another directory (a tree's root names its lock beside the images while
    /// `directory` is the tree's temporary one).
    @_noAllocation @_noLocks
    func appendBaseName(_ buffer: inout TextBuffer, hidden: Bool, in directory: TextBuffer) {
        buffer.append(bytes: directory.bytes, count: directory.count)
        buffer.append(hidden ? "/." : "/")
        appendProgramName(&buffer)
        buffer.append("-")
        buffer.append(decimal: pid)
    }

    /// The thread's comm, limited to characters that are safe in a file name.
    @_noAllocation @_noLocks
    func appendProgramName(_ buffer: inout TextBuffer) {
        // The process's name (/proc/self/comm is the main thread's), not the name of whichever
        // thread took the signal.
        var name: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &name) { bytes in
            let n = ProcFile.read(literal: "/proc/self/comm", into: bytes.baseAddress!, capacity: 24)
            if n <= 0 { _ = RawSyscall.call(STASIS_NR_prctl, 16 /* PR_GET_NAME */, Int(bitPattern: bytes.baseAddress)) }
            var wrote = false
            for i in 0..<15 {
                if bytes[i] == UInt8(ascii: "\n") { break }
                let c = bytes[i]
                if c == 0 { break }
                let safe = (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                    || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: ".")
                buffer.append(safe ? c : UInt8(ascii: "_"))
                wrote = true
            }
            if !wrote { buffer.append("process") }
        }
    }

    /// The first free sequence number: a restored process continues an old numbering, and an image
    /// is never replaced. Recorded before memory is written, so the image holds its own number and a
    /// restored process goes on from it. Leaves DIR/COMM-PID-SEQ.stasis in finalPath.
    @_noAllocation @_noLocks
    mutating func claimSequence() -> UInt64 {
        let state = capture.pointee.state
        var sequence = state.pointee.sequence + 1
        while true {
            finalPath.removeAll()
            appendImageName(&finalPath, sequence: sequence)
            let exists = RawSyscall.call(STASIS_NR_newfstatat, -100, Int(bitPattern: finalPath.cString),
                                         Int(bitPattern: scratch.bytes), 0x100 /* AT_SYMLINK_NOFOLLOW */)
            if exists != 0 || sequence > state.pointee.sequence + 100_000 { break }
            sequence += 1
        }
        state.pointee.sequence = sequence
        return sequence
    }
}
