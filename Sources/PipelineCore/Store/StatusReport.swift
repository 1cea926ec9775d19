import Foundation

/// What `pipelined status` shows, computed from the database alone.
///
/// Its JSON form (`status --json`) is a stable interface: fields are only ever added, and
/// `schemaVersion` changes if one must change meaning. See README "status --json".
public struct StatusReport: Codable, Sendable {
    public struct StageCounts: Codable, Sendable {
        public var stage: String
        public var done = 0, rejected = 0, failed = 0, pending = 0, running = 0
        /// Seconds of work recorded for this stage, and items per second of that work.
        public var workSeconds = 0.0
        public var itemsPerSecond: Double?
        /// Items decided per second of wall-clock time over the last `recentWindow` seconds (or
        /// since the oldest live worker started, if later), across every worker: the stage's
        /// throughput now. Nil when nothing was decided in that window.
        public var recentItemsPerSecond: Double?
        public init(stage: String) { self.stage = stage }
    }
    public struct Rejection: Codable, Sendable {
        public var stage: String
        /// The reason with its numbers masked, so that like rejections group together.
        public var reason: String
        public var count: Int
        /// Up to three items, with their full reasons.
        public var examples: [Example]
    }
    public struct Example: Codable, Sendable { public var item: String; public var reason: String }
    public struct Failure: Codable, Sendable {
        public var stage: String, item: String, reason: String
        public var attempts: Int
        public var final: Bool
    }
    /// A process working on the database now (a `run`), or one that stopped beating without
    /// ending (`stale`: its claims go back to the queue when its lease runs out).
    public struct Worker: Codable, Sendable {
        public var run: Int64
        public var host: String
        public var pid: Int32
        public var version: String
        public var startedAt: Date
        public var heartbeatAt: Date
        /// Items it holds, by stage.
        public var inFlight: [String: Int]
        public var stale: Bool
        /// The inference devices of its model lanes (`pipelined work --devices`); empty without.
        public var devices: [String] = []
    }
    public struct LastRun: Codable, Sendable {
        public var id: Int64
        public var status: RunStatus
        public var startedAt: Date
        public var finishedAt: Date?
        public var host: String
        public var pid: Int32
        public var version: String
    }

    public var schemaVersion = 1
    public var database: String
    public var activeSources = 0
    public var goneSources = 0
    /// Clips (scene segments) of active sources.
    public var clips = 0
    public var clipSeconds = 0.0
    public var stages: [StageCounts] = []
    public var rejections: [Rejection] = []
    public var failures: [Failure] = []
    public var lastRun: LastRun?
    public var workers: [Worker] = []

    /// The window of `StageCounts.recentItemsPerSecond`, in seconds.
    public static let recentWindow: TimeInterval = 600

    public init(database: String) { self.database = database }

    /// - Parameter stages: stage ids and units in pipeline order (pending counts follow the chain).
    /// - Parameter database: how the report names the database (a path, or a URL with its password masked).
    public static func load(from store: any Ledger, database: String, stages stageOrder: [(id: String, unit: WorkUnit)], maxAttempts: Int,
                            timelineRate: Int = 25, now: Date = Date()) throws -> StatusReport {
        try store.read { db in
            var report = StatusReport(database: database)
            let live = try db.rows("SELECT * FROM run WHERE status = 'running' ORDER BY id").map(RunRecord.init(row:))
            let inFlight = try db.rows("SELECT runId, stage, COUNT(*) AS n FROM stageResult WHERE state = 'running' GROUP BY runId, stage")
            report.workers = try live.map { run in
                Worker(run: run.id!, host: run.host, pid: run.pid, version: run.version, startedAt: run.startedAt, heartbeatAt: run.heartbeatAt,
                       inFlight: Dictionary(uniqueKeysWithValues: try inFlight.filter { $0.optionalInt64("runId") == run.id }
                                                                           .map { (try $0.text("stage"), try $0.int("n")) }),
                       stale: run.heartbeatAt.addingTimeInterval(Lease.duration) < now,
                       devices: run.devices.map { $0.split(separator: ",").map(String.init) } ?? [])
            }
            let windowStart = max(now.addingTimeInterval(-Self.recentWindow), live.filter { $0.heartbeatAt.addingTimeInterval(Lease.duration) >= now }.map(\.startedAt).min() ?? .distantPast)
            report.activeSources = Int(try db.int("SELECT COUNT(*) AS n FROM source WHERE goneAt IS NULL") ?? 0)
            report.goneSources = Int(try db.int("SELECT COUNT(*) AS n FROM source WHERE goneAt IS NOT NULL") ?? 0)
            let clipRow = try db.row("""
                SELECT COUNT(*) AS n, COALESCE(SUM(c.endFrame - c.startFrame), 0) AS frames FROM clip c JOIN source s ON s.id = c.sourceId WHERE s.goneAt IS NULL
                """)!
            report.clips = try clipRow.int("n")
            report.clipSeconds = Double(try clipRow.int("frames")) / Double(timelineRate)
            let activeIds = Set(try db.rows("SELECT id FROM source WHERE goneAt IS NULL").map { try $0.int64("id") })
            let names = Dictionary(uniqueKeysWithValues: try db.rows("SELECT id, relativePath FROM source").map { (try $0.int64("id"), try $0.text("relativePath")) })
            let clipNames = Dictionary(uniqueKeysWithValues: try db.rows("""
                SELECT c.id, s.relativePath, c.sceneIndex, c.segmentIndex FROM clip c JOIN source s ON s.id = c.sourceId
                """).map { (try $0.int64("id"), "\(try $0.text("relativePath")) scene \(try $0.int("sceneIndex") + 1) segment \(try $0.int("segmentIndex"))") })
            func name(_ row: StageResultRecord) -> String { row.clipId.flatMap { clipNames[$0] } ?? names[row.sourceId] ?? row.itemKey }
            var eligible = activeIds.count
            var previous: (id: String, unit: WorkUnit)?
            for (stage, unit) in stageOrder {
                if unit == .clip, let previous, previous.unit == .source {
                    // The first clip stage sees every clip of the sources the last source stage passed.
                    eligible = Int(try db.int("""
                        SELECT COUNT(*) AS n FROM clip c JOIN source s ON s.id = c.sourceId
                        JOIN stageResult r ON r.sourceId = c.sourceId AND r.stage = ? AND NOT r.superseded AND r.state = 'done'
                        WHERE s.goneAt IS NULL
                        """, previous.id) ?? 0)
                }
                previous = (stage, unit)
                let rows = try db.rows("SELECT * FROM stageResult WHERE stage = ? AND NOT superseded", stage).map(StageResultRecord.init(row:))
                    .filter { activeIds.contains($0.sourceId) }
                var counts = StageCounts(stage: stage)
                for row in rows {
                    switch row.state {
                    case .done: counts.done += 1
                    case .rejected: counts.rejected += 1
                    case .failed: counts.failed += 1
                    case .running: counts.running += 1
                    case .pending: counts.pending += 1
                    }
                    counts.workSeconds += row.seconds ?? 0
                    if row.state == ItemState.failed {
                        report.failures.append(Failure(stage: stage, item: name(row), reason: row.reason ?? "",
                                                       attempts: row.attempts, final: row.attempts >= maxAttempts))
                    }
                }
                counts.pending += max(0, eligible - rows.count)
                let finished = counts.done + counts.rejected
                if counts.workSeconds > 0 { counts.itemsPerSecond = Double(finished) / counts.workSeconds }
                let recent = rows.filter { ($0.state == .done || $0.state == .rejected) && ($0.finishedAt ?? .distantPast) >= windowStart }.count
                let window = now.timeIntervalSince(windowStart)
                if recent > 0, window > 0 { counts.recentItemsPerSecond = Double(recent) / window }
                report.stages.append(counts)
                eligible = counts.done

                var groups: [String: Rejection] = [:]
                for row in rows where row.state == ItemState.rejected {
                    let reason = row.reason ?? "no reason recorded"
                    let key = Self.reasonClass(reason)
                    var group = groups[key] ?? Rejection(stage: stage, reason: key, count: 0, examples: [])
                    group.count += 1
                    if group.examples.count < 3 { group.examples.append(Example(item: name(row), reason: reason)) }
                    groups[key] = group
                }
                report.rejections += groups.values.sorted { ($0.count, $1.reason) > ($1.count, $0.reason) }
            }
            if let run = try db.row("SELECT * FROM run ORDER BY id DESC LIMIT 1").map(RunRecord.init(row:)) {
                report.lastRun = LastRun(id: run.id!, status: run.status, startedAt: run.startedAt, finishedAt: run.finishedAt,
                                         host: run.host, pid: run.pid, version: run.version)
            }
            return report
        }
    }

    /// "too short: 3.20 s playable …" → "too short: #.# s playable …": numbers masked so that
    /// rejections of one kind group together.
    static func reasonClass(_ reason: String) -> String {
        reason.replacingOccurrences(of: "[0-9]+(\\.[0-9]+)?", with: "#", options: .regularExpression)
    }
}
