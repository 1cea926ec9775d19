import CFFmpeg

/// libswresample converting decoded audio to mono float samples at one rate (16 kHz for the
/// pipeline). It re-initialises itself when the input format changes mid-stream, which happens in
/// concatenated or broadcast files.
public final class Resampler {
    public let outputRate: Int
    private var context: OpaquePointer?
    private var inputSignature: (format: Int32, rate: Int32, channels: Int32, order: UInt32, mask: UInt64)?

    public init(outputRate: Int) { self.outputRate = outputRate }

    deinit { swr_free(&context) }

    /// Converts one decoded frame; returns the samples available so far (the resampler keeps a
    /// few samples of filter history until `flush`).
    public func convert(_ frame: Frame) throws(MediaError) -> [Float] {
        let f = frame.pointer
        let signature = (f.pointee.format, f.pointee.sample_rate, f.pointee.ch_layout.nb_channels,
                         f.pointee.ch_layout.order.rawValue, f.pointee.ch_layout.u.mask)
        var flushed: [Float] = []
        if inputSignature == nil || inputSignature! != signature {
            if context != nil { flushed = try flush() }
            try configure(for: frame)
            inputSignature = signature
        }
        let inCount = Int32(f.pointee.nb_samples)
        let capacity = Int(swr_get_out_samples(context, inCount))
        var out = [Float](repeating: 0, count: max(capacity, 0) + 16)
        let produced = try out.withUnsafeMutableBufferPointer { buffer throws(MediaError) -> Int32 in
            var outPlane: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt8.self)
            let inData = withUnsafePointer(to: &f.pointee.extended_data) { $0.pointee }
            let n = inData!.withMemoryRebound(to: UnsafePointer<UInt8>?.self, capacity: 1) { inPlanes in
                swr_convert(context, &outPlane, Int32(buffer.count), inPlanes, inCount)
            }
            return try ff("swr_convert", n)
        }
        out.removeSubrange(Int(produced)...)
        return flushed.isEmpty ? out : flushed + out
    }

    /// Drains the samples still held in the resampler's filter.
    public func flush() throws(MediaError) -> [Float] {
        guard let context else { return [] }
        var all: [Float] = []
        while true {
            var out = [Float](repeating: 0, count: 4096)
            let produced = try out.withUnsafeMutableBufferPointer { buffer throws(MediaError) -> Int32 in
                var outPlane: UnsafeMutablePointer<UInt8>? = UnsafeMutableRawPointer(buffer.baseAddress!).assumingMemoryBound(to: UInt8.self)
                return try ff("swr_convert(flush)", swr_convert(context, &outPlane, Int32(buffer.count), nil, 0))
            }
            if produced <= 0 { break }
            all.append(contentsOf: out[0..<Int(produced)])
        }
        return all
    }

    private func configure(for frame: Frame) throws(MediaError) {
        swr_free(&context)
        var outLayout = AVChannelLayout()
        av_channel_layout_default(&outLayout, 1)
        var inLayout = AVChannelLayout()
        if frame.pointer.pointee.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC {
            av_channel_layout_default(&inLayout, frame.pointer.pointee.ch_layout.nb_channels)
        } else {
            try ff("av_channel_layout_copy", av_channel_layout_copy(&inLayout, &frame.pointer.pointee.ch_layout))
        }
        defer { av_channel_layout_uninit(&inLayout); av_channel_layout_uninit(&outLayout) }
        try ff("swr_alloc_set_opts2", swr_alloc_set_opts2(
            &context, &outLayout, AV_SAMPLE_FMT_FLT, Int32(outputRate),
            &inLayout, AVSampleFormat(rawValue: frame.pointer.pointee.format), frame.pointer.pointee.sample_rate, 0, nil))
        try ff("swr_init", swr_init(context))
    }
}
