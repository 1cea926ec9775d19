import CFFmpeg
import Foundation

/// Per-frame content change as PySceneDetect 0.6.1's `ContentDetector` measures it: the mean
/// absolute difference of the 8-bit H, S and V planes between consecutive frames.
///
/// Reference: Breakthrough/PySceneDetect@v0.6.1-release scenedetect/detectors/content_detector.py
/// (`_calculate_frame_score`) with frames decoded by OpenCV's FFmpeg backend (opencv
/// modules/videoio/src/cap_ffmpeg_impl.hpp: swscale to BGR24 with SWS_BICUBIC) and converted by
/// `cv2.cvtColor(COLOR_BGR2HSV)` (its integer tables are reproduced here bit for bit).
///
/// It is a `TimelineAnalyzer`: it rides on the scan pass's single decode, sees each frame of the
/// 25 fps timeline, and keeps only the previous frame's HSV planes. Scores are stored, so the cut
/// decision (`ContentCutDetector`, `AdaptiveCutDetector`) can be re-made without decoding.
public final class ContentScorer: TimelineAnalyzer {
    /// PySceneDetect's `downscale`: nil = automatic (`width // 256`, at least 1).
    public let downscale: Int?
    public let maxEventLag = 0
    /// Delta of hue, saturation and luma for each timeline frame (frame 0: NaN, no previous frame).
    public private(set) var scores: ContentScores = ContentScores()

    private var rotation = 0
    private let converter = PackedPictureConverter(order: .bgr)
    private var bgr: [UInt8] = []
    private var resized: [UInt8] = []
    private var resizer: LinearResizer?
    private var previous: [UInt8] = []
    private var current: [UInt8] = []

    /// Convert only the rows the downscale reads (on by default; off only to test that it is exact).
    let rowSlicing: Bool

    public convenience init(downscale: Int? = nil) { self.init(downscale: downscale, rowSlicing: true) }
    init(downscale: Int?, rowSlicing: Bool) { self.downscale = downscale; self.rowSlicing = rowSlicing }

    /// The scorer's settings as they enter stage fingerprints.
    public var fingerprint: String { Self.fingerprint(downscale: downscale) }
    // v2: right-edge pixels of widths that are not a multiple of 16 are scored (PackedPictureConverter).
    public static func fingerprint(downscale: Int?) -> String { Fingerprint.of("content-hsv-v2", downscale.map(String.init) ?? "auto") }

    public func begin(video: StreamInfo) { rotation = video.rotationDegrees ?? 0 }

    public func process(_ frame: Frame, index: Int) throws {
        let w = frame.width, h = frame.height
        // The factor follows the width OpenCV reports, which is after autorotation.
        let displayWidth = rotation % 180 == 0 ? w : h
        let factor = downscale ?? max(1, displayWidth / 256)
        let count: Int
        if factor > 1 {
            let dw = Int((Double(w) / Double(factor)).rounded(.toNearestOrEven))
            let dh = Int((Double(h) / Double(factor)).rounded(.toNearestOrEven))
            if resizer == nil || resizer!.sw != w || resizer!.sh != h || resizer!.dw != dw || resizer!.dh != dh {
                resizer = LinearResizer(sourceWidth: w, height: h, targetWidth: dw, height: dh)
                resized = [UInt8](repeating: 0, count: dw * dh * 3)
            }
            try converter.convert(frame, into: &bgr, rows: rowSlicing ? resizer!.neededRows : nil)
            bgr.withUnsafeBufferPointer { src in resized.withUnsafeMutableBufferPointer { resizer!.resize(src, into: $0) } }
            count = dw * dh
        } else {
            try converter.convert(frame, into: &bgr)
            count = w * h
        }
        if current.count != count * 3 { current = [UInt8](repeating: 0, count: count * 3) }
        let source = factor > 1 ? resized : bgr
        source.withUnsafeBufferPointer { pixels in current.withUnsafeMutableBufferPointer { HSV.convert(bgr: pixels, count: count, into: $0) } }
        if index == 0 || previous.count != current.count {
            scores.append(hue: .nan, saturation: .nan, luma: .nan)
        } else {
            var sums = (0, 0, 0)
            previous.withUnsafeBufferPointer { p in
                current.withUnsafeBufferPointer { c in
                    var i = 0
                    while i < count * 3 {
                        sums.0 &+= abs(Int(c[i]) - Int(p[i]))
                        sums.1 &+= abs(Int(c[i + 1]) - Int(p[i + 1]))
                        sums.2 &+= abs(Int(c[i + 2]) - Int(p[i + 2]))
                        i += 3
                    }
                }
            }
            let n = Double(count)
            scores.append(hue: Double(sums.0) / n, saturation: Double(sums.1) / n, luma: Double(sums.2) / n)
        }
        swap(&previous, &current)
    }

    public func finish(frameCount: Int) throws {}

}

/// Stored content scores: one (hue, saturation, luma) delta triple per timeline frame.
public struct ContentScores: Sendable, Equatable {
    public var hue: [Double] = []
    public var saturation: [Double] = []
    public var luma: [Double] = []
    public init() {}

    public var count: Int { hue.count }

    mutating func append(hue h: Double, saturation s: Double, luma l: Double) {
        hue.append(h); saturation.append(s); luma.append(l)
    }

    /// PySceneDetect's frame score: the weighted mean of the components (frame 0 scores 0).
    public func score(_ i: Int, weights: ContentWeights) -> Double {
        guard !hue[i].isNaN else { return 0 }
        let total = weights.hue + weights.saturation + weights.luma
        return (weights.hue * hue[i] + weights.saturation * saturation[i] + weights.luma * luma[i]) / total
    }

    private static let magic: UInt32 = 0x5053_4331 // "PSC1"

    public func serialized() -> Data {
        var data = Data()
        withUnsafeBytes(of: Self.magic.littleEndian) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(count).littleEndian) { data.append(contentsOf: $0) }
        for array in [hue, saturation, luma] {
            for v in array { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        }
        return data
    }

    public init(serialized data: Data) throws {
        let bytes = [UInt8](data)
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
        guard bytes.count >= 12, (0..<4).reduce(UInt32(0), { $0 | UInt32(bytes[$1]) << (8 * $1) }) == Self.magic else { throw FrameMapError.badMagic }
        let n = Int(u64(4))
        guard bytes.count == 12 + n * 24 else { throw FrameMapError.truncated }
        func array(_ k: Int) -> [Double] { (0..<n).map { Double(bitPattern: u64(12 + (k * n + $0) * 8)) } }
        hue = array(0); saturation = array(1); luma = array(2)
    }
}

/// PySceneDetect's component weights (`edges` is not supported: it needs OpenCV's Canny).
public struct ContentWeights: Sendable, Codable, Equatable {
    public var hue = 1.0, saturation = 1.0, luma = 1.0
    public init(hue: Double = 1, saturation: Double = 1, luma: Double = 1) { self.hue = hue; self.saturation = saturation; self.luma = luma }
    public static let lumaOnly = ContentWeights(hue: 0, saturation: 0, luma: 1)
}

/// OpenCV's 8-bit BGR→HSV (`cvtColor(COLOR_BGR2HSV)`, H in 0..179), with its integer tables.
enum HSV {
    static let shift = 12
    static let sdiv: [Int] = (0..<256).map { $0 == 0 ? 0 : Int((Double(255 << shift) / Double($0)).rounded(.toNearestOrEven)) }
    static let hdiv: [Int] = (0..<256).map { $0 == 0 ? 0 : Int((Double(180 << shift) / Double(6 * $0)).rounded(.toNearestOrEven)) }

    static func convert(bgr: UnsafeBufferPointer<UInt8>, count: Int, into out: UnsafeMutableBufferPointer<UInt8>) {
        precondition(bgr.count >= count * 3 && out.count >= count * 3, "HSV.convert: \(bgr.count) bytes in, \(out.count) out, for \(count) pixels")
        let round = 1 << (shift - 1)
        sdiv.withUnsafeBufferPointer { sdiv in
            hdiv.withUnsafeBufferPointer { hdiv in
                for i in 0..<count {
                    let b = Int(bgr[3 * i]), g = Int(bgr[3 * i + 1]), r = Int(bgr[3 * i + 2])
                    let v = max(b, g, r)
                    let diff = v - min(b, g, r)
                    let s = (diff * sdiv[v] + round) >> shift
                    let hRaw = v == r ? g - b : (v == g ? b - r + 2 * diff : r - g + 4 * diff)
                    var h = (hRaw * hdiv[diff] + round) >> shift
                    if h < 0 { h += 180 }
                    out[3 * i] = UInt8(h); out[3 * i + 1] = UInt8(s); out[3 * i + 2] = UInt8(v)
                }
            }
        }
    }
}

/// OpenCV's `resize(INTER_LINEAR)` for 8-bit, 3-channel images, in its fixed-point form: 11-bit
/// coefficients, a horizontal pass into 32-bit sums, and OpenCV's vertical formula
/// `((b0·(S0>>4))>>16 + (b1·(S1>>4))>>16 + 2) >> 2` (imgproc/src/resize.cpp, `VResizeLinear`
/// for uchar), including its switch to `INTER_AREA` for an exact halving. Byte-identical to
/// OpenCV 4.9 (`ContentScorerTests`). Built once per geometry; `resize` allocates nothing.
final class LinearResizer {
    let sw: Int, sh: Int, dw: Int, dh: Int
    private let xIndex: [Int], xNext: [Int], xa0: [Int32], xa1: [Int32]
    private let yIndex: [Int], yNext: [Int], ya0: [Int], ya1: [Int]
    private var row0: [Int32], row1: [Int32]

    init(sourceWidth sw: Int, height sh: Int, targetWidth dw: Int, height dh: Int) {
        self.sw = sw; self.sh = sh; self.dw = dw; self.dh = dh
        func taps(_ s: Int, _ d: Int) -> (index: [Int], next: [Int], a0: [Int], a1: [Int]) {
            let scale = 1.0 / (Double(d) / Double(s))
            var index = [Int](), next = [Int](), a0 = [Int](), a1 = [Int]()
            for dx in 0..<d {
                var fx = Float((Double(dx) + 0.5) * scale - 0.5)
                var sx = Int(fx.rounded(.down))
                fx -= Float(sx)
                if sx < 0 { fx = 0; sx = 0 }
                if sx >= s - 1 { fx = 0; sx = s - 1 }
                index.append(sx); next.append(min(sx + 1, s - 1))
                a0.append(Int(((1 - fx) * 2048).rounded(.toNearestOrEven))); a1.append(Int((fx * 2048).rounded(.toNearestOrEven)))
            }
            return (index, next, a0, a1)
        }
        let x = taps(sw, dw), y = taps(sh, dh)
        xIndex = x.index.map { $0 * 3 }; xNext = x.next.map { $0 * 3 }; xa0 = x.a0.map(Int32.init); xa1 = x.a1.map(Int32.init)
        yIndex = y.index; yNext = y.next; ya0 = y.a0; ya1 = y.a1
        row0 = [Int32](repeating: 0, count: dw * 3); row1 = row0
        integral = x.a1.allSatisfy { $0 == 0 } && y.a1.allSatisfy { $0 == 0 }
        let halving = sw == 2 * dw && sh == 2 * dh
        neededRows = halving ? Array(0..<sh) : Array(Set(y.index + zip(y.next, y.a1).filter { $0.1 != 0 }.map(\.0))).sorted()
    }

    /// Every tap falls on a pixel (e.g. 1280×720 → 256×144): the resize is a plain gather.
    let integral: Bool
    /// The source rows the result depends on; the others need not be converted at all.
    let neededRows: [Int]

    func resize(_ src: UnsafeBufferPointer<UInt8>, into dst: UnsafeMutableBufferPointer<UInt8>) {
        precondition(src.count >= sw * sh * 3 && dst.count >= dw * dh * 3)
        if sw == 2 * dw && sh == 2 * dh { halve(src, into: dst); return }
        let (sw, dw, dh) = (self.sw, self.dw, self.dh)
        let s = src.baseAddress!, d = dst.baseAddress!
        if integral {
            // Weights (2048, 0) in both passes: ((2048·(2048v >> 4)) >> 16 + 2) >> 2 == v.
            xIndex.withUnsafeBufferPointer { xi in
                for y in 0..<dh {
                    let row = s + yIndex[y] * sw * 3, out = d + y * dw * 3
                    for x in 0..<dw { let p = row + xi[x]; out[3 * x] = p[0]; out[3 * x + 1] = p[1]; out[3 * x + 2] = p[2] }
                }
            }
            return
        }
        // Tap tables and row buffers as raw pointers: this loop runs for every pixel of every frame.
        xIndex.withUnsafeBufferPointer { xi in xNext.withUnsafeBufferPointer { xn in
        xa0.withUnsafeBufferPointer { a0 in xa1.withUnsafeBufferPointer { a1 in
        row0.withUnsafeMutableBufferPointer { r0b in row1.withUnsafeMutableBufferPointer { r1b in
            let r0 = r0b.baseAddress!, r1 = r1b.baseAddress!
            func horizontal(_ row: Int, _ out: UnsafeMutablePointer<Int32>) {
                let base = s + row * sw * 3
                for x in 0..<dw {
                    let p = base + xi[x], q = base + xn[x], w0 = a0[x], w1 = a1[x]
                    out[3 * x] = Int32(p[0]) &* w0 &+ Int32(q[0]) &* w1
                    out[3 * x + 1] = Int32(p[1]) &* w0 &+ Int32(q[1]) &* w1
                    out[3 * x + 2] = Int32(p[2]) &* w0 &+ Int32(q[2]) &* w1
                }
            }
            for y in 0..<dh {
                horizontal(yIndex[y], r0)
                horizontal(yNext[y], r1)
                let b0 = ya0[y], b1 = ya1[y], out = d + y * dw * 3
                for i in 0..<(dw * 3) {
                    let v = (((b0 &* Int(r0[i] >> 4)) >> 16) &+ ((b1 &* Int(r1[i] >> 4)) >> 16) &+ 2) >> 2
                    out[i] = UInt8(truncatingIfNeeded: min(max(v, 0), 255))
                }
            }
        } } } } } }
    }

    /// OpenCV uses INTER_AREA's fast path for an exact 2× reduction: the rounded mean of 2×2.
    private func halve(_ src: UnsafeBufferPointer<UInt8>, into dst: UnsafeMutableBufferPointer<UInt8>) {
        for y in 0..<dh {
            let top = 2 * y * sw * 3, bottom = top + sw * 3
            for x in 0..<dw {
                for c in 0..<3 {
                    let left = 6 * x + c
                    let sum = Int(src[top + left]) + Int(src[top + left + 3]) + Int(src[bottom + left]) + Int(src[bottom + left + 3])
                    dst[(y * dw + x) * 3 + c] = UInt8(truncatingIfNeeded: (sum + 2) >> 2)
                }
            }
        }
    }
}

/// Internal steps exposed for tests (not API).
public enum TestHooks {
    /// OpenCV's 8-bit BGR→HSV of a packed image.
    /// A scorer that converts whole frames (the reference behaviour row slicing must equal).
    public static func wholeFrameScorer(downscale: Int? = nil) -> ContentScorer { ContentScorer(downscale: downscale, rowSlicing: false) }

    /// OpenCV's `resize(INTER_LINEAR)` of a packed BGR image.
    public static func resizeLinear(_ bgr: [UInt8], width: Int, height: Int, to dw: Int, _ dh: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: dw * dh * 3)
        let r = LinearResizer(sourceWidth: width, height: height, targetWidth: dw, height: dh)
        bgr.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { r.resize(src, into: $0) } }
        return out
    }

    public static func hsv(_ bgr: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bgr.count)
        bgr.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { HSV.convert(bgr: b, count: bgr.count / 3, into: $0) } }
        return out
    }
}
