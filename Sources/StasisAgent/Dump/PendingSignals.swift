// FREEZE WINDOW: see Freeze/RawSyscall.swift.
import CStasisABI
import CStasisShim

/// Signals pending at the checkpoint, one PENDING_SIGNAL record per queued instance with its siginfo,
/// in the order they were taken out of their queues (CStasisShim/pending_signals.c takes them during
/// the freeze and puts them back at the thaw).
enum PendingSignalDumper {
    @_noAllocation @_noLocks
    static func dump(into image: inout ImageFile) throws(FreezeFailure) {
        let count = Int(_unsafePerformance { stasis_pending_count() })
        for index in 0..<count {
            let entry = _unsafePerformance { stasis_pending_entry(Int32(index)) }
            if entry.pointee.signal <= 0 { continue }  // a slot whose rt_sigtimedwait found nothing
            try image.writeRecord(kind: UInt32(STASIS_RECORD_PENDING_SIGNAL), fixed: UnsafeRawPointer(entry),
                                  fixedBytes: MemoryLayout<stasis_pending_signal_record_t>.size)
        }
    }
}
