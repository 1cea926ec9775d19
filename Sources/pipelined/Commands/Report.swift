import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a self-contained HTML report: funnel, score histograms, rejection reasons, throughput.")

        @OptionGroup var store: StoreOptions

        @Option(name: .long, help: "Where to write the page.")
        var html: String

        @Option(name: .long, help: "pipeline.conf used for the run (its thresholds are drawn on the histograms).",
                transform: { URL(fileURLWithPath: $0) })
        var config: URL?

        func run() throws {
            let opened = try store.openForReading()
            defer { opened.close() }
            do {
                let configuration = try PipelineConfiguration.load(config)
                let report = try StatusReport.load(from: opened.ledger, database: opened.name, stages: StageRegistry.units, maxAttempts: configuration.run.maxAttempts)
                let page = ReportPage.html(report: report, scores: try ReportPage.Scores.load(store: opened.ledger), configuration: configuration,
                                           calibration: try SyncCalibration.load(from: opened.outputDirectory))
                let target = URL(fileURLWithPath: html).standardizedFileURL
                try UserOutputFile.write(to: target.path, protecting: opened.protected) {
                    try Data(page.utf8).write(to: URL(fileURLWithPath: $0))
                }
                Console.error("report written to \(target.path)\n")
            } catch { throw fail(error) }
        }
    }
}
