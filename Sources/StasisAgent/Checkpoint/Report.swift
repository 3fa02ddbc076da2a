// FREEZE WINDOW: see Freeze/RawSyscall.swift.
// What the requester hears: CONTROL/result for `stasis checkpoint`, fd 2 for a plain kill.
import CStasisABI
import CStasisShim
import StasisProc

extension CheckpointJob {
    /// Tells whoever asked: `stasis checkpoint` through its result file, a plain `kill` through fd 2 on failure.
    @_noAllocation @_noLocks
    mutating func report(_ failure: FreezeFailure?) {
        message.removeAll()
        if let failure {
            var text = message  // shares the bytes; a copy so describe() can read self
            if capture.pointee.request_id == 0 {
                text.append(failure.step == .checkpointInProgress ? "stasis: checkpoint skipped: " : "stasis: checkpoint failed: ")
            }
            describe(failure, into: &text)
            message = text
        }
        guard capture.pointee.request_id != 0 else {
            if failure != nil {
                message.append("\n")
                _ = RawSyscall.write(2, message.bytes, message.count)
            }
            return
        }
        // `stasis checkpoint`: CONTROL/result (stasis_request.h), via result.tmp and rename.
        let result = protocolBuffer.assumingMemoryBound(to: stasis_checkpoint_result_t.self)
        let size = MemoryLayout<stasis_checkpoint_result_t>.size
        for i in 0..<size { protocolBuffer.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        result.pointee.magic = STASIS_RESULT_MAGIC
        if let failure {
            // Busy: the previous image is still being written; `stasis checkpoint` asks again.
            result.pointee.status = failure.step == .checkpointInProgress ? STASIS_RESULT_BUSY : STASIS_RESULT_ERROR
            copy(message, into: protocolBuffer + Int(STASIS_RESULT_MESSAGE_OFFSET), capacity: Int(STASIS_RESULT_MESSAGE_MAX))
        } else {
            result.pointee.status = STASIS_RESULT_OK
            result.pointee.threads = UInt32(truncatingIfNeeded: threadCount)
            result.pointee.processes = UInt32(truncatingIfNeeded: tree?.memberCount ?? 1)
            result.pointee.chain_length = chainLength
            result.pointee.max_chain = capture.pointee.config.pointee.max_chain
            result.pointee.incremental_unavailable = trackingUnavailable ? 1 : 0
            // Timings for `stasis checkpoint --json` and the benchmarks.
            result.pointee.freeze_ns = UInt64(max(frozenAt - startedAt, 0))
            result.pointee.pause_ns = UInt64(max(thawedAt - startedAt, 0))
            result.pointee.total_ns = UInt64(max(publishedAt - startedAt, 0))
            copy(finalPath, into: protocolBuffer + Int(STASIS_RESULT_IMAGE_OFFSET), capacity: Int(STASIS_MAX_PATH))
        }
        scratch.removeAll()
        appendControlPath(&scratch)
        scratch.append("/")
        scratch.append(ControlFiles.result)
        tempPath.removeAll()
        tempPath.append(bytes: scratch.bytes, count: scratch.count)
        scratch.append(".tmp")
        let fd = RawSyscall.open(scratch.cString, RawFlag.writeOnly | RawFlag.create | RawFlag.truncate
            | RawFlag.closeOnExec | RawFlag.noFollow, 0o600)
        guard fd >= 0 else { return }
        _ = RawSyscall.writeAll(Int32(fd), protocolBuffer, size)
        RawSyscall.close(Int32(fd))
        _ = RawSyscall.call(STASIS_NR_rename, Int(bitPattern: scratch.cString), Int(bitPattern: tempPath.cString))
    }

    /// A text into a fixed NUL-terminated field, truncated to fit.
    @_noAllocation @_noLocks
    private func copy(_ text: TextBuffer, into field: UnsafeMutableRawPointer, capacity: Int) {
        let count = min(text.count, capacity - 1)
        for i in 0..<count { field.storeBytes(of: text.bytes[i], toByteOffset: i, as: UInt8.self) }
        field.storeBytes(of: 0, toByteOffset: count, as: UInt8.self)
    }

    @_noAllocation @_noLocks
    func describe(_ failure: FreezeFailure, into text: inout TextBuffer) {
        switch failure.step {
        case .openImage: text.append("cannot create the image in ")
        case .writeImage: text.append("cannot write the image in ")
        case .syncImage: text.append("cannot sync the image in ")
        case .renameImage: text.append("cannot publish the image in ")
        case .readProc: text.append("cannot read /proc/self")
        case .scanPages: text.append("PAGEMAP_SCAN failed (Linux 6.7 or newer is needed) at 0x")
        case .unsupportedFile: text.append("fd ")
        case .arenaExhausted: text.append("agent scratch memory exhausted")
        case .readRequest: text.append("cannot read the checkpoint request")
        case .tooManyRuns: text.append("too many page runs in one memory area")
        case .threadsDidNotStop:
            text.append(decimal: failure.object)
            text.append(" thread(s) did not stop within 5 s (blocking the checkpoint signal with raw system calls?)")
            return
        case .tooManyThreads: text.append("more threads than the agent can capture (4096)")
        case .checkpointInProgress:
            text.append("the previous image of this process is still being written")
            return
        case .treeControl: text.append("cannot set up the process tree's shared control block")
        case .treeTooLarge:
            text.append("the process tree has more than ")
            text.append(decimal: Int(STASIS_TREE_MAX_PROCESSES))
            text.append(" processes")
            return
        case .treeProcessDidNotStop, .treeNoAgent, .treeTraced, .treeStopped, .treeSessionLeaderGone,
            .treeTooManyDescriptors, .treeWriterDied, .treeMemberFailed, .treeAborted, .treeProcessExited:
            describeTreeFailure(failure, into: &text)
            return
        case .stillPagingIn:
            text.append("the lazy restart's pager (pid ")
            text.append(decimal: failure.object)
            text.append(") is still bringing pages in after 120 s; try again later")
            return
        case .sysvSharedMemory:
            text.append("SysV shared memory (shmat) at 0x")
            text.append(hex: UInt64(UInt(bitPattern: failure.object)))
            text.append(" is not supported yet")
            return
        case .readDeletedFile:
            text.append("cannot read the contents of the deleted file at fd ")
            text.append(decimal: failure.object)
        case .deletedFileTooLarge:
            text.append("the deleted file or memfd at fd ")
            text.append(decimal: failure.object)
            text.append(" is larger than 4 GiB; Stasis saves such contents only up to that size")
            return
        case .readPipe:
            text.append("cannot save the bytes buffered in the pipe at fd ")
            text.append(decimal: failure.object)
        case .signalThread:
            text.append("cannot signal thread ")
            text.append(decimal: failure.object)
        }
        switch failure.step {
        case .openImage, .writeImage, .syncImage, .renameImage:
            text.append(bytes: directory.bytes, count: directory.count)
        case .scanPages: text.append(hex: UInt64(UInt(bitPattern: failure.object)))
        case .unsupportedFile:
            text.append(decimal: failure.object)
            text.append(" (")
            var link = TextBuffer(scratch.bytes, capacity: 64)
            link.append("/proc/self/fd/")
            link.append(decimal: failure.object)
            let target = finalPath.bytes  // unused once a checkpoint has failed
            let n = RawSyscall.readlink(link.cString, target, min(finalPath.capacity - 1, 200))
            if n > 0 { text.append(bytes: target, count: n) }
            text.append(") is not supported yet: Stasis restores files, directories, /dev/null-like devices, pipes, eventfds, epoll and fds 0-2")
            return
        default: break
        }
        if failure.errno != 0 {
            text.append(": ")
            text.append(errnoText(failure.errno))
        }
    }
}

extension CheckpointJob {
    /// A tree failure names the process: "process PID (COMM) ...".
    @_noAllocation @_noLocks
    func describeTreeFailure(_ failure: FreezeFailure, into text: inout TextBuffer) {
        var pid = failure.object
        if failure.step == .treeMemberFailed, let tree, failure.object > 0, failure.object < tree.memberCount {
            pid = Int(tree.member(failure.object).pointee.process.pid)
        }
        if failure.step == .treeWriterDied {
            text.append("the image writer (PID ")
            text.append(decimal: pid)
            text.append(") of a process in the tree died before it finished (out of memory? killed?)")
            return
        }
        text.append("process ")
        text.append(decimal: pid)
        appendCommand(of: pid, into: &text)
        switch failure.step {
        case .treeProcessDidNotStop:
            text.append(" did not stop for the checkpoint within 5 s (does it block the checkpoint signal with raw system calls, or is it busy with a checkpoint of its own?)")
        case .treeNoAgent:
            text.append(" does not carry the Stasis agent (a static or setuid program, or one started without LD_PRELOAD), so its parent cannot be checkpointed with it; end it, or let it finish, and try again")
        case .treeProcessExited:
            text.append(" was killed while the tree was frozen")
        case .treeTraced:
            text.append(" is being traced (a debugger or strace is attached); detach it and try again")
        case .treeStopped:
            text.append(" is stopped and could not be continued for its capture")
        case .treeSessionLeaderGone:
            text.append(" is in a session whose leader has exited and is not the job's own session; Stasis cannot restore such a session")
        case .treeTooManyDescriptors:
            text.append(" has more than ")
            text.append(decimal: Int(STASIS_TREE_MAX_MEMBER_FDS))
            text.append(" open descriptors, more than a process of a tree checkpoint may have")
        case .treeMemberFailed:
            text.append(": ")
            if let tree, failure.object > 0, failure.object < tree.memberCount {
                let member = tree.member(failure.object)
                let field = UnsafeMutableRawPointer(_unsafePerformance { stasis_tree_message(member) }).assumingMemoryBound(to: UInt8.self)
                var count = 0
                while count < 255 && field[count] != 0 { count += 1 }
                if count == 0 && member.pointee.fail_step == UInt32(FreezeFailure.Step.treeWriterDied.rawValue) {
                    text.append("its image writer (PID ")
                    text.append(decimal: Int(member.pointee.fail_object))
                    text.append(") died before it finished (out of memory? killed?)")
                }
                text.append(bytes: field, count: count)
            }
        default:
            text.append(" was told to stop")
        }
    }

    /// " (COMM)" from /proc/PID/comm, if it can still be read.
    @_noAllocation @_noLocks
    func appendCommand(of pid: Int, into text: inout TextBuffer) {
        var path = TextBuffer(finalPath.bytes + finalPath.capacity - 64, capacity: 64)
        path.append("/proc/")
        path.append(decimal: pid)
        path.append("/comm")
        var name: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &name) { bytes in
            let n = ProcFile.read(path.cString, into: bytes.baseAddress!, capacity: 24)
            guard n > 0 else { return }
            text.append(" (")
            var count = 0
            while count < n && bytes[count] != UInt8(ascii: "\n") && bytes[count] != 0 { count += 1 }
            text.append(bytes: bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), count: count)
            text.append(")")
        }
    }
}

@_noAllocation @_noLocks
func errnoText(_ errno: Int) -> StaticString {
    switch errno {
    case 1: return "operation not permitted"
    case 2: return "no such file or directory"
    case 5: return "input/output error"
    case 12: return "out of memory"
    case 13: return "permission denied"
    case 17: return "file exists"
    case 20: return "not a directory"
    case 22: return "invalid argument"
    case 25: return "inappropriate ioctl (PAGEMAP_SCAN missing)"
    case 27: return "file too large"
    case 28: return "no space left on device"
    case 30: return "read-only file system"
    case 36: return "file name too long"
    case 95: return "not supported"
    case 122: return "disk quota exceeded"
    default: return "system error"
    }
}
