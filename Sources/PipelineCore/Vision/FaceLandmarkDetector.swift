import CVision
import Foundation

/// A detected face: its box in image pixels and the detector's score.
public struct FaceBox: Sendable, Equatable, Codable {
    public var left: Int, top: Int, right: Int, bottom: Int
    public var score: Double
    public init(left: Int, top: Int, right: Int, bottom: Int, score: Double) {
        self.left = left; self.top = top; self.right = right; self.bottom = bottom; self.score = score
    }
    public var width: Int { right - left }
    public var height: Int { bottom - top }
    public var area: Int { width * height }
}

/// Finds faces and their 68 iBUG landmarks. The alignment stage sees only this protocol, so other
/// detectors (e.g. an MTCNN or a landmark network through OpenCV's dnn module, from ONNX files a
/// user supplies) can be added without touching the stage.
///
/// Instances are used by one thread at a time; create one per worker.
public protocol FaceLandmarkDetector {
    /// Faces in `image`, best first.
    func detectFaces(in image: RGBImage) throws -> [FaceBox]
    /// The 68 landmarks of the face in `box`.
    func landmarks(in image: RGBImage, box: FaceBox) throws -> [Point2]
}

/// dlib's HOG frontal face detector and its 68-point shape predictor (Debian's libdlib-data).
///
/// Licence note: the 68-point model was trained on iBUG 300-W, whose terms exclude commercial use.
public final class DlibFaceLandmarkDetector: FaceLandmarkDetector {
    public static let defaultModelPath = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"

    private let detector: PooledDetector
    private let model: SharedShapePredictor
    /// Times the image is doubled before detection (finds faces under ~80 px; 4× slower per step).
    public let upsample: Int

    public init(modelPath: String = defaultModelPath, upsample: Int = 0) throws {
        model = try SharedShapePredictor.load(modelPath)
        detector = try PooledDetector.take()
        self.upsample = upsample
    }

    deinit { PooledDetector.give(detector) }

    public func detectFaces(in image: RGBImage) throws -> [FaceBox] {
        var rects = [cvision_rect](repeating: cvision_rect(), count: 32)
        var count: Int32 = 0
        let status = image.pixels.withUnsafeBufferPointer { px in
            rects.withUnsafeMutableBufferPointer { out in
                cvision_detect_faces(detector.pointer, px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 3),
                                     Int32(upsample), out.baseAddress, Int32(out.count), &count)
            }
        }
        try VisionError.check(status, "detect faces")
        return rects.prefix(Int(min(count, 32))).map {
            FaceBox(left: Int($0.left), top: Int($0.top), right: Int($0.right), bottom: Int($0.bottom), score: $0.score)
        }
    }

    public func landmarks(in image: RGBImage, box: FaceBox) throws -> [Point2] {
        var out = [Float](repeating: 0, count: 2 * 68)
        let rect = cvision_rect(left: Int32(box.left), top: Int32(box.top), right: Int32(box.right), bottom: Int32(box.bottom), score: box.score)
        let status = image.pixels.withUnsafeBufferPointer { px in
            out.withUnsafeMutableBufferPointer { o in
                cvision_predict_landmarks(model.pointer, px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 3),
                                          rect, o.baseAddress, Int32(o.count))
            }
        }
        try VisionError.check(status, "landmarks")
        return stride(from: 0, to: out.count, by: 2).map { Point2(Double(out[$0]), Double(out[$0 + 1])) }
    }
}

/// dlib's HOG detectors, kept for reuse: building one decompresses its model (a measurable share of
/// a short clip's alignment), and one may be used by one thread at a time.
final class PooledDetector: @unchecked Sendable {
    // @unchecked: a detector is handed to one owner at a time through the locked pool.
    let pointer: OpaquePointer
    private init(_ p: OpaquePointer) { pointer = p }

    nonisolated(unsafe) private static var idle: [PooledDetector] = []
    private static let lock = NSLock()

    static func take() throws -> PooledDetector {
        lock.lock()
        if let d = idle.popLast() { lock.unlock(); return d }
        lock.unlock()
        guard let p = cvision_face_detector_create() else { throw VisionError.operation("face detector", String(cString: cvision_last_error())) }
        return PooledDetector(p)
    }

    static func give(_ d: PooledDetector) { lock.lock(); idle.append(d); lock.unlock() }
}

/// One loaded shape predictor per model file for the whole process (the file is ~100 MB and takes
/// a second or two to read; prediction only reads the model, so threads share it).
final class SharedShapePredictor: @unchecked Sendable {
    // @unchecked: the pointer is written once; prediction does not mutate the model.
    let pointer: OpaquePointer
    private init(_ p: OpaquePointer) { pointer = p }

    nonisolated(unsafe) private static var loaded: [String: SharedShapePredictor] = [:]
    private static let lock = NSLock()

    static func load(_ path: String) throws -> SharedShapePredictor {
        lock.lock(); defer { lock.unlock() }
        if let p = loaded[path] { return p }
        guard FileManager.default.fileExists(atPath: path) else { throw VisionError.modelMissing(path: path) }
        guard let p = cvision_shape_predictor_load(path, 0) else { throw VisionError.operation("load \(path)", String(cString: cvision_last_error())) }
        let parts = cvision_shape_predictor_parts(p)
        guard parts == 68 else {
            cvision_shape_predictor_destroy(p)
            throw VisionError.operation("load \(path)", "the model has \(parts) landmarks; 68 (iBUG layout) are needed")
        }
        let shared = SharedShapePredictor(p)
        loaded[path] = shared
        return shared
    }
}
