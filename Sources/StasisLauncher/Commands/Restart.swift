import CStasisABI
import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

/// `stasis restart IMAGE`: validate everything, reopen the descriptors, start the restorer as a child
/// (with the original PID when permitted and free), forward signals, and exit as the program does.
///
/// Algorithm (Docs/ARCHITECTURE.md 3.1-3.5; each step a function below or in Restart/):
///   1. options, --fd overrides                    RestartOptions, DescriptorOverride.parse
///   2. decode, owner, chain, CPU, files           checkImage (Ownership, Chain, Machine)
///   3. --key: check the signature, key pipe       passKey
///   4. restore plan (incremental), fd plan        restorePlan, FileDescriptorPlan
///   5. block forwarded signals, spawn             Restorer.start (clone3 set_tid in CStasisSpawn)
///   6. status pipe up to "ok"                     Restorer.awaitReport
///   7. --pid-file, forward signals, exit status   SignalForwarder
enum RestartCommand {
    static let help = """
        usage: stasis restart [--pid-file F] [--allow-changed-files] [--key FILE] [--interval D [--dir DIR]] [--eager]
                              [--no-namespace] [--fd N=PATH | --fd N=inherit]... IMAGE

        Brings the checkpointed program back where it was, in the foreground; the exit status is the
        program's. The original PID and thread ids are reused on the host when they are free and the
        caller may choose PIDs (root or CAP_CHECKPOINT_RESTORE); otherwise the program comes back with
        them in a new PID namespace (and a user namespace when not root; /proc there is its own), and
        stderr says so with its PID on the host.
          --pid-file F             write the restored program's PID (on the host) to F
          --no-namespace           no PID namespace: when the host's PIDs cannot be had, new ones (thread
                                   ids patched; mutexes held across the checkpoint keep their old owners)
          --key FILE               refuse the image unless its HMAC-SHA256 signature matches FILE's key;
                                   the restored program keeps signing its images with it
          --interval D             checkpoint the restored program every D (90s, 15m, 2h), into --dir or the
                                   program's own image directory
          --eager                  read every page in before the program runs again. By default large
                                   areas come back lazily: the program runs at once and a pager process
                                   brings pages in as it touches them and the rest in the background
                                   (it keeps the image open until then, so deleting the image is safe;
                                   use --eager for images on a network file system that may vanish, or
                                   to have all memory in place before anything runs). Lazy restart
                                   needs root or CAP_SYS_PTRACE (or vm.unprivileged_userfaultfd=1);
                                   otherwise restart is eager and says so
          --allow-changed-files    go on when a file the program had open or mapped changed since the
                                   checkpoint (a warning per file); by default that refuses the restart
          --fd N=PATH              the program's fd N is PATH instead of what it was (a log file that has
                                   been moved or rotated): opened in the mode the program had (append stays
                                   append; created if missing when the program wrote to it; never
                                   truncated), at the saved offset if PATH is that long, else at its end.
                                   An fd that shared its open file with N (2>&1) gets PATH too
          --fd N=inherit           the program's fd N is this process's own fd N (`3>>new.log`, a pipe)
        --fd may be given once per N; N must be an fd the program had.
        Signals sent to this process are forwarded to the program.

        IMAGE may be a process tree's checkpoint (a directory holding `tree`): every process comes back
        with its parent, process group, session and original PID (in a PID namespace when the host's
        cannot be had; with --no-namespace that is refused), zombies as zombies, stopped ones stopped;
        none runs before all are restored. --pid-file gets the root's PID, --fd applies to the root's fds, and the
        exit status is the root's.
        """

    static func main(_ arguments: [String]) throws(LauncherError) -> Int32 {
        guard let options = try RestartOptions(arguments) else {
            printOut(help)
            return 0
        }
        let overrides = try DescriptorOverride.parse(options.descriptorOverrides)  // before restart opens fds of its own
        if TreeDirectory.isDirectory(options.imagePath) { return try restartTree(options, overrides: overrides) }
        let source = try FileImageSource(path: options.imagePath)
        let (image, chain) = try checkImage(source, options: options, overrides: overrides)
        try DescriptorLimit.ensure(for: [image], extraDescriptors: chain.members.count)  // before restart opens them
        let keyPipe = try options.keyPath.map { (keyPath) throws(LauncherError) in try passKey(keyPath, image, source) }
        let planFiles = chain.isIncremental ? try restorePlan(chain) : nil
        let planFile = planFiles?.plan
        let restorer = Installation.restorer
        guard FileSystem.isAccessible(restorer, X_OK) else {
            throw LauncherError(.failure, "restorer not found at \(restorer); build with `swift build` first")
        }
        let status: (read: FileDescriptor, write: FileDescriptor)
        do {
            status = try FileDescriptor.pipe()
        } catch {
            throw LauncherError(.failure, "cannot create a pipe: \(error)")
        }
        var extra: [FileDescriptor] = []
        if let planFile { extra = [planFile] + chain.members.dropFirst().map(\.source.descriptor) }
        if let unpacked = planFiles?.unpacked { extra.append(unpacked) }  // the plan's last image
        let plan = try FileDescriptorPlan(image: image, imageFD: source.descriptor, statusFD: status.write,
                                          keyFD: keyPipe, imageSource: source, extraDescriptors: extra,
                                          overrides: overrides)
        if let keyPipe { try closeChecked(keyPipe, "the key pipe") }  // the plan holds its own copy
        if let planFile {
            // The restorer knows the parents by the numbers it will have for them.
            try writePlanTargets(planFile, Array(plan.extraTargets.dropFirst()))
        }

        // Block the forwarded signals and SIGCHLD before the child exists: the forwarder collects them,
        // and the child starts with them blocked until its sigreturn installs the program's mask.
        let blocked = SignalForwarder.blockForwardedSignals()
        var arguments = RestorerArguments(imageFD: plan.imageTarget, statusFD: plan.statusTarget)
        arguments.keyFD = plan.keyTarget
        arguments.planFD = plan.extraTargets.first ?? -1
        arguments.lazy = !options.eager
        arguments.pagerDelayMilliseconds = RestorerArguments.pagerDelay(
            fromEnvironment: ProcessControl.environmentValue(STASIS_ENV_PAGER_DELAY_MS))
        let started = Restorer.start(restorer, arguments: arguments, plan: plan, image: image, namespaces: !options.noNamespace)
        plan.closeAll()
        withExtendedLifetime(chain) {}  // the parents' descriptors stay open until the child has its copies
        let restored: Restorer.Started
        do {
            restored = try started.get()
        } catch {
            planFile?.closeAfterError()
            status.write.closeAfterError()
            status.read.closeAfterError()
            throw error
        }
        // The child has its copies. Ours of the status pipe's write end must go for EOF to come.
        if let planFile { try closeChecked(planFile, "the restore plan") }
        try closeChecked(status.write, "the status pipe")
        try Restorer.awaitReport(from: status.read, child: restored.child, imagePath: options.imagePath)
        if let note = restored.note { printError(note) }
        if let pidFile = options.pidFile { try writePIDFile(pidFile, restored.program) }
        var checkpointArguments: [String] = []
        if let dir = options.directory { checkpointArguments += ["--dir", dir] }
        if let key = options.keyPath { checkpointArguments += ["--key", key] }
        var forwarder = SignalForwarder(program: restored.program, blocked: blocked, interval: options.interval,
                                        checkpointArguments: checkpointArguments, laterStatus: [status.read])
        forwarder.namespace = restored.namespace
        return forwarder.run()
    }

    /// Decodes the image and makes every check that needs no process: owner (also of each parent),
    /// the chain of an incremental image (with --key, each parent's signature), CPU and files.
    static func checkImage(_ source: FileImageSource, image decoded: Image? = nil, options: RestartOptions,
                           overrides: [Int32: DescriptorOverride]) throws(LauncherError) -> (Image, ImageChain)
    {
        let image: Image
        if let decoded { image = decoded } else { image = try source.decode() }
        try checkOwnership(image, source)
        // An incremental image: its parents, checked like it, and where each inherited page is.
        let key = try readKeyFile(ifGiven: options.keyPath)  // once, for every parent
        let chain = try ImageChain.load(image, source: source) { parent, parentSource throws(LauncherError) in
            try checkOwnership(parent, parentSource)
            if let key { try checkSignature(parent, parentSource, key: key) }
        }
        try MachineCheck.check(image)
        try FileCheck.check(image, allowChanged: options.allowChangedFiles,
                            replaced: try DescriptorOverride.replaced(overrides, in: image))
        return (image, chain)
    }

    /// --key: the image's signature must match; then the key goes to the restorer through a pipe
    /// (at most 4000 bytes: fits the pipe), which puts it back into the agent's scratch memory.
    /// Returns the pipe's read end.
    static func passKey(_ keyPath: String, _ image: Image, _ source: FileImageSource) throws(LauncherError) -> FileDescriptor {
        let key = try readKeyFile(keyPath)
        try checkSignature(image, source, key: key)
        let pair: (read: FileDescriptor, write: FileDescriptor)
        do {
            pair = try FileDescriptor.pipe()
        } catch {
            throw LauncherError(.failure, "cannot create a pipe: \(error)")
        }
        do {
            try pair.write.writeAllAndClose(key)  // closes on failure too
        } catch {
            pair.read.closeAfterError()
            throw LauncherError(.failure, "cannot pass the key to the restorer: \(error)")
        }
        return pair.read
    }

    /// Restart never raises privileges: an image must be the caller's (file and process), unless root.
    static func checkOwnership(_ image: Image, _ source: FileImageSource) throws(LauncherError) {
        let caller = getuid()
        let owner = (try? source.descriptor.status().st_uid) ?? caller  // fstat of an open fd does not fail here
        if let refusal = ownershipRefusal(caller: caller, fileOwner: owner, path: source.path, process: image.process) {
            throw refusal
        }
    }

    /// Why `caller` may not restart an image file owned by `fileOwner` of `process`; nil if it may.
    static func ownershipRefusal(caller: uid_t, fileOwner: uid_t, path: String, process p: ProcessRecord) -> LauncherError? {
        guard caller != 0 else { return nil }
        guard fileOwner == caller else {
            return LauncherError(.permissionDenied, "\(path) belongs to uid \(fileOwner); only its owner or root may restart it")
        }
        guard p.effectiveCapabilities == 0 else {
            return LauncherError(.permissionDenied,
                                 "the image is of a process with capabilities (0x\(String(p.effectiveCapabilities, radix: 16))); only root may restart it")
        }
        guard p.uid == caller, p.euid == caller else {
            return LauncherError(.permissionDenied,
                                 "the image is of a process with uid \(p.uid)/euid \(p.euid); restarting it as uid \(caller) is refused")
        }
        return nil
    }
}

/// `stasis restart`'s command line, checked before anything is opened.
struct RestartOptions {
    static let valued: Set<String> = ["--pid-file", "--key", "--interval", "--dir", "--fd"]
    static let flags: Set<String> = ["--help", "--allow-changed-files", "--eager", "--no-namespace"]

    var imagePath: String
    var pidFile: String?
    var keyPath: String?
    var directory: String?
    var interval: Double?
    var eager: Bool
    var allowChangedFiles: Bool
    /// --no-namespace: new PIDs (patched TIDs) rather than a PID namespace when the host's can't be had.
    var noNamespace: Bool
    /// The --fd values as given (DescriptorOverride.parse checks them).
    var descriptorOverrides: [String]

    /// nil for --help.
    init?(_ arguments: [String]) throws(LauncherError) {
        let options = try OptionParser(arguments, valued: Self.valued, flags: Self.flags, command: "restart")
        if options.flags.contains("--help") { return nil }
        guard options.positional.count == 1 else {
            throw LauncherError(.usage, "restart needs one IMAGE; usage: stasis restart [--pid-file F] IMAGE")
        }
        imagePath = options.positional[0]
        pidFile = options.values["--pid-file"]
        keyPath = options.values["--key"]
        directory = options.values["--dir"]
        // Checked here, before anything is restored (it was once checked after the program was back).
        interval = try options.values["--interval"].map { (text) throws(LauncherError) in try parseInterval(text) }
        eager = options.flags.contains("--eager")
        allowChangedFiles = options.flags.contains("--allow-changed-files")
        noNamespace = options.flags.contains("--no-namespace")
        descriptorOverrides = options.allValues["--fd"] ?? []
    }
}

/// Closes a descriptor on a success path, where a close error is reported (delayed write errors).
func closeChecked(_ fd: FileDescriptor, _ what: String) throws(LauncherError) {
    do {
        try fd.close()
    } catch {
        throw LauncherError(.failure, "cannot close \(what): \(error)")
    }
}
