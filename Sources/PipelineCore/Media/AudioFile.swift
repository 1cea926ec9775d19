import CFFmpeg

/// The whole audio of a media file (its best audio stream), as mono float samples at `sampleRate`.
public enum AudioFile {
    public static func samples(_ path: String, sampleRate: Int = 16_000) throws -> [Float] {
        let demuxer = try Demuxer(path: path)
        guard let stream = demuxer.bestStream(AVMEDIA_TYPE_AUDIO) else { throw MediaError.noStream(kind: "audio", path: path) }
        demuxer.discardAll(except: [stream])
        let decoder = try CodecDecoder(stream: demuxer.stream(stream), threads: 1)
        let resampler = Resampler(outputRate: sampleRate)
        let frame = try Frame(), packet = try Packet()
        var out: [Float] = []
        func drain() throws {
            while try decoder.receive(into: frame) == .ok { out += try resampler.convert(frame) }
        }
        while try demuxer.read(into: packet) == .ok {
            guard packet.streamIndex == stream else { continue }
            while try decoder.send(packet) == .again { try drain() }
            try drain()
        }
        _ = try decoder.send(nil)
        try drain()
        out += try resampler.flush()
        return out
    }
}
