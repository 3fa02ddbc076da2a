import Glibc
import StasisImage
import StasisSystem

/// Room under RLIMIT_NOFILE for the program's descriptors. Restart holds each one the program had (its
/// source, at the lowest free number) plus a few of its own, and the child then places them at the
/// program's numbers with the restorer's just above: the highest number needed is about the program's
/// highest fd or count, plus a small constant. The soft limit is raised to the hard one when that is
/// short (the shell's 1024 while the program had raised its own); the restorer puts the program's own
/// limits back from the PROCESS record. Above the hard limit: a clear refusal, before anything is opened.
enum DescriptorLimit {
    /// Numbers restart needs beyond the program's own: the restorer's image, status, key, plan and
    /// parents, restart's own files and pipes, and the restorer's.
    static let margin = 48

    /// The number of descriptor numbers `images` need at once (a tree's members: all their sources).
    static func needed(_ images: [Image], extraDescriptors: Int = 0) -> Int {
        var count = 0, highest = 2
        for image in images {
            count += image.fileDescriptors.count
            highest = max(highest, Int(image.fileDescriptors.map(\.fd).max() ?? 2))
        }
        return max(highest + 1, count) + extraDescriptors + margin
    }

    /// Raises the soft limit to the hard one if `needed` is above it; throws when even the hard one is short.
    /// RLIM_INFINITY (glibc's macro is -1, which Swift cannot import as an rlim_t).
    static let unlimited = rlim_t.max

    static func ensure(_ needed: Int, descriptors: Int, highest: Int32) throws(LauncherError) {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }  // nothing to go on: let opens fail as they will
        if limit.rlim_cur == unlimited || limit.rlim_cur >= rlim_t(needed) { return }
        if limit.rlim_max != unlimited && limit.rlim_max < rlim_t(needed) {
            throw LauncherError(.tooManyDescriptors, "the program had \(descriptors) descriptors (highest fd \(highest)); restart needs about \(needed) descriptor numbers but the hard limit (ulimit -Hn) is \(limit.rlim_max): raise it (as root, or in /etc/security/limits.conf) and restart again")
        }
        let soft = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            throw LauncherError(.tooManyDescriptors, "the program had \(descriptors) descriptors (highest fd \(highest)); restart needs about \(needed) descriptor numbers, the soft limit is \(soft) and raising it failed: \(Errno.current)")
        }
    }

    static func ensure(for images: [Image], extraDescriptors: Int = 0) throws(LauncherError) {
        let count = images.reduce(0) { $0 + $1.fileDescriptors.count }
        let highest = images.compactMap { $0.fileDescriptors.map(\.fd).max() }.max() ?? 2
        try ensure(needed(images, extraDescriptors: extraDescriptors), descriptors: count, highest: highest)
    }
}
