import Foundation
import PipelineCore
import Testing

/// The selection rule of FFmpeg's fps filter on hand-checked cases (the parity tests compare with
/// FFmpeg itself on real files).
@Suite struct FPSSelectorTests {
    /// Repeats per source frame for frames at `pts` (input time base `tb`) ending at `eof`.
    func repeats(_ pts: [Int64], tb: Rational, eof: Int64, rate: Int64 = 25) -> [Int] {
        var selector = FPSSelector(inputTimeBase: tb, outputRate: Rational(rate, 1))
        var counts = [Int](repeating: 0, count: pts.count)
        for (i, p) in pts.enumerated() { for e in selector.push(index: i, pts: p) { counts[e.sourceIndex] += 1 } }
        for e in selector.finish(eofPts: eof) { counts[e.sourceIndex] += 1 }
        return counts
    }

    @Test func sameRateIsIdentity() {
        #expect(repeats(Array(0..<10), tb: Rational(1, 25), eof: 10) == Array(repeating: 1, count: 10))
    }

    @Test func thirtyToTwentyFiveDropsOneInSix() {
        let counts = repeats(Array(0..<30), tb: Rational(1, 30), eof: 30)
        #expect(counts.reduce(0, +) == 25)
        #expect(counts.filter { $0 == 0 }.count == 5)
        #expect(counts.allSatisfy { $0 <= 1 })
    }

    @Test func fifteenToTwentyFiveRepeats() {
        let counts = repeats(Array(0..<15), tb: Rational(1, 15), eof: 15)
        #expect(counts.reduce(0, +) == 25)
        #expect(counts.allSatisfy { $0 == 1 || $0 == 2 })
    }

    @Test func gapIsFilledByTheLastFrameAndTimelineStartsAtFirstFrame() {
        // Frames at 0.00, 0.04, then a 0.4 s gap: frame 1 repeats until frame 2's slot.
        let counts = repeats([0, 4, 44], tb: Rational(1, 100), eof: 48)
        #expect(counts == [1, 10, 1])
        var s = FPSSelector(inputTimeBase: Rational(1, 1000), outputRate: Rational(25, 1))
        _ = s.push(index: 0, pts: 200)
        _ = s.finish(eofPts: 240)
        #expect(s.firstOutputPts == 5)
    }

    @Test func frameMapRoundTrips() throws {
        let map = FrameMap(timeBase: Rational(1, 90_000), timestampOffset: -126_000, outputRate: Rational(25, 1), firstOutputPts: 2,
                           sourcePts: [126_000, 129_003, 132_006], repeats: [1, 0, 3])
        let back = try FrameMap(serialized: map.serialized())
        #expect(back == map)
        #expect(back.sourceIndexPerOutputFrame == [0, 2, 2, 2])
        #expect(throws: FrameMapError.self) { try FrameMap(serialized: map.serialized().prefix(20)) }
    }
}
