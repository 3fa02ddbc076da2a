import CStasisABI

/// Why a chain of incremental images cannot be followed or resolved. `member` indexes `members`.
public enum ChainError: Error, Equatable, Sendable {
    /// More than `limit` images (the restore plan's STASIS_PLAN_MAX_IMAGES).
    case tooLong(limit: Int)
    /// The image offered as the parent of `members[child]` is not the one its PARENT record names.
    case notTheParent(child: Int)
    /// `members[member]` inherits pages, but the chain ends there.
    case inheritsWithoutParent(member: Int)
}

/// An incremental image and the parents its inherited pages come from, newest first, and where each
/// inherited page is stored (Docs/IMAGE-FORMAT.md 4.9). Finding and opening the parents is the
/// caller's: it asks `wantedParent`, opens that name beside the image and hands it to `append`.
public struct ImageChain<Source: ImageSource> {
    public struct Member {
        public let image: Image
        public let source: Source
    }

    /// [0] is the image being restarted or compacted; once complete, the last one is a full image.
    public private(set) var members: [Member]

    public static var maxImages: Int { Int(STASIS_PLAN_MAX_IMAGES) }

    public init(_ image: Image, source: Source) {
        members = [Member(image: image, source: source)]
    }

    public var isIncremental: Bool { members.count > 1 }

    /// The PARENT record of the oldest member: the image to append next, nil once the chain is complete.
    public var wantedParent: ParentRecord? { members[members.count - 1].image.parent }

    /// Appends the parent `wantedParent` names, after checking it is that image (sequence, time, pid).
    public mutating func append(parent image: Image, source: Source) throws(ChainError) {
        guard let wanted = wantedParent else { preconditionFailure("the chain is complete") }
        guard members.count < ImageChain.maxImages else { throw .tooLong(limit: ImageChain.maxImages) }
        guard image.header.sequence == wanted.sequence, image.header.timeNanoseconds == wanted.timeNanoseconds,
            image.header.pid == wanted.pid
        else { throw .notTheParent(child: members.count - 1) }
        members.append(Member(image: image, source: source))
    }

    /// Where the pages of every inherited run come from, sorted by address: for each piece, the
    /// member that stores it (`image` + 1) and the file offset there. Pieces no member stores are left
    /// out: they read as the mapping gives them (zero, or the file's contents).
    public func resolveInheritedPages() throws(ChainError) -> [stasis_page_segment_t] {
        // Per member and area, each run's data offset: resolve finds runs by binary search (an
        // incremental area can hold tens of thousands of runs; scanning them per inherited run of
        // the child was quadratic: 33 s to compact a fragmented 128 MiB chain, then 0.3 s).
        let offsets = members.map { member in
            member.image.memoryAreas.map { area in
                var offset = area.dataOffset
                return area.runs.map { run in
                    defer { if !run.isInherited { offset += run.pageCount * RecordHeader.pageSize } }
                    return offset
                }
            }
        }
        var segments: [stasis_page_segment_t] = []
        for area in members[0].image.memoryAreas {
            for run in area.runs where run.isInherited {
                let start = area.start + run.firstPage * RecordHeader.pageSize
                try resolve(start, start + run.pageCount * RecordHeader.pageSize, in: 1, offsets: offsets, into: &segments)
            }
        }
        return segments
    }

    /// The compressed area a segment takes its pages from, or nil when that area's data is plain. A
    /// compressed area has no plain data: such a segment's file_offset is the byte offset of its pages
    /// in the area's stored pages (StoredPageReader reads them), not a place in the file.
    public func compressedArea(of segment: stasis_page_segment_t) -> MemoryAreaRecord? {
        let areas = members[Int(segment.image) + 1].image.memoryAreas
        var low = 0, high = areas.count
        while low < high {
            let middle = (low + high) / 2
            if areas[middle].end <= segment.address { low = middle + 1 } else { high = middle }
        }
        guard low < areas.count, areas[low].start <= segment.address, areas[low].isCompressed else { return nil }
        return areas[low]
    }

    /// Member indexes that contribute pages, with the areas they contribute from (for CRC checks).
    public func contributingAreas(_ segments: [stasis_page_segment_t]) -> [(member: Int, area: MemoryAreaRecord)] {
        var result: [(Int, MemoryAreaRecord)] = []
        var seen = Set<[UInt64]>()
        for segment in segments where compressedArea(of: segment) == nil {  // a compressed one's blocks have CRCs
            let member = Int(segment.image) + 1
            guard let area = members[member].image.memoryAreas.first(where: {
                !$0.isCompressed && $0.dataOffset <= segment.file_offset && segment.file_offset < $0.dataOffset + $0.dataBytes
            }) else { continue }
            if seen.insert([UInt64(member), area.start]).inserted { result.append((member, area)) }
        }
        return result
    }

    private func resolve(_ start: UInt64, _ end: UInt64, in memberIndex: Int, offsets: [[[UInt64]]],
                         into segments: inout [stasis_page_segment_t]) throws(ChainError) {
        guard memberIndex < members.count else { throw .inheritsWithoutParent(member: memberIndex - 1) }
        let page = RecordHeader.pageSize
        let areas = members[memberIndex].image.memoryAreas
        // First area that ends after `start` (areas are sorted and disjoint, vsyscall aside).
        var low = 0, high = areas.count
        while low < high {
            let middle = (low + high) / 2
            if areas[middle].end <= start { low = middle + 1 } else { high = middle }
        }
        var index = low
        while index < areas.count, areas[index].start < end {
            let area = areas[index]
            let runOffsets = offsets[memberIndex][index]
            index += 1
            if area.flags.contains(.vsyscall) { continue }
            // First run that ends after `start` (runs are sorted by page, disjoint).
            let runs = area.runs
            var first = 0, last = runs.count
            while first < last {
                let middle = (first + last) / 2
                if area.start + (runs[middle].firstPage + runs[middle].pageCount) * page <= start { first = middle + 1 } else { last = middle }
            }
            for r in first..<runs.count {
                let run = runs[r]
                let runStart = area.start + run.firstPage * page
                if runStart >= end { break }
                let runEnd = runStart + run.pageCount * page
                let from = max(runStart, start), to = min(runEnd, end)
                guard from < to else { continue }
                if run.isInherited {
                    try resolve(from, to, in: memberIndex + 1, offsets: offsets, into: &segments)
                } else {
                    segments.append(stasis_page_segment_t(address: from, bytes: to - from, file_offset: runOffsets[r] + (from - runStart),
                                                          image: UInt32(memberIndex - 1), reserved: 0))
                }
            }
        }
    }
}
