// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// Where the image is written and how it becomes visible: the locked temporary file, the durable
// rename, the .latest link and --keep.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// DIR/.NAME-PID.tmp, created (0600, O_EXCL) and write-locked with an open file description
    /// lock. The lock lives as long as the description: a copy-on-write writer holds it until it has
    /// published (or died), so a checkpoint that finds the name locked knows the previous image of
    /// this process is still being written (.checkpointInProgress, "busy" for `stasis checkpoint`),
    /// and one that finds it unlocked removes what a killed checkpoint left.
    @_noAllocation @_noLocks
    mutating func createTemporaryFile() throws(FreezeFailure) {
        tempPath.removeAll()
        appendHiddenName(&tempPath, suffix: ".tmp")
        var attempts = 0
        while true {
            attempts += 1
            let fd = RawSyscall.open(tempPath.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.exclusive
                | RawFlag.closeOnExec | RawFlag.noFollow, 0o600)
            if fd >= 0 {
                imageFD = Int32(fd)
                var lock = FileLock(type: FileLock.write)
                let locked = withUnsafeMutablePointer(to: &lock) {
                    RawSyscall.call(STASIS_NR_fcntl, fd, FileLock.setOpenFileLock, Int(bitPattern: $0))
                }
                if locked != 0 { throw FreezeFailure(step: .openImage, errno: -locked) }
                return
            }
            guard fd == -RawErrno.exists, attempts < 4 else {
                tempPath.removeAll()
                throw FreezeFailure(step: .openImage, errno: -fd)
            }
            let existing = RawSyscall.open(tempPath.cString, RawFlag.readOnly | RawFlag.closeOnExec | RawFlag.noFollow)
            if existing < 0 { continue }  // published or removed meanwhile: try again
            var probe = FileLock(type: FileLock.write)
            let asked = withUnsafeMutablePointer(to: &probe) {
                RawSyscall.call(STASIS_NR_fcntl, existing, FileLock.getOpenFileLock, Int(bitPattern: $0))
            }
            RawSyscall.close(Int32(existing))
            if asked == 0 && probe.type != FileLock.unlocked {
                tempPath.removeAll()  // not ours: never unlink it
                throw FreezeFailure(step: .checkpointInProgress, errno: 0)
            }
            _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: tempPath.cString))  // left by a killed checkpoint
        }
    }

    /// Makes the written image durable and visible: fsync, rename without replacing anything (EEXIST
    /// only if another writer took the name meanwhile), unlock, fsync DIR, then .latest and --keep.
    @_noAllocation @_noLocks
    mutating func publish(sequence: UInt64) throws(FreezeFailure) {
        let synced = RawSyscall.call(STASIS_NR_fsync, Int(imageFD))
        if synced < 0 { throw FreezeFailure(step: .syncImage, errno: -synced) }
        let renamed = RawSyscall.call(STASIS_NR_renameat2, -100, Int(bitPattern: tempPath.cString), -100,
                                      Int(bitPattern: finalPath.cString), 1 /* RENAME_NOREPLACE */)
        if renamed != 0 { throw FreezeFailure(step: .renameImage, errno: -renamed) }
        tempPath.removeAll()
        // Unlocked explicitly: a child the program forked meanwhile shares the description.
        var unlock = FileLock(type: FileLock.unlocked)
        _ = withUnsafeMutablePointer(to: &unlock) {
            RawSyscall.call(STASIS_NR_fcntl, Int(imageFD), FileLock.setOpenFileLock, Int(bitPattern: $0))
        }
        RawSyscall.close(imageFD)
        imageFD = -1
        let dirFD = RawSyscall.open(directory.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.closeOnExec)
        if dirFD >= 0 {
            _ = RawSyscall.call(STASIS_NR_fsync, dirFD)
            RawSyscall.close(Int32(dirFD))
        }
        updateLatestLink()
        removeOldImages(newest: sequence)
        publishedAt = monotonicNanoseconds()
    }

    /// The sequence of the oldest image `sequence`'s chain needs (itself for a full image), following
    /// PARENT records; 0 when an image in the chain cannot be read.
    @_noAllocation @_noLocks
    mutating func chainStart(of sequence: UInt64) -> UInt64 {
        var current = sequence
        for _ in 0..<100_000 {
            scratch.removeAll()
            appendImageName(&scratch, sequence: current)
            if isTreeImage(scratch) { return current }  // a tree is always a full checkpoint
            var link = ImageLink()
            switch link.read(scratch.cString) {
            case 0: return current  // already gone: nothing older to keep for it
            case 1: break
            default: return 0
            }
            guard link.hasParent else { return current }
            guard link.parent.sequence < current else { return 0 }
            current = link.parent.sequence
        }
        return 0
    }

    /// --keep N: once the new image is safe, remove this process's images numbered N or more below it.
    /// Only names this agent writes (COMM-PID-SEQ.stasis) are touched.
    @_noAllocation @_noLocks
    mutating func removeOldImages(newest: UInt64) {
        let keep = UInt64(capture.pointee.config.pointee.keep)
        guard keep > 0, newest > keep else { return }
        // Incremental images need their parents: keep every image a kept one's chain goes back to.
        var oldestNeeded = newest - keep + 1
        for kept in (newest - keep + 1)...newest {
            let start = chainStart(of: kept)
            if start == 0 { return }  // unreadable: delete nothing rather than break a chain
            oldestNeeded = min(oldestNeeded, start)
        }
        guard oldestNeeded > 1 else { return }
        var old = oldestNeeded - 1
        var misses = 0
        while old > 0 && misses < 64 {  // earlier numbers may be gone already; stop after a run of gaps
            scratch.removeAll()
            appendImageName(&scratch, sequence: old)
            var removed = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: scratch.cString)) == 0
            if !removed && isTreeImage(scratch) {
                removeTreeDirectory(scratch)
                removed = true
            }
            if removed { misses = 0 } else { misses += 1 }
            old -= 1
        }
        scratch.removeAll()
    }

    /// Is `path` a directory (what a tree checkpoint's name is)?
    @_noAllocation @_noLocks
    func isTreeImage(_ path: TextBuffer) -> Bool {
        var status: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                     UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let statted = withUnsafeMutablePointer(to: &status) {
            RawSyscall.call(STASIS_NR_newfstatat, -100, Int(bitPattern: path.cString), Int(bitPattern: $0), 0x100 /* AT_SYMLINK_NOFOLLOW */)
        }
        return statted == 0 && UInt32(truncatingIfNeeded: status.3) & 0o170000 == 0o040000
    }

    /// DIR/COMM-PID.latest -> COMM-PID-SEQ.stasis (best effort: the image is already safe).
    @_noAllocation @_noLocks
    mutating func updateLatestLink() {
        var slash = finalPath.count - 1
        while slash > 0 && finalPath.bytes[slash] != UInt8(ascii: "/") { slash -= 1 }
        scratch.removeAll()
        appendHiddenName(&scratch, suffix: ".latest.tmp")
        _ = RawSyscall.call(STASIS_NR_unlink, Int(bitPattern: scratch.cString))
        let target = UnsafeRawPointer(finalPath.bytes + slash + 1)
        guard RawSyscall.call(STASIS_NR_symlink, Int(bitPattern: target), Int(bitPattern: scratch.cString)) == 0
        else { return }
        message.removeAll()
        appendBaseName(&message, hidden: false)
        message.append(".latest")
        _ = RawSyscall.call(STASIS_NR_rename, Int(bitPattern: scratch.cString), Int(bitPattern: message.cString))
        message.removeAll()
    }
}
