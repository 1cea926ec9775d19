// Model parity on any machine with a torch backend, without FFmpeg/OpenCV/dlib (so it can be
// carried to the GPU machine as a static binary):
//
//   InferenceCheck GOLDEN_DIR [--device auto|cpu|cuda:N]
//
// Runs SyncNet v2 on golden/syncnet_v2 (forward and the offset search) on the chosen device and
// prints the deviations; exits 1 if any exceeds the golden README's tolerance.
import Foundation
import Inference

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: InferenceCheck GOLDEN_DIR [--device auto|cpu|cuda:N]\n".utf8))
    exit(64)
}
let golden = URL(fileURLWithPath: arguments[1])
let deviceName = arguments.count >= 4 && arguments[2] == "--device" ? arguments[3] : "auto"
var failures = 0
@MainActor func report(_ name: String, _ ours: [Float], _ reference: [Float]) {
    let scale = max(1, reference.map(abs).max() ?? 1)
    let worst = zip(ours, reference).map { abs($0 - $1) }.max() ?? .infinity
    let ok = ours.count == reference.count && worst <= 1e-3 * scale
    if !ok { failures += 1 }
    print("\(ok ? "ok  " : "FAIL") \(name): max |Δ| \(worst) (tolerance \(1e-3 * scale))")
}

do {
    let backend = try TorchBackend.shared()
    let device = try backend.device(deviceName)
    print("backend \(backend.path), libtorch \(backend.torchVersion), \(backend.cudaDeviceCount) CUDA device(s); running on \(device)")
    let dir = golden.appendingPathComponent("syncnet_v2")
    let (model, loaded) = try SyncNetV2.load(SafeTensors(contentsOf: dir.appendingPathComponent("weights.safetensors")), device: device)
    print("SyncNet v2: \(loaded.tensors) tensors, \(loaded.parameters) parameters")
    let io = try SafeTensors(contentsOf: dir.appendingPathComponent("io.safetensors"))
    let audio = try Tensor(io.float32("aud_input"), shape: [2, 1, 13, 20], device: device)
    report("forward_aud", try model.forwardAudio(audio).floats(), try io.float32("forward_aud"))
    let lip = try Tensor(io.uint8("lip_input_u8").map(Float.init), shape: [2, 3, 5, 224, 224], device: device)
    report("forward_lip", try model.forwardLip(lip).floats(), try io.float32("forward_lip"))
    let evalURL = dir.appendingPathComponent("eval.safetensors")
    if FileManager.default.fileExists(atPath: evalURL.path) {
        let data = try SafeTensors(contentsOf: evalURL)
        let r = try model.evaluate(frames: data.uint8("eval_frames_u8").map(Float.init), frameCount: 40, mfcc: data.float32("eval_mfcc"),
                                   mfccColumns: 160, device: device)
        report("dists", r.distances.flatMap { $0 }, try data.float32("dists"))
        let ok = r.offset == 3 && abs(r.minDistance - 5.227066) <= 5.3e-3 && abs(r.confidence - 7.697222) <= 7.7e-3
        if !ok { failures += 1 }
        print("\(ok ? "ok  " : "FAIL") evaluation: offset \(r.offset) (3), min distance \(r.minDistance) (5.227066), confidence \(r.confidence) (7.697222)")
    }
} catch {
    print("FAIL \(error)")
    failures += 1
}
exit(failures == 0 ? 0 : 1)
