/// TERMINAL: the extra bytes are the kernel's struct termios (TCGETS, 36 bytes); restart's own
/// terminal (or the new slave of a pair whose master the program holds) gets these modes.
public struct TerminalPayload: DescriptorPayloadCoding {
    public static let modesSize = 36  // STASIS_TERMIOS_BYTES
    public var modes: [UInt8]

    public init(modes: [UInt8]) { self.modes = modes }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        guard fields.extra.count == Self.modesSize else { throw context.invalid("\(fields.extra.count) bytes of terminal modes") }
        self.init(modes: fields.extra)
    }

    var fields: DescriptorFields { DescriptorFields(extra: modes) }
}

/// PTY_MASTER: object_id = the pty number; the extra bytes are the slave's struct termios (36) and
/// struct winsize (8), then, when bytes were queued: u32 input bytes, u32 output bytes, the input
/// (what the slave had still to read, at most 4096), the output (what the master had still to read,
/// at most 68 KiB).
public struct PtyMasterPayload: DescriptorPayloadCoding {
    public static let windowSizeSize = 8
    public static let inputMax = 4096
    public static let outputMax = 68 << 10

    public var number: UInt64
    public var modes: [UInt8]
    public var windowSize: [UInt8]
    public var input: [UInt8] = []
    public var output: [UInt8] = []

    public init(number: UInt64, modes: [UInt8], windowSize: [UInt8], input: [UInt8] = [], output: [UInt8] = []) {
        self.number = number
        self.modes = modes
        self.windowSize = windowSize
        self.input = input
        self.output = output
    }

    init(_ fields: DescriptorFields, _ context: PayloadContext) throws(ImageError) {
        let fixed = TerminalPayload.modesSize + Self.windowSizeSize
        let extra = fields.extra
        guard extra.count == fixed || extra.count >= fixed + 8 else {
            throw context.invalid("\(extra.count) bytes of pseudo-terminal state")
        }
        number = fields.objectID
        modes = Array(extra[0..<TerminalPayload.modesSize])
        windowSize = Array(extra[TerminalPayload.modesSize..<fixed])
        guard extra.count > fixed else { return }
        var reader = ByteReader(Array(extra[fixed...]), base: context.at)
        let inputBytes = try reader.read(UInt32.self), outputBytes = try reader.read(UInt32.self)
        guard inputBytes <= Self.inputMax, outputBytes <= Self.outputMax, Int(inputBytes) + Int(outputBytes) == reader.remaining
        else { throw context.invalid("queued terminal bytes do not add up") }
        input = try reader.readBytes(Int(inputBytes))
        output = try reader.readBytes(Int(outputBytes))
    }

    var fields: DescriptorFields {
        var writer = ByteWriter()
        writer.write(bytes: modes)
        writer.write(bytes: windowSize)
        if !input.isEmpty || !output.isEmpty {
            writer.write(UInt32(input.count)); writer.write(UInt32(output.count))
            writer.write(bytes: input); writer.write(bytes: output)
        }
        return DescriptorFields(objectID: number, extra: writer.bytes)
    }
}
