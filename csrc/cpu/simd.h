// Vector types for the planner kernels: one struct per instruction set, same interface.
//
// Textual header: a kernels_<isa>.cpp includes it inside an anonymous namespace, after its
// `#pragma GCC target`, with exactly one of GLAMOR_SIMD_AVX512 / GLAMOR_SIMD_AVX2 /
// GLAMOR_SIMD_SCALAR defined. Everything here then has internal linkage, so no function
// compiled for a wide instruction set can be merged into (and run by) another file's code.
//
// V::F is a vector of V::W floats, V::I of W int32, V::M a lane mask, V::D a pair of double
// vectors holding W lanes. V::R is the number of rows in a GEMM register tile.

#if defined(GLAMOR_SIMD_AVX512)

struct V {
  static constexpr int W = 16;
  static constexpr int R = 4;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  struct D { __m512d lo, hi; };

  static F zero() { return _mm512_setzero_ps(); }
  static F set1(float x) { return _mm512_set1_ps(x); }
  static F load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, F x) { _mm512_storeu_ps(p, x); }
  static F add(F a, F b) { return _mm512_add_ps(a, b); }
  static F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F min(F a, F b) { return _mm512_min_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }    // a * b + c
  static F fnma(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a * b
  static F round(F x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I to_int(F x) { return _mm512_cvtps_epi32(x); }  // x already integral
  static F pow2(I e) {  // 2**e for e in [-126, 127]
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(127)), 23));
  }
  static F recip(F d) {  // 1 / d: rcp14 and one Newton step
    F x = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(x, _mm512_fnmadd_ps(d, x, _mm512_set1_ps(2.0f)));
  }
  static M lt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static F select(M m, F a, F b) { return _mm512_mask_blend_ps(m, b, a); }  // m ? a : b
  static F gather(const float* base, I idx) { return _mm512_i32gather_ps(idx, base, 4); }
  static I iota() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }
  static I set1i(int x) { return _mm512_set1_epi32(x); }
  static I mulic(I a, int c) { return _mm512_mullo_epi32(a, _mm512_set1_epi32(c)); }
  static I mini(I a, I b) { return _mm512_min_epi32(a, b); }
  static I count(I c, M m) { return _mm512_mask_add_epi32(c, m, c, _mm512_set1_epi32(1)); }
  static void storei(int32_t* p, I x) { _mm512_storeu_si512(p, x); }
  static D dzero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static void dadd(D& d, F x) {
    d.lo = _mm512_add_pd(d.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(x)));
    d.hi = _mm512_add_pd(d.hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))));
  }
  static F dtof(const D& d) {
    __m256 lo = _mm512_cvtpd_ps(d.lo), hi = _mm512_cvtpd_ps(d.hi);
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
  }
};

#elif defined(GLAMOR_SIMD_AVX2)

struct V {
  static constexpr int W = 8;
  static constexpr int R = 2;
  using F = __m256;
  using I = __m256i;
  using M = __m256;
  struct D { __m256d lo, hi; };

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F x) { _mm256_storeu_ps(p, x); }
  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnma(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F round(F x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static I to_int(F x) { return _mm256_cvtps_epi32(x); }
  static F pow2(I e) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23));
  }
  static F recip(F d) {
    F x = _mm256_rcp_ps(d);  // 12 bits; two Newton steps
    x = _mm256_mul_ps(x, _mm256_fnmadd_ps(d, x, _mm256_set1_ps(2.0f)));
    return _mm256_mul_ps(x, _mm256_fnmadd_ps(d, x, _mm256_set1_ps(2.0f)));
  }
  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M le(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }
  static F gather(const float* base, I idx) { return _mm256_i32gather_ps(base, idx, 4); }
  static I iota() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
  static I set1i(int x) { return _mm256_set1_epi32(x); }
  static I mulic(I a, int c) { return _mm256_mullo_epi32(a, _mm256_set1_epi32(c)); }
  static I mini(I a, I b) { return _mm256_min_epi32(a, b); }
  static I count(I c, M m) { return _mm256_sub_epi32(c, _mm256_castps_si256(m)); }  // true lanes are -1
  static void storei(int32_t* p, I x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), x); }
  static D dzero() { return {_mm256_setzero_pd(), _mm256_setzero_pd()}; }
  static void dadd(D& d, F x) {
    d.lo = _mm256_add_pd(d.lo, _mm256_cvtps_pd(_mm256_castps256_ps128(x)));
    d.hi = _mm256_add_pd(d.hi, _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)));
  }
  static F dtof(const D& d) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm256_cvtpd_ps(d.lo)), _mm256_cvtpd_ps(d.hi), 1);
  }
};

#elif defined(GLAMOR_SIMD_SCALAR)

// One lane, plain C++: the portable fallback (no FMA: a * b + c rounds twice here).
struct V {
  static constexpr int W = 1;
  static constexpr int R = 4;
  using F = float;
  using I = int32_t;
  using M = bool;
  struct D { double v; };

  static F zero() { return 0.0f; }
  static F set1(float x) { return x; }
  static F load(const float* p) { return *p; }
  static void store(float* p, F x) { *p = x; }
  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F max(F a, F b) { return a > b ? a : b; }
  static F min(F a, F b) { return a < b ? a : b; }
  static F fma(F a, F b, F c) { return a * b + c; }
  static F fnma(F a, F b, F c) { return c - a * b; }
  static F round(F x) {  // to nearest even, |x| < 2**22
    const float magic = 12582912.0f;  // 1.5 * 2**23
    return (x + magic) - magic;
  }
  static I to_int(F x) { return static_cast<int32_t>(x); }
  static F pow2(I e) {
    uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
  }
  static F recip(F d) { return 1.0f / d; }
  static M lt(F a, F b) { return a < b; }
  static M le(F a, F b) { return a <= b; }
  static F select(M m, F a, F b) { return m ? a : b; }
  static F gather(const float* base, I idx) { return base[idx]; }
  static I iota() { return 0; }
  static I set1i(int x) { return x; }
  static I mulic(I a, int c) { return a * c; }
  static I mini(I a, I b) { return a < b ? a : b; }
  static I count(I c, M m) { return c + (m ? 1 : 0); }
  static void storei(int32_t* p, I x) { *p = x; }
  static D dzero() { return {0.0}; }
  static void dadd(D& d, F x) { d.v += static_cast<double>(x); }
  static F dtof(const D& d) { return static_cast<float>(d.v); }
};

#else
#error "define one of GLAMOR_SIMD_AVX512, GLAMOR_SIMD_AVX2, GLAMOR_SIMD_SCALAR"
#endif

// ---- math on V::F (the same algorithms on every instruction set) -------------------------

// exp(x), about 1 ulp (Cephes' expf polynomial), finite up to 88; below -87.3 it is 0
// (AVX-512: the true subnormal values down to -104, then 0).
// Stage by stage over N independent vectors, so that the chains overlap in the pipeline.
template <int N>
static inline void vexp_n(V::F* x) {
  V::F n[N];
#if defined(GLAMOR_SIMD_AVX512)  // scalef makes 2**n (and the underflow to 0) in one step
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) {
    x[q] = V::min(V::max(x[q], V::set1(-104.0f)), V::set1(88.0f));
    n[q] = V::round(V::mul(x[q], V::set1(1.44269504088896341f)));
  }
#else
  V::M under[N];
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) {
    const V::F lo = V::set1(-87.33654f);
    under[q] = V::lt(x[q], lo);
    x[q] = V::min(V::max(x[q], lo), V::set1(88.0f));
    n[q] = V::round(V::mul(x[q], V::set1(1.44269504088896341f)));
  }
#endif
  V::F p[N];
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) {
    x[q] = V::fnma(n[q], V::set1(0.693359375f), x[q]);
    x[q] = V::fnma(n[q], V::set1(-2.12194440e-4f), x[q]);
    p[q] = V::fma(V::set1(1.9875691500e-4f), x[q], V::set1(1.3981999507e-3f));
  }
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(8.3334519073e-3f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(4.1665795894e-2f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(1.6666665459e-1f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(5.0000001201e-1f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) {
    const V::F y = V::add(V::fma(p[q], V::mul(x[q], x[q]), x[q]), V::set1(1.0f));
#if defined(GLAMOR_SIMD_AVX512)
    x[q] = _mm512_scalef_ps(y, n[q]);
#else
    x[q] = V::select(under[q], V::zero(), V::mul(y, V::pow2(V::to_int(n[q]))));
#endif
  }
}

static inline V::F vexp(V::F x) {
  vexp_n<1>(&x);
  return x;
}

// 2**x in place over N vectors, about 1 ulp (Cephes' exp2f polynomial on [-1/2, 1/2]);
// at most 2**126, and down to 0 (AVX-512) or 2**-126 (others) below.
template <int N>
static inline void vexp2_n(V::F* x) {
  V::F n[N];
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) {
#if defined(GLAMOR_SIMD_AVX512)
    x[q] = V::min(x[q], V::set1(126.0f));
#else
    x[q] = V::min(V::max(x[q], V::set1(-126.0f)), V::set1(126.0f));
#endif
    n[q] = V::round(x[q]);
    x[q] = V::sub(x[q], n[q]);
  }
  V::F p[N];
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(V::set1(1.535336188319500e-4f), x[q], V::set1(1.339887440266574e-3f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(9.618437357674640e-3f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(5.550332471162809e-2f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(2.402264791363012e-1f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) p[q] = V::fma(p[q], x[q], V::set1(6.931472028550421e-1f));
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) {
    const V::F y = V::fma(p[q], x[q], V::set1(1.0f));
#if defined(GLAMOR_SIMD_AVX512)
    x[q] = _mm512_scalef_ps(y, n[q]);
#else
    x[q] = V::mul(y, V::pow2(V::to_int(n[q])));
#endif
  }
}

// The LSTM's gate pre-activations come in units of -log2(e) (-2 log2(e) for the g gate):
// the packed weights and gate table carry that factor (planner.cpp), so that
// sigmoid(x) = 1 / (1 + 2**z) with z = -log2(e) x needs no scaling here.
constexpr float kNegLog2e = -1.4426950408889634f;

// tanh from e = 2**z with z = -2 log2(e) x: (1 - e) / (1 + e). Not 2 / (1 + e) - 1: that
// gives tanh(0) = 2 recip(2) - 1, which is not 0 where recip is approximate (AVX2: -6e-8), and
// a zero LSTM state (c = sig(i) tanh(0)) would then be read through large weights as noise.
// Here e = 1 gives exactly 0 (absolute error a few 1e-8 elsewhere, as before).
// e is capped at 2**64 first (tanh is -1 in float well before, from e = 2**27): vexp2_n gives up
// to 2**126, and AVX2's recip (rcpps) returns 0 for 1 + e of about 2**126, which would make
// tanh(x) 0 instead of -1 for every x below -43.7 (a saturated cell state or g gate).
static inline V::F vtanh_from_exp2(V::F e) {
  e = V::min(e, V::set1(18446744073709551616.0f));  // 2**64
  return V::mul(V::sub(V::set1(1.0f), e), V::recip(V::add(V::set1(1.0f), e)));
}

// In place: x -> tanh(x).
template <int N>
static inline void vtanh_n(V::F* x) {
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) x[q] = V::mul(x[q], V::set1(2.0f * kNegLog2e));
  vexp2_n<N>(x);
#pragma GCC unroll 32
  for (int q = 0; q < N; ++q) x[q] = vtanh_from_exp2(x[q]);
}
