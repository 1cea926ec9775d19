import Foundation
import PipelineCore
import PipelineTestSupport
@testable import Stages
import Testing

/// The weight-free `correlation` method on clip families it was not tuned on (`SyncFamilies`):
/// the share of clips whose offset it recovers within ±1 frame, and the share it keeps at the
/// threshold `calibrate sync` finds for the family (5 % false accepts against other clips' audio).
///
/// In CI: the tuning family and two held-out ones, 5 clips each (about 2 minutes), against floors
/// well under the measured rates (100 % and 100 % on every family with 12 clips each, seed 42).
/// `PIPELINED_SYNC_EVAL=full` runs every family with 12 clips and prints the table.
@Suite(.serialized) struct SyncGeneralisationTests {
    struct Row: CustomStringConvertible {
        var family: String
        var clips: Int
        var measured: Int
        var within: Int
        var kept: Double
        var threshold: Double
        var description: String {
            String(format: "%@ | %d clips, %d measured | offset ±1: %d/%d (%.0f %%) | kept at calibrated threshold %.3f: %.0f %%",
                   family, clips, measured, within, measured, measured > 0 ? 100 * Double(within) / Double(measured) : 0, threshold, 100 * kept)
        }
    }

    static func evaluate(_ family: SyncFamilies.Family, clips: Int, seed: UInt64) async throws -> Row {
        let root = try Fixtures.temporaryDirectory("syncfamily")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw"), output = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        var random = SplitMix64(seed: seed)
        for i in 0..<clips {
            let offset = Int.random(in: -8...8, using: &random)
            try SyncFamilies.write(family, index: i, offset: offset, frames: 135, to: input.appendingPathComponent(SyncFamilies.name(index: i, offset: offset)), seed: seed)
        }
        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.sync.maxOffset = 15
        c.sync.minConfidence = -1_000
        let store = try PipelineStore(path: output.appendingPathComponent("pipelined.sqlite").path)
        let engine = Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                            options: EngineOptions(inputDirectory: input, outputDirectory: output, jobs: 2, until: "sync", version: "test"), reporter: RecordingReporter())
        _ = try await engine.run()
        let calibration = try SyncCalibration.run(store: store, configuration: c, inputDirectory: input, outputDirectory: output,
                                                  samples: 1_000, falseAcceptRate: 0.05, seed: seed)
        var within = 0
        for pair in calibration.matched {
            let truth = try #require(SyncFamilies.offset(inName: pair.video), "no offset in \(pair.video)")
            if abs(pair.offset - truth) <= 1 { within += 1 }
        }
        return Row(family: family.name, clips: clips, measured: calibration.matched.count, within: within, kept: calibration.matchedKept, threshold: calibration.threshold)
    }

    @Test func accuracyOnFamiliesNotTunedOn() async throws {
        let seed = testSeed("accuracyOnFamiliesNotTunedOn")
        let full = ProcessInfo.processInfo.environment["PIPELINED_SYNC_EVAL"] == "full"
        let families = full ? [SyncFamilies.tuning] + SyncFamilies.heldOut : [SyncFamilies.tuning, SyncFamilies.heldOut[1], SyncFamilies.heldOut[2]]
        var rows: [Row] = []
        for family in families {
            let row = try await Self.evaluate(family, clips: full ? 12 : 5, seed: seed)
            print("sync family: \(row)")
            rows.append(row)
        }
        for row in rows {
            #expect(row.measured >= row.clips - 1, "\(row.family): only \(row.measured) of \(row.clips) clips measured")
            #expect(Double(row.within) >= 0.6 * Double(row.measured), "\(row)")
            #expect(row.kept >= 0.6, "\(row)")
        }
    }
}
