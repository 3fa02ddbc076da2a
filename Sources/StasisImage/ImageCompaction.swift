import CStasisABI

extension ImageChain {
    /// Writes the newest member as a standalone image (`stasis compact`, Docs/IMAGE-FORMAT.md 4.9):
    /// the same header bytes, every record but PARENT in order (unknown kinds included), MEMORY_AREA
    /// records with inherited runs given the pages `segments` (from `resolveInheritedPages`) resolve
    /// them to, merged with their own runs by address. Page data is laid out again, so every
    /// data_offset, CRC and END is new; the writer signs the result when it has a key. Compressed
    /// page data (the newest member's or a parent's) is written plain: its PAGE_BLOCKS records are
    /// left out and its MEMORY_AREA records lose the compressed flag.
    /// Errors from reading the members are their sources'; from writing, the sink's.
    public func writeStandalone<Sink: ImageSink>(segments: [stasis_page_segment_t], into writer: inout ImageWriter<Sink>)
        throws(ImageError)
    {
        let image = members[0].image
        let source = members[0].source
        try writer.writeHeader(bytes: try source.bytes(at: 0, count: Int(image.header.recordsOffset)))
        var areaIndex = 0
        var segmentIndex = 0
        // One reader per member: a reader caches its last block by area address and block index, and
        // two members may both have a compressed area at that address.
        var readers = [StoredPageReader](repeating: StoredPageReader(), count: members.count)
        for recordOffset in image.recordOffsets where recordOffset != image.endOffset {
            let (header, payload, _) = try Image.readRecord(at: recordOffset, from: source)
            let ownData = [DataPiece(source: source, offset: header.dataOffset, bytes: header.dataBytes)]
            switch RecordKind(rawValue: header.kind) {
            case .parent, .pageBlocks:
                continue
            case .memoryArea:
                let area = image.memoryAreas[areaIndex]
                areaIndex += 1
                guard area.runs.contains(where: \.isInherited) || area.isCompressed else {
                    try copy(kind: header.kind, payload: payload, data: ownData, into: &writer)
                    continue
                }
                var merged = area
                merged.flags.remove(.compressed)
                let pieces = merge(area, dataOffset: header.dataOffset, segments: segments, from: &segmentIndex, runs: &merged.runs)
                var w = ByteWriter()
                merged.encode(into: &w)
                try copy(kind: header.kind, payload: w.bytes, data: pieces, readers: &readers, into: &writer)
            default:
                try copy(kind: header.kind, payload: payload, data: ownData, into: &writer)
            }
        }
        _ = try writer.finish()
    }

    /// Page data read from a member: `bytes` at `offset` of `source`; or, from a compressed area
    /// (`compressed`), `bytes` at `offset` in its stored pages (of `members[member]`).
    private struct DataPiece {
        var member = 0
        let source: Source
        let offset: UInt64
        let bytes: UInt64
        var address: UInt64 = 0
        var compressed: MemoryAreaRecord? = nil
    }

    /// The area's own runs and the segments inside it, by address: the merged run list goes into
    /// `runs`, and the pieces to copy, in that order, are returned.
    private func merge(_ area: MemoryAreaRecord, dataOffset: UInt64, segments: [stasis_page_segment_t], from index: inout Int,
                       runs: inout [MemoryAreaRecord.PageRun]) -> [DataPiece] {
        let page = RecordHeader.pageSize
        var pieces: [DataPiece] = []
        var offset = dataOffset
        var stored: UInt64 = 0
        for run in area.runs where !run.isInherited {
            let compressed = area.isCompressed ? area : nil
            pieces.append(DataPiece(source: members[0].source, offset: compressed == nil ? offset : stored, bytes: run.pageCount * page,
                                    address: area.start + run.firstPage * page, compressed: compressed))
            offset += run.pageCount * page
            stored += run.pageCount * page
        }
        while index < segments.count, segments[index].address < area.end {
            let s = segments[index]
            pieces.append(DataPiece(member: Int(s.image) + 1, source: members[Int(s.image) + 1].source, offset: s.file_offset,
                                    bytes: s.bytes, address: s.address, compressed: compressedArea(of: s)))
            index += 1
        }
        pieces.sort { $0.address < $1.address }
        runs = []
        for piece in pieces {
            let first = (piece.address - area.start) / page
            if let last = runs.last, last.firstPage + last.pageCount == first {
                runs[runs.count - 1].pageCount += piece.bytes / page
            } else {
                runs.append(.init(firstPage: first, pageCount: piece.bytes / page))
            }
        }
        return pieces
    }

    /// One record, its page data streamed from `data` in chunks.
    private func copy<Sink: ImageSink>(kind: UInt32, payload: [UInt8], data: [DataPiece], into writer: inout ImageWriter<Sink>)
        throws(ImageError)
    {
        var readers = [StoredPageReader](repeating: StoredPageReader(), count: members.count)
        try copy(kind: kind, payload: payload, data: data, readers: &readers, into: &writer)
    }

    private func copy<Sink: ImageSink>(kind: UInt32, payload: [UInt8], data: [DataPiece], readers: inout [StoredPageReader],
                                       into writer: inout ImageWriter<Sink>) throws(ImageError)
    {
        let chunk: UInt64 = 4 << 20
        try writer.beginRecord(kind: kind, payload: payload, dataBytes: data.reduce(0) { $0 + $1.bytes })
        for piece in data {
            var done: UInt64 = 0
            while done < piece.bytes {
                let count = min(chunk, piece.bytes - done)
                if let area = piece.compressed {
                    try writer.writeData(try readers[piece.member].read(area, at: piece.offset + done, count: count, from: piece.source))
                } else {
                    try writer.writeData(try piece.source.bytes(at: piece.offset + done, count: Int(count)))
                }
                done += count
            }
        }
        try writer.endRecord()
    }
}
