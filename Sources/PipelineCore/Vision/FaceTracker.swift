import Foundation

/// Landmarks for consecutive frames of one clip without running the full-frame detector on every
/// frame: detect on a downscaled copy, then predict each next frame's landmarks from a box placed
/// on the previous frame's landmarks; detect again every `redetectEvery` frames, or at once when the
/// fit jumps (the face moved or changed size too much between frames to trust the track).
///
/// Faces are filtered as the reference filters them (box at least 50 wide and 80 high, width/height
/// within [0.2, 1.5]) and the largest one is kept.
public final class FaceTracker {
    public struct Settings: Sendable, Codable, Equatable {
        /// Width the frame is reduced to before detection (0: detect at full size).
        /// dlib's HOG window is 80×80: at 640 wide, faces of about 160 px and up in 720p are found.
        public var detectWidth = 640
        public var redetectEvery = 25
        public var minFaceWidth = 50
        public var minFaceHeight = 80
        /// Scheduled re-detections of a live track search only the face's surroundings (about twice
        /// its size; a tenth of the work at 720p); when they find nothing the track goes on until
        /// the next schedule. A larger face appearing elsewhere is then noticed when the track
        /// breaks, not at the next schedule.
        public var refreshAroundFace = true
        public init() {}
    }

    public struct Statistics: Sendable, Codable, Equatable {
        public var detections = 0
        /// Of those, searches limited to the tracked face's surroundings.
        public var regionDetections = 0
        /// Searches of the whole frame: at the start of a track, and when a search around the face
        /// found none.
        public var frameDetections = 0
        public var trackedFrames = 0
        public var faceFrames = 0
        public var noFaceFrames = 0
        public var detectSeconds = 0.0
        public var landmarkSeconds = 0.0
    }

    public let detector: any FaceLandmarkDetector
    public let settings: Settings
    public private(set) var statistics = Statistics()
    private var previous: [Point2]?
    /// The detector's box expressed relative to the landmarks' bounding box at the last detection.
    private var boxRelation: (left: Double, top: Double, right: Double, bottom: Double)?
    private var sinceDetection = 0
    /// A 16×16 grey thumbnail of the face box in the previous frame.
    private var previousThumbnail: [Int]?
    /// The box relation from before a failed detection (to keep a refreshed track going).
    private var lastRelation: (left: Double, top: Double, right: Double, bottom: Double)?

    public init(detector: any FaceLandmarkDetector, settings: Settings = Settings()) {
        self.detector = detector
        self.settings = settings
    }

    /// Forgets the track (a new clip, or after a frame without a face).
    public func reset() { previous = nil; boxRelation = nil; sinceDetection = 0; previousThumbnail = nil }

    /// The 68 landmarks of the clip's face in `image`, or nil when it has no acceptable face.
    ///
    /// A scheduled re-detection refreshes the track; when it finds nothing while the track is still
    /// consistent (the frontal detector misses turned faces more often than the tracker loses
    /// them), the tracked landmarks stand. A frame is faceless only when the track breaks and
    /// detection finds no acceptable face.
    public func landmarks(in image: RGBImage) throws -> [Point2]? {
        var tracked: [Point2]?
        if let previous, let relation = boxRelation {
            let box = Self.box(around: previous, relation: relation)
            let start = Date()
            let candidate = try detector.landmarks(in: image, box: box)
            statistics.landmarkSeconds += Date().timeIntervalSince(start)
            // The predictor returns a shape for any box, face or not: the track also needs the box to
            // look like it did a frame ago (a cut to another picture or a covered face does not).
            let thumbnail = Self.thumbnail(image, Self.box(around: candidate, relation: relation))
            if Self.consistent(candidate, with: previous), let old = previousThumbnail, Self.similar(thumbnail, old) {
                tracked = candidate
                if sinceDetection < settings.redetectEvery {
                    previousThumbnail = thumbnail
                    return accept(tracked: candidate)
                }
            }
        }
        if let found = try detect(in: image, trackIntact: tracked != nil) { return found }
        if let tracked, let relation = boxRelation ?? lastRelation {
            // Refresh missed, track intact: keep following the face and try again at the next schedule.
            boxRelation = relation
            previousThumbnail = Self.thumbnail(image, Self.box(around: tracked, relation: relation))
            sinceDetection = 0
            statistics.noFaceFrames -= 1
            return accept(tracked: tracked)
        }
        return nil
    }

    private func accept(tracked: [Point2]) -> [Point2] {
        sinceDetection += 1
        statistics.trackedFrames += 1
        statistics.faceFrames += 1
        previous = tracked
        return tracked
    }

    /// Detects the largest acceptable face. `trackIntact`: a scheduled refresh of a track that still
    /// holds, which searches only around the face (a miss there keeps the track, and a full-frame
    /// search would mostly miss the same turned face again at several times the cost).
    private func detect(in image: RGBImage, trackIntact: Bool) throws -> [Point2]? {
        let start = Date()
        // A refresh or a broken track looks around the last face first (a fraction of the frame);
        // the whole frame is searched when there is no track, or when a broken track's
        // surroundings hold no face.
        var boxes: [FaceBox] = []
        var searchedAround = false
        if let previous, settings.refreshAroundFace {
            let (minX, minY, maxX, maxY) = Self.bounds(previous)
            let side = max(maxX - minX, maxY - minY)
            let m = Self.regionMargin
            let x0 = max(0, Int(minX - m * side)), y0 = max(0, Int(minY - (m + 0.2) * side))
            let x1 = min(image.width, Int(maxX + m * side)), y1 = min(image.height, Int(maxY + m * side))
            if x1 - x0 >= 80, y1 - y0 >= 80 {
                // Scaled so the face spans about 140 px: well above the HOG window (80 px), and no
                // larger than the full-frame search would see it.
                let scale = max(frameScale(image.width), side / Self.regionFaceSize, 1)
                boxes = try detectBoxes(in: image.cropped(x: x0, y: y0, width: x1 - x0, height: y1 - y0), scale: scale)
                    .map { FaceBox(left: $0.left + x0, top: $0.top + y0, right: $0.right + x0, bottom: $0.bottom + y0, score: $0.score) }
                statistics.regionDetections += 1
                searchedAround = true
            }
        }
        if !boxes.contains(where: acceptable), !(searchedAround && trackIntact) {
            boxes = try detectBoxes(in: image, scale: frameScale(image.width))
            statistics.frameDetections += 1
        }
        statistics.detections += 1
        statistics.detectSeconds += Date().timeIntervalSince(start)
        guard let face = boxes.filter(acceptable).max(by: { $0.area < $1.area }) else {
            lastRelation = boxRelation
            reset()
            statistics.noFaceFrames += 1
            return nil
        }
        let landmarkStart = Date()
        let points = try detector.landmarks(in: image, box: face)
        statistics.landmarkSeconds += Date().timeIntervalSince(landmarkStart)
        let (minX, minY, maxX, maxY) = Self.bounds(points)
        let w = max(1, maxX - minX), h = max(1, maxY - minY)
        boxRelation = ((Double(face.left) - minX) / w, (Double(face.top) - minY) / h, (Double(face.right) - maxX) / w, (Double(face.bottom) - maxY) / h)
        previous = points
        previousThumbnail = Self.thumbnail(image, face)
        sinceDetection = 1
        statistics.faceFrames += 1
        return points
    }

    static let regionFaceSize = 140.0
    /// How far around the landmarks' box (in its larger side) the surroundings reach: the detector's
    /// box extends past the landmarks (more above the brows), and the face moves between refreshes.
    static let regionMargin = 0.5

    /// How much a frame `width` wide is reduced for detection (`detect_width`).
    private func frameScale(_ width: Int) -> Double {
        settings.detectWidth > 0 && width > settings.detectWidth ? Double(width) / Double(settings.detectWidth) : 1
    }

    /// Faces in `image` (the whole frame or a part of it), detected on a copy reduced `scale` times,
    /// in `image`'s coordinates.
    private func detectBoxes(in image: RGBImage, scale: Double) throws -> [FaceBox] {
        let small = scale > 1
            ? try image.resized(width: max(1, Int((Double(image.width) / scale).rounded())), height: max(1, Int((Double(image.height) / scale).rounded())),
                                interpolation: .area)
            : image
        return try detector.detectFaces(in: small).map { b in
            FaceBox(left: Int((Double(b.left) * scale).rounded()), top: Int((Double(b.top) * scale).rounded()),
                    right: Int((Double(b.right) * scale).rounded()), bottom: Int((Double(b.bottom) * scale).rounded()), score: b.score)
        }
    }

    /// The reference's filter: box at least min_face_width × min_face_height, width/height in [0.2, 1.5].
    private func acceptable(_ b: FaceBox) -> Bool {
        b.width >= settings.minFaceWidth && b.height >= settings.minFaceHeight && (0.2...1.5).contains(Double(b.width) / Double(max(1, b.height)))
    }

    static func bounds(_ p: [Point2]) -> (Double, Double, Double, Double) {
        (p.map(\.x).min()!, p.map(\.y).min()!, p.map(\.x).max()!, p.map(\.y).max()!)
    }

    static func box(around points: [Point2], relation r: (left: Double, top: Double, right: Double, bottom: Double)) -> FaceBox {
        let (minX, minY, maxX, maxY) = bounds(points)
        let w = max(1, maxX - minX), h = max(1, maxY - minY)
        return FaceBox(left: Int((minX + r.left * w).rounded()), top: Int((minY + r.top * h).rounded()),
                       right: Int((maxX + r.right * w).rounded()), bottom: Int((maxY + r.bottom * h).rounded()), score: 0)
    }

    /// Mean grey level of 16×16 cells over `box` (clipped to the image).
    static func thumbnail(_ image: RGBImage, _ box: FaceBox) -> [Int] {
        let x0 = max(0, box.left), y0 = max(0, box.top), x1 = min(image.width, box.right), y1 = min(image.height, box.bottom)
        guard x1 - x0 >= 16, y1 - y0 >= 16 else { return [] }
        var cells = [Int](repeating: 0, count: 256)
        image.pixels.withUnsafeBufferPointer { px in
            for cy in 0..<16 {
                let ya = y0 + (y1 - y0) * cy / 16, yb = y0 + (y1 - y0) * (cy + 1) / 16
                for cx in 0..<16 {
                    let xa = x0 + (x1 - x0) * cx / 16, xb = x0 + (x1 - x0) * (cx + 1) / 16
                    var sum = 0, n = 0
                    var y = ya
                    while y < yb {
                        var x = xa
                        while x < xb { let i = (y * image.width + x) * 3; sum += Int(px[i]) + Int(px[i + 1]) + Int(px[i + 2]); n += 3; x += 2 }
                        y += 2
                    }
                    cells[cy * 16 + cx] = n > 0 ? sum / n : 0
                }
            }
        }
        return cells
    }

    /// Consecutive views of one face differ by a few grey levels per cell; a different picture by tens.
    static func similar(_ a: [Int], _ b: [Int]) -> Bool {
        guard a.count == 256, b.count == 256 else { return false }
        return zip(a, b).reduce(0) { $0 + abs($1.0 - $1.1) } / 256 < 20
    }

    /// A track is trusted while the face keeps its size (±20 %) and moves less than a quarter of its
    /// width per frame; otherwise the frame is detected afresh.
    static func consistent(_ new: [Point2], with old: [Point2]) -> Bool {
        let a = bounds(old), b = bounds(new)
        let wa = a.2 - a.0, wb = b.2 - b.0
        guard wa > 1, wb > 1, (0.8...1.25).contains(wb / wa) else { return false }
        let ca = Point2((a.0 + a.2) / 2, (a.1 + a.3) / 2), cb = Point2((b.0 + b.2) / 2, (b.1 + b.3) / 2)
        return hypot(ca.x - cb.x, ca.y - cb.y) < 0.25 * wa
    }
}
