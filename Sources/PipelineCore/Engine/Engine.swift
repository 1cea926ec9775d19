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
    /// Run each stage over all its items before the next one starts, as releases before the work
    /// queue did (`ClaimPlan.stageBarriers`): the baseline of the first-publish benchmark.
    public var stageBarriers: Bool
    /// Other processes, perhaps on other hosts, work on the same ledger at the same time
    /// (PostgreSQL): a run counts as gone only when its heartbeat is older than a lease, and the
    /// jobs one process does for all (discovery, planning, the index, the clean-up) run inside
    /// `exclusive`.
    public var sharedLedger = false
    /// Only these stages are claimed (`pipelined work --stages`); nil: every planned stage.
    public var claimedStages: Set<String>?
    /// Inference devices (`pipelined work --devices`): each gets a lane of its own that runs the
    /// model-backed stages (`Stage.usesDevice`), one model replica per device, while the `jobs`
    /// lanes run the others. Empty: every lane runs every stage on `inference.device`.
    public var devices: [String] = []
    /// Keep working after the queue is empty (`pipelined work`); nil: a one-shot `run`.
    public var daemon: DaemonOptions?

    public init(inputDirectory: URL, outputDirectory: URL, jobs: Int, until: String? = nil, traceFile: String? = nil, version: String,
                maxGoneShare: Double = 1, stageBarriers: Bool = false) {
        self.stageBarriers = stageBarriers
        self.inputDirectory = inputDirectory
        self.outputDirectory = outputDirectory
        self.jobs = jobs
        self.until = until
        self.traceFile = traceFile
        self.version = version
        self.maxGoneShare = maxGoneShare
    }
}

/// What `pipelined work` adds to a run: it keeps claiming until it is told to stop, notices new
/// and changed inputs, takes back what dead workers held, and keeps the dataset index current.
public struct DaemonOptions: Sendable {
    /// A full rescan of the input folder at least this often (the watcher's events are hints).
    public var rescanInterval: TimeInterval
    /// Seconds a file's size and mtime must stand still before it is taken (`InputSettling`).
    public var settle: TimeInterval
    /// After a stop signal, how long items in flight may take before they are given back.
    public var grace: TimeInterval
    /// How often an idle worker asks the ledger for work (other workers' commits queue work).
    public var pollInterval: TimeInterval = 1
    /// The dataset index is rewritten at most this often while clips are being published.
    public var indexInterval: TimeInterval = 15
    public var watcher: InputWatcher?
    /// Rewrites the dataset index and removes the files no result names (the CLI's job, which
    /// the engine runs inside its exclusive section when something was decided since the last).
    public var refreshIndex: @Sendable () throws -> Void

    public init(rescanInterval: TimeInterval, settle: TimeInterval, grace: TimeInterval, watcher: InputWatcher?,
                refreshIndex: @escaping @Sendable () throws -> Void) {
        self.rescanInterval = rescanInterval; self.settle = settle; self.grace = grace; self.watcher = watcher
        self.refreshIndex = refreshIndex
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
    /// Per stage, the items queued and in flight (at the start, about once a second while items
    /// finish, and when the work is done).
    case queue([StageQueue])
    /// A worker lane took an item (`device`: the lane's inference device, if it has one).
    case claimed(stage: String, item: String, device: String?)
    case itemFinished(stage: String, item: String, state: ItemState, reason: String?, seconds: Double)
    /// A long-running worker rescanned the input folder (what changed; files not settled yet).
    case rescanned(SourceSync, unsettled: Int)
    /// A long-running worker gave back, on stopping, the items its grace did not let it finish.
    case released(items: Int)
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

/// Discovers inputs, resumes unfinished work and runs the stages over a bounded pool, claiming
/// items from the store's work queue.
public struct Engine: Sendable {
    public let store: any Ledger
    public let configuration: PipelineConfiguration
    public let stages: [any Stage]
    public let options: EngineOptions
    public let reporter: any ProgressReporter
    public let cancellation: CancellationFlag
    /// Where the jobs one process does for all run (see `ExclusiveSection`).
    public let exclusive: any ExclusiveSection

    public init(store: any Ledger, configuration: PipelineConfiguration, stages: [any Stage], options: EngineOptions,
                reporter: any ProgressReporter, cancellation: CancellationFlag = CancellationFlag(),
                exclusive: any ExclusiveSection = HeldByCaller()) {
        self.exclusive = exclusive
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

    /// `plannedStages` as the store hands out their work.
    public var claimPlan: ClaimPlan {
        let planned = plannedStages
        return ClaimPlan(steps: planned.indices.map { i in
            ClaimPlan.Step(stage: planned[i].stage.id, unit: planned[i].stage.unit, fingerprint: planned[i].fingerprint,
                           upstream: i == 0 ? nil : ClaimPlan.Upstream(stage: planned[i - 1].stage.id, unit: planned[i - 1].stage.unit,
                                                                       fingerprint: planned[i - 1].fingerprint))
        }, maxAttempts: configuration.run.maxAttempts, stageBarriers: options.stageBarriers, retriesWithinRun: options.daemon != nil)
    }

    /// Runs everything that can run. The caller holds the `RunLock` (SQLite), or passes the
    /// ledger's `exclusive` section (PostgreSQL).
    public func run() async throws -> RunSummary {
        // Nothing is recorded before discovery has shown that the input folder is really there
        // (an unmounted disk stops the run here). (`PipelineStore(path:)` already refused a damaged
        // database.)
        let outputs = OutputFiles(root: options.outputDirectory)
        let plan = claimPlan
        // The jobs done once for everybody: discovery, taking back what dead runs held, the check
        // for lost files, and the planning pass that queues what is claimable.
        let settling = options.daemon.map { InputSettling(settle: $0.settle) }
        let (sync, runId) = try exclusive.run { () throws -> (SourceSync, Int64) in
            let sync = try store.syncSources(discover(settling: settling).files, maxGoneShare: options.maxGoneShare,
                                             rejectDuplicates: configuration.broken.rejectDuplicates)
            let runId = try store.beginRun(host: ProcessInfo.processInfo.hostName, pid: getpid(), version: options.version,
                                           devices: plannedStages.contains { $0.stage.usesDevice } ? options.devices : []).id!
            // With a local ledger the caller holds the RunLock, so no other run on this database is
            // alive: whatever is still marked running was left by a process that died. A shared
            // ledger's other runs are alive while they heartbeat.
            let shared = options.sharedLedger
            let reclaimed = try store.reclaimAbandonedWork(currentRun: runId, maxAttempts: configuration.run.maxAttempts,
                                                           isAlive: { _ in shared })
            let orphans = outputs.removeOrphanTemporaries(excluding: [options.inputDirectory], otherHosts: try otherHosts())
                + outputs.removeStrayOutputs(known: try store.knownArtifactPaths(), olderThan: 2 * Lease.duration,
                                             excluding: [options.inputDirectory]).count
            reporter.report(.reclaimed(items: reclaimed, temporaries: orphans))
            let missing = try store.supersedeResultsWithMissingFiles(order: stages.map(\.id), exists: outputs.exists)
            if missing > 0 { reporter.report(.missingOutputs(results: missing)) }
            try store.enqueueClaimable(plan)
            return (sync, runId)
        }

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

        summary.counts = try await work(plan, runId: runId, settling: settling, context: StageContext(
            store: store, configuration: configuration, inputDirectory: options.inputDirectory,
            outputDirectory: options.outputDirectory, outputs: outputs,
            decoderThreads: max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, options.jobs)),
            upstreamFingerprint: "", chainFingerprints: [:]))
        // The heartbeat stops before the run is marked finished: a late beat must not mark it alive.
        heartbeat.cancel()
        _ = await heartbeat.result
        summary.interrupted = cancellation.isCancelled
        try store.finishRun(id: runId, status: summary.interrupted ? .interrupted : .finished, counts: metricsJSON(summary.counts))
        return summary
    }

    /// On a shared ledger, what the janitor of temporaries knows about other hosts' writers: which
    /// the ledger knows alive (a host's name may be written short or fully qualified).
    func otherHosts() throws -> OutputFiles.OtherHosts? {
        guard options.sharedLedger else { return nil }
        let live: [(host: String, pid: Int32)] = try store.liveWorkers()
        return OutputFiles.OtherHosts(isAlive: { host, pid in
            live.contains { worker in
                worker.pid == pid && (worker.host == host || worker.host.hasPrefix(host + ".") || host.hasPrefix(worker.host + "."))
            }
        }, staleAfter: 2 * Lease.duration)
    }

    /// The input directory's files, hashed where size or mtime moved (`PipelineStore.needsHash`),
    /// `jobs` files at a time. With `settling` (a long-running worker), files that have not stood
    /// still long enough are left for a later scan (`InputSettling`), and not hashed.
    func discover(settling: InputSettling? = nil) throws -> (files: [DiscoveredFile], unsettled: Int, nextSettled: Date?) {
        var files = try Discovery.scan(options.inputDirectory)
        let known = try store.sourcesByPath()
        var nextSettled: Date?
        var unsettled = 0
        if let settling {
            let scanned = files.count
            (files, nextSettled) = settling.filter(files, known: known)
            unsettled = nextSettled == nil ? 0 : max(1, scanned - files.count)
        }
        let wanted = files.indices.filter { files[$0].contentHash == nil && PipelineStore.needsHash(files[$0], known: known[files[$0].relativePath]) }
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
        return (files, unsettled, nextSettled)
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

    /// One worker lane: what it carries from item to item, its device, and which steps it claims.
    private struct Lane {
        var carry = WorkerLane()
        var device: String?
        /// Plan step indices this lane claims (nil: all).
        var only: Set<Int>?
        var previous: ClaimedWork?
    }

    /// The lanes of this worker: `jobs` lanes, plus one per device for the model-backed stages when
    /// devices are given (the `jobs` lanes then run only the other stages).
    private func lanes(_ planned: [any Stage]) -> [Lane] {
        let all = Set(planned.indices)
        let claimed = options.claimedStages.map { names in Set(planned.indices.filter { names.contains(planned[$0].id) }) } ?? all
        let modelSteps = Set(planned.indices.filter { planned[$0].usesDevice })
        var lanes: [Lane] = []
        if options.devices.isEmpty || modelSteps.isEmpty {
            lanes = (0..<max(1, options.jobs)).map { _ in Lane(only: claimed == all ? nil : claimed) }
        } else {
            let cpu = claimed.subtracting(modelSteps), model = claimed.intersection(modelSteps)
            if !cpu.isEmpty { lanes += (0..<max(1, options.jobs)).map { _ in Lane(only: cpu) } }
            if !model.isEmpty { lanes += options.devices.map { Lane(device: $0, only: model) } }
        }
        return lanes
    }

    /// Claims and runs items until nothing is claimable and nothing is in flight (a one-shot run,
    /// or a cancelled one), or, for a long-running worker (`options.daemon`), until it is told to
    /// stop: at most one item per lane at once, each on its own thread, with no barrier between
    /// stages — an item moves on as soon as its upstream result is committed. Each lane keeps a
    /// `WorkerLane` from one item to the next. Returns, per stage, how many items went to each state.
    private func work(_ plan: ClaimPlan, runId: Int64, settling: InputSettling?, context base: StageContext) async throws -> [String: [String: Int]] {
        // Each step's context: its upstream fingerprint chain and every earlier stage's.
        var contexts: [StageContext] = []
        var chain: [String: String] = [:]
        for (stage, _, upstream) in plannedStages {
            var context = base
            context.upstreamFingerprint = upstream
            context.chainFingerprints = chain
            contexts.append(context)
            chain[stage.id] = Fingerprint.of(stage.id, stage.outputFingerprint, upstream)
        }
        let planned = plannedStages.map(\.stage)
        let order = stages.map(\.id)
        let daemon = options.daemon
        let threads = ItemThreads()

        var counts: [String: [String: Int]] = [:]
        var lanes = self.lanes(planned)
        var free = Array(lanes.indices)
        var lastQueueReport = Date.distantPast
        func reportQueue(force: Bool) {
            guard force || Date().timeIntervalSince(lastQueueReport) >= 1, let queue = try? store.queue(plan) else { return }
            lastQueueReport = Date()
            reporter.report(.queue(queue))
        }
        reportQueue(force: true)
        defer { lanes.forEach { $0.carry.clear() } }

        // A long-running worker's housekeeping, between claims.
        var housekeeping = daemon.map { Housekeeping(options: $0, rescueInterval: Lease.duration / 4) }
        var cancelledAt: Date?
        var abandoned = false

        enum Event { case finished(lane: Int, stage: String, state: ItemState?), tick }
        try await withThrowingTaskGroup(of: Event.self) { group in
            var inFlight = 0
            var tickPending = false
            func scheduleTick() {
                guard let daemon, !tickPending, !abandoned else { return }
                tickPending = true
                group.addTask {
                    try? await Task.sleep(nanoseconds: UInt64(daemon.pollInterval * 1e9))
                    return .tick
                }
            }
            func claimWhileFree() throws {
                // Lanes with the same steps share an answer: once one finds nothing, the others would too.
                var empty = Set<Set<Int>?>()
                var k = 0
                while !cancellation.isCancelled, k < free.count {
                    let index = free[k]
                    guard !empty.contains(lanes[index].only) else { k += 1; continue }
                    let after = lanes[index].carry.isCarrying ? lanes[index].previous : nil
                    guard let work = try store.claim(plan, run: runId, after: after, only: lanes[index].only) else {
                        empty.insert(lanes[index].only)
                        k += 1
                        continue
                    }
                    free.remove(at: k)
                    // What a lane carries is for the next item of the same stage only.
                    if lanes[index].previous?.step != work.step { lanes[index].carry.clear() }
                    lanes[index].previous = work
                    var context = contexts[work.step]
                    context.lane = lanes[index].carry
                    context.device = lanes[index].device
                    let stage = planned[work.step]
                    let item = WorkItem(source: work.source, sourcePath: path(of: work.source), clip: work.clip)
                    let downstream = Array(order.drop { $0 != stage.id }.dropFirst())
                    let next = work.step + 1 < plan.steps.count ? plan.steps[work.step + 1] : nil
                    reporter.report(.claimed(stage: stage.id, item: item.name, device: lanes[index].device))
                    inFlight += 1
                    group.addTask {
                        .finished(lane: index, stage: stage.id,
                                  state: try await process(stage, claim: work.claim, item: item, context: context, downstream: downstream,
                                                           next: next, threads: threads))
                    }
                }
            }
            try claimWhileFree()
            scheduleTick()
            while inFlight > 0 || tickPending, let event = try await group.next() {
                switch event {
                case let .finished(lane, stage, state):
                    inFlight -= 1
                    free.append(lane)
                    if let state {
                        counts[stage, default: [:]][state.rawValue, default: 0] += 1
                        housekeeping?.decided = true
                    }
                case .tick:
                    tickPending = false
                    if cancellation.isCancelled {
                        let since = cancelledAt ?? Date()
                        cancelledAt = since
                        if let daemon, inFlight > 0, Date().timeIntervalSince(since) >= daemon.grace {
                            // The grace is over: what is still running is given back to the ledger
                            // (below) and its threads' late outcomes are dropped.
                            abandoned = true
                            threads.abandonAll()
                        }
                        if inFlight > 0 { scheduleTick() }
                    } else {
                        try housekeeping?.run(engine: self, plan: plan, runId: runId, settling: settling, idle: inFlight == 0)
                        scheduleTick()
                    }
                }
                try claimWhileFree()
                reportQueue(force: inFlight == 0)
            }
        }
        if abandoned {
            let released = try store.release(run: runId)
            reporter.report(.released(items: released))
        }
        // Whatever was decided since the last index is in the index when a worker stops.
        if let daemon, housekeeping?.decided ?? false { try exclusive.run { try daemon.refreshIndex() } }
        return counts
    }

    /// A long-running worker's periodic jobs: rescans of the input folder, taking back what dead
    /// workers held (on a shared ledger), and the dataset index.
    private struct Housekeeping {
        var options: DaemonOptions
        var rescueInterval: TimeInterval
        var lastScan = Date()
        var nextSettled: Date?
        var lastRescue = Date()
        /// Stray outputs are looked for at start and then this often (a walk of every output folder).
        var strayInterval: TimeInterval = 1800
        var lastStrays = Date()
        var lastIndex = Date.distantPast
        /// Something was decided since the index was last written.
        var decided = false

        mutating func run(engine: Engine, plan: ClaimPlan, runId: Int64, settling: InputSettling?, idle: Bool) throws {
            let now = Date()
            let changed = options.watcher?.take()
            if changed != nil || now.timeIntervalSince(lastScan) >= options.rescanInterval || nextSettled.map({ now >= $0 }) ?? false {
                lastScan = now
                let result = try engine.exclusive.run { () throws -> (SourceSync, Int, Date?) in
                    let found = try engine.discover(settling: settling)
                    let sync = try engine.store.syncSources(found.files, maxGoneShare: engine.options.maxGoneShare,
                                                            rejectDuplicates: engine.configuration.broken.rejectDuplicates)
                    if sync.new + sync.changed + sync.gone + sync.returned > 0 { try engine.store.enqueueClaimable(plan) }
                    return (sync, found.unsettled, found.nextSettled)
                }
                nextSettled = result.2
                if result.0.new + result.0.changed + result.0.gone + result.0.returned > 0 {
                    decided = true
                    engine.reporter.report(.rescanned(result.0, unsettled: result.1))
                } else if result.1 > 0 {
                    engine.reporter.report(.rescanned(result.0, unsettled: result.1))
                }
            }
            if engine.options.sharedLedger, now.timeIntervalSince(lastRescue) >= rescueInterval {
                lastRescue = now
                let reclaimed = try engine.exclusive.run {
                    try engine.store.reclaimAbandonedWork(currentRun: runId, maxAttempts: engine.configuration.run.maxAttempts, isAlive: { _ in true })
                }
                // And the temporaries of workers that died on any host.
                let temporaries = OutputFiles(root: engine.options.outputDirectory)
                    .removeOrphanTemporaries(excluding: [engine.options.inputDirectory], otherHosts: try engine.otherHosts())
                if reclaimed + temporaries > 0 { engine.reporter.report(.reclaimed(items: reclaimed, temporaries: temporaries)) }
            }
            if now.timeIntervalSince(lastStrays) >= strayInterval {
                lastStrays = now
                let strays = try engine.exclusive.run {
                    OutputFiles(root: engine.options.outputDirectory).removeStrayOutputs(
                        known: try engine.store.knownArtifactPaths(), olderThan: 2 * Lease.duration, excluding: [engine.options.inputDirectory])
                }
                if !strays.isEmpty { engine.reporter.report(.reclaimed(items: 0, temporaries: strays.count)) }
            }
            if decided, idle || now.timeIntervalSince(lastIndex) >= options.indexInterval {
                decided = false
                lastIndex = now
                try engine.exclusive.run { try options.refreshIndex() }
            }
        }
    }

    private func process(_ stage: any Stage, claim: StageResultRecord, item: WorkItem, context: StageContext,
                         downstream: [String], next: ClaimPlan.Step?, threads: ItemThreads) async throws -> ItemState? {
        trace(stage.id, item.itemKey, claim.fingerprint)
        let started = Date()
        // Stage work blocks (decoding, encoding): it runs on its own thread, not the cooperative pool.
        guard let result = await threads.run({ try stage.run(item, in: context) }) else {
            return nil // abandoned at the end of a stop's grace: the item is given back, not recorded
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
            try store.recordOutcome(claim, recorded, downstreamStages: downstream, next: next, maxAttempts: configuration.run.maxAttempts)
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

/// The threads items run on. A stop whose grace is over abandons the items still running: their
/// awaiting tasks return at once, and the threads' late outcomes are dropped.
final class ItemThreads: @unchecked Sendable {
    // @unchecked: every stored property is guarded by `lock`.
    private let lock = NSLock()
    private var waiting: [Int: CheckedContinuation<Result<StageOutcome, any Error>?, Never>] = [:]
    private var nextId = 0
    private var abandoned = false

    /// The outcome of `body` on a thread of its own, or nil when abandoned.
    func run(_ body: @escaping @Sendable () throws -> StageOutcome) async -> Result<StageOutcome, any Error>? {
        await withCheckedContinuation { continuation in
            lock.lock()
            guard !abandoned else { lock.unlock(); continuation.resume(returning: nil); return }
            let id = nextId
            nextId += 1
            waiting[id] = continuation
            lock.unlock()
            Thread.detachNewThread { [self] in
                let result = Result { try body() }
                lock.lock()
                let waiter = waiting.removeValue(forKey: id)
                lock.unlock()
                waiter?.resume(returning: result)
            }
        }
    }

    func abandonAll() {
        lock.lock()
        abandoned = true
        let all = Array(waiting.values)
        waiting = [:]
        lock.unlock()
        all.forEach { $0.resume(returning: nil) }
    }
}
