import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Process every new or changed input; resume unfinished work; skip finished work.",
            discussion: "Safe to call from cron: a second run on the same database waits (--wait) or exits with code 75.")

        @Option(name: .long, help: "Folder of raw videos (searched recursively; never modified).", transform: { URL(fileURLWithPath: $0) })
        var inputDir: URL

        @OptionGroup var store: StoreOptions

        @Option(name: .long, help: "pipeline.conf (TOML). Default: built-in defaults (the repository's pipeline.conf lists them).",
                transform: { URL(fileURLWithPath: $0) })
        var config: URL?

        @Option(name: .long, help: "Items processed at once. Default: pipeline.conf's run.jobs, else the number of cores.")
        var jobs: Int?

        @Option(name: .long, help: "Stop after this stage (\(StageRegistry.order.joined(separator: ", "))).")
        var until: String?

        @Option(name: .long, help: "Where model-backed methods run: auto, cpu or cuda:N. Default: pipeline.conf's inference.device (auto).")
        var device: String?

        @Flag(name: .long, help: "Wait for another run on the same database to finish instead of exiting with code 75.")
        var wait = false

        @Flag(name: .long, help: "Print only errors (for cron).")
        var quiet = false

        @Flag(name: .long, help: "Print the run's summary as JSON on stdout (no progress output).")
        var json = false

        @Flag(name: .long, help: "Delete the output files (aligned and published clips, landmarks) of inputs that are gone from --input-dir. Without it they only leave fileslist.txt and manifest.jsonl.")
        var prune = false

        func validate() throws {
            if let until, !StageRegistry.order.contains(until) {
                throw ValidationError("unknown stage \"\(until)\" for --until; stages: \(StageRegistry.order.joined(separator: ", "))")
            }
            if let jobs, jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        }

        func run() async throws {
            var configuration: PipelineConfiguration
            do { configuration = try PipelineConfiguration.load(config) } catch { throw fail(error) }
            if let device { configuration.inference.device = device }
            // A model-backed method on a device the backend cannot serve fails now, not on the first clip.
            if ModelMethods.needed(by: configuration) {
                do { try ModelMethods.validateDevice(configuration.inference.device) } catch { throw fail(error) }
            }
            let outputDirectory = store.outputDir ?? inputDir.standardizedFileURL.deletingLastPathComponent()
            let databasePath = store.databasePath(outputDirectory: outputDirectory)
            do { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) } catch { throw fail(error) }

            let lock: RunLock
            do { lock = try RunLock(databasePath: databasePath, wait: wait) } catch let error as RunLockError {
                if case .busy = error { throw fail(error, code: ExitStatus.locked) }
                throw fail(error)
            }
            let cancellation = CancellationFlag()
            let signals = SignalHandling.install(cancellation, quiet: quiet || json)
            let jobCount = jobs ?? (configuration.run.jobs > 0 ? configuration.run.jobs : ProcessInfo.processInfo.activeProcessorCount)
            let reporter: any ProgressReporter = json || quiet ? SilentReporter()
                : (isatty(STDERR_FILENO) == 1 ? LiveReporter() as any ProgressReporter : LineReporter())
            let summary: RunSummary
            do {
                let pipelineStore = try PipelineStore(path: databasePath)
                let engine = Engine(store: pipelineStore, configuration: configuration,
                                    stages: StageRegistry.stages(for: configuration),
                                    options: EngineOptions(inputDirectory: inputDir, outputDirectory: outputDirectory, jobs: jobCount,
                                                           until: until, traceFile: ProcessInfo.processInfo.environment["PIPELINED_TRACE"],
                                                           version: Pipelined.version),
                                    reporter: reporter, cancellation: cancellation)
                summary = try await engine.run()
                // The index always describes what is published now, also after an interrupted run.
                let clips = try DatasetIndex.write(store: pipelineStore, configuration: configuration, outputDirectory: outputDirectory)
                if !quiet && !json {
                    FileHandle.standardError.write(Data("dataset: \(clips) clip(s) in \(outputDirectory.appendingPathComponent(DatasetIndex.fileslist).path)\n".utf8))
                }
                if prune {
                    let removed = try DatasetIndex.prune(store: pipelineStore, outputDirectory: outputDirectory)
                    if !quiet && !json && !removed.isEmpty {
                        FileHandle.standardError.write(Data("pruned \(removed.count) file(s) of inputs no longer present\n".utf8))
                    }
                }
            } catch { throw fail(error) }
            (reporter as? LiveReporter)?.finish()
            withExtendedLifetime((lock, signals)) {}

            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else if !quiet {
                FileHandle.standardError.write(Data("run #\(summary.runId) \(summary.interrupted ? "interrupted" : "finished"); `pipelined status` shows every item\n".utf8))
            }
            if summary.interrupted { throw ExitCode(ExitStatus.interrupted) }
            if summary.failed > 0 {
                if !json { FileHandle.standardError.write(Data("pipelined: \(summary.failed) item(s) failed; see `pipelined status --failed`\n".utf8)) }
                throw ExitCode(ExitStatus.itemsFailed)
            }
        }
    }
}
