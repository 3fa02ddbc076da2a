import CStasisABI

/// The image header (stasis_image_header_t) and the program path that follows it.
/// Sizes and offsets come from stasis_image_abi.h: one definition for the agent, restorer and readers.
public struct ImageHeader: Equatable, Sendable {
    /// STASIS_IMAGE_MAGIC, "STASIS\0\1".
    public static let magic: [UInt8] = withUnsafeBytes(of: STASIS_IMAGE_MAGIC_WORD.littleEndian) { Array($0) }
    public static let currentVersion = UInt32(STASIS_IMAGE_VERSION)
    /// Versions this build reads: 2 (single processes) and 3 (process trees).
    public static let readableVersions = UInt32(STASIS_IMAGE_VERSION_OLDEST)...UInt32(STASIS_IMAGE_VERSION)
    public static let x86_64 = UInt32(STASIS_ARCH_X86_64)
    public static let size = MemoryLayout<stasis_image_header_t>.size
    public static let maxProgramBytes = Int(STASIS_MAX_PATH)

    public var version: UInt32 = ImageHeader.currentVersion
    public var architecture: UInt32 = ImageHeader.x86_64
    public var pageSize = UInt32(STASIS_PAGE_SIZE)
    public var xcr0: UInt64 = 0
    public var xsaveSize: UInt32 = 0
    public var threadCount: UInt32 = 1
    public var pid: Int32 = 0
    public var uid: UInt32 = 0
    public var sequence: UInt64 = 0
    public var timeNanoseconds: UInt64 = 0
    public var kernelRelease: String = ""
    public var program: String = ""
    /// CRC32C of the header (with this field as 0) and the program path.
    public var headerCRC: UInt32 = 0
    public static let crcOffset = Int(STASIS_HEADER_CRC_OFFSET)

    public init() {}

    /// Length of the program path as stored (the path need not be UTF-8).
    public var programBytes = 0
    /// Offset of the first record.
    public var recordsOffset: UInt64 { align(UInt64(ImageHeader.size + programBytes), to: RecordHeader.alignment) }

    /// Decodes and checks the fixed fields. `bytes` must hold at least `size` bytes; the program path is
    /// read by `decodeProgram`.
    public static func decodeFixed(_ bytes: [UInt8]) throws(ImageError) -> (ImageHeader, programBytes: Int) {
        guard bytes.count >= 8, Array(bytes[0..<8]) == magic else {
            throw bytes.count < 8 && bytes == Array(magic.prefix(bytes.count)) ? .truncated(at: UInt64(bytes.count)) : .notAnImage
        }
        var reader = ByteReader(bytes)
        try reader.skip(8)
        var header = ImageHeader()
        header.version = try reader.read(UInt32.self)
        guard readableVersions.contains(header.version) else { throw .unsupportedVersion(header.version) }
        let headerBytes = try reader.read(UInt32.self)
        guard headerBytes == UInt32(size) else { throw .invalidHeader("header size \(headerBytes), expected \(size)") }
        header.architecture = try reader.read(UInt32.self)
        guard header.architecture == x86_64 else { throw .foreignArchitecture(header.architecture) }
        header.pageSize = try reader.read(UInt32.self)
        guard header.pageSize == UInt32(STASIS_PAGE_SIZE) else { throw .invalidHeader("page size \(header.pageSize), expected 4096") }
        header.xcr0 = try reader.read(UInt64.self)
        header.xsaveSize = try reader.read(UInt32.self)
        guard header.xcr0 & 0x3 == 0x3, header.xsaveSize >= 512, header.xsaveSize <= 16384 else {
            throw .invalidHeader("implausible xsave description (XCR0 \(hex(header.xcr0)), \(header.xsaveSize) bytes)")
        }
        header.threadCount = try reader.read(UInt32.self)
        // 0: a tree manifest (TreeManifest.swift); Image.validate wants at least one THREAD.
        guard header.threadCount <= 65536 else {
            throw .invalidHeader("thread count \(header.threadCount)")
        }
        header.pid = try reader.read(Int32.self)
        guard header.pid > 0 else { throw .invalidHeader("pid \(header.pid)") }
        header.uid = try reader.read(UInt32.self)
        header.sequence = try reader.read(UInt64.self)
        header.timeNanoseconds = try reader.read(UInt64.self)
        header.kernelRelease = try reader.readFixedString(72)
        let programBytes = Int(try reader.read(UInt32.self))
        guard programBytes <= maxProgramBytes else { throw .invalidHeader("program path of \(programBytes) bytes") }
        header.headerCRC = try reader.read(UInt32.self)
        return (header, programBytes)
    }

    /// Decodes and checks the header and program path at the start of `source`, CRC included.
    public static func decode(from source: ImageSource) throws(ImageError) -> ImageHeader {
        guard source.size > 0 else { throw .empty }
        let fixed = try source.bytes(at: 0, count: Int(min(source.size, UInt64(ImageHeader.size))))
        guard fixed.count == ImageHeader.size else {
            _ = try ImageHeader.decodeFixed(fixed)  // names "not an image" before "truncated"
            throw .truncated(at: source.size)
        }
        var (header, programBytes) = try ImageHeader.decodeFixed(fixed)
        let program = try source.bytes(at: UInt64(ImageHeader.size), count: programBytes)
        try ImageHeader.verifyCRC(fixed: fixed, program: program, expected: header.headerCRC)
        header.program = String(decoding: program, as: UTF8.self)
        header.programBytes = programBytes
        return header
    }

    /// header_crc: CRC32C of the fixed header bytes (their own CRC field as zero), then the program path.
    static func crc(fixed: [UInt8], program: [UInt8]) -> UInt32 {
        var bytes = Array(fixed.prefix(size))
        for i in crcOffset..<min(crcOffset + 4, bytes.count) { bytes[i] = 0 }
        var crc = CRC32C()
        crc.update(bytes)
        crc.update(program)
        return crc.value
    }

    /// Checks `headerCRC` against the fixed bytes and the program path.
    public static func verifyCRC(fixed: [UInt8], program: [UInt8], expected: UInt32) throws(ImageError) {
        guard crc(fixed: fixed, program: program) == expected else { throw .checksumMismatch("the header") }
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(bytes: ImageHeader.magic)
        writer.write(version)
        writer.write(UInt32(ImageHeader.size))
        writer.write(architecture)
        writer.write(pageSize)
        writer.write(xcr0)
        writer.write(xsaveSize)
        writer.write(threadCount)
        writer.write(pid)
        writer.write(uid)
        writer.write(sequence)
        writer.write(timeNanoseconds)
        writer.writeFixedString(kernelRelease, count: 72)
        writer.write(UInt32(program.utf8.count))
        let start = writer.bytes.count - ImageHeader.crcOffset
        writer.write(ImageHeader.crc(fixed: Array(writer.bytes[start...]) + [0, 0, 0, 0], program: Array(program.utf8)))
        writer.write(bytes: Array(program.utf8))
        writer.pad(toMultipleOf: Int(RecordHeader.alignment))
    }
}

extension ImageHeader {
    /// Recomputes `header_crc` of an image held in memory after its header bytes were edited (tests, tools).
    public static func reseal(_ image: inout [UInt8]) {
        let at = MemoryLayout<stasis_image_header_t>.offset(of: \.program_bytes)!
        var reader = ByteReader(Array(image[at..<at + 4]))
        let programBytes = Int((try? reader.read(UInt32.self)) ?? 0)
        let crc = crc(fixed: Array(image[0..<size]), program: Array(image[size..<size + programBytes]))
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { image[crcOffset + i] = $0[i] } }
    }
}

func hex(_ value: UInt64) -> String { "0x" + String(value, radix: 16) }
