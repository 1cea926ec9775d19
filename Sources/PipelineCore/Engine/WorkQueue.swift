import Foundation

/// The order in which a stage's items go to the engine's workers.
///
/// Items go out in list order, except that clips that follow each other in one source (a run:
/// segment after segment of a scene) stay with one worker: a worker that finished a clip gets the
/// next clip of its run while nobody has taken it. Idle workers start runs nobody has started,
/// preferring sources nobody is working on; when every run is started, an idle worker splits the
/// longest waiting stretch in the middle (so a single long source still keeps all workers busy).
///
/// Why: a stage that leaves its reader open at the end of a clip (stage 5, through `WorkerLane`)
/// continues it for the next clip instead of seeking back to a keyframe and decoding forward to
/// the clip's first frame again — with one keyframe every 10 s, a third of all decoding.
///
/// `deferred` items (those a crashed run was working on) go out after all the others, in order.
struct WorkQueue {
    private let items: [WorkItem]
    private let regularCount: Int
    private var taken: [Bool]
    /// Runs of consecutive clips of one source, over the regular items, in list order.
    private var runs: [Range<Int>] = []
    private var runOfItem: [Int] = []
    private var started: [Bool] = []
    private var untaken: [Int] = []
    /// No run before this one is unstarted / has untaken items.
    private var firstUnstarted = 0
    private var firstIncomplete = 0
    private var nextDeferred: Int
    /// Workers busy on each source.
    private var busy: [Int64: Int] = [:]

    init(items: [WorkItem], deferred: [WorkItem] = []) {
        self.items = items + deferred
        regularCount = items.count
        taken = [Bool](repeating: false, count: items.count + deferred.count)
        nextDeferred = items.count
        for (i, item) in items.enumerated() {
            if i > 0, let clip = item.clip, let before = items[i - 1].clip,
               before.sourceId == clip.sourceId, before.endFrame == clip.startFrame {
                runs[runs.count - 1] = runs[runs.count - 1].lowerBound..<(i + 1)
            } else {
                runs.append(i..<(i + 1))
            }
            runOfItem.append(runs.count - 1)
        }
        started = [Bool](repeating: false, count: runs.count)
        untaken = runs.map(\.count)
    }

    subscript(index: Int) -> WorkItem { items[index] }

    /// The next item for a worker whose last item was `previous` (nil for a new worker), or nil
    /// when every item has been handed out.
    mutating func next(after previous: Int?) -> Int? {
        if let p = previous, p + 1 < regularCount, runOfItem[p + 1] == runOfItem[p], !taken[p + 1] { return take(p + 1) }
        if let run = unstartedRun() { return take(runs[run].lowerBound) }
        if let i = middleOfLongestStretch() { return take(i) }
        guard nextDeferred < items.count else { return nil }
        nextDeferred += 1
        return take(nextDeferred - 1)
    }

    /// Marks `index`'s work as finished (its source is no longer busy on its account).
    mutating func finished(_ index: Int) {
        let source = items[index].source.id ?? -1
        busy[source, default: 1] -= 1
        if busy[source] == 0 { busy[source] = nil }
    }

    private mutating func take(_ index: Int) -> Int {
        taken[index] = true
        busy[items[index].source.id ?? -1, default: 0] += 1
        if index < regularCount {
            let run = runOfItem[index]
            started[run] = true
            untaken[run] -= 1
        }
        return index
    }

    /// The first run nobody has started whose source nobody is working on, else the first one.
    private mutating func unstartedRun() -> Int? {
        while firstUnstarted < runs.count, started[firstUnstarted] { firstUnstarted += 1 }
        guard firstUnstarted < runs.count else { return nil }
        // Busy sources are few (one per worker), but each may have many runs: look a bounded way.
        var run = firstUnstarted
        while run < min(runs.count, firstUnstarted + 256) {
            if !started[run], busy[items[runs[run].lowerBound].source.id ?? -1] == nil { return run }
            run += 1
        }
        return firstUnstarted
    }

    /// Every run is started: the middle of the longest stretch of untaken clips, so that the worker
    /// before the stretch continues into its first half and this one into the second.
    private mutating func middleOfLongestStretch() -> Int? {
        while firstIncomplete < runs.count, untaken[firstIncomplete] == 0 { firstIncomplete += 1 }
        var best: Range<Int>?
        for run in firstIncomplete..<runs.count where untaken[run] > 0 {
            var i = runs[run].lowerBound
            while i < runs[run].upperBound {
                guard !taken[i] else { i += 1; continue }
                var j = i
                while j < runs[run].upperBound, !taken[j] { j += 1 }
                if (best?.count ?? 0) < j - i { best = i..<j }
                i = j
            }
        }
        guard let stretch = best else { return nil }
        return stretch.lowerBound + stretch.count / 2
    }
}

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

    /// Drops whatever was left (the stage ends; an open file is closed).
    public func clear() {
        lock.lock(); defer { lock.unlock() }
        carried = nil
    }
}
