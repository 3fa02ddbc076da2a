import CStasisSpawn
import Glibc
import StasisImage

/// Checks that this machine can run the image's saved CPU state (the kernel patches' header_arch check).
enum MachineCheck {
    static let featureNames: [(UInt64, String)] = [
        (1 << 0, "x87"), (1 << 1, "SSE"), (1 << 2, "AVX"), (1 << 3, "MPX bound registers"), (1 << 4, "MPX bound config"),
        (1 << 5, "AVX-512 opmask"), (1 << 6, "AVX-512 ZMM_Hi256"), (1 << 7, "AVX-512 Hi16_ZMM"), (1 << 9, "PKRU"),
        (1 << 17, "AMX tile config"), (1 << 18, "AMX tile data"),
    ]

    static func check(_ image: Image) throws(LauncherError) {
        let machine = stasis_cpu_xcr0()
        // Features the saved state uses (XSTATE_BV) and those enabled where it was taken.
        var used = image.header.xcr0
        for thread in image.threads { used |= thread.xstateFeatures }
        let missing = used & ~machine
        if missing != 0 {
            let names = featureNames.filter { missing & $0.0 != 0 }.map(\.1)
            let list = names.isEmpty ? "xsave features 0x" + String(missing, radix: 16) : names.joined(separator: ", ")
            throw LauncherError(.incompatibleMachine,
                                "this CPU lacks \(list), which the image's saved registers use; restart on a CPU that has them")
        }
        let size = stasis_cpu_xsave_size()
        if image.header.xsaveSize > max(size, 512) + 4 {
            throw LauncherError(.incompatibleMachine,
                                "the image's xsave area (\(image.header.xsaveSize) bytes) is larger than this CPU's (\(size))")
        }
    }
}

/// Files the image refers to must still be the ones it saw.
enum FileCheck {
    /// Mapped files (libraries, the executable) and files open read-only must be unchanged (size and mtime);
    /// files open for writing may have grown since (the program kept writing before it was killed).
    /// With `allowChanged`, a changed file is a warning on stderr instead (a missing one still fails).
    static func check(_ image: Image, allowChanged: Bool = false) throws(LauncherError) {
        for area in image.memoryAreas where area.isFileBacked && area.fileSize != 0 || (area.isFileBacked && area.inode != 0) {
            try unchanged(area.path, size: area.fileSize, mtime: area.fileModificationNanoseconds, what: "mapped file",
                          allowChanged: allowChanged)
        }
        for fd in image.fileDescriptors where fd.kind == .regular {
            var st = stat()
            guard stat(fd.path, &st) == 0 else {
                throw LauncherError(.filesChanged, "fd \(fd.fd): \(fd.path) is missing (\(String(cString: strerror(errno)))); restore it to restart")
            }
            if fd.statusFlags & UInt32(O_ACCMODE) == UInt32(O_RDONLY) {
                try unchanged(fd.path, size: fd.size, mtime: fd.modificationNanoseconds, what: "fd \(fd.fd):",
                              allowChanged: allowChanged)
            }
        }
    }

    static func unchanged(_ path: String, size: UInt64, mtime: Int64, what: String, allowChanged: Bool) throws(LauncherError) {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw LauncherError(.filesChanged, "\(what) \(path) is missing (\(String(cString: strerror(errno)))); restore it to restart")
        }
        let modified = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        if UInt64(st.st_size) != size || modified != mtime {
            let message = "\(what) \(path) changed since the checkpoint (size \(size) -> \(st.st_size))"
            if allowChanged {
                printError("stasis: warning: \(message); going on (--allow-changed-files)")
                return
            }
            throw LauncherError(.filesChanged, message + "; restore the original, or pass --allow-changed-files")
        }
    }
}
