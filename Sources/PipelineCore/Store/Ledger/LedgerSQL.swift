import Foundation

/// The ledger's logic, written once over `SQLSession` so that SQLite (`PipelineStore`) and
/// PostgreSQL (`PostgresLedger`) run the same statements, and one conformance suite tests both.
///
/// Every function runs inside its caller's transaction; none opens one.
enum LedgerSQL {
    // MARK: Runs (the workers of a database)

    static func beginRun(host: String, pid: Int32, version: String, devices: [String], in s: any SQLSession) throws -> RunRecord {
        let listed = devices.isEmpty ? nil : devices.joined(separator: ",")
        let id = try s.int("""
            INSERT INTO run (startedAt, heartbeatAt, host, pid, version, status, devices) VALUES (?, ?, ?, ?, ?, 'running', ?) RETURNING id
            """, s.now, s.now, host, pid, version, listed)!
        return RunRecord(id: id, startedAt: s.now, heartbeatAt: s.now, host: host, pid: pid, version: version, status: .running, devices: listed)
    }

    /// Extends the leases of the items `run` holds; returns how many it still holds (an item whose
    /// lease expired and was taken back is no longer among them).
    @discardableResult
    static func heartbeat(run id: Int64, in s: any SQLSession) throws -> Int {
        try s.execute("UPDATE run SET heartbeatAt = ?, status = 'running', finishedAt = NULL WHERE id = ? AND status IN ('running', 'interrupted')",
                      s.now, id)
        return try s.execute("UPDATE stageResult SET leaseExpiresAt = ? WHERE runId = ? AND state = 'running'",
                             s.now.addingTimeInterval(Lease.duration), id)
    }

    static func finishRun(id: Int64, status: RunStatus, counts: String?, in s: any SQLSession) throws {
        try s.execute("UPDATE run SET finishedAt = ?, status = ?, counts = ? WHERE id = ?", s.now, status, counts, id)
    }

    /// Takes back work claimed by runs that are gone (see `PipelineStore.reclaimAbandonedWork`).
    static func reclaimAbandonedWork(currentRun: Int64, maxAttempts: Int, isAlive: (RunRecord) -> Bool, in s: any SQLSession) throws -> Int {
        let runs = try s.rows("SELECT * FROM run WHERE status = 'running' AND id <> ?", currentRun).map(RunRecord.init(row:))
        var dead: [Int64] = []
        for run in runs where !isAlive(run) || run.heartbeatAt.addingTimeInterval(Lease.duration) < s.now {
            dead.append(run.id!)
            try s.execute("UPDATE run SET status = 'interrupted', finishedAt = COALESCE(finishedAt, heartbeatAt) WHERE id = ?", run.id!)
        }
        let stale = try s.rows("SELECT * FROM stageResult WHERE state = 'running' AND (runId IS NULL OR runId <> ?)", currentRun)
            .map(StageResultRecord.init(row:))
            .filter { row in row.runId.map(dead.contains) ?? true || (row.leaseExpiresAt ?? .distantPast) < s.now }
        let inFlight = Dictionary(grouping: stale, by: { $0.runId ?? -1 }).mapValues(\.count)
        for var row in stale {
            let attempts = row.attempts
            let alone = inFlight[row.runId ?? -1] == 1
            if !alone { row.attempts = max(0, row.attempts - 1) }
            if alone && row.attempts >= maxAttempts {
                row.state = .failed
                row.reason = "the pipeline process died \(row.attempts) times while working on this item alone; it may crash the decoder"
            } else {
                row.state = .pending
                row.reason = PipelineStore.interruptedReason(run: row.runId)
            }
            // Fenced like a commit: a run that came back and committed meanwhile keeps its outcome.
            let changed = try s.execute("""
                UPDATE stageResult SET state = ?, reason = ?, attempts = ?, leaseExpiresAt = NULL
                WHERE id = ? AND state = 'running' AND runId IS NOT DISTINCT FROM ? AND attempts = ?
                """, row.state, row.reason, row.attempts, row.id!, row.runId, attempts)
            if changed == 1 && row.state == .pending { try requeue(row, interrupted: true, notBefore: nil, in: s) }
        }
        return stale.count
    }

    /// See `Ledger.release(run:)`.
    static func release(run: Int64, in s: any SQLSession) throws -> Int {
        let held = try s.rows("SELECT * FROM stageResult WHERE state = 'running' AND runId = ?", run).map(StageResultRecord.init(row:))
        var released = 0
        for var row in held {
            let attempts = row.attempts
            row.state = .pending
            row.attempts = max(0, attempts - 1)
            row.reason = PipelineStore.releasedReason(run: run)
            let changed = try s.execute("""
                UPDATE stageResult SET state = 'pending', reason = ?, attempts = ?, leaseExpiresAt = NULL
                WHERE id = ? AND state = 'running' AND runId = ? AND attempts = ?
                """, row.reason, row.attempts, row.id!, run, attempts)
            if changed == 1 { try requeue(row, interrupted: true, notBefore: nil, in: s) }
            released += changed
        }
        return released
    }

    // MARK: Sources

    /// Brings the `source` table in line with a scan of the input directory (see `PipelineStore.syncSources`).
    static func syncSources(_ files: [DiscoveredFile], maxGoneShare: Double, rejectDuplicates: Bool, in s: any SQLSession) throws -> SourceSync {
        var result = SourceSync()
        var existing = Dictionary(uniqueKeysWithValues: try s.rows("SELECT * FROM source").map(SourceRecord.init(row:)).map { ($0.relativePath, $0) })
        let scanned = rejectDuplicates ? PipelineStore.markingDuplicates(files, known: existing) : files
        let activeBefore = existing.values.filter { $0.goneAt == nil }.count
        let present = Set(scanned.map(\.relativePath))
        let vanishing = existing.values.filter { $0.goneAt == nil && !present.contains($0.relativePath) }
        if !vanishing.isEmpty, Double(vanishing.count) > maxGoneShare * Double(activeBefore) {
            throw StoreError.massRemoval(gone: vanishing.count, active: activeBefore, limit: maxGoneShare,
                                         examples: vanishing.map(\.relativePath).sorted().prefix(3).map { $0 })
        }
        var taken: Set<String>?
        for file in scanned {
            if var known = existing.removeValue(forKey: file.relativePath) {
                let moved = known.size != file.size || known.mtime != file.mtime
                let changed = known.problem != file.problem
                    || (moved && file.problem == nil && (file.contentHash == nil || known.contentHash != file.contentHash))
                if changed {
                    // The results describe bytes that no longer exist: start the item over. The
                    // files those results wrote are retired, to be removed at the end of the run.
                    try retireArtifacts(ofResults: s.rows("SELECT id FROM stageResult WHERE sourceId = ?", known.id!).map { try $0.int64("id") }, in: s)
                    for table in ["stageResult", "analysis", "clip"] { try s.execute("DELETE FROM \(table) WHERE sourceId = ?", known.id!) }
                    known.probe = nil
                    known.durationSeconds = nil
                    result.changed += 1
                }
                if known.goneAt != nil { result.returned += 1 }
                if changed || known.goneAt != nil || moved {
                    try s.execute("""
                        UPDATE source SET size = ?, mtime = ?, contentHash = ?, problem = ?, goneAt = NULL, probe = ?, durationSeconds = ? WHERE id = ?
                        """, file.size, file.mtime, file.contentHash ?? known.contentHash, file.problem, known.probe, known.durationSeconds, known.id!)
                }
            } else {
                if taken == nil { taken = Set(try s.rows("SELECT outputStem FROM source WHERE outputStem IS NOT NULL").map { try $0.text("outputStem") }) }
                let stem = OutputNaming.stem(for: file.relativePath, taken: taken!)
                taken!.insert(stem)
                try s.execute("""
                    INSERT INTO source (relativePath, size, mtime, contentHash, discoveredAt, problem, outputStem) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, file.relativePath, file.size, file.mtime, file.contentHash ?? "", s.now, file.problem, stem)
                result.new += 1
            }
        }
        for missing in existing.values where missing.goneAt == nil {
            try s.execute("UPDATE source SET goneAt = ? WHERE id = ?", s.now, missing.id!)
            result.gone += 1
        }
        return result
    }

    // MARK: The work queue

    /// Which items `enqueue` considers.
    enum QueueScope { case all, source(Int64), clip(Int64) }

    /// Queues every item of `scope` that `step` may run on now: its upstream result is current
    /// and done, and its own result under the step's fingerprint is missing, history (a decision
    /// superseded since), interrupted, or failed with attempts left.
    static func enqueue(_ step: ClaimPlan.Step, maxAttempts: Int, only scope: QueueScope, in s: any SQLSession) throws {
        let clipUnit = step.unit == .clip
        let key = clipUnit ? "'c' || c.id" : "'s' || s.id"
        var sql = """
            INSERT INTO workQueue (stage, fingerprint, itemKey, sourceId, clipId, sceneIndex, segmentIndex, interrupted, notBefore)
            SELECT ?, ?, \(key), s.id, \(clipUnit ? "c.id, c.sceneIndex, c.segmentIndex" : "NULL, -1, -1"),
                   CASE WHEN own.state = 'pending' AND own.reason LIKE '\(PipelineStore.interruptedPrefix)%' THEN 1 ELSE 0 END,
                   CASE WHEN own.state = 'failed' THEN own.nextAttemptAt END
            FROM source s
            """
        var arguments: [SQLValue] = [.text(step.stage), .text(step.fingerprint)]
        if clipUnit { sql += " JOIN clip c ON c.sourceId = s.id" }
        if let up = step.upstream {
            let upKey = up.unit == .clip ? "'c' || c.id" : "'s' || s.id"
            sql += " JOIN stageResult up ON up.stage = ? AND up.itemKey = \(upKey) AND up.fingerprint = ? AND NOT up.superseded AND up.state = 'done'"
            arguments += [.text(up.stage), .text(up.fingerprint)]
        }
        sql += " LEFT JOIN stageResult own ON own.stage = ? AND own.itemKey = \(key) AND own.fingerprint = ? WHERE s.goneAt IS NULL"
        arguments += [.text(step.stage), .text(step.fingerprint)]
        switch scope {
        case .all: break
        case let .source(id): sql += " AND s.id = ?"; arguments.append(.int(id))
        case let .clip(id):
            guard clipUnit else { return }
            sql += " AND c.id = ?"; arguments.append(.int(id))
        }
        sql += """
             AND (own.id IS NULL OR own.state = 'pending' OR (own.state IN ('done', 'rejected') AND own.superseded)
                  OR (own.state = 'failed' AND own.attempts < ?))
            ON CONFLICT (stage, itemKey, fingerprint) DO UPDATE SET interrupted = excluded.interrupted, notBefore = excluded.notBefore
            """
        arguments.append(.int(Int64(maxAttempts)))
        try s.execute(sql, arguments)
    }

    /// The planning pass: queues everything the plan's stages may run on now, and drops entries
    /// of the plan's stages under other fingerprints (settings no longer in force).
    static func enqueueClaimable(_ plan: ClaimPlan, in s: any SQLSession) throws -> Int {
        for step in plan.steps {
            try s.execute("DELETE FROM workQueue WHERE stage = ? AND fingerprint <> ?", step.stage, step.fingerprint)
            try enqueue(step, maxAttempts: plan.maxAttempts, only: .all, in: s)
        }
        return Int(try s.int("SELECT COUNT(*) AS n FROM workQueue") ?? 0)
    }

    /// Queues a result's own item again (a failure to retry at `notBefore`, or an item a dead run
    /// was working on).
    static func requeue(_ row: StageResultRecord, interrupted: Bool, notBefore: Date?, in s: any SQLSession) throws {
        var scene = -1, segment = -1
        if let clipId = row.clipId {
            guard let clip = try s.row("SELECT * FROM clip WHERE id = ?", clipId) else { return } // gone, and its rows with it
            (scene, segment) = (try clip.int("sceneIndex"), try clip.int("segmentIndex"))
        }
        try s.execute("""
            INSERT INTO workQueue (stage, fingerprint, itemKey, sourceId, clipId, sceneIndex, segmentIndex, interrupted, notBefore)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (stage, itemKey, fingerprint) DO UPDATE SET interrupted = excluded.interrupted, notBefore = excluded.notBefore
            """, row.stage, row.fingerprint, row.itemKey, row.sourceId, row.clipId, scene, segment, interrupted ? 1 : 0, notBefore)
    }

    static func queue(_ plan: ClaimPlan, in s: any SQLSession) throws -> [StageQueue] {
        try plan.steps.map { step in
            StageQueue(stage: step.stage,
                       queued: Int(try s.int("SELECT COUNT(*) AS n FROM workQueue WHERE stage = ? AND fingerprint = ?", step.stage, step.fingerprint) ?? 0),
                       running: Int(try s.int("""
                           SELECT COUNT(*) AS n FROM stageResult WHERE stage = ? AND NOT superseded AND state = 'running' AND fingerprint = ?
                           """, step.stage, step.fingerprint) ?? 0))
        }
    }

    // MARK: Claims

    /// See `PipelineStore.claim`.
    static func claim(_ plan: ClaimPlan, run: Int64, after previous: ClaimedWork?, only: Set<Int>?, in s: any SQLSession) throws -> ClaimedWork? {
        // The next clip of the asking worker's run comes before any other stage's work.
        if let previous, previous.clip != nil, only?.contains(previous.step) ?? true,
           let work = try claim(step: previous.step, of: plan, interrupted: false, run: run, after: previous.candidate, successorOnly: true, in: s) {
            return work
        }
        var order = Array(plan.steps.indices.reversed())
        if plan.stageBarriers {
            // Only the first stage with work queued or running.
            guard let open = try plan.steps.indices.first(where: { i in
                let step = plan.steps[i]
                return try s.int("SELECT COUNT(*) AS n FROM (SELECT 1 FROM workQueue WHERE stage = ? AND fingerprint = ? LIMIT 1) q",
                                 step.stage, step.fingerprint) ?? 0 > 0
                    || s.int("""
                        SELECT COUNT(*) AS n FROM (SELECT 1 FROM stageResult WHERE stage = ? AND NOT superseded AND state = 'running' AND fingerprint = ? LIMIT 1) r
                        """, step.stage, step.fingerprint) ?? 0 > 0
            }) else { return nil }
            order = [open]
        }
        if let only { order = order.filter(only.contains) }
        for interrupted in [false, true] {
            for i in order {
                if let work = try claim(step: i, of: plan, interrupted: interrupted, run: run, after: nil, successorOnly: false, in: s) {
                    return work
                }
            }
        }
        return nil
    }

    /// Claims an item of one step (`successorOnly`: only the clip right after `previous`).
    private static func claim(step index: Int, of plan: ClaimPlan, interrupted: Bool, run: Int64, after previous: ClaimOrder.Candidate?,
                              successorOnly: Bool, in s: any SQLSession) throws -> ClaimedWork? {
        let step = plan.steps[index]
        struct Entry { var itemKey: String; var sourceId: Int64; var clipId: Int64?; var candidate: ClaimOrder.Candidate }
        func candidate(_ row: SQLRow) throws -> ClaimOrder.Candidate {
            let start = row.optionalInt("startFrame"), end = row.optionalInt("endFrame")
            return ClaimOrder.Candidate(sourceId: try row.int64("sourceId"), frames: start.flatMap { a in end.map { a..<$0 } })
        }
        func entries(_ condition: String, _ arguments: [SQLValue]) throws -> [Entry] {
            // On PostgreSQL the entries read are locked until the transaction ends, and other
            // workers' claims skip them instead of waiting.
            try s.rows("""
                SELECT q.itemKey, q.sourceId, q.clipId, c.startFrame, c.endFrame FROM workQueue q LEFT JOIN clip c ON c.id = q.clipId
                WHERE q.stage = ? AND q.fingerprint = ? AND q.interrupted = ? AND (q.notBefore IS NULL OR q.notBefore <= ?) \(condition)
                ORDER BY q.sourceId, q.sceneIndex, q.segmentIndex LIMIT \(step.unit == .clip ? 64 : 4) \(s.skipLocked("q"))
                """, [.text(step.stage), .text(step.fingerprint), .int(interrupted ? 1 : 0), .date(s.now)] + arguments).map { row in
                Entry(itemKey: try row.text("itemKey"), sourceId: try row.int64("sourceId"), clipId: row.optionalInt64("clipId"), candidate: try candidate(row))
            }
        }
        var own: (String, [SQLValue]) = ("", [])
        if !plan.retriesWithinRun {
            own = ("""
                AND NOT EXISTS (SELECT 1 FROM stageResult f WHERE f.stage = q.stage AND f.itemKey = q.itemKey AND f.fingerprint = q.fingerprint
                                AND f.state = 'failed' AND f.runId = ?)
                """, [.int(run)])
        }
        var queued: [Entry]
        if successorOnly {
            guard let previous, let end = previous.frames?.upperBound else { return nil }
            queued = try entries("AND c.sourceId = ? AND c.startFrame = ? " + own.0, [.int(previous.sourceId), .int(Int64(end))] + own.1)
        } else {
            queued = try entries(own.0, own.1)
        }
        guard !queued.isEmpty else { return nil }
        // Which clips workers hold matters to the order of clips only (source items have no runs;
        // a source stage never runs twice on one source). A few entries suffice for sources: the
        // first claimable one is taken.
        let held = step.unit == .source ? [] : try s.rows("""
            SELECT r.sourceId, c.startFrame, c.endFrame FROM stageResult r LEFT JOIN clip c ON c.id = r.clipId
            WHERE r.stage = ? AND NOT r.superseded AND r.state = 'running' AND r.fingerprint = ?
            """, step.stage, step.fingerprint).map(candidate)
        while true {
            if queued.isEmpty {
                // Every entry read was stale (and is deleted now): read the next ones.
                guard !successorOnly else { return nil }
                queued = try entries(own.0, own.1)
                if queued.isEmpty { return nil }
            }
            guard let chosen = ClaimOrder.choose(queued.map(\.candidate), held: held, after: previous) else { return nil }
            let entry = queued.remove(at: chosen)
            try s.execute("DELETE FROM workQueue WHERE stage = ? AND itemKey = ? AND fingerprint = ?", step.stage, entry.itemKey, step.fingerprint)
            guard let source = try s.row("SELECT * FROM source WHERE id = ?", entry.sourceId).map(SourceRecord.init(row:)), source.goneAt == nil else { continue }
            let clip = try entry.clipId.flatMap { try s.row("SELECT * FROM clip WHERE id = ?", $0).map(ClipRecord.init(row:)) }
            if step.unit == .clip && clip == nil { continue }
            if let up = step.upstream {
                let upKey = up.unit == .clip ? entry.itemKey : "s\(entry.sourceId)"
                let holds = try s.int("""
                    SELECT COUNT(*) AS n FROM stageResult WHERE stage = ? AND itemKey = ? AND fingerprint = ? AND NOT superseded AND state = 'done'
                    """, up.stage, upKey, up.fingerprint) ?? 0
                guard holds > 0 else { continue }
            }
            guard let row = try take(stage: step.stage, sourceId: entry.sourceId, clipId: entry.clipId, itemKey: entry.itemKey,
                                     fingerprint: step.fingerprint, run: run, maxAttempts: plan.maxAttempts, in: s) else { continue }
            return ClaimedWork(claim: row, step: index, source: source, clip: clip)
        }
    }

    /// The claim itself: the item's row under `fingerprint` becomes `running` under `run` with a
    /// lease and one more attempt, if its state allows; other fingerprints' rows for the item
    /// become history.
    static func take(stage: String, sourceId: Int64, clipId: Int64?, itemKey: String, fingerprint: String,
                     run: Int64, maxAttempts: Int, in s: any SQLSession) throws -> StageResultRecord? {
        var row = try s.row("SELECT * FROM stageResult WHERE stage = ? AND itemKey = ? AND fingerprint = ? \(s.forUpdate)",
                            stage, itemKey, fingerprint).map(StageResultRecord.init(row:))
            ?? StageResultRecord(stage: stage, sourceId: sourceId, clipId: clipId, itemKey: itemKey, fingerprint: fingerprint,
                                 state: .pending, attempts: 0, superseded: false)
        switch row.state {
        case .done, .rejected:
            // A decision under these settings that later settings superseded (A → B → A) is made
            // again: its artifacts may have been overwritten under B.
            if !row.superseded { return nil }
            row.attempts = 0
        case .failed:
            if row.attempts >= maxAttempts { return nil }
            if let next = row.nextAttemptAt, next > s.now { return nil }
        case .running:
            if let lease = row.leaseExpiresAt, lease > s.now, row.runId != run { return nil }
        case .pending: break
        }
        try s.execute("UPDATE stageResult SET superseded = TRUE WHERE stage = ? AND itemKey = ? AND fingerprint <> ? AND NOT superseded",
                      stage, itemKey, fingerprint)
        row.state = .running
        row.attempts += 1
        row.runId = run
        row.startedAt = s.now
        row.finishedAt = nil
        row.leaseExpiresAt = s.now.addingTimeInterval(Lease.duration)
        row.superseded = false
        if let id = row.id {
            try s.execute("""
                UPDATE stageResult SET state = 'running', attempts = ?, runId = ?, startedAt = ?, finishedAt = NULL, leaseExpiresAt = ?, superseded = FALSE
                WHERE id = ?
                """, row.attempts, run, row.startedAt, row.leaseExpiresAt, id)
        } else {
            row.id = try s.int("""
                INSERT INTO stageResult (stage, sourceId, clipId, itemKey, fingerprint, state, attempts, runId, startedAt, leaseExpiresAt, superseded)
                VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, FALSE) RETURNING id
                """, stage, sourceId, clipId, itemKey, fingerprint, row.attempts, run, row.startedAt, row.leaseExpiresAt)
        }
        return row
    }

    // MARK: Outcomes

    /// See `PipelineStore.recordOutcome`.
    static func recordOutcome(_ claim: StageResultRecord, _ outcome: RecordedOutcome, downstreamStages: [String], next: ClaimPlan.Step?,
                              maxAttempts: Int, in s: any SQLSession) throws {
        // The fence: the row must still be running under the claim's run and attempt.
        let fenced = try s.execute("""
            UPDATE stageResult SET state = ?, reason = ?, metrics = ?, artifactPath = ?, finishedAt = ?, seconds = ?, leaseExpiresAt = NULL,
                nextAttemptAt = ?
            WHERE id = ? AND state = 'running' AND runId IS NOT DISTINCT FROM ? AND attempts = ?
            """, outcome.state, outcome.reason, outcome.metrics, outcome.artifactPath, s.now, outcome.seconds, outcome.nextAttemptAt,
            claim.id!, claim.runId, claim.attempts)
        guard fenced == 1 else {
            throw StoreError.leaseLost(stage: claim.stage, item: claim.itemKey, run: claim.runId, attempt: claim.attempts)
        }
        var row = claim
        row.state = outcome.state
        for analysis in outcome.handOn.analyses {
            try s.execute("""
                INSERT INTO analysis (sourceId, kind, fingerprint, data) VALUES (?, ?, ?, ?)
                ON CONFLICT (sourceId, kind) DO UPDATE SET fingerprint = excluded.fingerprint, data = excluded.data
                """, row.sourceId, analysis.kind, analysis.fingerprint, analysis.data)
        }
        if let clips = outcome.handOn.clips { try replaceClips(of: row.sourceId, with: clips, in: s) }
        try writeHandOff(outcome.handOn, result: row.id!, in: s)
        if let update = outcome.handOn.sourceUpdate {
            try s.execute("UPDATE source SET probe = ?, durationSeconds = ? WHERE id = ?", update.probe, update.durationSeconds, row.sourceId)
        }
        switch outcome.state {
        case .done:
            if let next { try enqueue(next, maxAttempts: maxAttempts, only: row.clipId.map { .clip($0) } ?? .source(row.sourceId), in: s) }
        case .failed:
            if row.attempts < maxAttempts { try requeue(row, interrupted: false, notBefore: outcome.nextAttemptAt, in: s) }
            fallthrough
        default:
            // Later stages' results were built on a decision that no longer holds.
            try supersedeDownstream(of: row, stages: downstreamStages, in: s)
        }
    }

    /// Makes the source's clips equal `plans`, keeping the rows (and so every later stage's
    /// results) of clips whose frame range did not change.
    static func replaceClips(of sourceId: Int64, with plans: [ClipRecord], in s: any SQLSession) throws {
        let existing = try s.rows("SELECT * FROM clip WHERE sourceId = ?", sourceId).map(ClipRecord.init(row:))
        func drop(_ clip: ClipRecord) throws {
            // Its rows go with it (cascade); the files they wrote are retired.
            try retireArtifacts(ofResults: s.rows("SELECT id FROM stageResult WHERE clipId = ?", clip.id!).map { try $0.int64("id") }, in: s)
            try s.execute("DELETE FROM clip WHERE id = ?", clip.id!)
        }
        var byKey = Dictionary(uniqueKeysWithValues: existing.map { ("\($0.sceneIndex)/\($0.segmentIndex)", $0) })
        for plan in plans {
            if let old = byKey.removeValue(forKey: "\(plan.sceneIndex)/\(plan.segmentIndex)") {
                if old.startFrame == plan.startFrame && old.endFrame == plan.endFrame { continue }
                try drop(old) // its later results described other frames
            }
            try s.execute("INSERT INTO clip (sourceId, sceneIndex, segmentIndex, startFrame, endFrame) VALUES (?, ?, ?, ?, ?)",
                          sourceId, plan.sceneIndex, plan.segmentIndex, plan.startFrame, plan.endFrame)
        }
        for old in byKey.values { try drop(old) }
    }

    /// Replaces what result `resultId` handed on with `handOn`'s rows. Pieces equal to the ones
    /// recorded before (same number, frames and files) keep their rows, and so the scores later
    /// stages measured on them; the files of pieces, publications and side outputs no longer
    /// recorded are retired.
    static func writeHandOff(_ handOn: HandOn, result resultId: Int64, in s: any SQLSession) throws {
        if handOn.pieces.isEmpty && handOn.syncScores.isEmpty && handOn.qualityScores.isEmpty && handOn.publications.isEmpty
            && handOn.sideOutputs.isEmpty {
            // Most outcomes hand nothing on and replace nothing: one question instead of seven statements.
            let recorded = try s.int("""
                SELECT (SELECT COUNT(*) FROM ownedFile WHERE resultId = ?) + (SELECT COUNT(*) FROM syncScore WHERE resultId = ?)
                     + (SELECT COUNT(*) FROM qualityScore WHERE resultId = ?) AS n
                """, resultId, resultId, resultId) ?? 0
            if recorded == 0 { return }
        }
        let before = try s.rows("SELECT * FROM alignedPiece WHERE resultId = ?", resultId).map { row in
            AlignedPieceRecord(id: try row.int64("id"), resultId: resultId, ordinal: try row.int("ordinal"),
                               frames: try row.int("startFrame")..<(try row.int("endFrame")), video: try row.text("video"), landmarks: try row.text("landmarks"))
        }
        var kept = Set<Int64>()
        func delete(_ old: AlignedPieceRecord) throws {
            try retire(paths: [old.video, old.landmarks], in: s)
            try s.execute("DELETE FROM alignedPiece WHERE id = ?", old.id!)
            kept.insert(old.id!) // deleted: not to be deleted again below
        }
        for piece in handOn.pieces {
            if let same = before.first(where: { $0.describesSamePiece(as: piece) }) { kept.insert(same.id!); continue }
            if let old = before.first(where: { $0.ordinal == piece.ordinal }) { try delete(old) }
            try s.execute("INSERT INTO alignedPiece (resultId, ordinal, startFrame, endFrame, video, landmarks) VALUES (?, ?, ?, ?, ?, ?)",
                          resultId, piece.ordinal, piece.startFrame, piece.endFrame, piece.video, piece.landmarks)
        }
        for old in before where !kept.contains(old.id!) { try delete(old) }
        try retire(paths: s.rows("SELECT path FROM publishedClip WHERE resultId = ? UNION SELECT path FROM sideOutput WHERE resultId = ?",
                                 resultId, resultId).map { try $0.text("path") }, in: s)
        for table in ["syncScore", "qualityScore", "publishedClip", "sideOutput"] {
            try s.execute("DELETE FROM \(table) WHERE resultId = ?", resultId)
        }
        for score in handOn.syncScores {
            try s.execute("""
                INSERT INTO syncScore (resultId, pieceId, scoreKey, "offset", confidence, curve, kept, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """, resultId, score.pieceId, score.scoreKey, score.offset, score.confidence, score.curve, score.kept, score.reason)
        }
        for score in handOn.qualityScores {
            try s.execute("""
                INSERT INTO qualityScore (resultId, pieceId, scoreKey, score, frameScores, kept, reason) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, resultId, score.pieceId, score.scoreKey, score.score, score.frameScores, score.kept, score.reason)
        }
        for clip in handOn.publications {
            try s.execute("INSERT INTO publishedClip (resultId, pieceId, path, \"offset\", faceSize) VALUES (?, ?, ?, ?, ?)",
                          resultId, clip.pieceId, clip.path, clip.offset, clip.faceSize)
        }
        for path in handOn.sideOutputs {
            try s.execute("INSERT INTO sideOutput (resultId, path) VALUES (?, ?) ON CONFLICT DO NOTHING", resultId, path)
        }
    }

    // MARK: Files and history

    /// Remembers the files of results about to be deleted or made history.
    static func retireArtifacts(ofResults ids: [Int64], in s: any SQLSession) throws {
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min(ids.count, $0 + 500)]) }) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            try s.execute("""
                INSERT INTO retiredArtifact (path, retiredAt) SELECT DISTINCT path, ? FROM ownedFile WHERE resultId IN (\(marks)) ON CONFLICT DO NOTHING
                """, [.date(s.now)] + chunk.map { .int($0) })
        }
    }

    static func retire(paths: [String], in s: any SQLSession) throws {
        for path in paths {
            try s.execute("INSERT INTO retiredArtifact (path, retiredAt) VALUES (?, ?) ON CONFLICT DO NOTHING", path, s.now)
        }
    }

    /// Makes the rows of `downstream` stages built on `row` history, and drops their queue
    /// entries: the clip's for a clip stage, every clip's and the source's for a source stage.
    static func supersedeDownstream(of row: StageResultRecord, stages downstream: [String], in s: any SQLSession) throws {
        guard !downstream.isEmpty else { return }
        let marks = downstream.map { _ in "?" }.joined(separator: ",")
        let (column, id) = row.clipId.map { ("clipId", $0) } ?? ("sourceId", row.sourceId)
        let arguments: [SQLValue] = [.int(id)] + downstream.map { .text($0) }
        try s.execute("UPDATE stageResult SET superseded = TRUE WHERE \(column) = ? AND stage IN (\(marks)) AND NOT superseded", arguments)
        try s.execute("DELETE FROM workQueue WHERE \(column) = ? AND stage IN (\(marks))", arguments)
    }
}
