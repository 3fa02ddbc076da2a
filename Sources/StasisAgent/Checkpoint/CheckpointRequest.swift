// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// A `stasis checkpoint` request, as the agent sees it (Docs/ARCHITECTURE.md 2.6): the private
// control directory named by the sigqueue value, taken once, and the options in CONTROL/request.
import CStasisABI
import CStasisShim
import StasisProc

/// The names in stasis_request.h, as StaticStrings (C string macros import as Swift Strings, which
/// the freeze window cannot use). Keep in step with the header; the end-to-end tests use both sides.
enum ControlFiles {
    static let prefix: StaticString = "/tmp/stasis-"  // STASIS_CONTROL_PREFIX
    static let request: StaticString = "request"      // STASIS_REQUEST_FILE
    static let accepted: StaticString = "accepted"    // STASIS_ACCEPTED_FILE
    static let result: StaticString = "result"        // STASIS_RESULT_FILE
}

extension CheckpointJob {
    enum RequestVerdict { case take, repeated, notOurs }

    /// For a `stasis checkpoint` request (sigqueue value = its token): `.take` it once; `.repeated`
    /// when it was already taken (the launcher re-sends until it sees CONTROL/accepted); `.notOurs`
    /// when no private control directory of ours has that name (the program's own sigqueue, or a
    /// request its launcher gave up). A plain trigger (kill) is always taken.
    @_noAllocation @_noLocks
    mutating func acceptRequest() -> RequestVerdict {
        guard capture.pointee.request_id != 0 else { return .take }
        if UInt64(bitPattern: capture.pointee.request_id) >> 32 == STASIS_TREE_MAGIC { return acceptTreeRequest() }
        scratch.removeAll()
        appendControlPath(&scratch)
        let dir = RawSyscall.open(scratch.cString, RawFlag.readOnly | RawFlag.directory | RawFlag.noFollow | RawFlag.closeOnExec)
        guard dir >= 0 else { return .notOurs }
        // struct stat: st_mode at byte 24, st_uid at byte 28. Only a directory the launcher made for
        // this user (0700, owned by it) is trusted: another user cannot plant requests or read results.
        var status: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                     UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let statted = withUnsafeMutablePointer(to: &status) { RawSyscall.call(STASIS_NR_fstat, dir, Int(bitPattern: $0)) }
        RawSyscall.close(Int32(dir))
        let mode = UInt32(truncatingIfNeeded: status.3), owner = UInt32(truncatingIfNeeded: status.3 >> 32)
        guard statted == 0, mode & 0o170000 == 0o040000, mode & 0o077 == 0,
            Int(owner) == RawSyscall.call(STASIS_NR_geteuid)
        else { return .notOurs }
        scratch.append("/")
        scratch.append(ControlFiles.accepted)
        let marker = RawSyscall.open(scratch.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.exclusive
            | RawFlag.noFollow | RawFlag.closeOnExec, 0o600)
        scratch.removeAll()
        guard marker >= 0 else { return .repeated }  // EEXIST: a repeat of a request already taken
        RawSyscall.close(Int32(marker))
        return .take
    }

    @_noAllocation @_noLocks
    mutating func chooseDirectory() throws(FreezeFailure) {
        directory.append(cStringAt: &capture.pointee.config.pointee.image_dir)
        guard capture.pointee.request_id != 0 else { return }
        // CONTROL/request (stasis_request.h), written by `stasis checkpoint` before it signalled us;
        // none: every option at the program's default.
        scratch.removeAll()
        appendControlPath(&scratch)
        scratch.append("/")
        scratch.append(ControlFiles.request)
        let size = MemoryLayout<stasis_checkpoint_request_t>.size
        let n = ProcFile.read(scratch.cString, into: protocolBuffer, capacity: size + 2)
        scratch.removeAll()
        let request = protocolBuffer.assumingMemoryBound(to: stasis_checkpoint_request_t.self)
        guard n == size, request.pointee.magic == STASIS_REQUEST_MAGIC else { return }
        let flags = request.pointee.flags
        if flags & STASIS_REQUEST_SKIP_UNSUPPORTED != 0 { skipUnsupported = true }
        if flags & STASIS_REQUEST_NO_FORK != 0 { forkWriter = false }
        if flags & STASIS_REQUEST_INCREMENTAL != 0 { incremental = true }
        if flags & STASIS_REQUEST_FULL != 0 { incremental = false }
        if flags & STASIS_REQUEST_COMPRESS != 0 { compress = true }
        if flags & STASIS_REQUEST_NO_COMPRESS != 0 { compress = false }
        let key = protocolBuffer + Int(STASIS_REQUEST_KEY_FILE_OFFSET)
        key.storeBytes(of: 0, toByteOffset: Int(STASIS_MAX_PATH) - 1, as: UInt8.self)
        loadKey(key.assumingMemoryBound(to: CChar.self))
        let path = (protocolBuffer + Int(STASIS_REQUEST_IMAGE_DIR_OFFSET)).assumingMemoryBound(to: UInt8.self)
        path[Int(STASIS_MAX_PATH) - 1] = 0
        if path[0] == UInt8(ascii: "/") {  // only an absolute directory
            directory.removeAll()
            directory.append(cStringAt: UnsafeRawPointer(path))
        }
    }

    /// `stasis checkpoint --key FILE`: reads FILE (the request's NUL-terminated path) into the key slot.
    @_noAllocation @_noLocks
    func loadKey(_ path: UnsafePointer<CChar>) {
        guard path[0] != 0,
            let slot = UnsafeMutablePointer<stasis_key_slot_t>(bitPattern: UInt(capture.pointee.config.pointee.key_slot))
        else { return }
        let fd = RawSyscall.open(path, RawFlag.readOnly | RawFlag.closeOnExec)
        guard fd >= 0 else { return }
        let n = RawSyscall.read(Int32(fd), UnsafeMutableRawPointer(slot) + 4, Int(STASIS_KEY_MAX))
        RawSyscall.close(Int32(fd))
        slot.pointee.key_bytes = n > 0 ? UInt32(n) : 0
    }

    /// /tmp/stasis-EUID-TOKEN (TOKEN: the request's sigqueue value in hex), the private directory
    /// `stasis checkpoint` made for this one request. Its name cannot be guessed, so another user
    /// cannot take it first.
    @_noAllocation @_noLocks
    func appendControlPath(_ buffer: inout TextBuffer) {
        buffer.append(ControlFiles.prefix)
        buffer.append(decimal: RawSyscall.call(STASIS_NR_geteuid))
        buffer.append("-")
        buffer.append(hex: UInt64(bitPattern: capture.pointee.request_id))
    }
}
