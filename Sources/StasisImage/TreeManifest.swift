import CStasisABI

/// The manifest of a tree checkpoint: `DIR/COMM-PID-SEQ.stasis/tree` (stasis_tree_abi.h, Docs/IMAGE-FORMAT.md 7).
/// An image file with the usual header (pid = the root's, thread_count = 0, program = the root's exe)
/// and one TREE_PROCESS record per process, root first, every parent before its children; then END.
/// Each process with an image has `PID.stasis` next to the manifest, bound to it by size and header CRC.
public struct TreeManifest: Equatable, Sendable {
    public static let fileName = STASIS_TREE_MANIFEST_NAME
    public var header = ImageHeader()
    public var processes: [TreeProcessRecord] = []
    /// The END record's HMAC-SHA256, when written with a key; and what it covers.
    public var signature: [UInt8]? = nil
    public var recordOffsets: [UInt64] = []
    public var endOffset: UInt64 = 0

    public init() {}

    public var root: TreeProcessRecord { processes[0] }

    public static func decode(from source: ImageSource) throws(ImageError) -> TreeManifest {
        var manifest = TreeManifest()
        manifest.header = try ImageHeader.decode(from: source)
        guard manifest.header.threadCount == 0 else { throw .invalidHeader("not a tree manifest (it has threads)") }
        var offset = manifest.header.recordsOffset
        var count: UInt64 = 0
        while true {
            let (record, payload, next) = try Image.readRecord(at: offset, from: source)
            var reader = ByteReader(payload, base: offset + UInt64(RecordHeader.size))
            guard record.dataBytes == 0 else {
                throw .invalidRecord(RecordKind(rawValue: record.kind), at: offset, reason: "page data in a tree manifest")
            }
            switch RecordKind(rawValue: record.kind) {
            case .end:
                let end = try Image.checkEnd(&reader, at: offset, recordCount: count, next: next, size: source.size)
                manifest.recordOffsets.append(offset)
                manifest.endOffset = offset
                manifest.signature = end.mac
                try manifest.validate()
                return manifest
            case .treeProcess:
                guard manifest.processes.count < Int(STASIS_TREE_MAX_PROCESSES) else {
                    throw .invalidRecord(.treeProcess, at: offset, reason: "more than \(STASIS_TREE_MAX_PROCESSES) processes")
                }
                manifest.recordOffsets.append(offset)
                manifest.processes.append(try TreeProcessRecord(decoding: &reader))
                guard reader.remaining == 0 else {
                    throw .invalidRecord(.treeProcess, at: offset, reason: "\(reader.remaining) unexplained payload bytes")
                }
            case let other:
                throw .invalidRecord(other, at: offset, reason: "not allowed in a tree manifest")
            }
            offset = next
            count += 1
        }
    }

    /// Whole-tree invariants: one root, first; every other process's parent comes before it; ids unique.
    public func validate() throws(ImageError) {
        func fail(_ why: String) -> ImageError { .invalidRecord(.treeProcess, at: 0, reason: why) }
        guard let first = processes.first else { throw .missingRecord("TREE_PROCESS") }
        guard first.isRoot, first.pid == header.pid, first.hasImage else { throw fail("the first process is not the root \(header.pid)") }
        var seen = Set<Int32>()
        for (index, process) in processes.enumerated() {
            guard seen.insert(process.pid).inserted else { throw fail("process \(process.pid) appears twice") }
            guard index == 0 || !process.isRoot else { throw fail("two roots") }
            guard index == 0 || seen.contains(process.ppid) else {
                throw fail("process \(process.pid)'s parent \(process.ppid) does not come before it")
            }
            if index > 0, let parent = processes.first(where: { $0.pid == process.ppid }), parent.state == .zombie {
                throw fail("process \(process.pid)'s parent \(process.ppid) is a zombie")
            }
        }
    }

    /// The manifest as bytes (the agent writes the same layout with raw syscalls; tests and tools use this).
    public func encode(key: [UInt8]? = nil) -> [UInt8] {
        var encoder = ImageEncoder(header: header, key: key)
        for process in processes {
            var w = ByteWriter()
            process.encode(into: &w)
            encoder.append(kind: .treeProcess, payload: w.bytes)
        }
        return encoder.finish()
    }

    /// The children of `pid`, in manifest order.
    public func children(of pid: Int32) -> [TreeProcessRecord] { processes.filter { $0.ppid == pid && !$0.isRoot } }
}
