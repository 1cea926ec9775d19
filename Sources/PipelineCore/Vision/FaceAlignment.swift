import Foundation

/// A point in pixel coordinates (x right, y down).
public struct Point2: Sendable, Equatable, Codable {
    public var x: Double
    public var y: Double
    public init(_ x: Double, _ y: Double) { self.x = x; self.y = y }
}

/// A 2×3 affine matrix mapping source pixels to destination pixels: `[[m00, m01, m02], [m10, m11, m12]]`.
public struct AffineMatrix: Sendable, Equatable, Codable {
    public var m00, m01, m02, m10, m11, m12: Double
    public init(_ m00: Double, _ m01: Double, _ m02: Double, _ m10: Double, _ m11: Double, _ m12: Double) {
        self.m00 = m00; self.m01 = m01; self.m02 = m02; self.m10 = m10; self.m11 = m11; self.m12 = m12
    }
    public var values: [Double] { [m00, m01, m02, m10, m11, m12] }
    public func apply(_ p: Point2) -> Point2 { Point2(m00 * p.x + m01 * p.y + m02, m10 * p.x + m11 * p.y + m12) }
    public var inverse: AffineMatrix {
        let d = 1 / (m00 * m11 - m01 * m10)
        let a00 = m11 * d, a01 = -m01 * d, a10 = -m10 * d, a11 = m00 * d
        return AffineMatrix(a00, a01, -a00 * m02 - a01 * m12, a10, a11, -a10 * m02 - a11 * m12)
    }
}

/// LatentSync's alignment template for an output resolution.
///
/// Reference: bytedance/LatentSync@a229c39 latentsync/utils/affine_transform.py — `ratio = R/256·2.8`,
/// template points (17, 20), (58, 20), (37.5, 40) × ratio, crop (75, 100) × ratio (210×280 at 256),
/// then a resize of the crop to R×R.
public struct AlignmentTemplate: Sendable, Equatable {
    public let resolution: Int
    public let points: [Point2]
    public let cropWidth: Int
    public let cropHeight: Int

    public init(resolution: Int) {
        self.resolution = resolution
        let ratio = Double(resolution) / 256 * 2.8
        points = [Point2(17 * ratio, 20 * ratio), Point2(58 * ratio, 20 * ratio), Point2(37.5 * ratio, 40 * ratio)]
        cropWidth = Int(75 * ratio)
        cropHeight = Int(100 * ratio)
    }

    /// Where a crop pixel lands in the R×R output (the crop is resized non-uniformly).
    public func toOutput(_ p: Point2) -> Point2 {
        Point2(p.x * Double(resolution) / Double(cropWidth), p.y * Double(resolution) / Double(cropHeight))
    }
}

/// The three alignment points of iBUG-68 landmarks: the means of the left brow (17–21), the right
/// brow (22–26) and the nose (27–35). The reference takes the mean in the array's own precision:
/// float32 for a detector's raw landmarks, float64 once the smoother has produced them.
public func alignmentPoints(_ landmarks: [Point2], float32Mean: Bool) -> [Point2] {
    precondition(landmarks.count == 68, "68 landmarks expected")
    func mean(_ r: ClosedRange<Int>) -> Point2 {
        if float32Mean {
            var sx: Float = 0, sy: Float = 0
            for i in r { sx += Float(landmarks[i].x); sy += Float(landmarks[i].y) }
            return Point2(Double(sx / Float(r.count)), Double(sy / Float(r.count)))
        }
        var sx = 0.0, sy = 0.0
        for i in r { sx += landmarks[i].x; sy += landmarks[i].y }
        return Point2(sx / Double(r.count), sy / Double(r.count))
    }
    return [mean(17...21), mean(22...26), mean(27...35)]
}

/// The similarity transform taking `source` points onto `target` points, as the reference's
/// `transformation_from_points` computes it (older path, float64): centre both sets, scale each by
/// the population standard deviation of its 6 coordinates, rotation `R = (U·Vᵀ)ᵀ` from the SVD of
/// `P1ᵀ·P2` (no reflection check), `M = [s·R | c2 − s·R·c1]` with `s = s2/s1`. Also returns the nose
/// row's difference in normalised units (the reference's smoothing bias).
///
/// `U·Vᵀ` is the orthogonal polar factor of `P1ᵀ·P2`; for 2×2 matrices it has a closed form
/// (a rotation when the determinant is positive, a reflection otherwise), used here instead of an SVD.
public func similarityTransform(from source: [Point2], to target: [Point2]) -> (matrix: AffineMatrix, noseBias: Point2) {
    precondition(source.count == target.count && source.count >= 2)
    func normalised(_ pts: [Point2]) -> (centre: Point2, scale: Double, points: [Point2]) {
        let n = Double(pts.count)
        let c = Point2(pts.reduce(0) { $0 + $1.x } / n, pts.reduce(0) { $0 + $1.y } / n)
        let centred = pts.map { Point2($0.x - c.x, $0.y - c.y) }
        let s = (centred.reduce(0) { $0 + $1.x * $1.x + $1.y * $1.y } / (2 * n)).squareRoot()
        return (c, s, centred.map { Point2($0.x / s, $0.y / s) })
    }
    let (c1, s1, p1) = normalised(source)
    let (c2, s2, p2) = normalised(target)
    // A = P1ᵀ·P2
    var a00 = 0.0, a01 = 0.0, a10 = 0.0, a11 = 0.0
    for (u, v) in zip(p1, p2) { a00 += u.x * v.x; a01 += u.x * v.y; a10 += u.y * v.x; a11 += u.y * v.y }
    // Q = U·Vᵀ (polar factor of A); R = Qᵀ.
    let q00, q01, q10, q11: Double
    if a00 * a11 - a01 * a10 >= 0 {
        let t = atan2(a10 - a01, a00 + a11)
        (q00, q01, q10, q11) = (cos(t), -sin(t), sin(t), cos(t))
    } else {
        let t = atan2(a10 + a01, a00 - a11)
        (q00, q01, q10, q11) = (cos(t), sin(t), sin(t), -cos(t))
    }
    let s = s2 / s1
    let r00 = s * q00, r01 = s * q10, r10 = s * q01, r11 = s * q11
    let matrix = AffineMatrix(r00, r01, c2.x - (r00 * c1.x + r01 * c1.y), r10, r11, c2.y - (r10 * c1.x + r11 * c1.y))
    let last = p1.count - 1
    return (matrix, Point2(p2[last].x - p1[last].x, p2[last].y - p1[last].y))
}

/// The older reference's temporal smoothing, per clip: the 68 landmarks are pulled toward the
/// previous frame's (`w = exp(−d²/(0.3·width))`, `new = old·w + cur·(1−w)`), and the nose bias is
/// blended (`0.2·previous + 0.8·current`) and added to the matrix's translation.
///
/// Reference: bytedance/LatentSync (releases up to 1.5) latentsync/utils/affine_transform.py
/// `laplacianSmooth` and `AlignRestore.align_warp_face`. One value per clip: the reference keeps this
/// state across clips of a worker, so a clip's first frame was blended with another clip's last.
public struct FaceAligner: Sendable {
    public let template: AlignmentTemplate
    public let smoothing: Bool
    private var previousLandmarks: [Point2]?
    private var previousBias: Point2?
    /// Whether the last smoothed landmarks are the detector's own (float32) values.
    private var lastWasRaw = true

    public init(resolution: Int, smoothing: Bool = true) {
        template = AlignmentTemplate(resolution: resolution)
        self.smoothing = smoothing
    }

    /// Smooths one frame's landmarks against the previous frame's (the first passes unchanged).
    public mutating func smooth(_ landmarks: [Point2]) -> [Point2] {
        guard smoothing, let old = previousLandmarks else { previousLandmarks = landmarks; lastWasRaw = true; return landmarks }
        lastWasRaw = false
        let xs = landmarks.map(\.x)
        let width = xs.max()! - xs.min()!
        let smoothed = zip(old, landmarks).map { o, c -> Point2 in
            let d2 = (c.x - o.x) * (c.x - o.x) + (c.y - o.y) * (c.y - o.y)
            let w = exp(-d2 / (0.3 * width))
            return Point2(o.x * w + c.x * (1 - w), o.y * w + c.y * (1 - w))
        }
        previousLandmarks = smoothed
        return smoothed
    }

    /// The source → crop matrix for one frame's (already smoothed) landmarks.
    public mutating func matrix(for landmarks: [Point2]) -> AffineMatrix {
        var (m, bias) = similarityTransform(from: alignmentPoints(landmarks, float32Mean: lastWasRaw), to: template.points)
        guard smoothing else { return m }
        if let previous = previousBias { bias = Point2(0.2 * previous.x + 0.8 * bias.x, 0.2 * previous.y + 0.8 * bias.y) }
        previousBias = bias
        m.m02 += bias.x
        m.m12 += bias.y
        return m
    }

    /// A frame without a face breaks the track: the next face starts fresh.
    public mutating func reset() { previousLandmarks = nil; previousBias = nil; lastWasRaw = true }

    public var noseBias: Point2? { previousBias }
}
