import CFFmpeg

/// An owning `AVFrame`. `@unchecked Sendable`: none. A frame belongs to the thread that decodes it.
public final class Frame {
    public let pointer: UnsafeMutablePointer<AVFrame>

    public init() throws(MediaError) {
        guard let f = av_frame_alloc() else { throw .allocation("AVFrame") }
        pointer = f
    }

    deinit {
        var f: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&f)
    }

    /// A new frame referencing the same buffers (no pixel copy).
    public func reference() throws -> Frame {
        let copy = try Frame()
        try ff("av_frame_ref", av_frame_ref(copy.pointer, pointer))
        return copy
    }

    public func unref() { av_frame_unref(pointer) }

    public var width: Int { Int(pointer.pointee.width) }
    public var height: Int { Int(pointer.pointee.height) }
    public var bestEffortTimestamp: Int64 { pointer.pointee.best_effort_timestamp }
    public var duration: Int64 { pointer.pointee.pkt_duration }
    public var sampleCount: Int { Int(pointer.pointee.nb_samples) }
    public var pixelFormat: AVPixelFormat { AVPixelFormat(rawValue: pointer.pointee.format) }
    /// True when the decoder flagged this frame as damaged (concealed errors).
    public var isCorrupt: Bool { (pointer.pointee.flags & AV_FRAME_FLAG_CORRUPT) != 0 || pointer.pointee.decode_error_flags != 0 }

    /// Adler-32 of the picture as FFmpeg's `framecrc` muxer computes it (planes packed with
    /// alignment 1), so a frame can be compared with `ffmpeg -f framecrc` output.
    public func pictureChecksum() throws -> UInt32 {
        let fmt = pixelFormat
        let size = av_image_get_buffer_size(fmt, pointer.pointee.width, pointer.pointee.height, 1)
        try ff("av_image_get_buffer_size", size)
        var buffer = [UInt8](repeating: 0, count: Int(size))
        let written = withUnsafeMutablePointer(to: &pointer.pointee.data) { dataTuple in
            withUnsafeMutablePointer(to: &pointer.pointee.linesize) { linesizeTuple in
                dataTuple.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 8) { data in
                    linesizeTuple.withMemoryRebound(to: Int32.self, capacity: 8) { lines in
                        av_image_copy_to_buffer(&buffer, size, data, lines, fmt,
                                                pointer.pointee.width, pointer.pointee.height, 1)
                    }
                }
            }
        }
        try ff("av_image_copy_to_buffer", written)
        return UInt32(av_adler32_update(0, buffer, Int(size)))
    }
}

/// An owning `AVPacket`.
public final class Packet {
    public let pointer: UnsafeMutablePointer<AVPacket>

    public init() throws(MediaError) {
        guard let p = av_packet_alloc() else { throw .allocation("AVPacket") }
        pointer = p
    }

    deinit {
        var p: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&p)
    }

    /// A new packet referencing the same data (no copy).
    public func reference() throws -> Packet {
        let copy = try Packet()
        try ff("av_packet_ref", av_packet_ref(copy.pointer, pointer))
        return copy
    }

    public func unref() { av_packet_unref(pointer) }
    public var streamIndex: Int { Int(pointer.pointee.stream_index) }
    public var size: Int { Int(pointer.pointee.size) }
    /// Presentation timestamp in the stream's time base, nil when the container gives none.
    public var pts: Int64? { pointer.pointee.pts == Int64(bitPattern: 0x8000000000000000) ? nil : pointer.pointee.pts }
}
