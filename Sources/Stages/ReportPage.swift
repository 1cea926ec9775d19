import Foundation
import PipelineCore

/// `pipelined report --html`: one self-contained HTML page (inline CSS and SVG, no scripts, no
/// external files) with the per-stage funnel, histograms of sync offset, sync confidence and
/// quality score with their thresholds, rejection reasons with counts and examples, and the
/// throughput of every stage.
public enum ReportPage {
    /// Every measured piece of the current sync and quality results (kept or not).
    public struct Scores: Sendable {
        public var offsets: [Double] = []
        public var confidences: [Double] = []
        public var qualities: [Double] = []
        public var published = 0

        public init() {}

        public static func load(store: any Ledger) throws -> Scores {
            let current = try store.currentScores()
            var scores = Scores()
            scores.offsets = current.offsets.map(Double.init)
            scores.confidences = current.confidences
            scores.qualities = current.qualities
            scores.published = current.published
            return scores
        }
    }

    public static func html(report: StatusReport, scores: Scores, configuration: PipelineConfiguration, calibration: SyncCalibration? = nil,
                            generated: Date = Date()) -> String {
        let sync = configuration.sync, quality = configuration.quality
        var body = """
        <h1>pipelined dataset report</h1>
        <p class="meta">\(escape(report.database)) · generated \(escape(ISO8601DateFormatter().string(from: generated)))\
        \(report.lastRun.map { " · last run #\($0.id) \(escape($0.status.rawValue))" } ?? "")</p>
        <div class="tiles">
        \(tile("inputs", "\(report.activeSources)", report.goneSources > 0 ? "\(report.goneSources) gone" : "present"))
        \(tile("clips", "\(report.clips)", String(format: "%.1f min planned", report.clipSeconds / 60)))
        \(tile("published", "\(scores.published)", "in fileslist.txt"))
        \(tile("failed", "\(report.failures.count)", "items with errors"))
        </div>
        <h2>Funnel</h2>
        \(funnel(report.stages))
        <h2>Scores</h2>
        <div class="plots">
        \(histogram(title: "Sync offset (frames; + = audio leads)", values: scores.offsets,
                    range: (Double(-sync.searchFrames) - 0.5)...(Double(sync.searchFrames) + 0.5), bins: 2 * sync.searchFrames + 1,
                    thresholds: [Double(-sync.maxOffset) - 0.5, Double(sync.maxOffset) + 0.5], keep: "inside",
                    ticks: [Double(-sync.searchFrames), 0, Double(sync.searchFrames)]))
        \(histogram(title: "Sync confidence (\(escape(sync.method)))", values: scores.confidences, range: rangeOf(scores.confidences, including: sync.methodMinConfidence),
                    bins: 24, thresholds: [sync.methodMinConfidence], keep: "right"))
        \(quality.method == "hyperiqa"
            ? histogram(title: "Quality (hyperiqa; higher is better)", values: scores.qualities, range: rangeOf(scores.qualities, including: quality.minHyperiqa),
                        bins: 24, thresholds: [quality.minHyperiqa], keep: "right")
            : histogram(title: "Quality (\(escape(quality.method)); lower is better)", values: scores.qualities, range: rangeOf(scores.qualities, including: quality.maxBrisque),
                        bins: 24, thresholds: [quality.maxBrisque], keep: "left"))
        </div>
        \(calibration.map(calibrationSection) ?? "")
        <h2>Rejections</h2>
        \(rejections(report.rejections))
        <h2>Throughput</h2>
        \(throughput(report.stages))
        """
        if !report.failures.isEmpty {
            body += "<h2>Failures</h2><table><tr><th>stage</th><th>item</th><th>error</th><th>attempts</th></tr>"
            for f in report.failures.prefix(50) {
                body += "<tr><td>\(escape(f.stage))</td><td>\(escape(f.item))</td><td>\(escape(f.reason))</td><td>\(f.attempts)\(f.final ? " (final)" : "")</td></tr>"
            }
            body += "</table>"
        }
        return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>pipelined report</title>
        <style>
        body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
        h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
        .meta{color:#666;margin:0 0 16px}.tiles{display:flex;gap:12px;flex-wrap:wrap}
        .tile{border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:150px}.tile b{display:block;font-size:24px}
        .tile span{color:#666}.plots{display:flex;flex-wrap:wrap;gap:16px}
        table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
        th{background:#f6f6f6}.num{text-align:right}.ex{color:#555;font-size:12px}svg text{font:12px system-ui,sans-serif;fill:#333}
        </style></head><body>
        \(body)
        </body></html>

        """
    }

    static func tile(_ label: String, _ value: String, _ note: String) -> String {
        "<div class=\"tile\"><span>\(escape(label))</span><b>\(escape(value))</b><span>\(escape(note))</span></div>"
    }

    static let colors = (done: "#3a9d5d", rejected: "#e0a030", failed: "#d04040", pending: "#c8c8c8")
    /// Used nowhere else on the page (the report test finds both in a screenshot).
    public static let calibrationColors = (matched: "#1b9e77", mismatched: "#7570b3")

    /// One bar per stage, split into done / rejected / failed / pending, scaled to the largest stage.
    static func funnel(_ stages: [StatusReport.StageCounts]) -> String {
        let width = 1000.0, left = 90.0, barHeight = 22.0, gap = 8.0
        let total = { (s: StatusReport.StageCounts) in s.done + s.rejected + s.failed + s.pending + s.running }
        let most = Double(max(1, stages.map(total).max() ?? 1))
        var svg = "<svg class=\"funnel\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(Double(stages.count) * (barHeight + gap) + 30))\" role=\"img\" aria-label=\"funnel\">"
        for (i, s) in stages.enumerated() {
            let y = Double(i) * (barHeight + gap)
            svg += "<text x=\"0\" y=\"\(y + 15)\">\(escape(s.stage))</text>"
            var x = left
            for (count, color, name) in [(s.done, colors.done, "done"), (s.rejected, colors.rejected, "rejected"), (s.failed, colors.failed, "failed"),
                                         (s.pending + s.running, colors.pending, "pending")] where count > 0 {
                let w = (width - left - 140) * Double(count) / most
                svg += "<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(w))\" height=\"\(fmt(barHeight))\" fill=\"\(color)\"><title>\(escape(s.stage)): \(count) \(name)</title></rect>"
                x += w
            }
            svg += "<text x=\"\(fmt(x + 6))\" y=\"\(y + 15)\">\(s.done) done · \(s.rejected) rejected\(s.failed > 0 ? " · \(s.failed) failed" : "")\(s.pending + s.running > 0 ? " · \(s.pending + s.running) pending" : "")</text>"
        }
        let legendY = Double(stages.count) * (barHeight + gap) + 14
        var lx = left
        for (name, color) in [("done", colors.done), ("rejected", colors.rejected), ("failed", colors.failed), ("pending", colors.pending)] {
            svg += "<rect x=\"\(fmt(lx))\" y=\"\(fmt(legendY - 10))\" width=\"12\" height=\"12\" fill=\"\(color)\"/><text x=\"\(fmt(lx + 16))\" y=\"\(fmt(legendY))\">\(name)</text>"
            lx += 90
        }
        return svg + "</svg>"
    }

    static func rangeOf(_ values: [Double], including threshold: Double) -> ClosedRange<Double> {
        let lo = min(values.min() ?? threshold, threshold), hi = max(values.max() ?? threshold, threshold)
        let pad = max(1e-6, (hi - lo) * 0.05)
        return (lo - pad)...(hi + pad)
    }

    /// A histogram of `values` over `range` with dashed threshold lines; `keep` says which side passes.
    /// One bar per bin of `range`; integer data such as offsets passes a range from −n − ½ to n + ½
    /// so that every value sits in the middle of its own bar, with `ticks` at the integers.
    static func histogram(title: String, values: [Double], range: ClosedRange<Double>, bins: Int, thresholds: [Double], keep: String,
                          ticks: [Double]? = nil) -> String {
        let note = values.isEmpty ? "no scores yet" : "\(values.count) clips · kept: \(keep) of the red line\(thresholds.count > 1 ? "s" : "")"
        return histogram(title: title, series: [Series(name: "clips", values: values, color: "#4a78b5")], range: range, bins: bins,
                         thresholds: thresholds, note: note, ticks: ticks)
    }

    /// One set of values drawn in a histogram.
    struct Series { var name: String; var values: [Double]; var color: String }

    /// A histogram of one or more series side by side in every bin (with a legend when more than one).
    static func histogram(title: String, series: [Series], range: ClosedRange<Double>, bins: Int, thresholds: [Double], note: String,
                          ticks: [Double]? = nil, width: Double = 340) -> String {
        let height = 220.0, left = 36.0, bottom = 40.0, top = 28.0
        let span = range.upperBound - range.lowerBound
        let counts: [[Int]] = series.map { s in
            var c = [Int](repeating: 0, count: bins)
            for v in s.values {
                let b = Int(((v - range.lowerBound) / span * Double(bins)).rounded(.down))
                c[min(bins - 1, max(0, b))] += 1
            }
            return c
        }
        let most = Double(max(1, counts.flatMap { $0 }.max() ?? 1))
        let plotW = width - left - 26, plotH = height - top - bottom
        func x(_ v: Double) -> Double { left + (v - range.lowerBound) / span * plotW }
        var svg = "<svg class=\"histogram\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<text x=\"0\" y=\"16\" font-weight=\"bold\">\(escape(title))</text>"
        svg += "<line x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(left + plotW)\" y2=\"\(top + plotH)\" stroke=\"#888\"/>"
        let binW = plotW / Double(bins), barW = max(1, (binW - 1) / Double(series.count))
        for (k, s) in series.enumerated() {
            for (i, c) in counts[k].enumerated() where c > 0 {
                let h = plotH * Double(c) / most
                let x0 = left + binW * Double(i) + barW * Double(k)
                svg += "<rect x=\"\(fmt(x0 + 0.5))\" y=\"\(fmt(top + plotH - h))\" width=\"\(fmt(barW))\" height=\"\(fmt(h))\" fill=\"\(s.color)\" class=\"\(escape(s.name))\"><title>\(escape(s.name)): \(c)</title></rect>"
            }
        }
        if series.count > 1 {
            var lx = left + 4
            for s in series {
                svg += "<rect x=\"\(fmt(lx))\" y=\"\(fmt(top - 4))\" width=\"10\" height=\"10\" fill=\"\(s.color)\"/><text x=\"\(fmt(lx + 14))\" y=\"\(fmt(top + 5))\">\(escape(s.name)) (\(s.values.count))</text>"
                lx += 150
            }
        }
        svg += "<text x=\"\(left - 4)\" y=\"\(fmt(top + 4))\" text-anchor=\"end\">\(Int(most))</text><text x=\"\(left - 4)\" y=\"\(fmt(top + plotH))\" text-anchor=\"end\">0</text>"
        for tick in ticks ?? [range.lowerBound, (range.lowerBound + range.upperBound) / 2, range.upperBound] {
            svg += "<text x=\"\(fmt(x(tick)))\" y=\"\(fmt(top + plotH + 16))\" text-anchor=\"middle\">\(String(format: span >= 10 ? "%.0f" : "%.2f", tick))</text>"
        }
        for t in thresholds where range.contains(t) {
            svg += "<line x1=\"\(fmt(x(t)))\" y1=\"\(top)\" x2=\"\(fmt(x(t)))\" y2=\"\(fmt(top + plotH))\" stroke=\"#d04040\" stroke-dasharray=\"4 3\"/>"
        }
        svg += "<text x=\"\(left)\" y=\"\(fmt(height - 6))\" fill=\"#666\">\(escape(note))</text>"
        return svg + "</svg>"
    }

    /// `pipelined calibrate sync`'s latest result: confidences of clips against their own audio and
    /// against another source's, with the threshold it chose.
    static func calibrationSection(_ c: SyncCalibration) -> String {
        let all = (c.matched + c.mismatched).map(\.confidence)
        let range = rangeOf(all, including: c.threshold)
        let note = String(format: "keep ≥ %.4f (|offset| ≤ %d): %.0f %% of matched, %.1f %% of mismatched (target ≤ %.1f %%)",
                          c.threshold, c.maxOffset, 100 * c.matchedKept, 100 * c.falseAccepts, 100 * c.falseAcceptRate)
        let plot = histogram(title: "Sync confidence (\(c.method)): own audio vs another source's", series: [
            Series(name: "matched", values: c.matched.map(\.confidence), color: calibrationColors.matched),
            Series(name: "mismatched", values: c.mismatched.map(\.confidence), color: calibrationColors.mismatched),
        ], range: range, bins: 30, thresholds: [c.threshold], note: note, width: 700)
        return """
        <h2>Sync calibration</h2>
        <p class="meta"><code>pipelined calibrate sync</code> · \(escape(ISO8601DateFormatter().string(from: c.createdAt))) · seed \(c.seed) · \
        [sync] \(escape(c.key)) = \(String(format: "%.4f", c.threshold))</p>
        <div class="plots calibration">\(plot)</div>
        """
    }

    static func rejections(_ groups: [StatusReport.Rejection]) -> String {
        guard !groups.isEmpty else { return "<p>No rejections.</p>" }
        var html = "<table class=\"rejections\"><tr><th>stage</th><th>reason</th><th class=\"num\">count</th><th>examples</th></tr>"
        for g in groups {
            let examples = g.examples.map { "<div class=\"ex\">\(escape($0.item)): \(escape($0.reason))</div>" }.joined()
            html += "<tr><td>\(escape(g.stage))</td><td>\(escape(g.reason))</td><td class=\"num\">\(g.count)</td><td>\(examples)</td></tr>"
        }
        return html + "</table>"
    }

    /// Items per second of work (per busy worker) for each stage.
    static func throughput(_ stages: [StatusReport.StageCounts]) -> String {
        let width = 1000.0, left = 90.0, barHeight = 18.0, gap = 6.0
        let rates = stages.map { $0.itemsPerSecond ?? 0 }
        let most = max(1e-9, rates.max() ?? 1)
        var svg = "<svg class=\"throughput\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(Double(stages.count) * (barHeight + gap) + 4))\" role=\"img\" aria-label=\"throughput\">"
        for (i, s) in stages.enumerated() {
            let y = Double(i) * (barHeight + gap)
            let w = (width - left - 260) * rates[i] / most
            svg += "<text x=\"0\" y=\"\(fmt(y + 13))\">\(escape(s.stage))</text>"
            svg += "<rect x=\"\(left)\" y=\"\(fmt(y))\" width=\"\(fmt(max(0, w)))\" height=\"\(barHeight)\" fill=\"#7a5fb0\"/>"
            let label = s.itemsPerSecond.map { String(format: "%.2f items/s per worker · %.1f s of work", $0, s.workSeconds) } ?? "no work recorded"
            svg += "<text x=\"\(fmt(left + w + 6))\" y=\"\(fmt(y + 13))\">\(label)</text>"
        }
        return svg + "</svg>"
    }

    static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
