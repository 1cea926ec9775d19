import Foundation
import GRDB

/// What stages hand each other, as rows: align's pieces, sync's and quality's scores and verdicts,
/// publish's clips, materialised copies (migration v3). Stages read the rows of their upstream's
/// current result; nothing decodes `metrics`, which stays for diagnostics.
extension PipelineStore {
    /// Replaces what result `resultId` handed on with `handOn`'s rows, inside the recording
    /// transaction. Pieces equal to the ones recorded before (same number, frames and files) keep
    /// their rows, and so the scores later stages measured on them; the files of pieces,
    /// publications and side outputs no longer recorded are retired.
    func writeHandOff(_ handOn: HandOn, result resultId: Int64, in db: Database, now: Date) throws {
        let before = try AlignedPieceRecord.filter(Column("resultId") == resultId).fetchAll(db)
        var kept = Set<Int64>()
        for var piece in handOn.pieces {
            piece.resultId = resultId
            if let same = before.first(where: { $0.describesSamePiece(as: piece) }) { kept.insert(same.id!); continue }
            if let old = before.first(where: { $0.ordinal == piece.ordinal }) {
                try retire(paths: [old.video, old.landmarks], in: db, now: now)
                _ = try old.delete(db)
                kept.insert(old.id!) // deleted: not to be deleted again below
            }
            piece.id = nil
            try piece.insert(db)
        }
        for old in before where !kept.contains(old.id!) {
            try retire(paths: [old.video, old.landmarks], in: db, now: now)
            _ = try old.delete(db)
        }
        try retire(paths: String.fetchAll(db, sql: "SELECT path FROM publishedClip WHERE resultId = ? UNION SELECT path FROM sideOutput WHERE resultId = ?",
                                          arguments: [resultId, resultId]), in: db, now: now)
        for table in ["syncScore", "qualityScore", "publishedClip", "sideOutput"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE resultId = ?", arguments: [resultId])
        }
        for var score in handOn.syncScores { score.resultId = resultId; try score.insert(db) }
        for var score in handOn.qualityScores { score.resultId = resultId; try score.insert(db) }
        for var clip in handOn.publications { clip.resultId = resultId; try clip.insert(db) }
        for path in handOn.sideOutputs {
            try db.execute(sql: "INSERT OR IGNORE INTO sideOutput (resultId, path) VALUES (?, ?)", arguments: [resultId, path])
        }
    }

    /// The pieces of `align` result `result`, in order.
    public func alignedPieces(result: Int64) throws -> [AlignedPieceRecord] {
        try writer.read { db in try AlignedPieceRecord.filter(Column("resultId") == result).order(Column("ordinal")).fetchAll(db) }
    }

    /// The pieces with the given ids.
    public func alignedPieces(ids: [Int64]) throws -> [Int64: AlignedPieceRecord] {
        try writer.read { db in
            Dictionary(uniqueKeysWithValues: try AlignedPieceRecord.filter(keys: ids).fetchAll(db).map { ($0.id!, $0) })
        }
    }

    /// What `sync` result `result` measured and decided, by piece, in piece order.
    public func syncScores(result: Int64) throws -> [SyncScoreRecord] { try rows(SyncScoreRecord.self, ofResult: result) }

    /// What `quality` result `result` measured and decided, by piece, in piece order.
    public func qualityScores(result: Int64) throws -> [QualityScoreRecord] { try rows(QualityScoreRecord.self, ofResult: result) }

    /// The clips `publish` result `result` wrote, in piece order.
    public func publishedClips(result: Int64) throws -> [PublishedClipRecord] { try rows(PublishedClipRecord.self, ofResult: result) }

    /// The rows of `Record`'s table that result `result` recorded, in the order of their pieces.
    private func rows<Record: PieceRow>(_: Record.Type, ofResult result: Int64) throws -> [Record] {
        try writer.read { db in
            try Record.fetchAll(db, sql: """
                SELECT x.* FROM \(Record.databaseTableName) x JOIN alignedPiece p ON p.id = x.pieceId WHERE x.resultId = ? ORDER BY p.ordinal, p.id
                """, arguments: [result])
        }
    }

    /// Sync scores measured earlier on `pieces` under `scoreKey`, by any result of the item (current
    /// or history, newest first): a decision under other thresholds already paid for them. Pieces
    /// that could not be measured are measured again.
    public func earlierSyncScores(pieces: [Int64], scoreKey: String) throws -> [Int64: SyncScoreRecord] {
        try earlier(SyncScoreRecord.self, pieces: pieces, scoreKey: scoreKey, where: Column("offset") != nil)
    }

    /// Quality scores measured earlier on `pieces` under `scoreKey` (as `earlierSyncScores`).
    public func earlierQualityScores(pieces: [Int64], scoreKey: String) throws -> [Int64: QualityScoreRecord] {
        try earlier(QualityScoreRecord.self, pieces: pieces, scoreKey: scoreKey, where: true.sqlExpression)
    }

    private func earlier<Record: PieceRow>(_: Record.Type, pieces: [Int64], scoreKey: String, where measured: SQLExpression) throws -> [Int64: Record] {
        try writer.read { db in
            var found: [Int64: Record] = [:]
            for score in try Record.filter(pieces.contains(Column("pieceId")) && Column("scoreKey") == scoreKey && measured)
                .order(Column("resultId").desc).fetchAll(db) where found[score.pieceId] == nil {
                found[score.pieceId] = score
            }
            return found
        }
    }
}

/// A row a result records about one aligned piece.
protocol PieceRow: FetchableRecord, TableRecord {
    var resultId: Int64 { get }
    var pieceId: Int64 { get }
}
extension SyncScoreRecord: PieceRow {}
extension QualityScoreRecord: PieceRow {}
extension PublishedClipRecord: PieceRow {}

/// A published clip with where it came from and the scores it was kept on.
public struct PublishedPiece: Sendable, Equatable {
    public var source: String
    public var clip: ClipRecord
    public var piece: AlignedPieceRecord
    public var publication: PublishedClipRecord
    /// Confidence the current sync result measured (nil for pieces it could not measure).
    public var syncConfidence: Double?
    /// Score the current quality result measured.
    public var quality: Double?
}

/// Every measured piece of the current sync and quality results of present sources (kept or not),
/// and how many clips are published: what the report plots.
public struct CurrentScores: Sendable, Equatable {
    public var offsets: [Int] = []
    public var confidences: [Double] = []
    public var qualities: [Double] = []
    public var published = 0
    public init() {}
}

extension PipelineStore {
    /// The clips the current `publish` results of present sources wrote, in source, scene, segment
    /// and piece order, with the scores of the current sync and quality results of the same clip.
    public func publishedPieces() throws -> [PublishedPiece] {
        try writer.read { db in
            try Row.fetchAll(db, sql: """
                SELECT s.relativePath, k.id, k.sourceId, k.sceneIndex, k.segmentIndex, k.startFrame, k.endFrame,
                       p.id, p.resultId, p.ordinal, p.startFrame, p.endFrame, p.video, p.landmarks,
                       c.resultId, c.path, c."offset", c.faceSize,
                       (SELECT ss.confidence FROM stageResult rs JOIN syncScore ss ON ss.resultId = rs.id AND ss.pieceId = c.pieceId
                        WHERE rs.stage = 'sync' AND rs.itemKey = r.itemKey AND rs.superseded = 0 ORDER BY rs.id DESC LIMIT 1),
                       (SELECT qs.score FROM stageResult rq JOIN qualityScore qs ON qs.resultId = rq.id AND qs.pieceId = c.pieceId
                        WHERE rq.stage = 'quality' AND rq.itemKey = r.itemKey AND rq.superseded = 0 ORDER BY rq.id DESC LIMIT 1)
                FROM stageResult r
                JOIN publishedClip c ON c.resultId = r.id
                JOIN alignedPiece p ON p.id = c.pieceId
                JOIN clip k ON k.id = r.clipId
                JOIN source s ON s.id = r.sourceId
                WHERE r.stage = 'publish' AND r.superseded = 0 AND r.state = 'done' AND s.goneAt IS NULL
                ORDER BY k.sourceId, k.sceneIndex, k.segmentIndex, p.ordinal, p.id
                """).map { row in
                PublishedPiece(source: row[0],
                               clip: ClipRecord(id: row[1], sourceId: row[2], sceneIndex: row[3], segmentIndex: row[4], startFrame: row[5], endFrame: row[6]),
                               piece: AlignedPieceRecord(id: row[7], resultId: row[8], ordinal: row[9], frames: (row[10] as Int)..<(row[11] as Int),
                                                         video: row[12], landmarks: row[13]),
                               publication: PublishedClipRecord(resultId: row[14], pieceId: row[7], path: row[15], offset: row[16], faceSize: row[17]),
                               syncConfidence: row[18], quality: row[19])
            }
        }
    }

    /// The scores of the current sync and quality results of present sources, and the number of
    /// published clips.
    public func currentScores() throws -> CurrentScores {
        try writer.read { db in
            func current(_ stage: String) -> String {
                "SELECT r.id FROM stageResult r JOIN source s ON s.id = r.sourceId WHERE r.stage = '\(stage)' AND r.superseded = 0 AND s.goneAt IS NULL"
            }
            var scores = CurrentScores()
            for row in try Row.fetchAll(db, sql: "SELECT \"offset\", confidence FROM syncScore WHERE \"offset\" IS NOT NULL AND resultId IN (\(current("sync"))) ORDER BY resultId, pieceId") {
                scores.offsets.append(row[0])
                scores.confidences.append(row[1])
            }
            scores.qualities = try Double.fetchAll(db, sql: "SELECT score FROM qualityScore WHERE resultId IN (\(current("quality"))) ORDER BY resultId, pieceId")
            scores.published = try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM publishedClip WHERE resultId IN (\(current("publish")) AND r.state = 'done')
                """) ?? 0
            return scores
        }
    }

    /// The pieces of the current done `align` results of present sources, with their source, in
    /// item order.
    public func currentAlignedPieces() throws -> [(source: SourceRecord, piece: AlignedPieceRecord)] {
        try writer.read { db in
            let sources = Dictionary(uniqueKeysWithValues: try SourceRecord.filter(Column("goneAt") == nil).fetchAll(db).map { ($0.id!, $0) })
            return try Row.fetchAll(db, sql: """
                SELECT r.sourceId, p.* FROM alignedPiece p JOIN stageResult r ON r.id = p.resultId
                WHERE r.stage = 'align' AND r.superseded = 0 AND r.state = 'done'
                ORDER BY r.itemKey, p.ordinal
                """).compactMap { row -> (source: SourceRecord, piece: AlignedPieceRecord)? in
                guard let source = sources[row[0]] else { return nil }
                return (source, try AlignedPieceRecord(row: row))
            }
        }
    }
}
