import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// The restorer as a child of `stasis restart`: started by clone3 (CStasisSpawn), heard through the
/// status pipe (stasis_protocol.h: "warning", then "ok", "error" or "corrupt").
enum Restorer {
    /// A started restorer: the child restart waits for (the restorer, or the init of its PID namespace)
    /// and the program's PID on the host (what signals and --pid-file name).
    struct Started {
        var child: pid_t
        var program: pid_t
        var namespace: NamespaceInit?
        /// How the program came back when not with its PID on the host: said once it is back ("ok").
        var note: String?
    }

    /// Starts `stasis-restorer ARGUMENTS` with the plan's descriptors, the image's cwd and umask, and
    /// the image's PID: on the host when it may, else (unless `namespaces` is false) in a new PID
    /// namespace (NamespaceInit), else with a new PID. Started.note says which, unless it is the first.
    /// Never throws itself, so the caller closes its copies of the descriptors first.
    static func start(_ path: String, arguments: RestorerArguments, plan: FileDescriptorPlan, image: Image,
                      namespaces: Bool) -> Result<Started, LauncherError>
    {
        let wanted = image.header.pid
        var usedSetTID: Int32 = 0
        var setTIDError: Int32 = 0
        var pid = withSpawnPlan(path, arguments, plan, image, wantedPID: wanted) { spawn in
            spawn.wanted_pid_only = namespaces ? 1 : 0
            return stasis_spawn(&spawn, &usedSetTID, &setTIDError)
        }
        if pid > 0 && usedSetTID != 0 { return .success(Started(child: pid, program: pid)) }
        let why = pidRefusal(wanted: wanted, setTIDError: setTIDError)
        var fallback = "restored as PID"
        if namespaces && wanted > 0 {
            let lastPID = ([wanted] + image.threads.map(\.tid)).max() ?? wanted
            let started = NamespaceInit.start(lastPID: lastPID) { settings in
                var arguments = arguments
                arguments.dropCapabilities = settings.new_user != 0
                // A program that is PID 1 is the namespace's reaper: a lazy restart's pager, an orphan by
                // design, would become its child. It comes back eagerly.
                if wanted == 1 { arguments.lazy = false }
                return withSpawnPlan(path, arguments, plan, image, wantedPID: wanted) { spawn in
                    spawn.keep_restore_capability = settings.new_user
                    var settings = settings
                    return stasis_spawn_in_namespace(&spawn, &settings)
                }
            }
            switch started {
            case .success(let namespace):
                let program = namespace.programHostPID
                let note = "stasis: \(why); restored in a new PID namespace with its original PID and thread ids (PID \(program) on the host)"
                return .success(Started(child: namespace.pid, program: program, namespace: namespace, note: note))
            case .failure(let refusal):
                fallback = "no PID namespace either: \(refusal.reason); restored as PID"
            }
            pid = withSpawnPlan(path, arguments, plan, image, wantedPID: 0) { spawn in stasis_spawn(&spawn, &usedSetTID, &setTIDError) }
        }
        guard pid > 0 else { return .failure(LauncherError(.restoreFailed, "cannot start the restorer: \(Errno(rawValue: -pid))")) }
        return .success(Started(child: pid, program: pid, note: "stasis: \(why); \(fallback) \(pid) (thread ids are patched)"))
    }

    /// Why the program could not have its own PID on the host.
    static func pidRefusal(wanted: Int32, setTIDError: Int32) -> String {
        setTIDError == EEXIST ? "PID \(wanted) is in use"
            : setTIDError == EPERM ? "choosing PIDs on the host needs root or CAP_CHECKPOINT_RESTORE"
            : "clone3 set_tid failed (\(Errno(rawValue: setTIDError)))"
    }

    /// The C spawn plan for `arguments`, alive only inside `body` (it points into these arrays and strings).
    private static func withSpawnPlan(_ path: String, _ arguments: RestorerArguments, _ plan: FileDescriptorPlan, _ image: Image,
                                      wantedPID: Int32, _ body: (inout stasis_spawn_plan_t) -> Int32) -> Int32 {
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments.strings).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        return path.withCString { path in
            image.process.cwd.withCString { cwd in
                plan.moves.withUnsafeBufferPointer { moves in
                    plan.epollAdds.withUnsafeBufferPointer { epollAdds in
                        argv.withUnsafeBufferPointer { args in
                            var spawn = stasis_spawn_plan_t(
                                path: path, argv: args.baseAddress!, moves: moves.baseAddress, move_count: Int32(moves.count),
                                keep_stdio: plan.keepStdio, cwd: cwd, umask: image.process.umask,
                                wanted_pid: wantedPID, epoll_adds: epollAdds.baseAddress,
                                epoll_add_count: Int32(epollAdds.count), keep_restore_capability: 0, wanted_pid_only: 0)
                            return body(&spawn)
                        }
                    }
                }
            }
        }
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
