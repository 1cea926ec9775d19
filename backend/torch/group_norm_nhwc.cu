// GroupNorm (+ optional SiLU) over channels-last activations, statistics pooled over each item's
// positions: x is [items, positions, channels] contiguous (a channels-last (B·F, C, H, W) tensor whose
// items are B and positions F·H·W). PyTorch's own GroupNorm copies such input to NCHW and back (two
// full copies per call: 16 % of the U-Net's GPU time at 512 px); this reads it twice and writes once.
//
// 1. partial_stats: block (item, slice) walks its slice of positions, `rows` positions at a time; each
//    thread owns one or two runs of 16 bytes of channels and accumulates x − k and (x − k)² in float, k
//    being the channel's value at the item's first position (the shift keeps the accumulation
//    well-conditioned when |mean| ≫ std). The rows' sums meet in shared memory; the block stores per
//    (item, slice, channel) count, mean and M2.
// 2. group_params: per (item, group), Chan's pairwise merge of those partials in double → mean and
//    1/√(var + eps); then per (item, channel) the affine map y = x·a + s, a = γ·rstd, s = β − mean·a
//    (the same fused form as PyTorch's kernel).
// 3. apply: y = x·a + s (then SiLU) for every element, in float, stored in x's type, 16 bytes per access;
//    blocks cover positions as in 1, so each thread loads its channels' a and s once.
// Plain CUDA without torch headers; torch_backend.cpp allocates and launches on the current stream.
#include "vector_access.cuh"

namespace {

using namespace pd_cuda;

constexpr int kThreads = 256;

constexpr int kMaxChunksPerThread = 2;  // channels ≤ 2 · 256 · 16 bytes: 8192 half / 2048 float

// How a block's threads cover one position's channels: `cols` threads per position, each owning chunks
// col, col + cols, … (at most kMaxChunksPerThread), and `rows` positions side by side. With 320 half
// channels (40 chunks) a block reads 6 positions at once instead of leaving 216 of its 256 threads idle.
struct Layout {
    int chunks, cols, rows;
    __host__ __device__ Layout(int channels, int V) : chunks(channels / V), cols(chunks < kThreads ? chunks : kThreads), rows(kThreads / cols) {}
};

template <typename T>
__global__ void partial_stats(const T *__restrict__ x, int64_t positions, int channels, int slices, float *__restrict__ partial) {
    constexpr int V = vec<T>();
    const Layout layout(channels, V);
    const int item = blockIdx.x / slices, slice = blockIdx.x % slices;
    const int row = threadIdx.x / layout.cols, col = threadIdx.x % layout.cols;
    const bool active = row < layout.rows;
    const int64_t per = (positions + slices - 1) / slices;
    const int64_t begin = slice * per, end = begin + per < positions ? begin + per : positions;
    const T *base = x + int64_t(item) * positions * channels;
    float shift[kMaxChunksPerThread][V], s1[kMaxChunksPerThread][V], s2[kMaxChunksPerThread][V];
#pragma unroll
    for (int k = 0; k < kMaxChunksPerThread; ++k) {
        const int chunk = col + k * layout.cols;
        // Every row shifts a channel by the same value (its item's first position), so the rows' sums add up.
        const Chunk<T> first = chunk < layout.chunks ? reinterpret_cast<const Chunk<T> *>(base)[chunk] : Chunk<T>{};
#pragma unroll
        for (int e = 0; e < V; ++e) { shift[k][e] = load(&first.v[e]); s1[k][e] = 0.f; s2[k][e] = 0.f; }
    }
    if (active) {
        for (int64_t p = begin + row; p < end; p += layout.rows) {
            const Chunk<T> *at = reinterpret_cast<const Chunk<T> *>(base + p * channels);
#pragma unroll
            for (int k = 0; k < kMaxChunksPerThread; ++k) {
                const int chunk = col + k * layout.cols;
                if (chunk >= layout.chunks) break;
                const Chunk<T> values = at[chunk];
#pragma unroll
                for (int e = 0; e < V; ++e) {
                    const float d = load(&values.v[e]) - shift[k][e];
                    s1[k][e] += d;
                    s2[k][e] += d * d;
                }
            }
        }
    }
    // The rows' sums meet in shared memory, one chunk slot at a time; row 0 adds them up and stores.
    __shared__ float sums[2][kThreads * V];
    const float n = float(end > begin ? end - begin : 0);
#pragma unroll
    for (int k = 0; k < kMaxChunksPerThread; ++k) {
        const int chunk = col + k * layout.cols;
        if (active) {
#pragma unroll
            for (int e = 0; e < V; ++e) { sums[0][threadIdx.x * V + e] = s1[k][e]; sums[1][threadIdx.x * V + e] = s2[k][e]; }
        }
        __syncthreads();
        if (row == 0 && chunk < layout.chunks) {
#pragma unroll
            for (int e = 0; e < V; ++e) {
                float t1 = 0.f, t2 = 0.f;
                for (int r = 0; r < layout.rows; ++r) { t1 += sums[0][(r * layout.cols + col) * V + e]; t2 += sums[1][(r * layout.cols + col) * V + e]; }
                float *out = partial + ((int64_t(item) * slices + slice) * channels + chunk * V + e) * 3;
                out[0] = n;
                out[1] = n > 0 ? shift[k][e] + t1 / n : 0.f;                  // mean
                out[2] = n > 0 ? fmaxf(t2 - t1 * t1 / n, 0.f) : 0.f;        // M2
            }
        }
        __syncthreads();
    }
}

struct Moments {
    double count, mean, m2;
};

// Chan et al.'s pairwise combination of two (count, mean, M2) summaries.
__device__ __forceinline__ Moments merge(Moments a, Moments b) {
    if (b.count == 0) return a;
    if (a.count == 0) return b;
    const double total = a.count + b.count, delta = b.mean - a.mean;
    return {total, a.mean + delta * b.count / total, a.m2 + b.m2 + delta * delta * a.count * b.count / total};
}

// One block per (item, group): its threads merge the group's (slice, channel) partials, then a tree in
// shared memory merges the threads' summaries.
__global__ void group_params(const float *__restrict__ partial, int slices, int channels, int groups, double eps,
                             const float *__restrict__ gamma, const float *__restrict__ beta, float *__restrict__ params) {
    const int item = blockIdx.x / groups, group = blockIdx.x % groups, per = channels / groups;
    Moments m{0, 0, 0};
    for (int k = threadIdx.x; k < slices * per; k += kThreads) {
        const int s = k / per, c = group * per + k % per;
        const float *q = partial + ((int64_t(item) * slices + s) * channels + c) * 3;
        m = merge(m, Moments{q[0], q[1], q[2]});
    }
    __shared__ Moments shared[kThreads];
    shared[threadIdx.x] = m;
    __syncthreads();
    for (int half = kThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) shared[threadIdx.x] = merge(shared[threadIdx.x], shared[threadIdx.x + half]);
        __syncthreads();
    }
    const Moments all = shared[0];
    const double mean = all.mean, rstd = 1.0 / sqrt(all.m2 / (all.count > 0 ? all.count : 1) + eps);
    for (int c = group * per + threadIdx.x; c < (group + 1) * per; c += kThreads) {
        const double a = (gamma ? gamma[c] : 1.0) * rstd;
        params[(int64_t(item) * channels + c) * 2] = float(a);
        params[(int64_t(item) * channels + c) * 2 + 1] = float((beta ? beta[c] : 0.0) - mean * a);
    }
}

// Blocks cover (item, slice of positions) as in partial_stats; each thread keeps its channels' a and s in
// registers for all the positions it visits.
template <typename T>
__global__ void apply(const T *__restrict__ x, T *__restrict__ y, int64_t positions, int channels, int slices,
                      const float *__restrict__ params, bool silu) {
    constexpr int V = vec<T>();
    const Layout layout(channels, V);
    const int item = blockIdx.x / slices, slice = blockIdx.x % slices;
    const int row = threadIdx.x / layout.cols, col = threadIdx.x % layout.cols;
    if (row >= layout.rows) return;
    const int64_t per = (positions + slices - 1) / slices;
    const int64_t begin = slice * per, end = begin + per < positions ? begin + per : positions;
    const int64_t offset = int64_t(item) * positions * channels;
    float a[kMaxChunksPerThread][V], s[kMaxChunksPerThread][V];
#pragma unroll
    for (int k = 0; k < kMaxChunksPerThread; ++k) {
        const int chunk = col + k * layout.cols;
#pragma unroll
        for (int e = 0; e < V; ++e) {
            const int64_t c = chunk < layout.chunks ? (int64_t(item) * channels + chunk * V + e) * 2 : 0;
            a[k][e] = params[c];
            s[k][e] = params[c + 1];
        }
    }
    for (int64_t p = begin + row; p < end; p += layout.rows) {
        const Chunk<T> *in = reinterpret_cast<const Chunk<T> *>(x + offset + p * channels);
        Chunk<T> *out = reinterpret_cast<Chunk<T> *>(y + offset + p * channels);
#pragma unroll
        for (int k = 0; k < kMaxChunksPerThread; ++k) {
            const int chunk = col + k * layout.cols;
            if (chunk >= layout.chunks) break;
            const Chunk<T> values = in[chunk];
            Chunk<T> result;
#pragma unroll
            for (int e = 0; e < V; ++e) {
                float v = load(&values.v[e]) * a[k][e] + s[k][e];
                if (silu) v = v / (1.f + __expf(-v));
                store(&result.v[e], v);
            }
            out[chunk] = result;
        }
    }
}

template <typename T>
int launch(const void *x, void *y, int64_t items, int64_t positions, int channels, int groups, double eps, const float *gamma,
           const float *beta, int silu, float *partial, int slices, float *params, cudaStream_t stream) {
    const T *in = static_cast<const T *>(x);
    partial_stats<T><<<int(items * slices), kThreads, 0, stream>>>(in, positions, channels, slices, partial);
    group_params<<<int(items * groups), kThreads, 0, stream>>>(partial, slices, channels, groups, eps, gamma, beta, params);
    apply<T><<<int(items * slices), kThreads, 0, stream>>>(in, static_cast<T *>(y), positions, channels, slices, params, silu != 0);
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

} // namespace

// (item, slice) blocks for `items` items of `positions` positions: enough to fill the GPU, each slice at
// least 8 positions per row of threads.
extern "C" int pd_group_norm_nhwc_slices(int64_t items, int64_t positions, int channels, int dtype) {
    const Layout layout(channels, dtype == 0 ? 4 : 8);
    int64_t slices = 1024 / (items > 0 ? items : 1), most = positions / (8 * int64_t(layout.rows > 0 ? layout.rows : 1));
    if (slices > most) slices = most;
    return int(slices < 1 ? 1 : slices);
}

// dtype: 0 float32, 1 float16, 2 bfloat16. partial: items·slices·channels·3 floats (slices from pd_group_norm_nhwc_slices); params: items·channels·2 floats.
// Returns 0; -1 when a launch failed (cudaGetLastError), -2 for shapes it does not handle (the caller then
// uses PyTorch's GroupNorm).
extern "C" int pd_group_norm_nhwc(const void *x, void *y, int dtype, int64_t items, int64_t positions, int channels, int groups,
                                  double eps, const float *gamma, const float *beta, int silu, float *partial, int slices,
                                  float *params, void *stream) {
    // 16-byte accesses: channels a multiple of 16 bytes' worth, buffers 16-byte aligned.
    const int element = dtype == 0 ? 4 : 2, V = 16 / element;
    if (groups < 1 || channels % groups != 0 || channels % V != 0 || channels / V > kThreads * kMaxChunksPerThread ||
        !aligned16(x) || !aligned16(y))
        return -2;
    auto s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case 0: return launch<float>(x, y, items, positions, channels, groups, eps, gamma, beta, silu, partial, slices, params, s);
    case 1: return launch<__half>(x, y, items, positions, channels, groups, eps, gamma, beta, silu, partial, slices, params, s);
    case 2: return launch<__nv_bfloat16>(x, y, items, positions, channels, groups, eps, gamma, beta, silu, partial, slices, params, s);
    }
    return -2;
}
