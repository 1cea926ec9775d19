import Foundation
import PipelineCore

/// The human form of `StatusReport`.
enum StatusText {
    static func render(_ r: StatusReport, listFailures: Bool) -> String {
        var out = "database: \(r.database)\n"
        out += "sources: \(r.activeSources) active\(r.goneSources > 0 ? ", \(r.goneSources) gone from the input directory" : "")\n"
        out += String(format: "clips: %d (%.1f min)\n\n", r.clips, r.clipSeconds / 60)
        out += pad("stage", 11) + ["done", "rejected", "failed", "pending", "running", "items/s", "now/s"].map { lpad($0, 9) }.joined() + "\n"
        for s in r.stages {
            out += pad(s.stage, 11) + [s.done, s.rejected, s.failed, s.pending, s.running].map { lpad(String($0), 9) }.joined()
            out += [s.itemsPerSecond, s.recentItemsPerSecond].map { lpad($0.map { String(format: "%.2f", $0) } ?? "-", 9) }.joined() + "\n"
        }
        out += "(items/s: per second of work; now/s: decided per second of wall-clock time over the last \(Int(StatusReport.recentWindow / 60)) min, across workers)\n"
        if !r.workers.isEmpty {
            let formatter = ISO8601DateFormatter()
            out += "\nworkers:\n"
            for w in r.workers {
                let held = w.inFlight.isEmpty ? "idle" : w.inFlight.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                let devices = w.devices.isEmpty ? "" : ", devices \(w.devices.joined(separator: ","))"
                out += "  run #\(w.run) on \(w.host) (pid \(w.pid), pipelined \(w.version)\(devices)): \(held); last heartbeat \(formatter.string(from: w.heartbeatAt))"
                out += w.stale ? " — stale: no heartbeat for more than a lease; its items go back to the queue\n" : "\n"
            }
        }
        if !r.rejections.isEmpty {
            out += "\nrejected:\n"
            for g in r.rejections {
                out += "  \(pad(g.stage, 10)) \(lpad(String(g.count), 5)) × \(g.examples.first?.reason ?? g.reason)\n"
                out += "  \(pad("", 10))       e.g. \(g.examples.map(\.item).joined(separator: ", "))\n"
            }
        }
        if !r.failures.isEmpty {
            out += "\nfailed: \(r.failures.count) item(s)\(listFailures ? "" : " (--failed lists them)")\n"
            if listFailures {
                for f in r.failures {
                    out += "  \(pad(f.stage, 10)) \(f.item) — \(f.reason) (attempt \(f.attempts)\(f.final ? ", final" : ", will retry"))\n"
                }
            }
        }
        if let run = r.lastRun {
            let formatter = ISO8601DateFormatter()
            let duration = run.finishedAt.map { String(format: " in %.1f s", $0.timeIntervalSince(run.startedAt)) } ?? ""
            out += "\nlast run: #\(run.id) \(run.status)\(duration), started \(formatter.string(from: run.startedAt)) on \(run.host) (pid \(run.pid), pipelined \(run.version))"
        }
        return out
    }

    private static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count) }
    private static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? " " + s : String(repeating: " ", count: n - s.count) + s }
}
