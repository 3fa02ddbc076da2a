import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// `stasis restart TREE_DIR`: a tree checkpoint (a directory holding `tree` and one image per live process).
///
/// Algorithm (Docs/ARCHITECTURE.md 3.6):
///   1. decode the manifest and every member; each member gets every check an image gets   TreeImages
///   2. sessions, groups, creators, stand-ins from the manifest                               TreeLayout
///   3. privilege to choose PIDs; every PID (members, stand-ins) free, else refuse            checkPIDs
///   4. shared memory objects, then one descriptor plan per live process, sharing objects and
///      SHARED_DESCRIPTION descriptions across them; status, key and plan per process, one go pipe
///   5. block forwarded signals, become a child subreaper, clone the root (set_tid); the tree grows
///      in C (CStasisSpawn tree_spawn.c): each process creates its children, groups, zombies   TreeSpawn
///   6. every restorer says "ok" and waits at the go pipe; stopped ones stop; their parents hold the
///      SIGCHLD that caused (drained after the go). Any failure: kill and reap everything, one line
///   7. the root's group gets the terminal (when it leads one and stdin is restart's terminal)
///   8. go: one byte per restorer; no longer a subreaper; --pid-file = the root; forward signals
extension RestartCommand {
    static func restartTree(_ options: RestartOptions, overrides: [Int32: DescriptorOverride]) throws(LauncherError) -> Int32 {
        let tree = try TreeImages(directory: options.imagePath, options: options, overrides: overrides)
        let layout = try TreeLayout(tree.manifest)
        let placement = try placement(layout, namespaces: !options.noNamespace)
        let restorer = Installation.restorer
        guard FileSystem.isAccessible(restorer, X_OK) else {
            throw LauncherError(.failure, "restorer not found at \(restorer); build with `swift build` first")
        }

        // Descriptors: above every member's own numbers, shared objects first.
        var base: Int32 = 0
        for member in tree.members {
            let extras = 2 + (member.chain.members.count - 1) + SharedMemoryObjects.keys(of: member.image).count
            base = max(base, FileDescriptorPlan.lowestSource(for: member.image, extraDescriptors: extras))
        }
        // Every member's sources live at once, from `base` up.
        let images = tree.members.map(\.image)
        let count = images.reduce(0) { $0 + $1.fileDescriptors.count }
        try DescriptorLimit.ensure(Int(base) + count + DescriptorLimit.margin, descriptors: count,
                                   highest: images.compactMap { $0.fileDescriptors.map(\.fd).max() }.max() ?? 2)
        let descriptors = TreeDescriptors(shared: SharedObjects(members: images), base: base)
        let memory = try SharedMemoryObjects(tree, descriptors: descriptors)
        let go = try makePipe()
        let keyBytes = try options.keyPath.map { (path) throws(LauncherError) in try readKeyFile(path) }

        var restores: [Int: TreeSpawn.Restore] = [:]
        var statusPipes: [(member: Int, read: FileDescriptor)] = []
        var launcherCopies: [FileDescriptor] = [go.read]  // closed once the root has its copies
        for (index, layoutMember) in layout.members.enumerated() where layoutMember.kind == .restore {
            guard let member = tree.members.first(where: { $0.process.pid == layoutMember.pid }) else { continue }
            let (restore, status) = try memberRestore(member, options: options, overrides: member.process.isRoot ? overrides : [:],
                                                      descriptors: descriptors, memory: memory, go: go.read, key: keyBytes,
                                                      copies: &launcherCopies)
            restores[index] = restore
            statusPipes.append((index, status))
        }

        // Signals the forwarder takes are blocked before any process exists (each inherits the mask).
        let blocked = SignalForwarder.blockForwardedSignals()
        // Every process of the tree is our descendant: while it is made, orphans (of a process that
        // failed, lazy pagers) become our children, so that an abort can reap them all.
        do {
            try ProcessControl.setChildSubreaper(true)
        } catch {
            throw LauncherError(.failure, "cannot become a child subreaper: \(error)")
        }
        let inNamespace = placement.namespaceReason != nil
        if inNamespace && tree.root.process.pid == 1 {
            // The root is the namespace's reaper: lazy pagers, orphans by design, would become its children.
            for index in restores.keys { restores[index]?.arguments.lazy = false }
        }
        let spawn = try TreeSpawn(layout, restorer: restorer, restores: restores, restartGroup: inNamespace ? 0 : getpgrp(),
                                  dropCapabilities: inNamespace && NamespaceInit.needsUserNamespace)
        let lastTID = tree.members.flatMap { $0.image.threads.map(\.tid) }.max() ?? 0
        let started = inNamespace ? spawn.startInNamespace(lastPID: lastTID).map(\.pid).mapError { TreeStartFailure.namespace($0) }
            : spawn.start().mapError { TreeStartFailure.host($0) }
        for restore in restores.values { restore.plan.closeAll() }
        for fd in launcherCopies { fd.closeAfterError() }  // the root has its copies (a pipe or memfd: nothing to lose)
        memory.closeAll()
        let (root, note) = try rootOnHost(started, spawn, placement, rootPID: tree.root.process.pid)

        do {
            try awaitReports(spawn, statusPipes, tree)
            try stopStoppedMembers(spawn, tree)
        } catch {
            spawn.abort()
            throw error
        }
        if let note { printError(note) }
        let terminal = takeTerminal(tree.root.process, hostPID: root)
        do {
            try go.write.writeAll([UInt8](repeating: UInt8(ascii: "g"), count: restores.count))
        } catch {
            spawn.abort()
            throw LauncherError(.restoreFailed, "cannot restore the tree: cannot let it go: \(error)")
        }
        go.write.closeAfterError()  // a pipe: every byte is in it
        try? ProcessControl.setChildSubreaper(false)  // EINVAL only; pagers already ours are reaped below
        if let pidFile = options.pidFile { try writePIDFile(pidFile, root) }
        var checkpointArguments: [String] = []
        if let dir = options.directory { checkpointArguments += ["--dir", dir] }
        if let key = options.keyPath { checkpointArguments += ["--key", key] }
        var forwarder = SignalForwarder(program: root, blocked: blocked, interval: options.interval,
                                        checkpointArguments: checkpointArguments, laterStatus: statusPipes.map(\.read))
        forwarder.reapsOtherChildren = true
        forwarder.terminal = terminal
        forwarder.namespace = spawn.namespace
        return forwarder.run()
    }

    // ---- steps ------------------------------------------------------------------------------------

    /// One live process's restorer: its status pipe (the read end is returned), key pipe, restore plan
    /// (an incremental chain's segments, its shared memory objects), descriptor plan and argv. What the
    /// launcher made for it goes into `copies`, closed once the root has been cloned.
    static func memberRestore(_ member: TreeImages.Member, options: RestartOptions, overrides: [Int32: DescriptorOverride],
                              descriptors: TreeDescriptors, memory: SharedMemoryObjects, go: FileDescriptor, key: [UInt8]?,
                              copies: inout [FileDescriptor]) throws(LauncherError) -> (TreeSpawn.Restore, status: FileDescriptor) {
        let status = try makePipe()
        copies.append(status.write)
        let keyPipe = try key.map { (key) throws(LauncherError) in try keyPipeHolding(key) }
        if let keyPipe { copies.append(keyPipe) }
        let objectKeys = SharedMemoryObjects.keys(of: member.image)
        let planFile = member.chain.isIncremental || !objectKeys.isEmpty ? try emptyPlanFile() : nil
        if let planFile { copies.append(planFile) }
        // The restorer's extra descriptors, in this order: plan, parent images, objects, go pipe.
        let parents = member.chain.members.dropFirst().map(\.source.descriptor)
        var extras: [FileDescriptor] = planFile.map { [$0] } ?? []
        extras += parents
        for key in objectKeys {
            guard let object = memory.objects[key] else {
                throw LauncherError(.failure, "no shared object for an area of process \(member.process.pid)")
            }
            extras.append(object)
        }
        extras.append(go)
        let plan = try FileDescriptorPlan(image: member.image, imageFD: member.source.descriptor, statusFD: status.write,
                                          keyFD: keyPipe, imageSource: member.source, extraDescriptors: extras,
                                          overrides: overrides, tree: descriptors)
        let targets = plan.extraTargets
        var arguments = RestorerArguments(imageFD: plan.imageTarget, statusFD: plan.statusTarget)
        arguments.keyFD = plan.keyTarget
        arguments.lazy = !options.eager
        arguments.pagerDelayMilliseconds = RestorerArguments.pagerDelay(
            fromEnvironment: ProcessControl.environmentValue(STASIS_ENV_PAGER_DELAY_MS))
        var flags: RestorerArguments.TreeFlags = []
        if member.process.flags.contains(.childSubreaper) { flags.insert(.subreaper) }
        arguments.tree = (goFD: targets[targets.count - 1], flags: flags)
        if let planFile {
            arguments.planFD = targets[0]
            let parentTargets = Array(targets[1..<1 + parents.count])
            let objectTargets = targets[1 + parents.count..<1 + parents.count + objectKeys.count]
            let objects = zip(objectKeys, objectTargets).map { key, fd in
                stasis_plan_object_t(device: key.device, inode: key.inode, fd: fd, reserved: 0)
            }
            try writePlan(planFile, member.chain, parentTargets: parentTargets, objects: objects)
        }
        let restore = TreeSpawn.Restore(plan: plan, arguments: arguments, cwd: member.image.process.cwd,
                                        umask: member.image.process.umask)
        return (restore, status.read)
    }

    /// Every live process's status pipe up to "ok" (warnings printed with the process named), or the
    /// first failure: a restorer's line, a step of the tree's creation, or a report that never came.
    static func awaitReports(_ spawn: TreeSpawn, _ pipes: [(member: Int, read: FileDescriptor)], _ tree: TreeImages) throws(LauncherError) {
        func comm(_ index: Int) -> String {
            spawn.layout.members[index].process.map { tree.manifest.processes[$0].comm } ?? "stand-in"
        }
        var pending = pipes.map { (member: $0.member, read: $0.read, bytes: [UInt8]()) }
        for pipe in pipes { try? pipe.read.setNonBlocking() }  // EBADF only: then the read below fails
        while !pending.isEmpty {
            if let failure = spawn.failure { throw spawn.failureMessage(failure, comm: comm) }
            _ = FileDescriptor.poll(pending.map(\.read), milliseconds: 100)
            var next: [(member: Int, read: FileDescriptor, bytes: [UInt8])] = []
            for var entry in pending {
                var ended = false
                var chunk = [UInt8](repeating: 0, count: 4096)
                while true {
                    let n: Int
                    do {
                        n = try chunk.withUnsafeMutableBytes { (raw) throws(Errno) in try entry.read.read(into: raw) }
                    } catch {
                        break  // EAGAIN: nothing more now
                    }
                    if n == 0 { ended = true; break }
                    entry.bytes += chunk[0..<n]
                    if Restorer.endsWithOKLine(entry.bytes) { break }
                }
                // Whole lines only: the last may still be arriving.
                let whole = entry.bytes.lastIndex(of: UInt8(ascii: "\n")).map { Array(entry.bytes[...$0]) } ?? []
                let lines = StatusLine.parse(whole)
                let pid = spawn.layout.members[entry.member].pid
                let failed = lines.contains { if case .error = $0 { true } else if case .corrupt = $0 { true } else { false } }
                if lines.contains(.ok) {
                    for case .warning(let text) in lines { printError("stasis: restore warning: process \(pid): \(text)") }
                } else if ended || failed {
                    // A restorer's (or its pager's) last word: a lazy pager may hold the pipe open after it.
                    if let failure = spawn.failure { throw spawn.failureMessage(failure, comm: comm) }
                    throw memberFailure(lines, pid: pid, comm: comm(entry.member), path: tree.directory + "/\(pid).stasis")
                } else {
                    next.append(entry)
                }
            }
            pending = next
        }
    }

    /// A restorer that ended without "ok": exit 3 for a damaged image, else 9; the process named.
    static func memberFailure(_ lines: [StatusLine], pid: pid_t, comm: String, path: String) -> LauncherError {
        for case .corrupt(let text) in lines {
            return LauncherError(.badImage, "cannot restore the tree: \(path) is damaged: \(text); restart an older checkpoint (`stasis verify` checks an image)")
        }
        for case .error(let text) in lines {
            return LauncherError(.restoreFailed, "cannot restore the tree: process \(pid) (\(comm)) failed: \(text)")
        }
        return LauncherError(.restoreFailed, "cannot restore the tree: process \(pid) (\(comm)) ended without a report")
    }

    /// Processes that were stopped are stopped now, while their restorers wait for the go (not earlier:
    /// their parent's restorer, installing its SIGCHLD action, would flush the SIGCHLD of the stop). A
    /// parent of the tree then holds that SIGCHLD (unless its SIGCHLD action is SIG_IGN or has
    /// SA_NOCLDSTOP) and drains it after the go, before its own pending signals are queued again.
    static func stopStoppedMembers(_ spawn: TreeSpawn, _ tree: TreeImages) throws(LauncherError) {
        let deadline = monotonicSeconds() + 10
        for member in spawn.layout.members {
            guard let index = member.process, tree.manifest.processes[index].state == .stopped else { continue }
            guard let host = spawn.hostPID(member.pid) else {
                throw LauncherError(.restoreFailed, "cannot restore the tree: process \(member.pid) is gone")
            }
            do {
                try ProcessControl.send(SIGSTOP, to: host)
            } catch {
                throw LauncherError(.restoreFailed, "cannot restore the tree: cannot stop process \(member.pid): \(error)")
            }
            var parent: TreeImages.Member?
            if member.creator >= 0 { parent = tree.members.first { $0.process.pid == spawn.layout.members[member.creator].pid } }
            let notifies = parent.map { parent in
                let action = parent.image.signalActions.actions[Int(SIGCHLD) - 1]
                return action.handler != 1 /* SIG_IGN */ && action.flags & UInt64(SA_NOCLDSTOP) == 0
            } ?? false
            let parentHost = parent.flatMap { spawn.hostPID($0.process.pid) }
            while true {
                let state = statFields(host)?.first.map(String.init) ?? "gone"
                let parentTold = !notifies || parentHost.map { hasPendingChildSignal($0) } == true
                if state == "T" && parentTold { break }
                if monotonicSeconds() > deadline {
                    let why = state != "T" ? "did not stop (state \(state))" : "stopped, but its parent never got the SIGCHLD"
                    throw LauncherError(.restoreFailed, "cannot restore the tree: process \(member.pid) \(why) within 10 s")
                }
                usleep(1000)
            }
        }
    }

    /// SIGCHLD in the process's shared pending set (ShdPnd of /proc/PID/status).
    static func hasPendingChildSignal(_ pid: pid_t) -> Bool {
        guard let status = try? readFile("/proc/\(pid)/status") else { return false }  // gone: the reports say why
        for line in String(decoding: status, as: UTF8.self).split(separator: "\n") where line.hasPrefix("ShdPnd:") {
            return hexMask(line.dropFirst(7)) & (1 << (UInt64(SIGCHLD) - 1)) != 0
        }
        return false
    }

    /// The root's group takes the terminal while the tree runs, when the root leads its own group in
    /// restart's session and restart is in the terminal's foreground (Ctrl-C then reaches the job).
    /// `hostPID`: the root's PID on the host (its group's number there).
    static func takeTerminal(_ root: TreeProcessRecord, hostPID: pid_t) -> (fd: Int32, programGroup: pid_t, ownGroup: pid_t)? {
        guard root.pgid == root.pid, root.sid != root.pid, isatty(0) != 0, tcgetpgrp(0) == getpgrp() else { return nil }
        do {
            try ProcessControl.setForegroundGroup(hostPID, of: 0)
        } catch {
            printError("stasis: warning: cannot give the terminal to the restored process group \(root.pid): \(error)")
            return nil
        }
        return (0, hostPID, getpgrp())
    }

    // ---- small helpers ------------------------------------------------------------------------------

    /// A /proc/PID/status mask ("\t0000000000010000").
    static func hexMask(_ text: Substring) -> UInt64 {
        UInt64(String(text.filter { $0.isHexDigit }), radix: 16) ?? 0
    }

    static func makePipe() throws(LauncherError) -> (read: FileDescriptor, write: FileDescriptor) {
        do {
            return try FileDescriptor.pipe()
        } catch {
            throw LauncherError(.failure, "cannot create a pipe: \(error)")
        }
    }

    /// A pipe holding the key, for one restorer; returns its read end.
    static func keyPipeHolding(_ key: [UInt8]) throws(LauncherError) -> FileDescriptor {
        let pair = try makePipe()
        do {
            try pair.write.writeAllAndClose(key)
        } catch {
            pair.read.closeAfterError()
            throw LauncherError(.failure, "cannot pass the key to the restorer: \(error)")
        }
        return pair.read
    }

    static func emptyPlanFile() throws(LauncherError) -> FileDescriptor {
        let fd = stasis_make_memfd("stasis-restore-plan")
        guard fd >= 0 else { throw LauncherError(.failure, "cannot create the restore plan: \(Errno(rawValue: -fd))") }
        return FileDescriptor(rawValue: fd)
    }

    /// A member's restore plan: its chain's segments and checks (if incremental) and its shared objects.
    static func writePlan(_ file: FileDescriptor, _ chain: ImageChain, parentTargets: [Int32],
                          objects: [stasis_plan_object_t]) throws(LauncherError) {
        var segments: [stasis_page_segment_t] = []
        var checks: [stasis_plan_check_t] = []
        if chain.isIncremental {
            segments = try chain.pageSegments()
            // A tree's members are full images (Docs/ARCHITECTURE.md 2.7): no plan memory for decoded parents here.
            if segments.contains(where: { chain.compressedArea(of: $0) != nil }) {
                throw LauncherError(.badImage, "\(chain.members[0].source.path): a tree member inherits pages from a compressed image, which tree restarts do not read")
            }
            checks = chain.contributingAreas(segments).map { member, area in
                stasis_plan_check_t(file_offset: area.dataOffset, bytes: area.dataBytes, image: UInt32(member - 1), crc: area.dataCRC)
            }
        }
        let bytes = planBytes(segments: segments, checks: checks, parents: chain.members.count - 1,
                              imageFDs: parentTargets, objects: objects)
        do {
            try file.writeAll(bytes, at: 0)
        } catch {
            throw LauncherError(.failure, "cannot write the restore plan: \(error)")
        }
    }
}
