import ArgumentParser
import Foundation
import PipelineCore
import PostgresLedger
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
            if let url = store.postgresURL {
                // A shared ledger: every live worker counts (no lock file says otherwise); one whose
                // heartbeat is older than a lease is shown as stale.
                do {
                    let database = try PostgresLedgerDatabase(url: url, connectTimeout: 10, retryFor: 10)
                    defer { database.close() }
                    report = try StatusReport.load(from: database, database: database.maskedURL, stages: StageRegistry.units,
                                                   maxAttempts: PipelineConfiguration.load(config).run.maxAttempts)
                } catch let error as PostgresLedgerError {
                    switch error {
                    case .unreachable, .unavailable: throw fail(error, code: ExitStatus.databaseUnavailable)
                    default: throw fail(error)
                    }
                } catch { throw fail(error) }
            } else {
                let path: String
                do { path = try store.existingDatabase().path } catch { throw fail(error) }
                do {
                    report = try StatusReport.load(from: PipelineStore(readingOnly: path), database: path, stages: StageRegistry.units,
                                                   maxAttempts: PipelineConfiguration.load(config).run.maxAttempts)
                } catch { throw fail(error) }
                // A run row still "running" whose lock is free belongs to a process that is gone (killed,
                // crashed, rebooted); the next run reclaims it.
                if !RunLock.isHeld(databasePath: path) {
                    if report.lastRun?.status == .running { report.lastRun?.status = .interrupted }
                    report.workers = [] // no run holds the lock: those still marked running ended without saying so
                }
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
