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

    /// Self-attention along dimension 1 of (B, S, L, C) tokens, separately at each of the L positions —
    /// what AnimateDiff's motion modules compute after rearranging to (B·L, S, C). Here positions and
    /// heads together play the attention's head dimension: q, k and v are views of the projections,
    /// and with CUDA's fused attention kernels (which take strided inputs and write (B, S, heads, d)
    /// memory) neither the rearrangement nor its inverse is copied.
    public func alongSecondDimension(_ x: Tensor) throws -> Tensor {
        let shape = try x.shape
        let (b, s, l, c) = (shape[0], shape[1], shape[2], shape[3])
        func split(_ t: Tensor) throws -> Tensor { try t.reshaped([b, s, l * heads, c / heads]).permuted([0, 2, 1, 3]) }
        let mixed = try Functional.attention(q: split(toQ(x)), k: split(toK(x)), v: split(toV(x)))  // (B, L·heads, S, d)
        return try toOut(mixed.permuted([0, 2, 1, 3]).reshaped([b, s, l, c]))
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

    /// The backend runs projection and gate together (`Functional.gegluLinear`): on CUDA one product and
    /// one kernel that reads both halves once; under autograd, or on the CPU, each half's product and
    /// PyTorch's GELU and product.
    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try out(Functional.gegluLinear(x, weight: project.weight, bias: project.bias))
    }
}
