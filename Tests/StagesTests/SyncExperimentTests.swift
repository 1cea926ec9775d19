import Foundation
import PipelineCore
import PipelineTestSupport
@testable import Stages
import Testing

@Suite(.serialized) struct SyncExperimentTests {
    @Test func variants() async throws {
        guard ProcessInfo.processInfo.environment["PIPELINED_SYNC_EXPERIMENT"] != nil else { return }
        let families = [SyncFamilies.tuning] + SyncFamilies.heldOut
        let letters = ProcessInfo.processInfo.environment["PIPELINED_SYNC_EXPERIMENT"]!
        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.sync.maxOffset = 15
        c.sync.minConfidence = -1_000
        var variants: [(String, CorrelationSync.Features)] = [("v1", .init())]
        func f(_ body: (inout CorrelationSync.Features) -> Void) -> CorrelationSync.Features { var x = CorrelationSync.Features(); body(&x); return x }
        variants.append(("z", f { $0.zConfidence = true }))
        variants.append(("floor", f { $0.floorSubtraction = true }))
        variants.append(("bands+floor", f { $0.bandAudio = true; $0.floorSubtraction = true }))
        variants.append(("dark", f { $0.aperture = false; $0.darkness = true }))
        variants.append(("ap+dark+floor", f { $0.darkness = true; $0.floorSubtraction = true }))
        variants.append(("ap+dark+bands+floor", f { $0.darkness = true; $0.bandAudio = true; $0.floorSubtraction = true }))
        variants.append(("deriv ap+dark+bands+floor", f { $0.darkness = true; $0.bandAudio = true; $0.floorSubtraction = true; $0.derivative = true }))
        if let only = ProcessInfo.processInfo.environment["PIPELINED_SYNC_VARIANTS"] {
            let names = Set(only.split(separator: ",").map(String.init))
            variants = variants.filter { names.contains($0.0) }
        }
        for (letter, family) in zip("ABCDEF", families) where letters.contains(letter) {
            let root = URL(fileURLWithPath: "/tmp/syncexp/\(letter)")
            let input = root.appendingPathComponent("raw"), output = root.appendingPathComponent("data")
            if !FileManager.default.fileExists(atPath: output.appendingPathComponent("done").path) {
                try? FileManager.default.removeItem(at: root)
                try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
                var random = SplitMix64(seed: 42)
                for i in 0..<12 {
                    let offset = Int.random(in: -8...8, using: &random)
                    try SyncFamilies.write(family, index: i, offset: offset, frames: 135, to: input.appendingPathComponent(SyncFamilies.name(index: i, offset: offset)), seed: 42)
                }
                let store = try PipelineStore(path: output.appendingPathComponent("pipelined.sqlite").path)
                let engine = Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                                    options: EngineOptions(inputDirectory: input, outputDirectory: output, jobs: 2, until: "align", version: "test"), reporter: RecordingReporter())
                _ = try await engine.run()
                try Data().write(to: output.appendingPathComponent("done"))
            }
            let store = try PipelineStore(path: output.appendingPathComponent("pipelined.sqlite").path)
            for (name, features) in variants {
                var method = CorrelationSync()
                method.features = features
                let cal = try SyncCalibration.run(store: store, configuration: c, method: method, inputDirectory: input, outputDirectory: output,
                                                  samples: 1000, falseAcceptRate: 0.05, mismatchedPerPiece: 3, seed: 42, progress: { _ in })
                let within = cal.matched.filter { abs($0.offset - SyncFamilies.offset(inName: $0.video)!) <= 1 }.count
                print(String(format: "EXP %@ %-28@ offset±1 %2d/%2d  keep %3.0f %%  thr %.3f  matched %.3f…%.3f  mismatched max %.3f", String(letter), name as NSString,
                             within, cal.matched.count, 100 * cal.matchedKept, cal.threshold,
                             cal.matched.map(\.confidence).min()!, cal.matched.map(\.confidence).max()!, cal.mismatched.map(\.confidence).max()!))
            }
        }
    }
}
