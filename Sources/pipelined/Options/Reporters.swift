import Foundation
import PipelineCore

/// No output (for --quiet and --json).
struct SilentReporter: ProgressReporter {
    func report(_ event: ProgressEvent) {}
}

/// Plain log lines, for pipes and cron logs.
struct LineReporter: ProgressReporter {
    func report(_ event: ProgressEvent) {
        let line: String? = switch event {
        case let .discovered(sync, active):
            "inputs: \(active) active (\(sync.new) new, \(sync.changed) changed, \(sync.gone) gone, \(sync.returned) back)"
        case let .reclaimed(items, temporaries) where items + temporaries > 0:
            "resumed: \(items) interrupted item(s) reclaimed, \(temporaries) partial file(s) removed"
        case .reclaimed: nil
        case let .hashing(files, bytes):
            String(format: "inputs: hashing %d new or changed file(s), %.1f GB", files, Double(bytes) / 1e9)
        case let .missingOutputs(results):
            "missing files: \(results) decided result(s) lost their output files; they are made again"
        case let .stageStarted(stage, total, decided, toDo):
            "\(stage): \(toDo) to do, \(decided) of \(total) already decided"
        case let .itemFinished(stage, item, state, reason, seconds):
            "\(stage): \(state.rawValue) \(item)\(reason.map { " — \($0)" } ?? "") [\(String(format: "%.2f", seconds)) s]"
        case .stageFinished: nil
        }
        if let line { Console.error((line + "\n")) }
    }
}

/// A live display on a terminal: one line per stage with done/total, items/s and ETA, redrawn in place.
final class LiveReporter: ProgressReporter, @unchecked Sendable {
    // @unchecked: all state is behind `lock`; events arrive from worker tasks.
    private struct Row { var stage: String; var total: Int; var decided: Int; var done = 0; var rejected = 0; var failed = 0; var started = Date(); var finished: Date? }
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
        case .reclaimed, .missingOutputs: return
        case let .hashing(files, bytes):
            header = String(format: "inputs: hashing %d new or changed file(s), %.1f GB", files, Double(bytes) / 1e9)
        case let .stageStarted(stage, total, decided, _):
            rows.append(Row(stage: stage, total: total, decided: decided))
        case let .itemFinished(_, _, state, _, _):
            guard !rows.isEmpty else { return }
            switch state {
            case .done: rows[rows.count - 1].done += 1
            case .rejected: rows[rows.count - 1].rejected += 1
            default: rows[rows.count - 1].failed += 1
            }
        case .stageFinished:
            if !rows.isEmpty { rows[rows.count - 1].finished = Date() }
            draw(force: true)
            return
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
            let elapsed = (row.finished ?? now).timeIntervalSince(row.started)
            let rate = elapsed > 0 ? Double(processed) / elapsed : 0
            let remaining = row.total - row.decided - processed
            let eta = rate > 0 && remaining > 0 ? String(format: " ETA %.0fs", Double(remaining) / rate) : ""
            let failed = row.failed > 0 ? (color ? " \u{1B}[31m\(row.failed) failed\u{1B}[0m" : " \(row.failed) failed") : ""
            lines.append(String(format: "%-11@ %5d/%-5d %6.2f items/s  %d rejected", row.stage as NSString, row.decided + processed, row.total, rate, row.rejected) + failed + eta)
        }
        for line in lines { text += "\u{1B}[2K" + line + "\n" }
        drawnLines = lines.count
        Console.error(text)
    }
}
