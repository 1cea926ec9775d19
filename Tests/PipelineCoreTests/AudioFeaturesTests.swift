import CFFmpeg
import Foundation
import PipelineCore
import PipelineTestSupport
import Testing

/// The audio features of the sync models against `golden/mfcc` and `golden/mel` (float64 bounds of
/// the golden README: 1e-9 relative for MFCC, 1e-9 absolute for the mel spectrogram).
@Suite struct AudioFeaturesTests {
    static func file(_ path: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(contentsOf: Golden.directory.appendingPathComponent(path))
    }

    @Test func mfccMatchesPythonSpeechFeatures() throws {
        let g = try Self.file("mfcc/mfcc.safetensors")
        let mfcc = MFCC()
        let bank = try g.float64("mel_filterbank")
        #expect(mfcc.filterbank.flatMap { $0 } == bank, "filter bank differs")
        let samples = try g.int16("waveform_int16").map(Double.init)
        let ours = try mfcc.features(samples)
        let expected = try g.float64("mfcc")
        #expect(ours.count == 298 && ours.allSatisfy { $0.count == 13 })
        let worst = zip(ours.flatMap { $0 }, expected).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? .infinity
        #expect(worst <= 1e-9, "MFCC differs by up to \(worst) (relative)")
    }

    /// The transform's spare buffer room must not carry whatever the heap held before: blocks of
    /// the buffers' sizes are filled with garbage and freed first, so a RealFFT that reused them
    /// without zeroing would give the quiet last frame a wrong energy (it did, one run in eight).
    @Test func spectraDoNotDependOnWhatTheHeapHeld() throws {
        let g = try Self.file("mfcc/mfcc.safetensors")
        let samples = try g.int16("waveform_int16").map(Double.init)
        let expected = try g.float64("mfcc")
        for _ in 0..<4 {
            let blocks = [512 * 8 + 64, 258 * 16 + 64].map { size -> UnsafeMutableRawPointer in
                let p = av_malloc(size)!
                memset(p, 0x5A, size)
                return p
            }
            blocks.forEach { av_free($0) }
            let ours = try MFCC().features(samples).flatMap { $0 }
            let worst = zip(ours, expected).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            #expect(worst <= 1e-9, "MFCC differs by up to \(worst) after the heap held garbage")
        }
    }

    @Test func melMatchesLatentSync() throws {
        let g = try Self.file("mel/mel.safetensors")
        let mel = MelSpectrogram()
        let basis = try g.float32("mel_basis").map(Double.init)
        let basisError = maxDifference(mel.basis.flatMap { $0 }, basis)
        #expect(basisError == 0, "mel basis differs by up to \(basisError)")
        let samples = try g.float32("waveform_float32")
        let ours = try mel.spectrogram(samples)
        let expected = try g.float64("mel")
        #expect(ours.count == 80 && ours[0].count == 240)
        let flat = ours.flatMap { $0 }
        let worst = maxDifference(flat, expected)
        #expect(worst <= 1e-9, "mel differs by up to \(worst)")
        #expect(zip(flat, expected).allSatisfy { ($0 == -4) == ($1 == -4) }, "the −4 floor is hit elsewhere")
        for start in [10, 20] {
            let window = try #require(MelSpectrogram.window(ours, startFrame: start))
            let reference = try g.float64("mel_window_start\(start)")
            #expect(window.count == 80 && window[0].count == 52)
            #expect(zip(window.flatMap { $0 }, reference).allSatisfy { abs($0 - $1) <= 1e-9 }, "window at \(start)")
        }
        #expect(MelSpectrogram.window(ours, startFrame: 60) == nil, "a window past the end must be refused")
    }
}
