// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import StasisProc
import CStasisShim

/// Whole-process state: ids, umask, name, the mm layout for PR_SET_MM_MAP, cwd, exe and auxv.
enum ProcessDumper {
    @_noAllocation @_noLocks
    static func dump(arena: inout FreezeArena, into image: inout ImageFile) throws(FreezeFailure) {
        guard let statText = arena.take(8192), let cwd = arena.take(Int(STASIS_MAX_PATH)),
            let exe = arena.take(Int(STASIS_MAX_PATH)), let auxv = arena.take(8192)
        else { throw FreezeFailure(step: .arenaExhausted, errno: RawErrno.noSpace) }

        var record = stasis_process_record_t()
        record.pid = Int32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getpid))
        record.ppid = Int32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getppid))
        record.uid = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getuid))
        record.gid = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getgid))
        record.euid = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_geteuid))
        record.egid = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_getegid))
        let mask = RawSyscall.call(STASIS_NR_umask, 0o22)
        _ = RawSyscall.call(STASIS_NR_umask, mask)
        record.umask = UInt32(truncatingIfNeeded: mask)
        record.personality = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_personality, 0xffff_ffff))
        withUnsafeMutableBytes(of: &record.comm) { bytes in
            _ = RawSyscall.call(STASIS_NR_prctl, 16 /* PR_GET_NAME */, Int(bitPattern: bytes.baseAddress))
        }
        record.brk = UInt64(bitPattern: Int64(RawSyscall.call(STASIS_NR_brk, 0)))
        captureLimitsAndTimers(into: &record.rlimits, &record.itimers)
        record.no_new_privs = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_prctl, 39 /* PR_GET_NO_NEW_PRIVS */))
        record.dumpable = UInt32(truncatingIfNeeded: RawSyscall.call(STASIS_NR_prctl, 3 /* PR_GET_DUMPABLE */))
        record.cap_effective = effectiveCapabilities()

        let statCount = ProcFile.read(literal: "/proc/self/stat", into: statText, capacity: 8192)
        if statCount < 0 { throw FreezeFailure(step: .readProc, errno: -statCount) }
        parseStat(statText.assumingMemoryBound(to: UInt8.self), count: statCount, into: &record)

        let cwdCount = RawSyscall.readlink(literal: "/proc/self/cwd", cwd, Int(STASIS_MAX_PATH) - 1)
        let exeCount = RawSyscall.readlink(literal: "/proc/self/exe", exe, Int(STASIS_MAX_PATH) - 1)
        let auxvCount = ProcFile.read(literal: "/proc/self/auxv", into: auxv, capacity: 8192)
        record.cwd_bytes = UInt32(max(cwdCount, 0))
        record.exe_bytes = UInt32(max(exeCount, 0))
        record.auxv_bytes = UInt32(max(auxvCount, 0))

        let tail = Int(record.cwd_bytes) + Int(record.exe_bytes) + Int(record.auxv_bytes)
        try image.beginRecord(kind: UInt32(STASIS_RECORD_PROCESS),
                              payloadBytes: MemoryLayout<stasis_process_record_t>.size + tail)
        try image.write(&record, MemoryLayout<stasis_process_record_t>.size)
        try image.write(cwd, Int(record.cwd_bytes))
        try image.write(exe, Int(record.exe_bytes))
        try image.write(auxv, Int(record.auxv_bytes))
        try image.endPayload()
        try image.endRecord()
    }

    /// capget, version 3: two 32-bit words per set; the effective set is the first of each triple.
    @_noAllocation @_noLocks
    static func effectiveCapabilities() -> UInt64 {
        var header: (UInt32, Int32) = (0x2008_0522 /* _LINUX_CAPABILITY_VERSION_3 */, 0)
        var data: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0)
        let r = withUnsafeMutablePointer(to: &header) { h in
            withUnsafeMutablePointer(to: &data) { d in
                RawSyscall.call(STASIS_NR_capget, Int(bitPattern: h), Int(bitPattern: d))
            }
        }
        return r == 0 ? UInt64(data.0) | UInt64(data.3) << 32 : 0
    }

    /// prlimit64 for the 16 resources, getitimer for REAL, VIRTUAL and PROF.
    @_noAllocation @_noLocks
    static func captureLimitsAndTimers(into limits: UnsafeMutableRawPointer, _ timers: UnsafeMutableRawPointer) {
        for resource in 0..<16 {
            _ = RawSyscall.call(STASIS_NR_prlimit64, 0, resource, 0, Int(bitPattern: limits + resource * 16))
        }
        for which in 0..<3 {
            _ = RawSyscall.call(STASIS_NR_getitimer, which, Int(bitPattern: timers + which * 32))
        }
    }

    /// Fields 26-28 and 45-51 of /proc/self/stat (proc_pid_stat(5)), counted after the ")" of comm.
    @_noAllocation @_noLocks
    static func parseStat(_ text: UnsafePointer<UInt8>, count: Int, into record: inout stasis_process_record_t) {
        var close = count - 1
        while close > 0 && text[close] != UInt8(ascii: ")") { close -= 1 }
        var cursor = ByteCursor(text, count: count)
        cursor.index = close + 1
        var field = 2
        while !cursor.atEnd {
            cursor.skip(UInt8(ascii: " "))
            field += 1
            // Fields such as rsslim (u64 max) overflow Int64: skip whatever is left of the field.
            let value = UInt64(bitPattern: cursor.decimal() ?? 0)
            if cursor.current != UInt8(ascii: " ") { cursor.skipPast(UInt8(ascii: " ")) }
            switch field {
            case 26: record.start_code = value
            case 27: record.end_code = value
            case 28: record.start_stack = value
            case 45: record.start_data = value
            case 46: record.end_data = value
            case 47: record.start_brk = value
            case 48: record.arg_start = value
            case 49: record.arg_end = value
            case 50: record.env_start = value
            case 51: record.env_end = value
            default: break
            }
            if field >= 51 { break }
        }
    }
}

/// Threads as they captured themselves in their signal handlers (the C shim): the record, then the
/// xsave bytes, which are still in the (frozen) thread's signal frame.
enum ThreadDumper {
    /// The leader: the thread that took the trigger.
    @_noAllocation @_noLocks
    static func dump(_ capture: UnsafeMutablePointer<stasis_capture_t>, into image: inout ImageFile)
        throws(FreezeFailure)
    {
        try write(&capture.pointee.thread, xsave: capture.pointee.xsave, into: &image)
    }

    /// A follower, from its capture slot.
    @_noAllocation @_noLocks
    static func dump(follower slot: UnsafeMutablePointer<stasis_thread_slot_t>, into image: inout ImageFile)
        throws(FreezeFailure)
    {
        try write(&slot.pointee.record, xsave: slot.pointee.xsave, into: &image)
    }

    @_noAllocation @_noLocks
    private static func write(_ record: UnsafeMutablePointer<stasis_thread_record_t>, xsave: UnsafeRawPointer?,
                              into image: inout ImageFile) throws(FreezeFailure)
    {
        let xsaveBytes = Int(record.pointee.xsave_bytes)
        try image.beginRecord(kind: UInt32(STASIS_RECORD_THREAD),
                              payloadBytes: MemoryLayout<stasis_thread_record_t>.size + xsaveBytes)
        try image.write(record, MemoryLayout<stasis_thread_record_t>.size)
        if let xsave, xsaveBytes > 0 { try image.write(xsave, xsaveBytes) }
        try image.endPayload()
        try image.endRecord()
    }
}

/// Every signal's disposition, read with rt_sigaction(sig, NULL, &old).
enum SignalActionsDumper {
    @_noAllocation @_noLocks
    static func dump(into image: inout ImageFile) throws(FreezeFailure) {
        var record = stasis_signal_actions_record_t()
        queryActions(into: &record)
        try image.writeRecord(kind: UInt32(STASIS_RECORD_SIGNAL_ACTIONS), fixed: &record, fixedBytes: MemoryLayout<stasis_signal_actions_record_t>.size)
    }

    @_noAllocation @_noLocks
    private static func queryActions(into record: UnsafeMutableRawPointer) {
        let actions = record.assumingMemoryBound(to: stasis_signal_action_t.self)
        for signal in 1...Int(STASIS_SIGNAL_COUNT) {
            _ = RawSyscall.call(STASIS_NR_rt_sigaction, signal, 0, Int(bitPattern: actions + (signal - 1)), 8)
        }
    }
}
