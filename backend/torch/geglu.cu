// GEGLU's gate, a · GELU(g) (exact, erf), of a projection y = [a | g] whose rows hold both halves:
// y is [rows, 2·inner] contiguous, the result [rows, inner]. PyTorch runs it as two kernels over
// strided halves (or, on split projections, GELU and the product as two passes): this reads each half
// once and writes once, with the product rounded once, in float, to the output type.
// Plain CUDA without torch headers; torch_backend.cpp allocates and launches on the current stream.
#include "vector_access.cuh"

namespace {

using namespace pd_cuda;

constexpr int kThreads = 256;

template <typename T>
__global__ void geglu(const T *__restrict__ y, T *__restrict__ out, int64_t rows, int64_t inner) {
    constexpr int V = vec<T>();
    const int64_t per_row = inner / V, chunks = rows * per_row;
    const Chunk<T> *in = reinterpret_cast<const Chunk<T> *>(y);
    Chunk<T> *result = reinterpret_cast<Chunk<T> *>(out);
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < chunks; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t row = i / per_row, col = i - row * per_row;
        const Chunk<T> a = in[row * 2 * per_row + col], g = in[row * 2 * per_row + per_row + col];
        Chunk<T> r;
#pragma unroll
        for (int e = 0; e < V; ++e) {
            const float gate = load(&g.v[e]);
            store(&r.v[e], load(&a.v[e]) * (0.5f * gate * (1.f + erff(gate * 0.70710678118654752f))));
        }
        result[i] = r;
    }
}

template <typename T> int launch(const void *y, void *out, int64_t rows, int64_t inner, cudaStream_t stream) {
    const int64_t chunks = rows * inner / vec<T>();
    int64_t blocks = (chunks + kThreads - 1) / kThreads;
    if (blocks > 132 * 32) blocks = 132 * 32;  // a grid-stride loop beyond a few waves
    if (blocks < 1) return 0;
    geglu<T><<<int(blocks), kThreads, 0, stream>>>(static_cast<const T *>(y), static_cast<T *>(out), rows, inner);
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

} // namespace

// dtype: 0 float32, 1 float16, 2 bfloat16. Returns 0; -1 when the launch failed; -2 for shapes it does not
// handle (inner not whole 16-byte runs, misaligned buffers): the caller then uses PyTorch's kernels.
extern "C" int pd_geglu(const void *y, void *out, int dtype, int64_t rows, int64_t inner, void *stream) {
    const int V = dtype == 0 ? 4 : 8;
    if (inner % V != 0 || !aligned16(y) || !aligned16(out)) return -2;
    auto s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case 0: return launch<float>(y, out, rows, inner, s);
    case 1: return launch<__half>(y, out, rows, inner, s);
    case 2: return launch<__nv_bfloat16>(y, out, rows, inner, s);
    }
    return -2;
}
