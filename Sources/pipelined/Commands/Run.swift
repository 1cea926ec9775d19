import ArgumentParser
import Foundation
import PipelineCore
import PostgresLedger
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
            var configuration: PipelineConfiguration
            do {
                configuration = try PipelineConfiguration.load(config)
                // Model files are checked now, not per item: a missing one would fail every clip.
                try configuration.checkModelFiles(source: config?.path ?? "pipeline.conf (defaults)")
            } catch { throw fail(error) }
            if let device { configuration.inference.device = device }
            // A model-backed method on a device the backend cannot serve fails now, not on the first clip.
            if ModelMethods.needed(by: configuration) {
                do { try ModelMethods.validateDevice(configuration.inference.device) } catch { throw fail(error) }
            }
            let outputDirectory = store.outputDir ?? inputDir.standardizedFileURL.deletingLastPathComponent()
            let databasePath = store.databasePath(outputDirectory: outputDirectory)
            // Everything about the folders is checked before anything is created.
            do { try Self.checkLayout(input: inputDir, output: outputDirectory, database: databasePath) } catch { throw fail(error) }
            do { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) } catch {
                throw fail(CLIError("cannot create the output directory \(outputDirectory.path): \(UserFacing.describe(error))"))
            }

            let waitSeconds: Double? = waitTimeout ?? (wait ? .infinity : nil)
            var locks: [RunLock] = []
            // A PostgreSQL ledger is shared: runs on any number of hosts work on it at once, and the
            // jobs one of them does for all are under the ledger's advisory lock instead.
            let postgres = store.postgresURL
            if postgres == nil {
            do {
                // The database's lock keeps two runs off one database; the output directory's keeps
                // two runs with different databases off one folder of files.
                let quiet = self.quiet || json
                func waiting(_ lock: String) -> (String?) -> Void {
                    { holder in if !quiet { Console.error("pipelined: waiting for another run\(holder.map { " (pid \($0))" } ?? "") to release \(lock)\n") } }
                }
                let outputLock = RunLock.outputDirectoryLockFile(outputDirectory)
                locks = [try RunLock(lockFile: databasePath + ".lock", waitSeconds: waitSeconds, subject: .database, onWait: waiting(databasePath + ".lock")),
                         try RunLock(lockFile: outputLock, waitSeconds: waitSeconds, subject: .outputDirectory, onWait: waiting(outputLock))]
            } catch let error as RunLockError {
                if case .busy = error { throw fail(error, code: ExitStatus.locked) }
                throw fail(error)
            }
            }
            let jobCount = jobs ?? (configuration.run.jobs > 0 ? configuration.run.jobs : ProcessInfo.processInfo.activeProcessorCount)
            let reporter: any ProgressReporter = json || quiet ? SilentReporter()
                : (isatty(STDERR_FILENO) == 1 ? LiveReporter() as any ProgressReporter : LineReporter())
            var summary: RunSummary
            let ledger: any Ledger
            var exclusive: any ExclusiveSection = HeldByCaller()
            if let postgres {
                let database: PostgresLedgerDatabase
                do {
                    database = try PostgresLedgerDatabase(url: postgres)
                    try database.migrate()
                } catch let error as PostgresLedgerError {
                    switch error {
                    case .unreachable, .unavailable: throw fail(error, code: ExitStatus.databaseUnavailable)
                    default: throw fail(error)
                    }
                } catch { throw fail(error) }
                let quiet = self.quiet || json
                exclusive = PostgresExclusiveSection(database: database) {
                    if !quiet { Console.error("pipelined: waiting for another process's discovery, planning or index on \(database.maskedURL)\n") }
                }
                ledger = database
            } else {
                do { ledger = try PipelineStore(path: databasePath) } catch { throw fail(error) }
            }
            do {
                var options = EngineOptions(inputDirectory: inputDir, outputDirectory: outputDirectory, jobs: jobCount,
                                            until: until, traceFile: ProcessInfo.processInfo.environment["PIPELINED_TRACE"],
                                            version: Pipelined.version,
                                            maxGoneShare: allowMassRemoval ? 1 : configuration.run.maxGoneShare,
                                            stageBarriers: stageBarriers)
                options.sharedLedger = postgres != nil
                let engine = Engine(store: ledger, configuration: configuration,
                                    stages: StageRegistry.stages(for: configuration),
                                    options: options, reporter: reporter, cancellation: cancellation, exclusive: exclusive)
                summary = try await engine.run()
                // The index always describes what is published now, also after an interrupted run.
                let clips = try exclusive.run {
                    try DatasetIndex.write(store: ledger, configuration: configuration, outputDirectory: outputDirectory)
                }
                if !quiet && !json {
                    Console.error("dataset: \(clips) clip(s) in \(outputDirectory.appendingPathComponent(DatasetIndex.fileslist).path)\n")
                }
                // Then files no result names any more go: superseded outputs, and with --prune those
                // of inputs that left the input directory.
                let removed = try exclusive.run { try engine.collectOutputs(prune: prune) }
                if !quiet && !json && !removed.isEmpty {
                    Console.error("removed \(removed.count) output file(s) no result names any more\(prune ? " (superseded, or of inputs no longer present)" : " (superseded)")\n")
                }
                let failing = try ledger.failedItems(maxAttempts: configuration.run.maxAttempts)
                summary.failing = RunSummary.Failing(retrying: failing.retrying, final: failing.final)
            } catch { throw fail(error) }
            (reporter as? LiveReporter)?.finish()
            withExtendedLifetime((locks, signals)) {}

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
