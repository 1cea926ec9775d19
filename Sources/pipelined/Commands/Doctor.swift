import ArgumentParser
import Foundation
import Inference
import PipelineCore
import Stages

extension Pipelined {
    struct Doctor: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check what this machine can run: media libraries, model files, the torch backend and its devices.")

        @Option(name: .long, help: "pipeline.conf whose model files to check. Default: built-in defaults.",
                transform: { URL(fileURLWithPath: $0) })
        var config: URL?

        func run() throws {
            let configuration: PipelineConfiguration
            do { configuration = try PipelineConfiguration.load(config) } catch { throw fail(error) }
            var problems = 0
            func line(_ ok: Bool, _ what: String, _ detail: String) {
                if !ok { problems += 1 }
                print("\(ok ? "ok     " : "MISSING") \(what): \(detail)")
            }
            line(true, "media", MediaLibraries.description)
            do {
                _ = try DlibFaceLandmarkDetector(modelPath: configuration.align.landmarkModel)
                line(true, "stage 5 landmarks", "\(configuration.align.landmarkModel) loads (68 points)")
            } catch { line(false, "stage 5 landmarks", "\(error) — Debian: apt-get install libdlib-data, or set [align] landmark_model") }
            if configuration.sync.method == "correlation" { line(true, "stage 6 sync", "method correlation: no weights needed") }
            if configuration.quality.method == "brisque" {
                do {
                    _ = try BrisqueScorer(model: configuration.quality.brisqueModel, range: configuration.quality.brisqueRange)
                    line(true, "stage 7 quality", "BRISQUE model \(configuration.quality.brisqueModel) loads")
                } catch { line(false, "stage 7 quality", "\(error) — Debian: apt-get install opencv-data, or set [quality] brisque_model/brisque_range") }
            }
            // The torch backend is optional until a configured method needs a model.
            let needsTorch = ModelMethods.needed(by: configuration)
            do {
                let backend = try TorchBackend.shared()
                let devices = backend.cudaDeviceCount == 0 ? "no CUDA device (CPU only)" : "\(backend.cudaDeviceCount) CUDA device(s)"
                print("ok      torch backend: \(backend.path), libtorch \(backend.torchVersion)\(backend.builtWithCUDA ? " (CUDA build)" : ""), \(devices)")
                do {
                    let device = try backend.device(configuration.inference.device)
                    line(true, "inference device", "\(configuration.inference.device) → \(device)")
                } catch { line(false, "inference device", "\(error)") }
                for check in ModelMethods.check(configuration) {
                    line(check.problem == nil, check.stage, check.problem ?? "\(check.weights): \(check.detail)")
                }
            } catch {
                if needsTorch {
                    line(false, "torch backend", "\(error) (the configured sync/quality method needs it)")
                } else {
                    print("note    torch backend: \(error) (needed only by model-backed methods, train and infer)")
                }
            }
            if problems > 0 { throw ExitCode(ExitStatus.fatal) }
        }
    }
}
