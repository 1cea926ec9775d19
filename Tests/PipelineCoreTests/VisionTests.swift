import CVision
import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// The CVision shim: OpenCV's Lanczos warp and resize reproduce `golden/affine` exactly, and dlib
/// finds the astronaut's face and landmarks near the hand-placed reference landmarks.
@Suite struct VisionTests {
    static func astronaut() throws -> (RGBImage, SafeTensorsFile) {
        let g = try FaceAlignmentTests.golden()
        return (RGBImage(width: 512, height: 512, pixels: try g.uint8("image_rgb")), g)
    }

    @Test func warpAndResizeMatchTheReferenceExactly() throws {
        let (image, g) = try Self.astronaut()
        let m = try g.float64("M_f1")
        let template = AlignmentTemplate(resolution: 256)
        let crop = try image.warpedLanczos(AffineMatrix(m[0], m[1], m[2], m[3], m[4], m[5]), width: template.cropWidth, height: template.cropHeight)
        #expect(crop.pixels == (try g.uint8("crop_f1")), "crop_f1 differs")
        let face = try crop.resized(width: 256, height: 256, interpolation: .lanczos4)
        #expect(face.pixels == (try g.uint8("face256_f1")), "face256_f1 differs")
    }

    @Test func dlibFindsTheFaceAndItsLandmarks() throws {
        let (image, g) = try Self.astronaut()
        let detector = try DlibFaceLandmarkDetector()
        let faces = try detector.detectFaces(in: image)
        #expect(faces.count == 1, "\(faces)")
        let face = try #require(faces.first)
        let landmarks = try detector.landmarks(in: image, box: face)
        #expect(landmarks.count == 68)
        let reference = FaceAlignmentTests.points(try g.float32("landmarks68_f1").map(Double.init))
        // The alignment points (brows, nose) of dlib's fit and of the hand-placed reference landmarks
        // (an approximation, not ground truth) agree within 10 % of the face's width.
        let ours = alignmentPoints(landmarks, float32Mean: true), theirs = alignmentPoints(reference, float32Mean: true)
        let worst = zip(ours, theirs).map { hypot($0.x - $1.x, $0.y - $1.y) }.max()!
        #expect(worst < 0.1 * Double(face.width), "alignment points differ by up to \(worst) px for a \(face.width) px face")
        print("dlib on the astronaut: face \(face.width)×\(face.height) px, alignment points within \(worst) px of the hand-placed ones")
    }

    /// CVision's Lanczos kernels (lanczos.cpp) equal OpenCV's byte for byte on random images and
    /// matrices, with footprints inside, across and outside the source.
    @Test func lanczosKernelsEqualOpenCV() throws {
        var generator = SystemRandomNumberGenerator()
        var source = RGBImage(width: 320, height: 200)
        for i in source.pixels.indices { source.pixels[i] = UInt8((i * 7 + (i / 960) * 13) % 256 ^ Int(UInt8.random(in: 0...31, using: &generator))) }
        for case_ in 0..<60 {
            let scale = Double.random(in: 0.3...3, using: &generator), angle = Double.random(in: -0.5...0.5, using: &generator)
            let m = AffineMatrix(scale * cos(angle), -scale * sin(angle), Double.random(in: -400...200, using: &generator),
                                 scale * sin(angle), scale * cos(angle), Double.random(in: -300...150, using: &generator))
            let (w, h) = case_ % 3 == 0 ? (210, 280) : (Int.random(in: 1...90, using: &generator), Int.random(in: 1...90, using: &generator))
            let ours = try source.warpedLanczos(m, width: w, height: h, border: 127)
            var theirs = RGBImage(width: w, height: h)
            let status = source.pixels.withUnsafeBufferPointer { src in
                theirs.pixels.withUnsafeMutableBufferPointer { dst in
                    m.values.withUnsafeBufferPointer { mp in
                        cvision_warp_affine_lanczos(src.baseAddress, 320, 200, 320 * 3, 3, mp.baseAddress, dst.baseAddress, Int32(w), Int32(h), Int32(w * 3), 127)
                    }
                }
            }
            #expect(status == 0)
            try #require(ours == theirs, "warp \(m.values) to \(w)×\(h) differs from OpenCV")
        }
        for (w, h) in [(256, 256), (512, 512), (97, 33), (400, 410), (3, 2)] {
            let ours = try source.resized(width: w, height: h, interpolation: .lanczos4)
            var theirs = RGBImage(width: w, height: h)
            let status = source.pixels.withUnsafeBufferPointer { src in
                theirs.pixels.withUnsafeMutableBufferPointer { dst in
                    cvision_resize(src.baseAddress, 320, 200, 320 * 3, 3, dst.baseAddress, Int32(w), Int32(h), Int32(w * 3), 4)
                }
            }
            #expect(status == 0)
            #expect(ours == theirs, "resize to \(w)×\(h) differs from OpenCV")
        }
    }

    /// Our evaluation of the shape predictor (prefetching leaves; shape_predictor.cpp) gives exactly
    /// dlib's landmarks, for boxes around the face, off it and partly outside the image.
    @Test func landmarksEqualDlibsOwnEvaluation() throws {
        let (image, _) = try Self.astronaut()
        let p = try #require(cvision_shape_predictor_load(DlibFaceLandmarkDetector.defaultModelPath, 1))
        defer { cvision_shape_predictor_destroy(p) }
        var generator = SystemRandomNumberGenerator()
        var compared = 0
        for _ in 0..<150 {
            let left = Int32.random(in: -60...300, using: &generator), top = Int32.random(in: -60...250, using: &generator)
            let size = Int32.random(in: 60...320, using: &generator)
            let rect = cvision_rect(left: left, top: top, right: left + size, bottom: top + size + Int32.random(in: -20...20, using: &generator), score: 0)
            var fast = [Float](repeating: 0, count: 136), dlib = [Float](repeating: 1, count: 136)
            try image.pixels.withUnsafeBufferPointer { px in
                #expect(cvision_predict_landmarks(p, px.baseAddress, 512, 512, 512 * 3, rect, &fast, 136) == 0)
                #expect(cvision_predict_landmarks_dlib(p, px.baseAddress, 512, 512, 512 * 3, rect, &dlib, 136) == 0)
                try #require(fast == dlib, "box \(rect.left),\(rect.top)–\(rect.right),\(rect.bottom)")
            }
            compared += 1
        }
        #expect(compared == 150)
    }

    /// `image(of:)` (written straight into the image's storage) equals the buffer conversion and
    /// `ffmpeg -pix_fmt rgb24` on a width that is not a multiple of 16 (swscale's SIMD converter
    /// leaves such rows' last pixels unwritten unless they are converted apart).
    @Test func pictureToImageEqualsBufferConversion() throws {
        let dir = try Fixtures.temporaryDirectory("rgb")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("v.mp4")
        try Fixtures.video(url, seconds: 0.2, size: "322x182")
        let demuxer = try Demuxer(path: url.path)
        let stream = try #require(demuxer.pipelineStreams.video)
        let decoder = try CodecDecoder(stream: demuxer.stream(stream), threads: 1)
        let packet = try Packet(), frame = try Frame()
        while try demuxer.read(into: packet) == .ok {
            guard packet.streamIndex == stream else { continue }
            _ = try decoder.send(packet)
            if try decoder.receive(into: frame) == .ok { break }
        }
        if frame.width == 0 { _ = try decoder.send(nil); _ = try decoder.receive(into: frame) }
        let converter = PackedPictureConverter(order: .rgb)
        let image = try converter.image(of: frame)
        var buffer: [UInt8] = []
        try converter.convert(frame, into: &buffer)
        #expect(image.width == 322 && image.height == 182)
        #expect(image.pixels[...] == buffer[0..<(322 * 182 * 3)], "image(of:) differs from convert(into:)")
        var rows: [UInt8] = []
        try converter.convert(frame, into: &rows, rows: Array(0..<182))
        #expect(rows[0..<(322 * 182 * 3)] == buffer[0..<(322 * 182 * 3)], "row bands differ from the whole conversion")
        let reference = try Fixtures.run("ffmpeg", ["-nostdin", "-v", "error", "-i", url.path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        #expect(reference.stdout.count == 322 * 182 * 3)
        let differing = zip(reference.stdout, image.pixels).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) bytes differ from ffmpeg's rgb24")
    }

    @Test func clearErrors() throws {
        #expect(throws: VisionError.modelMissing(path: "/nonexistent.dat")) { try DlibFaceLandmarkDetector(modelPath: "/nonexistent.dat") }
        let tiny = RGBImage(width: 4, height: 4)
        #expect(throws: VisionError.self) { try tiny.warpedLanczos(AffineMatrix(1, 0, 0, 0, 1, 0), width: 0, height: 0) }
        #expect(try DlibFaceLandmarkDetector().detectFaces(in: RGBImage(width: 64, height: 64, fill: 90)).isEmpty)
    }
}
