import Glibc
import Testing
@testable import StasisLauncher

/// `stasis run`'s options as the agent's environment (stasis_protocol.h).
struct RunOptionsTests {
    func parse(_ arguments: [String]) throws(LauncherError) -> OptionParser {
        try OptionParser(arguments + ["--", "prog"], valued: RunCommand.valued, flags: RunCommand.flags, command: "run",
                         stopAtFirstPositional: true)
    }

    @Test func setsOnlyWhatWasAskedFor() throws {
        let environment = try RunCommand.agentEnvironment(parse([]), signal: SIGUSR2)
        #expect(environment == [.signal: "12"])
    }

    @Test func turnsEveryOptionIntoItsVariable() throws {
        let options = try parse(["--checkpoint-on", "TERM", "--exit-code", "3", "--no-fork", "--skip-unsupported",
                                 "--incremental", "--max-chain", "4", "--keep", "2"])
        let environment = try RunCommand.agentEnvironment(options, signal: SIGUSR1)
        #expect(environment == [.signal: "10", .exitSignal: "15", .exitCode: "3", .fork: "0", .skipUnsupported: "1",
                                .incremental: "1", .maxChain: "4", .keep: "2"])
        #expect(try RunCommand.agentEnvironment(parse(["--checkpoint-on", "INT"]), signal: SIGUSR2)[.exitCode] == "0")
    }

    @Test(arguments: [["--checkpoint-on", "KILL"], ["--checkpoint-on", "USR2"], ["--checkpoint-on", "NOPE"],
                      ["--exit-code", "1"], ["--checkpoint-on", "TERM", "--exit-code", "256"], ["--max-chain", "3"],
                      ["--incremental", "--max-chain", "0"], ["--keep", "0"], ["--keep", "many"]])
    func refusesBadAgentOptionsAsUsage(_ arguments: [String]) throws {
        let options = try parse(arguments)
        do {
            _ = try RunCommand.agentEnvironment(options, signal: SIGUSR2)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(error.code == .usage)
        }
    }

    @Test func picksTheTriggerSignal() throws {
        #expect(try RunCommand.triggerSignal(parse([])) == SIGUSR2)
        #expect(try RunCommand.triggerSignal(parse(["--signal", "RTMIN+1"])) == 35)
        for bad in ["KILL", "STOP", "9", "bogus"] {
            #expect(throws: LauncherError.self) { try RunCommand.triggerSignal(try parse(["--signal", bad])) }
        }
    }

    @Test func putsTheAgentFirstInLDPreloadOnce() {
        #expect(RunCommand.preloadList("/s/libStasisAgent.so", existing: nil) == "/s/libStasisAgent.so")
        #expect(RunCommand.preloadList("/s/libStasisAgent.so", existing: "") == "/s/libStasisAgent.so")
        #expect(RunCommand.preloadList("/s/libStasisAgent.so", existing: "/x.so") == "/s/libStasisAgent.so:/x.so")
        #expect(RunCommand.preloadList("/s/libStasisAgent.so", existing: "/x.so /s/libStasisAgent.so") == "/x.so /s/libStasisAgent.so")
    }
}
