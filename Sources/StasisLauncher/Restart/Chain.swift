import CStasisABI
import Glibc
import StasisImage
import StasisSystem

/// An incremental image and the parents its inherited pages come from, newest first. Each parent is
/// checked to be the image its child names (sequence, time, pid), to be the caller's, and to hold
/// intact page data where the child takes pages from it.
struct ImageChain {
    struct Member {
        let image: Image
        let source: FileImageSource
    }

    /// [0] is the image being restarted; the last one is a full image.
    private(set) var members: [Member]

    var isIncremental: Bool { members.count > 1 }

    /// Follows PARENT records from `image` (at `source`) through `image`'s directory.
    static func load(_ image: Image, source: FileImageSource,
                     check: (Image, FileImageSource) throws(LauncherError) -> Void = { _, _ throws(LauncherError) in })
        throws(LauncherError) -> ImageChain
    {
        var chain = ImageChain(members: [Member(image: image, source: source)])
        let directory = directoryName(of: source.path)
        var child = image
        while let parent = child.parent {
            guard chain.members.count < Int(STASIS_PLAN_MAX_IMAGES) else {
                throw LauncherError(.incompleteChain, "\(source.path): the chain is longer than \(STASIS_PLAN_MAX_IMAGES) images")
            }
            let path = directory + "/" + parent.name
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw LauncherError(.incompleteChain,
                                    "\(source.path) is incremental and its parent \(path) is missing; restart needs every image of its chain")
            }
            let parentSource = try FileImageSource(path: path)
            let decoded = try parentSource.decode()
            guard decoded.header.sequence == parent.sequence, decoded.header.timeNanoseconds == parent.timeNanoseconds,
                decoded.header.pid == parent.pid
            else {
                throw LauncherError(.incompleteChain,
                                    "\(path) is not the parent \(child.header.sequence == image.header.sequence ? source.path : "its child") was taken from (another checkpoint by that name?)")
            }
            try check(decoded, parentSource)
            chain.members.append(Member(image: decoded, source: parentSource))
            child = decoded
        }
        return chain
    }

    static func directoryName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Where the pages of every inherited run come from, sorted by address: for each piece, the
    /// member that stores it (1...) and the file offset there. Pieces no member stores are left out:
    /// they read as the mapping gives them (zero, or the file's contents).
    func pageSegments() throws(LauncherError) -> [stasis_page_segment_t] {
        // Per member and area, each run's data offset: resolve finds runs by binary search (an
        // incremental area can hold tens of thousands of runs; scanning them per inherited run of
        // the child was quadratic: 33 s to compact a fragmented 128 MiB chain, now 0.3 s).
        let offsets = members.map { member in
            member.image.memoryAreas.map { area in
                var offset = area.dataOffset
                return area.runs.map { run in
                    defer { if !run.isInherited { offset += run.pageCount * 4096 } }
                    return offset
                }
            }
        }
        var segments: [stasis_page_segment_t] = []
        for area in members[0].image.memoryAreas {
            for run in area.runs where run.isInherited {
                let start = area.start + run.firstPage * 4096
                try resolve(start, start + run.pageCount * 4096, in: 1, offsets: offsets, into: &segments)
            }
        }
        return segments
    }

    /// Member indexes that contribute pages, with the areas they contribute from (for CRC checks).
    func contributingAreas(_ segments: [stasis_page_segment_t]) -> [(member: Int, area: MemoryAreaRecord)] {
        var result: [(Int, MemoryAreaRecord)] = []
        var seen = Set<String>()
        for segment in segments {
            let member = Int(segment.image) + 1
            guard let area = members[member].image.memoryAreas.first(where: {
                $0.dataOffset <= segment.file_offset && segment.file_offset < $0.dataOffset + $0.dataBytes
            }) else { continue }
            if seen.insert("\(member)/\(area.start)").inserted { result.append((member, area)) }
        }
        return result
    }

    private func resolve(_ start: UInt64, _ end: UInt64, in memberIndex: Int, offsets: [[[UInt64]]],
                         into segments: inout [stasis_page_segment_t]) throws(LauncherError) {
        guard memberIndex < members.count else {
            throw LauncherError(.badImage, "\(members[memberIndex - 1].source.path) inherits pages but has no parent")
        }
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
                if area.start + (runs[middle].firstPage + runs[middle].pageCount) * 4096 <= start { first = middle + 1 } else { last = middle }
            }
            for r in first..<runs.count {
                let run = runs[r]
                let runStart = area.start + run.firstPage * 4096
                if runStart >= end { break }
                let runEnd = runStart + run.pageCount * 4096
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
