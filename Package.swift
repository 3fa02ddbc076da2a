// swift-tools-version: 6.0
import PackageDescription

// Layout (see Docs/ARCHITECTURE.md):
//   CStasisABI      header-only: the image's C layout and raw syscalls, shared by every part
//   CStasisShim     C half of libStasisAgent.so: constructor, signal entry, stack switch
//   StasisAgent     Swift half of libStasisAgent.so: freeze window, /proc walk, image writer
//   StasisImage     pure Swift: records, encode/decode, validation (no syscalls)
//   StasisProc      pure Swift: allocation-free /proc parsers (the agent's, and the tests')
//   StasisSystem    typed syscall wrappers for the launcher and tests
//   CStasisSpawn    C for the launcher: clone3 with set_tid, fd plan, exec of the restorer
//   stasis-restorer freestanding static-pie C: remaps memory and sigreturns into the program
//   StasisLauncher  the launcher's commands, restart planning and checks (unit-tested)
//   stasis          the launcher's executable: Launcher/main.swift calls StasisLauncher
//   StasisImageSamples  test support (Tests/Samples): hand-built images and tree checkpoints
let package = Package(
    name: "Stasis",
    products: [
        .executable(name: "stasis", targets: ["stasis"]),
        .executable(name: "stasis-restorer", targets: ["stasis-restorer"]),
        .library(name: "StasisAgent", type: .dynamic, targets: ["StasisAgent"]),
    ],
    targets: [
        .target(name: "CStasisABI"),
        // -O2 in debug builds too: the copy-on-write writer compresses and CRCs pages in this C
        // (--compress at -O0 is ten times slower, and the end-to-end tests run debug builds).
        .target(name: "CStasisShim", dependencies: ["CStasisABI"], cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "CStasisSpawn", dependencies: ["CStasisABI"]),
        .target(name: "StasisImage", dependencies: ["CStasisABI"]),
        .target(name: "StasisProc", swiftSettings: [.unsafeFlags(["-wmo", "-num-threads", "1"])]),
        .target(name: "StasisSystem", dependencies: ["CStasisSpawn"]),
        .target(
            name: "StasisAgent",
            dependencies: ["CStasisShim", "CStasisABI", "StasisProc"],
            // -wmo: the freeze-window checks (@_noAllocation) need every function body visible.
            exclude: ["StaticLink"],
            swiftSettings: [.unsafeFlags(["-wmo", "-num-threads", "1"])],
            // StaticLink/libstdc++.so is a linker script that selects libstdc++.a (see the file).
            linkerSettings: [.unsafeFlags(["-static-stdlib",
                                           "-Xclang-linker", "-L\(Context.packageDirectory)/Sources/StasisAgent/StaticLink"])]
        ),
        .executableTarget(
            name: "stasis-restorer",
            dependencies: ["CStasisABI"],
            cSettings: [.unsafeFlags(["-ffreestanding", "-fno-stack-protector", "-fno-builtin", "-fPIE", "-fvisibility=hidden",
                                      "-fno-jump-tables", "-O2", "-mno-red-zone", "-fno-asynchronous-unwind-tables"])],
            linkerSettings: [.unsafeFlags(["-enable-experimental-feature", "Embedded", "-nostartfiles", "-Xclang-linker", "-nostdlib",
                                           "-Xclang-linker", "-static-pie", "-Xclang-linker", "-fuse-ld=lld",
                                           "-Xclang-linker", "-Wl,-e,rst_entry", "-Xclang-linker", "-Wl,-N",
                                           "-Xclang-linker", "-Wl,--no-dynamic-linker"])]
        ),
        .target(name: "StasisLauncher", dependencies: ["StasisImage", "StasisSystem", "CStasisSpawn", "CStasisABI"]),
        // The Swift runtime and libstdc++ linked in as for the agent: the launcher needs only libc, libm
        // and no library of the toolchain's, and starts in a third of the time (Docs/PERFORMANCE.md).
        // -static-libgcc: libgcc_s's constructor runs CPUID a dozen times, slow in a VM;
        // --no-export-dynamic: the dynamic symbol table shrinks from 2,200 symbols to 300;
        // -no-pie: no 20,000 relocations to apply (and pages to copy) at each start, 0.3 ms; the
        // launcher's own code then has no ASLR (its libraries, heap and stack still do).
        // Not -static-executable: glibc stays dynamic so that a `stasis` run inside a program under
        // `stasis run` gets the inherited agent preloaded like any other child (a job script's own
        // `stasis checkpoint $$` is then part of the tree it checkpoints).
        .executableTarget(
            name: "stasis", dependencies: ["StasisLauncher"], path: "Launcher",
            linkerSettings: [.unsafeFlags(["-static-stdlib", "-Xclang-linker", "-static-libgcc", "-Xlinker", "--no-export-dynamic",
                                           "-Xclang-linker", "-no-pie", "-Xclang-linker", "-L\(Context.packageDirectory)/Sources/StasisAgent/StaticLink"])]
        ),
        // Hand-built images and tree checkpoints that more than one test target uses.
        .target(name: "StasisImageSamples", dependencies: ["StasisImage"], path: "Tests/Samples"),
        .testTarget(name: "StasisImageTests", dependencies: ["StasisImage", "StasisImageSamples", "StasisProc", "CStasisABI"]),
        .testTarget(name: "StasisLauncherTests", dependencies: ["StasisLauncher", "StasisImage", "StasisImageSamples"]),
        .testTarget(name: "EndToEndTests", dependencies: ["StasisImage", "StasisSystem"]),
    ]
)
