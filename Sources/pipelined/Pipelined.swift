import ArgumentParser
import Foundation

@main
struct Pipelined: AsyncParsableCommand {
    static let version = "0.1.0"
    static let configuration = CommandConfiguration(
        commandName: "pipelined",
        abstract: "Turn a folder of talking-head videos into a lip-sync training dataset (the LatentSync recipe).",
        discussion: """
        Exit codes:
          0   all work that could be done is done (rejected items are results, not failures)
          1   a fatal error: bad configuration, missing input directory, damaged database, more
              inputs missing than run.max_gone_share allows
          3   items are failed and waiting to be retried by a later run (see `pipelined status --failed`)
          4   items failed for good (they used up run.max_attempts); they need a person: fix or
              remove the file, or raise max_attempts (see `pipelined status --failed`)
          64  bad command-line usage
          69  the PostgreSQL server named by --db cannot be reached (a later start may succeed)
          75  another run holds the database's or the output directory's lock (--wait queues behind it)
          130 interrupted (SIGINT/SIGTERM/SIGHUP); finished items are kept and the next run resumes
        `pipelined work` (the long-running worker) exits 0 after SIGTERM once it has drained; with
        --once it exits as `run` does.
        """,
        version: version,
        subcommands: [Run.self, Work.self, Status.self, Export.self, Report.self, Calibrate.self, Doctor.self, Infer.self, Train.self, Eval.self]
    )
}

/// Exit codes, documented in `pipelined --help`.
enum ExitStatus {
    static let fatal: Int32 = 1
    static let itemsFailed: Int32 = 3
    static let itemsFailedForGood: Int32 = 4
    /// The PostgreSQL server named by --db cannot be reached (EX_UNAVAILABLE).
    static let databaseUnavailable: Int32 = 69
    static let locked: Int32 = 75
    static let interrupted: Int32 = 130
}

extension Pipelined {
    /// Parses and runs the command, with SIGPIPE ignored first: a reader that goes away (`| head`)
    /// makes writes fail, which `Console` shrugs off, instead of killing the run mid-item.
    static func main() async {
        signal(SIGPIPE, SIG_IGN)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Prints an error the way every command does and exits with `code`.
func fail(_ error: any Error, code: Int32 = ExitStatus.fatal) -> ExitCode {
    Console.error("pipelined: \(UserFacing.describe(error))\n")
    return ExitCode(code)
}

/// A message for the user that is not any library's error.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
