// LayerNorm over the last dimension of contiguous rows, one warp per row, the row held in registers
// (two passes over registers: the mean, then the centred sum of squares — no cancellation), in float,
// stored once in the input's type. Optionally adds a per-frame table after the affine map: with x as
// (…, F, L, C) and table (F, C), row r gets table[(r / L) % F] — AnimateDiff's positional encoding,
// which the motion modules add to the normalised tokens; fused, it costs no pass of its own.
// PyTorch's kernel runs one block per row, which for the U-Net's 320–1280 channels leaves most of the
// block idle (8.8 ms of a 120 ms forward at 512 px).
// Plain CUDA without torch headers; torch_backend.cpp allocates and launches on the current stream.
#include "vector_access.cuh"

namespace {

using namespace pd_cuda;

constexpr int kWarps = 8;          // rows per block
constexpr int kMaxPerLane = 8;     // 16-byte chunks per lane: up to 2048 half / 1024 float channels

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

template <typename T>
__global__ void layer_norm_rows(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int channels, const T *__restrict__ gamma,
                                const T *__restrict__ beta, float eps, const T *__restrict__ table, int64_t length, int frames) {
    constexpr int V = vec<T>();
    const int lane = threadIdx.x % 32, chunks = channels / V;
    const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (row >= rows) return;
    const Chunk<T> *in = reinterpret_cast<const Chunk<T> *>(x + row * channels);
    float v[kMaxPerLane][V];
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
        const int chunk = lane + 32 * k;
        if (chunk < chunks) {
            const Chunk<T> c = in[chunk];
#pragma unroll
            for (int e = 0; e < V; ++e) { v[k][e] = load(&c.v[e]); sum += v[k][e]; }
        }
    }
    const float mean = warp_sum(sum) / float(channels);
    float squares = 0.f;
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
        if (lane + 32 * k < chunks) {
#pragma unroll
            for (int e = 0; e < V; ++e) { const float d = v[k][e] - mean; squares += d * d; }
        }
    }
    const float rstd = rsqrtf(warp_sum(squares) / float(channels) + eps);
    const Chunk<T> *g = reinterpret_cast<const Chunk<T> *>(gamma), *b = reinterpret_cast<const Chunk<T> *>(beta);
    const Chunk<T> *extra = table ? reinterpret_cast<const Chunk<T> *>(table + ((row / length) % frames) * channels) : nullptr;
    Chunk<T> *out = reinterpret_cast<Chunk<T> *>(y + row * channels);
#pragma unroll
    for (int k = 0; k < kMaxPerLane; ++k) {
        const int chunk = lane + 32 * k;
        if (chunk < chunks) {
            const Chunk<T> gc = g[chunk], bc = b[chunk];
            Chunk<T> r;
            if (extra) {
                const Chunk<T> tc = extra[chunk];
#pragma unroll
                for (int e = 0; e < V; ++e) store(&r.v[e], (v[k][e] - mean) * rstd * load(&gc.v[e]) + load(&bc.v[e]) + load(&tc.v[e]));
            } else {
#pragma unroll
                for (int e = 0; e < V; ++e) store(&r.v[e], (v[k][e] - mean) * rstd * load(&gc.v[e]) + load(&bc.v[e]));
            }
            out[chunk] = r;
        }
    }
}

template <typename T>
int launch(const void *x, void *y, int64_t rows, int channels, const void *gamma, const void *beta, double eps, const void *table, int64_t length,
           int frames, cudaStream_t stream) {
    const int64_t blocks = (rows + kWarps - 1) / kWarps;
    if (blocks == 0) return 0;
    if (blocks > int64_t(0x7fffffff)) return -2;
    layer_norm_rows<T><<<unsigned(blocks), kWarps * 32, 0, stream>>>(static_cast<const T *>(x), static_cast<T *>(y), rows, channels,
                                                                      static_cast<const T *>(gamma), static_cast<const T *>(beta), float(eps),
                                                                      static_cast<const T *>(table), length, frames);
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

} // namespace

// x, y: rows × channels contiguous; gamma, beta: channels (x's type); table: NULL or frames × channels (x's
// type), added to row r as table[(r / length) % frames]. dtype: 0 float32, 1 float16, 2 bfloat16.
// Returns 0; -1 when the launch failed; -2 for what it does not handle (channels not whole 16-byte runs or
// over 8 per lane, misaligned buffers): the caller then uses PyTorch's kernels.
extern "C" int pd_layer_norm_rows(const void *x, void *y, int dtype, int64_t rows, int channels, const void *gamma, const void *beta,
                                  double eps, const void *table, int64_t length, int frames, void *stream) {
    const int V = dtype == 0 ? 4 : 8;
    if (channels % V != 0 || channels / V > 32 * kMaxPerLane || !aligned16(x) || !aligned16(y) || !aligned16(gamma) || !aligned16(beta) ||
        (table && (!aligned16(table) || length < 1 || frames < 1)))
        return -2;
    auto s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case 0: return launch<float>(x, y, rows, channels, gamma, beta, eps, table, length, frames, s);
    case 1: return launch<__half>(x, y, rows, channels, gamma, beta, eps, table, length, frames, s);
    case 2: return launch<__nv_bfloat16>(x, y, rows, channels, gamma, beta, eps, table, length, frames, s);
    }
    return -2;
}
