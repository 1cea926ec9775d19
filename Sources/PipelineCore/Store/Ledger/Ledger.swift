import Foundation

/// The ledger: the one place where work is queued, claimed and recorded, over one database
/// driver. A driver only opens transactions (`SQLSession`s); every operation below is written
/// once (`LedgerSQL`), so SQLite (`PipelineStore`, one host) and PostgreSQL (`PostgresLedger`,
/// many hosts) behave the same, and one conformance suite tests both.
///
/// Times: `now` nil means the database's clock (PostgreSQL's `now()`: leases must not depend on
/// how well hosts' clocks agree); tests pass an explicit time to travel.
public protocol Ledger: Sendable {
    /// Runs `body` in one transaction. A driver may run it again after a lost connection, so
    /// `body` must do nothing but database work.
    func transaction<T>(now: Date?, _ body: (any SQLSession) throws -> T) throws -> T
    /// Runs `body`, which only reads, on a consistent snapshot (a read-only store can serve it).
    func read<T>(_ body: (any SQLSession) throws -> T) throws -> T
}

extension Ledger {
    // MARK: Runs (workers)

    /// Registers a worker (a `run` or a `work` process) on the database.
    public func beginRun(host: String, pid: Int32, version: String, devices: [String] = [], now: Date? = nil) throws -> RunRecord {
        try transaction(now: now) { try LedgerSQL.beginRun(host: host, pid: pid, version: version, devices: devices, in: $0) }
    }

    /// Extends the leases of the items `run` holds; returns how many it still holds (fewer than it
    /// thinks: a lease expired and the item went to another worker).
    /// A worker that was taken for dead (paused past its lease) and heartbeats again is alive
    /// again; what it held went to others meanwhile, and its late commits are refused by the fence.
    @discardableResult
    public func heartbeat(run id: Int64, now: Date? = nil) throws -> Int {
        try transaction(now: now) { try LedgerSQL.heartbeat(run: id, in: $0) }
    }

    public func finishRun(id: Int64, status: RunStatus, counts: String?, now: Date? = nil) throws {
        try transaction(now: now) { try LedgerSQL.finishRun(id: id, status: status, counts: counts, in: $0) }
    }

    /// (host, pid) of every worker whose heartbeat is younger than a lease: the writers whose
    /// temporaries the janitor leaves alone.
    public func liveWorkers(now: Date? = nil) throws -> [(host: String, pid: Int32)] {
        try transaction(now: now) { s in
            try s.rows("SELECT host, pid FROM run WHERE status = 'running' AND heartbeatAt > ?", s.now.addingTimeInterval(-Lease.duration))
                .map { (try $0.text("host"), Int32(try $0.int64("pid"))) }
        }
    }

    /// Takes back work claimed by runs that are gone: their `running` rows become `pending` again
    /// (and queued), or `failed` for an item that was alone in flight each time its run died.
    ///
    /// Rule: an interruption counts as a failed attempt only for an item that was alone in flight
    /// when its run died; it becomes `failed` once it has used up its attempts that way. Why: a run
    /// killed from outside (an operator, the OOM killer, a reboot) must not use up the attempts of
    /// every item it happened to be working on, while a file that crashes the decoder must not crash
    /// every run after it. Interrupted items are claimed last, so such a file ends up alone and
    /// gets blamed. A run counts as gone when `isAlive` says so or its heartbeat is older than a
    /// lease. Returns how many rows were reclaimed.
    public func reclaimAbandonedWork(currentRun: Int64, maxAttempts: Int, isAlive: @Sendable (RunRecord) -> Bool, now: Date? = nil) throws -> Int {
        try transaction(now: now) { try LedgerSQL.reclaimAbandonedWork(currentRun: currentRun, maxAttempts: maxAttempts, isAlive: isAlive, in: $0) }
    }

    // MARK: Sources

    /// Brings the `source` table in line with a scan of the input directory.
    ///
    /// A file is changed when its problem changed, or when its size or mtime moved and its content
    /// hash differs (a `touch` is not a change; a rewrite in place of the same size is). Rows from
    /// before v2 hold a partial hash that never equals a whole-file one: such a file whose size or
    /// mtime moved is taken as changed, since its middle may have been rewritten.
    ///
    /// Refuses, changing nothing, to mark more than `maxGoneShare` of the active sources gone at
    /// once: an unmounted or emptied input folder must not take the dataset out of the index (and,
    /// with `--prune`, off the disk).
    public func syncSources(_ files: [DiscoveredFile], maxGoneShare: Double = 1, rejectDuplicates: Bool = false, now: Date? = nil) throws -> SourceSync {
        try transaction(now: now) { try LedgerSQL.syncSources(files, maxGoneShare: maxGoneShare, rejectDuplicates: rejectDuplicates, in: $0) }
    }

    // MARK: The work queue

    /// Puts every item the plan's stages may run on now into the work queue (the planning pass a
    /// run makes once, after discovery and reclaiming): items whose upstream result is current and
    /// done and whose own result under the step's fingerprint is missing, history (a decision
    /// superseded since), interrupted, or failed with attempts left. Entries of the plan's stages
    /// under other fingerprints are dropped: they belong to settings no longer in force. Returns
    /// how many entries the queue holds.
    @discardableResult
    public func enqueueClaimable(_ plan: ClaimPlan, now: Date? = nil) throws -> Int {
        try transaction(now: now) { try LedgerSQL.enqueueClaimable(plan, in: $0) }
    }

    /// Per step of `plan`, the items queued for it and held by workers now.
    public func queue(_ plan: ClaimPlan) throws -> [StageQueue] {
        try read { try LedgerSQL.queue(plan, in: $0) }
    }

    /// Claims one item for `run`: later stages first, items a dead run was working on last, and
    /// within a stage in `ClaimOrder`'s order (`after`: the item the asking worker finished last,
    /// when it carries something for the next clip of its run; that clip comes first). Nil when
    /// nothing is claimable now.
    ///
    /// Why later stages first: an item close to the end is published sooner (the first clips of a
    /// long input appear minutes after the start), the intermediate files in flight stay few, and
    /// the model-backed stages get work as soon as there is some, instead of after the CPU stages
    /// have seen the whole input.
    ///
    /// A queue entry whose item is no longer claimable (decided meanwhile, held by another worker,
    /// its upstream result superseded, its source gone) is dropped on the way.
    ///
    /// `only` limits the claim to some of the plan's steps (indices): a worker's `--stages`, or
    /// the model-backed stages for a device lane.
    public func claim(_ plan: ClaimPlan, run: Int64, after previous: ClaimedWork? = nil, only: Set<Int>? = nil, now: Date? = nil) throws -> ClaimedWork? {
        try transaction(now: now) { try LedgerSQL.claim(plan, run: run, after: previous, only: only, in: $0) }
    }

    /// Gives back every item `run` holds (a worker that stops before they are done): each becomes
    /// `pending` and queued again as interrupted, without using up an attempt, since the item did
    /// nothing wrong. Fenced like a commit. Returns how many were given back.
    @discardableResult
    public func release(run: Int64, now: Date? = nil) throws -> Int {
        try transaction(now: now) { try LedgerSQL.release(run: run, in: $0) }
    }

    /// Claims `stage` on one item under `fingerprint` for `run`, unless it is already decided or
    /// its failures are final or backing off. Other fingerprints' rows for the item become history.
    public func claimWork(stage: String, sourceId: Int64, clipId: Int64? = nil, itemKey: String, fingerprint: String,
                          run: Int64, maxAttempts: Int, now: Date? = nil) throws -> StageResultRecord? {
        try transaction(now: now) { s in
            let row = try LedgerSQL.take(stage: stage, sourceId: sourceId, clipId: clipId, itemKey: itemKey, fingerprint: fingerprint,
                                         run: run, maxAttempts: maxAttempts, in: s)
            if row != nil { try s.execute("DELETE FROM workQueue WHERE stage = ? AND itemKey = ? AND fingerprint = ?", stage, itemKey, fingerprint) }
            return row
        }
    }

    /// Records a stage's outcome and what it hands on, in one transaction, if `claim` still holds
    /// the item: the row must still be running under the claim's run and attempt. Otherwise (the
    /// claim's lease expired and the item was reclaimed, and perhaps claimed and decided by another
    /// run) nothing is written and `StoreError.leaseLost` is thrown: a run that lost its lease never
    /// commits over the one that holds it.
    ///
    /// A `done` outcome queues its item for `next` (the plan's next step; for the first clip stage,
    /// every clip of the source) in the same transaction; a failure queues the item again for its
    /// retry; a rejection or failure makes the `downstreamStages`' results built on the item history.
    public func recordOutcome(_ claim: StageResultRecord, _ outcome: RecordedOutcome, downstreamStages: [String],
                              next: ClaimPlan.Step? = nil, maxAttempts: Int = Int.max, now: Date? = nil) throws {
        try transaction(now: now) {
            try LedgerSQL.recordOutcome(claim, outcome, downstreamStages: downstreamStages, next: next, maxAttempts: maxAttempts, in: $0)
        }
    }

    // MARK: Reading

    /// The current (not superseded) result of `stage` for one item.
    public func currentResult(stage: String, itemKey: String) throws -> StageResultRecord? {
        try read { s in
            try s.row("SELECT * FROM stageResult WHERE stage = ? AND itemKey = ? AND NOT superseded ORDER BY id DESC LIMIT 1", stage, itemKey)
                .map(StageResultRecord.init(row:))
        }
    }

    public func activeSources() throws -> [SourceRecord] {
        try read { try $0.rows("SELECT * FROM source WHERE goneAt IS NULL ORDER BY relativePath").map(SourceRecord.init(row:)) }
    }
}
