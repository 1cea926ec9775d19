import Foundation
import GRDB
import Inference
import PipelineCore
import PipelineTestSupport
import Testing

/// Three `pipelined work` processes on one PostgreSQL ledger while a seeded driver SIGKILLs
/// workers at random moments (and starts them again), pauses one past its lease, and restarts the
/// database with `pg_ctl stop -m immediate`: the decisions, the clip table and the bytes of every
/// published file equal an uninterrupted one-process SQLite run's; no temporary file is left; no
/// committed (stage, item, settings) is executed again after its commit.
@Suite(.serialized) struct ChaosTests {
    // Many attempts: kills land on items that did nothing wrong (the blame rule for an item that
    // crashes its worker has its own tests). Short segments (sync's offset search needs 61 frames):
    // several clip items per source.
    static let config = """
    [run]
    max_attempts = 100
    [broken]
    min_duration_seconds = 1.0
    [segment]
    min_seconds = 3.0
    target_seconds = 3.0
    max_seconds = 4.0
    """
    static let lease = 3.0

    @Test func workersKilledPausedAndADatabaseRestartLoseNothing() throws {
        let root = try Fixtures.temporaryDirectory("chaos")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        // 20 inputs: 6 talking heads (published), 14 without a face, of other rates and audio (rejected at alignment).
        for i in 0..<6 {
            try TalkingClips.write(input.appendingPathComponent("talking\(i).mp4"), frames: 100 + 15 * i, offset: [0, 3, -2, 1, -4, 2][i])
        }
        for i in 0..<14 {
            try Fixtures.video(input.appendingPathComponent(String(format: "noface%02d.mp4", i)), seconds: 3.2 + Double(i % 3) * 0.4,
                               rate: ["25", "30", "24"][i % 3], sampleRate: [16_000, 44_100, 48_000][i % 3])
        }
        let configURL = root.appendingPathComponent("pipeline.conf")
        try Self.config.write(to: configURL, atomically: true, encoding: .utf8)
        let inputsBefore = try Fixtures.digests(of: input)

        // The reference: one uninterrupted run on SQLite.
        let referenceOut = root.appendingPathComponent("reference")
        let started = Date()
        let reference = try CLI.run(["run", "--input-dir", input.path, "--output-dir", referenceOut.path, "--config", configURL.path, "--quiet"])
        #expect(reference.status == 0, "\(reference.stderr)")
        let uninterrupted = Date().timeIntervalSince(started)
        let expected = try LedgerReadings.decisions(sqlite: referenceOut)
        let clipsExpected = try LedgerReadings.clips(sqlite: referenceOut)
        let publishedExpected = try Fixtures.digests(of: referenceOut.appendingPathComponent("high_visual_quality"))
        #expect(!publishedExpected.isEmpty && clipsExpected.count >= 20)

        let server = try PostgresServer.start(name: "chaos")
        defer { try? server.stop() }
        try server.psql("CREATE DATABASE ledger")
        let url = server.url(database: "ledger")
        let out = root.appendingPathComponent("shared")
        let trace = root.appendingPathComponent("trace.tsv")
        let logs = root.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        var started_ = 0
        var logOf: [Int32: URL] = [:]
        func startWorker() throws -> Process {
            started_ += 1
            let process = Process()
            process.executableURL = try CLI.executable
            process.arguments = ["work", "--db", url, "--input-dir", input.path, "--output-dir", out.path, "--config", configURL.path,
                                 "--slots", "1", "--lease", String(Self.lease), "--settle", "0", "--grace", "5"]
            process.environment = ProcessInfo.processInfo.environment.merging(["PIPELINED_TRACE": trace.path]) { $1 }
            let log = logs.appendingPathComponent("worker\(started_).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            logOf[process.processIdentifier] = log
            return process
        }
        var workers = try (0..<3).map { _ in try startWorker() }
        defer { for worker in workers where worker.isRunning { kill(worker.processIdentifier, SIGCONT); kill(worker.processIdentifier, SIGKILL) } }

        // "No re-execution after commit": before each trace read, the set committed so far; a trace
        // line written after that read whose key was in the set is an execution after its commit.
        var snapshots: [(traceLines: Int, committed: Set<String>)] = []
        func traceLines() -> [String] { ((try? String(contentsOf: trace, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        func snapshot() {
            guard let committed = try? LedgerReadings.committed(server) else { return } // the server is down
            snapshots.append((traceLines().count, committed))
        }
        func remaining() -> Int? {
            try? Int(server.psql("""
                SELECT (SELECT COUNT(*) FROM workQueue) + (SELECT COUNT(*) FROM stageResult WHERE state = 'running' AND NOT superseded)
                """, database: "ledger").trimmingCharacters(in: .whitespacesAndNewlines))
        }

        // As a supervisor (systemd's Restart=, a Kubernetes Deployment) would: a worker that exits
        // by itself is started again. The only exit allowed is 69, a worker that started while the
        // database was down (it says so and leaves the retry to its supervisor).
        var selfExits: [String] = []
        func supervise() {
            for k in workers.indices where !workers[k].isRunning {
                let status = workers[k].terminationStatus
                let log = logOf[workers[k].processIdentifier].flatMap { try? String(contentsOf: $0, encoding: .utf8) } ?? ""
                selfExits.append("worker \(k) exited \(status): \(log.split(separator: "\n").suffix(3).joined(separator: " / "))")
                #expect(status == 69, "worker \(k) exited \(status) by itself: \(log.split(separator: "\n").suffix(10).joined(separator: "\n"))")
                if let restarted = try? startWorker() { workers[k] = restarted }
            }
        }

        let seed = ProcessInfo.processInfo.environment["PIPELINED_TEST_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
        print("ChaosTests: seed \(seed) (PIPELINED_TEST_SEED=\(seed) replays the driver's choices; reference run \(String(format: "%.1f", uninterrupted)) s)")
        var random = SeededGenerator(seed: seed)
        var kills = 0, paused = false, restarted = false
        var events: [String] = []
        // The moments of the pause and of the restart, among the kills.
        let pauseAfter = Int.random(in: 3...8, using: &random), restartAfter = Int.random(in: 10...16, using: &random)
        let deadline = Date().addingTimeInterval(600)
        while kills < 20, Date() < deadline {
            let wait = Double.random(in: 0.2...max(0.3, uninterrupted / 25), using: &random)
            let until = Date().addingTimeInterval(wait)
            while Date() < until { snapshot(); supervise(); usleep(250_000) }
            guard (remaining() ?? 1) > 0 || traceLines().isEmpty else { break } // the work is done: later kills would land on idle workers
            let victim = Int.random(in: 0..<workers.count, using: &random)
            kill(workers[victim].processIdentifier, SIGKILL)
            workers[victim].waitUntilExit()
            kills += 1
            events.append("kill worker \(victim) after \(String(format: "%.2f", wait)) s")
            workers[victim] = try startWorker()
            if kills == pauseAfter, !paused {
                // Paused past its lease: its items go to the others; its late commits are refused.
                let sleeper = (victim + 1) % workers.count
                kill(workers[sleeper].processIdentifier, SIGSTOP)
                let resume = Date().addingTimeInterval(Self.lease * 3)
                while Date() < resume { snapshot(); supervise(); usleep(250_000) }
                kill(workers[sleeper].processIdentifier, SIGCONT)
                paused = true
                events.append("paused worker \(sleeper) for \(Self.lease * 3) s")
            }
            if kills == restartAfter, !restarted {
                try server.crash() // pg_ctl stop -m immediate
                usleep(UInt32(Double.random(in: 0.2...2, using: &random) * 1e6))
                try server.start()
                restarted = true
                events.append("restarted PostgreSQL (immediate)")
            }
        }
        print("ChaosTests: \(events.joined(separator: "; "))\(selfExits.isEmpty ? "" : "; " + selfExits.joined(separator: "; "))")
        #expect(kills >= 20, "only \(kills) kills landed before the work was done (reference run \(uninterrupted) s): \(events)")
        #expect(paused && restarted, "\(events)")

        // Let the survivors finish, then stop them: exit 0 each.
        let finishBy = Date().addingTimeInterval(300)
        var quietPolls = 0
        while quietPolls < 3, Date() < finishBy {
            snapshot()
            supervise()
            quietPolls = remaining() == 0 ? quietPolls + 1 : 0
            usleep(500_000)
        }
        #expect(quietPolls >= 3, "work left after 300 s: \(remaining() ?? -1)")
        for worker in workers { kill(worker.processIdentifier, SIGTERM) }
        for (k, worker) in workers.enumerated() {
            worker.waitUntilExit()
            #expect(worker.terminationStatus == 0, "worker \(k) exited \(worker.terminationStatus)")
        }
        snapshot()
        // A last one-shot worker finds nothing to do.
        let linesBefore = traceLines().count
        let last = try CLI.run(["work", "--once", "--db", url, "--input-dir", input.path, "--output-dir", out.path, "--config", configURL.path, "--quiet"],
                               environment: ["PIPELINED_TRACE": trace.path])
        #expect(last.status == 0, "\(last.stderr)")
        #expect(traceLines().count == linesBefore, "a finished ledger ran again: \(traceLines().dropFirst(linesBefore))")

        // Nothing committed ran again after its commit; some executions were lost to kills and redone
        // (the kills landed on items in flight, not only on idle or starting workers).
        let lines = traceLines()
        print("ChaosTests: \(lines.count) executions of \(Set(lines).count) (stage, item, settings): \(lines.count - Set(lines).count) redone after a kill or pause")
        #expect(lines.count > Set(lines).count, "no kill landed on an item in flight")
        var rerun: [String] = []
        for (k, line) in lines.enumerated() {
            // The latest snapshot taken before this line was written.
            guard let before = snapshots.last(where: { $0.traceLines <= k }) else { continue }
            if before.committed.contains(line) { rerun.append(line) }
        }
        #expect(rerun.isEmpty, "committed results executed again: \(rerun)")

        // The same decisions, clips and published bytes as the uninterrupted SQLite run.
        let got = try LedgerReadings.decisions(server)
        let differing = Set(got.keys).union(expected.keys).filter { got[$0] != expected[$0] }.sorted()
        #expect(differing.isEmpty, "decisions differ: \(differing.prefix(10).map { "\($0): \(got[$0] ?? "none") vs \(expected[$0] ?? "none")" })")
        #expect(try LedgerReadings.clips(server) == clipsExpected)
        #expect(try Fixtures.digests(of: out.appendingPathComponent("high_visual_quality")) == publishedExpected)
        let leftovers = FileManager.default.enumerator(atPath: out.path)!.compactMap { $0 as? String }.filter { $0.contains(OutputFiles.temporaryMarker) }
        #expect(leftovers.isEmpty, "temporaries left: \(leftovers)")
        #expect(try Fixtures.digests(of: input) == inputsBefore, "inputs were modified")
    }
}
