import CFFmpeg

/// Decoded pictures → packed 8-bit RGB or BGR with swscale (bicubic, FFmpeg's default BT.601
/// matrix), as OpenCV's FFmpeg backend converts; keeps its contexts between frames.
public final class PackedPictureConverter {
    public enum Order: Sendable { case rgb, bgr }
    public let order: Order
    private var whole: OpaquePointer?
    private var band: OpaquePointer?
    /// For the right edge of pictures whose width is not a multiple of 16 (see `convertRightEdge`).
    private var edgeWhole: OpaquePointer?
    private var edgeBand: OpaquePointer?
    private var edgeBuffer: [UInt8] = []
    private var input: (w: Int32, h: Int32, fmt: Int32)?
    static let edgeWidth: Int32 = 16

    public init(order: Order) { self.order = order }
    deinit { [whole, band, edgeWhole, edgeBand].forEach { sws_freeContext($0) } }

    /// Converts `frame` into `buffer` (resized as needed: width × (height + 1) × 3 + 64 bytes, the
    /// spare row because swscale's SIMD writers store whole vectors past the end of the last row).
    ///
    /// With `rows` (4:2:0 input only), only the 2-row bands holding those rows are converted, each
    /// as a 2-row picture of its own: swscale's unscaled 4:2:0 → packed RGB converter works on row
    /// pairs sharing one chroma row, so every converted row is bit-identical to a whole conversion.
    public func convert(_ frame: Frame, into buffer: inout [UInt8], rows: [Int]? = nil) throws {
        let f = frame.pointer.pointee
        try prepare(f)
        let size = Int(f.width) * (Int(f.height) + 1) * 3 + 64
        if buffer.count != size { buffer = [UInt8](repeating: 0, count: size) }
        let planes: [UnsafePointer<UInt8>?] = [f.data.0, f.data.1, f.data.2, f.data.3].map { $0.map { UnsafePointer<UInt8>($0) } }
        let strides = [f.linesize.0, f.linesize.1, f.linesize.2, f.linesize.3]
        let sliceable = frame.pixelFormat == AV_PIX_FMT_YUV420P || frame.pixelFormat == AV_PIX_FMT_YUVJ420P
        try buffer.withUnsafeMutableBufferPointer { out in
            var dstStride: [Int32] = [f.width * 3, 0, 0, 0]
            guard let rows, f.height % 2 == 0, sliceable else { return try convertWhole(f, into: out.baseAddress!) }
            var done = -1
            for row in rows where row / 2 * 2 > done {
                let top = row / 2 * 2
                let bandPlanes: [UnsafePointer<UInt8>?] = [planes[0].map { $0 + top * Int(strides[0]) },
                                                           planes[1].map { $0 + top / 2 * Int(strides[1]) },
                                                           planes[2].map { $0 + top / 2 * Int(strides[2]) }, nil]
                var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress! + top * Int(f.width) * 3, nil, nil, nil]
                try ff("sws_scale(packed RGB rows)", sws_scale(band, bandPlanes, strides, 0, 2, &dst, &dstStride))
                try convertRightEdge(f, top: top, rows: 2, into: out.baseAddress!)
                done = top
            }
        }
    }

    /// The whole picture as an `RGBImage` (`order` must be `.rgb`). The pixels are written straight
    /// into the image's storage (no zero-filling first: at 720p that alone costs a quarter of the
    /// conversion), with swscale's spare row in capacity beyond the image's bytes.
    public func image(of frame: Frame) throws -> RGBImage {
        precondition(order == .rgb, "RGBImage holds RGB")
        let f = frame.pointer.pointee
        try prepare(f)
        let count = frame.width * frame.height * 3
        var failure: (any Error)?
        let pixels = [UInt8](unsafeUninitializedCapacity: frame.width * (frame.height + 1) * 3 + 64) { out, initialized in
            do {
                try convertWhole(f, into: out.baseAddress!)
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return RGBImage(width: frame.width, height: frame.height, pixels: pixels)
    }

    /// The whole picture into `out` (width × (height + 1) × 3 + 64 bytes), right edge included.
    private func convertWhole(_ f: AVFrame, into out: UnsafeMutablePointer<UInt8>) throws {
        let planes: [UnsafePointer<UInt8>?] = [f.data.0, f.data.1, f.data.2, f.data.3].map { $0.map { UnsafePointer<UInt8>($0) } }
        let strides = [f.linesize.0, f.linesize.1, f.linesize.2, f.linesize.3]
        var dst: [UnsafeMutablePointer<UInt8>?] = [out, nil, nil, nil]
        var dstStride: [Int32] = [f.width * 3, 0, 0, 0]
        try ff("sws_scale(packed RGB)", sws_scale(whole, planes, strides, 0, f.height, &dst, &dstStride))
        try convertRightEdge(f, top: 0, rows: Int(f.height), into: out)
    }

    private func prepare(_ f: AVFrame) throws {
        let format = order == .rgb ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_BGR24
        if input == nil || input! != (f.width, f.height, f.format) {
            [whole, band, edgeWhole, edgeBand].forEach { sws_freeContext($0) }
            let source = AVPixelFormat(rawValue: f.format)
            whole = sws_getContext(f.width, f.height, source, f.width, f.height, format, SWS_BICUBIC, nil, nil, nil)
            band = sws_getContext(f.width, 2, source, f.width, 2, format, SWS_BICUBIC, nil, nil, nil)
            guard whole != nil, band != nil else { throw MediaError.allocation("SwsContext(packed RGB)") }
            edgeWhole = nil
            edgeBand = nil
            if Self.needsEdge(f) {
                edgeWhole = sws_getContext(Self.edgeWidth, f.height, source, Self.edgeWidth, f.height, format, SWS_BICUBIC, nil, nil, nil)
                edgeBand = sws_getContext(Self.edgeWidth, 2, source, Self.edgeWidth, 2, format, SWS_BICUBIC, nil, nil, nil)
                guard edgeWhole != nil, edgeBand != nil else { throw MediaError.allocation("SwsContext(packed RGB edge)") }
            }
            input = (f.width, f.height, f.format)
        }
    }

    /// swscale's SIMD YUV → packed RGB converters work on blocks of pixels and leave the last
    /// `width % 16` or so pixels of every row unconverted (seen at width 322: two black pixels per
    /// row, or whatever the buffer held). For planar 8-bit YUV pictures of such widths, the last 16
    /// columns are converted again as a picture of their own (a multiple of the block width, and
    /// the same per-pixel arithmetic) and copied over the row ends.
    static func needsEdge(_ f: AVFrame) -> Bool {
        guard f.width % edgeWidth != 0, f.width > edgeWidth, let d = av_pix_fmt_desc_get(AVPixelFormat(rawValue: f.format)) else { return false }
        let desc = d.pointee
        return (desc.flags & UInt64(AV_PIX_FMT_FLAG_PLANAR)) != 0 && (desc.flags & UInt64(AV_PIX_FMT_FLAG_RGB)) == 0
            && desc.nb_components >= 3 && desc.comp.0.depth == 8 && desc.comp.0.step == 1
    }

    private func convertRightEdge(_ f: AVFrame, top: Int, rows: Int, into out: UnsafeMutablePointer<UInt8>) throws {
        guard let context = rows == Int(f.height) && top == 0 ? edgeWhole : edgeBand, rows == Int(f.height) || rows == 2,
              let d = av_pix_fmt_desc_get(AVPixelFormat(rawValue: f.format)) else { return }
        let shiftW = Int(d.pointee.log2_chroma_w), shiftH = Int(d.pointee.log2_chroma_h)
        let x0 = ((Int(f.width) - Int(Self.edgeWidth)) >> shiftW) << shiftW
        let strides = [f.linesize.0, f.linesize.1, f.linesize.2, f.linesize.3]
        let planes: [UnsafePointer<UInt8>?] = [
            f.data.0.map { UnsafePointer($0 + top * Int(strides[0]) + x0) },
            f.data.1.map { UnsafePointer($0 + (top >> shiftH) * Int(strides[1]) + (x0 >> shiftW)) },
            f.data.2.map { UnsafePointer($0 + (top >> shiftH) * Int(strides[2]) + (x0 >> shiftW)) },
            f.data.3.map { UnsafePointer($0 + top * Int(strides[3]) + x0) },
        ]
        let rowBytes = Int(Self.edgeWidth) * 3
        let size = rowBytes * (rows + 1) + 64
        if edgeBuffer.count < size { edgeBuffer = [UInt8](repeating: 0, count: size) }
        try edgeBuffer.withUnsafeMutableBufferPointer { tmp in
            var dst: [UnsafeMutablePointer<UInt8>?] = [tmp.baseAddress, nil, nil, nil]
            var dstStride: [Int32] = [Int32(rowBytes), 0, 0, 0]
            try ff("sws_scale(packed RGB edge)", sws_scale(context, planes, strides, 0, Int32(rows), &dst, &dstStride))
            let width = Int(f.width)
            for r in 0..<rows {
                (out + ((top + r) * width + x0) * 3).update(from: tmp.baseAddress! + r * rowBytes, count: (width - x0) * 3)
            }
        }
    }
}
