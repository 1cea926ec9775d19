import ArgumentParser
import Foundation

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

    /// For commands that read a finished run (`status`, `report`, `export`): the output directory
    /// (default: the current one) and its database, which must exist.
    func existingDatabase() throws -> (outputDirectory: URL, path: String) {
        let outputDirectory = outputDir ?? URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let path = databasePath(outputDirectory: outputDirectory)
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError("no database at \(path); pass --output-dir or --db, or run `pipelined run` first")
        }
        return (outputDirectory, path)
    }
}
