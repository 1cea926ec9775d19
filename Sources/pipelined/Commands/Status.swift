import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show where every input stands and why anything was rejected.")

        @OptionGroup var store: StoreOptions

        @Flag(name: .long, help: "Print the report as JSON (stable; see README).")
        var json = false

        @Flag(name: .long, help: "List every failed item with its error.")
        var failed = false

        func run() throws {
            let path: String
            do { path = try store.existingDatabase().path } catch { throw fail(error) }
            let report: StatusReport
            do {
                report = try StatusReport.load(from: PipelineStore(path: path), stages: StageRegistry.units,
                                               maxAttempts: PipelineConfiguration().run.maxAttempts)
            } catch { throw fail(error) }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                encoder.dateEncodingStrategy = .iso8601
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(StatusText.render(report, listFailures: failed))
            }
        }
    }
}
