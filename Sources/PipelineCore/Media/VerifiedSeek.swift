import CFFmpeg

/// Opens a source positioned so that reading on from there delivers a wanted video frame and the
/// audio from a wanted instant: the seek is checked, not trusted.
///
/// Why: a seek lands where the demuxer thinks it should, and demuxers differ. AVI refuses targets
/// before its first index entry (`EPERM`); MPEG-PS and MPEG-TS seek by a binary search over
/// timestamps and can land past the keyframe they were asked for, so the decoder's first picture
/// comes after the wanted frame and the audio starts late — a read would then deliver too few
/// frames, or silence where there is speech. So each candidate seek is probed on its own open
/// file (decode up to the first picture, read the first audio packet); when it landed after what
/// is wanted, the target moves further back; when every try fails, the read starts at the
/// beginning of the file (slow, never wrong). The same happens where the container stores no
/// presentation times for video (old AVIs): their frames are identified by decoding order only.
public struct VerifiedSeek {
    public var path: String
    public var videoStream: Int
    /// Best-effort timestamp (video time base, as decoded, before the timeline offset) of the first
    /// video frame the read needs; nil when the read decodes no video.
    public var videoTimestamp: Int64?
    /// Timestamp of the source's first decoded frame: a read that starts there is at the beginning.
    public var firstVideoTimestamp: Int64
    /// The audio stream, its timeline offset (its time base) and the timeline second the read's audio starts at.
    public var audio: (stream: Int, offset: Int64, seconds: Double)?
    /// Where to aim (video time base): the earlier of the video frame and the audio instant.
    public var target: Int64
    /// Margins before `target` tried in turn, in seconds.
    public static let margins: [Int64] = [1, 4, 16]

    public init(path: String, videoStream: Int, videoTimestamp: Int64?, firstVideoTimestamp: Int64,
                audio: (stream: Int, offset: Int64, seconds: Double)?, target: Int64) {
        self.path = path
        self.videoStream = videoStream
        self.videoTimestamp = videoTimestamp
        self.firstVideoTimestamp = firstVideoTimestamp
        self.audio = audio
        self.target = target
    }

    /// The opened demuxer, and whether it was moved by a seek (false: it reads from the start).
    public func open() throws -> (demuxer: Demuxer, seeked: Bool) {
        for margin in Self.margins {
            let probe = try Demuxer(path: path)
            let tb = Rational(probe.stream(videoStream).pointee.time_base)
            let (aim, overflow) = target.subtractingReportingOverflow(rescale(margin, from: Rational(1, 1), to: tb))
            // Nothing to skip: the beginning is before the aim (or the wanted frame has no timestamp).
            if overflow || aim <= firstVideoTimestamp { break }
            guard probe.seek(stream: videoStream, to: aim) else { break }
            let landing = try landing(of: probe)
            if landing == .unmatchable { break }
            if landing == .late { continue }
            // The same seek on a fresh file lands in the same place (the probe's reading may have
            // added index entries that would move it).
            let demuxer = try Demuxer(path: path)
            if demuxer.seek(stream: videoStream, to: aim) { return (demuxer, true) }
            break
        }
        return (try Demuxer(path: path), false)
    }

    enum Landing { case inTime, late, unmatchable }

    /// Whether reading on from `demuxer`'s position delivers the wanted frame and audio instant.
    func landing(of demuxer: Demuxer) throws -> Landing {
        demuxer.discardAll(except: Set([videoTimestamp != nil ? videoStream : nil, audio?.stream].compactMap { $0 }))
        let decoder = try videoTimestamp.map { _ in try CodecDecoder(stream: demuxer.stream(videoStream), threads: 1) }
        var videoInTime: Bool? = videoTimestamp == nil ? true : nil
        var audioInTime: Bool? = audio == nil ? true : nil
        let packet = try Packet(), frame = try Frame()
        func look(at frame: Frame) {
            // A picture decoded without its references (open GOPs) says nothing about where we are.
            guard !frame.isCorrupt, frame.bestEffortTimestamp != cffmpeg_nopts() else { return }
            videoInTime = frame.bestEffortTimestamp <= videoTimestamp! || frame.bestEffortTimestamp <= firstVideoTimestamp
        }
        // A GOP of a few seconds at 60 fps is a few hundred packets; past this the seek is no help.
        var packets = 0
        while videoInTime == nil || audioInTime == nil, packets < 4_000 {
            packets += 1
            guard (try? demuxer.read(into: packet)) == .ok else {
                // The end of the file before the wanted frame: the seek overshot it.
                if videoInTime == nil, let decoder {
                    _ = try? decoder.send(nil)
                    while videoInTime == nil, (try? decoder.receive(into: frame)) == .ok { look(at: frame) }
                }
                return videoInTime == true && audioInTime != false ? .inTime : .late
            }
            if packet.streamIndex == videoStream, videoInTime == nil, let decoder {
                // Without presentation times in the container (AVI with B-frames, packed or not), a
                // frame's timestamp is guessed from the decoding order and the decoder's delay, which
                // differ after a seek: the frames cannot be matched with the scan's, so no seek.
                if packet.pts == nil { return .unmatchable }
                guard (try? decoder.send(packet)) != nil else { continue }
                while videoInTime == nil, (try? decoder.receive(into: frame)) == .ok { look(at: frame) }
            } else if let audio, packet.streamIndex == audio.stream, audioInTime == nil, let pts = packet.pts {
                let st = demuxer.stream(audio.stream)
                let seconds = Double(pts + audio.offset) * Rational(st.pointee.time_base).seconds
                let atStreamStart = st.pointee.start_time != cffmpeg_nopts() && pts <= st.pointee.start_time
                audioInTime = seconds <= audio.seconds + 1e-6 || atStreamStart
            }
        }
        return videoInTime == true && audioInTime == true ? .inTime : .late
    }
}
