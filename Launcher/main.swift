// stasis: the launcher. Starts programs with the agent preloaded, asks running ones for a checkpoint,
// restarts images through the restorer, and shows what an image holds. See README.md.
import Glibc

let usage = """
    stasis: transparent checkpoint/restart for Linux x86-64 programs

    usage:
      stasis run [--dir DIR] [--signal SIG] [--keep N] [--key FILE] [--skip-unsupported] [--no-fork]
                 [--incremental [--max-chain N]] [--checkpoint-on SIG [--exit-code N]] [--interval DURATION]
                 [--pid-file F] -- PROGRAM ARGS...
      stasis checkpoint [--dir DIR] [--timeout SECONDS] [--key FILE] [--incremental | --full] [--skip-unsupported]
                 [--no-fork] [--json] PID
      stasis restart [--pid-file F] [--allow-changed-files] [--key FILE] [--interval D [--dir DIR]] [--eager]
                     [--fd N=PATH|inherit]... IMAGE
      stasis inspect [--json] IMAGE
      stasis verify [--key FILE] [--json] IMAGE...
      stasis ls [--full] [--json] [DIR]
      stasis compact [--key FILE] [--output OUT] IMAGE
      stasis COMMAND --help

    A running program is checkpointed by `stasis checkpoint PID` or `kill -USR2 PID`.
    Exit codes: 0 ok, 1 failure, 2 usage, 3 bad image, 4 incompatible machine, 5 files changed,
    6 no such process, 7 checkpoint failed, 8 timeout, 9 restore failed, 10 permission denied,
    11 signature mismatch, 12 incomplete chain (an incremental image's parent), 127 cannot execute.
    """

func main() -> Int32 {
    var arguments = Array(CommandLine.arguments.dropFirst())
    guard let command = arguments.first else {
        printError(usage)
        return ExitCode.usage.rawValue
    }
    arguments.removeFirst()
    do throws(LauncherError) {
        switch command {
        case "run": try RunCommand.main(arguments)
        case "checkpoint": try CheckpointCommand.main(arguments)
        case "restart": return try RestartCommand.main(arguments)
        case "__watch-detach": return WatchCommand.detach(arguments)
        case "__watch": return WatchCommand.watch(arguments)
        case "inspect": try InspectCommand.main(arguments)
        case "verify": try VerifyCommand.main(arguments)
        case "ls": try ListCommand.main(arguments)
        case "compact": try CompactCommand.main(arguments)
        case "--help", "-h", "help":
            printOut(usage)
        case "--version":
            printOut("stasis 0.1 (image format 1)")
        default:
            throw LauncherError(.usage, "unknown command '\(command)'; run `stasis --help`")
        }
        return ExitCode.success.rawValue
    } catch {
        printError("stasis: \(error.message)")
        return error.code.rawValue
    }
}

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


exit(main())
