// The scalar references: f32-spmm-ref and s8-spmm-ref. Plain loops over the strip-CSR weights,
// any strip height, any M; they define the results every fast kernel must reproduce.
#include <algorithm>
#include <cstdint>

#include "../epilogue.hpp"
#include "ref.hpp"

namespace spruce::kernels::ref {

void pack_f32(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const float* xs = static_cast<const float*>(x);
  float* out = static_cast<float*>(xt);
  for (int64_t k = k0; k < k1; ++k) {
    float* row = out + k * ldxt;
    for (int64_t i = 0; i < m; ++i) row[i] = xs[i * lda + k];
    std::fill(row + m, row + ldxt, 0.0f);
  }
}

namespace {
void pack_u8_chunks(int cw, const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  for (int64_t k = k0; k < k1; ++k) {
    uint8_t* row = out + k * ldxt;
    std::fill(row, row + round_up(m, cw), uint8_t(0));
    for (int64_t i = 0; i < m; ++i) row[u8_pos(i, cw)] = xs[i * lda + k];
  }
}
}  // namespace

void pack_u8(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  pack_u8_chunks(u8_chunk(m), x, m, lda, k0, k1, xt, ldxt);
}

void pack_u8_gather64(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  pack_u8_chunks(64, x, m, lda, k0, k1, xt, ldxt);
}

void pack_u8_quads(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  for (int64_t q = k0 / 4; q < (k1 + 3) / 4; ++q)
    for (int64_t i = 0; i < ldxt; ++i)
      for (int64_t t = 0; t < 4; ++t) {
        const int64_t k = 4 * q + t;
        out[(q * ldxt + i) * 4 + t] = i < m && k < k1 ? xs[i * lda + k] : uint8_t(0);
      }
}

void pack_u8_m8(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t i = 0; i < ldxt; ++i) out[k * ldxt + i] = i < m ? xs[i * lda + k] : uint8_t(0);
}

void pack_u8_rows(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  const int64_t end = std::min(ldxt, (k1 + 7) / 8 * 8);  // zero the octet tail
  for (int64_t i = 0; i < m; ++i) {
    std::copy(xs + i * lda + k0, xs + i * lda + k1, out + i * ldxt + k0);
    std::fill(out + i * ldxt + k1, out + i * ldxt + end, uint8_t(0));
  }
}

void pack_u8_windows(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  const bool last = (k1 + 63) / 64 * 64 + 64 == ldxt;  // xt_ld: ldxt = round_up(k, 64) + 64
  for (int64_t i = 0; i < m; ++i) {
    std::copy(xs + i * lda + k0, xs + i * lda + k1, out + i * ldxt + k0);
    if (last) std::fill(out + i * ldxt + k1, out + (i + 1) * ldxt, uint8_t(0));
  }
}

void pack_u8_rows64(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  const int64_t end = std::min(ldxt, (k1 + 63) / 64 * 64);  // zero the block tail
  for (int64_t i = 0; i < (m + 15) / 16 * 16; ++i) {
    if (i < m) std::copy(xs + i * lda + k0, xs + i * lda + k1, out + i * ldxt + k0);
    std::fill(out + i * ldxt + (i < m ? k1 : k0), out + i * ldxt + end, uint8_t(0));
  }
}

void pack_s16(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  int16_t* out = static_cast<int16_t*>(xt);
  for (int64_t k = k0; k < k1; ++k)
    for (int64_t p = 0; p < round_up(m, 16); ++p) {
      const int64_t i = p / 16 * 16 + words_m(p % 16);
      out[k * ldxt + p] = i < m ? int16_t(xs[i * lda + k]) : int16_t(0);
    }
}

void spmm_f32(const StripView& w, const SpmmArgs& a) {
  const float* xt = static_cast<const float*>(a.xt);
  const float* wv = static_cast<const float*>(w.w);
  for (int64_t s = a.s0; s < a.s1; ++s)
    for (int r = 0; r < w.h; ++r) {
      const int64_t n = s * w.h + r;
      if (n >= w.rows) break;
      for (int64_t m = a.m0; m < a.m1; ++m) {
        float acc = 0.0f;
        for (int64_t j = w.ptr[s]; j < w.ptr[s + 1]; ++j) acc += wv[j * w.h + r] * xt[w.k[j] * a.ldxt + m];
        static_cast<float*>(a.y)[a.y_at(m, n)] = finish_f32(acc, n, *a.ep);
      }
    }
}

void spmm_s8(const StripView& w, const SpmmArgs& a) {
  const uint8_t* xt = static_cast<const uint8_t*>(a.xt);
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  const int cw = u8_chunk(a.m_total);
  for (int64_t s = a.s0; s < a.s1; ++s)
    for (int r = 0; r < w.h; ++r) {
      const int64_t n = s * w.h + r;
      if (n >= w.rows) break;
      for (int64_t m = a.m0; m < a.m1; ++m) {
        int32_t acc = 0;
        const int64_t pos = u8_pos(m, cw);
        for (int64_t j = w.ptr[s]; j < w.ptr[s + 1]; ++j) {
          const int64_t g = j / 4, t = j % 4;
          acc += int32_t(wv[g * 4 * w.h + r * 4 + t]) * int32_t(xt[w.k[j] * a.ldxt + pos]);
        }
        store_out(dequantize(acc, n, *a.ep), *a.ep, a.y, a.y_at(m, n));
      }
    }
}

}  // namespace spruce::kernels::ref
