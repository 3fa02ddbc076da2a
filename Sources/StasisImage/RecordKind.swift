import CStasisABI

/// Record tags as written to disk (stasis_image_abi.h STASIS_RECORD_*): append new cases, never renumber.
public enum RecordKind: UInt32, Sendable, CustomStringConvertible {
    case end = 0, process = 1, memoryArea = 2, thread = 3, signalActions = 4, fileDescriptor = 5, agent = 6
    case posixTimer = 7, parent = 8, pendingSignal = 9, sharedDescription = 10, treeProcess = 11, pageBlocks = 12

    public var description: String {
        switch self {
        case .end: return "END record"
        case .process: return "PROCESS record"
        case .memoryArea: return "MEMORY_AREA record"
        case .thread: return "THREAD record"
        case .signalActions: return "SIGNAL_ACTIONS record"
        case .fileDescriptor: return "FILE_DESCRIPTOR record"
        case .agent: return "AGENT record"
        case .posixTimer: return "POSIX_TIMER record"
        case .parent: return "PARENT record"
        case .pendingSignal: return "PENDING_SIGNAL record"
        case .sharedDescription: return "SHARED_DESCRIPTION record"
        case .treeProcess: return "TREE_PROCESS record"
        case .pageBlocks: return "PAGE_BLOCKS record"
        }
    }
}

/// The 32-byte header in front of every record (stasis_record_header_t).
public struct RecordHeader: Equatable, Sendable {
    public static let size = MemoryLayout<stasis_record_header_t>.size
    /// Bytes of the header covered by `payloadCRC` (the fields before the CRCs); the two CRCs follow.
    public static let checkedBytes = Int(STASIS_RECORD_CRC_OFFSET)
    /// Page data starts on this boundary; records without page data on the next 8-byte boundary.
    public static let pageSize = UInt64(STASIS_PAGE_SIZE)
    public static let alignment = UInt64(STASIS_RECORD_ALIGN)
    public var kind: UInt32
    public var payloadBytes: UInt32
    public var dataOffset: UInt64
    public var dataBytes: UInt64
    public var payloadCRC: UInt32 = 0
    public var dataCRC: UInt32 = 0

    public init(kind: UInt32, payloadBytes: UInt32, dataOffset: UInt64 = 0, dataBytes: UInt64 = 0) {
        self.kind = kind
        self.payloadBytes = payloadBytes
        self.dataOffset = dataOffset
        self.dataBytes = dataBytes
    }

    public init(decoding reader: inout ByteReader) throws(ImageError) {
        kind = try reader.read(UInt32.self)
        payloadBytes = try reader.read(UInt32.self)
        dataOffset = try reader.read(UInt64.self)
        dataBytes = try reader.read(UInt64.self)
        payloadCRC = try reader.read(UInt32.self)
        dataCRC = try reader.read(UInt32.self)
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(kind)
        writer.write(payloadBytes)
        writer.write(dataOffset)
        writer.write(dataBytes)
        writer.write(payloadCRC)
        writer.write(dataCRC)
    }

    /// CRC32C of the checked header fields followed by `payload`.
    public func computePayloadCRC(_ payload: [UInt8]) -> UInt32 {
        var writer = ByteWriter()
        encode(into: &writer)
        var crc = CRC32C()
        crc.update(Array(writer.bytes.prefix(RecordHeader.checkedBytes)))
        crc.update(payload)
        return crc.value
    }
}
