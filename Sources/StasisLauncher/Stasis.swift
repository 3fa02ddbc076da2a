// The launcher's entry: picks the command. `stasis` (Launcher/main.swift) only calls stasisMain.
import Glibc

let usage = """
    stasis: transparent checkpoint/restart for Linux x86-64 programs

    usage:
      stasis run [--dir DIR] [--signal SIG] [--keep N] [--key FILE] [--skip-unsupported] [--no-fork]
                 [--incremental [--max-chain N]] [--checkpoint-on SIG [--exit-code N]] [--interval DURATION]
                 [--pid-file F] [--pid-namespace] -- PROGRAM ARGS...
      stasis checkpoint [--dir DIR] [--timeout SECONDS] [--key FILE] [--incremental | --full] [--skip-unsupported]
                 [--no-fork] [--json] PID
      stasis restart [--pid-file F] [--allow-changed-files] [--key FILE] [--interval D [--dir DIR]] [--eager]
                     [--no-namespace] [--fd N=PATH|inherit]... IMAGE
      stasis job --dir DIR [--checkpoint-on SIG]... [--requeue] [--exit-code N] [--interval D] [--keep N]
                 [run options] -- PROGRAM ARGS...      (first run and every requeue of a batch job)
      stasis inspect [--json] IMAGE|TREE_DIR
      stasis verify [--key FILE] [--json] IMAGE|TREE_DIR...
      stasis ls [--full] [--json] [DIR]
      stasis compact [--key FILE] [--output OUT] IMAGE
      stasis COMMAND --help

    A running program is checkpointed by `stasis checkpoint PID` or `kill -USR2 PID`.
    Exit codes: 0 ok, 1 failure, 2 usage, 3 bad image, 4 incompatible machine, 5 files changed,
    6 no such process, 7 checkpoint failed, 8 timeout, 9 restore failed, 10 permission denied,
    11 signature mismatch, 12 incomplete chain (an incremental image's parent), 13 PID in use, 127 cannot execute.
    """

/// Runs one `stasis` command line (without the program name); returns the process's exit status.
public func stasisMain(_ arguments: [String]) -> Int32 {
    var arguments = arguments
    guard let command = arguments.first else {
        printError(usage)
        return ExitCode.usage.rawValue
    }
    arguments.removeFirst()
    do throws(LauncherError) {
        switch command {
        case "run": return try RunCommand.main(arguments)
        case "checkpoint": try CheckpointCommand.main(arguments)
        case "restart": return try RestartCommand.main(arguments)
        case "job": return try JobCommand.main(arguments)
        case "__watch-detach": return WatchCommand.detach(arguments)
        case "__watch": return WatchCommand.watch(arguments)
        case "inspect": try InspectCommand.main(arguments)
        case "verify": try VerifyCommand.main(arguments)
        case "ls": try ListCommand.main(arguments)
        case "compact": try CompactCommand.main(arguments)
        case "--help", "-h", "help":
            printOut(usage)
        case "--version":
            printOut(StasisVersion.line)
        default:
            throw LauncherError(.usage, "unknown command '\(command)'; run `stasis --help`")
        }
        return ExitCode.success.rawValue
    } catch {
        printError("stasis: \(error.message)")
        return error.code.rawValue
    }
}
