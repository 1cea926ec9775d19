import Foundation
import GRDB
@testable import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Issue 19, part 1, end to end: a dataset whose database is in the previous release's schema (v2:
/// hand-offs in metrics JSON) migrates on the next `run`, which then has nothing to do; the index
/// files it rewrites are byte for byte the ones it had, and later decisions still reuse the scores
/// the release measured.
///
/// The v2 database is this run's own database taken back to v2: its rows copied into a database
/// migrated only up to v2 (the metrics JSON in them has the release's form; the committed
/// `Tests/Data/v2-release.sqlite`, checked in `TypedHandOffTests`, shows that form as the release
/// wrote it).
@Suite(.serialized) struct UpgradeToTypedHandOffTests {
    static let v2 = "v2-output-stems-problems-retired-artifacts"

    /// Copies every v2 table of the database at `path` into a database migrated up to v2, in place.
    static func takeBackToV2(_ path: String) throws {
        let old = path + ".v2"
        try? FileManager.default.removeItem(atPath: old)
        let queue = try DatabaseQueue(path: old)
        try Migrations.migrator.migrate(queue, upTo: v2)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS current", arguments: [path])
            try db.inTransaction {
                for table in ["run", "source", "clip", "analysis", "stageResult", "retiredArtifact"] {
                    // v2's columns only: later migrations added some (v5: run.devices).
                    let columns = try Row.fetchAll(db, sql: "PRAGMA main.table_info(\(table))").map { $0["name"] as String }.joined(separator: ", ")
                    try db.execute(sql: "INSERT INTO main.\(table) (\(columns)) SELECT \(columns) FROM current.\(table)")
                }
                return .commit
            }
            try db.execute(sql: "DETACH DATABASE current")
        }
        try queue.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        try FileManager.default.moveItem(atPath: old, toPath: path)
    }

    @Test func aReleaseDatabaseResumesWithNothingToDo() async throws {
        let root = try Fixtures.temporaryDirectory("upgrade-v3")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw"), output = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try TalkingClips.write(input.appendingPathComponent("speaker_a.mp4"), frames: 135, offset: 4)
        try TalkingClips.write(input.appendingPathComponent("sub/speaker_b.mp4"), frames: 135, offset: -3)
        try FaceClips.write(input.appendingPathComponent("gap.mp4"), frames: 160, gap: 70..<90, speech: true)
        let database = output.appendingPathComponent("pipelined.sqlite").path
        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.segment.materialize = true
        c.segment.minSeconds = 2
        c.scenes.detector = "content"; c.scenes.threshold = 255
        func run(_ c: PipelineConfiguration, trace: URL? = nil) async throws -> (RunSummary, [String]) {
            let store = try PipelineStore(path: database)
            let engine = Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                                options: EngineOptions(inputDirectory: input, outputDirectory: output, jobs: 2, traceFile: trace?.path, version: "test"),
                                reporter: RecordingReporter())
            let summary = try await engine.run()
            try DatasetIndex.write(store: store, configuration: c, outputDirectory: output)
            return (summary, try engine.collectOutputs(prune: false))
        }
        func executions(_ trace: URL) throws -> [String] {
            guard FileManager.default.fileExists(atPath: trace.path) else { return [] }
            return try String(contentsOf: trace, encoding: .utf8).split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
        }
        func manifest() throws -> Data { try Data(contentsOf: output.appendingPathComponent(DatasetIndex.manifest)) }

        // Everything kept (two pieces of the gap clip published), then a stricter threshold.
        c.sync.minConfidence = -1
        _ = try await run(c)
        let firstIndex = try manifest()
        c.sync.minConfidence = 0.45
        _ = try await run(c)
        let published = try manifest(), files = try Fixtures.digests(of: output).filter { !$0.key.hasPrefix("pipelined.sqlite") }
        #expect(String(decoding: published, as: UTF8.self).split(separator: "\n").count >= 1, "\(String(decoding: published, as: UTF8.self))")

        try Self.takeBackToV2(database)
        let (applied, hasPieces) = try await DatabaseQueue(path: database).read { db in
            (try Migrations.migrator.appliedIdentifiers(db), try db.tableExists("alignedPiece"))
        }
        #expect(applied == ["v1-initial", Self.v2] && !hasPieces)

        // The upgrade: nothing runs again, nothing is removed, the index is the same.
        let trace = root.appendingPathComponent("trace.txt")
        let (summary, removed) = try await run(c, trace: trace)
        #expect(try executions(trace) == [], "\(summary.counts)")
        #expect(removed == [])
        #expect(try manifest() == published)
        #expect(try Fixtures.digests(of: output).filter { !$0.key.hasPrefix("pipelined.sqlite") } == files)

        // Back to the first threshold: sync decides again from the scores the release measured
        // (no measurement: its metrics say so), and the index is again the first run's.
        c.sync.minConfidence = -1
        let retrace = root.appendingPathComponent("retrace.txt")
        _ = try await run(c, trace: retrace)
        #expect(!(try executions(retrace)).contains("align"), "align ran again after the upgrade")
        let store = try PipelineStore(path: database)
        for row in try store.currentResults(stage: "sync").values where row.metrics != nil {
            let metrics = try JSONSerialization.jsonObject(with: Data(row.metrics!.utf8)) as! [String: Any]
            #expect(metrics["measured"] as? Int == 0, "sync measured again: \(row.metrics!)")
        }
        #expect(try manifest() == firstIndex)
        #expect(firstIndex != published, "the two thresholds should publish different clips")
    }
}
