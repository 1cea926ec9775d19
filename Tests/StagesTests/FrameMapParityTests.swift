import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// The frames `NormalizedReader` yields equal, frame for frame, what `ffmpeg -vf fps=25` selects.
/// Compared as FFmpeg's `framecrc` checksums (Adler-32 of the packed picture).
@Suite struct FrameMapParityTests {
    static let inputs: [(name: String, make: @Sendable (URL) throws -> Void)] = [
        ("cfr30.mp4", { try Fixtures.video($0, seconds: 3, rate: "30") }),
        ("cfr25.mp4", { try Fixtures.video($0, seconds: 3, rate: "25") }),
        ("ntsc.ts", { try Fixtures.video($0, seconds: 3, rate: "30000/1001") }),
        ("cfr15.mkv", { try Fixtures.video($0, seconds: 3, rate: "15") }),
        ("cfr60.mp4", { try Fixtures.video($0, seconds: 2, rate: "60") }),
        ("vfr.mkv", { try Fixtures.makeVariableFrameRate($0, seconds: 4) }),
        ("vfr.mp4", { try Fixtures.makeVariableFrameRate($0, seconds: 4) }),
        ("rotated.mp4", { try Fixtures.rotated($0, seconds: 2, degrees: 90, rate: "24") }),
        ("bframes.mp4", { try Fixtures.video($0, seconds: 3, rate: "30", videoCodec: ["-c:v", "libx264", "-preset", "medium", "-bf", "3"]) }),
        ("late_video.mkv", { try Fixtures.ffmpeg(["-f", "lavfi", "-i", "sine=sample_rate=16000", "-itsoffset", "0.37", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30",
                                                 "-t", "3", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"], output: $0) }),
    ]

    @Test(arguments: inputs.map(\.name))
    func framesMatchFFmpegFPSFilter(name: String) throws {
        let dir = try Fixtures.temporaryDirectory("parity")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent(name)
        try Self.inputs.first { $0.name == name }!.make(url)

        let report = try ScanPass(outputRate: Rational(25, 1)).run(path: url.path)
        let map = try #require(report.frameMap)
        var ours: [UInt32] = []
        try NormalizedReader(path: url.path, frameMap: map).read(video: { index, frame in
            #expect(index == ours.count)
            ours.append(try frame.pictureChecksum())
        }, audio: nil)

        let theirs = try Self.ffmpegFPSChecksums(url)
        #expect(ours.count == theirs.count, "\(name): \(ours.count) frames, ffmpeg -vf fps=25 gives \(theirs.count)")
        let firstDifference = zip(ours, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "\(name): first differing frame \(firstDifference ?? -1)")
    }

    /// Reading a range after a seek yields the same frames as the full read, and the audio under a
    /// range has exactly range × 640 samples. The second encoding has long GOPs and B-pyramids, whose
    /// non-reference frames the reader skips between the keyframe and the range.
    @Test(arguments: [["-g", "30"], ["-preset", "medium", "-g", "120", "-bf", "3", "-x264-params", "b-pyramid=normal"]])
    func rangesMatchTheFullRead(encoding: [String]) throws {
        let dir = try Fixtures.temporaryDirectory("range")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("long.mp4")
        try Fixtures.video(url, seconds: 8, rate: "30", extra: encoding)
        let map = try #require(try ScanPass().run(path: url.path).frameMap)
        let reader = NormalizedReader(path: url.path, frameMap: map)
        var all: [UInt32] = []
        try reader.read(video: { _, f in all.append(try f.pictureChecksum()) }, audio: nil)
        #expect(all.count == 200)
        for range in [0..<10, 37..<90, 120..<200, 199..<200, 3..<4, 61..<62] {
            var part: [Int: UInt32] = [:]
            var samples = 0
            try reader.read(frames: range, video: { i, f in part[i] = try f.pictureChecksum() }, audio: { samples += $0.count })
            #expect(part.keys.sorted() == Array(range))
            #expect(range.allSatisfy { part[$0] == all[$0] }, "range \(range) differs from the full read")
            #expect(samples == range.count * 640, "range \(range): \(samples) samples")
        }
        // The whole timeline's audio is the 8 s tone at 16 kHz mono, sample-aligned with the video.
        let audio = try reader.audioSamples()
        #expect(audio.count == 200 * 640)
        let rms = (audio[16_000..<32_000].reduce(0) { $0 + $1 * $1 } / 16_000).squareRoot()
        #expect(rms > 0.01, "audio is silent")
        let partial = try reader.audioSamples(frames: 50..<75)
        #expect(zip(partial, audio[(50 * 640)..<(75 * 640)]).allSatisfy { abs($0 - $1) < 1e-3 }, "audio after a seek differs from the full read")
    }

    /// A pass read in consecutive pieces delivers what one read delivers: the same frames and the
    /// same audio samples, with no gap or overlap at the joins, also where a source frame fills slots
    /// on both sides of a join (15 fps) and where audio must wait for its packets (44.1 kHz stereo
    /// resampled). Opened mid-file, it equals a fresh read from that frame.
    @Test(arguments: [("30", 16_000, ["-preset", "medium", "-g", "120", "-bf", "3", "-x264-params", "b-pyramid=normal"]),
                      ("15", 44_100, ["-g", "40"])])
    func passesContinueExactly(rate: String, sampleRate: Int, encoding: [String]) throws {
        let dir = try Fixtures.temporaryDirectory("pass")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("long.mp4")
        try Fixtures.video(url, seconds: 8, rate: rate, sampleRate: sampleRate, channels: sampleRate == 16_000 ? 1 : 2, extra: encoding)
        let map = try #require(try ScanPass().run(path: url.path).frameMap)
        let reader = NormalizedReader(path: url.path, frameMap: map)

        func pieces(from start: Int, joins: [Int]) throws -> (frames: [Int: UInt32], audio: [Float]) {
            var frames: [Int: UInt32] = [:]
            var audio: [Float] = []
            let pass = try reader.pass(from: start)
            for end in joins + [reader.frameCount] {
                try pass.read(upTo: end, video: { i, f in
                    #expect(frames[i] == nil, "frame \(i) delivered twice")
                    frames[i] = try f.pictureChecksum()
                }, audio: { audio.append(contentsOf: $0) })
                #expect(pass.position == end)
                #expect(audio.count == (end - start) * 640, "audio up to \(end): \(audio.count) samples")
            }
            return (frames, audio)
        }
        func whole(from start: Int) throws -> (frames: [Int: UInt32], audio: [Float]) {
            var frames: [Int: UInt32] = [:]
            var audio: [Float] = []
            try reader.read(frames: start..<reader.frameCount, video: { i, f in frames[i] = try f.pictureChecksum() }, audio: { audio.append(contentsOf: $0) })
            return (frames, audio)
        }
        #expect(reader.frameCount == 200)
        for (start, joins) in [(0, [1, 37, 38, 125, 199]), (61, [62, 100, 150])] {
            let split = try pieces(from: start, joins: joins), one = try whole(from: start)
            #expect(split.frames.keys.sorted() == Array(start..<200))
            #expect(split.frames == one.frames, "frames from \(start) split at \(joins) differ from one read")
            let firstDifference = zip(split.audio, one.audio).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(split.audio.count == one.audio.count && firstDifference == nil,
                    "audio from \(start) split at \(joins) differs from one read at sample \(firstDifference ?? -1) of \(one.audio.count) (trailing zeros: \(split.audio.reversed().prefix { $0 == 0 }.count) split, \(one.audio.reversed().prefix { $0 == 0 }.count) one read)")
        }
        // Reading nothing leaves the pass where it is.
        let pass = try reader.pass(from: 10, video: true, audio: false)
        try pass.read(upTo: 10, video: { _, _ in Issue.record("no frame expected") }, audio: nil)
        var count = 0
        try pass.read(upTo: 20, video: { _, _ in count += 1 }, audio: nil)
        #expect(count == 10 && pass.position == 20)
    }

    /// `ffmpeg -i IN -vf fps=25 -f framecrc -` video checksums, with the audio mapped as in the
    /// reference's `ffmpeg -i IN -r 25 -ar 16000 OUT` (the audio stream moves the timeline origin of
    /// MPEG-TS inputs). No autorotation: we compare the stored pictures.
    static func ffmpegFPSChecksums(_ url: URL) throws -> [UInt32] {
        let r = try Fixtures.run("ffmpeg", ["-nostdin", "-v", "error", "-noautorotate", "-i", url.path, "-map", "0:v:0", "-map", "0:a:0?",
                                            "-vf", "fps=25", "-c:a", "pcm_s16le", "-f", "framecrc", "-"])
        guard r.status == 0 else { throw Fixtures.Failure(description: r.stderr) }
        return String(decoding: r.stdout, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard line.hasPrefix("0,"), let last = line.split(separator: ",").last else { return nil }
            return UInt32(last.trimmingCharacters(in: .whitespaces).dropFirst(2), radix: 16)
        }
    }
}
