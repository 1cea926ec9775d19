// Stages 1+2 against a plain full decode of the same files, measured in the same process.
//
//   swift run -c release ScanBenchmark [DIR]
//
// Without DIR it generates 720p talking-head stand-ins (H.264 + AAC, 30 fps, 44.1 kHz stereo).
// Baseline: `ffmpeg -nostdin -v error -i FILE -f null -` per file, one after another (FFmpeg picks
// its decoder threads). Ours: `pipelined run --until normalize` through the library with --jobs 1
// (decoder threads = cores, like FFmpeg) and with --jobs = cores. Each is run 3 times; the best
// time counts. Prints seconds of work per source second and the ratio to the baseline.
import Foundation
import PipelineCore
import Stages

func shell(_ args: [String]) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: args.joined(separator: " ")]) }
}

func best(_ times: Int, _ body: () async throws -> Void) async rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<times {
        let start = Date()
        try await body()
        best = min(best, Date().timeIntervalSince(start))
    }
    return best
}

let cores = ProcessInfo.processInfo.activeProcessorCount
let input: URL
if CommandLine.arguments.count > 1 {
    input = URL(fileURLWithPath: CommandLine.arguments[1])
} else {
    input = FileManager.default.temporaryDirectory.appendingPathComponent("pipelined-bench-720p")
    try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
    for i in 0..<4 {
        let url = input.appendingPathComponent("talk\(i).mp4")
        if FileManager.default.fileExists(atPath: url.path) { continue }
        try shell(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
                   "-f", "lavfi", "-i", "sine=frequency=\(200 + 40 * i):beep_factor=3:sample_rate=44100",
                   "-t", "20", "-ac", "2", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", url.path])
    }
}
let files = try Discovery.scan(input)
let sourceSeconds = files.reduce(0.0) { total, f in
    total + ((try? ScanPass().run(path: input.appendingPathComponent(f.relativePath).path).videoSeconds) ?? 0)
}
print("inputs: \(files.count) files, \(String(format: "%.1f", sourceSeconds)) s of video, \(cores) cores")

let baseline = try await best(3) {
    for f in files { try shell(["ffmpeg", "-nostdin", "-v", "error", "-i", input.appendingPathComponent(f.relativePath).path, "-f", "null", "-"]) }
}

func pipelined(jobs: Int, input: URL, files: Int) async throws -> Double {
    var configuration = PipelineConfiguration()
    configuration.broken.minDurationSeconds = 0
    return try await best(3) {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("pipelined-bench-out-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let store = try PipelineStore(path: out.appendingPathComponent("pipelined.sqlite").path)
        let engine = Engine(store: store, configuration: configuration, stages: StageRegistry.stages(for: configuration),
                            options: EngineOptions(inputDirectory: input, outputDirectory: out, jobs: jobs, until: "normalize", version: "bench"),
                            reporter: Silent())
        let summary = try await engine.run()
        precondition(summary.counts["normalize"]?["done"] == files, "not every file passed stages 1-2: \(summary.counts)")
    }
}
struct Silent: ProgressReporter { func report(_ event: ProgressEvent) {} }

let serial = try await pipelined(jobs: 1, input: input, files: files.count)
let parallel = try await pipelined(jobs: cores, input: input, files: files.count)
func line(_ name: String, _ t: Double, sourceSeconds: Double, baseline: Double) -> String {
    name.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: " %7.3f s  %6.2f ms per source second  ratio %.2fx", t, 1000 * t / sourceSeconds, t / baseline)
}
for (name, t) in [("ffmpeg -i IN -f null - (baseline)", baseline), ("pipelined stages 1+2, --jobs 1", serial), ("pipelined stages 1+2, --jobs \(cores)", parallel)] {
    print(line(name, t, sourceSeconds: sourceSeconds, baseline: baseline))
}
