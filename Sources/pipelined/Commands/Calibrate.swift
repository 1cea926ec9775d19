import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Calibrate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Calibrate thresholds on your own footage.",
            subcommands: [Sync.self])

        struct Sync: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Find the sync threshold for this dataset with negative controls.",
                discussion: """
                Scores every aligned clip (stage 5's output) against its own audio and against audio of the \
                same length from a different source, which cannot be in sync; prints both distributions and \
                the lowest threshold that keeps at most --false-accept of the mismatched pairs, with the share \
                of matched clips it keeps. Works for every sync.method, on any footage, without ground truth. \
                The result goes to <output-dir>/calibration/sync.json (shown by `pipelined report`); --apply \
                writes the threshold into a pipeline.conf, and the next `run --config` re-decides stage 6 from \
                its stored scores without measuring again.
                """)

            @Option(name: .long, help: "Folder of raw videos the dataset was made from (audio is read from it).", transform: { URL(fileURLWithPath: $0) })
            var inputDir: URL

            @OptionGroup var store: StoreOptions

            @Option(name: .long, help: "pipeline.conf of the run (its sync.method, max_offset, device).", transform: { URL(fileURLWithPath: $0) })
            var config: URL?

            @Option(name: .long, help: "Clips scored at most (a seeded random choice when there are more).")
            var samples = 500

            @Option(name: .long, help: "Share of mismatched pairs the threshold may keep (0–1).")
            var falseAccept = 0.05

            @Option(name: .long, help: "Seed of the random choices (printed; the same seed repeats a calibration).")
            var seed: UInt64?

            @Option(name: .long, help: "Where model-backed methods run: auto, cpu or cuda:N. Default: pipeline.conf's inference.device.")
            var device: String?

            @Option(name: .long, help: "Write the threshold into this pipeline.conf ([sync] <method>'s key; created if missing, other lines kept).")
            var apply: String?

            func validate() throws {
                if !(1...1_000_000).contains(samples) { throw ValidationError("--samples must be 1…1000000, not \(samples)") }
                if !(falseAccept >= 0 && falseAccept < 1) { throw ValidationError("--false-accept must be in [0, 1), not \(falseAccept)") }
            }

            func run() throws {
                do {
                    var configuration = try PipelineConfiguration.load(config)
                    if let device { configuration.inference.device = device }
                    let opened = try store.openForReading(outputDirectory: store.outputDir ?? inputDir.deletingLastPathComponent())
                    defer { opened.close() }
                    let outputDirectory = opened.outputDirectory
                    let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
                    let pipelineStore = opened.ledger
                    Console.error("calibrating \(configuration.sync.method) sync on \(outputDirectory.path) (seed \(seed))\n")
                    let calibration = try SyncCalibration.run(store: pipelineStore, configuration: configuration, inputDirectory: inputDir,
                                                              outputDirectory: outputDirectory, samples: samples, falseAcceptRate: falseAccept, seed: seed)
                    try calibration.save(in: outputDirectory)
                    Console.output(Self.summary(calibration))
                    if let apply {
                        try Self.apply(calibration, to: apply, protecting: opened.protected)
                        Console.output("wrote [sync] \(calibration.key) = \(Self.format(calibration.threshold)) to \(apply); `pipelined run --config \(apply)` re-decides stage 6 from the stored scores\n")
                    }
                } catch let error as ExitCode { throw error } catch { throw fail(error) }
            }

            /// The shortest text that reads back as exactly `v` (thresholds are chosen to have one).
            static func format(_ v: Double) -> String {
                (1...17).lazy.map { String(format: "%.\($0)g", v) }.first { Double($0) == v } ?? "\(v)"
            }

            /// Both distributions as a text histogram, the threshold and what it keeps.
            static func summary(_ c: SyncCalibration) -> String {
                let all = (c.matched + c.mismatched).map(\.confidence)
                let lo = min(all.min() ?? 0, c.threshold), hi = max(all.max() ?? 1, c.threshold)
                let bins = 12, span = max(hi - lo, 1e-9)
                func counts(_ pairs: [SyncCalibration.Pair]) -> [Int] {
                    var n = [Int](repeating: 0, count: bins)
                    for p in pairs { n[min(bins - 1, Int(((p.confidence - lo) / span * Double(bins)).rounded(.down)))] += 1 }
                    return n
                }
                let matched = counts(c.matched), mismatched = counts(c.mismatched)
                let most = max(1, (matched + mismatched).max() ?? 1)
                func bar(_ n: Int) -> String { String(repeating: "#", count: Int((Double(n) / Double(most) * 20).rounded(.up))) }
                var text = "sync calibration (\(c.method), seed \(c.seed)): \(c.matched.count) clips against their own audio (matched), "
                    + "\(c.mismatched.count) against another source's (mismatched)\n"
                func pad(_ s: String, _ width: Int) -> String { s + String(repeating: " ", count: max(0, width - s.count)) }
                text += pad("confidence", 23) + pad("matched", 26) + "mismatched\n"
                for b in 0..<bins {
                    let from = lo + span * Double(b) / Double(bins), to = lo + span * Double(b + 1) / Double(bins)
                    let mark = (from...to).contains(c.threshold) ? " ← threshold" : ""
                    text += String(format: "%9.4f – %9.4f  %4d ", from, to, matched[b]) + pad(bar(matched[b]), 21)
                        + String(format: "%4d ", mismatched[b]) + pad(bar(mismatched[b]), 21) + mark + "\n"
                }
                let keptMismatched = Int((c.falseAccepts * Double(c.mismatched.count)).rounded())
                let keptMatched = Int((c.matchedKept * Double(c.matched.count)).rounded())
                text += "threshold: [sync] \(c.key) = \(format(c.threshold)) (with |offset| ≤ \(c.maxOffset))\n"
                text += String(format: "  keeps %d of %d mismatched pairs (%.1f %%, target ≤ %.1f %%) and %d of %d matched clips (%.1f %%)\n",
                               keptMismatched, c.mismatched.count, 100 * c.falseAccepts, 100 * c.falseAcceptRate,
                               keptMatched, c.matched.count, 100 * c.matchedKept)
                if let skipped = c.sameSpeechSkipped, skipped > 0 {
                    text += "  \(skipped) donor piece(s) left out: their audio is this clip's own speech (a copy of the same recording is no negative control)\n"
                }
                if c.mismatched.count < 100 {
                    text += "  note: \(c.mismatched.count) mismatched pairs resolve a false-accept rate only to \(String(format: "%.1f", 100.0 / Double(c.mismatched.count))) %; calibrate on more clips for a finer threshold\n"
                }
                return text
            }

            /// Sets the method's threshold key in `path` (created when missing), checked by reading it back.
            static func apply(_ c: SyncCalibration, to path: String, protecting protected: [UserOutputFile.Protected]) throws {
                let url = URL(fileURLWithPath: path)
                let old = FileManager.default.fileExists(atPath: path) ? try String(contentsOf: url, encoding: .utf8) : ""
                let stamp = ISO8601DateFormatter().string(from: c.createdAt)
                let new = ConfigFileEdit.setting(c.key, to: format(c.threshold), in: "sync", of: old,
                                                 comment: "pipelined calibrate sync \(stamp), seed \(c.seed), false accepts ≤ \(format(c.falseAcceptRate))")
                // The edited file must still be a valid configuration with the new value in force.
                var parsed = try PipelineConfiguration(toml: new, source: path)
                parsed.sync.method = c.method
                guard parsed.sync.methodMinConfidence == c.threshold else {
                    throw CLIError("\(path) sets [sync] \(c.key) in a way this edit could not replace (a dotted key or an inline table?); set it to \(format(c.threshold)) by hand")
                }
                try UserOutputFile.write(to: path, protecting: protected) {
                    try Data(new.utf8).write(to: URL(fileURLWithPath: $0))
                }
            }
        }
    }
}
