import Testing
@testable import StasisLauncher

/// The launcher's argument parsing: the command-line contract scripts depend on.
struct OptionParserTests {
    @Test func separatesValuedOptionsFlagsAndPositionals() throws {
        let options = try OptionParser(["--dir", "/tmp/x", "--json", "--key=/k", "123"], valued: ["--dir", "--key"],
                                       flags: ["--json"], command: "checkpoint")
        #expect(options.values == ["--dir": "/tmp/x", "--key": "/k"])
        #expect(options.flags == ["--json"])
        #expect(options.positional == ["123"])
    }

    @Test func keepsEveryValueOfARepeatedOption() throws {
        let options = try OptionParser(["--fd", "1=/a", "--fd=2=inherit", "image"], valued: ["--fd"], flags: [], command: "restart")
        #expect(options.allValues["--fd"] == ["1=/a", "2=inherit"])
        #expect(options.positional == ["image"])
    }

    @Test func stopsAtTheProgramForRun() throws {
        let options = try OptionParser(["--keep", "3", "prog", "--dir", "x"], valued: ["--keep", "--dir"], flags: [],
                                       command: "run", stopAtFirstPositional: true)
        #expect(options.values == ["--keep": "3"])
        #expect(options.positional == ["prog", "--dir", "x"])
        let dashed = try OptionParser(["--", "--not-an-option"], valued: [], flags: [], command: "run")
        #expect(dashed.positional == ["--not-an-option"])
    }

    @Test(arguments: [["--bogus"], ["--dir"]])
    func rejectsUnknownOptionsAndMissingValuesAsUsageErrors(_ arguments: [String]) {
        #expect(throws: LauncherError.self) {
            _ = try OptionParser(arguments, valued: ["--dir"], flags: [], command: "checkpoint")
        }
        do {
            _ = try OptionParser(arguments, valued: ["--dir"], flags: [], command: "checkpoint")
        } catch {
            #expect(error.code == .usage)
        }
    }

    @Test(arguments: [("USR2", 12), ("SIGUSR1", 10), ("12", 12), ("RTMIN+1", 35), ("rtmin+2", 36), ("term", 15)])
    func parsesSignalNames(_ text: String, _ number: Int32) {
        #expect(parseSignal(text) == number)
    }

    @Test(arguments: ["", "0", "65", "SIGNOPE", "RTMIN+40"])
    func rejectsWhatIsNoSignal(_ text: String) {
        #expect(parseSignal(text) == nil)
    }

    @Test(arguments: [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0)])
    func parsesIntervals(_ text: String, _ seconds: Double) {
        #expect(parseDuration(text) == seconds)
    }

    @Test(arguments: ["", "m", "-5", "0", "abc"])
    func rejectsBadIntervals(_ text: String) {
        #expect(parseDuration(text) == nil)
    }
}
