/// How a tree checkpoint's member images are bound to its manifest (Docs/IMAGE-FORMAT.md 7): the checks
/// `stasis verify`, `inspect`, `ls` and `restart` make on DIR/PID.stasis beyond the image's own.
///
///   tree (manifest)            TREE_PROCESS pid 1001: image_bytes 8192, image_header_crc 0x1234abcd
///   1001.stasis (member)       file size 8192, header_crc 0x1234abcd, header pid 1001
///
/// A member from another checkpoint of the same tree (or changed since) differs in its header CRC (the
/// header holds the checkpoint's time and sequence) or its size, so it is refused before its pages are read.
extension TreeManifest {
    /// The processes that have a member image (every one but the zombies), in manifest order.
    public var members: [TreeProcessRecord] { processes.filter(\.hasImage) }

    /// The manifest's record for `pid`.
    public func process(_ pid: Int32) -> TreeProcessRecord? { processes.first { $0.pid == pid } }

    /// Whether a member file of `size` bytes is the one this manifest names for `process` (cheap: no decode).
    public func checkMemberSize(of process: TreeProcessRecord, size: UInt64) throws(ImageError) {
        guard size == process.imageBytes else {
            throw .invalidTree("member \(process.imageName) has \(size) bytes, the manifest says \(process.imageBytes) "
                + "(an image of another checkpoint, or changed since)")
        }
    }

    /// Whether a member's header is the one this manifest names for `process`: its header CRC and pid.
    public func checkMemberHeader(of process: TreeProcessRecord, header: ImageHeader) throws(ImageError) {
        guard header.headerCRC == process.imageHeaderCRC else {
            throw .invalidTree("member \(process.imageName) has header checksum 0x\(String(header.headerCRC, radix: 16)), "
                + "the manifest says 0x\(String(process.imageHeaderCRC, radix: 16)) (an image of another checkpoint)")
        }
        guard header.pid == process.pid else {
            throw .invalidTree("member \(process.imageName) is an image of process \(header.pid)")
        }
    }

    /// Every SHARED_DESCRIPTION record of `image` (the member of `process`) names a member that comes
    /// earlier in the manifest, has an image, and holds the descriptor named (`owners`: the images decoded so far).
    public func checkSharedDescriptions(of process: TreeProcessRecord, image: Image, owners: [Int32: Image])
        throws(ImageError)
    {
        guard let index = processes.firstIndex(where: { $0.pid == process.pid }) else {
            throw .invalidTree("process \(process.pid) is not in the manifest")
        }
        for share in image.sharedDescriptions {
            let what = "member \(process.imageName): fd \(share.fd) is shared with process \(share.ownerPID) fd \(share.ownerFD)"
            guard let ownerIndex = processes.firstIndex(where: { $0.pid == share.ownerPID }), ownerIndex < index,
                  processes[ownerIndex].hasImage
            else { throw .invalidTree("\(what), which is not a member before it with an image") }
            guard let owner = owners[share.ownerPID] else { throw .invalidTree("\(what), whose image was not read") }
            guard owner.fileDescriptors.contains(where: { $0.fd == share.ownerFD }) else {
                throw .invalidTree("\(what), which that process's image does not hold")
            }
        }
    }
}
