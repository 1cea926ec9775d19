import ArgumentParser
import Foundation

/// Where the dataset and its database live.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Output directory (dataset, database). Default: for `run`, the input directory's parent, beside raw/ as in the reference layout; for `status`, the current directory.",
            transform: { URL(fileURLWithPath: $0) })
    var outputDir: URL?

    @Option(name: .long, help: "Database file. Default: <output-dir>/pipelined.sqlite.")
    var db: String?

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
