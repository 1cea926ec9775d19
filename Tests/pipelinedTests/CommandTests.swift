import Foundation
import Inference
import PipelineCore
import PipelineTestSupport
import Testing

@Suite(.serialized) struct CommandTests {
    static func smallInput() throws -> URL {
        let root = try Fixtures.temporaryDirectory("cli")
        let input = root.appendingPathComponent("raw")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try Fixtures.video(input.appendingPathComponent("good.mp4"), seconds: 1.5)
        try Fixtures.ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast"],
                            output: input.appendingPathComponent("silent.mp4"))
        try "[broken]\nmin_duration_seconds = 1.0\n".write(to: root.appendingPathComponent("pipeline.conf"), atomically: true, encoding: .utf8)
        return root
    }

    /// A second run on a locked database exits 75 with a clear message, or waits with --wait.
    @Test func secondRunRefusesOrWaits() throws {
        let root = try Self.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let args = ["run", "--input-dir", root.appendingPathComponent("raw").path, "--output-dir", out.path,
                    "--config", root.appendingPathComponent("pipeline.conf").path, "--quiet"]
        var lock: RunLock? = try RunLock(databasePath: out.appendingPathComponent("pipelined.sqlite").path, wait: false)
        let refused = try CLI.run(args)
        #expect(refused.status == 75)
        #expect(refused.stderr.contains("another pipelined run"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--wait"))

        // Deterministic: the second run says that it waits; only then is the lock released.
        let waiting = Process()
        waiting.executableURL = try CLI.executable
        waiting.arguments = args.filter { $0 != "--quiet" } + ["--wait"]
        waiting.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        waiting.standardError = pipe
        try waiting.run()
        let said = DispatchSemaphore(value: 0)
        let reader = Thread {
            var text = ""
            while case let data = pipe.fileHandleForReading.availableData, !data.isEmpty {
                let before = text.contains("waiting for another run")
                text += String(decoding: data, as: UTF8.self)
                if !before && text.contains("waiting for another run") { said.signal() }
            }
        }
        reader.start()
        #expect(said.wait(timeout: .now() + 120) == .success, "--wait never said it waits")
        #expect(waiting.isRunning, "--wait must block while the lock is held")
        lock = nil
        waiting.waitUntilExit()
        #expect(waiting.terminationStatus == 0)
        _ = lock
        let status = try CLI.run(["status", "--output-dir", out.path, "--json"])
        let report = try JSONDecoder.iso.decode(StatusReport.self, from: Data(status.stdout.utf8))
        #expect(report.stages.first { $0.stage == "broken" }?.done == 1)
    }

    /// `status --json` has the documented, stable shape and agrees with the run.
    @Test func statusJSONIsStable() throws {
        let root = try Self.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let out = root.appendingPathComponent("out")
        let run = try CLI.run(["run", "--input-dir", root.appendingPathComponent("raw").path, "--output-dir", out.path,
                               "--config", root.appendingPathComponent("pipeline.conf").path, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let summary = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        #expect(Set(summary.keys) == ["counts", "failing", "interrupted", "runId", "sources"])

        let status = try CLI.run(["status", "--output-dir", out.path, "--json"])
        #expect(status.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [String: Any]
        #expect(Set(object.keys) == ["schemaVersion", "database", "activeSources", "goneSources", "clips", "clipSeconds", "stages", "rejections", "failures", "lastRun", "workers"])
        #expect(object["schemaVersion"] as? Int == 1)
        #expect((object["workers"] as? [Any])?.isEmpty == true, "the run has ended: no worker")
        let stages = object["stages"] as! [[String: Any]]
        #expect(stages.map { $0["stage"] as! String } == ["broken", "normalize", "scenes", "segment", "align", "sync", "quality", "publish"])
        #expect(Set(stages[0].keys).isSuperset(of: ["stage", "done", "rejected", "failed", "pending", "running", "workSeconds"]))
        #expect(stages[0]["done"] as? Int == 1 && stages[0]["rejected"] as? Int == 1 && stages[1]["done"] as? Int == 1)
        #expect((stages[0]["recentItemsPerSecond"] as? Double ?? 0) > 0, "two items decided in the last minutes")
        let rejection = (object["rejections"] as! [[String: Any]]).first!
        #expect(rejection["stage"] as? String == "broken" && rejection["count"] as? Int == 1)
        let example = (rejection["examples"] as! [[String: Any]]).first!
        #expect(example["item"] as? String == "silent.mp4")
        #expect((example["reason"] as? String)?.contains("no audio stream") == true)
        let last = object["lastRun"] as! [String: Any]
        #expect(last["status"] as? String == "finished")

        // The human form names the rejection and its example too.
        let text = try CLI.run(["status", "--output-dir", out.path])
        #expect(text.stdout.contains("no audio stream") && text.stdout.contains("silent.mp4"))
    }

    /// `doctor` names the media libraries, the model files and the torch backend it found.
    @Test func doctorReportsWhatWorks() throws {
        let r = try CLI.run(["doctor"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        for text in ["media: FFmpeg", "stage 5 landmarks", "stage 6 sync", "stage 7 quality", "torch backend:", "libtorch"] {
            #expect(r.stdout.contains(text), "doctor output lacks \"\(text)\": \(r.stdout)")
        }
        let dir = try Fixtures.temporaryDirectory("doctor")
        defer { try? FileManager.default.removeItem(at: dir) }
        let conf = dir.appendingPathComponent("pipeline.conf")
        try "[align]\nlandmark_model = \"/nonexistent/model.dat\"\n".write(to: conf, atomically: true, encoding: .utf8)
        let broken = try CLI.run(["doctor", "--config", conf.path])
        #expect(broken.status == 1 && broken.stdout.contains("MISSING stage 5 landmarks") && broken.stdout.contains("/nonexistent/model.dat"), "\(broken.stdout)")
    }

    /// With model-backed methods configured, `doctor` loads each weights file strictly and names
    /// what is wrong; `run --device cuda:0` on a CPU-only backend fails before any work.
    @Test func doctorAndRunCheckModelBackedMethods() throws {
        let dir = try Fixtures.temporaryDirectory("doctor-models")
        defer { try? FileManager.default.removeItem(at: dir) }
        let generator = RandomWeights(seed: 7, keep: true)
        _ = try SyncNetV2(WeightSource(.random(generator)))
        let syncnet = dir.appendingPathComponent("syncnet_v2.model")
        try TorchCheckpoint.write(generator.generated, to: syncnet)
        var damaged = generator.generated
        damaged["netfclip.3.bias"] = nil
        let iqa = dir.appendingPathComponent("koniq_pretrained.pkl")
        try TorchCheckpoint.write(damaged, to: iqa)  // not hyperIQA's keys at all
        let conf = dir.appendingPathComponent("pipeline.conf")
        try """
        [sync]
        method = "syncnet_v2"
        syncnet_v2_weights = "\(syncnet.path)"
        [quality]
        method = "hyperiqa"
        hyperiqa_weights = "\(iqa.path)"
        [inference]
        device = "cpu"
        """.write(to: conf, atomically: true, encoding: .utf8)
        let r = try CLI.run(["doctor", "--config", conf.path])
        #expect(r.status == 1, "\(r.stdout)")
        #expect(r.stdout.contains("ok      stage 6 sync (syncnet_v2): \(syncnet.path): 88 tensors, 13631616 parameters load strictly"), "\(r.stdout)")
        #expect(r.stdout.contains("MISSING stage 7 quality (hyperiqa): missing weight res.conv1.weight"), "\(r.stdout)")
        #expect(r.stdout.contains("inference device: cpu → cpu"), "\(r.stdout)")

        let cuda = try CLI.run(["run", "--input-dir", dir.path, "--output-dir", dir.appendingPathComponent("out").path, "--config", conf.path, "--device", "cuda:0"])
        #expect(cuda.status == 1 && cuda.stderr.contains("device cuda:0 requested") && cuda.stderr.contains("--device cpu"), "\(cuda.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out/pipelined.sqlite").path), "failed before any work")
    }

    /// `infer` without its model files names each file it needs and exits 1 before reading anything.
    @Test func inferWithoutModelFilesSaysWhatItNeeds() throws {
        let dir = try Fixtures.temporaryDirectory("infer-needs")
        defer { try? FileManager.default.removeItem(at: dir) }
        let video = dir.appendingPathComponent("in.mp4"), out = dir.appendingPathComponent("never.mp4")
        try Fixtures.video(video, seconds: 1)
        let r = try CLI.run(["infer", "--video", video.path, "--audio", video.path, "--out", out.path])
        #expect(r.status == 1, "\(r.stderr)")
        for needed in ["--unet", "latentsync_unet.pt", "--vae", "--whisper", "tiny.pt", "--mask", "mask.png"] {
            #expect(r.stderr.contains(needed), "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    /// `train syncnet` end to end through the CLI (a few steps of a small model, with --max-steps and
    /// --devices overriding the file), then `eval syncnet-acc` on its checkpoint.
    @Test func trainAndEvalSyncNet() throws {
        let root = try Fixtures.temporaryDirectory("cli-train")
        defer { try? FileManager.default.removeItem(at: root) }
        let list = try AlignedTalkingClips.dataset(in: root, count: 3, frames: 40, size: 32)
        let config = root.appendingPathComponent("syncnet.toml")
        try """
        [data]
        list = "fileslist.txt"
        resolution = 32
        validation_clips = 1
        validation_samples = 8
        validation_batch_size = 8
        [model]
        preset = "custom"
        audio_channels = [32, 32, 32, 32, 64, 128]
        audio_factors = [[2, 1], 2, 2, 2, 2, [2, 3]]
        audio_attention = [0, 0, 0, 0, 0, 0]
        visual_channels = [32, 32, 64, 128, 128]
        visual_factors = [[1, 2], 2, 2, 2, 2]
        visual_attention = [0, 0, 0, 1, 0]
        [train]
        output_dir = "run"
        batch_size = 4
        learning_rate = 1e-4
        max_steps = 1000
        devices = "cuda:7"
        """.write(to: config, atomically: true, encoding: .utf8)
        let r = try CLI.run(["train", "syncnet", "--config", config.path, "--max-steps", "3", "--devices", "cpu"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("steps 0→3") && r.stderr.contains("validation loss"), "\(r.stdout)\n\(r.stderr)")
        let checkpoint = root.appendingPathComponent("run/checkpoint-00000003.safetensors")
        #expect(FileManager.default.fileExists(atPath: checkpoint.path))
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("run/training.svg").path))
        let eval = try CLI.run(["eval", "syncnet-acc", "--checkpoint", checkpoint.path, "--data", list.path, "--samples", "8", "--batch-size", "4", "--device", "cpu"])
        #expect(eval.status == 0 && eval.stdout.contains("accuracy") && eval.stdout.contains("8 samples from 3 clips"), "\(eval.stdout)\n\(eval.stderr)")
        // The file's own device (cuda:7) on a CPU-only backend is a clear error, before any step.
        let cuda = try CLI.run(["train", "syncnet", "--config", config.path, "--max-steps", "4"])
        #expect(cuda.status == 1 && cuda.stderr.contains("cuda:7"), "\(cuda.stderr)")
    }

    @Test func badConfigurationAndUsageAreClearErrors() throws {
        let root = try Self.smallInput()
        defer { try? FileManager.default.removeItem(at: root) }
        let conf = root.appendingPathComponent("typo.conf")
        try "[normalise]\nfps = 25\n".write(to: conf, atomically: true, encoding: .utf8)
        let r = try CLI.run(["run", "--input-dir", root.appendingPathComponent("raw").path, "--output-dir", root.appendingPathComponent("o").path, "--config", conf.path])
        #expect(r.status == 1)
        #expect(r.stderr.contains("unknown key \"normalise\""), "\(r.stderr)")
        let missing = try CLI.run(["run", "--input-dir", root.appendingPathComponent("nope").path, "--output-dir", root.appendingPathComponent("o").path])
        #expect(missing.status == 1 && missing.stderr.contains("does not exist"), "\(missing.stderr)")
        let until = try CLI.run(["run", "--input-dir", root.path, "--until", "aling"])
        #expect(until.status == 64 && until.stderr.contains("unknown stage"), "\(until.stderr)")
        let help = try CLI.run(["--help"])
        #expect(help.stdout.contains("75") && help.stdout.contains("130"), "exit codes are documented in --help")
    }
}

extension JSONDecoder {
    static var iso: JSONDecoder { let d = JSONDecoder(); d.dateDecodingStrategy = .iso8601; return d }
}
