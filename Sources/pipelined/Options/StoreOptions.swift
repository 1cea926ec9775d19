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
}
