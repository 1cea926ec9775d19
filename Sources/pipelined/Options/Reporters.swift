import Foundation
import PipelineCore
import Synchronization

/// No output (for --quiet and --json).
struct SilentReporter: ProgressReporter {
    func report(_ event: ProgressEvent) {}
}

/// Plain log lines, for pipes and cron logs.
final class LineReporter: ProgressReporter {
    private let started = Mutex(false)
    func report(_ event: ProgressEvent) {
        let line: String? = switch event {
        case let .discovered(sync, active):
            "inputs: \(active) active (\(sync.new) new, \(sync.changed) changed, \(sync.gone) gone, \(sync.returned) back)"
        case let .reclaimed(items, temporaries) where items + temporaries > 0:
            "resumed: \(items) interrupted item(s) reclaimed, \(temporaries) partial or unrecorded file(s) removed"
        case .reclaimed: nil
        case let .hashing(files, bytes):
            String(format: "inputs: hashing %d new or changed file(s), %.1f GB", files, Double(bytes) / 1e9)
        case let .missingOutputs(results):
            "missing files: \(results) decided result(s) lost their output files; they are made again"
        case let .queue(stages):
            // Only the first: later ones repeat what the item lines say.
            started.withLock { started in
                defer { started = true }
                guard !started else { return nil }
                let queued = stages.filter { $0.queued > 0 }.map { "\($0.stage) \($0.queued)" }
                return "queued: " + (queued.isEmpty ? "nothing to do" : queued.joined(separator: ", "))
            }
        case let .itemFinished(stage, item, state, reason, seconds):
            "\(stage): \(state.rawValue) \(item)\(reason.map { " — \($0)" } ?? "") [\(String(format: "%.2f", seconds)) s]"
        case .claimed: nil
        case let .rescanned(sync, unsettled):
            "inputs: \(sync.new) new, \(sync.changed) changed, \(sync.gone) gone, \(sync.returned) back"
                + (unsettled > 0 ? "; \(unsettled) file(s) still being written (taken once they stand still)" : "")
        case let .released(items):
            "stopping: \(items) item(s) not finished within the grace period given back to the queue"
        }
        if let line { Console.error((line + "\n")) }
    }
}

/// A live display on a terminal: one line per stage with what this run decided, what is queued and
/// in flight, and items/s, redrawn in place. Stages run side by side: an item moves on as soon as
/// its upstream result is committed.
final class LiveReporter: ProgressReporter, @unchecked Sendable {
    // @unchecked: all state is behind `lock`; events arrive from worker tasks.
    private struct Row { var stage: String; var queued = 0; var running = 0; var done = 0; var rejected = 0; var failed = 0; var first: Date?; var last: Date? }
    private let lock = NSLock()
    private var header = ""
    private var rows: [Row] = []
    private var drawnLines = 0
    private var lastDraw = Date.distantPast
    private let color = ProcessInfo.processInfo.environment["NO_COLOR"] == nil

    func report(_ event: ProgressEvent) {
        lock.lock(); defer { lock.unlock() }
        switch event {
        case let .discovered(sync, active):
            header = "inputs: \(active) active (\(sync.new) new, \(sync.changed) changed, \(sync.gone) gone)"
        case .reclaimed, .missingOutputs, .claimed, .released: return
        case let .rescanned(sync, _):
            header = "inputs: \(sync.new) new, \(sync.changed) changed, \(sync.gone) gone since the last scan"
        case let .hashing(files, bytes):
            header = String(format: "inputs: hashing %d new or changed file(s), %.1f GB", files, Double(bytes) / 1e9)
        case let .queue(stages):
            for stage in stages {
                if let i = rows.firstIndex(where: { $0.stage == stage.stage }) {
                    rows[i].queued = stage.queued
                    rows[i].running = stage.running
                } else {
                    rows.append(Row(stage: stage.stage, queued: stage.queued, running: stage.running))
                }
            }
        case let .itemFinished(stage, _, state, _, seconds):
            guard let i = rows.firstIndex(where: { $0.stage == stage }) else { return }
            let now = Date()
            if rows[i].first == nil { rows[i].first = now.addingTimeInterval(-seconds) }
            rows[i].last = now
            switch state {
            case .done: rows[i].done += 1
            case .rejected: rows[i].rejected += 1
            default: rows[i].failed += 1
            }
        }
        draw(force: false)
    }

    func finish() { lock.lock(); draw(force: true); lock.unlock() }

    private func draw(force: Bool) {
        let now = Date()
        guard force || now.timeIntervalSince(lastDraw) > 0.1 else { return }
        lastDraw = now
        var text = drawnLines > 0 ? "\u{1B}[\(drawnLines)A" : ""
        var lines = [header]
        for row in rows {
            let processed = row.done + row.rejected + row.failed
            let elapsed = row.first.map { (row.last ?? now).timeIntervalSince($0) } ?? 0
            let rate = elapsed > 0 ? Double(processed) / elapsed : 0
            let failed = row.failed > 0 ? (color ? " \u{1B}[31m\(row.failed) failed\u{1B}[0m" : " \(row.failed) failed") : ""
            lines.append(String(format: "%-11@ %5d done %5d rejected %5d queued %3d running %6.2f items/s",
                                row.stage as NSString, row.done, row.rejected, row.queued, row.running, rate) + failed)
        }
        for line in lines { text += "\u{1B}[2K" + line + "\n" }
        drawnLines = lines.count
        Console.error(text)
    }
}
