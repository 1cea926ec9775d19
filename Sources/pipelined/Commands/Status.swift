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

        @Option(name: .long, help: "pipeline.conf used for the run (its run.max_attempts says which failures are final).",
                transform: { URL(fileURLWithPath: $0) })
        var config: URL?

        func run() throws {
            var report: StatusReport
            let opened = try store.openForReading()
            defer { opened.close() }
            do {
                report = try StatusReport.load(from: opened.ledger, database: opened.name, stages: StageRegistry.units,
                                               maxAttempts: PipelineConfiguration.load(config).run.maxAttempts)
            } catch { throw fail(error) }
            // A local ledger: a run row still "running" whose lock is free belongs to a process that
            // is gone (killed, crashed, rebooted); the next run reclaims it. On a shared ledger every
            // live worker counts, and one whose heartbeat is older than a lease is shown as stale.
            if let path = opened.sqlitePath, !RunLock.isHeld(databasePath: path) {
                if report.lastRun?.status == .running { report.lastRun?.status = .interrupted }
                report.workers = [] // no run holds the lock: those still marked running ended without saying so
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                encoder.dateEncodingStrategy = .iso8601
                Console.output(String(decoding: try encoder.encode(report), as: UTF8.self) + "\n")
            } else {
                Console.output(StatusText.render(report, listFailures: failed) + "\n")
            }
        }
    }
}
