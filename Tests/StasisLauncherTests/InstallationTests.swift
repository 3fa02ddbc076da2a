import StasisImage
import Testing
@testable import StasisLauncher

/// Where `stasis` looks for its agent and restorer: beside itself (a build directory), else in
/// ../lib/stasis (Scripts/install.sh, an unpacked tarball).
struct InstallationTests {
    @Test func buildDirectoryKeepsTheCompanionsBesideTheLauncher() {
        let files: Set<String> = ["/src/.build/debug/libStasisAgent.so", "/src/lib/stasis/libStasisAgent.so"]
        #expect(Installation.companionDirectory(executableDirectory: "/src/.build/debug", exists: files.contains)
                == "/src/.build/debug")
    }

    @Test func installedLauncherFindsThemInLibStasis() {
        let files: Set<String> = ["/usr/local/lib/stasis/libStasisAgent.so"]
        #expect(Installation.companionDirectory(executableDirectory: "/usr/local/bin", exists: files.contains)
                == "/usr/local/lib/stasis")
        #expect(Installation.companionDirectory(executableDirectory: "/bin", exists: { $0 == "/lib/stasis/libStasisAgent.so" })
                == "/lib/stasis")
    }

    @Test func withNeitherLayoutThePathsNameTheBuildLayout() {
        #expect(Installation.companionDirectory(executableDirectory: "/opt/x/bin", exists: { _ in false }) == "/opt/x/bin")
    }

    @Test(arguments: [("/usr/local/bin", "/usr/local"), ("/bin", ""), ("stasis", "."), ("/a/b/stasis", "/a/b")])
    func parentDropsTheLastComponent(_ path: String, _ parent: String) {
        #expect(Installation.parent(of: path) == parent)
    }

    @Test func versionLineNamesTheReleaseAndTheImageFormats() {
        let written = ImageHeader.currentVersion, read = ImageHeader.readableVersions
        let formats = "(image format \(written); reads \(read.lowerBound)-\(read.upperBound))"
        #expect(StasisVersion.line == "stasis \(StasisVersion.release) \(formats)")
    }
}
