import Foundation
import PipelineCore
import Stages
import Testing

@Suite struct SegmentPlanTests {
    /// The default plan (5/5/10 s at 25 fps), on random scene lengths: every piece is within
    /// [5 s, 10 s], pieces tile the scene exactly, and scenes under 5 s give nothing.
    @Test func defaultPlanTilesEveryScene() {
        let plan = SegmentStage(configuration: PipelineConfiguration()).plan
        #expect(plan == SegmentPlan(minFrames: 125, maxFrames: 250, targetFrames: 125))
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let start = Int.random(in: 0...10_000, using: &rng)
            let scene = start..<(start + Int.random(in: 1...3_000, using: &rng))
            let pieces = plan.pieces(of: scene)
            if scene.count < 125 { #expect(pieces.isEmpty); continue }
            #expect(pieces.allSatisfy { (125...250).contains($0.count) }, "\(scene): \(pieces.map(\.count))")
            #expect(pieces.first?.lowerBound == scene.lowerBound && pieces.last?.upperBound == scene.upperBound)
            #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound }, "gap or overlap in \(pieces)")
        }
        // Pieces are of the target length, with the remainder folded into the last one.
        #expect(plan.pieces(of: 0..<300).map(\.count) == [125, 175])
        #expect(plan.pieces(of: 0..<500).map(\.count) == [125, 125, 125, 125])
        #expect(plan.pieces(of: 0..<124) == [])
    }

    /// Any valid plan: pieces stay within range and never overlap; when max ≥ 2·min − 1 they tile.
    @Test func randomPlansNeverLeaveTheRange() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            let min = Int.random(in: 1...300, using: &rng)
            let max = Int.random(in: min...(3 * min + 10), using: &rng)
            let plan = SegmentPlan(minFrames: min, maxFrames: max, targetFrames: Int.random(in: min...max, using: &rng))
            let scene = 0..<Int.random(in: 1...5_000, using: &rng)
            let pieces = plan.pieces(of: scene)
            #expect(pieces.allSatisfy { (min...max).contains($0.count) }, "\(plan) \(scene): \(pieces.map(\.count))")
            #expect(zip(pieces, pieces.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
            if scene.count >= min && max >= 2 * min - 1 {
                #expect(pieces.first?.lowerBound == 0 && pieces.last?.upperBound == scene.count, "\(plan) \(scene): \(pieces.map(\.count))")
            }
            if scene.count < min { #expect(pieces.isEmpty) }
        }
    }

    @Test func namesFollowTheReference() {
        #expect(SegmentStage.materializedPath(stem: OutputNaming.referenceStem(of: "a/b/talk.mov"), scene: 0, segment: 0) == "segmented/a/b/talk_shot_001_000.mp4")
        #expect(SegmentStage.materializedPath(stem: OutputNaming.referenceStem(of: "talk.mp4"), scene: 11, segment: 3) == "segmented/talk_shot_012_003.mp4")
    }
}
