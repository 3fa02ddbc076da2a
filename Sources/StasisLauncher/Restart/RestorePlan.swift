import CStasisABI
import CStasisSpawn
import StasisImage
import StasisSystem

/// The restore plan of an incremental image (stasis_restore_plan.h), handed to the restorer in a memfd.
extension RestartCommand {
    /// The plan in a memfd: header, page segments, then the parents' page data that is used, with
    /// its CRCs. The restorer (or a lazy restart's pager) checks those, not the launcher: reading a
    /// 2 GiB parent first would make every restart of a chain as slow as an eager one. The restorer
    /// checks the newest image's own data as it reads it.
    ///
    /// Pages inherited from a parent's compressed area are decoded here, each block checked against
    /// its CRC, into a memfd that the plan lists as one more image after the parents (`unpacked`).
    static func restorePlan(_ chain: ImageChain) throws(LauncherError) -> (plan: FileDescriptor, unpacked: FileDescriptor?) {
        var segments = try chain.pageSegments()
        let checks = chain.contributingAreas(segments).map { member, area in
            stasis_plan_check_t(file_offset: area.dataOffset, bytes: area.dataBytes, image: UInt32(member - 1), crc: area.dataCRC)
        }
        let unpacked = try unpackCompressedSegments(chain, &segments)
        let fd = stasis_make_memfd("stasis-restore-plan")
        guard fd >= 0 else {
            unpacked?.closeAfterError()
            throw LauncherError(.failure, "cannot create the restore plan: \(Errno(rawValue: -fd))")
        }
        let file = FileDescriptor(rawValue: fd)
        do {
            try file.writeAll(planBytes(segments: segments, checks: checks, parents: chain.members.count - 1 + (unpacked == nil ? 0 : 1)))
        } catch {
            file.closeAfterError()
            unpacked?.closeAfterError()
            throw LauncherError(.failure, "cannot write the restore plan: \(error)")
        }
        return (file, unpacked)
    }

    /// Decodes the pages of every segment that comes from a compressed parent area into one memfd and
    /// points those segments at it (image index: one past the parents). nil when there are none.
    static func unpackCompressedSegments(_ chain: ImageChain, _ segments: inout [stasis_page_segment_t]) throws(LauncherError)
        -> FileDescriptor?
    {
        guard segments.contains(where: { chain.compressedArea(of: $0) != nil }) else { return nil }
        let fd = stasis_make_memfd("stasis-parent-pages")
        guard fd >= 0 else { throw LauncherError(.failure, "cannot create memory for a parent's compressed pages: \(Errno(rawValue: -fd))") }
        let file = FileDescriptor(rawValue: fd)
        // One reader per member: a reader caches its last block by area address and block index, and
        // two parents may both have a compressed area at that address.
        var readers = [StoredPageReader](repeating: StoredPageReader(), count: chain.members.count)
        var written: UInt64 = 0
        for i in segments.indices {
            guard let area = chain.compressedArea(of: segments[i]) else { continue }
            let member = chain.members[Int(segments[i].image) + 1]
            do {
                let pages = try readers[Int(segments[i].image) + 1].read(area, at: segments[i].file_offset, count: segments[i].bytes,
                                                                          from: member.source)
                try file.writeAll(pages, at: written)
            } catch let error as ImageError {
                file.closeAfterError()
                throw LauncherError(.badImage, "\(member.source.path): \(error)")
            } catch {
                file.closeAfterError()
                throw LauncherError(.failure, "cannot write a parent's decoded pages: \(error)")
            }
            segments[i].file_offset = written
            segments[i].image = UInt32(chain.members.count - 1)
            written += segments[i].bytes
        }
        return file
    }

    /// The plan's bytes: header, segments, checks, objects (image_fds are filled in by writePlanTargets,
    /// or given here as `imageFDs`).
    static func planBytes(segments: [stasis_page_segment_t], checks: [stasis_plan_check_t], parents: Int,
                          imageFDs: [Int32] = [], objects: [stasis_plan_object_t] = []) -> [UInt8] {
        var header = stasis_restore_plan_header_t()
        header.magic = STASIS_PLAN_MAGIC
        header.segment_count = UInt32(segments.count)
        header.image_count = UInt32(parents)
        header.check_count = UInt32(checks.count)
        header.object_count = UInt32(objects.count)
        withUnsafeMutableBytes(of: &header.image_fds) { raw in
            for (i, fd) in imageFDs.prefix(Int(STASIS_PLAN_MAX_IMAGES)).enumerated() {
                raw.storeBytes(of: fd, toByteOffset: i * 4, as: Int32.self)
            }
        }
        let headerBytes = MemoryLayout<stasis_restore_plan_header_t>.size
        let segmentBytes = segments.count * MemoryLayout<stasis_page_segment_t>.size
        let checkBytes = checks.count * MemoryLayout<stasis_plan_check_t>.size
        var bytes = [UInt8](repeating: 0, count: headerBytes + segmentBytes + checkBytes + objects.count * MemoryLayout<stasis_plan_object_t>.size)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: header, as: stasis_restore_plan_header_t.self)
            let start = raw.baseAddress!.advanced(by: headerBytes)
            segments.withUnsafeBytes { if let base = $0.baseAddress { start.copyMemory(from: base, byteCount: $0.count) } }
            checks.withUnsafeBytes { if let base = $0.baseAddress { start.advanced(by: segmentBytes).copyMemory(from: base, byteCount: $0.count) } }
            objects.withUnsafeBytes {
                if let base = $0.baseAddress { start.advanced(by: segmentBytes + checkBytes).copyMemory(from: base, byteCount: $0.count) }
            }
        }
        return bytes
    }

    /// The page CRC of every parent area that `segments` take pages from (`stasis compact`).
    static func verifyParentData(_ chain: ImageChain, _ segments: [stasis_page_segment_t]) throws(LauncherError) {
        for (member, area) in chain.contributingAreas(segments) {
            let source = chain.members[member].source
            do {
                try Image.checkData(at: area.dataOffset, bytes: area.dataBytes, crc: area.dataCRC,
                                    what: "the page data of area 0x\(String(area.start, radix: 16))-0x\(String(area.end, radix: 16))", from: source)
            } catch {
                throw LauncherError(.badImage, "\(source.path): \(error)")
            }
        }
    }

    /// Fills in the plan's image_fds once the restorer's numbers for the parents are known.
    static func writePlanTargets(_ file: FileDescriptor, _ targets: [Int32]) throws(LauncherError) {
        let offset = MemoryLayout<stasis_restore_plan_header_t>.offset(of: \.image_fds)!
        let bytes = targets.withUnsafeBytes { Array($0) }
        do {
            try file.writeAll(bytes, at: UInt64(offset))
        } catch {
            throw LauncherError(.failure, "cannot write the restore plan: \(error)")
        }
    }
}
