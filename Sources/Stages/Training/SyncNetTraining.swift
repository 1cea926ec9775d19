import Foundation
import Inference
import PipelineCore

/// `pipelined train syncnet`: the training loop around `SyncNetTrainer` — data, validation,
/// checkpoints, resumption, the plot and the progress lines.
///
/// Checkpoints are pairs written into `output_dir`:
/// - `checkpoint-<step>.safetensors`: the weights under the reference's key names, with the model
///   configuration in the metadata (`stable_syncnet_config`), so `sync.stable_syncnet_weights` and
///   PyTorch users (`safetensors.torch.load_file`) read it directly;
/// - `checkpoint-<step>.state.safetensors`: AdamW's moments, and in its metadata the step counters,
///   loss scale and the loss/accuracy history.
/// Each file is written through a temporary and a rename, the state first: a checkpoint counts only
/// once its weights file exists, so a crash at any instant leaves the previous one usable. A run
/// whose `output_dir` holds checkpoints continues from the newest, on the same curve: samples are a
/// function of their number, so the resumed run sees exactly the data an uninterrupted one would.
public struct SyncNetTraining {
    public struct History: Codable, Sendable, Equatable {
        public var trainSteps: [Int] = []
        public var trainLosses: [Double] = []
        public var validationSteps: [Int] = []
        public var validationLosses: [Double] = []
        public var validationAccuracies: [Double] = []
    }

    struct State: Codable {
        var format = "pipelined-syncnet-train-v1"
        var globalStep: Int
        var optimizerStep: Int
        var scaler: GradScaler
        var history: History
        var seed: UInt64
        var samplesPerStep: Int
    }

    public struct Summary: Sendable {
        public var firstStep: Int, lastStep: Int
        public var history: History
        public var checkpoint: URL?
        public var devices: [Device]
        public var precision: TrainingPrecision
    }

    public struct Evaluation: Sendable, Equatable {
        public var loss: Double, accuracy: Double, samples: Int
    }

    let configuration: SyncNetTrainingConfiguration
    let log: @Sendable (String) -> Void

    public init(_ configuration: SyncNetTrainingConfiguration, log: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration; self.log = log
    }

    /// Trains until `max_steps` (or until `stopRequested` answers true, after a checkpoint).
    public func run(stopRequested: @Sendable () -> Bool = { false }) throws -> Summary {
        let c = configuration
        let backend = try TorchBackend.shared()
        let devices = try c.resolveDevices(backend: backend)
        let precision = try c.precision(on: devices)
        let fm = FileManager.default
        try fm.createDirectory(at: c.train.outputDirectory, withIntermediateDirectories: true)

        let dataset = try SyncNetClips.load(c.data.list)
        for (path, reason) in dataset.skipped.prefix(5) { log("skipped \(path): \(reason)") }
        if dataset.skipped.count > 5 { log("… \(dataset.skipped.count - 5) more clips skipped") }
        let heldOut = c.data.validationClips > 0 ? c.data.validationClips : max(1, dataset.clips.count / 20)
        let (trainClips, validationClips) = dataset.split(validationClips: heldOut)
        guard !trainClips.isEmpty else {
            throw TrainingError.data("all \(dataset.clips.count) clips are held out for validation; lower data.validation_clips")
        }
        let store = SyncNetClipStore(resolution: c.data.resolution,
                                     melCache: c.data.melCache ?? c.train.outputDirectory.appendingPathComponent("mel_cache"),
                                     budgetBytes: c.data.clipCacheMiB << 20)
        let threads = c.data.loaderThreads > 0 ? c.data.loaderThreads : max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
        let train = SyncNetSampler(clips: trainClips, store: store, seed: c.train.seed)
        let validation = SyncNetSampler(clips: validationClips, store: store, seed: c.train.seed ^ 0x5EED_0F_7A11)

        // Resume from the newest complete checkpoint of this run, else start from `model.init` or fresh weights.
        let latest = try Self.checkpoints(in: c.train.outputDirectory).last
        var state: State?
        let initial: (any TensorArchive)?
        if let latest {
            let weights = try SafeTensors(contentsOf: latest.weights)
            let stored = try StableSyncNet.Config.of(weights)
            guard stored == c.model else {
                throw TrainingError.checkpoint("\(latest.weights.path) was trained with another model configuration than \(c.data.list.path)'s config asks for; "
                                               + "use a new train.output_dir or restore the configuration")
            }
            let stateFile = try SafeTensors(contentsOf: latest.state)
            guard let json = stateFile.metadata["training_state"], let decoded = try? JSONDecoder().decode(State.self, from: Data(json.utf8)) else {
                throw TrainingError.checkpoint("\(latest.state.path) has no readable training_state")
            }
            state = decoded
            initial = weights
            log("resuming from \(latest.weights.lastPathComponent) (step \(decoded.globalStep))")
        } else if let path = c.initialWeights {
            initial = try ModelStore.openWeights(path)
            log("starting from \(path)")
        } else {
            initial = nil
        }

        let trainer = try SyncNetTrainer(config: c.model, devices: devices, precision: precision, optimizer: c.train.optimizer,
                                         maxGradientNorm: c.train.maxGradientNorm, initial: initial, seed: c.train.seed, backend: backend)
        let perMicro = c.train.batchSize * devices.count
        let samplesPerStep = perMicro * c.train.gradientAccumulation
        var history = History()
        var step = 0
        if let state, let latest {
            guard state.samplesPerStep == samplesPerStep, state.seed == c.train.seed else {
                throw TrainingError.checkpoint("\(latest.state.path) was written with \(state.samplesPerStep) samples per step and seed \(state.seed); "
                                               + "this configuration has \(samplesPerStep) and \(c.train.seed) — resuming would not continue the same run")
            }
            try trainer.restore(optimizer: SafeTensors(contentsOf: latest.state), step: state.optimizerStep, scaler: state.scaler)
            history = state.history; step = state.globalStep
        }
        let parameters = try trainer.replicas[0].collector.parameterCount()
        log("StableSyncNet \(parameters) parameters · \(trainClips.count) training / \(validationClips.count) validation clips · "
            + "\(devices.map(\.description).joined(separator: ",")) · \(precision.rawValue) · batch \(c.train.batchSize)×\(devices.count) device(s)"
            + "×\(c.train.gradientAccumulation) = \(samplesPerStep) samples/step")

        let firstStep = step
        let accumulation = c.train.gradientAccumulation
        let prefetch = BatchPrefetcher(start: step * accumulation) { index in
            try trainer.upload(train.batch(first: index * perMicro, count: perMicro, threads: threads))
        }
        defer { prefetch.stop() }

        var lastCheckpoint: URL?
        var window = (loss: 0.0, steps: 0, start: Date(), waited: 0.0)
        while step < c.train.maxSteps {
            var micro: [[SyncNetDeviceBatch]] = []
            let waitStart = Date()
            for m in 0..<accumulation { micro.append(try prefetch.take(step * accumulation + m)) }
            window.waited += Date().timeIntervalSince(waitStart)
            let report = try trainer.step(uploaded: micro)
            step += 1
            window.loss += report.loss; window.steps += 1
            if report.skipped { log("step \(step): float16 gradients overflowed; update skipped, loss scale now \(trainer.scaler.scale)") }
            if step % c.train.logEvery == 0 || step == c.train.maxSteps {
                let elapsed = Date().timeIntervalSince(window.start)
                let mean = window.loss / Double(window.steps)
                history.trainSteps.append(step); history.trainLosses.append(mean)
                log(String(format: "step %d/%d  loss %.4f  grad-norm %.3f  %.2f steps/s  %.1f samples/s  data wait %.0f%%", step, c.train.maxSteps, mean,
                           report.gradientNorm, Double(window.steps) / elapsed, Double(window.steps * samplesPerStep) / elapsed,
                           100 * window.waited / max(elapsed, 1e-9)))
                window = (0, 0, Date(), 0)
            }
            let stopping = stopRequested()
            if step % c.train.validateEvery == 0 || step == c.train.maxSteps || stopping {
                let result = try Self.evaluate(trainer, validation, samples: c.data.validationSamples, batchSize: c.data.validationBatchSize, threads: threads)
                history.validationSteps.append(step); history.validationLosses.append(result.loss); history.validationAccuracies.append(result.accuracy)
                log(String(format: "step %d  validation loss %.4f  accuracy %.3f (%d samples)", step, result.loss, result.accuracy, result.samples))
                let failures = store.failures
                if !failures.isEmpty {
                    log("\(failures.count) clip(s) skipped as unreadable, e.g. \(failures.first!.key): \(failures.first!.value)")
                }
                try TrainingPlot.write(history, title: "StableSyncNet", to: c.train.outputDirectory.appendingPathComponent("training.svg"))
            }
            if step % c.train.checkpointEvery == 0 || step == c.train.maxSteps || stopping {
                lastCheckpoint = try save(trainer, step: step, history: history, samplesPerStep: samplesPerStep)
                log("saved \(lastCheckpoint!.lastPathComponent)")
            }
            if stopping { log("stopped at step \(step)"); break }
        }
        return Summary(firstStep: firstStep, lastStep: step, history: history, checkpoint: lastCheckpoint, devices: devices, precision: precision)
    }

    /// BCE and accuracy (in sync iff cosine > 0.5, the reference's `eval_syncnet_acc`) over the first
    /// `samples` samples of `sampler` (a fixed set: the same samples at every validation).
    public static func evaluate(_ trainer: SyncNetTrainer, _ sampler: SyncNetSampler, samples: Int, batchSize: Int, threads: Int) throws -> Evaluation {
        try evaluate(sampler, samples: samples, batchSize: batchSize, threads: threads, cosines: trainer.cosines)
    }

    public static func evaluate(_ sampler: SyncNetSampler, samples: Int, batchSize: Int, threads: Int,
                                cosines: (SyncNetBatch) throws -> [Float]) throws -> Evaluation {
        var loss = 0.0, correct = 0
        for first in stride(from: 0, to: samples, by: batchSize) {
            let batch = try sampler.batch(first: first, count: min(batchSize, samples - first), threads: threads)
            let cosines = try cosines(batch)
            for (cos, label) in zip(cosines, batch.labels) {
                let p = Double(cos)
                // torch's BCE clamps each log at −100.
                loss -= label == 1 ? max(Foundation.log(p), -100) : max(Foundation.log(1 - p), -100)
                if (cos > 0.5) == (label == 1) { correct += 1 }
            }
        }
        return Evaluation(loss: loss / Double(samples), accuracy: Double(correct) / Double(samples), samples: samples)
    }

    // MARK: - Checkpoints

    struct CheckpointFiles { var step: Int; var weights: URL; var state: URL }

    /// Complete checkpoints (weights and state both present), oldest first.
    static func checkpoints(in folder: URL) throws -> [CheckpointFiles] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.compactMap { name -> CheckpointFiles? in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors"), !name.hasSuffix(".state.safetensors"),
                  let step = Int(name.dropFirst("checkpoint-".count).dropLast(".safetensors".count)) else { return nil }
            let state = folder.appendingPathComponent("checkpoint-\(String(format: "%08d", step)).state.safetensors")
            guard FileManager.default.fileExists(atPath: state.path) else { return nil }
            return CheckpointFiles(step: step, weights: folder.appendingPathComponent(name), state: state)
        }.sorted { $0.step < $1.step }
    }

    private func save(_ trainer: SyncNetTrainer, step: Int, history: History, samplesPerStep: Int) throws -> URL {
        let folder = configuration.train.outputDirectory
        let stem = "checkpoint-\(String(format: "%08d", step))"
        let state = State(globalStep: step, optimizerStep: trainer.optimizerStep, scaler: trainer.scaler, history: history,
                          seed: configuration.train.seed, samplesPerStep: samplesPerStep)
        let stateJSON = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        try SafeTensors.write(trainer.optimizerState(), metadata: ["training_state": stateJSON, "format": "pt"],
                              to: folder.appendingPathComponent("\(stem).state.safetensors"))
        let weights = folder.appendingPathComponent("\(stem).safetensors")
        try SafeTensors.write(trainer.modelState(), metadata: [StableSyncNet.Config.metadataKey: trainer.config.json(), "format": "pt",
                                                              "global_step": String(step)], to: weights)
        let keep = configuration.train.keepCheckpoints
        if keep > 0 {
            for old in try Self.checkpoints(in: folder).dropLast(keep) {
                try? FileManager.default.removeItem(at: old.weights)
                try? FileManager.default.removeItem(at: old.state)
            }
        }
        return weights
    }
}

/// `pipelined eval syncnet-acc`: LatentSync's `eval/eval_syncnet_acc.py` — a checkpoint's accuracy
/// (cosine > 0.5 ⇔ in sync) over random true/false windows of a clip list, at the resolution the
/// checkpoint declares.
public enum SyncNetAccuracyEvaluation {
    public static func run(checkpoint: String, data: URL, samples: Int, batchSize: Int, seed: UInt64, device: String)
        throws -> (evaluation: SyncNetTraining.Evaluation, clips: Int) {
        let backend = try TorchBackend.shared()
        let device = try backend.device(device)
        let archive = try ModelStore.openWeights(checkpoint)
        let config = try StableSyncNet.Config.of(archive)
        let model = try StableSyncNet.load(archive, config: config, device: device).0
        let clips = try SyncNetClips.load(data)
        let store = SyncNetClipStore(resolution: config.inputResolution, melCache: nil, budgetBytes: 2 << 30)
        let sampler = SyncNetSampler(clips: clips.clips, store: store, seed: seed)
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount - 1)
        let evaluation = try SyncNetTraining.evaluate(sampler, samples: samples, batchSize: batchSize, threads: threads) { batch in
            try backend.inferenceMode { try model.cosine(batch, device: device, backend: backend).floats() }
        }
        return (evaluation, clips.clips.count)
    }
}
