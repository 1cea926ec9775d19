import Foundation
import PipelineCore
import PipelineTestSupport
@testable import Stages
import Testing

/// The threshold `calibrate sync` chooses from matched and mismatched confidences.
@Suite struct SyncCalibrationTests {
    func pairs(_ values: [(Double, Int)]) -> [SyncCalibration.Pair] {
        values.enumerated().map { SyncCalibration.Pair(video: "v\($0.offset)", audioFrom: "a", offset: $0.element.1, confidence: $0.element.0) }
    }

    @Test func thresholdKeepsAtMostTheFalseAcceptRate() {
        // 20 mismatched pairs 0.01…0.20; 5 % allows one of them through.
        let mismatched = pairs((1...20).map { (Double($0) / 100, 0) })
        let matched = pairs([(0.15, 0), (0.25, 1), (0.30, -2), (0.35, 0)])
        let t = SyncCalibration.threshold(matched: matched, mismatched: mismatched, falseAcceptRate: 0.05, maxOffset: 6)
        #expect(t.threshold > 0.19 && t.threshold <= 0.190001, "\(t)")
        #expect(t.falseAccepts == 0.05 && t.matchedKept == 0.75)
        // None allowed: just above the highest; mismatched pairs outside the offset window cannot pass anyway.
        let outside = pairs([(0.9, 12), (0.1, 0), (0.12, 3)])
        let strict = SyncCalibration.threshold(matched: matched, mismatched: outside, falseAcceptRate: 0, maxOffset: 6)
        #expect(strict.threshold > 0.12 && strict.threshold < 0.1201 && strict.falseAccepts == 0 && strict.matchedKept == 1)
    }

    @Test func thresholdsAreDecimalsAboveTheValue() {
        for v in [0.12, 0.1234567891, -0.5, 0, 3.14159265, 1e-7, 123456.789] {
            let d = SyncCalibration.decimalAbove(v)
            let text = String(format: "%.6g", d)
            #expect(d > v && Double(text) == d && d - v <= abs(v) * 2e-5 + 1e-12, "\(v) → \(d) (\(text))")
        }
    }

    /// The same recording under another name is recognised (shifted or not) and kept out of the
    /// negative controls; other speech is not.
    @Test func sameSpeechIsNoNegativeControl() throws {
        let speech = try TalkingClips.speech()
        let clip = TalkingClips.shiftedAudio(speech, frames: 130, offset: 0)
        #expect(try CorrelationSync.sameSpeech(clip, clip))
        #expect(try CorrelationSync.sameSpeech(clip, TalkingClips.shiftedAudio(speech, frames: 130, offset: 6)))
        for seed in 0..<4 {
            #expect(try !CorrelationSync.sameSpeech(clip, TalkingClips.shiftedAudio(TalkingClips.unrelatedSpeech(seed: seed), frames: 130, offset: 0)), "seed \(seed)")
        }
    }

    @Test func reportShowsBothDistributionsAndTheThreshold() {
        let c = SyncCalibration(method: "correlation", key: "min_confidence", falseAcceptRate: 0.05, maxOffset: 6, seed: 7,
                                matched: pairs([(0.3, 0), (0.35, 1)]), mismatched: pairs([(0.05, 0), (0.1, 4), (0.02, -9)]),
                                threshold: 0.100001, falseAccepts: 0, matchedKept: 1, createdAt: Date(timeIntervalSince1970: 0))
        let html = ReportPage.calibrationSection(c)
        #expect(html.contains("Sync calibration") && html.contains("[sync] min_confidence = 0.1000"))
        #expect(html.components(separatedBy: "class=\"matched\"").count - 1 == 2 && html.components(separatedBy: "class=\"mismatched\"").count - 1 == 3)
        #expect(html.contains("stroke-dasharray"), "the threshold line")
    }
}
