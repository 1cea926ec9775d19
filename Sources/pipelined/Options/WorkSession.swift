import Foundation
import PipelineCore
import PostgresLedger
import Stages

/// What `run` and `work` set up before the engine starts, written once for both: the configuration
/// (model files checked), the folders (checked before anything is created), and the ledger — a
/// SQLite file under this host's locks, or a shared PostgreSQL database whose singleton jobs run
/// under its advisory lock. Errors are thrown as the `ExitCode` the user sees.
struct WorkSession {
    var configuration: PipelineConfiguration
    var outputDirectory: URL
    var ledger: any Ledger
    var exclusive: any ExclusiveSection
    /// The PostgreSQL URL, for a shared ledger.
    var postgresURL: String?
    /// Held while the session lives (SQLite: the database's and the output directory's locks).
    private var locks: [RunLock]

    static func open(inputDir: URL, store: StoreOptions, config: URL?, device: String?, waitSeconds: Double?, quiet: Bool) throws -> WorkSession {
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
        do { try Pipelined.Run.checkLayout(input: inputDir, output: outputDirectory, database: databasePath) } catch { throw fail(error) }
        do { try FileManager.default.createDirectory(at: outputDirectory, withIntermediateDirectories: true) } catch {
            throw fail(CLIError("cannot create the output directory \(outputDirectory.path): \(UserFacing.describe(error))"))
        }

        // A PostgreSQL ledger is shared: workers on any number of hosts work on it at once, and the
        // jobs one of them does for all are under the ledger's advisory lock instead of flocks.
        if let postgres = store.postgresURL {
            let database: PostgresLedgerDatabase
            do {
                database = try PostgresLedgerDatabase(url: postgres)
                try database.migrate()
            } catch { throw failOpeningLedger(error) }
            let exclusive = PostgresExclusiveSection(database: database) {
                if !quiet { Console.error("pipelined: waiting for another process's discovery, planning or index on \(database.maskedURL)\n") }
            }
            return WorkSession(configuration: configuration, outputDirectory: outputDirectory, ledger: database, exclusive: exclusive,
                               postgresURL: postgres, locks: [])
        }
        var locks: [RunLock]
        do {
            // The database's lock keeps two processes off one database; the output directory's
            // keeps two with different databases off one folder of files.
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
        let ledger: any Ledger
        do { ledger = try PipelineStore(path: databasePath) } catch { throw fail(error) }
        return WorkSession(configuration: configuration, outputDirectory: outputDirectory, ledger: ledger, exclusive: HeldByCaller(),
                           postgresURL: nil, locks: locks)
    }

    /// Rewrites the dataset index (`fileslist.txt`, `manifest.jsonl`) from what is published now,
    /// then removes the files no result names any more (with `prune`, also those of inputs gone
    /// from the input directory). Runs inside `exclusive`. Returns the clips indexed and the files removed.
    func refreshIndex(engine: Engine, prune: Bool) throws -> (clips: Int, removed: [String]) {
        // The index first: it never names a removed file.
        let clips = try exclusive.run {
            try DatasetIndex.write(store: ledger, configuration: configuration, outputDirectory: outputDirectory)
        }
        let removed = try exclusive.run { try engine.collectOutputs(prune: prune) }
        return (clips, removed)
    }

    /// The worker's engine.
    func engine(options: EngineOptions, reporter: any ProgressReporter, cancellation: CancellationFlag) -> Engine {
        var options = options
        options.sharedLedger = postgresURL != nil
        return Engine(store: ledger, configuration: configuration, stages: StageRegistry.stages(for: configuration),
                      options: options, reporter: reporter, cancellation: cancellation, exclusive: exclusive)
    }
}
