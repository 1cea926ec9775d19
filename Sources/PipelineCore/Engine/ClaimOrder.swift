/// Which of a stage's claimable items a worker gets (`Ledger.claim` asks it).
///
/// Items go out in list order, except that clips that follow each other in one source (a run:
/// segment after segment of a scene) stay with one worker: a worker that finished a clip gets the
/// next clip of its run while it is claimable. Other workers start runs nobody is working on,
/// preferring sources nobody is working on; when every run is started, a worker splits the longest
/// claimable stretch in the middle (so a single long source still keeps all workers busy).
///
/// Why: a stage that leaves its reader open at the end of a clip (stage 5, through `WorkerLane`)
/// continues it for the next clip instead of seeking back to a keyframe and decoding forward to
/// the clip's first frame again — with one keyframe every 10 s, a third of all decoding.
///
/// It sees only what the store shows it: the claimable items (in list order) and the items of the
/// same stage that workers hold now. Items a dead run was working on go after all others; the store
/// asks for them separately.
public enum ClaimOrder {
    public struct Candidate: Sendable, Equatable {
        public var sourceId: Int64
        /// The clip's frames; nil for a source item.
        public var frames: Range<Int>?
        public init(sourceId: Int64, frames: Range<Int>?) { self.sourceId = sourceId; self.frames = frames }

        /// Whether `next` is the clip right after this one in its source.
        func isFollowed(by next: Candidate) -> Bool {
            guard let frames, let following = next.frames else { return false }
            return sourceId == next.sourceId && frames.upperBound == following.lowerBound
        }
    }

    /// The index into `claimable` of the item to claim, or nil when it is empty.
    /// - Parameter previous: the item the asking worker finished last, when it carries something
    ///   for the next clip of its run.
    public static func choose(_ claimable: [Candidate], held: [Candidate], after previous: Candidate?) -> Int? {
        guard !claimable.isEmpty else { return nil }
        if let previous, let next = claimable.firstIndex(where: { previous.isFollowed(by: $0) }) { return next }
        // Stretches of consecutive claimable clips (a source item is a stretch of its own).
        var stretches: [Range<Int>] = []
        for i in claimable.indices {
            if i > 0, claimable[i - 1].isFollowed(by: claimable[i]) {
                stretches[stretches.count - 1] = stretches[stretches.count - 1].lowerBound..<(i + 1)
            } else {
                stretches.append(i..<(i + 1))
            }
        }
        // A stretch whose clip before is held: that worker continues into it.
        let unfollowed = stretches.filter { s in !held.contains { $0.isFollowed(by: claimable[s.lowerBound]) } }
        let busy = Set(held.map(\.sourceId))
        if let free = unfollowed.first(where: { !busy.contains(claimable[$0.lowerBound].sourceId) }) { return free.lowerBound }
        if let first = unfollowed.first { return first.lowerBound }
        let longest = stretches.max { $0.count < $1.count || ($0.count == $1.count && $0.lowerBound > $1.lowerBound) }!
        return longest.lowerBound + longest.count / 2
    }
}
