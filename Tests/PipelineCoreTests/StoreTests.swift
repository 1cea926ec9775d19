import Foundation
import PipelineCore
import Testing

@Suite struct StoreTests {
    func storeWithSource() throws -> (PipelineStore, Int64, Int64) {
        let store = try PipelineStore.inMemory()
        _ = try store.syncSources([DiscoveredFile(relativePath: "a.mp4", size: 10, mtime: 1, contentHash: "h1")])
        let source = try store.activeSources()[0].id!
        let run = try store.beginRun(host: "h", pid: 1, version: "t").id!
        return (store, source, run)
    }

    @Test func decidedWorkIsNeverClaimedAgain() throws {
        let (store, source, run) = try storeWithSource()
        let claim = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: run, maxAttempts: 3))
        try store.recordOutcome(claim, RecordedOutcome(state: .rejected, reason: "too short", seconds: 1), downstreamStages: ["normalize"])
        #expect(try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: run, maxAttempts: 3) == nil)
        // A new fingerprint (changed settings) re-decides and makes the old row history.
        #expect(try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "g", run: run, maxAttempts: 3) != nil)
        #expect(try store.currentResults(stage: "broken")["s\(source)"]?.fingerprint == "g")
    }

    /// Settings A → B → A: the decision under A was superseded (B may have overwritten its
    /// artifacts), so A decides again rather than leaving the item with no current result.
    @Test func returningToEarlierSettingsDecidesAgain() throws {
        let (store, source, run) = try storeWithSource()
        let key = "s\(source)"
        for fingerprint in ["a", "b"] {
            let claim = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: key, fingerprint: fingerprint, run: run, maxAttempts: 3))
            try store.recordOutcome(claim, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [])
        }
        let again = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: key, fingerprint: "a", run: run, maxAttempts: 3))
        #expect(again.attempts == 1)
        try store.recordOutcome(again, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [])
        #expect(try store.currentResults(stage: "broken")[key]?.fingerprint == "a")
        #expect(try store.history(stage: "broken", itemKey: key).map(\.fingerprint) == ["b", "a"])
    }

    @Test func abandonedWorkIsReclaimedUntilItsAttemptsAreSpent() throws {
        let (store, source, deadRun) = try storeWithSource()
        _ = try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: deadRun, maxAttempts: 2)
        let next = try store.beginRun(host: "h", pid: 2, version: "t").id!
        #expect(try store.reclaimAbandonedWork(currentRun: next, maxAttempts: 2, isAlive: { _ in false }) == 1)
        #expect(try store.currentResults(stage: "broken")["s\(source)"]?.state == .pending)
        _ = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: next, maxAttempts: 2))
        let third = try store.beginRun(host: "h", pid: 3, version: "t").id!
        #expect(try store.reclaimAbandonedWork(currentRun: third, maxAttempts: 2, isAlive: { _ in false }) == 1)
        let row = try #require(try store.currentResults(stage: "broken")["s\(source)"])
        #expect(row.state == .failed && row.reason!.contains("died 2 times"))
        #expect(try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: third, maxAttempts: 2) == nil)
    }

    /// A run killed from outside while working on several items uses up none of their attempts.
    @Test func interruptionsAreNotBlamedOnItemsThatWereNotAlone() throws {
        let store = try PipelineStore.inMemory()
        _ = try store.syncSources([DiscoveredFile(relativePath: "a.mp4", size: 1, mtime: 1, contentHash: "a"),
                                   DiscoveredFile(relativePath: "b.mp4", size: 1, mtime: 1, contentHash: "b")])
        let ids = try store.activeSources().map { $0.id! }
        for pid in Int32(1)...Int32(5) {
            let run = try store.beginRun(host: "h", pid: pid, version: "t").id!
            _ = try store.reclaimAbandonedWork(currentRun: run, maxAttempts: 2, isAlive: { _ in false })
            for id in ids { _ = try #require(try store.claimWork(stage: "broken", sourceId: id, itemKey: "s\(id)", fingerprint: "f", run: run, maxAttempts: 2)) }
        }
        let last = try store.beginRun(host: "h", pid: 9, version: "t").id!
        #expect(try store.reclaimAbandonedWork(currentRun: last, maxAttempts: 2, isAlive: { _ in false }) == 2)
        let rows = try store.currentResults(stage: "broken").values
        #expect(rows.allSatisfy { $0.state == .pending && $0.reason!.hasPrefix(PipelineStore.interruptedPrefix) && $0.attempts == 0 })
    }

    /// Fencing: a run whose lease expired while it worked (paused past its lease, its item
    /// reclaimed and claimed again) cannot record its outcome over the new holder's.
    @Test func aLateCommitIsRefused() throws {
        let (store, source, paused) = try storeWithSource()
        let key = "s\(source)"
        let stale = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: key, fingerprint: "f", run: paused, maxAttempts: 3))
        let later = Date().addingTimeInterval(3 * Lease.duration)
        let other = try store.beginRun(host: "h", pid: 2, version: "t", now: later).id!
        #expect(try store.reclaimAbandonedWork(currentRun: other, maxAttempts: 3, isAlive: { _ in true }, now: later) == 1)
        let fresh = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: key, fingerprint: "f", run: other, maxAttempts: 3, now: later))
        do {
            try store.recordOutcome(stale, RecordedOutcome(state: .rejected, reason: "late", seconds: 1), downstreamStages: [])
            Issue.record("a late commit was accepted")
        } catch let error as StoreError {
            guard case .leaseLost = error else { throw error }
            #expect(error.description.contains("lost its claim"), "\(error)")
        }
        #expect(try store.currentResult(stage: "broken", itemKey: key)?.state == .running, "the late outcome was written")
        try store.recordOutcome(fresh, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [])
        #expect(try store.currentResult(stage: "broken", itemKey: key)?.state == .done)
        // Once decided, neither claim may record again.
        #expect(throws: StoreError.self) { try store.recordOutcome(fresh, RecordedOutcome(state: .rejected, reason: "twice", seconds: 1), downstreamStages: []) }
    }

    /// `status` lists the processes working on the database, what each holds, and each stage's
    /// wall-clock throughput across them.
    @Test func statusListsWorkersAndTheirThroughput() throws {
        let store = try PipelineStore.inMemory()
        _ = try store.syncSources((0..<4).map { DiscoveredFile(relativePath: "\($0).mp4", size: 1, mtime: 1, contentHash: "h\($0)") })
        let ids = try store.activeSources().map { $0.id! }
        let start = Date(timeIntervalSince1970: 1_000_000)
        let stale = try store.beginRun(host: "old", pid: 7, version: "t", now: start.addingTimeInterval(-1000)).id!
        let live = try store.beginRun(host: "h", pid: 8, version: "t", now: start).id!
        for (n, id) in ids.enumerated() {
            let claim = try #require(try store.claimWork(stage: "broken", sourceId: id, itemKey: "s\(id)", fingerprint: "f", run: n < 3 ? live : stale,
                                                         maxAttempts: 3, now: start))
            if n < 2 { try store.recordOutcome(claim, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [], now: start.addingTimeInterval(30)) }
        }
        let now = start.addingTimeInterval(60)
        try store.heartbeat(run: live, now: now)
        let report = try StatusReport.load(from: store, database: ":memory:", stages: [("broken", .source)], maxAttempts: 3, now: now)
        #expect(report.workers.map(\.run) == [stale, live])
        #expect(report.workers.map(\.stale) == [true, false])
        #expect(report.workers.map(\.inFlight) == [["broken": 1], ["broken": 1]])
        // Two items decided in the 60 s since the live worker started.
        let rate = try #require(report.stages.first?.recentItemsPerSecond)
        #expect(abs(rate - 2.0 / 60) < 1e-9, "\(rate)")
    }

    @Test func aLiveRunKeepsItsClaims() throws {
        let (store, source, run) = try storeWithSource()
        _ = try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: run, maxAttempts: 3)
        let other = try store.beginRun(host: "h", pid: 2, version: "t").id!
        #expect(try store.reclaimAbandonedWork(currentRun: other, maxAttempts: 3, isAlive: { _ in true }) == 0)
    }

    @Test func rejectionSupersedesDownstreamResults() throws {
        let (store, source, run) = try storeWithSource()
        let key = "s\(source)"
        let b = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: key, fingerprint: "f", run: run, maxAttempts: 3))
        try store.recordOutcome(b, RecordedOutcome(state: .done, seconds: 1), downstreamStages: ["normalize"])
        let n = try #require(try store.claimWork(stage: "normalize", sourceId: source, itemKey: key, fingerprint: "n", run: run, maxAttempts: 3))
        try store.recordOutcome(n, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [])
        let b2 = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: key, fingerprint: "f2", run: run, maxAttempts: 3))
        try store.recordOutcome(b2, RecordedOutcome(state: .rejected, reason: "x", seconds: 1), downstreamStages: ["normalize"])
        #expect(try store.currentResults(stage: "normalize").isEmpty)
    }

    @Test func changedFilesStartOverAndMissingOnesAreMarkedGone() throws {
        let (store, source, run) = try storeWithSource()
        let c = try #require(try store.claimWork(stage: "broken", sourceId: source, itemKey: "s\(source)", fingerprint: "f", run: run, maxAttempts: 3))
        try store.recordOutcome(c, RecordedOutcome(state: .done, seconds: 1), downstreamStages: [])
        let sync = try store.syncSources([DiscoveredFile(relativePath: "a.mp4", size: 11, mtime: 2, contentHash: "h2"),
                                          DiscoveredFile(relativePath: "b.mp4", size: 5, mtime: 1, contentHash: "h3")])
        #expect(sync == SourceSync(new: 1, changed: 1, gone: 0, returned: 0))
        #expect(try store.currentResults(stage: "broken").isEmpty)
        #expect(try store.syncSources([]) == SourceSync(new: 0, changed: 0, gone: 2, returned: 0))
        #expect(try store.activeSources().isEmpty)
    }
}
