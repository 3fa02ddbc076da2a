import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// The memory objects that a tree's MAP_SHARED areas of memfds, deleted files and shared anonymous
/// memory map (STASIS_AREA_FILE_OBJECT): one per (device, inode) for the whole tree, so that the areas
/// of a parent and its children that were one object are one again (Docs/ARCHITECTURE.md 3.6).
///
/// An object some member had a descriptor of (a memfd, a deleted file) is made from the first such
/// FILE_DESCRIPTOR record, and the descriptor plans reopen it. Any other (shared anonymous memory
/// inherited through fork, a memfd whose descriptors were all closed) is a new memfd, filled here from
/// the areas' pages, each page from the first member (manifest order) that has it, after checking
/// each area's page CRC. Every member's restorer gets the objects its areas map through its restore
/// plan (stasis_plan_object_t) and maps them without reading any page: the objects are whole before
/// any process of the tree exists.
struct SharedMemoryObjects {
    private(set) var objects: [FileObjectKey: FileDescriptor] = [:]
    /// Made here; closed by `closeAll` once the tree exists.
    private var made: [FileDescriptor] = []

    /// The objects an image's areas map, in the order of its areas.
    static func keys(of image: Image) -> [FileObjectKey] {
        var seen = Set<FileObjectKey>()
        var keys: [FileObjectKey] = []
        for area in image.memoryAreas where area.flags.isSuperset(of: [.fileObject, .shared, .anonymous]) {
            let key = FileObjectKey(device: area.device, inode: area.inode)
            if seen.insert(key).inserted { keys.append(key) }
        }
        return keys
    }

    init(_ tree: TreeImages, descriptors: TreeDescriptors) throws(LauncherError) {
        var needed = Set<FileObjectKey>()
        for member in tree.members { needed.formUnion(Self.keys(of: member.image)) }
        guard !needed.isEmpty else { return }
        do {
            // Objects some descriptor had: from its record, shared with the descriptor plans.
            for member in tree.members {
                for record in member.image.fileDescriptors {
                    let key = FileObjectKey(device: record.device, inode: record.inode)
                    guard needed.contains(key), objects[key] == nil else { continue }
                    switch record.payload {
                    case .deleted(let contents), .memfd(let contents):
                        let object = try FileDescriptorPlan.makeFileObject(record, contents, from: member.source)
                        made.append(object)
                        objects[key] = object
                        descriptors.shared.fileObjects[key] = object
                    default: break
                    }
                }
            }
            // The others: a memfd each, filled from the areas.
            var filled: [FileObjectKey: PageRanges] = [:]
            for member in tree.members {
                for area in member.image.memoryAreas where area.flags.isSuperset(of: [.fileObject, .shared, .anonymous]) {
                    let key = FileObjectKey(device: area.device, inode: area.inode)
                    guard descriptors.shared.fileObjects[key] == nil else { continue }  // from a descriptor's record
                    var object: FileDescriptor
                    if let existing = objects[key] { object = existing } else { object = try makeMemfd(key) }
                    try fill(object, from: area, of: member, ranges: &filled[key, default: PageRanges()])
                }
            }
        } catch {
            closeAll()
            throw error
        }
    }

    private mutating func makeMemfd(_ key: FileObjectKey) throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_memfd("stasis-shared")
        guard fd >= 0 else { throw LauncherError(.restoreFailed, "cannot create a memfd for shared memory: \(Errno(rawValue: -fd))") }
        let object = FileDescriptor(rawValue: fd)
        made.append(object)
        objects[key] = object
        return object
    }

    /// The area's pages into the object at the area's file offset, where no earlier area put them;
    /// the area's page CRC is checked on the way.
    private func fill(_ object: FileDescriptor, from area: MemoryAreaRecord, of member: TreeImages.Member,
                      ranges: inout PageRanges) throws(LauncherError) {
        let what = "area 0x\(String(area.start, radix: 16))-0x\(String(area.end, radix: 16))"
        var st = stat()
        let needed = area.fileOffset + (area.end - area.start)
        if fstat(object.rawValue, &st) == 0, UInt64(st.st_size) < needed, ftruncate(object.rawValue, off_t(needed)) != 0 {
            throw LauncherError(.restoreFailed, "cannot size the shared memory of \(what) of process \(member.process.pid): \(Errno.current)")
        }
        let page = UInt64(STASIS_PAGE_SIZE)
        var crc = CRC32C()
        var data = area.dataOffset
        do {
            for run in area.runs {
                guard !run.isInherited else {
                    throw LauncherError(.restoreFailed, "\(member.source.path): shared \(what) inherits pages from a parent image; not supported in a tree")
                }
                var done: UInt64 = 0
                while done < run.pageCount * page {
                    let count = min(UInt64(4 << 20), run.pageCount * page - done)
                    let bytes = try member.source.bytes(at: data, count: Int(count))
                    crc.update(bytes)
                    let at = area.fileOffset + run.firstPage * page + done
                    for part in ranges.insert(at..<at + count) {
                        try object.writeAll(Array(bytes[Int(part.lowerBound - at)..<Int(part.upperBound - at)]), at: part.lowerBound)
                    }
                    data += count
                    done += count
                }
            }
        } catch let error as LauncherError {
            throw error
        } catch let error as ImageError {
            throw LauncherError(.badImage, "\(member.source.path): \(error)")
        } catch {
            throw LauncherError(.restoreFailed, "cannot fill the shared memory of \(what) of process \(member.process.pid): \(error)")
        }
        guard area.dataBytes == 0 || crc.value == area.dataCRC else {
            throw LauncherError(.badImage, "\(member.source.path) is damaged: page data checksum mismatch for \(what); restart an older image (`stasis verify` checks one)")
        }
    }

    func closeAll() {
        for fd in made { fd.closeAfterError() }
    }
}

/// Byte ranges already written into an object (sorted, disjoint).
struct PageRanges: Equatable {
    private(set) var ranges: [Range<UInt64>] = []

    /// Adds `range`; returns the parts of it that were not there before, in order.
    mutating func insert(_ range: Range<UInt64>) -> [Range<UInt64>] {
        var missing: [Range<UInt64>] = []
        var cursor = range.lowerBound
        for existing in ranges where existing.upperBound > cursor && existing.lowerBound < range.upperBound {
            if existing.lowerBound > cursor { missing.append(cursor..<existing.lowerBound) }
            cursor = max(cursor, existing.upperBound)
        }
        if cursor < range.upperBound { missing.append(cursor..<range.upperBound) }
        // Merge.
        var merged: [Range<UInt64>] = []
        for r in (ranges + [range]).sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        ranges = merged
        return missing
    }
}
