import Foundation
import PipelineCore
import Prometheus

/// A worker's Prometheus metrics (swift-prometheus), fed by the engine's progress events:
///
/// - `pipelined_items_total{stage,state}`: items this worker decided, per stage and state
///   (`done`, `rejected`, `failed`);
/// - `pipelined_item_seconds{stage}`: a histogram of seconds per item;
/// - `pipelined_items_queued{stage}` and `pipelined_items_running{stage}`: the shared queue as
///   the ledger last reported it (every worker's, not only this one's);
/// - `pipelined_leases_held`: the items this worker holds now;
/// - `pipelined_device_memory_bytes{device,kind}`: the CUDA allocator's allocated and reserved
///   bytes per device of this worker, read at scrape time.
public final class WorkerMetrics: ProgressReporter, Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let stages: [String]
    private let devices: [String]
    private let deviceMemory: @Sendable (String) -> (allocated: Int, reserved: Int)?
    private let held: Gauge

    /// Seconds per item: from a scene cut on a short file to an alignment of a long clip.
    static let buckets: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900]
    static let states: [ItemState] = [.done, .rejected, .failed]

    public init(stages: [String], devices: [String], deviceMemory: @escaping @Sendable (String) -> (allocated: Int, reserved: Int)?) {
        self.stages = stages
        self.devices = devices
        self.deviceMemory = deviceMemory
        held = registry.makeGauge(descriptor: Self.name("leases", "held", "Items this worker holds a lease on now"), labels: [])
        // Every series exists from the start, at zero: a rate over a counter that appears late misses its first increments.
        for stage in stages {
            for state in Self.states { _ = counter(stage, state) }
            _ = histogram(stage)
            _ = queueGauges(stage)
        }
        _ = memoryGauges()
    }

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "pipelined", metricName: metric, unitName: unit, helpText: help)
    }
    private static var memory: MetricNameDescriptor { MetricNameDescriptor(namespace: "pipelined", subsystem: "device", metricName: "memory", unitName: "bytes",
                                                     helpText: "Bytes the inference device's allocator holds (0 on the CPU)") }

    private func counter(_ stage: String, _ state: ItemState) -> Counter {
        registry.makeCounter(descriptor: Self.name("items", "total", "Items this worker decided, per stage and state"),
                             labels: [("stage", stage), ("state", state.rawValue)])
    }

    private func histogram(_ stage: String) -> ValueHistogram {
        registry.makeValueHistogram(descriptor: Self.name("item", "seconds", "Seconds this worker spent per item, per stage"),
                                    labels: [("stage", stage)], buckets: Self.buckets)
    }

    private func queueGauges(_ stage: String) -> (queued: Gauge, running: Gauge) {
        (registry.makeGauge(descriptor: Self.name("items", "queued", "Items claimable now or waiting for a retry, per stage (all workers of the ledger)"),
                            labels: [("stage", stage)]),
         registry.makeGauge(descriptor: Self.name("items", "running", "Items under a lease now, per stage (all workers of the ledger)"),
                            labels: [("stage", stage)]))
    }

    private func memoryGauges() -> [(device: String, allocated: Gauge, reserved: Gauge)] {
        devices.map { device in
            (device,
             registry.makeGauge(descriptor: Self.memory, labels: [("device", device), ("kind", "allocated")]),
             registry.makeGauge(descriptor: Self.memory, labels: [("device", device), ("kind", "reserved")]))
        }
    }

    public func report(_ event: ProgressEvent) {
        switch event {
        case .claimed:
            held.increment()
        case let .itemFinished(stage, _, state, _, seconds):
            held.decrement()
            counter(stage, state).increment()
            histogram(stage).record(seconds)
        case let .queue(queues):
            for queue in queues {
                let gauges = queueGauges(queue.stage)
                gauges.queued.set(to: Double(queue.queued))
                gauges.running.set(to: Double(queue.running))
            }
        case .released:
            held.set(to: 0)
        default:
            break
        }
    }

    /// The text a scrape returns (Prometheus text format 0.0.4).
    public func scrape() -> [UInt8] {
        for (device, allocated, reserved) in memoryGauges() {
            let memory = deviceMemory(device)
            allocated.set(to: Double(memory?.allocated ?? 0))
            reserved.set(to: Double(memory?.reserved ?? 0))
        }
        return registry.emitToBuffer()
    }
}
