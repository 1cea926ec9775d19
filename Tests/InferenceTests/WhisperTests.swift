import Foundation
import Inference
import PipelineCore
import PipelineTestSupport
import Testing

/// Whisper-tiny features against `golden/whisper_tiny_encoder` (front end, encoder, chunks).
@Suite struct WhisperTests {

    @Test func logMelMatchesTheReference() throws {
        let io = try SafeTensors(contentsOf: Golden.directory.appendingPathComponent("whisper_tiny_encoder/io.safetensors"))
        let front = WhisperLogMel()
        #expect(maxDifference(front.filters.flatMap { $0.map(Float.init) }, try io.float32("mel_filters")) <= 1e-7)
        let mel = try front.spectrogram(io.float32("waveform_float32"))
        #expect(mel.count == 80 && mel[0].count == 299)
        let worst = maxDifference(mel.flatMap { $0 }, try io.float32("log_mel"))
        #expect(worst <= 1e-3, "log-mel differs by \(worst)")
    }

    @Test func encoderStatesAndChunksMatchTheReference() throws {
        let dir = try Golden.directory.appendingPathComponent("whisper_tiny_encoder")
        let (encoder, report) = try WhisperAudioEncoder.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")))
        #expect(report.parameters == 7_632_384, "\(report.parameters)")
        let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
        let reference = try io.float32("log_mel")
        let logMel = (0..<80).map { b in Array(reference[(b * 299)..<((b + 1) * 299)]) }

        // The stem on the stored log-mel (zero-padded to 3000 frames), first 149 frames.
        var input = [Float](repeating: 0, count: 80 * 3000)
        for b in 0..<80 { for t in 0..<299 { input[b * 3000 + t] = logMel[b][t] } }
        let stem = try encoder.hiddenStates(Tensor(input, shape: [1, 80, 3000])).stem.narrowed(1, 0..<149).floats()
        let stemError = maxDifference(stem, try io.float32("conv_stem_out"))

        let (features, frames) = try encoder.features(logMel: logMel)
        #expect(frames == 149 && WhisperAudioEncoder.chunkCount(frames: frames) == 76)
        let statesError = maxDifference(features, try io.float32("hidden_states"))
        var chunkError: Float = 0
        for i in [0, 1, 10, 75] {
            let chunk = WhisperAudioEncoder.chunk(features, frames: frames, width: 384, videoFrame: i)
            chunkError = max(chunkError, maxDifference(chunk, try io.float32("chunk_frame\(i)")))
        }
        #expect(stemError <= 2e-4 && statesError <= 2e-4 && chunkError <= 2e-4, "stem \(stemError), states \(statesError), chunks \(chunkError)")
        print("Whisper encoder on CPU: stem \(stemError), hidden states \(statesError), chunks \(chunkError)")

        // End to end from the waveform (our float64 front end).
        let fromWaveform = try encoder.features(logMel: WhisperLogMel().spectrogram(io.float32("waveform_float32"))).values
        let endToEnd = maxDifference(fromWaveform, try io.float32("hidden_states"))
        #expect(endToEnd <= 2e-3, "end to end \(endToEnd)")
    }

    /// The random-weights model uses Whisper's own positional table.
    @Test func positionalTableIsWhispersSinusoid() throws {
        let weights = try SafeTensors(contentsOf: Golden.directory.appendingPathComponent("whisper_tiny_encoder/weights.safetensors"))
        let stored = try weights.float32("encoder.positional_embedding")
        #expect(maxDifference(WhisperAudioEncoder.sinusoids(frames: 1500, width: 384), stored) <= 1e-3)
    }
}
