import CStasisSpawn
import Glibc
import StasisImage
import StasisSystem

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
        try checkVDSO(image)
        let size = stasis_cpu_xsave_size()
        if image.header.xsaveSize > max(size, 512) + 4 {
            throw LauncherError(.incompatibleMachine,
                                "the image's xsave area (\(image.header.xsaveSize) bytes) is larger than this CPU's (\(size))")
        }
    }
}

extension MachineCheck {
    /// The restored code holds pointers into the old vDSO: this kernel's [vvar], [vvar_vclock] and
    /// [vdso] must have the same sizes and spacing as the image's, so that the restorer can move them
    /// there (checked here too, so that a mismatch is exit 4 before anything starts).
    static func checkVDSO(_ image: Image) throws(LauncherError) {
        let names: [(MemoryAreaRecord.Flags, String)] = [(.vdso, "[vdso]"), (.vvar, "[vvar]"), (.vvarVclock, "[vvar_vclock]")]
        var saved: [String: (UInt64, UInt64)] = [:]
        for area in image.memoryAreas {
            for (flag, name) in names where area.flags.contains(flag) { saved[name] = (area.start, area.end) }
        }
        guard !saved.isEmpty, let maps = try? readFile("/proc/self/maps") else { return }  // unreadable: the restorer checks
        var here: [String: (UInt64, UInt64)] = [:]
        for line in String(decoding: maps, as: UTF8.self).split(separator: "\n") {
            guard let name = line.split(separator: " ").last.map(String.init), names.contains(where: { $0.1 == name }) else { continue }
            let range = line.split(separator: " ")[0].split(separator: "-")
            guard range.count == 2, let start = UInt64(range[0], radix: 16), let end = UInt64(range[1], radix: 16) else { continue }
            here[name] = (start, end)
        }
        let savedBase = saved.values.map(\.0).min() ?? 0
        let hereBase = here.values.map(\.0).min() ?? 0
        let same = Set(saved.keys) == Set(here.keys) && saved.allSatisfy { name, range in
            guard let mine = here[name] else { return false }
            return range.1 - range.0 == mine.1 - mine.0 && range.0 - savedBase == mine.0 - hereBase
        }
        guard same else {
            throw LauncherError(.incompatibleMachine,
                                "this kernel's vDSO layout differs from the one the image was taken on (kernel \(image.header.kernelRelease)); restart on that kernel")
        }
    }
}

/// Files the image refers to must still be the ones it saw.
enum FileCheck {
    /// Mapped files (libraries, the executable) and files open read-only must be unchanged (size and mtime);
    /// files open for writing may have grown since (the program kept writing before it was killed).
    /// With `allowChanged`, a changed file is a warning on stderr instead (a missing one still fails).
    /// The fds in `replaced` (stasis restart --fd) are not checked: restart does not open their files.
    static func check(_ image: Image, allowChanged: Bool = false, replaced: Set<Int32> = []) throws(LauncherError) {
        guard let directory = try? fileStatus(image.process.cwd), directory.st_mode & S_IFMT == S_IFDIR else {
            throw LauncherError(.filesChanged, "the program's working directory \(image.process.cwd) is missing; create it to restart")
        }
        // A file is checked (and warned about) once, however many areas map it: a program's own
        // executable alone has four or five.
        var checked = Set<String>()
        for area in image.memoryAreas where area.isFileBacked && area.fileSize != 0 || (area.isFileBacked && area.inode != 0) {
            guard checked.insert(area.path).inserted else { continue }
            try unchanged(area.path, size: area.fileSize, mtime: area.fileModificationNanoseconds, what: "mapped file",
                          allowChanged: allowChanged)
        }
        for fd in image.fileDescriptors where fd.kind == .regular && !replaced.contains(fd.fd) {
            do {
                _ = try fileStatus(fd.path)
            } catch {
                throw LauncherError(.filesChanged, "fd \(fd.fd): \(fd.path) is missing (\(error)); restore it, or give fd \(fd.fd) another file with --fd \(fd.fd)=PATH")
            }
            if fd.statusFlags & UInt32(O_ACCMODE) == UInt32(O_RDONLY) && checked.insert(fd.path).inserted {
                try unchanged(fd.path, size: fd.size, mtime: fd.modificationNanoseconds, what: "fd \(fd.fd):",
                              allowChanged: allowChanged)
            }
        }
    }

    static func unchanged(_ path: String, size: UInt64, mtime: Int64, what: String, allowChanged: Bool) throws(LauncherError) {
        let st: stat
        do {
            st = try fileStatus(path)
        } catch {
            throw LauncherError(.filesChanged, "\(what) \(path) is missing (\(error)); restore it to restart")
        }
        let modified = Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec)
        if UInt64(st.st_size) != size || modified != mtime {
            // Say what changed: the size, or only the modification time (touched, or rewritten in place).
            let change = UInt64(st.st_size) != size ? "size \(size) -> \(st.st_size)"
                : "same size, modified at \(formatTime(modified, fraction: true)), was \(formatTime(mtime, fraction: true))"
            let message = "\(what) \(path) changed since the checkpoint (\(change))"
            if allowChanged {
                printError("stasis: warning: \(message); going on (--allow-changed-files)")
                return
            }
            throw LauncherError(.filesChanged, message + "; restore the original, or pass --allow-changed-files")
        }
    }
}
