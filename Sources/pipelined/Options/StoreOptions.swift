import ArgumentParser
import Foundation
import PipelineCore
import PostgresLedger

/// Where the dataset and its database live.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Output directory (dataset, database). Default: for `run`, the input directory's parent, beside raw/ as in the reference layout; for `status`, the current directory.",
            transform: { URL(fileURLWithPath: $0) })
    var outputDir: URL?

    @Option(name: .long, help: "Database: a SQLite file (default: <output-dir>/pipelined.sqlite), or a PostgreSQL URL (postgresql://user[:password]@host[:port]/database) that runs on several hosts share.")
    var db: String?

    /// The PostgreSQL URL `--db` names, if it names one.
    var postgresURL: String? {
        guard let db, db.hasPrefix("postgresql://") || db.hasPrefix("postgres://") else { return nil }
        return db
    }

    func databasePath(outputDirectory: URL) -> String {
        db ?? outputDirectory.appendingPathComponent("pipelined.sqlite").path
    }

    /// For commands that read a ledger (`status`, `report`, `export`, `calibrate`): the PostgreSQL
    /// database `--db` names, or the SQLite file of the output directory (which must exist), opened
    /// for reading. Errors are thrown as the `ExitCode` the user sees (69: a server that cannot be
    /// reached).
    func openForReading(outputDirectory explicit: URL? = nil) throws -> ReadableLedger {
        let outputDirectory = explicit ?? outputDir ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        if let url = postgresURL {
            do {
                let database = try PostgresLedgerDatabase(url: url, connectTimeout: 10, retryFor: 10)
                return ReadableLedger(ledger: database, name: database.maskedURL, outputDirectory: outputDirectory, protected: [],
                                      close: { database.close() })
            } catch { throw failOpeningLedger(error) }
        }
        let path = databasePath(outputDirectory: outputDirectory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw fail(CLIError("no database at \(path); pass --output-dir or --db, or run `pipelined run` first"))
        }
        do {
            return ReadableLedger(ledger: try PipelineStore(readingOnly: path), name: path, outputDirectory: outputDirectory,
                                  protected: UserOutputFile.Protected.database(path), close: {}, sqlitePath: path)
        } catch { throw fail(error) }
    }
}

/// A ledger opened for reading, and what commands that write files beside it must know.
struct ReadableLedger {
    var ledger: any Ledger
    /// How to name the database to the user (a path, or the URL with its password masked).
    var name: String
    var outputDirectory: URL
    /// Files a user-chosen output path must never overwrite (the SQLite database and its companions).
    var protected: [UserOutputFile.Protected]
    var close: () -> Void
    /// The SQLite file, for a local ledger.
    var sqlitePath: String?
}

/// How a ledger that cannot be opened ends the command: exit 69 for a PostgreSQL server that cannot
/// be reached (a retry later may succeed), 1 for anything else.
func failOpeningLedger(_ error: any Error) -> ExitCode {
    if let error = error as? PostgresLedgerError {
        switch error {
        case .unreachable, .unavailable: return fail(error, code: ExitStatus.databaseUnavailable)
        default: break
        }
    }
    return fail(error)
}
