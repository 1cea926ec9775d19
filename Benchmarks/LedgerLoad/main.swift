import Foundation
import PipelineCore
import PostgresLedger

// Load on the ledger from many processes: a synthetic one-stage pipeline whose items are
// sources. `LedgerLoad setup --db URL --items N` migrates the database and adds N sources;
// `LedgerLoad worker --db URL [--work-ms W]` claims and commits items until none is left (each
// item busy-waits W ms of CPU) and prints one JSON line: what it committed and how long each
// claim and commit took. The load test and `Benchmarks/ledger-load.sh` run it.

let arguments = CommandLine.arguments
func value(_ name: String) -> String? { arguments.firstIndex(of: name).flatMap { $0 + 1 < arguments.count ? arguments[$0 + 1] : nil } }
guard arguments.count >= 2, let url = value("--db") else {
    FileHandle.standardError.write(Data("usage: LedgerLoad setup|worker --db postgresql://… [--items N] [--work-ms W]\n".utf8))
    exit(2)
}
let plan = ClaimPlan(steps: [.init(stage: "broken", unit: .source, fingerprint: "load", upstream: nil)], maxAttempts: 3)

do {
    let ledger = try PostgresLedgerDatabase(url: url)
    switch arguments[1] {
    case "setup":
        try ledger.migrate()
        let items = Int(value("--items") ?? "2000")!
        _ = try ledger.syncSources((0..<items).map { DiscoveredFile(relativePath: String(format: "item%06d.mp4", $0), size: 1, mtime: 1, contentHash: "h\($0)") })
        print(try ledger.enqueueClaimable(plan))
    case "worker":
        let workSeconds = Double(value("--work-ms") ?? "0")! / 1000
        let run = try ledger.beginRun(host: ProcessInfo.processInfo.hostName, pid: getpid(), version: "load").id!
        var committed: [String] = []
        var latencies: [Double] = []
        let started = Date()
        while true {
            let t0 = Date()
            guard let work = try ledger.claim(plan, run: run) else { break }
            let claimed = Date().timeIntervalSince(t0)
            let busyUntil = Date().addingTimeInterval(workSeconds)
            while Date() < busyUntil {}
            let t1 = Date()
            try ledger.recordOutcome(work.claim, RecordedOutcome(state: .done, seconds: workSeconds), downstreamStages: [], maxAttempts: plan.maxAttempts)
            latencies.append(claimed + Date().timeIntervalSince(t1))
            committed.append(work.claim.itemKey)
        }
        try ledger.finishRun(id: run, status: .finished, counts: nil)
        let line = try JSONSerialization.data(withJSONObject: ["run": run, "committed": committed, "latencies": latencies,
                                                               "seconds": Date().timeIntervalSince(started)])
        print(String(decoding: line, as: UTF8.self))
    default:
        FileHandle.standardError.write(Data("unknown command \(arguments[1])\n".utf8))
        exit(2)
    }
} catch {
    FileHandle.standardError.write(Data("LedgerLoad: \(error)\n".utf8))
    exit(1)
}
