import Glibc
import Testing
@testable import StasisLauncher

/// Exit codes are a contract (README.md): the numbers, and which failure of which command gets which.
/// Everything here fails before any process would be started.
struct ExitCodeTests {
    @Test func exitCodesAreTheDocumentedNumbers() {
        let documented: [(ExitCode, Int32)] = [
            (.success, 0), (.failure, 1), (.usage, 2), (.badImage, 3), (.incompatibleMachine, 4), (.filesChanged, 5),
            (.noSuchProcess, 6), (.checkpointFailed, 7), (.timeout, 8), (.restoreFailed, 9), (.permissionDenied, 10),
            (.signatureMismatch, 11), (.incompleteChain, 12), (.pidInUse, 13), (.tooManyDescriptors, 14), (.cannotExecute, 127),
        ]
        for (code, number) in documented { #expect(code.rawValue == number) }
    }

    @Test(arguments: [
        ([], 2), (["frobnicate"], 2), (["--version"], 0), (["--help"], 0), (["restart", "--help"], 0),
        (["run"], 2), (["run", "--bogus", "--", "true"], 2),
        (["checkpoint"], 2), (["checkpoint", "abc"], 2), (["checkpoint", "0"], 2), (["checkpoint", "--timeout", "-1", "1"], 2),
        (["checkpoint", "999999999"], 6),
        (["restart"], 2), (["restart", "a", "b"], 2), (["restart", "--interval", "0", "/nonexistent.stasis"], 2),
        (["restart", "--fd", "x=y", "/nonexistent.stasis"], 2), (["restart", "/nonexistent.stasis"], 3),
        (["restart", "/etc/hostname"], 3), (["restart", "/"], 3),
        (["inspect"], 2), (["inspect", "/nonexistent.stasis"], 3), (["inspect", "/etc/hostname"], 3),
        (["verify"], 2), (["verify", "--key", "/nonexistent.key", "x"], 2), (["verify", "/nonexistent.stasis"], 3),
        (["ls", "/nonexistent-directory"], 2),
        (["compact"], 2),
    ] as [([String], Int32)])
    func commandLinesExitWithTheirCode(_ arguments: [String], _ code: Int32) {
        #expect(stasisMain(arguments) == code)
    }
}
