import Foundation
import PipelineCore
import Stages
import Testing

/// The report's plots put data where the axes say it is.
@Suite struct ReportPageTests {
    static func numbers(_ svg: String, _ regex: String) -> [Double] {
        let pattern = try! NSRegularExpression(pattern: regex)
        return pattern.matches(in: svg, range: NSRange(svg.startIndex..., in: svg)).map { Double(svg[Range($0.range(at: 1), in: svg)!])! }
    }

    /// Every offset −15…15 gets its own bar, and the ±max_offset lines fall between bars, never on one.
    @Test func offsetBarsSitBetweenTheThresholdLines() throws {
        var report = StatusReport(database: "test.sqlite")
        report.stages = [StatusReport.StageCounts(stage: "sync")]
        var scores = ReportPage.Scores()
        scores.offsets = (-15...15).map(Double.init)
        let html = ReportPage.html(report: report, scores: scores, configuration: PipelineConfiguration())
        let start = try #require(html.range(of: "aria-label=\"Sync offset"))
        let svg = String(html[start.lowerBound..<html[start.lowerBound...].range(of: "</svg>")!.lowerBound])
        let bars = Self.numbers(svg, "<rect x=\"([-0-9.]+)\""), widths = Self.numbers(svg, "<rect [^>]*width=\"([-0-9.]+)\"")
        let lines = Self.numbers(svg, "<line x1=\"([-0-9.]+)\"[^>]*stroke=\"#d04040\"")
        #expect(bars.count == 31)
        #expect(lines.count == 2, "\(svg)")
        for x in lines {
            #expect(!zip(bars, widths).contains { x > $0 && x < $0 + $1 }, "threshold line at \(x) crosses a bar")
        }
    }
}
