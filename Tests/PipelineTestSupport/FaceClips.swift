import Foundation
import PipelineCore

/// Talking-face stand-ins with known motion: a real face photo (the astronaut of `golden/affine`,
/// scikit-image's, public domain) placed on a canvas by a known similarity transform per frame.
public enum FaceClips {
    public static func astronaut() throws -> RGBImage {
        let g = try SafeTensorsFile(contentsOf: Golden.directory.appendingPathComponent("affine/affine.safetensors"))
        return RGBImage(width: 512, height: 512, pixels: try g.uint8("image_rgb"))
    }

    /// The photo → canvas transform of frame `t`: the face (around photo point (250, 200)) scaled by
    /// `scale`, drifting, turning and zooming slowly (`amplitude` 0 keeps it still).
    public static func motion(_ t: Int, canvas: (Int, Int), scale: Double, amplitude: Double) -> AffineMatrix {
        let s = scale * (1 + 0.06 * amplitude * sin(Double(t) * 2 * .pi / 140))
        let angle = amplitude * 4 * .pi / 180 * sin(Double(t) * 2 * .pi / 110)
        let tx = Double(canvas.0) / 2 + amplitude * 25 * sin(Double(t) * 2 * .pi / 125)
        let ty = Double(canvas.1) / 2 + amplitude * 12 * cos(Double(t) * 2 * .pi / 95)
        let c = s * cos(angle), n = s * sin(angle)
        // p' = s·R·(p − face) + (tx, ty)
        return AffineMatrix(c, -n, tx - (c * 250 - n * 200), n, c, ty - (n * 250 + c * 200))
    }

    /// Frame `t` of a clip (without a gap).
    public static func render(_ t: Int, photo: RGBImage, canvas: (Int, Int) = (640, 480), scale: Double = 1.6, amplitude: Double = 1) throws -> RGBImage {
        try photo.warpedLanczos(motion(t, canvas: canvas, scale: scale, amplitude: amplitude), width: canvas.0, height: canvas.1, border: 60)
    }

    /// Writes a 25 fps clip of `frames` frames with a tone; frames in `gap` show no face. Tests use
    /// the fast default encoding; benchmarks pass libx264's defaults (medium, CRF 23), which give the
    /// bit rates of downloaded talking-head videos (a few Mbit/s at 720p) and so a realistic decode cost.
    /// `speech` puts real speech (the LibriVox utterance of `golden/mfcc`, looped) on the track
    /// instead of a tone; a pure tone is an unusually slow input for FFmpeg's AAC encoder.
    public static func write(_ url: URL, frames: Int, canvas: (Int, Int) = (640, 480), scale: Double = 1.6,
                             amplitude: Double = 1, gap: Range<Int>? = nil, preset: String = "ultrafast", crf: Int = 14,
                             speech: Bool = false) throws {
        let voice = speech ? try TalkingClips.speech() : []
        let photo = try astronaut()
        var settings = ClipWriter.Settings(width: canvas.0, height: canvas.1)
        settings.crf = crf
        settings.preset = preset
        let writer = try ClipWriter(path: url.path, settings: settings)
        for t in 0..<frames {
            let image = gap?.contains(t) == true
                ? RGBImage(width: canvas.0, height: canvas.1, fill: 96)
                : try render(t, photo: photo, canvas: canvas, scale: scale, amplitude: amplitude)
            try writer.writeVideo(Frame(rgb: image))
            try writer.writeAudio((0..<640).map { i in
                voice.isEmpty ? Float(0.3 * sin(Double(t * 640 + i) * 2 * .pi * 220 / 16_000)) : voice[(t * 640 + i) % voice.count]
            })
        }
        try writer.finish()
    }
}
