import Foundation
import PipelineCore
import PipelineTestSupport
import PostgresLedger
import Testing

/// Claims under load on PostgreSQL: 8 worker processes (`LedgerLoad worker`) take 2,000 items of a
/// synthetic stage from one database at once. Every item is committed exactly once, by one worker,
/// on its first attempt; the claim + commit latencies and the throughput are printed.
@Suite struct LedgerLoadTests {
    static var loadExecutable: URL {
        get throws { try Fixtures.builtExecutable("LedgerLoad") }
    }

    @Test func eightWorkerProcessesCommitEveryItemOnce() throws {
        let url = try SharedPostgres.newDatabaseURL()
        let items = 2000, workers = 8
        let setup = try Fixtures.run(try Self.loadExecutable.path, ["setup", "--db", url, "--items", "\(items)"])
        #expect(setup.status == 0, "\(setup.stderr)")
        let started = Date()
        let processes = try (0..<workers).map { _ in
            let process = Process()
            process.executableURL = try Self.loadExecutable
            process.arguments = ["worker", "--db", url]
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            return (process, out, err)
        }
        var committed: [String] = []
        var latencies: [Double] = []
        var perWorker: [Int] = []
        for (process, out, err) in processes {
            let output = out.fileHandleForReading.readDataToEndOfFile()
            let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "\(errors)")
            guard let object = try? JSONSerialization.jsonObject(with: output) as? [String: Any] else {
                Issue.record("a worker printed no result: \(errors)")
                continue
            }
            let keys = object["committed"] as? [String] ?? []
            committed += keys
            perWorker.append(keys.count)
            latencies += object["latencies"] as? [Double] ?? []
        }
        let seconds = Date().timeIntervalSince(started)
        let ledger = try PostgresLedgerDatabase(url: url)
        #expect(committed.count == items, "items committed: \(committed.count)")
        #expect(Set(committed).count == committed.count, "an item was committed twice")
        // The ledger agrees: one done row per item, each on its first attempt, none left queued.
        let rows = try ledger.read { s in
            try s.rows("SELECT state, attempts, COUNT(*) AS n FROM stageResult GROUP BY state, attempts")
                .map { "\(try $0.text("state")) × \(try $0.int("attempts")): \(try $0.int("n"))" }
        }
        #expect(rows == ["done × 1: \(items)"])
        #expect(try ledger.read { try $0.int("SELECT COUNT(*) AS n FROM workQueue") } == 0)
        latencies.sort()
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] * 1000 }
        print(String(format: "ledger load: %d workers × %d items in %.2f s = %.0f items/s; claim+commit p50 %.2f ms, p99 %.2f ms; per worker %@",
                     workers, items, seconds, Double(items) / seconds, percentile(0.5), percentile(0.99), perWorker.map(String.init).joined(separator: " ")))
    }
}
