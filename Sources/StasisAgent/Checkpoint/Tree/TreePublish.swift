// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// A tree checkpoint's directory: DIR/.NAME-PID.tmp.d while the members write into it, then the
// manifest, then one rename to DIR/NAME-PID-SEQ.stasis (stasis_tree_abi.h). A kill
// at any moment leaves either the previous complete tree or the new one, never half of one.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// DIR/.NAME-PID.tmp.d, made afresh (0700). The root holds DIR/.NAME-PID.tmp locked, so one left
    /// there belongs to a killed checkpoint of this process and is removed first. `directory` becomes it.
    @_noAllocation @_noLocks
    mutating func makeTreeDirectory() throws(FreezeFailure) {
        scratch.removeAll()
        appendHiddenName(&scratch, suffix: ".tmp.d")
        removeTreeDirectory(scratch)
        let made = RawSyscall.call(STASIS_NR_mkdir, Int(bitPattern: scratch.cString), 0o700)
        if made != 0 { throw FreezeFailure(step: .openImage, errno: -made) }
        // The images' directory is kept aside for the publish: finalPath is claimed later.
        treeParent.removeAll()
        treeParent.append(bytes: directory.bytes, count: directory.count)
        directory.removeAll()
        directory.append(bytes: scratch.bytes, count: scratch.count)
        scratch.removeAll()
    }

    /// Removes a tree directory and the files in it (it holds files only); quietly, as best it can.
    @_noAllocation @_noLocks
    func removeTreeDirectory(_ path: TextBuffer) {
        let fd = RawSyscall.open(path.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.noFollow | RawFlag.closeOnExec)
        guard fd >= 0 else { return }
        var entries = StackBuffer()
        withUnsafeMutableBytes(of: &entries.storage) { buffer in
            let base = buffer.baseAddress!
            // Unlinking while listing: list from the start again until a pass removes nothing.
            var removed = true
            while removed {
                removed = false
                _ = RawSyscall.call(STASIS_NR_lseek, fd, 0, 0)
                while true {
                    let n = RawSyscall.call(STASIS_NR_getdents64, fd, Int(bitPattern: base), buffer.count)
                    if n <= 0 { break }
                    var offset = 0
                    while offset < n {
                        let name = base + offset + Int(STASIS_DIRENT64_NAME_OFFSET)
                        offset += Int(base.load(fromByteOffset: offset + Int(STASIS_DIRENT64_RECLEN_OFFSET), as: UInt16.self))
                        let first = name.load(as: UInt8.self)
                        let second = name.load(fromByteOffset: 1, as: UInt8.self)
                        if first == UInt8(ascii: "."), second == 0 || (second == UInt8(ascii: ".") && name.load(fromByteOffset: 2, as: UInt8.self) == 0) {
                            continue
                        }
                        if RawSyscall.call(STASIS_NR_unlinkat, fd, Int(bitPattern: name), 0) == 0 { removed = true }
                    }
                }
            }
        }
        RawSyscall.close(Int32(fd))
        _ = RawSyscall.call(STASIS_NR_rmdir, Int(bitPattern: path.cString))
    }

    /// The root, once its own image is written: waits for every member's, writes the manifest and
    /// publishes the directory as DIR/NAME-PID-SEQ.stasis (finalPath), then .latest and --keep.
    @_noAllocation @_noLocks
    mutating func publishTree(sequence: UInt64, arena: inout FreezeArena) throws(FreezeFailure) {
        guard let tree else { return }
        try finishMemberImage()
        tree.setProgress(0, Int32(STASIS_MEMBER_WRITTEN))
        // Writers write in parallel; one that dies never says so, hence the liveness check.
        if let failed = try tree.waitForMembers(1..<tree.memberCount, toReach: Int32(STASIS_MEMBER_WRITTEN),
                                                timeoutNanoseconds: Int64.max / 2, livenessCheck: true,
                                                stalled: { _ throws(FreezeFailure) in })
        {
            throw FreezeFailure(step: .treeMemberFailed, errno: 0, object: failed)
        }
        try writeManifest(sequence: sequence, arena: &arena)
        let dirFD = RawSyscall.open(directory.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if dirFD >= 0 {
            _ = RawSyscall.call(STASIS_NR_fsync, dirFD)
            RawSyscall.close(Int32(dirFD))
        }
        let renamed = RawSyscall.call(STASIS_NR_renameat2, -100, Int(bitPattern: directory.cString), -100,
                                      Int(bitPattern: finalPath.cString), 1 /* RENAME_NOREPLACE */)
        if renamed != 0 { throw FreezeFailure(step: .renameImage, errno: -renamed) }
        // From here on the images' directory is DIR again (.latest, --keep, messages).
        directory.removeAll()
        directory.append(bytes: treeParent.bytes, count: treeParent.count)
        let parentFD = RawSyscall.open(directory.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if parentFD >= 0 {
            _ = RawSyscall.call(STASIS_NR_fsync, parentFD)
            RawSyscall.close(Int32(parentFD))
        }
        releaseTreeLock()
        updateLatestLink()
        removeOldImages(newest: sequence)
        publishedAt = monotonicNanoseconds()
    }

    /// DIRECTORY/tree: the usual header (thread_count 0), one TREE_PROCESS per member, END; signed
    /// like the images when there is a key.
    @_noAllocation @_noLocks
    mutating func writeManifest(sequence: UInt64, arena: inout FreezeArena) throws(FreezeFailure) {
        guard let tree else { return }
        scratch.removeAll()
        scratch.append(bytes: directory.bytes, count: directory.count)
        scratch.append("/tree")  // STASIS_TREE_MANIFEST_NAME
        let fd = RawSyscall.open(scratch.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.exclusive
            | RawFlag.closeOnExec | RawFlag.noFollow, 0o600)
        scratch.removeAll()
        if fd < 0 { throw FreezeFailure(step: .openImage, errno: -fd) }
        defer { RawSyscall.close(Int32(fd)) }
        let memberImage = imageFD
        imageFD = Int32(fd)
        var manifest = openImage(arena: &arena)
        imageFD = memberImage
        try writeHeader(&manifest, sequence: sequence, threadCount: 0)
        for index in 0..<tree.memberCount {
            try manifest.writeRecord(kind: UInt32(STASIS_RECORD_TREE_PROCESS), fixed: &tree.member(index).pointee.process,
                                     fixedBytes: MemoryLayout<stasis_tree_process_record_t>.size)
        }
        try manifest.writeEnd()
        let synced = RawSyscall.call(STASIS_NR_fsync, fd)
        if synced < 0 { throw FreezeFailure(step: .syncImage, errno: -synced) }
    }

    /// The root's DIR/.NAME-PID.tmp: unlocked and removed once the tree is published or given up.
    @_noAllocation @_noLocks
    mutating func releaseTreeLock() {
        guard lockFD >= 0 else { return }
        scratch.removeAll()
        appendBaseName(&scratch, hidden: true, in: treeParent)
        scratch.append(".tmp")
        _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: scratch.cString))
        scratch.removeAll()
        var unlock = FileLock(type: FileLock.unlocked)
        _ = withUnsafeMutablePointer(to: &unlock) {
            RawSyscall.call(STASIS_NR_fcntl, Int(lockFD), FileLock.setOpenFileLock, Int(bitPattern: $0))
        }
        RawSyscall.close(lockFD)
        lockFD = -1
    }

    /// The root, on any failure: members thaw (ABORT), the directory and the lock go.
    @_noAllocation @_noLocks
    mutating func abortTree() {
        guard let tree, isTreeRoot else { return }
        tree.setPhase(Int32(STASIS_TREE_PHASE_ABORT))
        stopContinuedMembers()
        if imageFD >= 0 {
            RawSyscall.close(imageFD)
            imageFD = -1
        }
        tempPath.removeAll()
        if treeParent.count > 0 {
            removeTreeDirectory(directory)
            directory.removeAll()
            directory.append(bytes: treeParent.bytes, count: treeParent.count)
        }
        releaseTreeLock()
    }
}
