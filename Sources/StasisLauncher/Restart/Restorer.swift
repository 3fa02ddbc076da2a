import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// The restorer as a child of `stasis restart`: started by clone3 (CStasisSpawn), heard through the
/// status pipe (stasis_protocol.h: "warning", then "ok", "error" or "corrupt").
enum Restorer {
    /// Starts `stasis-restorer ARGUMENTS` with the plan's descriptors, the image's cwd and umask, and
    /// the image's PID when it may (stderr says which PID it got otherwise). Never throws itself, so
    /// the caller closes its copies of the descriptors first.
    static func start(_ path: String, arguments: RestorerArguments, plan: FileDescriptorPlan, image: Image)
        -> Result<pid_t, LauncherError>
    {
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments.strings).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var usedSetTID: Int32 = 0
        var setTIDError: Int32 = 0
        // The C plan points into these arrays and strings: it lives only inside the closures.
        let pid: Int32 = path.withCString { path in
            image.process.cwd.withCString { cwd in
                plan.moves.withUnsafeBufferPointer { moves in
                    plan.epollAdds.withUnsafeBufferPointer { epollAdds in
                        argv.withUnsafeBufferPointer { args in
                            var spawn = stasis_spawn_plan_t(
                                path: path, argv: args.baseAddress!, moves: moves.baseAddress, move_count: Int32(moves.count),
                                keep_stdio: plan.keepStdio, cwd: cwd, umask: image.process.umask,
                                wanted_pid: image.header.pid, epoll_adds: epollAdds.baseAddress,
                                epoll_add_count: Int32(epollAdds.count))
                            return stasis_spawn(&spawn, &usedSetTID, &setTIDError)
                        }
                    }
                }
            }
        }
        guard pid > 0 else { return .failure(LauncherError(.restoreFailed, "cannot start the restorer: \(Errno(rawValue: -pid))")) }
        if let why = pidChoiceMessage(wanted: image.header.pid, got: pid, usedSetTID: usedSetTID != 0, setTIDError: setTIDError) {
            printError(why)
        }
        return .success(pid)
    }

    /// What stderr says when the program could not have its own PID; nil when it has.
    static func pidChoiceMessage(wanted: Int32, got: pid_t, usedSetTID: Bool, setTIDError: Int32) -> String? {
        guard !usedSetTID else { return nil }
        let why = setTIDError == EEXIST ? "PID \(wanted) is in use"
            : setTIDError == EPERM ? "choosing PIDs needs root or CAP_CHECKPOINT_RESTORE"
            : "clone3 set_tid failed (\(Errno(rawValue: setTIDError)))"
        return "stasis: \(why); restored as PID \(got) (thread ids are patched)"
    }

    /// Reads the status pipe up to "ok" (the restorer answers it just before it jumps into the
    /// program) or to end of file (it failed, or died silently), printing warnings. Without "ok" the
    /// child is reaped and the restart fails. A lazy restart's pager keeps the pipe: it reports a
    /// page checksum mismatch there later (SignalForwarder).
    static func awaitReport(from pipe: FileDescriptor, child: pid_t, imagePath: String) throws(LauncherError) {
        let lines = StatusLine.parse(readStatus(pipe))
        for case .warning(let text) in lines { printError("stasis: restore warning: \(text)") }
        guard !lines.contains(.ok) else { return }
        let waitStatus = (try? ProcessControl.wait(child)) ?? 0  // ECHILD: already reaped; the lines say why
        throw failure(lines, waitStatus: waitStatus, imagePath: imagePath)
    }

    /// A restore without "ok": exit 3 for "corrupt" (the restorer found the image damaged, as our own
    /// checks or `stasis verify` would: a script can fall back to an older image), else exit 9.
    static func failure(_ lines: [StatusLine], waitStatus: Int32, imagePath: String) -> LauncherError {
        for case .corrupt(let text) in lines {
            return LauncherError(.badImage, "\(imagePath) is damaged: \(text); restart an older image (`stasis verify` checks one)")
        }
        var reason = "the restorer exited without a report (status \(waitStatus))"
        for case .error(let text) in lines {
            reason = text
            break
        }
        return LauncherError(.restoreFailed, "restore of \(imagePath) failed: \(reason)")
    }

    /// The status bytes up to and including an "ok" line, or to end of file (or a read error).
    static func readStatus(_ pipe: FileDescriptor) -> [UInt8] {
        var result: [UInt8] = []
        while let byte = try? pipe.readByte() {  // nil: end of file; a read error ends the report too
            result.append(byte)
            if endsWithOKLine(result) { return result }
        }
        return result
    }

    /// Whether `bytes` end with a whole "ok\n" line.
    static func endsWithOKLine(_ bytes: [UInt8]) -> Bool {
        let ok = Array((STASIS_STATUS_OK + "\n").utf8)
        guard bytes.count >= ok.count, Array(bytes.suffix(ok.count)) == ok else { return false }
        return bytes.count == ok.count || bytes[bytes.count - ok.count - 1] == UInt8(ascii: "\n")
    }
}
