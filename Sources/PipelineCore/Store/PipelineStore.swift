import Foundation
import GRDB

/// The pipeline's SQLite database: the resume state of every item.
///
/// One `PipelineStore` owns one `DatabasePool` (WAL) for the process's lifetime. Every state change
/// is one short write transaction behind an intent-named method, so a crash between two calls leaves
/// the database at one of them, never between.
public struct PipelineStore: Sendable {
    public let writer: any DatabaseWriter
    public let path: String?

    /// Opens (creating if needed) the database at `path` and migrates it. An existing database is
    /// checked first, on a read-only connection:
    /// - `PRAGMA quick_check`: a run must not write into a database with damaged pages, which would
    ///   spread the damage and report success;
    /// - on a filesystem other hosts can mount (NFS, SMB, Lustre, FUSE, …; `FileSystemKind`), that no
    ///   other host is running on it: SQLite's write-ahead log works among the processes of one host
    ///   only, and two hosts writing would corrupt it silently. Runs of other hosts that ended (or
    ///   died: no heartbeat for two leases) do not count, so a database can move between hosts.
    /// `host`, `fileSystem` and `now` are the caller's facts, given by tests.
    public init(path: String, host: String = ProcessInfo.processInfo.hostName, fileSystem: FileSystemKind? = nil, now: Date = Date()) throws {
        try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: path) {
            var configuration = Self.configuration()
            configuration.readonly = true
            let lines: [String]
            let queue: DatabaseQueue
            do {
                queue = try DatabaseQueue(path: path, configuration: configuration)
                lines = try queue.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check") }
            } catch {
                throw StoreError.damaged(path: path, detail: "\(error)")
            }
            guard lines == ["ok"] else { throw StoreError.damaged(path: path, detail: lines.prefix(3).joined(separator: "; ")) }
            if let kind = fileSystem ?? FileSystemKind.of(path: path), kind.shared,
               let other = try queue.read({ try Self.liveRunOfAnotherHost(db: $0, host: host, now: now) }) {
                try? queue.close()
                throw StoreError.sharedBetweenHosts(path: path, fileSystem: kind.name, host: other.host, run: other.id ?? 0, heartbeat: other.heartbeatAt)
            }
            try queue.close()
        }
        let pool: DatabasePool
        do { pool = try DatabasePool(path: path, configuration: Self.configuration()) } catch {
            throw StoreError.cannotOpen(path: path, message: "\(error)")
        }
        do { try self.init(writer: pool, path: path) } catch let error as DatabaseError {
            throw StoreError.cannotOpen(path: path, message: "\(error)")
        }
    }

    /// Opens the database at `path` for reading only (`status`, `report`, `export`): the file is
    /// never written, so it works on a read-only mount, and a database that an older release wrote
    /// is refused with the reason instead of being migrated behind a reader's back.
    public init(readingOnly path: String) throws {
        var configuration = Self.configuration()
        configuration.readonly = true
        let migrator = Migrations.migrator
        func open(_ location: String) throws -> DatabaseQueue {
            let queue = try DatabaseQueue(path: location, configuration: configuration)
            try queue.read { db in
                if try migrator.hasBeenSuperseded(db) { throw StoreError.newerSchema(path: path) }
                if try !migrator.hasCompletedMigrations(db) { throw StoreError.needsMigration(path: path) }
            }
            return queue
        }
        do {
            writer = try open(path)
        } catch let error as DatabaseError {
            // A WAL database in a folder that cannot be written (a read-only mount) cannot even be
            // read the usual way: SQLite wants to create its shared-memory file. Nobody can write
            // there either, so the file is opened as immutable.
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard access(folder, W_OK) != 0 else { throw StoreError.cannotOpen(path: path, message: "\(error)") }
            var allowed = CharacterSet.urlPathAllowed
            allowed.remove(charactersIn: "?#%")
            let uri = "file:" + (URL(fileURLWithPath: path).standardizedFileURL.path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path) + "?immutable=1"
            do { writer = try open(uri) } catch let second as DatabaseError {
                throw StoreError.cannotOpen(path: path, message: "\(error) (and read as immutable: \(second))")
            }
        }
        self.path = path
    }

    /// An in-memory store with the production configuration, for tests.
    public static func inMemory() throws -> PipelineStore {
        try PipelineStore(writer: DatabaseQueue(configuration: configuration()), path: nil)
    }

    private init(writer: any DatabaseWriter, path: String?) throws {
        self.writer = writer
        self.path = path
        let migrator = Migrations.migrator
        if try writer.read({ try migrator.hasBeenSuperseded($0) }) {
            throw StoreError.newerSchema(path: path ?? ":memory:")
        }
        try migrator.migrate(writer)
    }

    static func configuration() -> Configuration {
        var c = Configuration()
        c.foreignKeysEnabled = true
        // Other processes (a `status` beside a `run`) share the file; wait rather than fail on a lock.
        c.busyMode = .timeout(30)
        return c
    }

    // MARK: Runs

    /// The newest run of another host that is still alive (running, heartbeat within two leases of
    /// `now`; host clocks may disagree by a little, not by minutes).
    static func liveRunOfAnotherHost(db: Database, host: String, now: Date) throws -> RunRecord? {
        guard try db.tableExists("run") else { return nil }
        return try RunRecord.filter(Column("host") != host && Column("status") == "running" && Column("heartbeatAt") > now.addingTimeInterval(-2 * Lease.duration))
            .order(Column("id").desc).fetchOne(db)
    }

    public func beginRun(host: String, pid: Int32, version: String, now: Date = Date()) throws -> RunRecord {
        try writer.write { db in
            var run = RunRecord(startedAt: now, heartbeatAt: now, host: host, pid: pid, version: version, status: .running)
            try run.insert(db)
            return run
        }
    }

    public func heartbeat(run id: Int64, now: Date = Date()) throws {
        try writer.write { db in
            try db.execute(sql: "UPDATE run SET heartbeatAt = ? WHERE id = ?", arguments: [now, id])
            try db.execute(sql: "UPDATE stageResult SET leaseExpiresAt = ? WHERE runId = ? AND state = 'running'",
                           arguments: [now.addingTimeInterval(Lease.duration), id])
        }
    }

    public func finishRun(id: Int64, status: RunStatus, counts: String?, now: Date = Date()) throws {
        try writer.write { db in
            try db.execute(sql: "UPDATE run SET finishedAt = ?, status = ?, counts = ? WHERE id = ?", arguments: [now, status, counts, id])
        }
    }

    /// Takes back work claimed by runs that are gone: their `running` rows become `pending` again.
    ///
    /// Rule: an interruption counts as a failed attempt only for an item that was alone in flight
    /// when its run died; it becomes `failed` once it has used up its attempts that way. Why: a run
    /// killed from outside (an operator, the OOM killer, a reboot) must not use up the attempts of
    /// every item it happened to be working on, while a file that crashes the decoder must not crash
    /// every run after it. The engine retries interrupted items last, so such a file ends up alone
    /// and gets blamed. Returns how many rows were reclaimed.
    public func reclaimAbandonedWork(currentRun: Int64, maxAttempts: Int, isAlive: @Sendable (RunRecord) -> Bool, now: Date = Date()) throws -> Int {
        try writer.write { db in
            let runs = try RunRecord.filter(Column("status") == "running" && Column("id") != currentRun).fetchAll(db)
            var dead: [Int64] = []
            for run in runs where !isAlive(run) || run.heartbeatAt.addingTimeInterval(Lease.duration) < now {
                dead.append(run.id!)
                try db.execute(sql: "UPDATE run SET status = 'interrupted', finishedAt = COALESCE(finishedAt, heartbeatAt) WHERE id = ?", arguments: [run.id])
            }
            let stale = try StageResultRecord
                .filter(Column("state") == "running" && Column("runId") != currentRun)
                .fetchAll(db)
                .filter { row in row.runId.map(dead.contains) ?? true || (row.leaseExpiresAt ?? .distantPast) < now }
            let inFlight = Dictionary(grouping: stale, by: { $0.runId ?? -1 }).mapValues(\.count)
            for var row in stale {
                let alone = inFlight[row.runId ?? -1] == 1
                if !alone { row.attempts = max(0, row.attempts - 1) }
                if alone && row.attempts >= maxAttempts {
                    row.state = ItemState.failed
                    row.reason = "the pipeline process died \(row.attempts) times while working on this item alone; it may crash the decoder"
                } else {
                    row.state = ItemState.pending
                    row.reason = Self.interruptedReason(run: row.runId)
                }
                row.leaseExpiresAt = nil
                try row.update(db)
            }
            return stale.count
        }
    }

    static func interruptedReason(run: Int64?) -> String {
        "\(interruptedPrefix) (run \(run.map(String.init) ?? "?") ended while this item was in progress)"
    }
    /// Marks a pending row as one whose run died; the engine retries such rows last.
    public static let interruptedPrefix = "interrupted"

    // MARK: Sources

    /// How a duplicate's problem starts (`markingDuplicates` sets and clears it; nothing else does).
    static let duplicatePrefix = "duplicate of "

    /// `files` with every copy of an earlier source's content marked as a duplicate of it.
    ///
    /// Rule: among present files with the same whole-file hash, the one known longest (lowest
    /// source id; new files after known ones, in path order) is the original; the others get the
    /// problem "duplicate of <path>". A duplicate whose original disappears loses the problem at the
    /// next sync, which counts as a change, so it is processed in its place. Hashes from before v2
    /// (size and two MiB) are not compared: they cannot prove equality.
    static func markingDuplicates(_ files: [DiscoveredFile], known: [String: SourceRecord]) -> [DiscoveredFile] {
        func hash(_ file: DiscoveredFile) -> String? {
            guard file.problem == nil || file.problem!.hasPrefix(duplicatePrefix) else { return nil }
            let h = file.contentHash ?? known[file.relativePath]?.contentHash
            return h?.count == 64 ? h : nil
        }
        let order = files.indices.sorted { a, b in
            let (x, y) = (known[files[a].relativePath]?.id ?? Int64.max, known[files[b].relativePath]?.id ?? Int64.max)
            return x != y ? x < y : files[a].relativePath < files[b].relativePath
        }
        var originals: [String: String] = [:]
        var marked = files
        for index in order {
            // Discovery never sets this problem; a stale one from an earlier sync is recomputed here.
            if marked[index].problem?.hasPrefix(duplicatePrefix) == true { marked[index].problem = nil }
            guard let h = hash(files[index]) else { continue }
            if let original = originals[h] {
                marked[index].problem = "\(duplicatePrefix)\(original) (the same content, byte for byte); remove one, or set [broken] reject_duplicates = false"
            } else {
                originals[h] = files[index].relativePath
            }
        }
        return marked
    }

    /// Every source row by relative path (discovery decides with it which files to hash).
    public func sourcesByPath() throws -> [String: SourceRecord] {
        try writer.read { db in Dictionary(try SourceRecord.fetchAll(db).map { ($0.relativePath, $0) }, uniquingKeysWith: { a, _ in a }) }
    }

    /// Whether `file` may differ from what `known` recorded, so that its content must be hashed:
    /// size or mtime moved, or it was gone (rsync's quick check; an unchanged size and mtime is
    /// taken as unchanged content).
    public static func needsHash(_ file: DiscoveredFile, known: SourceRecord?) -> Bool {
        guard file.problem == nil else { return false }
        guard let known else { return true }
        // A known problem may be gone now (a fixed permission): hash again, but not a known
        // duplicate's, whose hash is current and whose problem only discovery's comparison clears.
        let problemMayHaveCleared = known.problem.map { !$0.hasPrefix(duplicatePrefix) } ?? false
        return known.size != file.size || known.mtime != file.mtime || problemMayHaveCleared
    }

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
    public func syncSources(_ files: [DiscoveredFile], maxGoneShare: Double = 1, rejectDuplicates: Bool = false, now: Date = Date()) throws -> SourceSync {
        try writer.write { db in
            var result = SourceSync()
            var existing = Dictionary(uniqueKeysWithValues: try SourceRecord.fetchAll(db).map { ($0.relativePath, $0) })
            let scanned = rejectDuplicates ? Self.markingDuplicates(files, known: existing) : files
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
                        try retireArtifacts(of: StageResultRecord.filter(Column("sourceId") == known.id).fetchAll(db), in: db, now: now)
                        try db.execute(sql: "DELETE FROM stageResult WHERE sourceId = ?", arguments: [known.id])
                        try db.execute(sql: "DELETE FROM analysis WHERE sourceId = ?", arguments: [known.id])
                        try db.execute(sql: "DELETE FROM clip WHERE sourceId = ?", arguments: [known.id])
                        known.probe = nil
                        known.durationSeconds = nil
                        result.changed += 1
                    }
                    if known.goneAt != nil { result.returned += 1 }
                    if changed || known.goneAt != nil || moved {
                        known.size = file.size
                        known.mtime = file.mtime
                        if let hash = file.contentHash { known.contentHash = hash }
                        known.problem = file.problem
                        known.goneAt = nil
                        try known.update(db)
                    }
                } else {
                    if taken == nil { taken = Set(try String.fetchAll(db, sql: "SELECT outputStem FROM source WHERE outputStem IS NOT NULL")) }
                    let stem = OutputNaming.stem(for: file.relativePath, taken: taken!)
                    taken!.insert(stem)
                    var record = SourceRecord(relativePath: file.relativePath, size: file.size, mtime: file.mtime,
                                              contentHash: file.contentHash ?? "", discoveredAt: now, problem: file.problem, outputStem: stem)
                    try record.insert(db)
                    result.new += 1
                }
            }
            for var missing in existing.values where missing.goneAt == nil {
                missing.goneAt = now
                try missing.update(db)
                result.gone += 1
            }
            return result
        }
    }

    public func activeSources() throws -> [SourceRecord] {
        try writer.read { db in try SourceRecord.filter(Column("goneAt") == nil).order(Column("relativePath")).fetchAll(db) }
    }

    /// Sources that were in the input directory once and are no longer.
    public func goneSources() throws -> [SourceRecord] {
        try writer.read { db in try SourceRecord.filter(Column("goneAt") != nil).order(Column("relativePath")).fetchAll(db) }
    }

    /// Every result row (current or not) of the given sources, for cleaning up their files.
    public func results(sourceIds: [Int64]) throws -> [StageResultRecord] {
        try writer.read { db in try StageResultRecord.filter(sourceIds.contains(Column("sourceId"))).fetchAll(db) }
    }

    // MARK: Stage results

    /// The current (not superseded) result of `stage` for each item, keyed by item.
    public func currentResults(stage: String) throws -> [String: StageResultRecord] {
        try writer.read { db in
            let rows = try StageResultRecord.filter(Column("stage") == stage && Column("superseded") == false).fetchAll(db)
            return Dictionary(rows.map { ($0.itemKey, $0) }, uniquingKeysWith: { a, b in (a.id ?? 0) > (b.id ?? 0) ? a : b })
        }
    }

    /// The current result of `stage` for one item.
    public func currentResult(stage: String, itemKey: String) throws -> StageResultRecord? {
        try writer.read { db in
            try StageResultRecord.filter(Column("stage") == stage && Column("itemKey") == itemKey && Column("superseded") == false)
                .order(Column("id").desc).fetchOne(db)
        }
    }

    /// Every recorded result of `stage` for one item, current and superseded, newest first: the
    /// place to find scores an earlier decision under other thresholds already computed.
    public func history(stage: String, itemKey: String) throws -> [StageResultRecord] {
        try writer.read { db in
            try StageResultRecord.filter(Column("stage") == stage && Column("itemKey") == itemKey).order(Column("id").desc).fetchAll(db)
        }
    }

    /// Claims `stage` on an item under `fingerprint` for `run`, unless it is already decided or its
    /// failures are final or backing off. Other fingerprints' rows for the item become history.
    public func claimWork(stage: String, sourceId: Int64, clipId: Int64? = nil, itemKey: String, fingerprint: String,
                          run: Int64, maxAttempts: Int, now: Date = Date()) throws -> StageResultRecord? {
        try writer.write { db in
            var row = try StageResultRecord
                .filter(Column("stage") == stage && Column("itemKey") == itemKey && Column("fingerprint") == fingerprint)
                .fetchOne(db)
                ?? StageResultRecord(stage: stage, sourceId: sourceId, clipId: clipId, itemKey: itemKey, fingerprint: fingerprint,
                                     state: ItemState.pending, attempts: 0, superseded: false)
            switch row.state {
            case .done, .rejected:
                // A decision under these settings that later settings superseded (A → B → A) is made
                // again: its artifacts may have been overwritten under B.
                if !row.superseded { return nil }
                row.attempts = 0
            case .failed:
                if row.attempts >= maxAttempts { return nil }
                if let next = row.nextAttemptAt, next > now { return nil }
            case .running:
                if let lease = row.leaseExpiresAt, lease > now, row.runId != run { return nil }
            case .pending: break
            }
            try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE stage = ? AND itemKey = ? AND fingerprint != ?",
                           arguments: [stage, itemKey, fingerprint])
            row.state = ItemState.running
            row.attempts += 1
            row.runId = run
            row.startedAt = now
            row.finishedAt = nil
            row.leaseExpiresAt = now.addingTimeInterval(Lease.duration)
            row.superseded = false
            try row.save(db)
            return row
        }
    }

    /// Records a stage's outcome and what it hands on, in one transaction, if `claim` still holds
    /// the item: the row must still be running under the claim's run and attempt. Otherwise (the
    /// claim's lease expired and the item was reclaimed, and perhaps claimed and decided by another
    /// run) nothing is written and `StoreError.leaseLost` is thrown: a run that lost its lease never
    /// commits over the one that holds it.
    public func recordOutcome(_ claim: StageResultRecord, _ outcome: RecordedOutcome, downstreamStages: [String], now: Date = Date()) throws {
        try writer.write { db in
            guard let held = try StageResultRecord.fetchOne(db, key: claim.id), held.state == ItemState.running,
                  held.runId == claim.runId, held.attempts == claim.attempts else {
                throw StoreError.leaseLost(stage: claim.stage, item: claim.itemKey, run: claim.runId, attempt: claim.attempts)
            }
            var row = claim
            row.state = outcome.state
            row.reason = outcome.reason
            row.metrics = outcome.metrics
            row.artifactPath = outcome.artifactPath
            row.finishedAt = now
            row.seconds = outcome.seconds
            row.leaseExpiresAt = nil
            row.nextAttemptAt = outcome.nextAttemptAt
            try row.update(db)
            for var analysis in outcome.handOn.analyses {
                analysis.sourceId = row.sourceId
                try analysis.save(db)
            }
            if let clips = outcome.handOn.clips { try replaceClips(of: row.sourceId, with: clips, in: db, now: now) }
            try writeHandOff(outcome.handOn, result: row.id!, in: db, now: now)
            if let update = outcome.handOn.sourceUpdate {
                try db.execute(sql: "UPDATE source SET probe = ?, durationSeconds = ? WHERE id = ?",
                               arguments: [update.probe, update.durationSeconds, row.sourceId])
            }
            if outcome.state != .done {
                // Later stages' results were built on a decision that no longer holds.
                try supersedeDownstream(of: row, stages: downstreamStages, in: db)
            }
        }
    }

    /// Makes the source's clips equal `plans`, keeping the rows (and so every later stage's
    /// results) of clips whose frame range did not change.
    func replaceClips(of sourceId: Int64, with plans: [ClipRecord], in db: Database, now: Date) throws {
        let existing = try ClipRecord.filter(Column("sourceId") == sourceId).fetchAll(db)
        func drop(_ clip: ClipRecord) throws {
            // Its rows go with it (cascade); the files they wrote are retired.
            try retireArtifacts(of: StageResultRecord.filter(Column("clipId") == clip.id).fetchAll(db), in: db, now: now)
            _ = try clip.delete(db)
        }
        var byKey = Dictionary(uniqueKeysWithValues: existing.map { ("\($0.sceneIndex)/\($0.segmentIndex)", $0) })
        for var plan in plans {
            plan.sourceId = sourceId
            if let old = byKey.removeValue(forKey: "\(plan.sceneIndex)/\(plan.segmentIndex)") {
                if old.startFrame == plan.startFrame && old.endFrame == plan.endFrame { continue }
                try drop(old) // its later results described other frames
            }
            plan.id = nil
            try plan.insert(db)
        }
        for old in byKey.values { try drop(old) }
    }

    /// Every clip of every source still in the input directory, with its source.
    public func clipsOfActiveSources() throws -> [(source: SourceRecord, clip: ClipRecord)] {
        try writer.read { db in
            let sources = Dictionary(uniqueKeysWithValues: try SourceRecord.filter(Column("goneAt") == nil).fetchAll(db).map { ($0.id!, $0) })
            return try ClipRecord.order(Column("sourceId"), Column("sceneIndex"), Column("segmentIndex")).fetchAll(db)
                .compactMap { clip in sources[clip.sourceId].map { ($0, clip) } }
        }
    }

    public func clips(sourceId: Int64) throws -> [ClipRecord] {
        try writer.read { db in
            try ClipRecord.filter(Column("sourceId") == sourceId).order(Column("sceneIndex"), Column("segmentIndex")).fetchAll(db)
        }
    }

    // MARK: Analyses

    public func analysis(sourceId: Int64, kind: String) throws -> AnalysisRecord? {
        try writer.read { db in
            try AnalysisRecord.filter(Column("sourceId") == sourceId && Column("kind") == kind).fetchOne(db)
        }
    }
}

/// How long a claim stays valid without a heartbeat (the engine beats every `Lease.heartbeat`).
public enum Lease {
    public static let duration: TimeInterval = 120
    public static let heartbeat: TimeInterval = 20
}

/// A file found under the input directory.
public struct DiscoveredFile: Sendable, Equatable {
    public var relativePath: String
    public var size: Int64
    public var mtime: Double
    /// SHA-256 of the content, computed only where `PipelineStore.needsHash` says so.
    public var contentHash: String?
    /// Why the file cannot be processed as it is (see `SourceRecord.problem`).
    public var problem: String?

    public init(relativePath: String, size: Int64, mtime: Double, contentHash: String?, problem: String? = nil) {
        self.relativePath = relativePath
        self.size = size
        self.mtime = mtime
        self.contentHash = contentHash
        self.problem = problem
    }
}

public struct SourceSync: Sendable, Equatable, Codable {
    public var new = 0, changed = 0, gone = 0, returned = 0
    public init(new: Int = 0, changed: Int = 0, gone: Int = 0, returned: Int = 0) {
        self.new = new; self.changed = changed; self.gone = gone; self.returned = returned
    }
}

/// What a stage's outcome writes to the store.
public struct RecordedOutcome: Sendable {
    public var state: ItemState
    public var reason: String?
    public var metrics: String?
    public var artifactPath: String?
    public var seconds: Double
    public var nextAttemptAt: Date?
    /// What the outcome hands on (a failure hands on nothing: whatever the result recorded before
    /// is dropped, and its files are retired).
    public var handOn: HandOn

    public init(state: ItemState, reason: String? = nil, metrics: String? = nil, artifactPath: String? = nil, seconds: Double,
                nextAttemptAt: Date? = nil, handOn: HandOn = HandOn()) {
        self.state = state
        self.reason = reason
        self.metrics = metrics
        self.artifactPath = artifactPath
        self.seconds = seconds
        self.nextAttemptAt = nextAttemptAt
        self.handOn = handOn
    }
}

public struct SourceUpdate: Sendable {
    public var probe: String
    public var durationSeconds: Double
    public init(probe: String, durationSeconds: Double) { self.probe = probe; self.durationSeconds = durationSeconds }
}

public enum StoreError: Error, CustomStringConvertible {
    case newerSchema(path: String)
    case needsMigration(path: String)
    case cannotOpen(path: String, message: String)
    case damaged(path: String, detail: String)
    case massRemoval(gone: Int, active: Int, limit: Double, examples: [String])
    case sharedBetweenHosts(path: String, fileSystem: String, host: String, run: Int64, heartbeat: Date)
    case leaseLost(stage: String, item: String, run: Int64?, attempt: Int)
    public var description: String {
        switch self {
        case let .newerSchema(path):
            "\(path) was written by a newer pipelined; upgrade pipelined (this version will not touch it)"
        case let .needsMigration(path):
            "\(path) was written by an older pipelined and needs upgrading; `pipelined run` with this version upgrades it (this command only reads)"
        case let .cannotOpen(path, message):
            "cannot open the database \(path): \(message)"
        case let .damaged(path, detail):
            "the database \(path) is damaged (PRAGMA quick_check: \(detail)); nothing was written. Restore it from a backup, or move it aside to start over (every result in it is then recomputed)"
        case let .sharedBetweenHosts(path, fileSystem, host, run, heartbeat):
            "the database \(path) is on a filesystem other hosts share (\(fileSystem)), and host \(host) is running pipelined on it "
                + "(run #\(run), last heartbeat \(ISO8601DateFormatter().string(from: heartbeat))). SQLite cannot be written from two hosts "
                + "there without corrupting it, so nothing was opened for writing; run pipelined on one host at a time (start this run again "
                + "once that one has ended), or keep the database on a local disk with --db"
        case let .leaseLost(stage, item, run, attempt):
            "\(stage) on \(item): run \(run.map(String.init) ?? "?") lost its claim (attempt \(attempt)) before it could record the outcome, "
                + "because its lease expired (was the process paused or the machine suspended?); the item was handed to another run, "
                + "and this outcome was not recorded"
        case let .massRemoval(gone, active, limit, examples):
            "\(gone) of \(active) inputs are missing from the input directory (e.g. \(examples.joined(separator: ", "))), more than run.max_gone_share (\(Int(limit * 100)) %) allows at once; "
                + "is the input folder's disk mounted? Nothing was changed. If they were removed on purpose, run again with --allow-mass-removal"
        }
    }
}
