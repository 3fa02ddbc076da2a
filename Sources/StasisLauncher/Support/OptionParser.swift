import Glibc

/// Splits `--name value` options from positional arguments. `--` ends options.
struct OptionParser {
    var values: [String: String] = [:]
    /// Every value of each valued option, in order (for options that may be given more than once).
    var allValues: [String: [String]] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    init(_ arguments: [String], valued: Set<String>, flags known: Set<String>, command: String,
         stopAtFirstPositional: Bool = false) throws(LauncherError) {
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                positional += arguments[(i + 1)...]
                return
            }
            if argument.hasPrefix("--") && !(stopAtFirstPositional && !positional.isEmpty) {
                var name = argument
                var inline: String?
                if let eq = argument.firstIndex(of: "=") {
                    name = String(argument[..<eq])
                    inline = String(argument[argument.index(after: eq)...])
                }
                if valued.contains(name) {
                    if let inline {
                        values[name] = inline
                        allValues[name, default: []].append(inline)
                    } else {
                        guard i + 1 < arguments.count else {
                            throw LauncherError(.usage, "\(name) needs a value; see `stasis \(command) --help`")
                        }
                        values[name] = arguments[i + 1]
                        allValues[name, default: []].append(arguments[i + 1])
                        i += 1
                    }
                } else if known.contains(name) {
                    flags.insert(name)
                } else {
                    throw LauncherError(.usage, "unknown option \(argument) for `stasis \(command)`; see `stasis \(command) --help`")
                }
            } else {
                positional.append(argument)
                if stopAtFirstPositional {
                    positional += arguments[(i + 1)...]
                    return
                }
            }
            i += 1
        }
    }
}
