import Foundation
import PipelineCore

/// Talking-face stand-ins for the sync stage: the astronaut photo (as in `FaceClips`) whose mouth
/// opens and closes with the loudness of real speech (the LibriVox utterance of `golden/mfcc`), with
/// the audio track shifted by a known number of frames.
public enum TalkingClips {
    public static let samplesPerFrame = 640

    /// About 6.2 s of speech at 16 kHz: the utterance, a short pause, the utterance reversed
    /// (same loudness statistics, different rhythm).
    public static func speech() throws -> [Float] {
        let g = try SafeTensorsFile(contentsOf: Golden.directory.appendingPathComponent("mfcc/mfcc.safetensors"))
        let words = try g.int16("waveform_int16").map { Float($0) / 32_768 }
        return words + [Float](repeating: 0, count: 3_200) + words.reversed()
    }

    /// Other speech with the same sound: the utterance cut into 0.4 s pieces played in another order
    /// (a different rhythm of syllables and pauses), for "audio that does not belong to this face".
    public static func unrelatedSpeech(seed: Int) throws -> [Float] {
        let all = try speech()
        let piece = 6_400
        let pieces = stride(from: 0, to: all.count - piece, by: piece).map { Array(all[$0..<($0 + piece)]) }
        var order = Array(pieces.indices)
        var state = UInt64(seed &+ 1) &* 0x9E37_79B9_7F4A_7C15
        for i in order.indices.reversed() where i > 0 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            order.swapAt(i, Int((state >> 33) % UInt64(i + 1)))
        }
        return order.flatMap { pieces[$0] }
    }

    /// How far the mouth opens (0…1) at each frame: the frame's RMS loudness over a 30 dB range below
    /// the loudest frame, smoothed over two frames (lips do not jump).
    public static func mouthLevels(_ speech: [Float], frames: Int) -> [Double] {
        let db = (0..<frames).map { t -> Double in
            let lo = min(speech.count, t * samplesPerFrame), hi = min(speech.count, lo + samplesPerFrame)
            let power = speech[lo..<hi].reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, hi - lo))
            return 10 * log10(power + 1e-10)
        }
        let top = db.max() ?? 0
        let raw = db.map { min(1, max(0, ($0 - (top - 30)) / 30)) }
        return raw.indices.map { i in i == 0 ? raw[0] : 0.6 * raw[i] + 0.4 * raw[i - 1] }
    }

    /// The photo with its mouth opened by `level` (0 closed … 1 wide): the lower lip and chin slide
    /// down under a dark gap, tapering towards the corners of the mouth and down the chin.
    public static func mouthOpened(_ photo: RGBImage, level: Double) -> RGBImage {
        var out = photo
        let lipLine = 149.5, cx = 221.0, halfWidth = 18.0, maxOpen = 10.0, chin = 55.0
        for y in Int(lipLine)...Int(lipLine + chin) {
            for x in Int(cx - halfWidth)...Int(cx + halfWidth) {
                let u = (Double(x) - cx) / halfWidth
                let open = maxOpen * level * max(0, 1 - u * u)
                let dy = Double(y) - lipLine
                let i = (y * photo.width + x) * 3
                if dy < open {
                    // Inside the mouth: dark red, darker in the middle.
                    let shade = 0.5 + 0.5 * dy / max(open, 1)
                    out.pixels[i] = UInt8(40 + 30 * shade); out.pixels[i + 1] = UInt8(14 + 10 * shade); out.pixels[i + 2] = UInt8(18 + 10 * shade)
                    continue
                }
                let sy = Double(y) - open * max(0, 1 - dy / chin)
                let y0 = Int(sy.rounded(.down)), f = sy - Double(y0)
                for c in 0..<3 {
                    let a = Double(photo.pixels[(y0 * photo.width + x) * 3 + c]), b = Double(photo.pixels[((y0 + 1) * photo.width + x) * 3 + c])
                    out.pixels[i + c] = UInt8((a + (b - a) * f).rounded())
                }
            }
        }
        return out
    }

    /// Frame `t` of a talking clip on a `canvas` (the face drifting slowly, as in `FaceClips`).
    public static func render(_ t: Int, photo: RGBImage, level: Double, canvas: (Int, Int) = (640, 480), scale: Double = 1.6) throws -> RGBImage {
        try mouthOpened(photo, level: level).warpedLanczos(FaceClips.motion(t, canvas: canvas, scale: scale, amplitude: 0.3),
                                                           width: canvas.0, height: canvas.1, border: 60)
    }

    /// The audio of a clip whose sound leads its picture by `offset` frames (negative: lags):
    /// sample s of the clip is sample s + offset × 640 of the speech the mouth follows.
    public static func shiftedAudio(_ speech: [Float], frames: Int, offset: Int) -> [Float] {
        (0..<(frames * samplesPerFrame)).map { s in
            let i = s + offset * samplesPerFrame
            return i >= 0 && i < speech.count ? speech[i] : 0
        }
    }

    /// Writes a 25 fps talking clip of `frames` frames whose audio leads the mouth by `offset` frames
    /// (the astronaut of `golden/affine` speaking the utterance of `golden/mfcc`).
    public static func write(_ url: URL, frames: Int, offset: Int, canvas: (Int, Int) = (640, 480), scale: Double = 1.6) throws {
        try write(url, frames: frames, offset: offset, photo: FaceClips.astronaut(), speech: speech(), canvas: canvas, scale: scale)
    }

    /// The same with a given photo (scikit-image's 512×512 astronaut: the mouth position is its) and
    /// 16 kHz mono speech.
    /// `mouth` scales how far the mouth opens (1: up to 10 px on the photo).
    public static func write(_ url: URL, frames: Int, offset: Int, photo: RGBImage, speech: [Float], canvas: (Int, Int), scale: Double,
                             crf: Int = 16, preset: String = "ultrafast", mouth: Double = 1) throws {
        let levels = mouthLevels(speech, frames: frames).map { $0 * mouth }
        var settings = ClipWriter.Settings(width: canvas.0, height: canvas.1)
        settings.crf = crf
        settings.preset = preset
        let writer = try ClipWriter(path: url.path, settings: settings)
        let audio = shiftedAudio(speech, frames: frames, offset: offset)
        for t in 0..<frames {
            try writer.writeVideo(Frame(rgb: render(t, photo: photo, level: levels[t], canvas: canvas, scale: scale)))
            try writer.writeAudio(Array(audio[(t * samplesPerFrame)..<((t + 1) * samplesPerFrame)]))
        }
        try writer.finish()
    }
}

/// Curated-dataset stand-ins for SyncNet training: small "aligned" clips whose mouth follows their
/// own sound, so that the frames of one window and the audio of another window of the same clip
/// disagree. Deliberately plain (a flat face, a dark mouth): a CPU test has a few hundred steps to
/// show that training learns, not the weeks a real face dataset needs.
public enum AlignedTalkingClips {
    /// The face a clip shows: a plain square with an elliptic mouth, or the astronaut of `golden/affine`
    /// (its mouth opened by `TalkingClips.mouthOpened`) aligned as stage 5 aligns it (the golden
    /// matrix `M_f1` onto the 256 template) and resized to the clip's size: what a curated clip of the
    /// pipeline's talking fixtures looks like.
    /// `mouth` scales how far the astronaut's mouth opens (1: `TalkingClips`' 10 px on the photo).
    public enum Face: Sendable { case plain, astronaut(mouth: Double = 1) }

    /// Writes a `size`×`size` clip of `frames` frames speaking `speech` (its first frames × 640
    /// samples) whose mouth opens with the loudness of each frame (plain face closed: a 1-pixel line;
    /// fully open: most of the lower half).
    public static func write(_ url: URL, frames: Int, speech: [Float], size: Int = 64, face: Face = .plain) throws {
        let levels = TalkingClips.mouthLevels(speech, frames: frames)
        var settings = ClipWriter.Settings(width: size, height: size)
        settings.crf = 12
        settings.preset = "ultrafast"
        let writer = try ClipWriter(path: url.path, settings: settings)
        let render: (Double) throws -> RGBImage
        switch face {
        case .plain: render = { plainFace(size: size, level: $0) }
        case .astronaut(let mouth):
            let photo = try FaceClips.astronaut()
            let g = try SafeTensorsFile(contentsOf: Golden.directory.appendingPathComponent("affine/affine.safetensors"))
            let m = try g.float64("M_f1"), template = AlignmentTemplate(resolution: 256)
            let matrix = AffineMatrix(m[0], m[1], m[2], m[3], m[4], m[5])
            var rendered: [Double: RGBImage] = [:]  // levels repeat (runs of one loudness): render each once
            render = { level in
                if let done = rendered[level] { return done }
                let face = try TalkingClips.mouthOpened(photo, level: level * mouth).warpedLanczos(matrix, width: template.cropWidth, height: template.cropHeight)
                    .resized(width: size, height: size, interpolation: .area)
                rendered[level] = face
                return face
            }
        }
        for t in 0..<frames {
            try writer.writeVideo(Frame(rgb: render(levels[t])))
            let lo = min(speech.count, t * TalkingClips.samplesPerFrame), hi = min(speech.count, lo + TalkingClips.samplesPerFrame)
            try writer.writeAudio(Array(speech[lo..<hi]) + [Float](repeating: 0, count: TalkingClips.samplesPerFrame - (hi - lo)))
        }
        try writer.finish()
    }

    /// The plain face: a face-coloured square whose dark mouth, centred in the lower half, opens with `level`.
    static func plainFace(size: Int, level: Double) -> RGBImage {
        let s = Double(size), cx = s / 2, cy = s * 0.75, halfWidth = s * 0.35
        let halfOpen = 0.5 + level * s / 5
        var face = RGBImage(width: size, height: size, fill: 0)
        for y in 0..<size {
            for x in 0..<size {
                let u = (Double(x) - cx) / halfWidth, v = (Double(y) - cy) / halfOpen
                let mouth = u * u + v * v <= 1
                let i = (y * size + x) * 3
                face.pixels[i] = mouth ? 60 : 200; face.pixels[i + 1] = mouth ? 20 : 160; face.pixels[i + 2] = mouth ? 30 : 140
            }
        }
        return face
    }

    /// Syllable-like bursts: runs of 3–10 frames of a voiced tone (150 Hz and harmonics) or near
    /// silence, drawn from `seed`. Each window of 16 frames has its own on/off rhythm, which is what
    /// a sync model has to match between mouth and sound.
    public static func bursts(frames: Int, seed: Int, runs: ClosedRange<Int> = 3...10) -> [Float] {
        var state = UInt64(seed &+ 7) &* 0x9E37_79B9_7F4A_7C15
        func next(_ n: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((state >> 33) % UInt64(n))
        }
        var on: [Bool] = []
        var voiced = next(2) == 0
        while on.count < frames { on += Array(repeating: voiced, count: runs.lowerBound + next(runs.count)); voiced.toggle() }
        let n = TalkingClips.samplesPerFrame
        return (0..<(frames * n)).map { i in
            let t = Double(i) / 16_000
            let tone = on[i / n] ? 0.3 * sin(2 * .pi * 150 * t) + 0.15 * sin(2 * .pi * 450 * t) + 0.08 * sin(2 * .pi * 900 * t) : 0
            return Float(tone + 0.002 * sin(Double(i) * 12.9898).truncatingRemainder(dividingBy: 1))
        }
    }

    /// `count` clips of `frames` frames, each speaking its own bursts (`bursts(frames:seed:)`), and a
    /// `fileslist.txt` listing them; returns the list's URL.
    public static func dataset(in folder: URL, count: Int, frames: Int, size: Int = 64, runs: ClosedRange<Int> = 3...10,
                               seed: Int = 100, face: Face = .plain) throws -> URL {
        var lines: [String] = []
        for i in 0..<count {
            let url = folder.appendingPathComponent("clip\(i).mp4")
            try write(url, frames: frames, speech: bursts(frames: frames, seed: seed &+ i, runs: runs), size: size, face: face)
            lines.append(url.path)
        }
        let list = folder.appendingPathComponent("fileslist.txt")
        try (lines.joined(separator: "\n") + "\n").write(to: list, atomically: true, encoding: .utf8)
        return list
    }
}
