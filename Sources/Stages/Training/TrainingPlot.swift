import Foundation

/// `training.svg` beside the checkpoints: loss (training, validation) and validation accuracy
/// against the step, self-contained (inline styles, no script), rewritten atomically at every
/// validation so a browser tab can be refreshed while training runs.
enum TrainingPlot {
    static func write(_ history: SyncNetTraining.History, title: String, to url: URL) throws {
        try Data(svg(history, title: title).utf8).write(to: url, options: .atomic)
    }

    static func svg(_ h: SyncNetTraining.History, title: String) -> String {
        let width = 960.0, height = 360.0
        let steps = (h.trainSteps + h.validationSteps)
        let maxStep = Double(max(1, steps.max() ?? 1))
        let losses = h.trainLosses + h.validationLosses
        let maxLoss = max(0.1, (losses.filter(\.isFinite).max() ?? 1) * 1.05)
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="20" text-anchor="middle" font-size="15">\(escape(title)) — step \(Int(maxStep))</text>

        """
        let lossPanel = Panel(x: 60, y: 40, width: 380, height: 270, maxX: maxStep, minY: 0, maxY: maxLoss)
        out += lossPanel.axes(xLabel: "step", yLabel: "BCE loss")
        out += lossPanel.line(zip(h.trainSteps, h.trainLosses).map { (Double($0), $1) }, color: "#1f77b4")
        out += lossPanel.line(zip(h.validationSteps, h.validationLosses).map { (Double($0), $1) }, color: "#ff7f0e", dots: true)
        out += legend(x: 70, y: 56, [("training", "#1f77b4"), ("validation", "#ff7f0e")])

        let accuracyPanel = Panel(x: 540, y: 40, width: 380, height: 270, maxX: maxStep, minY: 0, maxY: 1)
        out += accuracyPanel.axes(xLabel: "step", yLabel: "validation accuracy (cos > 0.5)")
        out += accuracyPanel.line([(0, 0.5), (maxStep, 0.5)], color: "#999", dashed: true)
        out += accuracyPanel.line(zip(h.validationSteps, h.validationAccuracies).map { (Double($0), $1) }, color: "#2ca02c", dots: true)
        if let last = h.validationAccuracies.last {
            out += "<text x=\"\(accuracyPanel.x + 10)\" y=\"\(accuracyPanel.y + 16)\">latest \(String(format: "%.3f", last)); chance 0.5</text>\n"
        }
        return out + "</svg>\n"
    }

    struct Panel {
        var x: Double, y: Double, width: Double, height: Double, maxX: Double, minY: Double, maxY: Double

        func px(_ v: Double) -> Double { x + v / maxX * width }
        func py(_ v: Double) -> Double { y + height - (min(max(v, minY), maxY) - minY) / (maxY - minY) * height }

        func axes(xLabel: String, yLabel: String) -> String {
            var s = "<g stroke=\"#333\" fill=\"none\"><rect x=\"\(x)\" y=\"\(y)\" width=\"\(width)\" height=\"\(height)\"/></g>\n"
            for i in 0...4 {
                let v = minY + (maxY - minY) * Double(i) / 4, yy = py(v)
                s += "<line x1=\"\(x - 4)\" y1=\"\(yy)\" x2=\"\(x)\" y2=\"\(yy)\" stroke=\"#333\"/>"
                s += "<text x=\"\(x - 6)\" y=\"\(yy + 4)\" text-anchor=\"end\">\(String(format: "%.2f", v))</text>\n"
                let sv = maxX * Double(i) / 4, xx = px(sv)
                s += "<line x1=\"\(xx)\" y1=\"\(y + height)\" x2=\"\(xx)\" y2=\"\(y + height + 4)\" stroke=\"#333\"/>"
                s += "<text x=\"\(xx)\" y=\"\(y + height + 17)\" text-anchor=\"middle\">\(Int(sv.rounded()))</text>\n"
            }
            s += "<text x=\"\(x + width / 2)\" y=\"\(y + height + 34)\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
            s += "<text transform=\"translate(\(x - 44) \(y + height / 2)) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
            return s
        }

        func line(_ points: [(Double, Double)], color: String, dots: Bool = false, dashed: Bool = false) -> String {
            let finite = points.filter { $0.1.isFinite }
            guard !finite.isEmpty else { return "" }
            let path = finite.map { String(format: "%.1f,%.1f", px($0.0), py($0.1)) }.joined(separator: " ")
            var s = "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\"\(dashed ? " stroke-dasharray=\"4 3\"" : "") points=\"\(path)\"/>\n"
            if dots { for p in finite { s += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\"/>", px(p.0), py(p.1), color) } }
            return s + "\n"
        }
    }

    static func legend(x: Double, y: Double, _ items: [(String, String)]) -> String {
        items.enumerated().map { i, item in
            let yy = y + Double(i) * 16
            return "<line x1=\"\(x)\" y1=\"\(yy - 4)\" x2=\"\(x + 18)\" y2=\"\(yy - 4)\" stroke=\"\(item.1)\" stroke-width=\"2\"/><text x=\"\(x + 24)\" y=\"\(yy)\">\(escape(item.0))</text>\n"
        }.joined()
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
