import CFFmpeg

/// Reads a source as the normalised 25 fps / 16 kHz mono stream that stage 2 planned, without a
/// normalised copy on disk.
///
/// Video: the stored `FrameMap` says how many timeline slots each decoded source frame fills, so
/// the reader yields exactly the frames `ffmpeg -vf fps=25` would. Audio: libswresample to mono at
/// `sampleRate`, placed on the same timeline (sample 0 is the start of timeline frame 0), padded with
/// silence where the audio starts late and trimmed where it starts early.
public final class NormalizedReader {
    public let path: String
    public let frameMap: FrameMap
    public let sampleRate: Int
    public let decoderThreads: Int
    /// First timeline index of each source frame (prefix sums of `repeats`).
    private let firstSlot: [Int]

    public init(path: String, frameMap: FrameMap, sampleRate: Int = 16_000, decoderThreads: Int = 0) {
        self.path = path
        self.frameMap = frameMap
        self.sampleRate = sampleRate
        self.decoderThreads = decoderThreads
        var slots: [Int] = []
        slots.reserveCapacity(frameMap.repeats.count)
        var n = 0
        for r in frameMap.repeats { slots.append(n); n += Int(r) }
        firstSlot = slots
    }

    public var frameCount: Int { frameMap.outputFrameCount }

    /// The clockwise rotation the source's display matrix asks for (0 when none): frames come out
    /// as stored, and writers or face detection turn them upright with this.
    public func rotationDegrees() throws -> Int {
        let demuxer = try Demuxer(path: path)
        return demuxer.pipelineStreams.video.flatMap { demuxer.info($0).rotationDegrees } ?? 0
    }
    public var samplesPerFrame: Double { Double(sampleRate) * frameMap.outputRate.inverted.seconds }

    /// Reads timeline frames `range` (all by default) and the audio under them in one demux pass.
    /// - Parameters:
    ///   - video: called with each timeline index and its frame, in order; the frame is only valid
    ///     during the call. Pass nil to skip video decoding.
    ///   - audio: called with consecutive chunks of samples covering exactly the samples of
    ///     `range` (`range.count × sampleRate / 25`), in order. Pass nil to skip audio decoding.
    public func read(frames range: Range<Int>? = nil,
                     video: ((Int, Frame) throws -> Void)?,
                     audio: (([Float]) throws -> Void)?) throws {
        let range = range ?? 0..<frameCount
        precondition(range.lowerBound >= 0 && range.upperBound <= frameCount, "frame range \(range) outside 0..<\(frameCount)")
        if range.isEmpty { return }
        let demuxer = try Demuxer(path: path)
        let streams = demuxer.pipelineStreams
        guard let vIndex = streams.video else { throw MediaError.noStream(kind: "video", path: path) }
        let aIndex = audio == nil ? nil : streams.audio
        let used = [streams.video, streams.audio].compactMap { $0 }
        demuxer.discardAll(except: Set([video == nil ? nil : vIndex, aIndex].compactMap { $0 }))

        // Source frames whose slots intersect the range.
        let firstSource = lastSourceIndex(fillingSlotAtOrBefore: range.lowerBound)
        let startSeconds = frameMap.startSeconds + Double(range.lowerBound) * frameMap.outputRate.inverted.seconds
        if range.lowerBound > 0 {
            // Seek a little before both the video frame and the audio we need; decoding skips forward.
            let videoTarget = frameMap.sourcePts[firstSource]
            let margin = rescale(1, from: Rational(1, 1), to: frameMap.timeBase)
            let audioTarget = rescale(Int64((startSeconds * 1_000_000).rounded(.down)), from: Rational(1, 1_000_000), to: frameMap.timeBase) - frameMap.timestampOffset
            try demuxer.seek(stream: vIndex, to: min(videoTarget, audioTarget) - margin)
        }

        // After a seek, decoding runs forward from a keyframe: frames shown before this timestamp are
        // only decoded for the frames that reference them.
        let prerollEnd = range.lowerBound > 0 ? frameMap.sourcePts[firstSource] : nil
        var videoTrack = video.map { VideoCursor(reader: self, range: range, firstSource: firstSource, body: $0) }
        let videoDecoder = try video.map { _ in try CodecDecoder(stream: demuxer.stream(vIndex), threads: decoderThreads) }
        var audioCursor = try aIndex.map { try AudioCursor(demuxer: demuxer, stream: $0, offset: demuxer.timelineOffset(stream: $0, streams: used), sampleRate: sampleRate, startSeconds: startSeconds,
                                                             sampleCount: Int((Double(range.count) * samplesPerFrame).rounded()), body: audio!) }
        let frame = try Frame()
        let packet = try Packet()

        func drainVideo() throws {
            guard let videoDecoder else { return }
            while try videoDecoder.receive(into: frame) == .ok { try videoTrack!.consume(frame) }
        }
        while videoTrack?.done == false || audioCursor?.done == false {
            guard try demuxer.read(into: packet) == .ok else { break }
            if packet.streamIndex == vIndex, let videoDecoder, videoTrack?.done == false {
                if let preroll = prerollEnd, videoTrack?.synced == false {
                    // Between the keyframe and the first wanted frame only reference frames matter
                    // (a non-reference frame before it is neither shown nor predicted from).
                    videoDecoder.skipsNonReferenceFrames = packet.pts.map { $0 < preroll } ?? false
                } else if videoDecoder.skipsNonReferenceFrames {
                    videoDecoder.skipsNonReferenceFrames = false
                }
                while try videoDecoder.send(packet) == .again { try drainVideo() }
                try drainVideo()
            } else if packet.streamIndex == aIndex, audioCursor?.done == false {
                try audioCursor!.feed(packet)
            }
        }
        if let videoDecoder, videoTrack?.done == false {
            _ = try videoDecoder.send(nil)
            try drainVideo()
        }
        try audioCursor?.finish()
        if let videoTrack, !videoTrack.done {
            throw MediaError.sourceChanged(path: path, detail: "decoding ended at timeline frame \(videoTrack.nextSlot) of \(range.upperBound)")
        }
    }

    /// All samples under `range` (or the whole timeline), as one array.
    public func audioSamples(frames range: Range<Int>? = nil) throws -> [Float] {
        var all: [Float] = []
        try read(frames: range, video: nil) { all.append(contentsOf: $0) }
        return all
    }

    private func lastSourceIndex(fillingSlotAtOrBefore slot: Int) -> Int {
        // Binary search for the last source frame with repeats > 0 whose first slot ≤ slot.
        var lo = 0, hi = firstSlot.count - 1, best = 0
        while lo <= hi {
            let mid = (lo + hi) / 2
            if firstSlot[mid] <= slot { best = mid; lo = mid + 1 } else { hi = mid - 1 }
        }
        while best > 0 && frameMap.repeats[best] == 0 { best -= 1 }
        return best
    }

    /// Walks decoded source frames against the frame map, emitting each once per slot it fills.
    private struct VideoCursor {
        let reader: NormalizedReader
        let range: Range<Int>
        var sourceIndex: Int
        var nextSlot: Int
        let body: (Int, Frame) throws -> Void
        var synced = false
        var done: Bool { nextSlot >= range.upperBound }

        init(reader: NormalizedReader, range: Range<Int>, firstSource: Int, body: @escaping (Int, Frame) throws -> Void) {
            self.reader = reader
            self.range = range
            self.sourceIndex = firstSource
            self.nextSlot = range.lowerBound
            self.body = body
            self.synced = range.lowerBound == 0
            if synced { self.sourceIndex = 0 }
        }

        mutating func consume(_ frame: Frame) throws {
            if done { return }
            let map = reader.frameMap
            let pts = frame.bestEffortTimestamp
            if !synced {
                // After a seek, skip frames until the one the map expects first.
                guard pts == map.sourcePts[sourceIndex] else { return }
                synced = true
            }
            guard sourceIndex < map.sourcePts.count else {
                throw MediaError.sourceChanged(path: reader.path, detail: "more frames than the \(map.sourcePts.count) scanned")
            }
            guard pts == map.sourcePts[sourceIndex] else {
                throw MediaError.sourceChanged(path: reader.path, detail: "source frame \(sourceIndex) has timestamp \(pts), scanned \(map.sourcePts[sourceIndex])")
            }
            let first = reader.firstSlot[sourceIndex]
            let last = first + Int(map.repeats[sourceIndex])
            sourceIndex += 1
            var slot = max(first, nextSlot)
            while slot < min(last, range.upperBound) {
                try body(slot, frame)
                slot += 1
            }
            nextSlot = max(nextSlot, slot)
        }
    }

    /// Decodes and resamples one audio stream, cutting exactly the samples of the requested span.
    private struct AudioCursor {
        let decoder: CodecDecoder
        let resampler: Resampler
        let offset: Int64
        let sampleRate: Int
        let startSeconds: Double
        let sampleCount: Int
        let body: ([Float]) throws -> Void
        let frame: Frame
        /// Timeline sample index of the next resampled sample, once known.
        var position: Int?
        var delivered = 0
        var done: Bool { delivered >= sampleCount }

        init(demuxer: Demuxer, stream: Int, offset: Int64, sampleRate: Int, startSeconds: Double, sampleCount: Int, body: @escaping ([Float]) throws -> Void) throws {
            let st = demuxer.stream(stream)
            decoder = try CodecDecoder(stream: st, threads: 1)
            resampler = Resampler(outputRate: sampleRate)
            self.offset = offset
            self.sampleRate = sampleRate
            self.startSeconds = startSeconds
            self.sampleCount = sampleCount
            self.body = body
            frame = try Frame()
        }

        mutating func feed(_ packet: Packet) throws {
            // A damaged audio packet is skipped (stage 1 already judged the error rate).
            guard (try? decoder.send(packet)) != nil else { return }
            try drain()
        }

        mutating func finish() throws {
            _ = try? decoder.send(nil)
            try drain()
            try deliver(resampler.flush())
            // Audio that ends early is padded with silence so the clip keeps its length.
            if !done { try deliver([Float](repeating: 0, count: sampleCount - delivered), padding: true) }
        }

        private mutating func drain() throws {
            while !done, (try? decoder.receive(into: frame)) == .ok {
                if position == nil {
                    let ts = frame.bestEffortTimestamp
                    let seconds = ts == cffmpeg_nopts() ? startSeconds : Double(ts + offset) * decoder.timeBase.seconds
                    position = Int(((seconds - startSeconds) * Double(sampleRate)).rounded())
                }
                try deliver(resampler.convert(frame))
            }
        }

        /// Places `samples` (which start at `position`) into the requested span [0, sampleCount).
        private mutating func deliver(_ samples: [Float], padding: Bool = false) throws {
            if padding { try body(samples); delivered += samples.count; return }
            guard var pos = position, !samples.isEmpty else { return }
            var chunk = samples[...]
            if pos > delivered {
                // Audio starts after the span begins: silence fills the gap.
                let gap = min(pos - delivered, sampleCount - delivered)
                try body([Float](repeating: 0, count: gap))
                delivered += gap
            }
            if pos < delivered { let skip = min(delivered - pos, chunk.count); chunk = chunk.dropFirst(skip); pos += skip }
            let take = min(chunk.count, sampleCount - delivered)
            if take > 0 { try body(Array(chunk.prefix(take))); delivered += take }
            position = pos + chunk.count
        }
    }
}

/// How a normalised copy is encoded (the frame rate, sample rate and size come from the reader).
public struct CopyEncoding: Sendable {
    public var crf: Int
    public var preset: String
    public var threads: Int
    public init(crf: Int, preset: String = "veryfast", threads: Int = 1) { self.crf = crf; self.preset = preset; self.threads = threads }
}

extension NormalizedReader {
    /// Writes timeline frames `range` (all by default) with their audio to an MP4 at `path`:
    /// H.264 at the timeline's rate, AAC mono at the reader's sample rate, the source's rotation
    /// kept as display metadata. `resampled/` and `segmented/` files are made this way.
    public func copy(frames range: Range<Int>? = nil, to path: String, encoding: CopyEncoding) throws {
        let rotation = try rotationDegrees()
        var writer: ClipWriter?
        try read(frames: range, video: { _, frame in
            if writer == nil {
                var settings = ClipWriter.Settings(width: frame.width, height: frame.height)
                settings.frameRate = self.frameMap.outputRate
                settings.sampleRate = self.sampleRate
                settings.crf = encoding.crf
                settings.preset = encoding.preset
                settings.threads = encoding.threads
                settings.rotationDegrees = rotation
                writer = try ClipWriter(path: path, settings: settings)
            }
            try writer!.writeVideo(frame)
        }, audio: { samples in
            // Frame 0 is read before the first audio chunk is cut, so the writer exists.
            try writer?.writeAudio(samples)
        })
        try writer?.finish()
    }
}
