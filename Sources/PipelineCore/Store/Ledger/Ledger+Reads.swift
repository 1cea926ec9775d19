import Foundation

/// What stages, the engine and the dataset index read from the ledger, written once for both
/// drivers.
extension Ledger {
    // MARK: Sources and clips

    /// Every source row by relative path (discovery decides with it which files to hash).
    public func sourcesByPath() throws -> [String: SourceRecord] {
        try read { s in
            Dictionary(try s.rows("SELECT * FROM source").map(SourceRecord.init(row:)).map { ($0.relativePath, $0) }, uniquingKeysWith: { a, _ in a })
        }
    }

    /// Sources that were in the input directory once and are no longer.
    public func goneSources() throws -> [SourceRecord] {
        try read { try $0.rows("SELECT * FROM source WHERE goneAt IS NOT NULL ORDER BY relativePath").map(SourceRecord.init(row:)) }
    }

    /// Every clip of every source still in the input directory, with its source.
    public func clipsOfActiveSources() throws -> [(source: SourceRecord, clip: ClipRecord)] {
        try read { s in
            let sources = Dictionary(uniqueKeysWithValues: try s.rows("SELECT * FROM source WHERE goneAt IS NULL").map(SourceRecord.init(row:)).map { ($0.id!, $0) })
            return try s.rows("SELECT * FROM clip ORDER BY sourceId, sceneIndex, segmentIndex").map(ClipRecord.init(row:))
                .compactMap { clip in sources[clip.sourceId].map { ($0, clip) } }
        }
    }

    public func clips(sourceId: Int64) throws -> [ClipRecord] {
        try read { try $0.rows("SELECT * FROM clip WHERE sourceId = ? ORDER BY sceneIndex, segmentIndex", sourceId).map(ClipRecord.init(row:)) }
    }

    public func analysis(sourceId: Int64, kind: String) throws -> AnalysisRecord? {
        try read { s in
            try s.row("SELECT * FROM analysis WHERE sourceId = ? AND kind = ?", sourceId, kind).map { row in
                AnalysisRecord(sourceId: try row.int64("sourceId"), kind: try row.text("kind"), fingerprint: try row.text("fingerprint"), data: try row.blob("data"))
            }
        }
    }

    // MARK: Results

    /// The current (not superseded) result of `stage` for each item, keyed by item.
    public func currentResults(stage: String) throws -> [String: StageResultRecord] {
        try read { s in
            let rows = try s.rows("SELECT * FROM stageResult WHERE stage = ? AND NOT superseded", stage).map(StageResultRecord.init(row:))
            return Dictionary(rows.map { ($0.itemKey, $0) }, uniquingKeysWith: { a, b in (a.id ?? 0) > (b.id ?? 0) ? a : b })
        }
    }

    /// Every recorded result of `stage` for one item, current and superseded, newest first: the
    /// place to find scores an earlier decision under other thresholds already computed.
    public func history(stage: String, itemKey: String) throws -> [StageResultRecord] {
        try read { try $0.rows("SELECT * FROM stageResult WHERE stage = ? AND itemKey = ? ORDER BY id DESC", stage, itemKey).map(StageResultRecord.init(row:)) }
    }

    /// Every result row (current or not) of the given sources, for cleaning up their files.
    public func results(sourceIds: [Int64]) throws -> [StageResultRecord] {
        try read { s in
            // In chunks: the databases limit the parameters of one statement.
            try stride(from: 0, to: sourceIds.count, by: 500).flatMap { start in
                let chunk = sourceIds[start..<min(sourceIds.count, start + 500)]
                return try s.rows("SELECT * FROM stageResult WHERE sourceId IN (\(chunk.map { _ in "?" }.joined(separator: ",")))", chunk.map { .int($0) })
                    .map(StageResultRecord.init(row:))
            }
        }
    }

    /// Current failed items of present sources: those a later run retries, and those that used up
    /// their attempts.
    public func failedItems(maxAttempts: Int) throws -> (retrying: Int, final: Int) {
        try read { s in
            let row = try s.row("""
                SELECT COUNT(*) AS failed, COALESCE(SUM(CASE WHEN r.attempts >= ? THEN 1 ELSE 0 END), 0) AS final
                FROM stageResult r JOIN source s ON s.id = r.sourceId
                WHERE NOT r.superseded AND r.state = 'failed' AND s.goneAt IS NULL
                """, maxAttempts)!
            let failed = try row.int("failed"), final = try row.int("final")
            return (failed - final, final)
        }
    }

    // MARK: Hand-off

    /// The pieces of `align` result `result`, in order.
    public func alignedPieces(result: Int64) throws -> [AlignedPieceRecord] {
        try read { try $0.rows("SELECT * FROM alignedPiece WHERE resultId = ? ORDER BY ordinal", result).map(AlignedPieceRecord.init(row:)) }
    }

    /// The pieces with the given ids.
    public func alignedPieces(ids: [Int64]) throws -> [Int64: AlignedPieceRecord] {
        guard !ids.isEmpty else { return [:] }
        return try read { s in
            Dictionary(uniqueKeysWithValues: try s.rows("SELECT * FROM alignedPiece WHERE id IN (\(ids.map { _ in "?" }.joined(separator: ",")))",
                                                        ids.map { .int($0) }).map(AlignedPieceRecord.init(row:)).map { ($0.id!, $0) })
        }
    }

    /// What `sync` result `result` measured and decided, by piece, in piece order.
    public func syncScores(result: Int64) throws -> [SyncScoreRecord] { try pieceRows(SyncScoreRecord.self, ofResult: result) }

    /// What `quality` result `result` measured and decided, by piece, in piece order.
    public func qualityScores(result: Int64) throws -> [QualityScoreRecord] { try pieceRows(QualityScoreRecord.self, ofResult: result) }

    /// The clips `publish` result `result` wrote, in piece order.
    public func publishedClips(result: Int64) throws -> [PublishedClipRecord] { try pieceRows(PublishedClipRecord.self, ofResult: result) }

    /// The rows of `Record`'s table that result `result` recorded, in the order of their pieces.
    private func pieceRows<Record: PieceRow>(_: Record.Type, ofResult result: Int64) throws -> [Record] {
        try read { s in
            try s.rows("SELECT x.* FROM \(Record.table) x JOIN alignedPiece p ON p.id = x.pieceId WHERE x.resultId = ? ORDER BY p.ordinal, p.id", result)
                .map(Record.init(row:))
        }
    }

    /// Sync scores measured earlier on `pieces` under `scoreKey`, by any result of the item (current
    /// or history, newest first): a decision under other thresholds already paid for them. Pieces
    /// that could not be measured are measured again.
    public func earlierSyncScores(pieces: [Int64], scoreKey: String) throws -> [Int64: SyncScoreRecord] {
        try earlier(SyncScoreRecord.self, pieces: pieces, scoreKey: scoreKey, measured: "\"offset\" IS NOT NULL")
    }

    /// Quality scores measured earlier on `pieces` under `scoreKey` (as `earlierSyncScores`).
    public func earlierQualityScores(pieces: [Int64], scoreKey: String) throws -> [Int64: QualityScoreRecord] {
        try earlier(QualityScoreRecord.self, pieces: pieces, scoreKey: scoreKey, measured: "TRUE")
    }

    private func earlier<Record: PieceRow>(_: Record.Type, pieces: [Int64], scoreKey: String, measured: String) throws -> [Int64: Record] {
        guard !pieces.isEmpty else { return [:] }
        return try read { s in
            var found: [Int64: Record] = [:]
            let marks = pieces.map { _ in "?" }.joined(separator: ",")
            for row in try s.rows("SELECT * FROM \(Record.table) WHERE pieceId IN (\(marks)) AND scoreKey = ? AND \(measured) ORDER BY resultId DESC",
                                  pieces.map { .int($0) } + [.text(scoreKey)]) {
                let score = try Record(row: row)
                if found[score.pieceId] == nil { found[score.pieceId] = score }
            }
            return found
        }
    }

    /// The clips the current `publish` results of present sources wrote, in source, scene, segment
    /// and piece order, with the scores of the current sync and quality results of the same clip.
    public func publishedPieces() throws -> [PublishedPiece] {
        try read { s in
            try s.rows("""
                SELECT s.relativePath AS source, k.id AS clipId, k.sourceId, k.sceneIndex, k.segmentIndex, k.startFrame AS clipStart, k.endFrame AS clipEnd,
                       p.id AS pieceId, p.resultId AS pieceResult, p.ordinal, p.startFrame, p.endFrame, p.video, p.landmarks,
                       c.resultId AS publishResult, c.path, c."offset", c.faceSize,
                       (SELECT ss.confidence FROM stageResult rs JOIN syncScore ss ON ss.resultId = rs.id AND ss.pieceId = c.pieceId
                        WHERE rs.stage = 'sync' AND rs.itemKey = r.itemKey AND NOT rs.superseded ORDER BY rs.id DESC LIMIT 1) AS confidence,
                       (SELECT qs.score FROM stageResult rq JOIN qualityScore qs ON qs.resultId = rq.id AND qs.pieceId = c.pieceId
                        WHERE rq.stage = 'quality' AND rq.itemKey = r.itemKey AND NOT rq.superseded ORDER BY rq.id DESC LIMIT 1) AS quality
                FROM stageResult r
                JOIN publishedClip c ON c.resultId = r.id
                JOIN alignedPiece p ON p.id = c.pieceId
                JOIN clip k ON k.id = r.clipId
                JOIN source s ON s.id = r.sourceId
                WHERE r.stage = 'publish' AND NOT r.superseded AND r.state = 'done' AND s.goneAt IS NULL
                ORDER BY k.sourceId, k.sceneIndex, k.segmentIndex, p.ordinal, p.id
                """).map { row in
                let pieceId = try row.int64("pieceId")
                return PublishedPiece(
                    source: try row.text("source"),
                    clip: ClipRecord(id: try row.int64("clipId"), sourceId: try row.int64("sourceId"), sceneIndex: try row.int("sceneIndex"),
                                     segmentIndex: try row.int("segmentIndex"), startFrame: try row.int("clipStart"), endFrame: try row.int("clipEnd")),
                    piece: AlignedPieceRecord(id: pieceId, resultId: try row.int64("pieceResult"), ordinal: try row.int("ordinal"),
                                              frames: try row.int("startFrame")..<(try row.int("endFrame")), video: try row.text("video"),
                                              landmarks: try row.text("landmarks")),
                    publication: PublishedClipRecord(resultId: try row.int64("publishResult"), pieceId: pieceId, path: try row.text("path"),
                                                     offset: try row.int("offset"), faceSize: try row.double("faceSize")),
                    syncConfidence: row.optionalDouble("confidence"), quality: row.optionalDouble("quality"))
            }
        }
    }

    /// The scores of the current sync and quality results of present sources, and the number of
    /// published clips.
    public func currentScores() throws -> CurrentScores {
        try read { s in
            func current(_ stage: String) -> String {
                "SELECT r.id FROM stageResult r JOIN source s ON s.id = r.sourceId WHERE r.stage = '\(stage)' AND NOT r.superseded AND s.goneAt IS NULL"
            }
            var scores = CurrentScores()
            for row in try s.rows("SELECT \"offset\", confidence FROM syncScore WHERE \"offset\" IS NOT NULL AND resultId IN (\(current("sync"))) ORDER BY resultId, pieceId") {
                scores.offsets.append(try row.int("offset"))
                scores.confidences.append(try row.double("confidence"))
            }
            scores.qualities = try s.rows("SELECT score FROM qualityScore WHERE resultId IN (\(current("quality"))) ORDER BY resultId, pieceId").map { try $0.double("score") }
            scores.published = Int(try s.int("SELECT COUNT(*) AS n FROM publishedClip WHERE resultId IN (\(current("publish")) AND r.state = 'done')") ?? 0)
            return scores
        }
    }

    /// The pieces of the current done `align` results of present sources, with their source, in
    /// item order.
    public func currentAlignedPieces() throws -> [(source: SourceRecord, piece: AlignedPieceRecord)] {
        try read { s in
            let sources = Dictionary(uniqueKeysWithValues: try s.rows("SELECT * FROM source WHERE goneAt IS NULL").map(SourceRecord.init(row:)).map { ($0.id!, $0) })
            return try s.rows("""
                SELECT r.sourceId AS itemSource, p.* FROM alignedPiece p JOIN stageResult r ON r.id = p.resultId
                WHERE r.stage = 'align' AND NOT r.superseded AND r.state = 'done'
                ORDER BY r.itemKey, p.ordinal
                """).compactMap { row -> (source: SourceRecord, piece: AlignedPieceRecord)? in
                guard let source = sources[try row.int64("itemSource")] else { return nil }
                return (source, try AlignedPieceRecord(row: row))
            }
        }
    }
}

/// A row a result records about one aligned piece.
protocol PieceRow {
    static var table: String { get }
    var resultId: Int64 { get }
    var pieceId: Int64 { get }
    init(row: SQLRow) throws
}

extension AlignedPieceRecord {
    init(row: SQLRow) throws {
        self.init(id: try row.int64("id"), resultId: try row.int64("resultId"), ordinal: try row.int("ordinal"),
                  frames: try row.int("startFrame")..<(try row.int("endFrame")), video: try row.text("video"), landmarks: try row.text("landmarks"))
    }
}

extension SyncScoreRecord: PieceRow {
    static var table: String { "syncScore" }
    init(row: SQLRow) throws {
        self.init(resultId: try row.int64("resultId"), pieceId: try row.int64("pieceId"), scoreKey: try row.text("scoreKey"), offset: row.optionalInt("offset"),
                  confidence: row.optionalDouble("confidence"), curve: nil, kept: try row.bool("kept"), reason: row.optionalText("reason"))
        curve = row.optionalText("curve")
    }
}

extension QualityScoreRecord: PieceRow {
    static var table: String { "qualityScore" }
    init(row: SQLRow) throws {
        self.init(resultId: try row.int64("resultId"), pieceId: try row.int64("pieceId"), scoreKey: try row.text("scoreKey"), score: try row.double("score"),
                  frameScores: [], kept: try row.bool("kept"), reason: row.optionalText("reason"))
        frameScores = try row.text("frameScores")
    }
}

extension PublishedClipRecord: PieceRow {
    static var table: String { "publishedClip" }
    init(row: SQLRow) throws {
        self.init(resultId: try row.int64("resultId"), pieceId: try row.int64("pieceId"), path: try row.text("path"), offset: try row.int("offset"),
                  faceSize: try row.double("faceSize"))
    }
}
