import Foundation
import PipelineCore
import PipelineTestSupport
@testable import Stages
import Testing

/// The read path end to end: one talking clip (audio 4 frames late) in the containers whose reads
/// used to break stages 5 and 6 — an XviD AVI with B-frames and AC-3, a DivX AVI with packed
/// B-frames, an MPEG-PS with MPEG-2 — goes through every stage like the H.264 MP4 it came from:
/// no item fails, and sync measures the offset each carries.
@Suite struct OldContainersPipelineTests {
    @Test func oldContainersCurateLikeTheirMP4() async throws {
        let root = try Fixtures.temporaryDirectory("old-containers")
        defer { try? FileManager.default.removeItem(at: root) }
        let input = root.appendingPathComponent("raw"), output = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        let mp4 = input.appendingPathComponent("speaker.mp4")
        try TalkingClips.write(mp4, frames: 135, offset: 4)
        try Fixtures.ffmpeg(["-i", mp4.path, "-r", "24000/1001", "-c:v", "mpeg4", "-vtag", "XVID", "-bf", "2", "-q:v", "3", "-c:a", "ac3", "-ac", "2", "-ar", "48000"],
                            output: input.appendingPathComponent("speaker_xvid.avi"))
        try Fixtures.packedBFrameAVI(input.appendingPathComponent("speaker_divx.avi"), seconds: 5.4, size: (640, 480), source: mp4)
        try Fixtures.ffmpeg(["-i", mp4.path, "-r", "30000/1001", "-c:v", "mpeg2video", "-bf", "2", "-q:v", "3", "-c:a", "mp2", "-ar", "44100"],
                            output: input.appendingPathComponent("speaker.mpg"))

        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.sync.maxOffset = 15
        let store = try await ModelMethodsTests.run(c, input: input, output: output)
        let names = ["speaker.mp4", "speaker_xvid.avi", "speaker_divx.avi", "speaker.mpg"]
        for stage in StageRegistry.order {
            for (path, d) in try decisions(store, stage: stage) {
                #expect(d.state != .failed, "\(stage) failed on \(path): \(d.reason ?? "")")
            }
        }
        let sync = try decisions(store, stage: "sync")
        #expect(Set(sync.keys) == Set(names), "sync saw \(sync.keys.sorted())")
        let offsets = try ModelMethodsTests.syncOffsets(store)
        for name in names {
            // FFmpeg times an AVI's B-frame stream by decoding order (it has no presentation times),
            // which shows the first picture one or two frames after the first audio sample; the
            // offset sync measures includes that (and publishing corrects it with the rest).
            let scan = try ScanPass().run(path: input.appendingPathComponent(name).path)
            let map = try #require(scan.frameMap)
            let videoStart = Double(map.sourcePts[0] + map.timestampOffset) * map.timeBase.seconds
            let expected = 4 + Int(((videoStart - (scan.audioStartSeconds ?? 0)) * 25).rounded())
            let measured = offsets[name] ?? []
            print("\(name): sync offsets \(measured); the clip's audio is 4 frames late, the container's timestamps add \(expected - 4)")
            #expect(!measured.isEmpty && measured.allSatisfy { abs($0 - expected) <= 1 }, "\(name): offsets \(measured), expected \(expected) ± 1")
        }
    }
}
