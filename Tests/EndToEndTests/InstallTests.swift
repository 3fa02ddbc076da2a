import Glibc
import StasisImage
import Testing

/// `stasis`, `libStasisAgent.so` and `stasis-restorer` need nothing from the Swift toolchain, so that
/// an install (Scripts/install.sh) or an unpacked tarball (Scripts/package.sh) works on a node that
/// has none. To show it, a private mount namespace (`unshare -m`) puts an empty tmpfs over the
/// toolchain, and a counter is run, checkpointed, SIGKILLed and restarted in there, once with the
/// build directory's products (companions beside `stasis`) and once from an unpacked tarball (the
/// installed layout, bin/stasis + lib/stasis/). Both reuse the debug build: no release build here.
@Suite(.serialized, .enabled(if: Stasis.isBuilt, "run `swift build` first"))
struct InstallTests {
    @Test func productsLinkNoToolchainLibrary() throws {
        try #require(access("/usr/bin/ldd", X_OK) == 0, "needs ldd")
        let scratch = Scratch()
        let directory = try #require(Stasis.buildDirectory)
        for product in ["stasis", "libStasisAgent.so", "stasis-restorer"] {
            let log = scratch.file(product + ".ldd")
            _ = system("/usr/bin/ldd '\(directory)/\(product)' >'\(log)' 2>&1")  // 1 for a static executable
            let text = try String(contentsOfFile: log)
            #expect(!text.contains("libswift") && !text.contains("not found"), "\(product): \(text)")
            if let runtime = HiddenToolchain.runtimeDirectory {
                #expect(!text.contains(runtime), "\(product) loads from the toolchain: \(text)")
            }
        }
    }

    @Test func versionNamesTheImageFormatTheAgentWrites() throws {
        let scratch = Scratch()
        let (code, output) = try Stasis.run(["--version"], in: scratch.path)
        #expect(code == 0)
        let read = ImageHeader.readableVersions
        let formats = "(image format \(ImageHeader.currentVersion); reads \(read.lowerBound)-\(read.upperBound))"
        #expect(output.hasPrefix("stasis ") && output.contains(formats), "\(output)")
    }

    /// `stasis` stays a dynamically linked program (only its Swift runtime is static), so a `stasis`
    /// that a program under `stasis run` starts inherits the agent like any child: a job script's own
    /// `stasis checkpoint $$` is part of the tree it checkpoints (a static executable would refuse it).
    @Test(.timeLimit(.minutes(1)))
    func jobScriptCheckpointsItselfWithTheLauncherInItsTree() throws {
        let scratch = Scratch()
        let script = "sleep 0.2; '\(Stasis.launcher)' checkpoint $$; echo \"checkpoint exited $?\""
        let (code, output) = try Stasis.run(["run", "--dir", scratch.path, "--", "/bin/sh", "-c", script], in: scratch.path)
        #expect(code == 0 && output.contains("checkpoint exited 0"), "\(output)")
        let image = output.split(separator: "\n").first { $0.hasSuffix(".stasis") }.map(String.init) ?? ""
        #expect(access(image, R_OK) == 0, "no image in: \(output)")
    }

    @Test(.timeLimit(.minutes(3)), .enabled(if: HiddenToolchain.isPossible, HiddenToolchain.requirement))
    func buildProductsRunCheckpointAndRestartWithTheToolchainHidden() throws {
        let scratch = Scratch()
        try cycleWithHiddenToolchain(launcher: Stasis.launcher, scratch: scratch)
    }

    @Test(.timeLimit(.minutes(3)), .enabled(if: HiddenToolchain.isPossible, HiddenToolchain.requirement))
    func packageWorksUnpackedAnywhereWithTheToolchainHidden() throws {
        let scratch = Scratch()
        let directory = try #require(Stasis.buildDirectory)
        let (code, output) = try runTool(Stasis.packageRoot + "/Scripts/package.sh",
                                         ["--from", directory, "--output", scratch.path], scratch: scratch)
        try #require(code == 0, "package.sh: \(output)")
        let tarball = output.split(separator: "\n").last.map(String.init) ?? ""
        let name = tarball.split(separator: "/").last.map(String.init) ?? ""
        #expect(name.hasPrefix("stasis-") && name.hasSuffix("-linux-x86_64.tar.gz"), "\(tarball)")
        let versionLine = try Stasis.run(["--version"], in: scratch.path).output
        let version = versionLine.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
        #expect(name == "stasis-\(version)-linux-x86_64.tar.gz", "named after `stasis --version`")
        let place = scratch.file("some/where/else")
        let unpack = "mkdir -p '\(place)' && tar -C '\(place)' -xzf '\(tarball)'"
        let (untarred, tarOutput) = try runTool("/bin/sh", ["-c", unpack], scratch: scratch)
        try #require(untarred == 0, "tar: \(tarOutput)")
        let root = place + "/" + String(name.dropLast(".tar.gz".count))
        for file in ["bin/stasis", "lib/stasis/libStasisAgent.so", "lib/stasis/stasis-restorer", "README.md"] {
            #expect(access(root + "/" + file, R_OK) == 0, "\(file) is in the tarball")
        }
        try cycleWithHiddenToolchain(launcher: root + "/bin/stasis", scratch: scratch,
                                     agent: root + "/lib/stasis/libStasisAgent.so")
    }

    /// Runs the counter under `launcher`, checkpoints, SIGKILLs and restarts it, SIGTERMs the restored
    /// counter and expects its PASS, all in a private mount namespace whose toolchain directory is an
    /// empty tmpfs. `agent`: the preloaded library the program must see (when not beside `launcher`).
    func cycleWithHiddenToolchain(launcher: String, scratch: Scratch, agent: String? = nil) throws {
        let counter = try compileFixture("counter", into: scratch.path)
        let input = scratch.file("input.txt")
        try "12345678".write(toFile: input)
        let script = scratch.file("cycle.sh")
        try HiddenToolchain.cycleScript.write(toFile: script)
        let images = scratch.file("images")
        mkdir(images, 0o700)
        let log = scratch.file("cycle.log")
        let child = try ChildProcess("/usr/bin/unshare", ["-m", "--propagation", "private", "/bin/sh", script,
                                                          launcher, counter, input, images],
                                     environment: ["HIDE=" + HiddenToolchain.hidden.joined(separator: " ")], outputPath: log)
        let termination = try child.wait(seconds: 150)
        let text = (try? String(contentsOfFile: log)) ?? ""
        let counterOutput = (try? String(contentsOfFile: images + "/counter.out")) ?? ""
        let restartLog = (try? String(contentsOfFile: images + "/restart.log")) ?? ""
        #expect(termination == .exited(0), "cycle: \(text)\nrestart: \(restartLog)")
        #expect(text.contains("restart exited 0"), "cycle: \(text)\nrestart: \(restartLog)")
        #expect(counterOutput.contains("PASS") && !counterOutput.contains("FAIL"), "counter: \(counterOutput)")
        if let agent { #expect(text.contains("LD_PRELOAD=" + agent), "cycle: \(text)") }
    }

    /// Runs a script or tool to completion; exit code and combined output.
    func runTool(_ path: String, _ arguments: [String], scratch: Scratch) throws -> (code: Int32, output: String) {
        let log = scratch.file("tool-\(UInt32.random(in: 0...UInt32.max)).log")
        let child = try ChildProcess(path, arguments, outputPath: log)
        let termination = try child.wait(seconds: 120)
        let output = (try? String(contentsOfFile: log)) ?? ""
        guard case .exited(let code) = termination else { return (128, output) }
        return (code, output)
    }
}

/// The Swift toolchain as this test process sees it, and how to hide it.
enum HiddenToolchain {
    /// The directory of the Swift runtime libraries this test runner loaded (…/usr/lib/swift/linux).
    static let runtimeDirectory: String? = {
        guard let maps = try? String(contentsOfFile: "/proc/self/maps") else { return nil }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/"), line.hasSuffix("/libswiftCore.so") else { continue }
            let path = line[slash...]
            return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        }
        return nil
    }()

    /// What the namespace covers with an empty tmpfs: the whole toolchain when it has a directory of
    /// its own (/opt/swift), else only its runtime directory (a toolchain in /usr).
    static let hidden: [String] = {
        guard let runtime = runtimeDirectory else { return [] }
        let suffix = "/usr/lib/swift/linux"
        if runtime.hasSuffix(suffix) {
            let root = String(runtime.dropLast(suffix.count))
            if !root.isEmpty && root != "/usr" { return [root] }
        }
        return [runtime]
    }()

    static let requirement: Comment = """
        needs util-linux unshare and the right to mount a tmpfs in a private mount namespace (root), \
        and a toolchain outside the package
        """

    /// Whether `unshare -m` and a tmpfs mount work here, and the build is not inside what is hidden.
    static let isPossible: Bool = {
        guard !hidden.isEmpty, access("/usr/bin/unshare", X_OK) == 0 else { return false }
        if hidden.contains(where: { Stasis.packageRoot.hasPrefix($0 + "/") }) { return false }
        let probe = #"d=$(mktemp -d) && mount -t tmpfs -o size=1m none "$d"; s=$?; umount "$d" 2>/dev/null; rmdir "$d"; exit $s"#
        return system("/usr/bin/unshare -m --propagation private /bin/sh -c '\(probe)' >/dev/null 2>&1") == 0
    }()

    /// cycle.sh STASIS COUNTER INPUT DIR, with HIDE="DIR..." in the environment. Prints what it does;
    /// the counter's output goes to DIR/counter.out, the restart's to DIR/restart.log.
    static let cycleScript = #"""
        STASIS=$1 COUNTER=$2 INPUT=$3 DIR=$4
        for hide in $HIDE; do
            mount -t tmpfs -o size=1m,mode=0755 stasis-hidden "$hide" || { echo "FAIL cannot mount over $hide"; exit 1; }
            [ -z "$(ls -A "$hide")" ] || { echo "FAIL $hide is still visible"; exit 1; }
            echo "hidden: $hide"
        done
        "$STASIS" --version || { echo "FAIL stasis --version"; exit 1; }
        "$STASIS" run -- /bin/sh -c 'echo "LD_PRELOAD=$LD_PRELOAD"' || { echo "FAIL stasis run"; exit 1; }
        "$STASIS" run --dir "$DIR" -- "$COUNTER" 8 "$INPUT" > "$DIR/counter.out" 2>&1 &
        RUN=$!
        tries=0
        until grep -q READY "$DIR/counter.out"; do
            tries=$((tries + 1)); [ $tries -lt 1000 ] || { echo "FAIL no READY"; kill -9 $RUN; exit 1; }
            sleep 0.02
        done
        IMAGE=$("$STASIS" checkpoint "$RUN" | tail -n 1)
        [ -f "$IMAGE" ] || { echo "FAIL checkpoint gave '$IMAGE'"; kill -9 $RUN; exit 1; }
        echo "image: $IMAGE"
        kill -9 $RUN
        wait $RUN
        "$STASIS" restart --pid-file "$DIR/restored.pid" "$IMAGE" > "$DIR/restart.log" 2>&1 &
        RESTART=$!
        tries=0
        until [ -s "$DIR/restored.pid" ]; do
            kill -0 $RESTART 2>/dev/null || { echo "FAIL restart ended early"; exit 1; }
            tries=$((tries + 1)); [ $tries -lt 2000 ] || { echo "FAIL no restored pid"; kill -9 $RESTART; exit 1; }
            sleep 0.02
        done
        sleep 0.2
        kill -TERM "$(cat "$DIR/restored.pid")"
        wait $RESTART
        echo "restart exited $?"
        """#
}
