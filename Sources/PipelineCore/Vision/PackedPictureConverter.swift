import CFFmpeg

/// Decoded pictures → packed 8-bit RGB or BGR with swscale (bicubic, FFmpeg's default BT.601
/// matrix), as OpenCV's FFmpeg backend converts; keeps its contexts between frames.
public final class PackedPictureConverter {
    public enum Order: Sendable { case rgb, bgr }
    public let order: Order
    private var whole: OpaquePointer?
    private var band: OpaquePointer?
    private var input: (w: Int32, h: Int32, fmt: Int32)?

    public init(order: Order) { self.order = order }
    deinit { sws_freeContext(whole); sws_freeContext(band) }

    /// Converts `frame` into `buffer` (resized as needed: width × (height + 1) × 3 + 64 bytes, the
    /// spare row because swscale's SIMD writers store whole vectors past the end of the last row).
    ///
    /// With `rows` (4:2:0 input only), only the 2-row bands holding those rows are converted, each
    /// as a 2-row picture of its own: swscale's unscaled 4:2:0 → packed RGB converter works on row
    /// pairs sharing one chroma row, so every converted row is bit-identical to a whole conversion.
    public func convert(_ frame: Frame, into buffer: inout [UInt8], rows: [Int]? = nil) throws {
        let f = frame.pointer.pointee
        let format = order == .rgb ? AV_PIX_FMT_RGB24 : AV_PIX_FMT_BGR24
        if input == nil || input! != (f.width, f.height, f.format) {
            sws_freeContext(whole)
            sws_freeContext(band)
            whole = sws_getContext(f.width, f.height, AVPixelFormat(rawValue: f.format), f.width, f.height, format, SWS_BICUBIC, nil, nil, nil)
            band = sws_getContext(f.width, 2, AVPixelFormat(rawValue: f.format), f.width, 2, format, SWS_BICUBIC, nil, nil, nil)
            guard whole != nil, band != nil else { throw MediaError.allocation("SwsContext(packed RGB)") }
            input = (f.width, f.height, f.format)
        }
        let size = Int(f.width) * (Int(f.height) + 1) * 3 + 64
        if buffer.count != size { buffer = [UInt8](repeating: 0, count: size) }
        let planes: [UnsafePointer<UInt8>?] = [f.data.0, f.data.1, f.data.2, f.data.3].map { $0.map { UnsafePointer<UInt8>($0) } }
        let strides = [f.linesize.0, f.linesize.1, f.linesize.2, f.linesize.3]
        let sliceable = frame.pixelFormat == AV_PIX_FMT_YUV420P || frame.pixelFormat == AV_PIX_FMT_YUVJ420P
        try buffer.withUnsafeMutableBufferPointer { out in
            var dstStride: [Int32] = [f.width * 3, 0, 0, 0]
            guard let rows, f.height % 2 == 0, sliceable else {
                var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
                try ff("sws_scale(packed RGB)", sws_scale(whole, planes, strides, 0, f.height, &dst, &dstStride))
                return
            }
            var done = -1
            for row in rows where row / 2 * 2 > done {
                let top = row / 2 * 2
                let bandPlanes: [UnsafePointer<UInt8>?] = [planes[0].map { $0 + top * Int(strides[0]) },
                                                           planes[1].map { $0 + top / 2 * Int(strides[1]) },
                                                           planes[2].map { $0 + top / 2 * Int(strides[2]) }, nil]
                var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress! + top * Int(f.width) * 3, nil, nil, nil]
                try ff("sws_scale(packed RGB rows)", sws_scale(band, bandPlanes, strides, 0, 2, &dst, &dstStride))
                done = top
            }
        }
    }

    /// The whole picture as an `RGBImage` (`order` must be `.rgb`).
    public func image(of frame: Frame) throws -> RGBImage {
        precondition(order == .rgb, "RGBImage holds RGB")
        var buffer: [UInt8] = []
        try convert(frame, into: &buffer)
        buffer.removeLast(buffer.count - frame.width * frame.height * 3)
        return RGBImage(width: frame.width, height: frame.height, pixels: buffer)
    }
}
