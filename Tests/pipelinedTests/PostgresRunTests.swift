import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// `pipelined run --db postgresql://…` on a real server: three runs at once on one database and
/// one output folder (as three hosts would) make exactly the dataset one run on SQLite makes, each
/// (stage, item, settings) is executed once across them, and a later run has nothing to do.
@Suite(.serialized) struct PostgresRunTests {
    @Test func threeRunsOnOneLedgerMakeTheDatasetOneSQLiteRunMakes() throws {
        let root = try Fixtures.temporaryDirectory("pgrun")
        defer { try? FileManager.default.removeItem(at: root) }
        let raw = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        try TalkingClips.write(raw.appendingPathComponent("speaker_a.mp4"), frames: 135, offset: 4)
        try TalkingClips.write(raw.appendingPathComponent("speaker_b.mp4"), frames: 135, offset: -3)
        try FaceClips.write(raw.appendingPathComponent("nobody.mp4"), frames: 135, gap: 0..<135)
        try TalkingClips.write(raw.appendingPathComponent("speaker_c.mp4"), frames: 160, offset: 0)
        let config = root.appendingPathComponent("c.conf")
        try "[broken]\nmin_duration_seconds = 1.0\n".write(to: config, atomically: true, encoding: .utf8)
        let inputs = try Fixtures.digests(of: raw)

        // The reference: one run on SQLite.
        let local = root.appendingPathComponent("local")
        let reference = try CLI.run(["run", "--input-dir", raw.path, "--output-dir", local.path, "--config", config.path, "--quiet", "--jobs", "2"])
        #expect(reference.status == 0, "\(reference.stderr)")

        let server = try PostgresServer.start(name: "pgrun")
        defer { try? server.stop() }
        _ = try server.psql("CREATE DATABASE ledger")
        let url = server.url(database: "ledger")
        let shared = root.appendingPathComponent("shared")
        let trace = root.appendingPathComponent("trace.tsv")
        let runs = try (0..<3).map { _ in
            let process = Process()
            process.executableURL = try CLI.executable
            process.arguments = ["run", "--db", url, "--input-dir", raw.path, "--output-dir", shared.path, "--config", config.path, "--quiet", "--jobs", "1"]
            process.environment = ProcessInfo.processInfo.environment.merging(["PIPELINED_TRACE": trace.path]) { $1 }
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return (process, errors)
        }
        for (process, errors) in runs {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(text)")
        }

        // Exactly once: no (stage, item, fingerprint) line twice among the three runs' executions.
        let executions = try String(contentsOf: trace, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(!executions.isEmpty)
        #expect(Set(executions).count == executions.count, "executed twice: \(Dictionary(grouping: executions, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted())")

        // The same dataset, byte for byte, and the same index.
        func published(_ folder: URL) throws -> [String: String] {
            try Fixtures.digests(of: folder.appendingPathComponent("high_visual_quality"))
        }
        let expected = try published(local)
        #expect(!expected.isEmpty)
        #expect(try published(shared) == expected)
        // fileslist.txt names the files by absolute path: the same list under each folder.
        func index(_ folder: URL) throws -> String {
            try String(contentsOf: folder.appendingPathComponent("fileslist.txt"), encoding: .utf8).replacingOccurrences(of: folder.path, with: "OUT")
        }
        let (sharedIndex, localIndex) = (try index(shared), try index(local))
        #expect(sharedIndex == localIndex, "\(sharedIndex) vs \(localIndex)")
        // No temporary file left, inputs untouched.
        let leftovers = FileManager.default.enumerator(atPath: shared.path)!.compactMap { $0 as? String }.filter { $0.contains(".partial") || $0.contains(".tmp") }
        #expect(leftovers.isEmpty, "\(leftovers)")
        #expect(try Fixtures.digests(of: raw) == inputs)

        // `status` reads the shared ledger: the same counts per stage as the SQLite run's, and no
        // worker left (all three runs finished).
        func status(_ arguments: [String]) throws -> StatusReport {
            let r = try CLI.run(["status", "--json"] + arguments)
            #expect(r.status == 0, "\(r.stderr)")
            return try JSONDecoder.iso.decode(StatusReport.self, from: Data(r.stdout.utf8))
        }
        let sharedStatus = try status(["--db", url]), localStatus = try status(["--output-dir", local.path])
        func counts(_ report: StatusReport) -> [String] { report.stages.map { "\($0.stage) \($0.done)/\($0.rejected)/\($0.failed)/\($0.pending)" } }
        #expect(counts(sharedStatus) == counts(localStatus))
        #expect(sharedStatus.workers.isEmpty && sharedStatus.database.hasSuffix("/ledger"), "\(sharedStatus.database) \(sharedStatus.workers)")

        // `export` and `report` read the shared ledger too: the same list as the dataset's index.
        let exported = root.appendingPathComponent("exported.txt")
        let e = try CLI.run(["export", "--db", url, "--output-dir", shared.path, "--fileslist", exported.path, "--config", config.path])
        #expect(e.status == 0, "\(e.stderr)")
        #expect(try String(contentsOf: exported, encoding: .utf8) == String(contentsOf: shared.appendingPathComponent("fileslist.txt"), encoding: .utf8))
        let page = root.appendingPathComponent("report.html")
        let p = try CLI.run(["report", "--db", url, "--output-dir", shared.path, "--html", page.path, "--config", config.path])
        #expect(p.status == 0, "\(p.stderr)")
        let html = try String(contentsOf: page, encoding: .utf8)
        #expect(html.contains("/ledger") && html.contains("nobody.mp4"), "the report names neither the ledger nor the rejected input")

        // A later run finds everything decided.
        try FileManager.default.removeItem(at: trace)
        let again = try CLI.run(["run", "--db", url, "--input-dir", raw.path, "--output-dir", shared.path, "--config", config.path, "--quiet"],
                                environment: ["PIPELINED_TRACE": trace.path])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(!FileManager.default.fileExists(atPath: trace.path), "the second run executed: \((try? String(contentsOf: trace, encoding: .utf8)) ?? "")")
    }

    /// An unreachable server: one line naming the URL, password masked, and exit code 69.
    @Test func anUnreachableDatabaseIsOneLineAndItsOwnExitCode() throws {
        let root = try Fixtures.temporaryDirectory("pgdown")
        defer { try? FileManager.default.removeItem(at: root) }
        let raw = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: raw, withIntermediateDirectories: true)
        let port = try PostgresServer.freePort()
        let r = try CLI.run(["run", "--db", "postgresql://worker:s3cret@127.0.0.1:\(port)/ledger", "--input-dir", raw.path,
                             "--output-dir", root.appendingPathComponent("out").path])
        #expect(r.status == 69, "\(r.status): \(r.stderr)")
        #expect(r.stderr.contains("127.0.0.1:\(port)") && !r.stderr.contains("s3cret"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    }
}
