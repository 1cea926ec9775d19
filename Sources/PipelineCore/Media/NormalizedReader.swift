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
        Self.rotationDegrees(of: try Demuxer(path: path))
    }

    static func rotationDegrees(of demuxer: Demuxer) -> Int {
        demuxer.pipelineStreams.video.flatMap { demuxer.info($0).rotationDegrees } ?? 0
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
        try pass(from: range.lowerBound, video: video != nil, audio: audio != nil).read(upTo: range.upperBound, video: video, audio: audio)
    }

    /// Opens a demux pass at timeline frame `start` that successive `Pass.read(upTo:)` calls continue.
    public func pass(from start: Int, video: Bool = true, audio: Bool = true) throws -> Pass {
        try Pass(reader: self, start: start, video: video, audio: audio)
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

    /// One demux and decode pass that reads the timeline in consecutive pieces: `read(upTo: b)` then
    /// `read(upTo: c)` delivers exactly what a single `read(upTo: c)` delivers (same frames, same
    /// audio samples, no gap or overlap), without the seek and the re-decoding from the keyframe
    /// before `b` that a fresh read of `b..<c` costs. Clips cut from one source are read this way
    /// one after the other (stage 5).
    ///
    /// Packets and decoded frames past the current end are held, not dropped, until the next call;
    /// audio past it stays in a buffer. Not thread-safe: one thread reads a pass at a time.
    public final class Pass {
        public let reader: NormalizedReader
        /// The first timeline frame the next `read` delivers.
        public private(set) var position: Int
        /// The frame the pass was opened at: audio sample 0 is this frame's first.
        public let start: Int
        public let decodesVideo: Bool
        public let decodesAudio: Bool
        private let demuxer: Demuxer
        private let vIndex: Int
        private let aIndex: Int?
        private let videoDecoder: CodecDecoder?
        /// Frame timestamps exactly as the scan assigned them.
        private var clock: DecodeClock?
        private var videoCursor: VideoCursor?
        private var audioCursor: AudioCursor?
        private let prerollEnd: Int64?
        /// Packets read while their stream's cursor had all it needed, for the next call.
        private var heldVideo: [Packet] = []
        private var heldAudio: [Packet] = []
        /// The file has been read to its end and the decoders drained.
        private var exhausted = false
        private let packet: Packet
        private let frame: Frame

        init(reader: NormalizedReader, start: Int, video: Bool, audio: Bool) throws {
            precondition(start >= 0 && start <= reader.frameCount, "pass start \(start) outside 0...\(reader.frameCount)")
            self.reader = reader
            self.position = start
            self.start = start
            let map = reader.frameMap
            let opened = try Demuxer(path: reader.path)
            let streams = opened.pipelineStreams
            guard let v = streams.video else { throw MediaError.noStream(kind: "video", path: reader.path) }
            vIndex = v
            aIndex = audio ? streams.audio : nil
            decodesVideo = video
            // A source without audio delivers silence of the range's length, as one whose audio ends early.
            decodesAudio = audio
            let used = [streams.video, streams.audio].compactMap { $0 }

            // Source frames whose slots intersect the range.
            let firstSource = reader.lastSourceIndex(fillingSlotAtOrBefore: start)
            let startSeconds = map.startSeconds + Double(start) * map.outputRate.inverted.seconds
            var demuxer = opened
            var seeked = false
            if start > 0 {
                // Seek before both the video frame and the audio we need (checked: see VerifiedSeek);
                // decoding skips forward from there.
                let videoTarget = map.sourcePts[firstSource]
                let audioTarget = rescale(Int64((startSeconds * 1_000_000).rounded(.down)), from: Rational(1, 1_000_000), to: map.timeBase) - map.timestampOffset
                let seek = VerifiedSeek(path: reader.path, videoStream: v, videoTimestamp: video ? videoTarget : nil,
                                        firstVideoTimestamp: map.sourcePts.first ?? 0,
                                        audio: aIndex.map { ($0, opened.timelineOffset(stream: $0, streams: used), startSeconds) },
                                        target: video ? min(videoTarget, audioTarget) : audioTarget)
                (demuxer, seeked) = try seek.open()
            }
            demuxer.discardAll(except: Set([video ? v : nil, aIndex].compactMap { $0 }))
            self.demuxer = demuxer
            // After a seek, decoding runs forward from a keyframe: frames shown before this timestamp are
            // only decoded for the frames that reference them.
            prerollEnd = start > 0 ? map.sourcePts[firstSource] : nil
            videoCursor = video ? VideoCursor(reader: reader, start: start, firstSource: firstSource, fromBeginning: !seeked) : nil
            videoDecoder = video ? try CodecDecoder(stream: demuxer.stream(v), threads: reader.decoderThreads) : nil
            clock = videoDecoder.map { DecodeClock(stream: demuxer.stream(v), decoder: $0, assignsAtEnd: map.timesFramesAtEnd) }
            audioCursor = try aIndex.map {
                try AudioCursor(demuxer: demuxer, stream: $0, offset: demuxer.timelineOffset(stream: $0, streams: used),
                                sampleRate: reader.sampleRate, startSeconds: startSeconds)
            }
            packet = try Packet()
            frame = try Frame()
        }

        /// `NormalizedReader.rotationDegrees()` from this pass's open file (opening one costs ~15 ms).
        public var rotationDegrees: Int { NormalizedReader.rotationDegrees(of: demuxer) }

        /// Delivers timeline frames `position..<end` and the audio under them, as
        /// `NormalizedReader.read(frames:video:audio:)` does, and leaves the pass at `end`.
        /// A callback is required exactly for what the pass decodes.
        public func read(upTo end: Int, video: ((Int, Frame) throws -> Void)?, audio: (([Float]) throws -> Void)?) throws {
            precondition(end >= position && end <= reader.frameCount, "pass at \(position) cannot read up to \(end) of \(reader.frameCount)")
            precondition((video != nil) == decodesVideo && (audio != nil) == decodesAudio, "callbacks must match what the pass decodes")
            if end == position { return }
            let startFrame = position
            position = end
            if let video { try videoCursor!.extend(to: end, body: video) }
            if let audio {
                let samples = Int((Double(end - start) * reader.samplesPerFrame).rounded())
                if audioCursor != nil {
                    try audioCursor!.extend(to: samples, body: audio)
                } else {
                    let previous = Int((Double(startFrame - start) * reader.samplesPerFrame).rounded())
                    try audio([Float](repeating: 0, count: samples - previous))
                }
            }
            defer { videoCursor?.body = nil; audioCursor?.body = nil }
            // What the previous call read past its end comes first, in order.
            while videoCursor?.done == false, !heldVideo.isEmpty { try decode(heldVideo.removeFirst()) }
            while audioCursor?.done == false, !heldAudio.isEmpty { try audioCursor!.feed(heldAudio.removeFirst()) }

            while !exhausted, videoCursor?.done == false || audioCursor?.done == false {
                guard try demuxer.read(into: packet) == .ok else {
                    // End of file: the held packets and what the decoders still hold are the last of
                    // each stream; all of it is decoded now (a drained decoder takes nothing more).
                    if let videoDecoder {
                        while !heldVideo.isEmpty { try decode(heldVideo.removeFirst()) }
                        clock?.drainStarts()
                        _ = try videoDecoder.send(nil)
                        try drainVideo()
                    }
                    while !heldAudio.isEmpty { try audioCursor?.feed(heldAudio.removeFirst()) }
                    try audioCursor?.finish()
                    exhausted = true
                    break
                }
                if packet.streamIndex == vIndex, videoDecoder != nil {
                    if videoCursor!.done { heldVideo.append(try packet.reference()) } else { try decode(packet) }
                } else if packet.streamIndex == aIndex {
                    if audioCursor!.done { heldAudio.append(try packet.reference()) } else { try audioCursor!.feed(packet) }
                }
            }
            // Audio that ends early is padded with silence so the clip keeps its length.
            if exhausted { try audioCursor?.padToTarget() }
            if let cursor = videoCursor, !cursor.done {
                throw MediaError.sourceChanged(path: reader.path, detail: "decoding ended at timeline frame \(cursor.nextSlot) of \(end) (read from \(startFrame))")
            }
        }

        private func decode(_ packet: Packet) throws {
            guard let videoDecoder else { return }
            if let preroll = prerollEnd, videoCursor?.synced == false {
                // Between the keyframe and the first wanted frame only reference frames matter
                // (a non-reference frame before it is neither shown nor predicted from).
                videoDecoder.skipsNonReferenceFrames = packet.pts.map { $0 < preroll } ?? false
            } else if videoDecoder.skipsNonReferenceFrames {
                videoDecoder.skipsNonReferenceFrames = false
            }
            clock?.sent(packet)
            while try videoDecoder.send(packet) == .again { try drainVideo() }
            try drainVideo()
        }

        private func drainVideo() throws {
            guard let videoDecoder else { return }
            while true {
                clock?.draining()
                guard try videoDecoder.receive(into: frame) == .ok else { return }
                try videoCursor!.consume(frame, timestamp: clock?.received(frame) ?? frame.bestEffortTimestamp)
            }
        }
    }

    /// Walks decoded source frames against the frame map, emitting each once per slot it fills
    /// below the current end; frames with slots at or past the end wait for the next call.
    private struct VideoCursor {
        let reader: NormalizedReader
        /// The next source frame the decoder should return.
        var sourceIndex: Int
        var nextSlot: Int
        var end: Int
        var body: ((Int, Frame) throws -> Void)?
        var synced = false
        /// Decoded frames not yet fully emitted, oldest first, with their source index.
        var waiting: [(index: Int, frame: Frame)] = []
        var done: Bool { nextSlot >= end }

        /// - Parameter fromBeginning: the decoder starts at the file's first frame, so frames are
        ///   counted from source frame 0 (frames before `firstSource` are passed over, not emitted).
        init(reader: NormalizedReader, start: Int, firstSource: Int, fromBeginning: Bool) {
            self.reader = reader
            self.sourceIndex = fromBeginning ? 0 : firstSource
            self.nextSlot = start
            self.end = start
            self.synced = fromBeginning
        }

        mutating func extend(to end: Int, body: @escaping (Int, Frame) throws -> Void) throws {
            self.end = end
            self.body = body
            while let first = waiting.first, try emit(first.index, first.frame) { waiting.removeFirst() }
        }

        /// `timestamp`: the frame's `DecodeClock` time (no timestamp: `AV_NOPTS_VALUE`, as stored in the map).
        mutating func consume(_ frame: Frame, timestamp: Int64?) throws {
            let map = reader.frameMap
            let pts = timestamp ?? cffmpeg_nopts()
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
            let index = sourceIndex
            sourceIndex += 1
            // Kept (by reference, no pixel copy) only when some of its slots lie past the end.
            if waiting.isEmpty, try emit(index, frame) { return }
            waiting.append((index, try frame.reference()))
        }

        /// Emits source frame `index`'s slots below the end; true when none is left for later.
        private mutating func emit(_ index: Int, _ frame: Frame) throws -> Bool {
            let first = reader.firstSlot[index]
            let last = first + Int(reader.frameMap.repeats[index])
            var slot = max(first, nextSlot)
            while slot < min(last, end) {
                try body!(slot, frame)
                slot += 1
            }
            nextSlot = max(nextSlot, slot)
            return last <= end
        }
    }

    /// Decodes and resamples one audio stream and cuts it at exact sample counts from the pass's
    /// start; samples past the current target wait in `buffered`.
    private struct AudioCursor {
        let decoder: CodecDecoder
        let resampler: Resampler
        let offset: Int64
        let sampleRate: Int
        let startSeconds: Double
        let frame: Frame
        var body: (([Float]) throws -> Void)?
        /// Pass-relative sample index of `buffered[0]`, once the first decoded frame placed it.
        var position: Int?
        var buffered: [Float] = []
        /// Samples handed out since the pass's start, and how many the current call wants in all.
        var delivered = 0
        var target = 0
        var done: Bool { delivered >= target }

        init(demuxer: Demuxer, stream: Int, offset: Int64, sampleRate: Int, startSeconds: Double) throws {
            let st = demuxer.stream(stream)
            decoder = try CodecDecoder(stream: st, threads: 1)
            resampler = Resampler(outputRate: sampleRate)
            self.offset = offset
            self.sampleRate = sampleRate
            self.startSeconds = startSeconds
            frame = try Frame()
        }

        mutating func extend(to target: Int, body: @escaping ([Float]) throws -> Void) throws {
            self.target = target
            self.body = body
            try deliverBuffered()
        }

        mutating func feed(_ packet: Packet) throws {
            // A damaged audio packet is skipped (stage 1 already judged the error rate).
            guard (try? decoder.send(packet)) != nil else { return }
            try drain()
        }

        /// End of file: the decoder's and the resampler's last samples.
        mutating func finish() throws {
            _ = try? decoder.send(nil)
            try drain()
            try accept(resampler.flush())
        }

        /// Silence for whatever the stream did not cover up to the target (audio that ends early).
        mutating func padToTarget() throws {
            try deliverBuffered()
            guard !done else { return }
            let missing = target - delivered
            try body!([Float](repeating: 0, count: missing))
            delivered += missing
        }

        private mutating func drain() throws {
            // Every decoded frame is taken out, even past the target: a decoder holding output
            // refuses new packets.
            while (try? decoder.receive(into: frame)) == .ok {
                if position == nil {
                    let ts = frame.bestEffortTimestamp
                    let seconds = ts == cffmpeg_nopts() ? startSeconds : Double(ts + offset) * decoder.timeBase.seconds
                    position = Int(((seconds - startSeconds) * Double(sampleRate)).rounded())
                }
                try accept(resampler.convert(frame))
            }
        }

        private mutating func accept(_ samples: [Float]) throws {
            guard position != nil, !samples.isEmpty else { return }
            buffered.append(contentsOf: samples)
            try deliverBuffered()
        }

        /// Hands out `buffered` up to the target: silence where the audio starts after the samples
        /// already delivered, nothing of what lies before them.
        private mutating func deliverBuffered() throws {
            guard var pos = position, !done else { return }
            if pos > delivered {
                let gap = min(pos - delivered, target - delivered)
                try body!([Float](repeating: 0, count: gap))
                delivered += gap
            }
            if pos < delivered {
                let skip = min(delivered - pos, buffered.count)
                buffered.removeFirst(skip)
                pos += skip
            }
            if pos == delivered {
                let take = min(buffered.count, target - delivered)
                if take > 0 {
                    try body!(Array(buffered.prefix(take)))
                    buffered.removeFirst(take)
                    delivered += take
                    pos += take
                }
            }
            position = pos
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
