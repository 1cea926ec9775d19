import CFFmpeg

extension Frame {
    /// The picture as packed RGB (swscale, bicubic, FFmpeg's default BT.601 matrix).
    public func rgbImage() throws -> RGBImage {
        let f = pointer.pointee
        guard let sws = sws_getContext(f.width, f.height, AVPixelFormat(rawValue: f.format), f.width, f.height, AV_PIX_FMT_RGB24,
                                       SWS_BICUBIC, nil, nil, nil) else { throw MediaError.allocation("SwsContext(RGB24)") }
        defer { sws_freeContext(sws) }
        // One spare row: swscale's SIMD writers may store past the end of the last row.
        var buffer = [UInt8](repeating: 0, count: Int(f.width) * (Int(f.height) + 1) * 3 + 64)
        try withUnsafePointer(to: pointer.pointee.data) { src in
            try withUnsafePointer(to: pointer.pointee.linesize) { stride in
                try buffer.withUnsafeMutableBufferPointer { out in
                    var dst: [UnsafeMutablePointer<UInt8>?] = [out.baseAddress, nil, nil, nil]
                    var dstStride: [Int32] = [f.width * 3, 0, 0, 0]
                    try ff("sws_scale(RGB24)", sws_scale(sws, UnsafeRawPointer(src).assumingMemoryBound(to: UnsafePointer<UInt8>?.self),
                                                         UnsafeRawPointer(stride).assumingMemoryBound(to: Int32.self), 0, f.height, &dst, &dstStride))
                }
            }
        }
        buffer.removeLast(buffer.count - Int(f.width) * Int(f.height) * 3)
        return RGBImage(width: Int(f.width), height: Int(f.height), pixels: buffer)
    }

    /// A new RGB24 frame holding `image` (for `ClipWriter`, which converts it to yuv420p).
    public convenience init(rgb image: RGBImage) throws {
        try self.init()
        pointer.pointee.width = Int32(image.width)
        pointer.pointee.height = Int32(image.height)
        pointer.pointee.format = AV_PIX_FMT_RGB24.rawValue
        try ff("av_frame_get_buffer(RGB24)", av_frame_get_buffer(pointer, 0))
        let stride = Int(pointer.pointee.linesize.0)
        let base = pointer.pointee.data.0!
        image.pixels.withUnsafeBufferPointer { px in
            for y in 0..<image.height {
                (base + y * stride).update(from: px.baseAddress! + y * image.width * 3, count: image.width * 3)
            }
        }
    }
}
