import Foundation
@testable import PipelineCore
import Synchronization
import Testing

/// The engine as `pipelined work` drives it, over stand-in stages: device lanes for model-backed
/// stages, `--stages`, a worker that keeps going and takes files that appear (only once they stand
/// still), and a stop whose grace runs out.
@Suite struct WorkerLoopTests {
    /// Every execution as "stage item device".
    final class Log: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
        func count(_ prefix: String) -> Int { all.filter { $0.hasPrefix(prefix) }.count }
    }

    /// Holds the items of a stage until opened (a stage that never finishes while the test needs it).
    final class Gate: Sendable {
        private let open = Mutex(false)
        func release() { open.withLock { $0 = true } }
        func wait() { while !open.withLock({ $0 }) { usleep(10_000) } }
    }

    struct FakeStage: Stage {
        var stageID: StageID
        var unit: WorkUnit
        var log: Log
        var usesDevice = false
        var gate: Gate?
        var fingerprint: String { "fake-\(stageID.rawValue)" }
        func run(_ item: WorkItem, in context: StageContext) throws -> StageOutcome {
            log.append("\(stageID.rawValue) \(item.name) \(context.device ?? "-")")
            usleep(2000)
            gate?.wait()
            guard stageID == .segment else { return .done() }
            let clips = (0..<3).map { ClipRecord(sourceId: item.source.id!, sceneIndex: 0, segmentIndex: $0, startFrame: $0 * 100, endFrame: $0 * 100 + 100) }
            return .done(metrics: nil, artifact: nil, handOn: HandOn(clips: clips))
        }
    }

    struct Silent: ProgressReporter { func report(_ event: ProgressEvent) {} }

    static func stages(_ log: Log, alignGate: Gate? = nil) -> [any Stage] {
        [FakeStage(stageID: .broken, unit: .source, log: log), FakeStage(stageID: .segment, unit: .source, log: log),
         FakeStage(stageID: .align, unit: .clip, log: log, gate: alignGate), FakeStage(stageID: .sync, unit: .clip, log: log, usesDevice: true),
         FakeStage(stageID: .publish, unit: .clip, log: log)]
    }

    static func folder(sources: Int) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("workerloop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("in"), withIntermediateDirectories: true)
        for n in 0..<sources { try Data("source \(n)".utf8).write(to: folder.appendingPathComponent("in/v\(n).mp4")) }
        return folder
    }

    static func options(_ folder: URL, jobs: Int) -> EngineOptions {
        EngineOptions(inputDirectory: folder.appendingPathComponent("in"), outputDirectory: folder.appendingPathComponent("out"), jobs: jobs, version: "test")
    }

    /// Runs the long-running worker tests' tasks (the engine, its item tasks, the waits) on a
    /// serial dispatch queue of their own instead of Swift's cooperative pool: the pool has a thread
    /// per core, and long synchronous tests of other suites (training, the chaos driver) hold them
    /// for many minutes, which stalled a worker here for more than its 600 s backstop in CI.
    final class OwnExecutor: TaskExecutor, @unchecked Sendable {
        // @unchecked: the queue serialises every job.
        private let queue = DispatchQueue(label: "WorkerLoopTests")
        func enqueue(_ job: consuming ExecutorJob) {
            let job = UnownedJob(job)
            queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
        }
    }
    static let executor = OwnExecutor()

    /// Waits (up to `timeout` seconds) for `condition`. Generous: the engine and this wait run on
    /// Swift's cooperative pool (a thread per core), which tests running beside this one can keep
    /// busy for minutes; nothing here measures speed.
    static func eventually(_ timeout: Double = 600, _ condition: () -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return condition()
    }

    @Test func modelBackedStagesRunOnlyOnTheDeviceLanes() async throws {
        let folder = try Self.folder(sources: 4)
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = Log()
        var options = Self.options(folder, jobs: 2)
        options.devices = ["cuda:0", "cuda:1"]
        let summary = try await Engine(store: try PipelineStore.inMemory(), configuration: PipelineConfiguration(), stages: Self.stages(log),
                                       options: options, reporter: Silent()).run()
        #expect(summary.counts.mapValues { $0["done"] ?? 0 } == ["broken": 4, "segment": 4, "align": 12, "sync": 12, "publish": 12])
        for line in log.all {
            let device = String(line.split(separator: " ").last!)
            if line.hasPrefix("sync") { #expect(device.hasPrefix("cuda:"), "\(line)") } else { #expect(device == "-", "\(line)") }
        }
    }

    @Test func aWorkerClaimsOnlyItsStages() async throws {
        let folder = try Self.folder(sources: 3)
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = Log()
        let store = try PipelineStore.inMemory()
        var options = Self.options(folder, jobs: 2)
        options.claimedStages = ["broken", "segment"]
        let summary = try await Engine(store: store, configuration: PipelineConfiguration(), stages: Self.stages(log),
                                       options: options, reporter: Silent()).run()
        #expect(summary.counts.mapValues { $0["done"] ?? 0 } == ["broken": 3, "segment": 3])
        #expect(log.all.allSatisfy { $0.hasPrefix("broken") || $0.hasPrefix("segment") })
        // What it left is queued for the workers that run the rest.
        let engine = Engine(store: store, configuration: PipelineConfiguration(), stages: Self.stages(log), options: Self.options(folder, jobs: 2), reporter: Silent())
        #expect(try store.queue(engine.claimPlan).first { $0.stage == "align" }?.queued == 9)
    }

    /// A long-running worker takes a file that appears while it runs — once it has stood still for
    /// the settle time, never while it is still being written — rewrites the index when clips
    /// were decided, and stops when cancelled.
    @Test func aWorkerTakesFilesThatAppearOnceTheyStandStill() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await aWorkerTakesFilesThatAppearOnceTheyStandStillBody() }
    }

    func aWorkerTakesFilesThatAppearOnceTheyStandStillBody() async throws {
        let folder = try Self.folder(sources: 1)
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = Log()
        let indexWrites = Mutex(0)
        var options = Self.options(folder, jobs: 2)
        let input = folder.appendingPathComponent("in")
        options.daemon = DaemonOptions(rescanInterval: 0.3, settle: 1.5, grace: 10, watcher: InputWatcher(root: input)) {
            indexWrites.withLock { $0 += 1 }
        }
        let cancellation = CancellationFlag()
        let store = try PipelineStore.inMemory()
        let engine = Engine(store: store, configuration: PipelineConfiguration(), stages: Self.stages(log), options: options,
                            reporter: Silent(), cancellation: cancellation)
        let worker = Task(executorPreference: Self.executor) { try await engine.run() }
        defer { cancellation.cancel() }
        #expect(await Self.eventually { log.count("publish") == 3 }, "\(log.all)")

        // A file being written: its size changes every 0.3 s for 1.2 s (on a thread of its own, so
        // that a busy cooperative pool cannot stretch the pauses past the settle time); it must
        // not be taken before it stands still.
        let growing = input.appendingPathComponent("late.mp4")
        let lastWrite: Date = await withCheckedContinuation { done in
            Thread.detachNewThread {
                var last = Date()
                for k in 1...5 {
                    try? Data(repeating: UInt8(k), count: 1000 * k).write(to: growing)
                    last = Date()
                    usleep(300_000)
                }
                done.resume(returning: last)
            }
        }
        #expect(await Self.eventually { log.count("publish late.mp4") == 3 }, "\(log.all)")
        let taken = try #require(try store.sourcesByPath()["late.mp4"])
        #expect(taken.size == 5000, "took a partial file: \(taken.size) bytes")
        // Taken once: a partial take would have been checked again after the file changed.
        #expect(log.count("broken late.mp4") == 1, "\(log.all)")
        #expect(taken.discoveredAt.timeIntervalSince(lastWrite) >= 1.4, "taken \(taken.discoveredAt.timeIntervalSince(lastWrite)) s after the last write")
        #expect(await Self.eventually(5) { indexWrites.withLock { $0 } >= 1 })

        cancellation.cancel()
        let summary = try await worker.value
        #expect(summary.counts.mapValues { $0["done"] ?? 0 } == ["broken": 2, "segment": 2, "align": 6, "sync": 6, "publish": 6])
        #expect(Set(log.all).count == log.all.count, "an item ran twice: \(log.all)")
    }

    /// A stop whose grace runs out gives back what is still running: the worker returns without
    /// waiting for it, the items are pending and queued again, and another run finishes them.
    @Test func aStopPastItsGraceGivesBackWhatIsInFlight() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await aStopPastItsGraceGivesBackWhatIsInFlightBody() }
    }

    func aStopPastItsGraceGivesBackWhatIsInFlightBody() async throws {
        let folder = try Self.folder(sources: 1)
        defer { try? FileManager.default.removeItem(at: folder) }
        let log = Log()
        var options = Self.options(folder, jobs: 2)
        options.daemon = DaemonOptions(rescanInterval: 60, settle: 0, grace: 0.5, watcher: nil) {}
        let cancellation = CancellationFlag()
        let store = try PipelineStore(path: folder.appendingPathComponent("ledger.sqlite").path)
        let gate = Gate()
        defer { gate.release() }
        let engine = Engine(store: store, configuration: PipelineConfiguration(), stages: Self.stages(log, alignGate: gate), options: options,
                            reporter: Silent(), cancellation: cancellation)
        let worker = Task(executorPreference: Self.executor) { try await engine.run() }
        #expect(await Self.eventually { log.count("align") == 2 }, "\(log.all)")
        let stopped = Date()
        cancellation.cancel()
        let summary = try await worker.value
        // The items never finish until the gate opens: returning at all means they were abandoned.
        #expect(Date().timeIntervalSince(stopped) < 300, "waited for the items in flight past the grace")
        #expect(summary.interrupted)
        let align = Array(try store.currentResults(stage: "align").values)
        #expect(align.filter { $0.state == .pending }.count == 2 && align.allSatisfy { $0.state != .running && $0.attempts == 0 }, "\(align)")

        // Another (one-shot) run finishes them.
        let again = Log()
        let finish = try await Engine(store: store, configuration: PipelineConfiguration(), stages: Self.stages(again),
                                      options: Self.options(folder, jobs: 2), reporter: Silent()).run()
        #expect(finish.counts["publish"]?["done"] == 3)
        #expect(again.count("align") == 3)
    }
}
