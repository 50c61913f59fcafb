// The planner's inner kernels, written once on the vector struct V of simd.h.
//
// Textual header: kernels_<isa>.cpp includes it inside an anonymous namespace after simd.h
// (see simd.h). The arithmetic follows the reference (glamor/planning/reference.py):
// gates = table row + h W_hh^T, c = sig(f) c + sig(i) tanh(g), h = sig(o) tanh(c),
// logits = h head^T + bias, log-softmax = (x - max) - log(sum exp(x - max)); the gate rows of
// W_hh and of the table come pre-scaled by -log2(e) (g: -2 log2(e)), see kNegLog2e in simd.h.

// ---- LSTM step: register-tiled (R rows x the four gates of W units) GEMM over k < H, -----
// ---- then the gate non-linearities on the tile while it is still in registers ---------------

static inline void lstm_tile(const Net& net, const Rows& rw, int m, int r, int ub) {
  constexpr int W = V::W, R = V::R;
  const int H = net.H, ld = net.Hp;
  const float* a[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) a[i] = rw.h_in[m] + static_cast<std::size_t>(rw.src[r + i]) * ld;
  const float* b = net.whh[m] + static_cast<std::size_t>(ub) * H * 4 * W;

  V::F acc[R][4];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    acc[i][0] = V::zero();
    acc[i][1] = V::zero();
    acc[i][2] = V::zero();
    acc[i][3] = V::zero();
  }
  for (int k = 0; k < H; ++k, b += 4 * W) {
    const V::F b0 = V::load(b), b1 = V::load(b + W), b2 = V::load(b + 2 * W), b3 = V::load(b + 3 * W);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const V::F x = V::set1(a[i][k]);
      acc[i][0] = V::fma(x, b0, acc[i][0]);
      acc[i][1] = V::fma(x, b1, acc[i][1]);
      acc[i][2] = V::fma(x, b2, acc[i][2]);
      acc[i][3] = V::fma(x, b3, acc[i][3]);
    }
  }
  // Gate pre-activations, in units of -log2(e) (g: -2 log2(e)); then 2**z of each, and from
  // it the sigmoids of i, f, o and tanh(g) (vtanh_from_exp2).
  V::F z[R * 4];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const float* g = net.table[m] + (static_cast<std::size_t>(rw.prev[r + i]) * net.nub + ub) * 4 * W;
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) z[4 * i + q] = V::add(V::load(g + q * W), acc[i][q]);
  }
  vexp2_n<R * 4>(z);
#pragma GCC unroll 32
  for (int q = 0; q < R * 4; ++q)
    z[q] = q % 4 == 2 ? vtanh_from_exp2(z[q]) : V::recip(V::add(V::set1(1.0f), z[q]));
  V::F c[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    const V::F c_in = V::load(rw.c_in[m] + static_cast<std::size_t>(rw.src[r + i]) * ld + ub * W);
    c[i] = V::add(V::mul(z[4 * i + 1], c_in), V::mul(z[4 * i], z[4 * i + 2]));
    V::store(rw.c_out[m] + static_cast<std::size_t>(r + i) * ld + ub * W, c[i]);
  }
  vtanh_n<R>(c);
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
    V::store(rw.h_out[m] + static_cast<std::size_t>(r + i) * ld + ub * W, V::mul(z[4 * i + 3], c[i]));
}

static void lstm_rows(const Net& net, const Rows& rw, int m, int r0, int r1) {
  for (int ub = 0; ub < net.nub; ++ub)  // one unit block's weights stay in L1 over the rows
    for (int r = r0; r < r1; r += V::R) lstm_tile(net, rw, m, r, ub);
}

// ---- head: logits (rows, npad) = h_out head^T + bias, column blocks of up to 4 vectors -----

template <int CV>
static inline void head_tile(const Net& net, const Rows& rw, int m, int r, int col) {
  constexpr int W = V::W, R = V::R;
  const int H = net.H, ld = net.Hp, npad = net.npad;
  const float* a[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) a[i] = rw.h_out[m] + static_cast<std::size_t>(r + i) * ld;
  const float* b = net.head[m] + col;
  V::F acc[R][CV];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) acc[i][v] = V::zero();
  for (int k = 0; k < H; ++k, b += npad) {
    V::F bv[CV];
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) bv[v] = V::load(b + v * W);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const V::F x = V::set1(a[i][k]);
#pragma GCC unroll 4
      for (int v = 0; v < CV; ++v) acc[i][v] = V::fma(x, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    float* out = rw.logits[m] + static_cast<std::size_t>(r + i) * npad + col;
#pragma GCC unroll 4
    for (int v = 0; v < CV; ++v) V::store(out + v * W, V::add(acc[i][v], V::load(net.bias[m] + col + v * W)));
  }
}

static void head_rows(const Net& net, const Rows& rw, int m, int r0, int r1) {
  constexpr int W = V::W;
  for (int col = 0; col < net.npad; col += 4 * W) {
    const int cv = (net.npad - col) / W;
    for (int r = r0; r < r1; r += V::R) {
      if (cv >= 4) head_tile<4>(net, rw, m, r, col);
      else if (cv == 3) head_tile<3>(net, rw, m, r, col);
      else if (cv == 2) head_tile<2>(net, rw, m, r, col);
      else head_tile<1>(net, rw, m, r, col);
    }
  }
}

// ---- per-token scores of W rows, one row per lane ------------------------------------------

static void token_scores(const Net& net, const Rows& rw, int r0, bool clip, float clip_logq,
                         float* work, float* s) {
  constexpr int W = V::W;
  const int n = net.n, npad = net.npad;
  const V::I lane_offset = V::mulic(V::iota(), npad);
  for (int m = 0; m < net.M; ++m) {
    const float* logits = rw.logits[m] + static_cast<std::size_t>(r0) * npad;
    float* x = work + static_cast<std::size_t>(m) * (n + 1) * W;
    V::F mx = V::set1(-__builtin_huge_valf());
    for (int j = 0; j <= n; ++j) {
      const V::F v = V::gather(logits + j, lane_offset);
      V::store(x + j * W, v);
      mx = V::max(mx, v);
    }
    V::F sum = V::zero();
    for (int j = 0; j <= n; ++j) sum = V::add(sum, vexp(V::sub(V::load(x + j * W), mx)));
    float lse_lanes[W];
    V::store(lse_lanes, sum);
    for (int l = 0; l < W; ++l) lse_lanes[l] = __builtin_logf(lse_lanes[l]);
    const V::F lse = V::load(lse_lanes);
    for (int j = 0; j <= n; ++j) V::store(x + j * W, V::sub(V::sub(V::load(x + j * W), mx), lse));
  }
  const float* lq = work;
  const float* lp = work + static_cast<std::size_t>(n + 1) * W;
  const V::F clip_v = V::set1(clip_logq), clip_s = V::set1(CLIP_SCORE);
  for (int j = 0; j <= n; ++j) {
    const V::F q = V::load(lq + j * W);
    V::F v = net.M == 2 ? V::sub(q, V::load(lp + j * W)) : q;
    if (clip) v = V::select(V::lt(q, clip_v), clip_s, v);
    V::store(s + j * W, v);
  }
}

// ---- inverse-CDF sampling of W tokens ------------------------------------------------------
// As the reference: e = exp(s - max) over the allowed tokens, cdf = running sum accumulated in
// double (torch.cumsum on float32 does the same), token = how many cdf entries are <= u * cdf
// of the last allowed token, at most `last`.

static void sample_tokens(int n, int last, const float* s, const float* u, float* work,
                          int32_t* tok) {
  constexpr int W = V::W;
  (void)n;
  V::F mx = V::set1(-__builtin_huge_valf());
  for (int j = 0; j <= last; ++j) mx = V::max(mx, V::load(s + j * W));
  V::D acc = V::dzero();
  for (int j = 0; j <= last; ++j) {
    V::dadd(acc, vexp(V::sub(V::load(s + j * W), mx)));
    V::store(work + j * W, V::dtof(acc));
  }
  const V::F thr = V::mul(V::load(u), V::load(work + last * W));
  V::I count = V::set1i(0);
  for (int j = 0; j <= last; ++j) count = V::count(count, V::le(V::load(work + j * W), thr));
  V::storei(tok, V::mini(count, V::set1i(last)));
}

static const Kernels kTable = {
    GLAMOR_ISA_NAME, V::W, V::R, lstm_rows, head_rows, token_scores, sample_tokens,
};
