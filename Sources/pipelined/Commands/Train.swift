import ArgumentParser
import Foundation
import PipelineCore
import Stages

extension Pipelined {
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train models on the curated dataset.",
            subcommands: [SyncNet.self])

        struct SyncNet: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "syncnet",
                abstract: "Train a StableSyncNet (LatentSync's SyncNet recipe) on fileslist.txt / manifest.jsonl.",
                discussion: """
                Writes checkpoint-<step>.safetensors (+ .state.safetensors with the optimiser) and training.svg into
                train.output_dir. Running again with the same output_dir continues from the newest checkpoint on the
                same curve. SIGINT/SIGTERM validates, saves a checkpoint and stops. Point sync.stable_syncnet_weights at
                a checkpoint to curate with the trained model.
                """)

            @Option(name: .long, help: "The training configuration (see configs/syncnet.toml).") var config: String
            @Option(name: .long, help: "Override train.max_steps.") var maxSteps: Int?
            @Option(name: .long, help: "Override train.devices (auto, cpu, cuda, cuda:0,1).") var devices: String?

            func run() throws {
                do {
                    var configuration = try SyncNetTrainingConfiguration.load(URL(fileURLWithPath: config))
                    if let maxSteps {
                        guard maxSteps >= 1 else { throw CLIError("--max-steps must be at least 1") }
                        configuration.train.maxSteps = maxSteps
                    }
                    if let devices { configuration.train.devices = devices }
                    let stop = CancellationFlag()
                    let signals = SignalHandling.install(stop, quiet: false, message: "stopping after this step: validating and saving a checkpoint")
                    let summary = try SyncNetTraining(configuration) { line in
                        Console.error("train: \(line)\n")
                    }.run(stopRequested: { stop.isCancelled })
                    withExtendedLifetime(signals) {}
                    let accuracy = summary.history.validationAccuracies.last.map { String(format: "%.3f", $0) } ?? "—"
                    print("steps \(summary.firstStep)→\(summary.lastStep), validation accuracy \(accuracy), checkpoint \(summary.checkpoint?.path ?? "none")")
                    if stop.isCancelled { throw ExitCode(ExitStatus.interrupted) }
                } catch let exit as ExitCode { throw exit } catch { throw fail(error) }
            }
        }
    }

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate models.",
            subcommands: [SyncNetAccuracy.self])

        struct SyncNetAccuracy: ParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "syncnet-acc",
                abstract: "LatentSync's SyncNet accuracy: in sync iff cosine > 0.5, over random true/false windows (½ each).")

            @Option(name: .long, help: "A StableSyncNet checkpoint: one `train syncnet` wrote, or the released stable_syncnet.pt.") var checkpoint: String
            @Option(name: .long, help: "fileslist.txt or manifest.jsonl of the clips to evaluate on.") var data: String
            @Option(name: .long, help: "Samples (the reference's num_val_samples).") var samples = 2048
            @Option(name: .long, help: "Samples per forward.") var batchSize = 40
            @Option(name: .long, help: "Seed of the sample draw.") var seed: UInt64 = 42
            @Option(name: .long, help: "auto, cpu or cuda:N.") var device = "auto"

            func run() throws {
                do {
                    guard samples >= 1, batchSize >= 1 else { throw CLIError("--samples and --batch-size must be at least 1") }
                    let result = try SyncNetAccuracyEvaluation.run(checkpoint: checkpoint, data: URL(fileURLWithPath: data), samples: samples,
                                                                   batchSize: batchSize, seed: seed, device: device)
                    print(String(format: "accuracy %.4f  loss %.4f  (%d samples from %d clips)", result.evaluation.accuracy, result.evaluation.loss,
                                 result.evaluation.samples, result.clips))
                } catch { throw fail(error) }
            }
        }
    }
}
