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
            let outputDirectory: URL, path: String
            do { (outputDirectory, path) = try store.existingDatabase() } catch { throw fail(error) }
            do {
                let configuration = try PipelineConfiguration.load(config)
                let entries = try DatasetIndex.entries(store: PipelineStore(path: path), configuration: configuration, outputDirectory: outputDirectory)
                let target = URL(fileURLWithPath: fileslist).standardizedFileURL
                let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).tmp-\(getpid())")
                try Data(DatasetIndex.fileslistText(entries).utf8).write(to: temporary)
                guard rename(temporary.path, target.path) == 0 else {
                    try? FileManager.default.removeItem(at: temporary)
                    throw CLIError("cannot write \(target.path): \(String(cString: strerror(errno)))")
                }
                FileHandle.standardError.write(Data("\(entries.count) clip(s) listed in \(target.path)\n".utf8))
            } catch { throw fail(error) }
        }
    }
}
