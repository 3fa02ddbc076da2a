import Glibc
import Testing
@testable import StasisLauncher

/// Key files, /proc/PID/stat fields, JSON strings and times.
struct SupportTests {
    /// A file in a fresh directory under /tmp holding `bytes`; removed by the caller.
    func temporaryFile(_ bytes: [UInt8]) throws -> String {
        var template = Array("/tmp/stasis-launcher-test-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        try #require(fd >= 0)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        try #require(written == bytes.count)
        return String(cString: template)
    }

    @Test func readsAKeyOf1To4000Bytes() throws {
        for count in [1, 32, 4000] {
            let path = try temporaryFile([UInt8](repeating: 7, count: count))
            defer { unlink(path) }
            #expect(try readKeyFile(path).count == count)
        }
        #expect(try readKeyFile(ifGiven: nil) == nil)
    }

    @Test func refusesAnEmptyOversizedOrMissingKeyAsUsage() throws {
        for count in [0, 4001] {
            let path = try temporaryFile([UInt8](repeating: 7, count: count))
            defer { unlink(path) }
            #expect(throws: LauncherError.self) { try readKeyFile(path) }
            do { _ = try readKeyFile(path) } catch { #expect(error.code == .usage && error.message.contains("1 to 4000 bytes")) }
        }
        do {
            _ = try readKeyFile("/nonexistent/key")
            Issue.record("read a missing key file")
        } catch {
            #expect(error.code == .usage && error.message.hasPrefix("cannot read key file /nonexistent/key: "))
        }
    }

    @Test func splitsProcStatAfterTheCommandName() throws {
        let fields = try #require(statFields(parsing: "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 0\n"))
        #expect(fields[0] == "S")
        #expect(fields[19] == "12345")
        #expect(statFields(parsing: "garbage") == nil)
    }

    @Test func escapesJSONStrings() {
        #expect(jsonEscape("plain") == "plain")
        #expect(jsonEscape("a\"b\\c\nd\te") == "a\\\"b\\\\c\\nd\\te")
        #expect(jsonEscape("\u{1}") == "\\u0001")
        #expect(jsonEscape("é") == "é")
    }

    @Test func formatsTimesAsUTC() {
        #expect(formatTime(0) == "1970-01-01T00:00:00Z")
        #expect(formatTime(1_796_552_104_000_000_005, fraction: true) == "2026-12-06T10:15:04.000000005Z")
    }

    @Test(arguments: [("1", 1.0), ("1s", 1.0), ("2m", 120.0)])
    func acceptsIntervalsOfASecondOrMore(_ text: String, _ seconds: Double) throws {
        #expect(try parseInterval(text) == seconds)
    }

    @Test(arguments: ["0.5", "0", "x", ""])
    func refusesShorterIntervalsAsUsage(_ text: String) {
        do {
            _ = try parseInterval(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.code == .usage)
        }
    }
}
