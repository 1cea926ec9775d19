import Foundation
import GRDB

/// Which files under the output directory a stage's result row owns (its aligned clips and
/// landmark sidecars, its published clips, its materialised copy), by stage id. The stages know
/// their own metrics; the store asks through this table when it retires, verifies or collects files.
public struct ArtifactCatalog: Sendable {
    private let listers: [String: @Sendable (StageResultRecord) -> [String]]
    /// Stages whose files later stages read (`Stage.laterStagesReadArtifacts`).
    public let feedingLaterStages: Set<String>

    public init(_ listers: [String: @Sendable (StageResultRecord) -> [String]], feedingLaterStages: Set<String> = []) {
        self.listers = listers
        self.feedingLaterStages = feedingLaterStages
    }
    public static let none = ArtifactCatalog([:])

    /// Paths relative to the output directory.
    public func artifacts(of row: StageResultRecord) -> [String] { listers[row.stage]?(row) ?? [] }
    public var stages: Set<String> { Set(listers.keys) }
}

/// Output files and the rows that own them.
///
/// Rule: a file under the output directory lives exactly as long as a current (not superseded)
/// row names it. When a row becomes history (a newer setting, a changed source, `--prune`) or is
/// deleted (a changed source, a clip a new segmentation dropped), its files become candidates, and
/// the end of the run removes every candidate no current row names. Why: a directory-based consumer
/// of `high_visual_quality/` must see exactly the dataset, and a path that two rows name (the same
/// name written again under new settings) must never be deleted from under the live one.
extension PipelineStore {
    /// Remembers the files of rows about to be deleted, inside the deleting transaction.
    func retireArtifacts(of rows: [StageResultRecord], in db: Database, now: Date) throws {
        for row in rows {
            for path in catalog.artifacts(of: row) {
                try db.execute(sql: "INSERT OR IGNORE INTO retiredArtifact (path, retiredAt) VALUES (?, ?)", arguments: [path, now])
            }
        }
    }

    /// Makes `row` history, with every later stage's rows built on it.
    func supersede(_ row: StageResultRecord, downstream: [String], in db: Database) throws {
        try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE id = ?", arguments: [row.id])
        try supersedeDownstream(of: row, stages: downstream, in: db)
    }

    /// Makes the rows of `downstream` stages built on `row` history: the clip's for a clip stage,
    /// every clip's and the source's for a source stage.
    func supersedeDownstream(of row: StageResultRecord, stages downstream: [String], in db: Database) throws {
        guard !downstream.isEmpty else { return }
        let marks = downstream.map { _ in "?" }.joined(separator: ",")
        if let clipId = row.clipId {
            try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE clipId = ? AND stage IN (\(marks))",
                           arguments: StatementArguments([clipId] + downstream))
        } else {
            try db.execute(sql: "UPDATE stageResult SET superseded = 1 WHERE sourceId = ? AND stage IN (\(marks))",
                           arguments: StatementArguments([row.sourceId] + downstream))
        }
    }

    /// Current rows, of sources present (`gone == false`) or gone, of the stages that own files.
    private func currentRowsOwningFiles(gone: Bool?, in db: Database) throws -> [StageResultRecord] {
        let stages = Array(catalog.stages)
        guard !stages.isEmpty else { return [] }
        var request = StageResultRecord.filter(Column("superseded") == false && stages.contains(Column("stage")))
        if let gone {
            let sources = SQLRequest<Int64>(sql: "SELECT id FROM source WHERE goneAt IS \(gone ? "NOT " : "")NULL")
            request = request.filter(try sources.fetchSet(db).contains(Column("sourceId")))
        }
        return try request.fetchAll(db)
    }

    /// Checks that the files behind every decided result of a present source exist (a `stat` each);
    /// a result whose file is missing (deleted by hand, lost with a disk, pruned by an older release)
    /// becomes history, with everything built on it when later stages read its files (a lost
    /// materialised copy is only written again), so this run makes it again. `order` is every
    /// stage id in pipeline order. Returns how many results were made history.
    public func supersedeResultsWithMissingFiles(order: [String], exists: (String) -> Bool) throws -> Int {
        try writer.write { db in
            var count = 0
            for row in try currentRowsOwningFiles(gone: false, in: db) where row.state == ItemState.done.rawValue {
                let files = catalog.artifacts(of: row)
                guard !files.isEmpty, !files.allSatisfy(exists) else { continue }
                let downstream = catalog.feedingLaterStages.contains(row.stage) ? Array(order.drop { $0 != row.stage }.dropFirst()) : []
                try supersede(row, downstream: downstream, in: db)
                count += 1
            }
            return count
        }
    }

    /// `--prune`: the results of gone sources that own files become history (with everything built
    /// on them), so their files are collected and a source that comes back is made again instead of
    /// being "already decided" with its files deleted. Returns how many results were made history.
    public func supersedeOutputsOfGoneSources(order: [String]) throws -> Int {
        try writer.write { db in
            var count = 0
            for row in try currentRowsOwningFiles(gone: true, in: db) where !catalog.artifacts(of: row).isEmpty {
                try supersede(row, downstream: Array(order.drop { $0 != row.stage }.dropFirst()), in: db)
                count += 1
            }
            return count
        }
    }

    /// Files that no current row names any more: those of history rows and of deleted rows.
    public func unownedArtifacts() throws -> [String] {
        try writer.read { db in
            let stages = Array(catalog.stages)
            var live = Set<String>(), candidates = Set(try String.fetchAll(db, sql: "SELECT path FROM retiredArtifact"))
            for row in try StageResultRecord.filter(stages.contains(Column("stage"))).fetchAll(db) {
                let files = catalog.artifacts(of: row)
                if row.superseded { candidates.formUnion(files) } else { live.formUnion(files) }
            }
            return candidates.subtracting(live).sorted()
        }
    }

    /// Forgets retired paths whose files are gone.
    public func forgetRetiredArtifacts(_ paths: [String]) throws {
        guard !paths.isEmpty else { return }
        try writer.write { db in
            for path in paths { try db.execute(sql: "DELETE FROM retiredArtifact WHERE path = ?", arguments: [path]) }
        }
    }

    /// Current failed items of present sources: those a later run retries, and those that used up
    /// their attempts.
    public func failedItems(maxAttempts: Int) throws -> (retrying: Int, final: Int) {
        try writer.read { db in
            let rows = try StageResultRecord.fetchAll(db, sql: """
                SELECT r.* FROM stageResult r JOIN source s ON s.id = r.sourceId
                WHERE r.superseded = 0 AND r.state = 'failed' AND s.goneAt IS NULL
                """)
            let final = rows.filter { $0.attempts >= maxAttempts }.count
            return (rows.count - final, final)
        }
    }
}
