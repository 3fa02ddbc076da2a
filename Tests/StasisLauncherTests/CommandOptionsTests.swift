import Testing
@testable import StasisLauncher

/// The command lines of checkpoint, verify, inspect, ls and compact (run and restart have their own suites).
struct CommandOptionsTests {
    @Test func parsesACheckpointRequest() throws {
        let command = try #require(try CheckpointOptions(["--dir", "/d", "--timeout", "2.5", "--json", "--incremental", "42"]))
        #expect(command.pid == 42 && command.timeout == 2.5)
        #expect(command.options.values["--dir"] == "/d")
        #expect(command.options.flags == ["--json", "--incremental"])
        #expect(try #require(try CheckpointOptions(["7"])).timeout == 600)
        #expect(try CheckpointOptions(["--help"]) == nil)
    }

    @Test(arguments: [[], ["1", "2"], ["-5"], ["0"], ["pid"], ["--timeout", "0", "1"], ["--timeout", "soon", "1"],
                      ["--fast", "1"], ["1", "--dir"]])
    func refusesBadCheckpointCommandLinesAsUsage(_ arguments: [String]) {
        do {
            _ = try CheckpointOptions(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(error.code == .usage)
        }
    }

    @Test(arguments: [["verify", "--bogus", "x"], ["inspect", "a", "b"], ["inspect", "--key", "k", "x"], ["ls", "--bogus"],
                      ["compact", "--output"], ["run", "--signal", "KILL", "--", "true"]])
    func otherCommandsRefuseBadCommandLinesAsUsage(_ arguments: [String]) {
        #expect(stasisMain(arguments) == ExitCode.usage.rawValue)
    }
}
