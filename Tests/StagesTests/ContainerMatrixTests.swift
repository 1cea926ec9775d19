import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// One timeline on every container: the frame count the scan records is what any read of the whole
/// timeline delivers, and every clip of a random segmentation — read on from the previous clip (as
/// stage 5 reads) or opened afresh with a seek (as stage 6 reads) — delivers exactly its frames,
/// equal (framecrc) to the same frames of the full read, with exactly 640 audio samples per frame.
///
/// The matrix covers the containers, codecs, frame rates and audio layouts users bring: old AVIs
/// (MPEG-4 Part 2 with B-frames, no timestamps but the index), MPEG-PS/TS with their start offsets,
/// edit lists, variable frame rate, audio that starts late or not at all. Every fixture is 3 s at
/// 160×120 so the whole matrix takes about ten seconds.
@Suite struct ContainerMatrixTests {
    struct Fixture: Sendable, CustomStringConvertible {
        var name: String
        var make: @Sendable (URL) throws -> Void
        var description: String { name }
    }

    /// `-f lavfi` moving test pattern and beeping tone, encoded with `video` and `audio` arguments.
    static func encoded(rate: String, video: [String], audio: [String]?, sampleRate: Int = 48_000, channels: Int = 2,
                        size: String = "160x120", seconds: Double = 3, extra: [String] = []) -> @Sendable (URL) throws -> Void {
        { url in
            var args = ["-f", "lavfi", "-i", "testsrc2=size=\(size):rate=\(rate)"]
            if audio != nil { args += ["-f", "lavfi", "-i", "sine=frequency=300:beep_factor=4:sample_rate=\(sampleRate)"] }
            args += ["-t", String(seconds)] + video
            if let audio { args += ["-ac", String(channels)] + audio } else { args += ["-an"] }
            try Fixtures.ffmpeg(args + extra, output: url)
        }
    }

    static let x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    static let xvid = ["-c:v", "mpeg4", "-vtag", "XVID", "-q:v", "4"]

    static let fixtures: [Fixture] = [
        // Old AVIs: MPEG-4 Part 2 (XviD tag) with and without B-frames; AVI stores no timestamps.
        Fixture(name: "xvid_bf2_23.976_ac3.avi", make: encoded(rate: "24000/1001", video: xvid + ["-bf", "2", "-g", "48"], audio: ["-c:a", "ac3"])),
        Fixture(name: "divx_packed_b_23.976_pcm.avi", make: { try Fixtures.packedBFrameAVI($0, seconds: 3) }),
        Fixture(name: "xvid_nob_25_mp3.avi", make: encoded(rate: "25", video: xvid + ["-bf", "0"], audio: ["-c:a", "libmp3lame"], sampleRate: 44_100)),
        Fixture(name: "mpeg4_bf1_29.97_pcm.avi", make: encoded(rate: "30000/1001", video: ["-c:v", "mpeg4", "-bf", "1", "-g", "15"], audio: ["-c:a", "pcm_s16le"], sampleRate: 16_000, channels: 1)),
        Fixture(name: "mjpeg_25_pcm.avi", make: encoded(rate: "25", video: ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"], audio: ["-c:a", "pcm_s16le"])),
        Fixture(name: "h264_30_mp3.avi", make: encoded(rate: "30", video: x264 + ["-bf", "0"], audio: ["-c:a", "libmp3lame"])),
        // H.264: B-pyramids, long GOP, open GOP; in mkv, mp4, mov, ts, flv.
        Fixture(name: "h264_bpyramid_29.97_aac.mkv", make: encoded(rate: "30000/1001", video: ["-c:v", "libx264", "-preset", "medium", "-bf", "3", "-x264-params", "b-pyramid=normal", "-pix_fmt", "yuv420p"], audio: ["-c:a", "aac"])),
        Fixture(name: "h264_longgop_30_mp3.mp4", make: encoded(rate: "30", video: ["-c:v", "libx264", "-preset", "fast", "-g", "250", "-bf", "2", "-pix_fmt", "yuv420p"], audio: ["-c:a", "libmp3lame"])),
        Fixture(name: "h264_opengop_25_aac.ts", make: encoded(rate: "25", video: ["-c:v", "libx264", "-preset", "fast", "-g", "30", "-bf", "3", "-x264-params", "open-gop=1:keyint-min=5:scenecut=0", "-pix_fmt", "yuv420p"], audio: ["-c:a", "aac"])),
        Fixture(name: "h264_23.976_mp3_44k.mkv", make: encoded(rate: "24000/1001", video: x264, audio: ["-c:a", "libmp3lame"], sampleRate: 44_100)),
        Fixture(name: "h264_30_aac.flv", make: encoded(rate: "30", video: ["-c:v", "libx264", "-preset", "fast", "-bf", "2", "-pix_fmt", "yuv420p"], audio: ["-c:a", "aac"], sampleRate: 44_100)),
        Fixture(name: "h264_59.94_noaudio.mp4", make: encoded(rate: "60000/1001", video: x264, audio: nil)),
        Fixture(name: "h264_50_pcm.mov", make: encoded(rate: "50", video: x264 + ["-bf", "2"], audio: ["-c:a", "pcm_s16le"])),
        // HEVC, VP9, MPEG-2, FLV1.
        Fixture(name: "hevc_50_pcm.mov", make: encoded(rate: "50", video: ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error:bframes=3", "-tag:v", "hvc1"], audio: ["-c:a", "pcm_s16le"])),
        Fixture(name: "hevc_59.94_opus.mkv", make: encoded(rate: "60000/1001", video: ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"], audio: ["-c:a", "libopus"])),
        Fixture(name: "vp9_30_opus.webm", make: encoded(rate: "30", video: ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "40"], audio: ["-c:a", "libopus"])),
        Fixture(name: "mpeg2_29.97_mp2.mpg", make: encoded(rate: "30000/1001", video: ["-c:v", "mpeg2video", "-bf", "2", "-g", "15"], audio: ["-c:a", "mp2"])),
        Fixture(name: "mpeg2_25_ac3.ts", make: encoded(rate: "25", video: ["-c:v", "mpeg2video", "-bf", "2", "-g", "12"], audio: ["-c:a", "ac3"])),
        Fixture(name: "mpeg2_50_aac.mkv", make: encoded(rate: "50", video: ["-c:v", "mpeg2video", "-bf", "1"], audio: ["-c:a", "aac"])),
        Fixture(name: "flv1_25_mp3.flv", make: encoded(rate: "25", video: ["-c:v", "flv1"], audio: ["-c:a", "libmp3lame"], sampleRate: 22_050)),
        // Variable frame rate.
        Fixture(name: "vfr_h264_aac.mp4", make: encoded(rate: "30", video: ["-vf", "select='lt(mod(n\\,7)\\,4)+eq(mod(n\\,11)\\,0)'", "-fps_mode", "vfr"] + x264, audio: ["-c:a", "aac"])),
        Fixture(name: "vfr_vp9_opus.mkv", make: encoded(rate: "30", video: ["-vf", "select='not(eq(mod(n\\,5)\\,2))'", "-fps_mode", "vfr", "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"], audio: ["-c:a", "libopus"])),
        // Start offsets and edit lists.
        Fixture(name: "offset_h264_aac.mp4", make: encoded(rate: "25", video: x264 + ["-bf", "2"], audio: ["-c:a", "aac"], extra: ["-output_ts_offset", "7.5"])),
        Fixture(name: "editlist_h264_aac.mp4", make: { url in
            // A stream copy cut at a non-keyframe writes an edit list that hides the frames before it.
            let whole = url.deletingLastPathComponent().appendingPathComponent(".whole-\(url.lastPathComponent)")
            defer { try? FileManager.default.removeItem(at: whole) }
            try encoded(rate: "30", video: ["-c:v", "libx264", "-preset", "fast", "-g", "60", "-bf", "3", "-pix_fmt", "yuv420p"], audio: ["-c:a", "aac"], seconds: 4.5)(whole)
            try Fixtures.ffmpeg(["-ss", "1.3", "-i", whole.path, "-c", "copy"], output: url)
        }),
        // Audio that starts after the video (absent, then present), and video that starts after the audio.
        Fixture(name: "late_audio_h264_aac.mkv", make: { url in
            try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-itsoffset", "1.2", "-f", "lavfi", "-i", "sine=frequency=300:sample_rate=48000",
                                 "-t", "3", "-map", "0:v", "-map", "1:a", "-shortest"] + x264 + ["-c:a", "aac"], output: url)
        }),
        Fixture(name: "late_video_h264_mp3.mp4", make: { url in
            try Fixtures.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=300:sample_rate=44100", "-itsoffset", "0.64", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=30",
                                 "-t", "3", "-map", "1:v", "-map", "0:a"] + x264 + ["-bf", "2", "-c:a", "libmp3lame"], output: url)
        }),
    ]

    /// `PIPELINED_MATRIX_ONLY=substring` narrows the matrix to matching fixtures (to replay one).
    static let selected = fixtures.filter { f in ProcessInfo.processInfo.environment["PIPELINED_MATRIX_ONLY"].map { f.name.contains($0) } ?? true }

    @Test(arguments: selected)
    func everyReadAgreesWithTheTimeline(fixture: Fixture) throws {
        let dir = try Fixtures.temporaryDirectory("matrix")
        let url = dir.appendingPathComponent(fixture.name)
        // Replaying one fixture keeps it, to look at with ffprobe.
        defer { if Self.selected.count == Self.fixtures.count { try? FileManager.default.removeItem(at: dir) } else { print("kept \(url.path)") } }
        try fixture.make(url)
        let report = try ScanPass(outputRate: Rational(25, 1)).run(path: url.path)
        #expect(report.demuxError == nil && report.videoDecodeErrors == 0, "\(fixture): the scan saw damage: \(report.demuxError ?? "\(report.videoDecodeErrors) decode errors")")
        let map = try #require(report.frameMap, "\(fixture): no frame map")
        let reader = NormalizedReader(path: url.path, frameMap: map)
        let n = reader.frameCount
        #expect(n > 50, "\(fixture): \(n) timeline frames")

        // The full read.
        var all: [UInt32] = []
        var audioCount = 0
        try reader.read(video: { i, f in
            #expect(i == all.count, "\(fixture): full read delivered frame \(i) at position \(all.count)")
            all.append(try f.pictureChecksum())
        }, audio: { audioCount += $0.count })
        #expect(all.count == n, "\(fixture): the timeline has \(n) frames, a full read delivers \(all.count)")
        #expect(audioCount == n * 640, "\(fixture): full read has \(audioCount) audio samples, expected \(n * 640)")
        #expect(Set(all).count > n / 2, "\(fixture): the pattern moves, so most frames differ")
        // And the timeline is the one `ffmpeg -vf fps=25` makes of the file.
        let theirs = try FrameMapParityTests.ffmpegFPSChecksums(url)
        let sameAsFFmpeg = all == theirs
        #expect(sameAsFFmpeg, "\(fixture): \(all.count) frames, ffmpeg -vf fps=25 gives \(theirs.count); first difference at \(zip(all, theirs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(all.count, theirs.count))")

        // A random segmentation: clip boundaries 1–60 frames apart, seeded and printed.
        var random = SplitMix64(seed: testSeed("everyReadAgreesWithTheTimeline(\(fixture))"))
        var bounds = [0]
        while bounds.last! < n { bounds.append(min(n, bounds.last! + Int.random(in: 1...60, using: &random))) }
        let clips = zip(bounds, bounds.dropFirst()).map { $0..<$1 }

        // Read on from clip to clip in one pass, as stage 5 does (the pass starts at a random clip).
        let first = Int.random(in: 0..<clips.count, using: &random)
        let pass = try reader.pass(from: clips[first].lowerBound)
        for clip in clips[first...] {
            var frames: [Int: UInt32] = [:]
            var samples = 0
            try pass.read(upTo: clip.upperBound, video: { i, f in
                #expect(frames[i] == nil, "\(fixture): frame \(i) delivered twice")
                frames[i] = try f.pictureChecksum()
            }, audio: { samples += $0.count })
            #expect(frames.keys.sorted() == Array(clip), "\(fixture): pass piece \(clip) delivered \(frames.count) frames")
            #expect(clip.allSatisfy { frames[$0] == all[$0] }, "\(fixture): pass piece \(clip) differs from the full read at \(clip.first { frames[$0] != all[$0] } ?? -1)")
            #expect(samples == clip.count * 640, "\(fixture): pass piece \(clip): \(samples) samples, expected \(clip.count * 640)")
        }
        // Each clip opened on its own (a seek to its start), as stage 6 and publishing do; and, on
        // every fixture, starts in the first second (before the first index entry of an AVI, where
        // an MPEG-PS seek lands late), in the middle, and at the last frames.
        for clip in clips + [1..<3, 7..<20, n / 2..<(n / 2 + 5), (n - 2)..<n] {
            var frames: [Int: UInt32] = [:]
            var samples = 0
            try reader.read(frames: clip, video: { i, f in
                #expect(frames[i] == nil, "\(fixture): frame \(i) delivered twice")
                frames[i] = try f.pictureChecksum()
            }, audio: { samples += $0.count })
            #expect(frames.keys.sorted() == Array(clip), "\(fixture): range \(clip) delivered \(frames.count) frames")
            #expect(clip.allSatisfy { frames[$0] == all[$0] }, "\(fixture): range \(clip) differs from the full read at \(clip.first { frames[$0] != all[$0] } ?? -1)")
            #expect(samples == clip.count * 640, "\(fixture): range \(clip): \(samples) samples, expected \(clip.count * 640)")
        }
    }

    /// A frame map stored by a release before `DecodeClock` (format PFM1) did not time the frames
    /// the decoder releases at the end: it is read as it was made, not against the new rule.
    @Test func mapsStoredBeforeTheEndRuleReadAsMade() throws {
        let dir = try Fixtures.temporaryDirectory("pfm1")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("packed.avi")
        try Fixtures.packedBFrameAVI(url, seconds: 2)
        let map = try #require(try ScanPass().run(path: url.path).frameMap)
        #expect(try FrameMap(serialized: map.serialized()).timesFramesAtEnd)
        // What the old scan stored: the last frame without a timestamp, its slots given to the one before.
        var old = map
        old.timesFramesAtEnd = false
        let last = old.sourcePts.count - 1
        old.sourcePts[last] = Int64.min
        old.repeats[last - 1] += old.repeats[last]
        old.repeats[last] = 0
        let stored = try FrameMap(serialized: old.serialized())
        #expect(!stored.timesFramesAtEnd && stored == old)
        var count = 0
        try NormalizedReader(path: url.path, frameMap: stored).read(video: { _, _ in count += 1 }, audio: nil)
        #expect(count == old.outputFrameCount)
    }
}
