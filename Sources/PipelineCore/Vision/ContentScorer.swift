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
    private var converter: OpaquePointer?
    private var converterInput: (w: Int32, h: Int32, fmt: Int32)?
    private var bgr: [UInt8] = []
    private var resized: [UInt8] = []
    private var previous: [UInt8] = []
    private var current: [UInt8] = []

    public init(downscale: Int? = nil) { self.downscale = downscale }
    deinit { sws_freeContext(converter) }

    /// The scorer's settings as they enter stage fingerprints.
    public var fingerprint: String { Fingerprint.of("content-hsv-v1", downscale.map(String.init) ?? "auto") }

    public func begin(video: StreamInfo) { rotation = video.rotationDegrees ?? 0 }

    public func process(_ frame: Frame, index: Int) throws {
        let w = frame.width, h = frame.height
        try convertToBGR(frame)
        // The factor follows the width OpenCV reports, which is after autorotation.
        let displayWidth = rotation % 180 == 0 ? w : h
        let factor = downscale ?? max(1, displayWidth / 256)
        var pixels: UnsafeBufferPointer<UInt8>
        var count: Int
        if factor > 1 {
            let dw = Int((Double(w) / Double(factor)).rounded(.toNearestOrEven))
            let dh = Int((Double(h) / Double(factor)).rounded(.toNearestOrEven))
            Resize.linear(bgr, width: w, height: h, into: &resized, width: dw, height: dh)
            count = dw * dh
            pixels = resized.withUnsafeBufferPointer { $0 }
        } else {
            count = w * h
            pixels = bgr.withUnsafeBufferPointer { $0 }
        }
        if current.count != count * 3 { current = [UInt8](repeating: 0, count: count * 3) }
        current.withUnsafeMutableBufferPointer { HSV.convert(bgr: pixels, count: count, into: $0) }
        _ = pixels
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

    /// YUV (or anything) → packed BGR24, as OpenCV's FFmpeg backend converts.
    private func convertToBGR(_ frame: Frame) throws {
        let f = frame.pointer.pointee
        if converterInput == nil || converterInput! != (f.width, f.height, f.format) {
            sws_freeContext(converter)
            converter = sws_getContext(f.width, f.height, AVPixelFormat(rawValue: f.format), f.width, f.height, AV_PIX_FMT_BGR24,
                                       SWS_BICUBIC, nil, nil, nil)
            guard converter != nil else { throw MediaError.allocation("SwsContext(BGR24)") }
            converterInput = (f.width, f.height, f.format)
        }
        let size = Int(f.width) * Int(f.height) * 3
        if bgr.count != size { bgr = [UInt8](repeating: 0, count: size) }
        try withUnsafePointer(to: frame.pointer.pointee.data) { src in
            try withUnsafePointer(to: frame.pointer.pointee.linesize) { stride in
                try bgr.withUnsafeMutableBufferPointer { out in
                    var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
                    var dstStride: [Int32] = [f.width * 3, 0, 0, 0]
                    let s = UnsafeRawPointer(src).assumingMemoryBound(to: UnsafePointer<UInt8>?.self)
                    let ss = UnsafeRawPointer(stride).assumingMemoryBound(to: Int32.self)
                    try ff("sws_scale(BGR24)", sws_scale(converter, s, ss, 0, f.height, &dst, &dstStride))
                }
            }
        }
    }
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

/// OpenCV's `resize(INTER_LINEAR)` for 8-bit, 3-channel images, in its fixed-point form
/// (11-bit coefficients, rounded once at the end), including its switch to `INTER_AREA` for an
/// exact halving.
enum Resize {
    static func linear(_ src: [UInt8], width sw: Int, height sh: Int, into dst: inout [UInt8], width dw: Int, height dh: Int) {
        if dst.count != dw * dh * 3 { dst = [UInt8](repeating: 0, count: dw * dh * 3) }
        if sw == 2 * dw && sh == 2 * dh {
            for y in 0..<dh {
                let top: Int = 2 * y * sw * 3, bottom: Int = top + sw * 3
                for x in 0..<dw {
                    for c in 0..<3 {
                        let left: Int = 6 * x + c
                        let sum: Int = Int(src[top + left]) + Int(src[top + left + 3]) + Int(src[bottom + left]) + Int(src[bottom + left + 3])
                        dst[(y * dw + x) * 3 + c] = UInt8((sum + 2) >> 2)
                    }
                }
            }
            return
        }
        func taps(_ s: Int, _ d: Int) -> [(index: Int, a0: Int, a1: Int)] {
            let scale = 1.0 / (Double(d) / Double(s))
            return (0..<d).map { dx in
                var fx = Float((Double(dx) + 0.5) * scale - 0.5)
                var sx = Int(fx.rounded(.down))
                fx -= Float(sx)
                if sx < 0 { fx = 0; sx = 0 }
                if sx >= s - 1 { fx = 0; sx = s - 1 }
                let a0 = Int(((1 - fx) * 2048).rounded(.toNearestOrEven)), a1 = Int((fx * 2048).rounded(.toNearestOrEven))
                return (sx, a0, a1)
            }
        }
        let xs = taps(sw, dw), ys = taps(sh, dh)
        var row0 = [Int](repeating: 0, count: dw * 3), row1 = row0
        func horizontal(_ y: Int, into row: inout [Int]) {
            for (x, t) in xs.enumerated() {
                let next = min(t.index + 1, sw - 1)
                for c in 0..<3 { row[x * 3 + c] = Int(src[(y * sw + t.index) * 3 + c]) * t.a0 + Int(src[(y * sw + next) * 3 + c]) * t.a1 }
            }
        }
        for (y, t) in ys.enumerated() {
            horizontal(t.index, into: &row0)
            horizontal(min(t.index + 1, sh - 1), into: &row1)
            for i in 0..<(dw * 3) {
                dst[y * dw * 3 + i] = UInt8(clamping: (t.a0 * row0[i] + t.a1 * row1[i] + (1 << 21)) >> 22)
            }
        }
    }
}

/// Internal steps exposed for tests (not API).
public enum TestHooks {
    /// OpenCV's 8-bit BGR→HSV of a packed image.
    public static func hsv(_ bgr: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: bgr.count)
        bgr.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { HSV.convert(bgr: b, count: bgr.count / 3, into: $0) } }
        return out
    }
}
