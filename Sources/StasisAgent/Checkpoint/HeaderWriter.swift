// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// The image's header and the agent's own records (AGENT; PARENT for an incremental image), and the
// write protection that makes this image the next incremental one's parent.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    @_noAllocation @_noLocks
    mutating func writeHeader(_ image: inout ImageFile, sequence: UInt64, threadCount: Int) throws(FreezeFailure) {
        // The fields only this process knows; ImageFile.writeHeader fills in the format's own and the CRC.
        var header = stasis_image_header_t()
        if compress { header.version = UInt32(STASIS_IMAGE_VERSION) }  // else ImageFile writes the plain format
        header.xcr0 = _unsafePerformance { stasis_xgetbv0() }
        header.xsave_size = capture.pointee.thread.xsave_bytes
        header.thread_count = UInt32(threadCount)
        header.pid = Int32(truncatingIfNeeded: pid)
        header.uid = UInt32(truncatingIfNeeded: uid)
        header.sequence = sequence
        var now: (Int64, Int64) = (0, 0)
        withUnsafeMutablePointer(to: &now) { pointer in
            _ = RawSyscall.call(STASIS_NR_clock_gettime, 0 /* CLOCK_REALTIME */, Int(bitPattern: pointer))
        }
        header.time_ns = UInt64(bitPattern: now.0 &* 1_000_000_000 &+ now.1)
        imageTimeNanoseconds = header.time_ns
        // uname(2): six 65-byte fields; release is the third.
        scratch.removeAll()
        _ = RawSyscall.call(STASIS_NR_uname, Int(bitPattern: scratch.bytes))
        withUnsafeMutableBytes(of: &header.kernel_release) { bytes in
            for i in 0..<64 {
                let c = scratch.bytes[130 + i]
                if c == 0 { break }
                bytes[i] = c
            }
        }
        scratch.removeAll()
        let exeCount = RawSyscall.readlink(literal: "/proc/self/exe", scratch.bytes, scratch.capacity - 1)
        let programBytes = max(exeCount, 0)
        imageHeaderCRC = try image.writeHeader(&header, program: UnsafeRawPointer(scratch.bytes), programBytes: programBytes)
        scratch.removeAll()
    }

    /// The PARENT record: the tracker's base image, by name, sequence and time.
    @_noAllocation @_noLocks
    func writeParent(_ image: inout ImageFile, tracker: DirtyPageTracker) throws(FreezeFailure) {
        let (name, nameCount) = tracker.baseName()
        var parent = stasis_parent_record_t()
        parent.sequence = tracker.state.pointee.base_sequence
        parent.time_ns = tracker.state.pointee.base_time_ns
        parent.pid = Int32(truncatingIfNeeded: pid)
        parent.chain_length = chainLength
        parent.name_bytes = UInt32(nameCount)
        try image.writeRecord(kind: UInt32(STASIS_RECORD_PARENT), fixed: &parent,
                              fixedBytes: MemoryLayout<stasis_parent_record_t>.size, tail: UnsafeRawPointer(name), tailBytes: nameCount)
    }

    /// Write-protects memory as captured now: this image becomes the next incremental one's parent.
    @_noAllocation @_noLocks
    func armDirtyTracking(_ tracker: DirtyPageTracker, memory: MemoryDumper, maps: UnsafeMutableRawPointer,
                                  count: Int, sequence: UInt64)
    {
        let pagemap = RawSyscall.open(literal: "/proc/self/pagemap", RawFlag.readOnly | RawFlag.closeOnExec)
        guard pagemap >= 0 else {
            tracker.forget()
            return
        }
        defer { RawSyscall.close(Int32(pagemap)) }
        _ = tracker.arm(maps: maps.assumingMemoryBound(to: UInt8.self), count: count, pagemapFD: Int32(pagemap),
                        scratchRanges: memory.scratchRanges, regions: memory.regions,
                        path: finalPath, sequence: sequence,
                        timeNanoseconds: imageTimeNanoseconds, chainLength: chainLength)
    }

    /// The temporary file as an ImageFile, signing with the key in the agent's key slot if it holds one.
    @_noAllocation @_noLocks
    func openImage(arena: inout FreezeArena) -> ImageFile {
        var image = ImageFile(fd: imageFD, zeros: UnsafeRawPointer(zeros))
        let stageBytes = 64 << 10
        if let stage = arena.take(stageBytes) {  // else unstaged: slower, same bytes
            image.stage = stage
            image.stageCapacity = stageBytes
        }
        if let slot = UnsafeMutablePointer<stasis_key_slot_t>(bitPattern: UInt(capture.pointee.config.pointee.key_slot)),
            slot.pointee.key_bytes > 0, slot.pointee.key_bytes <= UInt32(STASIS_KEY_MAX),
            let macMemory = arena.take(MemoryLayout<stasis_hmac_t>.size, alignment: 16)
        {
            let mac = macMemory.assumingMemoryBound(to: stasis_hmac_t.self)
            _unsafePerformance {
                stasis_hmac_init(mac, UnsafeRawPointer(slot).assumingMemoryBound(to: UInt8.self) + 4, Int(slot.pointee.key_bytes))
            }
            image.mac = mac
        }
        return image
    }

    /// The AGENT record: where the agent's restore tails, key slot and state live in this process.
    @_noAllocation @_noLocks
    func writeAgentRecord(_ image: inout ImageFile) throws(FreezeFailure) {
        var agent = stasis_agent_record_t()
        agent.restore_tail = capture.pointee.restore_tail
        agent.restore_thread_tail = capture.pointee.restore_thread_tail
        agent.key_slot = capture.pointee.config.pointee.key_slot
        agent.state_address = UInt64(UInt(bitPattern: capture.pointee.state))
        agent.trigger_signal = capture.pointee.config.pointee.trigger_signal
        try image.writeRecord(kind: UInt32(STASIS_RECORD_AGENT), fixed: &agent, fixedBytes: MemoryLayout<stasis_agent_record_t>.size)
    }
}
