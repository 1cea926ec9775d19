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

    @Test func clearErrors() throws {
        #expect(throws: VisionError.modelMissing(path: "/nonexistent.dat")) { try DlibFaceLandmarkDetector(modelPath: "/nonexistent.dat") }
        let tiny = RGBImage(width: 4, height: 4)
        #expect(throws: VisionError.self) { try tiny.warpedLanczos(AffineMatrix(1, 0, 0, 0, 1, 0), width: 0, height: 0) }
        #expect(try DlibFaceLandmarkDetector().detectFaces(in: RGBImage(width: 64, height: 64, fill: 90)).isEmpty)
    }
}
