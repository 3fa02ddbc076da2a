import Glibc

/// Signal numbers from names: "USR2", "SIGUSR2" or "12".
func parseSignal(_ text: String) -> Int32? {
    if let n = Int32(text), (1...64).contains(n) { return n }
    let name = text.uppercased().hasPrefix("SIG") ? String(text.uppercased().dropFirst(3)) : text.uppercased()
    let table: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "USR1": SIGUSR1, "USR2": SIGUSR2, "TERM": SIGTERM,
        "ALRM": SIGALRM, "WINCH": SIGWINCH, "URG": SIGURG, "PWR": SIGPWR, "XCPU": SIGXCPU, "VTALRM": SIGVTALRM,
        "PROF": SIGPROF, "CONT": SIGCONT, "TSTP": SIGTSTP,
    ]
    if let n = table[name] { return n }
    if name.hasPrefix("RTMIN+"), let k = Int32(name.dropFirst(6)), 34 + k <= 64 { return 34 + k }  // glibc SIGRTMIN is 34
    return nil
}

/// Seconds from "90", "90s", "15m", "2h".
func parseDuration(_ text: String) -> Double? {
    let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600]
    var number = Substring(text)
    var scale = 1.0
    if let last = text.last, let unit = units[last] {
        scale = unit
        number = number.dropLast()
    }
    guard let value = Double(number), value > 0 else { return nil }
    return value * scale
}

/// `--interval D` of run and restart: at least one second.
func parseInterval(_ text: String) throws(LauncherError) -> Double {
    guard let seconds = parseDuration(text), seconds >= 1 else {
        throw LauncherError(.usage, "--interval needs a duration of at least 1s, like 90s, 15m or 2h")
    }
    return seconds
}

/// A CLOCK_REALTIME time in nanoseconds as UTC, ISO 8601: "2026-12-06T10:15:04Z"; with `fraction`,
/// nanoseconds too ("2026-12-06T10:15:04.123456789Z"), for times that may differ within a second.
func formatTime(_ nanoseconds: Int64, fraction: Bool = false) -> String {
    var seconds = time_t(nanoseconds / 1_000_000_000)
    var parts = tm()
    gmtime_r(&seconds, &parts)  // pure computation: no system call
    var buffer = [CChar](repeating: 0, count: 32)
    strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S", &parts)
    let nanos = String((nanoseconds % 1_000_000_000 + 1_000_000_000) % 1_000_000_000)
    return String(cString: buffer) + (fraction ? "." + String(repeating: "0", count: 9 - nanos.count) + nanos : "") + "Z"
}

/// A JSON string's contents (without the quotes).
func jsonEscape(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let digits = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - digits.count) + digits
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out
}
