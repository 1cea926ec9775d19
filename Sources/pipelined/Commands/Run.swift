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

        @Flag(name: .long, help: "Wait for another run on the same database (or output directory) to finish instead of exiting with code 75.")
        var wait = false

        @Option(name: .long, help: "Like --wait, but give up (exit 75) after this many seconds.")
        var waitTimeout: Double?

        @Flag(name: .long, help: "Print only errors (for cron).")
        var quiet = false

        @Flag(name: .long, help: "Print the run's summary as JSON on stdout (no progress output).")
        var json = false

        @Flag(name: .long, help: "Delete the output files (aligned and published clips, landmarks) of inputs that are gone from --input-dir. Without it they only leave fileslist.txt and manifest.jsonl.")
        var prune = false

        @Flag(name: .long, help: "Accept that more than run.max_gone_share of the inputs disappeared since the last run (they leave the index; with --prune their files are deleted).")
        var allowMassRemoval = false

        @Flag(name: .long, help: ArgumentHelp("Finish each stage on every item before the next starts (how releases before 0.4 ran; for comparisons).",
                                              visibility: .hidden))
        var stageBarriers = false

        func validate() throws {
            if let until, !StageRegistry.order.contains(until) {
                throw ValidationError("unknown stage \"\(until)\" for --until; stages: \(StageRegistry.order.joined(separator: ", "))")
            }
            // The same bounds as pipeline.conf's run.jobs: each job is a thread with its own decoders.
            if let jobs, !(1...1024).contains(jobs) { throw ValidationError("--jobs must be 1…1024, not \(jobs)") }
            if let waitTimeout, !(waitTimeout.isFinite && waitTimeout >= 0) { throw ValidationError("--wait-timeout must be a number of seconds ≥ 0") }
        }

        /// Where the input, the output and the database may live: the output tree must not be the
        /// input folder or inside it (the pipeline would discover its own outputs as inputs, write
        /// into the folder it promises never to touch, and a prune would delete there), nor the
        /// database inside the input folder.
        static func checkLayout(input: URL, output: URL, database: String) throws {
            func real(_ url: URL) -> String { url.resolvingSymlinksInPath().standardizedFileURL.path }
            let inputPath = real(input)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: inputPath, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("input directory \(input.path) does not exist or is not a folder (nothing was created)")
            }
            // The output folder may not exist yet: resolve its nearest existing ancestor.
            var probe = output.standardizedFileURL, missing: [String] = []
            while !FileManager.default.fileExists(atPath: probe.path), probe.path != "/" {
                missing.insert(probe.lastPathComponent, at: 0)
                probe = probe.deletingLastPathComponent()
            }
            let outputPath = missing.reduce(real(probe)) { $0 + "/" + $1 }
            if outputPath == inputPath || outputPath.hasPrefix(inputPath + "/") {
                throw CLIError("the output directory \(output.path) is \(outputPath == inputPath ? "the input directory" : "inside the input directory \(input.path)"): "
                               + "its outputs would be discovered as inputs and the input folder written into; choose an output directory outside it (by default the input directory's parent)")
            }
            let databaseFolder = URL(fileURLWithPath: database).deletingLastPathComponent()
            if FileManager.default.fileExists(atPath: databaseFolder.path) {
                let databasePath = real(databaseFolder)
                if databasePath == inputPath || databasePath.hasPrefix(inputPath + "/") {
                    throw CLIError("the database \(database) is inside the input directory \(input.path); put it outside (by default it lives in the output directory)")
                }
            }
            if FileManager.default.fileExists(atPath: output.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                throw CLIError("--output-dir \(output.path) is a file, not a folder; choose a folder for the dataset")
            }
        }

        func run() async throws {
            // Signals first: a SIGHUP or SIGTERM that arrives while the configuration loads or a lock
            // is awaited must drain, not kill.
            let cancellation = CancellationFlag()
            let signals = SignalHandling.install(cancellation, quiet: quiet || json)
            let quiet = self.quiet || json
            let session = try WorkSession.open(inputDir: inputDir, store: store, config: config, device: device,
                                               waitSeconds: waitTimeout ?? (wait ? .infinity : nil), quiet: quiet)
            let configuration = session.configuration, outputDirectory = session.outputDirectory
            let jobCount = jobs ?? (configuration.run.jobs > 0 ? configuration.run.jobs : ProcessInfo.processInfo.activeProcessorCount)
            let reporter: any ProgressReporter = quiet ? SilentReporter()
                : (isatty(STDERR_FILENO) == 1 ? LiveReporter() as any ProgressReporter : LineReporter())
            var summary: RunSummary
            do {
                let engine = session.engine(options: EngineOptions(
                    inputDirectory: inputDir, outputDirectory: outputDirectory, jobs: jobCount,
                    until: until, traceFile: ProcessInfo.processInfo.environment["PIPELINED_TRACE"],
                    version: Pipelined.version,
                    maxGoneShare: allowMassRemoval ? 1 : configuration.run.maxGoneShare,
                    stageBarriers: stageBarriers), reporter: reporter, cancellation: cancellation)
                summary = try await engine.run()
                // The index always describes what is published now, also after an interrupted run;
                // then files no result names any more go: superseded outputs, and with --prune
                // those of inputs that left the input directory.
                let (clips, removed) = try session.refreshIndex(engine: engine, prune: prune)
                if !quiet {
                    Console.error("dataset: \(clips) clip(s) in \(outputDirectory.appendingPathComponent(DatasetIndex.fileslist).path)\n")
                    if !removed.isEmpty {
                        Console.error("removed \(removed.count) output file(s) no result names any more\(prune ? " (superseded, or of inputs no longer present)" : " (superseded)")\n")
                    }
                }
                let failing = try session.ledger.failedItems(maxAttempts: configuration.run.maxAttempts)
                summary.failing = RunSummary.Failing(retrying: failing.retrying, final: failing.final)
            } catch { throw fail(error) }
            (reporter as? LiveReporter)?.finish()
            withExtendedLifetime((session, signals)) {}

            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                Console.output(String(decoding: try encoder.encode(summary), as: UTF8.self) + "\n")
            } else if !quiet {
                Console.error("run #\(summary.runId) \(summary.interrupted ? "interrupted" : "finished"); `pipelined status` shows every item\n")
            }
            if summary.interrupted { throw ExitCode(ExitStatus.interrupted) }
            // Failed items are said even with --quiet (cron mails what a job prints), with their own
            // exit codes: waiting for a retry (3) or failed for good (4).
            if let failing = summary.failing, failing.retrying + failing.final > 0 {
                if !json {
                    var parts: [String] = []
                    if failing.retrying > 0 { parts.append("\(failing.retrying) will be retried by a later run") }
                    if failing.final > 0 { parts.append("\(failing.final) failed for good after \(configuration.run.maxAttempts) attempts and need attention") }
                    Console.error("pipelined: \(failing.retrying + failing.final) item(s) failed: \(parts.joined(separator: ", ")); see `pipelined status --failed`\n")
                }
                throw ExitCode(failing.final > 0 ? ExitStatus.itemsFailedForGood : ExitStatus.itemsFailed)
            }
        }
    }
}
