// What the backend's CUDA kernels share: float32/float16/bfloat16 values loaded as float and stored
// rounded to nearest, and 16-byte chunks of them (one vectorised access: 4 float or 8 half values).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>

namespace pd_cuda {

__device__ __forceinline__ float load(const float *p) { return *p; }
__device__ __forceinline__ float load(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ float load(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

// Elements per 16-byte access.
template <typename T> constexpr int vec() { return 16 / int(sizeof(T)); }

template <typename T> struct alignas(16) Chunk {
    T v[vec<T>()];
};

inline bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

} // namespace pd_cuda
