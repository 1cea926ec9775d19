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
          1   a fatal error: bad configuration, missing input directory, unreadable database
          3   some items failed; they are retried on the next run (see `pipelined status --failed`)
          64  bad command-line usage
          75  another run holds the database's lock (use --wait to queue behind it)
          130 interrupted (SIGINT/SIGTERM); finished items are kept and the next run resumes
        """,
        version: version,
        subcommands: [Run.self, Status.self, Export.self, Report.self, Doctor.self, Infer.self, Train.self, Eval.self]
    )
}

/// Exit codes, documented in `pipelined --help`.
enum ExitStatus {
    static let fatal: Int32 = 1
    static let itemsFailed: Int32 = 3
    static let locked: Int32 = 75
    static let interrupted: Int32 = 130
}

/// Prints an error the way every command does and exits with `code`.
func fail(_ error: any Error, code: Int32 = ExitStatus.fatal) -> ExitCode {
    FileHandle.standardError.write(Data("pipelined: \(error)\n".utf8))
    return ExitCode(code)
}

/// A message for the user that is not any library's error.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
