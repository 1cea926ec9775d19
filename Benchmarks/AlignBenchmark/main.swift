// Stage 5 throughput on 720p talking-face clips: aligned output frames per second (all cores and
// per core) and the share of time in decoding, detection, landmarks, warp and encoding.
//
//   swift run -c release AlignBenchmark [clips] [resolution]
//
// Generates `clips` (default 4) 10 s 1280×720 clips of a moving face (the astronaut photo of
// golden/affine, face about 300 px high; libx264 medium CRF 23; real speech on the audio track), runs stages 1–4, then times stage 5 alone with --jobs = cores.
// Then, in the same process, the decoding of each source's second clip as a fresh read (seek to
// the keyframe, decode forward) and as the continuation of the first clip's pass (what stage 5
// does when one worker aligns both).
import Foundation
import PipelineCore
import PipelineTestSupport
import Stages

struct Silent: ProgressReporter { func report(_ event: ProgressEvent) {} }

let clips = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 4
let resolution = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2])! : 256
let cores = ProcessInfo.processInfo.activeProcessorCount
let input = FileManager.default.temporaryDirectory.appendingPathComponent("pipelined-align-bench-speech")
try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
for i in 0..<clips where !FileManager.default.fileExists(atPath: input.appendingPathComponent("face\(i).mp4").path) {
    try FaceClips.write(input.appendingPathComponent("face\(i).mp4"), frames: 250, canvas: (1280, 720), scale: 3.2, amplitude: 1 + Double(i) * 0.1,
                         preset: "medium", crf: 23, speech: true)
}
let c: PipelineConfiguration = {
    var c = PipelineConfiguration()
    c.broken.minDurationSeconds = 1
    c.align.resolution = resolution
    return c
}()
let out = FileManager.default.temporaryDirectory.appendingPathComponent("pipelined-align-bench-out-\(UUID().uuidString)")
defer { try? FileManager.default.removeItem(at: out) }
let store = try PipelineStore(path: out.appendingPathComponent("pipelined.sqlite").path)
func engine(until: String) -> Engine {
    Engine(store: store, configuration: c, stages: StageRegistry.stages(for: c),
           options: EngineOptions(inputDirectory: input, outputDirectory: out, jobs: cores, until: until, version: "bench"), reporter: Silent())
}
_ = try await engine(until: "segment").run()
// The 68-point model (~100 MB) is read once per process; a dataset run pays it once, so it is timed
// apart from the steady-state throughput.
let loadStart = Date()
_ = try DlibFaceLandmarkDetector(modelPath: c.align.landmarkModel)
print(String(format: "landmark model load: %.2f s (once per process, not in the figures below)", Date().timeIntervalSince(loadStart)))
let start = Date()
let summary = try await engine(until: "align").run()
let wall = Date().timeIntervalSince(start)

var frames = 0
var shares: [String: Double] = [:]
var itemSeconds = 0.0
var detections: [String: Int] = [:]
for row in try store.currentResults(stage: "align").values where row.state == .done {
    let m = try JSONSerialization.jsonObject(with: Data(row.metrics!.utf8)) as! [String: Any]
    frames += (m["pieces"] as! [[String: Any]]).reduce(0) { let f = $1["frames"] as! [Int]; return $0 + f[1] - f[0] }
    for (k, v) in m["seconds"] as! [String: Double] { shares[k, default: 0] += v }
    itemSeconds += row.seconds ?? 0
    for (k, v) in m["tracker"] as! [String: Any] where k.hasSuffix("etections") { detections[k, default: 0] += v as! Int }
}
let total = shares.values.reduce(0, +)
print("align \(resolution): \(summary.counts["align"] ?? [:]) clips, \(frames) aligned frames in \(String(format: "%.2f", wall)) s on \(cores) cores")
print(String(format: "aligned frames/s: %.1f (all cores), %.1f per core", Double(frames) / wall, Double(frames) / wall / Double(cores)))
// What the stage's clocks do not cover: per item (opening the source, the model pool, writing
// and syncing the outputs) and between items (the engine's claims and commits, idle cores).
shares["item setup+commit"] = max(0, itemSeconds - total)
shares["engine+idle"] = max(0, wall * Double(cores) - itemSeconds)
let budget = wall * Double(cores)
print("detector runs:", detections.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
print("core time per aligned frame:", shares.sorted { $0.key < $1.key }.map { String(format: "%@ %.2f ms (%.0f%%)", $0.key, 1000 * $0.value / Double(frames), 100 * $0.value / budget) }.joined(separator: ", "))

// Decoding alone: the second clip of each source read fresh vs. continued from the first clip's
// pass, alternating so that both see the same machine.
var fresh = 0.0, continued = 0.0, compared = 0
let clipsBySource = Dictionary(grouping: try store.clipsOfActiveSources(), by: { $0.source.id! })
for round in 0..<2 {
    for source in try store.activeSources() {
        let clipsOfSource = (clipsBySource[source.id!] ?? []).map(\.clip)
        guard clipsOfSource.count >= 2, let map = try FrameMapAnalysis.load(sourceId: source.id!, rate: Rational(25, 1), from: store) else { continue }
        let reader = NormalizedReader(path: input.appendingPathComponent(source.relativePath).path, frameMap: map, decoderThreads: 1)
        let first = clipsOfSource[0], second = clipsOfSource[1]
        func timeFresh() throws {
            let t = Date()
            try reader.read(frames: second.startFrame..<second.endFrame, video: { _, _ in }, audio: { _ in })
            fresh += Date().timeIntervalSince(t)
        }
        func timeContinued() throws {
            let pass = try reader.pass(from: first.startFrame)
            try pass.read(upTo: first.endFrame, video: { _, _ in }, audio: { _ in })
            let t = Date()
            try pass.read(upTo: second.endFrame, video: { _, _ in }, audio: { _ in })
            continued += Date().timeIntervalSince(t)
        }
        if round == 0 { try timeFresh(); try timeContinued() } else { try timeContinued(); try timeFresh() }
        compared += second.endFrame - second.startFrame
    }
}
if compared > 0 {
    print(String(format: "second clips' decoding, one core: fresh read %.2f ms/frame, continued pass %.2f ms/frame (%.2fx)",
                 1000 * fresh / Double(compared), 1000 * continued / Double(compared), fresh / max(continued, 1e-9)))
}
