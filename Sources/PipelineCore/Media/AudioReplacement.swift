import CFFmpeg

/// A copy of a clip with other audio: the video stream's packets are copied as they are (no
/// second generation of compression) and `audio` becomes its AAC mono track.
public enum AudioReplacement {
    public static func write(video: String, audio: [Float], sampleRate: Int, to path: String) throws {
        let demuxer = try Demuxer(path: video)
        guard let index = demuxer.pipelineStreams.video else { throw MediaError.noStream(kind: "video", path: video) }
        demuxer.discardAll(except: [index])
        let stream = demuxer.stream(index)
        let timeBase = Rational(stream.pointee.time_base)
        let writer = try ClipWriter(path: path, copyingVideoFrom: stream, sampleRate: sampleRate)
        let packet = try Packet()
        // Audio goes in one frame's worth after each video packet, so the file is interleaved as it
        // is written rather than by the muxer buffering the whole video.
        let rate = Double(stream.pointee.avg_frame_rate.num) / Double(max(1, stream.pointee.avg_frame_rate.den))
        let chunk = rate > 0 ? Int((Double(sampleRate) / rate).rounded()) : sampleRate / 25
        var next = 0
        while try demuxer.read(into: packet) == .ok {
            guard packet.streamIndex == index else { continue }
            try writer.writeVideoPacket(packet, timeBase: timeBase)
            if next < audio.count {
                try writer.writeAudio(Array(audio[next..<min(audio.count, next + chunk)]))
                next += chunk
            }
        }
        if next < audio.count { try writer.writeAudio(Array(audio[next...])) }
        try writer.finish()
    }
}
