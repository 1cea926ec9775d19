import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the list of published clips (one absolute path per line) that LatentSync's trainers read.")

        @OptionGroup var store: StoreOptions

        @Option(name: .long, help: "Where to write the list (the dataset keeps its own <output-dir>/fileslist.txt up to date after every run).")
        var fileslist: String

        @Option(name: .long, help: "pipeline.conf used for the run (names the sync and quality methods in the manifest).",
                transform: { URL(fileURLWithPath: $0) })
        var config: URL?

        func run() throws {
            let opened = try store.openForReading()
            defer { opened.close() }
            do {
                let configuration = try PipelineConfiguration.load(config)
                let entries = try DatasetIndex.entries(store: opened.ledger, configuration: configuration, outputDirectory: opened.outputDirectory)
                let target = URL(fileURLWithPath: fileslist).standardizedFileURL
                try UserOutputFile.write(to: target.path, protecting: opened.protected) {
                    try Data(DatasetIndex.fileslistText(entries).utf8).write(to: URL(fileURLWithPath: $0))
                }
                Console.error("\(entries.count) clip(s) listed in \(target.path)\n")
            } catch { throw fail(error) }
        }
    }
}
