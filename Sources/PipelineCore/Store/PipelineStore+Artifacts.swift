import Foundation

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
extension Ledger {
    /// The files `result` owns, relative to the output directory.
    public func ownedFiles(result: Int64) throws -> [String] {
        try read { try $0.rows("SELECT path FROM ownedFile WHERE resultId = ? ORDER BY path", result).map { try $0.text("path") } }
    }

    /// Checks that the files behind every decided result of a present source exist (a `stat` each);
    /// a result whose file is missing (deleted by hand, lost with a disk, pruned by an older release)
    /// becomes history, with everything built on it when later stages read its files (a lost
    /// materialised copy is only written again), so this run makes it again. `order` is every
    /// stage id in pipeline order. Returns how many results were made history.
    public func supersedeResultsWithMissingFiles(order: [String], exists: (String) -> Bool) throws -> Int {
        try transaction(now: nil) { s in
            var count = 0
            for (row, files, feeds) in try Self.currentRowsOwningFiles(gone: false, in: s) where row.state == .done {
                guard !files.allSatisfy(exists) else { continue }
                try Self.supersede(row, downstream: feeds ? Array(order.drop { $0 != row.stage }.dropFirst()) : [], in: s)
                count += 1
            }
            return count
        }
    }

    /// `--prune`: the results of gone sources that own files become history (with everything built
    /// on them), so their files are collected and a source that comes back is made again instead of
    /// being "already decided" with its files deleted. Returns how many results were made history.
    public func supersedeOutputsOfGoneSources(order: [String]) throws -> Int {
        try transaction(now: nil) { s in
            var count = 0
            for (row, _, _) in try Self.currentRowsOwningFiles(gone: true, in: s) {
                try Self.supersede(row, downstream: Array(order.drop { $0 != row.stage }.dropFirst()), in: s)
                count += 1
            }
            return count
        }
    }

    /// Files that no current row names any more: those of history rows and of deleted rows.
    public func unownedArtifacts() throws -> [String] {
        try read { s in
            try s.rows("""
                SELECT o.path FROM ownedFile o JOIN stageResult r ON r.id = o.resultId WHERE r.superseded
                UNION SELECT path FROM retiredArtifact
                EXCEPT SELECT o.path FROM ownedFile o JOIN stageResult r ON r.id = o.resultId WHERE NOT r.superseded
                ORDER BY 1
                """).map { try $0.text("path") }
        }
    }

    /// Every path a result names (current or history) or that waits for removal: what the stray
    /// janitor (`OutputFiles.removeStrayOutputs`) must leave alone.
    public func knownArtifactPaths() throws -> Set<String> {
        try read { s in
            Set(try s.rows("SELECT path FROM ownedFile UNION SELECT path FROM retiredArtifact").map { try $0.text("path") })
        }
    }

    /// Forgets retired paths whose files are gone.
    public func forgetRetiredArtifacts(_ paths: [String]) throws {
        guard !paths.isEmpty else { return }
        try transaction(now: nil) { s in
            for path in paths { try s.execute("DELETE FROM retiredArtifact WHERE path = ?", path) }
        }
    }

    /// Makes `row` history, with every later stage's rows built on it.
    static func supersede(_ row: StageResultRecord, downstream: [String], in s: any SQLSession) throws {
        try s.execute("UPDATE stageResult SET superseded = TRUE WHERE id = ?", row.id!)
        try LedgerSQL.supersedeDownstream(of: row, stages: downstream, in: s)
    }

    /// Current rows that own files, of sources present (`gone == false`) or gone, with their files
    /// and whether later stages read them.
    private static func currentRowsOwningFiles(gone: Bool, in s: any SQLSession) throws -> [(row: StageResultRecord, files: [String], feedsLaterStages: Bool)] {
        // One query (an IN list of every id would outgrow the databases' limits on parameters).
        var result: [(row: StageResultRecord, files: [String], feedsLaterStages: Bool)] = []
        for owned in try s.rows("""
            SELECT r.*, o.path AS ownedPath, o.feedsLaterStages FROM ownedFile o
            JOIN stageResult r ON r.id = o.resultId JOIN source s ON s.id = r.sourceId
            WHERE NOT r.superseded AND s.goneAt IS \(gone ? "NOT " : "")NULL
            ORDER BY o.resultId
            """) {
            let id = try owned.int64("id")
            if result.last?.row.id != id { result.append((try StageResultRecord(row: owned), [], false)) }
            result[result.count - 1].files.append(try owned.text("ownedPath"))
            if try owned.bool("feedsLaterStages") { result[result.count - 1].feedsLaterStages = true }
        }
        return result
    }
}
