// An experiment, not part of the build: how fast a CPU writes a matrix in panels, 64 or 512 bytes
// a row down every row before the next panel (as the sparse kernels store Y), at row strides
// around 4 KiB multiples. On AMD Zen 5 the 64-byte walk fell to 9 GB/s at 4, 8, 12 and 16 KiB
// (37 at 3 KiB); an Intel Xeon (family 6 model 207) showed no such cliff (17 against 21 GB/s).
// That difference decides where SparseLinear stages its output (OutputStaging, spmm.hpp).
//
//   g++ -O2 -mavx512f -o /tmp/strided bench/experiments/strided_row_stores.cpp && /tmp/strided
//
// Results: docs/performance/xeon.md ("Staged output, host by host"), docs/performance/zen5.md.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

// Writes rows x cols floats, rows `ld` floats apart, in panels of `panel` floats.
double seconds_to_write(float* y, int rows, int cols, int ld, int panel) {
  const auto t0 = std::chrono::steady_clock::now();
  const __m512 v = _mm512_set1_ps(1.0f);
  for (int c0 = 0; c0 < cols; c0 += panel)
    for (int r = 0; r < rows; ++r)
      for (int c = c0; c < c0 + panel; c += 16) _mm512_storeu_ps(y + size_t(r) * ld + c, v);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  const int rows = 256, cols = 512;  // 512 columns: within the narrowest stride, 2 KiB
  for (int stride_kib : {2, 3, 4, 8, 12, 16})
    for (int panel : {16, 128}) {
      const int ld = stride_kib * 256;
      auto* y = static_cast<float*>(std::aligned_alloc(64, size_t(rows) * ld * 4));
      std::vector<double> times;
      for (int i = 0; i < 201; ++i) times.push_back(seconds_to_write(y, rows, cols, ld, panel));
      std::sort(times.begin(), times.end());
      std::printf("stride %2d KiB, %3d B a row: %.1f GB/s\n", stride_kib, panel * 4,
                  rows * cols * 4.0 / times[100] / 1e9);
      std::free(y);
    }
}
