import Foundation
import Inference
import PipelineCore

/// The models of the model-backed methods, loaded once per process per (model, file, device) and
/// shared by every worker (inference on separate tensors is thread-safe in libtorch).
enum ModelStore {
    nonisolated(unsafe) private static var loaded: [String: Any] = [:]
    private static let lock = NSLock()

    /// The model `make` builds from the weights at `path`, cached.
    static func model<M>(_ kind: String, weights path: String, device: Device, _ make: (any TensorArchive) throws -> M) throws -> M {
        let key = "\(kind)|\(path)|\(device)"
        lock.lock(); defer { lock.unlock() }
        if let model = loaded[key] as? M { return model }
        let model = try make(openWeights(path))
        loaded[key] = model
        return model
    }

    /// A batcher shared by every worker that runs `kind` on `device` (created once; see `RequestBatcher`).
    static func batcher(_ kind: String, device: Device, rowSize: Int, maxRows: Int, _ forward: @escaping RequestBatcher.Forward) -> RequestBatcher {
        let key = "batcher|\(kind)|\(device)"
        lock.lock(); defer { lock.unlock() }
        if let batcher = loaded[key] as? RequestBatcher { return batcher }
        let batcher = RequestBatcher(rowSize: rowSize, maxRows: maxRows, forward: forward)
        loaded[key] = batcher
        return batcher
    }

    /// A weights file: safetensors, or a torch checkpoint (`torch.save`, zip or legacy format) whose
    /// state dict is taken from `state_dict` / `model_state_dict` when present.
    static func openWeights(_ path: String) throws -> any TensorArchive {
        let url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: path) else {
            throw WeightError.unreadable(path: path, reason: "no such file (nothing is downloaded: put the reference's weights there or change the path in pipeline.conf)")
        }
        let head = try FileHandle(forReadingFrom: url).read(upToCount: 9) ?? Data()
        // safetensors: 8-byte header length, then the JSON header's "{".
        if head.count == 9, head[head.startIndex + 8] == UInt8(ascii: "{") { return try SafeTensors(contentsOf: url) }
        return try TorchCheckpoint(contentsOf: url).stateDictArchive(under: ["state_dict.", "model_state_dict.", ""])
    }

    /// Identifies a weights file's content for score keys without reading it: path, size, modification time.
    static func fingerprint(ofWeights path: String) -> String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
        let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return Fingerprint.of(path, String(size), String(modified))
    }

    /// `auto`, `cpu` or `cuda:N` on the process's torch backend.
    static func device(_ name: String) throws -> Device { try TorchBackend.shared().device(name) }
}

/// The model-backed methods a configuration selects, for `pipelined doctor` and for early checks in `run`.
public enum ModelMethods {
    public struct Check: Sendable {
        public var stage: String, weights: String
        /// nil when the weights load strictly; otherwise why not.
        public var problem: String?
        public var detail: String
    }

    /// Each configured model: whether its weights file loads strictly into the architecture (on the CPU).
    public static func check(_ c: PipelineConfiguration) -> [Check] {
        var checks: [Check] = []
        func attempt(_ stage: String, _ path: String, _ load: (any TensorArchive) throws -> StrictLoader.Report) {
            do {
                let report = try load(ModelStore.openWeights(path))
                checks.append(Check(stage: stage, weights: path, problem: nil,
                                    detail: "\(report.tensors) tensors, \(report.parameters) parameters load strictly"))
            } catch { checks.append(Check(stage: stage, weights: path, problem: "\(error)", detail: "")) }
        }
        switch c.sync.method {
        case "syncnet_v2": attempt("stage 6 sync (syncnet_v2)", c.sync.syncnetV2Weights) { try SyncNetV2.load($0).1 }
        case "stable_syncnet": attempt("stage 6 sync (stable_syncnet)", c.sync.stableSyncnetWeights) { try StableSyncNet.load($0, config: StableSyncNet.Config.of($0)).1 }
        default: break
        }
        if c.quality.method == "hyperiqa" { attempt("stage 7 quality (hyperiqa)", c.quality.hyperiqaWeights) { try HyperIQA.load($0).1 } }
        return checks
    }

    /// Whether the configuration needs the torch backend.
    public static func needed(by c: PipelineConfiguration) -> Bool { c.sync.method != "correlation" || c.quality.method != "brisque" }

    /// Resolves `device` on the backend now, so that a bad `--device` fails before any work starts.
    public static func validateDevice(_ device: String) throws { _ = try ModelStore.device(device) }
}

extension ModelMethods {
    /// The devices a worker uses by default for its model-backed stages: every visible CUDA
    /// device, else the CPU.
    public static func visibleDevices() throws -> [String] {
        let count = try TorchBackend.shared().cudaDeviceCount
        return count > 0 ? (0..<count).map { "cuda:\($0)" } : ["cpu"]
    }

    /// Bytes the CUDA caching allocator has allocated and reserved on `device` (nil for the CPU,
    /// or where the backend cannot say): the worker's device-memory metric.
    public static func deviceMemory(_ device: String) -> (allocated: Int, reserved: Int)? {
        guard let backend = try? TorchBackend.shared(), let resolved = try? backend.device(device),
              let stats = try? backend.memoryStats(resolved) else { return nil }
        return (stats.allocated, stats.reserved)
    }
}
