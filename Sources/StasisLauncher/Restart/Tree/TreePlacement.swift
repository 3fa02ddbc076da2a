import Glibc
import StasisImage
import StasisSystem

/// Where a tree's processes get their original PIDs: on the host when restart may choose PIDs and every
/// one is free; else in a new PID namespace of its own (NamespaceInit), unless --no-namespace; a tree is
/// never restored with other PIDs (parents remember their children's).
struct TreePlacement {
    /// nil: on the host. Else why not there: stderr's line says it with where the tree went instead.
    var namespaceReason: String?
    /// What is refused when no namespace can be had either.
    var hostRefusal: LauncherError?
}

/// How cloning a tree's root failed: on the host (clone3's errno), or no namespace could be made.
enum TreeStartFailure: Error {
    case host(Errno)
    case namespace(NamespaceInit.Refusal)
}

extension RestartCommand {
    /// Checks privilege and every PID the tree needs before anything exists. A taken PID is named first
    /// (with the privilege, when that is missing too: freeing the PID alone would not do).
    static func placement(_ layout: TreeLayout, namespaces: Bool) throws(LauncherError) -> TreePlacement {
        let privileged = mayChoosePIDs()
        var refusal: LauncherError?
        var reason = ""
        for member in layout.members {
            guard let holder = pidHolder(member.pid) else { continue }
            let also = privileged ? "" : "; restoring it also needs root or CAP_CHECKPOINT_RESTORE (to choose its PIDs)"
            refusal = LauncherError(.pidInUse, "cannot restore the tree: PID \(member.pid) (\(holder)) is in use by another process; end it or wait for it to exit\(also)")
            reason = "PID \(member.pid) (\(holder)) is in use"
            break
        }
        if refusal == nil && !privileged {
            refusal = cannotChoosePIDs()
            reason = "choosing PIDs on the host needs root or CAP_CHECKPOINT_RESTORE"
        }
        guard let refusal else { return TreePlacement() }
        guard namespaces else { throw refusal }
        return TreePlacement(namespaceReason: reason, hostRefusal: refusal)
    }

    /// The root's PID on the host once it was cloned, with the line to say once the tree is back when
    /// that was in a namespace; or the refusal of a root that could not be made.
    static func rootOnHost(_ started: Result<pid_t, TreeStartFailure>, _ spawn: TreeSpawn, _ placement: TreePlacement,
                           rootPID: pid_t) throws(LauncherError) -> (pid: pid_t, note: String?) {
        switch started {
        case .success(let pid):
            guard let namespace = spawn.namespace else { return (pid, nil) }
            let host = namespace.programHostPID
            let why = placement.namespaceReason ?? "the host's PIDs cannot be had"
            return (host, "stasis: \(why); restored in a new PID namespace with the original PIDs (process \(rootPID) is PID \(host) on the host)")
        case .failure(.host(let error)):
            if error.rawValue == EPERM { throw cannotChoosePIDs() }
            if error.rawValue == EEXIST {
                throw LauncherError(.pidInUse, "cannot restore the tree: PID \(rootPID) was taken by another process meanwhile; restart again")
            }
            throw LauncherError(.restoreFailed, "cannot restore the tree: cannot create its root process: \(error)")
        case .failure(.namespace(let refusal)):
            let base = placement.hostRefusal ?? cannotChoosePIDs()
            throw LauncherError(base.code, base.message + "; no PID namespace either: \(refusal.reason)")
        }
    }

    static func cannotChoosePIDs() -> LauncherError {
        LauncherError(.permissionDenied,
                      "cannot restore the tree: restoring a process tree needs its original PIDs (parents remember their children's), and choosing PIDs needs root or CAP_CHECKPOINT_RESTORE")
    }

    /// Root, or CAP_CHECKPOINT_RESTORE (40) or CAP_SYS_ADMIN (21) in the effective set.
    static func mayChoosePIDs() -> Bool {
        hasEffectiveCapability(40) || hasEffectiveCapability(21)
    }

    /// "sleep", "sleep, a zombie its parent has not reaped yet", or nil when `pid` is free.
    static func pidHolder(_ pid: pid_t) -> String? {
        do {
            try ProcessControl.send(0, to: pid)
        } catch where error == .noSuchProcess {
            return nil
        } catch {
            // EPERM: another user's process
        }
        var comm = "?"
        if let bytes = try? readFile("/proc/\(pid)/comm") { comm = String(decoding: bytes.filter { $0 != 10 }, as: UTF8.self) }  // gone meanwhile: "?"
        if statFields(pid)?.first == "Z" { return "\(comm), a zombie its parent has not reaped yet" }
        return comm
    }
}
