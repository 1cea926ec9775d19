import Foundation
import PipelineCore
import PipelineTestSupport
import Stages
import Testing

/// Stage 5 end to end on face clips with known motion.
@Suite(.serialized) struct AlignStageTests {
    struct Result { let store: PipelineStore; let root: URL; let out: URL }

    /// Runs stages 1–5 on one generated face clip (scene/segment limits sized for short clips).
    static func align(frames: Int, resolution: Int, amplitude: Double = 1, gap: Range<Int>? = nil, smoothing: Bool,
                      jobs: Int = 2, clipSeconds: Double = 10, speech: Bool = false) async throws -> Result {
        let root = try Fixtures.temporaryDirectory("align")
        let input = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try FaceClips.write(input.appendingPathComponent("face.mp4"), frames: frames, amplitude: amplitude, gap: gap, speech: speech)
        var c = PipelineConfiguration()
        c.broken.minDurationSeconds = 1
        c.segment.minSeconds = min(2, clipSeconds); c.segment.targetSeconds = clipSeconds; c.segment.maxSeconds = 2 * clipSeconds
        c.align.resolution = resolution
        c.align.smoothing = smoothing
        c.scenes.detector = "content"; c.scenes.threshold = 255 // one scene: the gap must not cut it
        let out = root.appendingPathComponent("out")
        let store = try PipelineStore(path: out.appendingPathComponent("pipelined.sqlite").path)
        let engine = Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
                            options: EngineOptions(inputDirectory: input, outputDirectory: out, jobs: jobs, version: "test"), reporter: RecordingReporter())
        let summary = try await engine.run()
        #expect(summary.failed == 0, "\(summary.counts)")
        return Result(store: store, root: root, out: out)
    }

    static func alignMetrics(_ r: Result) throws -> (state: ItemState, reason: String?, pieces: [[String: Any]]) {
        let row = try #require(try r.store.currentResults(stage: "align").values.first)
        let metrics = try JSONSerialization.jsonObject(with: Data(row.metrics!.utf8)) as! [String: Any]
        return (row.state, row.reason, metrics["pieces"] as! [[String: Any]])
    }

    /// The fraction of frames whose true alignment points land within 2 px (at 256) of where the
    /// template puts them: the exact similarity fit on that frame's true points (three points do not
    /// fit the template's triangle exactly; that residual is the face's, the same in every frame).
    static func accuracy(_ r: Result, resolution: Int) throws -> Double {
        let piece = try #require(try alignMetrics(r).pieces.first)
        let sidecar = try AlignedLandmarks(serialized: Data(contentsOf: r.out.appendingPathComponent(piece["landmarks"] as! String)))
        let template = AlignmentTemplate(resolution: resolution)
        // Ground truth: the face's points as dlib fits them at this scale (on frame 0), taken back into
        // the photo through frame 0's known motion; every frame's truth is those moved by its motion.
        let photo = try FaceClips.astronaut()
        let detector = try DlibFaceLandmarkDetector()
        let first = try FaceClips.render(0, photo: photo)
        let face = try #require(try detector.detectFaces(in: first).first)
        let inverse = FaceClips.motion(0, canvas: (640, 480), scale: 1.6, amplitude: 1).inverse
        let truth = alignmentPoints(try detector.landmarks(in: first, box: face), float32Mean: true).map(inverse.apply)
        var worst: [Double] = []
        var within = 0
        for (t, matrix) in sidecar.matrices.enumerated() {
            let motion = FaceClips.motion(t, canvas: (640, 480), scale: 1.6, amplitude: 1)
            let moved = truth.map(motion.apply)
            let ideal = similarityTransform(from: moved, to: template.points).matrix
            let errors = moved.map { p -> Double in
                let out = template.toOutput(matrix.apply(p)), want = template.toOutput(ideal.apply(p))
                return hypot(out.x - want.x, out.y - want.y) * 256 / Double(resolution)
            }
            if errors.max()! <= 2 { within += 1 }
            worst.append(errors.max()!)
        }
        print("alignment error at \(resolution) (256-scale px): median \(worst.sorted()[worst.count / 2]), max \(worst.max()!)")
        return Double(within) / Double(sidecar.matrices.count)
    }

    @Test(arguments: [256, 512])
    func movingFaceStaysOnTheTemplate(resolution: Int) async throws {
        let r = try await Self.align(frames: 125, resolution: resolution, smoothing: false)
        defer { try? FileManager.default.removeItem(at: r.root) }
        let (state, reason, pieces) = try Self.alignMetrics(r)
        #expect(state == .done, "\(reason ?? "")")
        #expect(pieces.count == 1)
        let video = r.out.appendingPathComponent(pieces[0]["video"] as! String)
        let report = try ScanPass().run(path: video.path)
        let stream = try #require(report.streams.first { $0.kind == .video })
        #expect(stream.width == resolution && stream.height == resolution && report.videoFrames == 125)
        #expect(report.streams.first { $0.kind == .audio }?.sampleRate == 16_000)
        // Scheduled refreshes of the track searched around the face, not the whole frame.
        let row = try #require(try r.store.currentResults(stage: "align").values.first)
        let tracker = try #require((try JSONSerialization.jsonObject(with: Data(row.metrics!.utf8)) as! [String: Any])["tracker"] as? [String: Any])
        // The whole frame was searched once, at the start of the track.
        #expect((tracker["regionDetections"] as! Int) >= 3 && tracker["frameDetections"] as? Int == 1
                && (tracker["detections"] as! Int) == (tracker["regionDetections"] as! Int) + 1, "\(tracker)")
        let fraction = try Self.accuracy(r, resolution: resolution)
        print("align \(resolution): \(Int(fraction * 100)) % of frames within 2 px (at 256 scale)")
        #expect(fraction >= 0.95)
    }

    @Test func facelessFramesSplitTheClip() async throws {
        let r = try await Self.align(frames: 150, resolution: 256, gap: 60..<90, smoothing: true)
        defer { try? FileManager.default.removeItem(at: r.root) }
        let (state, _, pieces) = try Self.alignMetrics(r)
        #expect(state == .done)
        #expect(pieces.map { $0["frames"] as! [Int] } == [[0, 60], [90, 150]])
        #expect(pieces.map { ($0["video"] as! String).hasSuffix("_p0.mp4") || ($0["video"] as! String).hasSuffix("_p1.mp4") } == [true, true])
        for piece in pieces {
            let frames = piece["frames"] as! [Int]
            #expect(try ScanPass().run(path: r.out.appendingPathComponent(piece["video"] as! String).path).videoFrames == frames[1] - frames[0])
        }
    }

    @Test func aClipWithoutALongEnoughFaceIsRejectedWithItsFrames() async throws {
        let r = try await Self.align(frames: 100, resolution: 256, gap: 30..<100, smoothing: true)
        defer { try? FileManager.default.removeItem(at: r.root) }
        let (state, reason, _) = try Self.alignMetrics(r)
        #expect(state == .rejected)
        #expect(reason == "no acceptable face in frames 30–99; face in frames 0–29 only: 1.20 s, minimum 2.00 s", "\(reason ?? "")")
    }

    /// Consecutive clips of one source aligned by one worker are read in one pass (no seek back to
    /// the keyframe before each clip): the aligned clips are those of clips read one by one.
    @Test func consecutiveClipsContinueOneReadWithTheSameResult() async throws {
        let sequential = try await Self.align(frames: 200, resolution: 256, smoothing: false, jobs: 1, clipSeconds: 2, speech: true)
        defer { try? FileManager.default.removeItem(at: sequential.root) }
        // Four workers on four clips: each starts its own read.
        let parallel = try await Self.align(frames: 200, resolution: 256, smoothing: false, jobs: 4, clipSeconds: 2, speech: true)
        defer { try? FileManager.default.removeItem(at: parallel.root) }

        func clips(_ r: Result) throws -> [(continued: Bool, video: String, landmarks: String)] {
            let rows = try r.store.currentResults(stage: "align")
            return try r.store.clipsOfActiveSources().map { entry in
                let row = try #require(rows["c\(entry.clip.id!)"])
                #expect(row.state == .done, "\(row.reason ?? "")")
                let m = try JSONSerialization.jsonObject(with: Data(row.metrics!.utf8)) as! [String: Any]
                let piece = try #require((m["pieces"] as! [[String: Any]]).first)
                return (m["continuedRead"] as! Bool, piece["video"] as! String, piece["landmarks"] as! String)
            }
        }
        func content(_ r: Result, _ path: String) throws -> (frames: [UInt32], audio: [Float]) {
            let url = r.out.appendingPathComponent(path)
            let map = try #require(try ScanPass().run(path: url.path).frameMap)
            var frames: [UInt32] = [], audio: [Float] = []
            try NormalizedReader(path: url.path, frameMap: map).read(video: { _, f in frames.append(try f.pictureChecksum()) },
                                                                     audio: { audio.append(contentsOf: $0) })
            return (frames, audio)
        }
        let a = try clips(sequential), b = try clips(parallel)
        #expect(a.count == 4 && b.count == 4)
        #expect(a.map(\.continued) == [false, true, true, true])
        #expect(b.map(\.continued) == [false, false, false, false])
        for (x, y) in zip(a, b) {
            #expect(try Data(contentsOf: sequential.out.appendingPathComponent(x.landmarks)) == Data(contentsOf: parallel.out.appendingPathComponent(y.landmarks)))
            let cx = try content(sequential, x.video), cy = try content(parallel, y.video)
            #expect(cx.frames.count == 50 && cx.frames == cy.frames, "\(x.video)")
            #expect(cx.audio.count == cy.audio.count && zip(cx.audio, cy.audio).allSatisfy { abs($0 - $1) < 1e-3 }, "\(x.video)")
            #expect(cx.audio.contains { abs($0) > 0.01 }, "\(x.video): no speech")
        }
    }
}
