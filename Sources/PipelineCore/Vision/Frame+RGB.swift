import CFFmpeg

extension Frame {
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
