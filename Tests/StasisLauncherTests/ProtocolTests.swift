import CStasisABI
import Testing
@testable import StasisLauncher

/// stasis_protocol.h and its Swift mirror: the launcher, the agent and the restorer must agree.
struct ProtocolTests {
    @Test(arguments: AgentVariable.allCases)
    func agentVariablesHaveTheHeadersNames(_ variable: AgentVariable) {
        #expect(variable.rawValue == variable.headerName)
    }

    @Test(arguments: RestorerArgument.allCases)
    func restorerArgumentPositionsAreTheHeaders(_ argument: RestorerArgument) {
        #expect(argument.rawValue == argument.headerValue)
    }

    @Test func restorerArgumentCountIsWithinTheHeadersBounds() {
        let minimal = RestorerArguments(imageFD: 5, statusFD: 6, pagerDelayMilliseconds: nil)
        let full = RestorerArguments(imageFD: 5, statusFD: 6, pagerDelayMilliseconds: 100, tree: (goFD: 9, flags: .subreaper))
        #expect(RestorerArgument.headerArgumentCount.contains(1 + minimal.strings.count))
        #expect(1 + full.strings.count == RestorerArgument.headerArgumentCount.upperBound)
    }

    @Test func aTreeMemberGetsEveryPositionUpToItsFlags() {
        var arguments = RestorerArguments(imageFD: 7, statusFD: 8)
        arguments.tree = (goFD: 12, flags: [])
        #expect(arguments.strings == ["7", "8", "-1", "-1", "1", "0", "12", "0"], "a pager delay of 0 is none")
        arguments.tree = (goFD: 12, flags: .subreaper)
        arguments.pagerDelayMilliseconds = 30
        #expect(arguments.strings == ["7", "8", "-1", "-1", "1", "30", "12", "\(STASIS_RESTORER_TREE_SUBREAPER)"])
    }

    @Test func aRestoreInAUserNamespaceAsksEveryThreadToDropItsCapabilities() {
        var arguments = RestorerArguments(imageFD: 7, statusFD: 8)
        arguments.dropCapabilities = true
        #expect(arguments.strings == ["7", "8", "-1", "-1", "1", "0", "-1", "\(STASIS_RESTORER_DROP_CAPABILITIES)"],
                "a single process: no go pipe")
        arguments.tree = (goFD: 12, flags: .subreaper)
        #expect(arguments.strings.last == "\(STASIS_RESTORER_TREE_SUBREAPER | STASIS_RESTORER_DROP_CAPABILITIES)")
        #expect(STASIS_RESTORER_TREE_SUBREAPER & STASIS_RESTORER_DROP_CAPABILITIES == 0, "distinct bits")
    }

    @Test func buildsTheRestorerArgvInHeaderOrder() {
        var arguments = RestorerArguments(imageFD: 7, statusFD: 8)
        #expect(arguments.strings == ["7", "8", "-1", "-1", "1"])
        arguments.keyFD = 9
        arguments.planFD = 10
        arguments.lazy = false
        arguments.pagerDelayMilliseconds = 250
        #expect(arguments.strings == ["7", "8", "9", "10", "0", "250"])
        arguments.tree = (goFD: 11, flags: .subreaper)
        let expected = ["7", "8", "9", "10", "0", "250", "11", "\(STASIS_RESTORER_TREE_SUBREAPER)"]
        #expect(arguments.strings == expected)
        for argument in RestorerArgument.allCases {
            #expect(arguments.strings[argument.rawValue - 1] == expected[argument.headerValue - 1])
        }
    }

    @Test(arguments: [("250", 250), ("600000", 600_000)] as [(String, Int)])
    func takesAPagerDelayFromTheEnvironment(_ text: String, _ milliseconds: Int) {
        #expect(RestorerArguments.pagerDelay(fromEnvironment: text) == milliseconds)
    }

    @Test(arguments: [nil, "", "0", "-5", "600001", "soon"] as [String?])
    func ignoresABadPagerDelay(_ text: String?) {
        #expect(RestorerArguments.pagerDelay(fromEnvironment: text) == nil)
    }

    @Test func parsesStatusLines() {
        let lines = StatusLine.parse(Array("warning vdso moved (0x1)\nerror cannot map (0x2)\ncorrupt page crc (0x3)\nok\nnoise\n".utf8))
        #expect(lines == [.warning("vdso moved (0x1)"), .error("cannot map (0x2)"), .corrupt("page crc (0x3)"), .ok, .other])
        #expect(StatusLine.parse(Array("okay\n".utf8)) == [.other])
    }

    @Test func requestTokensNeverEqualTheAgentsOwnSignalValues() {
        for value in agentSignalValues { #expect(value < requestTokenMinimum) }
        for _ in 0..<1000 { #expect(randomRequestToken() >= requestTokenMinimum) }
    }
}
