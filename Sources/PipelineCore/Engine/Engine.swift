import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// Everything a `run` needs to know besides the configuration.
public struct EngineOptions: Sendable {
    public var inputDirectory: URL
    public var outputDirectory: URL
    /// Items processed at once.
    public var jobs: Int
    /// Last stage to run (inclusive); nil runs all.
    public var until: String?
    /// When set, a line "stage<TAB>item<TAB>fingerprint" is appended here before each execution
    /// (the crash-safety test counts executions with it).
    public var traceFile: String?
    public var version: String
    /// Refuse to mark more than this share of the active sources gone in one run (1 = no limit).
    public var maxGoneShare: Double

    public init(inputDirectory: URL, outputDirectory: URL, jobs: Int, until: String? = nil, traceFile: String? = nil, version: String,
                maxGoneShare: Double = 1) {
        self.inputDirectory = inputDirectory
        self.outputDirectory = outputDirectory
        self.jobs = jobs
        self.until = until
        self.traceFile = traceFile
        self.version = version
        self.maxGoneShare = maxGoneShare
    }
}

/// What the engine reports while it works; the CLI turns it into a live display, lines or JSON.
public enum ProgressEvent: Sendable {
    case discovered(SourceSync, active: Int)
    case reclaimed(items: Int, temporaries: Int)
    /// New or changed inputs whose content is being hashed before the run starts.
    case hashing(files: Int, bytes: Int64)
    /// Decided results whose files were missing: made history, to be made again.
    case missingOutputs(results: Int)
    case stageStarted(stage: String, total: Int, alreadyDecided: Int, toDo: Int)
    case itemFinished(stage: String, item: String, state: ItemState, reason: String?, seconds: Double)
    case stageFinished(stage: String)
}

public protocol ProgressReporter: Sendable {
    func report(_ event: ProgressEvent)
}

/// Per stage, how many items this run moved to each state.
public struct RunSummary: Sendable, Codable {
    public var runId: Int64
    public var sources: SourceSync
    public var counts: [String: [String: Int]] = [:]
    public var interrupted = false
    /// Failed items of present sources after the run (this run's and earlier runs'), set by the caller.
    public var failing: Failing?
    public var failed: Int { counts.values.reduce(0) { $0 + ($1[ItemState.failed.rawValue] ?? 0) } }

    public struct Failing: Sendable, Codable {
        /// Waiting for a later run to retry them.
        public var retrying: Int
        /// Used up `run.max_attempts`.
        public var final: Int
        public init(retrying: Int, final: Int) { self.retrying = retrying; self.final = final }
    }
}

/// A value the caller guarantees to guard itself (here: one lock around every access).
final class UnsafeSendableBox<T>: @unchecked Sendable {
    // @unchecked: every access in `Engine.discover` holds its lock.
    var value: T
    init(_ value: T) { self.value = value }
}

/// Set from a signal handler; the engine stops claiming new work once it is set.
public final class CancellationFlag: @unchecked Sendable {
    // @unchecked: the one stored Bool is guarded by `lock`.
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func cancel() { lock.lock(); value = true; lock.unlock() }
    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

/// Discovers inputs, resumes unfinished work and runs the stages in order over a bounded pool.
public struct Engine: Sendable {
    public let store: PipelineStore
    public let configuration: PipelineConfiguration
    public let stages: [any Stage]
    public let options: EngineOptions
    public let reporter: any ProgressReporter
    public let cancellation: CancellationFlag

    public init(store: PipelineStore, configuration: PipelineConfiguration, stages: [any Stage], options: EngineOptions,
                reporter: any ProgressReporter, cancellation: CancellationFlag = CancellationFlag()) {
        self.store = store
        self.configuration = configuration
        self.stages = stages
        self.options = options
        self.reporter = reporter
        self.cancellation = cancellation
    }

    /// The stages this run executes, in order, with each one's chained fingerprint: a stage's
    /// results depend on its own settings and on what every stage upstream hands on.
    /// `upstream` is the chain of the earlier stages' output fingerprints: what the stage's input depends on.
    public var plannedStages: [(stage: any Stage, fingerprint: String, upstream: String)] {
        var result: [(any Stage, String, String)] = []
        var upstream = ""
        for stage in stages {
            result.append((stage, Fingerprint.of(stage.id, stage.fingerprint, upstream), upstream))
            upstream = Fingerprint.of(stage.id, stage.outputFingerprint, upstream)
            if stage.id == options.until { break }
        }
        return result
    }

    /// Runs everything that can run. The caller holds the `RunLock`.
    public func run() async throws -> RunSummary {
        // Nothing is recorded before discovery has shown that the input folder is really there
        // (an unmounted disk stops the run here). (`PipelineStore(path:)` already refused a damaged
        // database.)
        let sync = try store.syncSources(discover(), maxGoneShare: options.maxGoneShare,
                                         rejectDuplicates: configuration.broken.rejectDuplicates)

        let host = ProcessInfo.processInfo.hostName
        let run = try store.beginRun(host: host, pid: getpid(), version: options.version)
        let runId = run.id!
        // The caller holds the RunLock, so no other run on this database is alive: whatever is
        // still marked running was left by a process that died.
        let reclaimed = try store.reclaimAbandonedWork(currentRun: runId, maxAttempts: configuration.run.maxAttempts,
                                                       isAlive: { _ in false })
        let outputs = OutputFiles(root: options.outputDirectory)
        let orphans = outputs.removeOrphanTemporaries(excluding: [options.inputDirectory])
        reporter.report(.reclaimed(items: reclaimed, temporaries: orphans))
        let missing = try store.supersedeResultsWithMissingFiles(order: stages.map(\.id), exists: outputs.exists)
        if missing > 0 { reporter.report(.missingOutputs(results: missing)) }

        let sources = try store.activeSources()
        reporter.report(.discovered(sync, active: sources.count))

        var summary = RunSummary(runId: runId, sources: sync)
        let heartbeat = Task.detached { [store] in
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: UInt64(Lease.heartbeat * 1e9))
                try? store.heartbeat(run: runId)
            }
        }
        defer { heartbeat.cancel() }

        var context = StageContext(store: store, configuration: configuration, inputDirectory: options.inputDirectory,
                                   outputDirectory: options.outputDirectory, outputs: outputs,
                                   decoderThreads: max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, options.jobs)),
                                   upstreamFingerprint: "", chainFingerprints: [:])
        let planned = plannedStages
        var previous: (stage: any Stage, fingerprint: String)?
        for (stage, fingerprint, upstreamFingerprint) in planned {
            if cancellation.isCancelled { break }
            context.upstreamFingerprint = upstreamFingerprint
            defer { context.chainFingerprints[stage.id] = Fingerprint.of(stage.id, stage.outputFingerprint, upstreamFingerprint) }
            let downstream = stages.map(\.id).drop { $0 != stage.id }.dropFirst()
            let current = try store.currentResults(stage: stage.id)
            let upstream = try previous.map { try store.currentResults(stage: $0.stage.id) }
            let items: [WorkItem] = try stage.unit == .source
                ? sources.map { WorkItem(source: $0, sourcePath: path(of: $0)) }
                : store.clipsOfActiveSources().map { WorkItem(source: $0.source, sourcePath: path(of: $0.source), clip: $0.clip) }
            let eligible = items.filter { item in
                guard let previous, let upstream else { return true }
                // The upstream result for this item: its clip's, or its source's for the first clip stage.
                let key = previous.stage.unit == .clip ? item.itemKey : "s\(item.source.id!)"
                let row = upstream[key]
                return row?.state == ItemState.done && row?.fingerprint == previous.fingerprint
            }
            let undecided = eligible.filter { item in
                guard let row = current[item.itemKey], row.fingerprint == fingerprint else { return true }
                return !(row.state == ItemState.done || row.state == ItemState.rejected
                         || (row.state == ItemState.failed && row.attempts >= configuration.run.maxAttempts))
            }
            // Items whose last run died while working on them go last: the rest of the dataset
            // progresses, and a file that crashes the process ends up alone, where it can be blamed.
            let interrupted = undecided.filter { current[$0.itemKey]?.reason?.hasPrefix(PipelineStore.interruptedPrefix) == true }
            let regular = undecided.filter { current[$0.itemKey]?.reason?.hasPrefix(PipelineStore.interruptedPrefix) != true }
            reporter.report(.stageStarted(stage: stage.id, total: eligible.count, alreadyDecided: eligible.count - undecided.count, toDo: undecided.count))
            let counts = try await execute(stage, fingerprint: fingerprint, items: regular, deferred: interrupted, runId: runId,
                                           context: context, downstream: Array(downstream))
            summary.counts[stage.id] = counts
            reporter.report(.stageFinished(stage: stage.id))
            previous = (stage, fingerprint)
        }
        summary.interrupted = cancellation.isCancelled
        try store.finishRun(id: runId, status: summary.interrupted ? .interrupted : .finished, counts: metricsJSON(summary.counts))
        return summary
    }

    /// The input directory's files, hashed where size or mtime moved (`PipelineStore.needsHash`),
    /// `jobs` files at a time.
    func discover() throws -> [DiscoveredFile] {
        var files = try Discovery.scan(options.inputDirectory)
        let known = try store.sourcesByPath()
        let wanted = files.indices.filter { PipelineStore.needsHash(files[$0], known: known[files[$0].relativePath]) }
        if !wanted.isEmpty { reporter.report(.hashing(files: wanted.count, bytes: wanted.reduce(0) { $0 + files[$1].size })) }
        let results = UnsafeSendableBox([Result<String, any Error>?](repeating: nil, count: wanted.count))
        let root = options.inputDirectory
        let snapshot = files
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: min(max(1, options.jobs), max(1, wanted.count))) { worker in
            for k in stride(from: worker, to: wanted.count, by: max(1, options.jobs)) {
                let result = Result { try Fingerprint.ofWholeFile(atPath: root.appendingPathComponent(snapshot[wanted[k]].relativePath).path) }
                lock.lock(); results.value[k] = result; lock.unlock()
            }
        }
        for (k, index) in wanted.enumerated() {
            switch results.value[k]! {
            case let .success(hash): files[index].contentHash = hash
            case let .failure(error): files[index].problem = "the file cannot be read: \(error)"
            }
        }
        return files
    }

    /// Files no current result names (history, a changed source's old outputs, with `prune` the
    /// outputs of sources gone from the input directory) are removed; run after the dataset index
    /// was rewritten, so the index never names a removed file. Returns the paths removed.
    public func collectOutputs(prune: Bool) throws -> [String] {
        if prune { _ = try store.supersedeOutputsOfGoneSources(order: stages.map(\.id)) }
        let outputs = OutputFiles(root: options.outputDirectory)
        let unowned = try store.unownedArtifacts()
        let (removed, absent) = outputs.removeArtifacts(unowned, excluding: [options.inputDirectory])
        try store.forgetRetiredArtifacts(removed + absent)
        return removed
    }

    private func path(of source: SourceRecord) -> String {
        options.inputDirectory.appendingPathComponent(source.relativePath).path
    }

    /// Runs `stage` over `items`, at most `jobs` at once, each on its own thread, in `WorkQueue`'s
    /// order; each worker keeps a `WorkerLane` for the stage's items.
    private func execute(_ stage: any Stage, fingerprint: String, items: [WorkItem], deferred: [WorkItem], runId: Int64,
                         context: StageContext, downstream: [String]) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        var queue = WorkQueue(items: items, deferred: deferred)
        let lanes = (0..<max(1, options.jobs)).map { _ in WorkerLane() }
        defer { lanes.forEach { $0.clear() } }
        try await withThrowingTaskGroup(of: (lane: Int, index: Int, state: ItemState?).self) { group in
            func startNext(lane: Int, after previous: Int?) {
                guard !cancellation.isCancelled, let index = queue.next(after: previous) else { return }
                let item = queue[index]
                var context = context
                context.lane = lanes[lane]
                group.addTask {
                    (lane, index, try await process(stage, fingerprint: fingerprint, item: item, runId: runId, context: context, downstream: downstream))
                }
            }
            for lane in lanes.indices { startNext(lane: lane, after: nil) }
            while let (lane, index, state) = try await group.next() {
                if let state { counts[state.rawValue, default: 0] += 1 }
                queue.finished(index)
                startNext(lane: lane, after: index)
            }
        }
        return counts
    }

    private func process(_ stage: any Stage, fingerprint: String, item: WorkItem, runId: Int64,
                         context: StageContext, downstream: [String]) async throws -> ItemState? {
        guard let claim = try store.claimWork(stage: stage.id, sourceId: item.source.id!, clipId: item.clip?.id, itemKey: item.itemKey, fingerprint: fingerprint,
                                              run: runId, maxAttempts: configuration.run.maxAttempts) else { return nil }
        trace(stage.id, item.itemKey, fingerprint)
        let started = Date()
        let result: Result<StageOutcome, any Error> = await withCheckedContinuation { continuation in
            // Stage work blocks (decoding, encoding): it runs on its own thread, not the cooperative pool.
            Thread.detachNewThread {
                continuation.resume(returning: Result { try stage.run(item, in: context) })
            }
        }
        let seconds = Date().timeIntervalSince(started)
        var recorded: RecordedOutcome
        switch result {
        case let .success(.done(metrics, artifact, handOn)):
            recorded = RecordedOutcome(state: .done, metrics: metrics, artifactPath: artifact, seconds: seconds, handOn: handOn)
        case let .success(.rejected(reason, metrics, handOn)):
            recorded = RecordedOutcome(state: .rejected, reason: reason, metrics: metrics, seconds: seconds, handOn: handOn)
        case let .failure(error):
            let backoff = configuration.run.retryBackoffSeconds * pow(2, Double(claim.attempts - 1))
            recorded = RecordedOutcome(state: .failed, reason: String(describing: error), seconds: seconds,
                                       nextAttemptAt: Date().addingTimeInterval(backoff))
        }
        do {
            try store.recordOutcome(claim, recorded, downstreamStages: downstream)
        } catch let error as StoreError {
            guard case .leaseLost = error else { throw error }
            // Another run holds the item now; its outcome, not this one, counts.
            reporter.report(.itemFinished(stage: stage.id, item: item.name, state: .failed, reason: error.description, seconds: seconds))
            return nil
        }
        reporter.report(.itemFinished(stage: stage.id, item: item.name, state: recorded.state, reason: recorded.reason, seconds: seconds))
        return recorded.state
    }

    private func trace(_ stage: String, _ item: String, _ fingerprint: String) {
        guard let path = options.traceFile else { return }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let line = "\(stage)\t\(item)\t\(fingerprint)\n"
        _ = line.withCString { write(fd, $0, strlen($0)) }
    }
}
