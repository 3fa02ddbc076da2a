import CStasisABI

/// One thread's state (stasis_thread_record_t) and its xsave area.
public struct ThreadRecord: Equatable, Sendable {
    public static let fixedSize = MemoryLayout<stasis_thread_record_t>.size
    /// Names of `generalRegisters`, in the kernel's struct sigcontext order.
    public static let registerNames = [
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax", "rcx",
        "rsp", "rip", "eflags", "csgsfs", "err", "trapno", "oldmask", "cr2",
    ]
    public static let rspIndex = 15, ripIndex = 16, eflagsIndex = 17, segmentsIndex = 18

    public var tid: Int32 = 0
    public var generalRegisters = [UInt64](repeating: 0, count: 23)
    public var contextFlags: UInt64 = 0
    public var signalMask: UInt64 = 0
    public var fsBase: UInt64 = 0, gsBase: UInt64 = 0
    public var clearChildTID: UInt64 = 0
    public var robustList: UInt64 = 0, robustListLength: UInt64 = 0
    public var rseqAddress: UInt64 = 0
    public var rseqLength: UInt32 = 0, rseqSignature: UInt32 = 0
    public var altStackPointer: UInt64 = 0, altStackSize: UInt64 = 0
    public var altStackFlags: Int32 = 0
    public var inSyscall: Int32 = 0
    public var syscallNumber: Int64 = -1
    public var name: String = ""
    public var pendingSignals: UInt64 = 0
    public var xsave: [UInt8] = []

    public init() {}

    public var instructionPointer: UInt64 { generalRegisters[ThreadRecord.ripIndex] }
    public var stackPointer: UInt64 { generalRegisters[ThreadRecord.rspIndex] }
    /// Bits 0-63 of XSTATE_BV in the xsave header: the features this thread's state uses.
    public var xstateFeatures: UInt64 {
        guard xsave.count >= 520 else { return 0 }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(xsave[512 + i]) << (8 * i) }
        return v
    }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        tid = try reader.read(Int32.self)
        let xsaveBytes = Int(try reader.read(UInt32.self))
        for i in 0..<23 { generalRegisters[i] = try reader.read(UInt64.self) }
        contextFlags = try reader.read(UInt64.self)
        signalMask = try reader.read(UInt64.self)
        fsBase = try reader.read(UInt64.self); gsBase = try reader.read(UInt64.self)
        clearChildTID = try reader.read(UInt64.self)
        robustList = try reader.read(UInt64.self); robustListLength = try reader.read(UInt64.self)
        rseqAddress = try reader.read(UInt64.self)
        rseqLength = try reader.read(UInt32.self); rseqSignature = try reader.read(UInt32.self)
        altStackPointer = try reader.read(UInt64.self); altStackSize = try reader.read(UInt64.self)
        altStackFlags = try reader.read(Int32.self)
        inSyscall = try reader.read(Int32.self)
        syscallNumber = try reader.read(Int64.self)
        name = try reader.readFixedString(16)
        pendingSignals = try reader.read(UInt64.self)
        guard xsaveBytes <= 16384 else { throw .invalidRecord(.thread, at: reader.base, reason: "xsave area of \(xsaveBytes) bytes") }
        xsave = try reader.readBytes(xsaveBytes)
        try validate(at: reader.base)
    }

    /// Values the kernel would reject or that point outside user space.
    public func validate(at offset: UInt64) throws(ImageError) {
        func fail(_ why: String) -> ImageError { .invalidRecord(.thread, at: offset, reason: why) }
        let top = MemoryAreaRecord.userSpaceTop
        guard tid > 0 else { throw fail("tid \(tid)") }
        guard instructionPointer < top, stackPointer < top, stackPointer > 0x10000 else {
            throw fail("rip \(hex(instructionPointer)) or rsp \(hex(stackPointer)) outside user space")
        }
        let cs = generalRegisters[ThreadRecord.segmentsIndex] & 0xffff
        guard cs == 0x33 else { throw fail("code segment \(hex(cs)) is not the 64-bit user segment") }
        guard fsBase < top, gsBase < top, clearChildTID < top, robustList < top, rseqAddress < top else {
            throw fail("a thread pointer lies outside user space")
        }
        guard xsave.count == 0 || xsave.count >= 512 else { throw fail("xsave area of \(xsave.count) bytes") }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(tid); writer.write(UInt32(xsave.count))
        for r in generalRegisters { writer.write(r) }
        writer.write(contextFlags); writer.write(signalMask)
        writer.write(fsBase); writer.write(gsBase); writer.write(clearChildTID)
        writer.write(robustList); writer.write(robustListLength)
        writer.write(rseqAddress); writer.write(rseqLength); writer.write(rseqSignature)
        writer.write(altStackPointer); writer.write(altStackSize); writer.write(altStackFlags)
        writer.write(inSyscall); writer.write(syscallNumber)
        writer.writeFixedString(name, count: 16)
        writer.write(pendingSignals)
        writer.write(bytes: xsave)
    }
}
