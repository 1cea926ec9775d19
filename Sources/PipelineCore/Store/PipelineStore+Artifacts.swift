import Foundation
import GRDB

/// Output files and the rows that own them.
///
/// Which files a result owns is data: its aligned pieces' clips and sidecars, its published clips
/// and its side outputs, gathered by the `ownedFile` view (migration v3).
///
/// Rule: a file under the output directory lives exactly as long as a current (not superseded)
/// row names it. When a row becomes history (a newer setting, a changed source, `--prune`) or is
/// deleted (a changed source, a clip a new segmentation dropped), or a result recorded again no
/// longer names a file, its files become candidates, and the end of the run removes every candidate
/// no current row names. Why: a directory-based consumer of `high_visual_quality/` must see exactly
/// the dataset, and a path that two rows name (the same name written again under new settings)
/// must never be deleted from under the live one.
extension PipelineStore {
    /// Remembers the files of rows about to be deleted, inside the deleting transaction.
    func retireArtifacts(of rows: [StageResultRecord], in db: Database, now: Date) throws {
        try retireArtifacts(ofResults: rows.compactMap(\.id), in: db, now: now)
    }

    func retireArtifacts(ofResults ids: [Int64], in db: Database, now: Date) throws {
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min(ids.count, $0 + 500)]) }) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            try db.execute(sql: "INSERT OR IGNORE INTO retiredArtifact (path, retiredAt) SELECT path, ? FROM ownedFile WHERE resultId IN (\(marks))",
                           arguments: StatementArguments([now] + chunk))
        }
    }

    func retire(paths: [String], in db: Database, now: Date) throws {
        for path in paths {
            try db.execute(sql: "INSERT OR IGNORE INTO retiredArtifact (path, retiredAt) VALUES (?, ?)", arguments: [path, now])
        }
    }

    /// The files `result` owns, relative to the output directory.
    public func ownedFiles(result: Int64) throws -> [String] {
        try writer.read { db in try String.fetchAll(db, sql: "SELECT path FROM ownedFile WHERE resultId = ? ORDER BY path", arguments: [result]) }
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

    /// Current rows that own files, of sources present (`gone == false`) or gone, with their files
    /// and whether later stages read them.
    private func currentRowsOwningFiles(gone: Bool, in db: Database) throws -> [(row: StageResultRecord, files: [String], feedsLaterStages: Bool)] {
        let owned = try Row.fetchAll(db, sql: """
            SELECT o.resultId, o.path, o.feedsLaterStages FROM ownedFile o
            JOIN stageResult r ON r.id = o.resultId JOIN source s ON s.id = r.sourceId
            WHERE r.superseded = 0 AND s.goneAt IS \(gone ? "NOT " : "")NULL
            ORDER BY o.resultId
            """)
        var files: [Int64: (paths: [String], feeds: Bool)] = [:]
        for row in owned {
            let id: Int64 = row[0]
            files[id, default: ([], false)].paths.append(row[1])
            if row[2] as Bool { files[id]!.feeds = true }
        }
        return try StageResultRecord.filter(keys: Array(files.keys)).fetchAll(db).sorted { $0.id! < $1.id! }.map { row in
            (row, files[row.id!]!.paths, files[row.id!]!.feeds)
        }
    }

    /// Checks that the files behind every decided result of a present source exist (a `stat` each);
    /// a result whose file is missing (deleted by hand, lost with a disk, pruned by an older release)
    /// becomes history, with everything built on it when later stages read its files (a lost
    /// materialised copy is only written again), so this run makes it again. `order` is every
    /// stage id in pipeline order. Returns how many results were made history.
    public func supersedeResultsWithMissingFiles(order: [String], exists: (String) -> Bool) throws -> Int {
        try writer.write { db in
            var count = 0
            for (row, files, feeds) in try currentRowsOwningFiles(gone: false, in: db) where row.state == ItemState.done {
                guard !files.allSatisfy(exists) else { continue }
                try supersede(row, downstream: feeds ? Array(order.drop { $0 != row.stage }.dropFirst()) : [], in: db)
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
            for (row, _, _) in try currentRowsOwningFiles(gone: true, in: db) {
                try supersede(row, downstream: Array(order.drop { $0 != row.stage }.dropFirst()), in: db)
                count += 1
            }
            return count
        }
    }

    /// Files that no current row names any more: those of history rows and of deleted rows.
    public func unownedArtifacts() throws -> [String] {
        try writer.read { db in
            try String.fetchAll(db, sql: """
                SELECT o.path FROM ownedFile o JOIN stageResult r ON r.id = o.resultId WHERE r.superseded = 1
                UNION SELECT path FROM retiredArtifact
                EXCEPT SELECT o.path FROM ownedFile o JOIN stageResult r ON r.id = o.resultId WHERE r.superseded = 0
                ORDER BY 1
                """)
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
