import Foundation
@testable import PipelineCore
import PipelineTestSupport
import PostgresLedger
import Synchronization
import Testing

/// The ledger's contract, run against both drivers: SQLite (`PipelineStore`) and a real
/// PostgreSQL server (`PostgresLedgerDatabase`, one fresh database per test). What `claim` hands
/// out, in which order, what puts items into the queue, and that a lost lease never commits.
@Suite(.serialized) struct LedgerConformanceTests {
    /// broken → segment (sources) → align → publish (clips).
    static let plan = ClaimPlan(steps: [
        .init(stage: "broken", unit: .source, fingerprint: "b", upstream: nil),
        .init(stage: "segment", unit: .source, fingerprint: "s", upstream: .init(stage: "broken", unit: .source, fingerprint: "b")),
        .init(stage: "align", unit: .clip, fingerprint: "a", upstream: .init(stage: "segment", unit: .source, fingerprint: "s")),
        .init(stage: "publish", unit: .clip, fingerprint: "p", upstream: .init(stage: "align", unit: .clip, fingerprint: "a")),
    ], maxAttempts: 3)

    static func store(_ driver: LedgerDriver, sources: Int) throws -> (any Ledger, run: Int64) {
        let store = try driver.makeLedger()
        _ = try store.syncSources((0..<sources).map { DiscoveredFile(relativePath: "v\($0).mp4", size: 1, mtime: 1, contentHash: "h\($0)") })
        return (store, try store.beginRun(host: "h", pid: 1, version: "t").id!)
    }

    /// Commits `work` as done; a segment result cuts its source into `clips` clips of 100 frames.
    static func finish(_ store: any Ledger, _ work: ClaimedWork, plan: ClaimPlan = plan, clips: Int = 2,
                       state: ItemState = .done, retryAt: Date? = nil) throws {
        var handOn = HandOn()
        if work.claim.stage == "segment" {
            handOn.clips = (0..<clips).map { ClipRecord(sourceId: work.source.id!, sceneIndex: 0, segmentIndex: $0, startFrame: $0 * 100, endFrame: $0 * 100 + 100) }
        }
        let downstream = plan.steps.map(\.stage).drop { $0 != work.claim.stage }.dropFirst()
        try store.recordOutcome(work.claim, RecordedOutcome(state: state, reason: state == .done ? nil : "because", seconds: 1,
                                                             nextAttemptAt: retryAt, handOn: handOn),
                                downstreamStages: Array(downstream), next: plan.step(after: work.claim.stage), maxAttempts: plan.maxAttempts)
    }

    static func name(_ work: ClaimedWork?) -> String {
        guard let work else { return "nothing" }
        return "\(work.claim.stage) \(work.clip.map { "\(work.source.relativePath)#\($0.segmentIndex)" } ?? work.source.relativePath)"
    }

    /// Later stages go first, and a done result queues its item (for the first clip stage: every
    /// clip of its source) for the next stage in the same transaction.
    @Test(arguments: LedgerDriver.allCases) func laterStagesFirstAndACommitQueuesTheNextStage(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 2)
        #expect(try store.enqueueClaimable(Self.plan) == 2)
        var order: [String] = []
        while let work = try store.claim(Self.plan, run: run) {
            order.append(Self.name(work))
            try Self.finish(store, work)
        }
        #expect(order == ["broken v0.mp4", "segment v0.mp4", "align v0.mp4#0", "publish v0.mp4#0", "align v0.mp4#1", "publish v0.mp4#1",
                          "broken v1.mp4", "segment v1.mp4", "align v1.mp4#0", "publish v1.mp4#0", "align v1.mp4#1", "publish v1.mp4#1"])
        #expect(try store.queue(Self.plan).allSatisfy { $0.queued == 0 && $0.running == 0 })
        // Nothing left: planning again finds every item decided.
        #expect(try store.enqueueClaimable(Self.plan) == 0)
    }

    /// With barriers (the engine before the queue), a stage starts once every earlier one is idle.
    @Test(arguments: LedgerDriver.allCases) func barriersFinishEachStageFirst(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 2)
        var plan = Self.plan
        plan.stageBarriers = true
        try store.enqueueClaimable(plan)
        var order: [String] = []
        while let work = try store.claim(plan, run: run) {
            order.append(work.claim.stage)
            try Self.finish(store, work, plan: plan, clips: 1)
        }
        #expect(order == ["broken", "broken", "segment", "segment", "align", "align", "publish", "publish"])
    }

    /// Items a dead run was working on go after everything else; a failure comes back once its
    /// backoff has passed; a final failure and a rejection never come back.
    @Test(arguments: LedgerDriver.allCases) func interruptedItemsGoLastAndFailuresWaitForTheirRetry(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 3)
        try store.enqueueClaimable(Self.plan)
        let first = try #require(try store.claim(Self.plan, run: run))
        #expect(Self.name(first) == "broken v0.mp4")
        // The run dies holding v0; the next run reclaims it.
        let next = try store.beginRun(host: "h", pid: 2, version: "t").id!
        #expect(try store.reclaimAbandonedWork(currentRun: next, maxAttempts: 3, isAlive: { _ in false }) == 1)
        let now = Date()
        let v1 = try #require(try store.claim(Self.plan, run: next, now: now))
        #expect(Self.name(v1) == "broken v1.mp4")
        try Self.finish(store, v1, state: .failed, retryAt: now.addingTimeInterval(60))
        let v2 = try #require(try store.claim(Self.plan, run: next, now: now))
        #expect(Self.name(v2) == "broken v2.mp4")
        try Self.finish(store, v2, state: .rejected)
        // v1 waits for its retry; v0, interrupted, comes last of what is claimable.
        let v0 = try #require(try store.claim(Self.plan, run: next, now: now))
        // It was alone in flight when its run died: that counted as an attempt.
        #expect(Self.name(v0) == "broken v0.mp4" && v0.claim.attempts == 2)
        try Self.finish(store, v0, state: .rejected)
        #expect(try store.claim(Self.plan, run: next, now: now) == nil)
        // A one-shot run tries an item once: after the backoff, v1 goes to the next run, not to
        // the run it failed under; a long-running worker (retriesWithinRun) takes it back itself.
        #expect(try store.claim(Self.plan, run: next, now: now.addingTimeInterval(61)) == nil)
        let third = try store.beginRun(host: "h", pid: 3, version: "t").id!
        let retry = try #require(try store.claim(Self.plan, run: third, now: now.addingTimeInterval(61)))
        #expect(Self.name(retry) == "broken v1.mp4" && retry.claim.attempts == 2)
        try Self.finish(store, retry, state: .failed, retryAt: now.addingTimeInterval(62))
        var worker = Self.plan
        worker.retriesWithinRun = true
        let last = try #require(try store.claim(worker, run: third, now: now.addingTimeInterval(120)))
        #expect(Self.name(last) == "broken v1.mp4" && last.claim.attempts == 3)
        try Self.finish(store, last, state: .failed, retryAt: now.addingTimeInterval(130))
        // Three attempts used: final.
        #expect(try store.claim(worker, run: third, now: now.addingTimeInterval(1000)) == nil)
        #expect(try store.enqueueClaimable(Self.plan) == 0)
    }

    /// A queue entry whose upstream decision changed after it was queued is dropped, not run on
    /// the old decision.
    @Test(arguments: LedgerDriver.allCases) func anEntryWhoseUpstreamChangedIsDropped(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 1)
        try store.enqueueClaimable(Self.plan)
        try Self.finish(store, try #require(try store.claim(Self.plan, run: run)))
        let segment = try #require(try store.claim(Self.plan, run: run))
        try Self.finish(store, segment, clips: 1)
        #expect(try store.queue(Self.plan).first { $0.stage == "align" }?.queued == 1)
        // The segment result becomes history behind the queue's back (as a missing file or an
        // edit of the database would make it): the entry must not run on it.
        try store.transaction(now: nil) { try $0.execute("UPDATE stageResult SET superseded = TRUE WHERE stage = 'segment'") }
        #expect(try store.claim(Self.plan, run: run) == nil)
        #expect(try store.queue(Self.plan).allSatisfy { $0.queued == 0 })
        // Planning again queues segment, whose result is history now, and nothing after it.
        #expect(try store.enqueueClaimable(Self.plan) == 1)
        #expect(Self.name(try store.claim(Self.plan, run: run)) == "segment v0.mp4")
    }

    /// A worker that carries a reader for the next clip of its run gets that clip first, even
    /// when a later stage has work.
    @Test(arguments: LedgerDriver.allCases) func aCarryingWorkerGetsTheNextClipOfItsRun(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 1)
        try store.enqueueClaimable(Self.plan)
        try Self.finish(store, try #require(try store.claim(Self.plan, run: run)))
        try Self.finish(store, try #require(try store.claim(Self.plan, run: run)), clips: 3)
        let first = try #require(try store.claim(Self.plan, run: run))
        #expect(Self.name(first) == "align v0.mp4#0")
        try Self.finish(store, first)
        #expect(Self.name(try store.claim(Self.plan, run: run, after: first)) == "align v0.mp4#1")
        #expect(Self.name(try store.claim(Self.plan, run: run)) == "publish v0.mp4#0")
    }

    /// A worker paused past its lease loses the item: the rescuer takes it back, another worker
    /// decides it, and the paused worker's late commit is refused and changes nothing.
    @Test(arguments: LedgerDriver.allCases) func aLateCommitIsRefused(driver: LedgerDriver) throws {
        let (store, paused) = try Self.store(driver, sources: 1)
        try store.enqueueClaimable(Self.plan)
        let start = Date()
        let stale = try #require(try store.claim(Self.plan, run: paused, now: start))
        let later = start.addingTimeInterval(Lease.duration + 1)
        let other = try store.beginRun(host: "h2", pid: 2, version: "t", now: later).id!
        #expect(try store.reclaimAbandonedWork(currentRun: other, maxAttempts: 3, isAlive: { _ in true }, now: later) == 1)
        let fresh = try #require(try store.claim(Self.plan, run: other, now: later))
        #expect(fresh.claim.id == stale.claim.id && fresh.claim.attempts == stale.claim.attempts + 1)
        #expect(throws: StoreError.self) {
            try store.recordOutcome(stale.claim, RecordedOutcome(state: .rejected, reason: "late", seconds: 1), downstreamStages: [])
        }
        try Self.finish(store, fresh)
        let row = try #require(try store.currentResult(stage: "broken", itemKey: fresh.claim.itemKey))
        #expect(row.state == .done && row.runId == other && row.reason == nil)
        // The heartbeat of the paused worker finds it holds nothing any more.
        #expect(try store.heartbeat(run: paused) == 0)
    }

    /// Workers claiming at once (threads; on PostgreSQL each transaction on its own connection)
    /// run every item exactly once.
    @Test(arguments: LedgerDriver.allCases) func concurrentWorkersRunEveryItemOnce(driver: LedgerDriver) throws {
        let (store, _) = try Self.store(driver, sources: 40)
        let plan = ClaimPlan(steps: [Self.plan.steps[0]], maxAttempts: 3)
        try store.enqueueClaimable(plan)
        let runs = try (0..<4).map { try store.beginRun(host: "h", pid: Int32(10 + $0), version: "t").id! }
        let done = Mutex<[String]>([])
        let errors = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: runs.count) { worker in
            do {
                while let work = try store.claim(plan, run: runs[worker]) {
                    try Self.finish(store, work, plan: plan)
                    done.withLock { $0.append(work.claim.itemKey) }
                }
            } catch { errors.withLock { $0.append("\(error)") } }
        }
        #expect(errors.withLock { $0 } == [])
        let keys = done.withLock { $0 }
        #expect(keys.count == 40 && Set(keys).count == 40)
    }

    /// Discovery's bookkeeping: new, changed (another hash after a size or mtime change), gone and
    /// returned files; a change starts the item over.
    @Test(arguments: LedgerDriver.allCases) func sourcesFollowTheInputFolder(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 3)
        try store.enqueueClaimable(Self.plan)
        let first = try #require(try store.claim(Self.plan, run: run))
        try Self.finish(store, first)
        var files = (0..<3).map { DiscoveredFile(relativePath: "v\($0).mp4", size: 1, mtime: 1, contentHash: "h\($0)") }
        files[0] = DiscoveredFile(relativePath: "v0.mp4", size: 2, mtime: 2, contentHash: "other")
        files.remove(at: 2)
        #expect(try store.syncSources(files) == SourceSync(new: 0, changed: 1, gone: 1, returned: 0))
        #expect(try store.currentResult(stage: "broken", itemKey: first.claim.itemKey) == nil)
        #expect(try store.activeSources().map(\.relativePath) == ["v0.mp4", "v1.mp4"])
        files.append(DiscoveredFile(relativePath: "v2.mp4", size: 1, mtime: 1, contentHash: "h2"))
        files.append(DiscoveredFile(relativePath: "new.mp4", size: 1, mtime: 1, contentHash: "n"))
        #expect(try store.syncSources(files) == SourceSync(new: 1, changed: 0, gone: 0, returned: 1))
        #expect(throws: StoreError.self) { try store.syncSources([], maxGoneShare: 0.5) }
    }

    /// A worker that stops before its items are done gives them back: pending, queued again as
    /// interrupted, the attempt not counted; its late commit is refused; another worker takes them.
    @Test(arguments: LedgerDriver.allCases) func aStoppingWorkerGivesBackWhatItHolds(driver: LedgerDriver) throws {
        let (store, stopping) = try Self.store(driver, sources: 2)
        try store.enqueueClaimable(Self.plan)
        let first = try #require(try store.claim(Self.plan, run: stopping))
        let second = try #require(try store.claim(Self.plan, run: stopping))
        #expect(try store.release(run: stopping) == 2)
        let row = try #require(try store.currentResult(stage: "broken", itemKey: first.claim.itemKey))
        #expect(row.state == .pending && row.attempts == 0 && (row.reason ?? "").hasPrefix(PipelineStore.interruptedPrefix), "\(row)")
        #expect(throws: StoreError.self) {
            try store.recordOutcome(second.claim, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [])
        }
        let other = try store.beginRun(host: "h2", pid: 2, version: "t").id!
        var taken: [String] = []
        while let work = try store.claim(Self.plan, run: other, only: [0]) {
            #expect(work.claim.attempts == 1)
            taken.append(Self.name(work))
            try Self.finish(store, work)
        }
        #expect(taken.sorted() == ["broken v0.mp4", "broken v1.mp4"])
        #expect(try store.release(run: stopping) == 0)
    }

    /// `only` limits a claim to some steps (a worker's `--stages`, a device lane's model stages),
    /// also for the carried successor clip.
    @Test(arguments: LedgerDriver.allCases) func aClaimTakesOnlyTheStepsItIsLimitedTo(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 1)
        try store.enqueueClaimable(Self.plan)
        #expect(try store.claim(Self.plan, run: run, only: [2, 3]) == nil)
        for _ in 0..<2 { try Self.finish(store, try #require(try store.claim(Self.plan, run: run, only: [0, 1]))) }
        // Align is queued for both clips; publish takes nothing yet, align takes clip 0 then 1.
        #expect(try store.claim(Self.plan, run: run, only: [3]) == nil)
        let align = try #require(try store.claim(Self.plan, run: run, only: [2]))
        #expect(Self.name(align) == "align v0.mp4#0")
        try Self.finish(store, align)
        // Carrying from align to publish's queue: limited to publish, the successor align clip is not handed out.
        let publish = try #require(try store.claim(Self.plan, run: run, after: align, only: [3]))
        #expect(Self.name(publish) == "publish v0.mp4#0")
    }

    /// A worker taken for dead (paused past its lease) that heartbeats again is marked running
    /// again, but holds nothing; a finished run is not revived by a late heartbeat.
    @Test(arguments: LedgerDriver.allCases) func aPausedWorkerComesBackHoldingNothing(driver: LedgerDriver) throws {
        let (store, paused) = try Self.store(driver, sources: 1)
        try store.enqueueClaimable(Self.plan)
        let start = Date()
        _ = try #require(try store.claim(Self.plan, run: paused, now: start))
        let later = start.addingTimeInterval(Lease.duration + 1)
        let rescuer = try store.beginRun(host: "h2", pid: 2, version: "t", now: later).id!
        #expect(try store.reclaimAbandonedWork(currentRun: rescuer, maxAttempts: 3, isAlive: { _ in true }, now: later) == 1)
        func status(_ run: Int64) throws -> String? {
            try store.read { try $0.row("SELECT status FROM run WHERE id = ?", run)?.text("status") }
        }
        #expect(try status(paused) == "interrupted")
        // The janitor's view: only the rescuer is alive.
        #expect(try store.liveWorkers(now: later).map { "\($0.host) \($0.pid)" } == ["h2 2"])
        #expect(try store.heartbeat(run: paused, now: later) == 0)
        #expect(try status(paused) == "running")
        try store.finishRun(id: rescuer, status: .finished, counts: nil)
        _ = try store.heartbeat(run: rescuer)
        #expect(try status(rescuer) == "finished")
    }

    /// `status` lists each worker with the devices of its model lanes (v5 / pg2 migrations).
    @Test(arguments: LedgerDriver.allCases) func statusListsAWorkersDevices(driver: LedgerDriver) throws {
        let store = try driver.makeLedger()
        _ = try store.beginRun(host: "gpu1", pid: 7, version: "t", devices: ["cuda:0", "cuda:1"])
        _ = try store.beginRun(host: "cpu1", pid: 8, version: "t")
        let report = try StatusReport.load(from: store, database: "test", stages: Self.plan.steps.map { ($0.stage, $0.unit) }, maxAttempts: 3)
        #expect(report.workers.map { "\($0.host) \($0.devices)" } == ["gpu1 [\"cuda:0\", \"cuda:1\"]", "cpu1 []"])
    }

    /// The stray janitor's list: every path a current or history result names, and retired ones.
    @Test(arguments: LedgerDriver.allCases) func knownArtifactsAreEveryNamedPath(driver: LedgerDriver) throws {
        let (store, run) = try Self.store(driver, sources: 1)
        try store.enqueueClaimable(Self.plan)
        var work = try #require(try store.claim(Self.plan, run: run))
        while work.claim.stage != "align" {
            try Self.finish(store, work)
            work = try #require(try store.claim(Self.plan, run: run))
        }
        try store.recordOutcome(work.claim, RecordedOutcome(state: .done, seconds: 1, handOn: HandOn(pieces: [
            AlignedPieceRecord(ordinal: 0, frames: 0..<50, video: "aligned/x_000.mp4", landmarks: "aligned/x_000.landmarks"),
        ])), downstreamStages: ["publish"], next: Self.plan.step(after: "align"))
        #expect(try store.knownArtifactPaths() == ["aligned/x_000.mp4", "aligned/x_000.landmarks"])
    }
}
