import Foundation
import PipelineCore

/// Families of generated talking clips for judging a weight-free sync method beyond the fixtures it
/// was tuned on: other voices (espeak-ng, the LibriVox readings of Debian's pocketsphinx-testdata),
/// another mouth rendering, faces from 80 to 400 pixels, head motion, background noise and music,
/// another rule for how the mouth follows the sound. Each clip's audio leads its mouth by a known
/// offset, drawn from a seed, and written into its name (`clip_03_off+5.mp4`).
public enum SyncFamilies {
    public enum Voice: String, Sendable { case golden, librivox, espeak }
    /// How the mouth is drawn: a dark gap under the upper lip (`TalkingClips.mouthOpened`), or the
    /// lower lip and chin dropping with no dark interior (the gap filled with lip colour).
    public enum Mouth: String, Sendable { case darkGap, jaw }
    /// What the mouth follows: the frame's loudness (`TalkingClips.mouthLevels`), or the 300–1000 Hz
    /// band with fast opening and slow closing.
    public enum Articulation: String, Sendable { case loudness, lowBand }
    public enum Background: Sendable, Equatable { case none, noise(snrDB: Double), music(snrDB: Double) }

    public struct Family: Sendable, CustomStringConvertible {
        public var name: String
        public var voice: Voice
        public var mouth: Mouth
        public var articulation: Articulation
        public var canvas: (Int, Int)
        /// Face width on the canvas is about 130 × scale pixels.
        public var scales: ClosedRange<Double>
        public var motion: Double
        public var background: Background
        public var description: String { name }
    }

    /// The family the method was tuned on (the test suite's talking clips).
    public static let tuning = Family(name: "A tuning: astronaut, dark gap, LibriVox utterance, loudness, 640×480, face ≈ 200 px",
                                      voice: .golden, mouth: .darkGap, articulation: .loudness, canvas: (640, 480), scales: 1.4...1.7,
                                      motion: 0.3, background: .none)

    /// Families never used for tuning.
    public static let heldOut: [Family] = [
        Family(name: "B espeak-ng voices (5 voices, 2 languages)", voice: .espeak, mouth: .darkGap, articulation: .loudness,
               canvas: (640, 480), scales: 1.2...1.8, motion: 0.3, background: .none),
        Family(name: "C LibriVox readings + noise at 10 dB SNR", voice: .librivox, mouth: .darkGap, articulation: .loudness,
               canvas: (640, 480), scales: 1.2...1.8, motion: 0.5, background: .noise(snrDB: 10)),
        Family(name: "D jaw drop without a dark gap, 300–1000 Hz articulation", voice: .librivox, mouth: .jaw, articulation: .lowBand,
               canvas: (640, 480), scales: 1.3...1.9, motion: 0.3, background: .none),
        Family(name: "E 1280×720, faces 80–400 px, strong head motion, espeak", voice: .espeak, mouth: .darkGap, articulation: .lowBand,
               canvas: (1280, 720), scales: 0.62...3.0, motion: 1.0, background: .none),
        Family(name: "F music bed at 6 dB SNR, jaw drop, LibriVox", voice: .librivox, mouth: .jaw, articulation: .loudness,
               canvas: (960, 540), scales: 1.0...2.2, motion: 0.6, background: .music(snrDB: 6)),
    ]

    /// 16 kHz mono speech of `voice` for clip `index`, at least `seconds` long. Every clip of a
    /// family says something else (another order of pieces, sentences, voices): audio from one clip
    /// must not be in sync with another clip's mouth, or negative controls would be positive.
    public static func speech(_ voice: Voice, index: Int, seconds: Double) throws -> [Float] {
        var out: [Float] = []
        var random = SplitMix64(seed: 0x5EED_0000 &+ UInt64(index))
        switch voice {
        case .golden:
            let base = try TalkingClips.unrelatedSpeech(seed: 1_000 + index)
            while Double(out.count) < seconds * 16_000 { out += base }
        case .librivox:
            // The five readings pooled and cut into 1 s pieces, played in an order of this clip's own.
            let folder = URL(fileURLWithPath: "/usr/share/pocketsphinx/test/data/librivox")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".wav") }.sorted()) ?? []
            guard !files.isEmpty else { throw Fixtures.Failure(description: "pocketsphinx-testdata is needed for the LibriVox voices: apt-get install pocketsphinx-testdata") }
            let pool = try files.flatMap { try AudioFile.samples(folder.appendingPathComponent($0).path) }
            let pieces = stride(from: 0, to: pool.count - 16_000, by: 16_000).map { Array(pool[$0..<($0 + 16_000)]) }
            while Double(out.count) < seconds * 16_000 { out += pieces.shuffled(using: &random).prefix(8).joined() }
        case .espeak:
            let voices = ["en-us", "en-gb+f3", "en-gb-scotland", "de+m3", "fr+f2"]
            let sentences = ["The quick brown fox jumps over the lazy dog while the band plays on.",
                             "Please call Stella and ask her to bring these things with her from the store.",
                             "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack.",
                             "We also need a small plastic snake and a big toy frog for the kids.",
                             "She can scoop these things into three red bags, and we will go meet her."]
            let dir = try Fixtures.temporaryDirectory("espeak")
            defer { try? FileManager.default.removeItem(at: dir) }
            var k = 0
            let order = sentences.shuffled(using: &random)
            while Double(out.count) < seconds * 16_000 {
                let wav = dir.appendingPathComponent("\(k).wav"), resampled = dir.appendingPathComponent("\(k)-16k.wav")
                let r = try Fixtures.run("espeak-ng", ["-v", voices[index % voices.count], "-s", String(125 + 10 * (index % 5)), "-w", wav.path, order[k % order.count]])
                guard r.status == 0 else { throw Fixtures.Failure(description: "espeak-ng failed: \(r.stderr)") }
                try Fixtures.ffmpeg(["-i", wav.path, "-ar", "16000", "-ac", "1"], output: resampled)
                out += try AudioFile.samples(resampled.path) + [Float](repeating: 0, count: Int.random(in: 2_000...8_000, using: &random))
                k += 1
            }
        }
        return out
    }

    /// Mouth opening 0…1 per frame.
    public static func levels(_ speech: [Float], frames: Int, articulation: Articulation) throws -> [Double] {
        switch articulation {
        case .loudness:
            return TalkingClips.mouthLevels(speech, frames: frames)
        case .lowBand:
            // 300–1000 Hz energy per frame (FFT of the frame's 640 samples, zero-padded to 1024).
            let fft = try RealFFT(length: 1024)
            var buffer = [Double](repeating: 0, count: 1024), power = [Double](repeating: 0, count: 513)
            let db = (0..<frames).map { t -> Double in
                for i in 0..<1024 {
                    let s = t * 640 + i - 192
                    buffer[i] = i < 640 + 192 && s >= 0 && s < speech.count ? Double(speech[s]) : 0
                }
                buffer.withUnsafeBufferPointer { b in power.withUnsafeMutableBufferPointer { fft.powerSpectrum(b, into: $0) } }
                return 10 * log10((19...64).reduce(1e-10) { $0 + power[$1] })
            }
            let top = db.max() ?? 0
            var level = 0.0
            return db.map { d in
                let target = min(1, max(0, (d - (top - 25)) / 25))
                // Opens within a frame, closes over about three.
                level = target > level ? target : level + (target - level) * 0.35
                return level
            }
        }
    }

    /// The photo with the lower lip and chin dropped by `level`, the gap filled with the colour of
    /// the lip line (a jaw opening without a dark mouth interior).
    public static func jawOpened(_ photo: RGBImage, level: Double) -> RGBImage {
        var out = photo
        let lipLine = 149.5, cx = 221.0, halfWidth = 20.0, maxOpen = 9.0, chin = 60.0
        for y in Int(lipLine)...Int(lipLine + chin) {
            for x in Int(cx - halfWidth)...Int(cx + halfWidth) {
                let u = (Double(x) - cx) / halfWidth
                let open = maxOpen * level * max(0, 1 - u * u)
                let dy = Double(y) - lipLine
                let i = (y * photo.width + x) * 3
                // Inside the gap: the lip-line colour, barely darker; below it the face slides down.
                let sy = dy < open ? lipLine - 1 : Double(y) - open * max(0, 1 - dy / chin)
                let y0 = Int(sy.rounded(.down)), f = sy - Double(y0)
                for c in 0..<3 {
                    let a = Double(photo.pixels[(y0 * photo.width + x) * 3 + c]), b = Double(photo.pixels[((y0 + 1) * photo.width + x) * 3 + c])
                    out.pixels[i + c] = UInt8(((a + (b - a) * f) * (dy < open ? 0.9 : 1)).rounded())
                }
            }
        }
        return out
    }

    /// `speech` with noise or a music bed at `snrDB` below its power (seeded).
    public static func mixed(_ speech: [Float], background: Background, seed: UInt64) -> [Float] {
        let power = speech.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, speech.count))
        var random = SplitMix64(seed: seed)
        switch background {
        case .none:
            return speech
        case .noise(let snr):
            // Pink-ish: white noise through a one-pole low-pass, scaled to the SNR.
            var y = 0.0
            let raw = speech.indices.map { _ -> Double in y = 0.9 * y + Double.random(in: -1...1, using: &random); return y }
            let rp = raw.reduce(0.0) { $0 + $1 * $1 } / Double(raw.count)
            let gain = (power / pow(10, snr / 10) / rp).squareRoot()
            return zip(speech, raw).map { Float(Double($0) + $1 * gain) }
        case .music(let snr):
            // Chords changing every half second on a 2 Hz beat: rhythm that is not the speech's.
            let chords: [[Double]] = [[220, 277.2, 329.6], [196, 246.9, 293.7], [174.6, 220, 261.6], [246.9, 311.1, 370]]
            let raw = speech.indices.map { s -> Double in
                let t = Double(s) / 16_000
                let chord = chords[Int(t * 2) % chords.count]
                let beat = 0.4 + 0.6 * exp(-8 * (t * 2 - (t * 2).rounded(.down)))
                return beat * chord.reduce(0) { $0 + sin(2 * .pi * $1 * t) }
            }
            let rp = raw.reduce(0.0) { $0 + $1 * $1 } / Double(raw.count)
            let gain = (power / pow(10, snr / 10) / rp).squareRoot()
            return zip(speech, raw).map { Float(Double($0) + $1 * gain) }
        }
    }

    /// Writes clip `index` of `family` (25 fps, `frames` frames) whose audio leads the mouth by
    /// `offset` frames.
    public static func write(_ family: Family, index: Int, offset: Int, frames: Int, to url: URL, seed: UInt64) throws {
        var random = SplitMix64(seed: seed &+ UInt64(index))
        let scale = Double.random(in: family.scales, using: &random)
        let speech = try Self.speech(family.voice, index: index, seconds: Double(frames) / 25 + 1)
        let levels = try Self.levels(speech, frames: frames, articulation: family.articulation)
        let photo = try FaceClips.astronaut()
        var settings = ClipWriter.Settings(width: family.canvas.0, height: family.canvas.1)
        settings.crf = 18
        settings.preset = "ultrafast"
        let writer = try ClipWriter(path: url.path, settings: settings)
        let audio = mixed(TalkingClips.shiftedAudio(speech, frames: frames, offset: offset), background: family.background, seed: seed &+ UInt64(index) &* 7)
        let phase = Int.random(in: 0..<200, using: &random)
        for t in 0..<frames {
            let face = family.mouth == .darkGap ? TalkingClips.mouthOpened(photo, level: levels[t]) : jawOpened(photo, level: levels[t])
            let image = try face.warpedLanczos(FaceClips.motion(t + phase, canvas: family.canvas, scale: scale, amplitude: family.motion),
                                               width: family.canvas.0, height: family.canvas.1, border: 60)
            try writer.writeVideo(Frame(rgb: image))
            try writer.writeAudio(Array(audio[(t * 640)..<((t + 1) * 640)]))
        }
        try writer.finish()
    }

    /// The true offset written into a clip's name.
    public static func name(index: Int, offset: Int) -> String { String(format: "clip_%02d_off%@%d.mp4", index, offset >= 0 ? "+" : "-", abs(offset)) }
    public static func offset(inName name: String) -> Int? {
        guard let r = name.range(of: "_off") else { return nil }
        let text = name[r.upperBound...]
        guard let sign = text.first, sign == "+" || sign == "-" else { return nil }
        return Int(text.dropFirst().prefix { $0.isNumber }).map { sign == "-" ? -$0 : $0 }
    }
}
