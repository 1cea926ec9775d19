import Foundation

/// What one engine worker carries from one item to the next: a stage may leave an object (an open
/// reader positioned at the end of its clip) for the next item the same worker runs. Only one
/// item runs on a worker at a time; the lock only keeps the type honest about that.
public final class WorkerLane: @unchecked Sendable {
    private let lock = NSLock()
    private var carried: (key: String, value: AnyObject)?

    public init() {}

    /// What the previous item left under `key`, if it is a `T`; anything else left is dropped.
    public func take<T: AnyObject>(_ type: T.Type, key: String) -> T? {
        lock.lock(); defer { lock.unlock() }
        defer { carried = nil }
        guard let carried, carried.key == key else { return nil }
        return carried.value as? T
    }

    /// Leaves `value` for the next item, replacing whatever was left before.
    public func leave(_ value: AnyObject, key: String) {
        lock.lock(); defer { lock.unlock() }
        carried = (key, value)
    }

    /// Whether the previous item left something (the engine then asks the store for the next clip
    /// of the same run first).
    public var isCarrying: Bool {
        lock.lock(); defer { lock.unlock() }
        return carried != nil
    }

    /// Drops whatever was left (the stage ends; an open file is closed).
    public func clear() {
        lock.lock(); defer { lock.unlock() }
        carried = nil
    }
}
