/// diffusers' `Attention` as LatentSync uses it: `to_q`, `to_k`, `to_v`, `to_out.0`, `heads` heads of
/// size C/heads over tokens (B, L, C), `softmax(q·kᵀ/√d)·v` per head, heads concatenated in order.
/// `context` (cross-attention) supplies keys and values; its width may differ from C.
public struct MultiHeadAttention: Sendable {
    public let toQ: Linear, toK: Linear, toV: Linear, toOut: Linear
    public let heads: Int

    /// The projections' names in a checkpoint: diffusers' (`to_q`, …, `to_out.0`) or Whisper's (`query`, `key`, `value`, `out`).
    public struct Names: Sendable {
        public var q: String, k: String, v: String, out: [String]
        public static let diffusers = Names(q: "to_q", k: "to_k", v: "to_v", out: ["to_out", "0"])
        public static let whisper = Names(q: "query", k: "key", v: "value", out: ["out"])
    }

    /// `keyBias` nil: as `qkvBias` (Whisper's `key` alone has no bias).
    public init(_ w: WeightSource, _ path: WeightPath, channels: Int, contextChannels: Int? = nil, heads: Int, qkvBias: Bool,
                keyBias: Bool? = nil, names: Names = .diffusers) throws {
        precondition(channels % heads == 0, "attention: \(channels) channels do not split into \(heads) heads")
        let kv = contextChannels ?? channels
        toQ = try Linear(w, path(names.q), in: channels, out: channels, bias: qkvBias)
        toK = try Linear(w, path(names.k), in: kv, out: channels, bias: keyBias ?? qkvBias)
        toV = try Linear(w, path(names.v), in: kv, out: channels, bias: qkvBias)
        toOut = try Linear(w, WeightPath(path.components + names.out), in: channels, out: channels)
        self.heads = heads
    }

    /// (B, L, C) tokens, optional (B, S, C') context → (B, L, C).
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil) throws -> Tensor {
        let shape = try x.shape
        let (b, l, c) = (shape[0], shape[1], shape[2])
        let source = context ?? x
        let s = try source.shape[1]
        func split(_ t: Tensor, _ length: Int) throws -> Tensor {
            try t.reshaped([b, length, heads, c / heads]).permuted([0, 2, 1, 3])
        }
        let q = try split(toQ(x), l), k = try split(toK(source), s), v = try split(toV(source), s)
        let mixed = try Functional.attention(q: q, k: k, v: v).permuted([0, 2, 1, 3]).reshaped([b, l, c])
        return try toOut(mixed)
    }
}

/// diffusers' `FeedForward` with GEGLU: `net.0.proj` (C → 2·inner), `a · GELU(g)` over the two halves,
/// `net.2` (inner → C); exact (erf) GELU.
public struct GEGLUFeedForward: Module {
    public let project: Linear, out: Linear
    public let inner: Int

    public init(_ w: WeightSource, _ path: WeightPath, channels: Int, multiplier: Int = 4) throws {
        inner = channels * multiplier
        project = try Linear(w, path("net")[0]("proj"), in: channels, out: 2 * inner)
        out = try Linear(w, path("net")[2], in: inner, out: channels)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let p = try project(x)
        let last = try p.shape.count - 1
        let gated = try p.narrowed(last, 0..<inner) * p.narrowed(last, inner..<(2 * inner)).activation(.gelu)
        return try out(gated)
    }
}
