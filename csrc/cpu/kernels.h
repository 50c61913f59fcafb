// The planner's inner kernels, one table of them per instruction set (kernels_<isa>.cpp).
//
// Plain data only: no torch, no std templates, so the files compiled for wide instruction
// sets share nothing with the rest of the extension but these declarations.
//
// Layouts (W = the table's vector width, Hp = H rounded up to W, nub = Hp / W unit blocks,
// npad = n + 1 rounded up to W; the PAD logit is never computed):
//   whh   [ub][k][gate][W]     recurrent weights, k < H, gate order i, f, g, o; 0 for padded units
//   table [tok][ub][gate][W]   one plan's input-to-gate rows (tok n: start); 0 for padded units
//   head  [k][npad]            head weights transposed, k < H; 0 for padded tokens
//   bias  [npad]
//   state rows: h and c are (rows, Hp) row-major
#pragma once

#include <cstdint>

namespace glamor {
namespace cpu {

// Both models of one plan (m = 0: the IDM q, m = 1: the prior p, when M == 2).
struct Net {
  int M, H, Hp, nub, n, npad;
  const float* whh[2];
  const float* head[2];
  const float* bias[2];
  const float* table[2];
};

// One step of a block of candidate rows: row i continues row src[i] of the *_in buffers and
// is fed the token prev[i] (n: the start row); it writes row i of the *_out buffers.
struct Rows {
  const float* h_in[2];
  const float* c_in[2];
  float* h_out[2];
  float* c_out[2];
  float* logits[2];  // (rows, npad): the n+1 logits of h_out
  const int32_t* src;
  const int32_t* prev;
};

struct Kernels {
  const char* name;
  int W;  // lanes per vector
  int R;  // rows per GEMM register tile (divides W, or W divides it)
  // LSTM step for rows [r0, r1) of model m (r0, r1 multiples of R).
  void (*lstm_rows)(const Net&, const Rows&, int m, int r0, int r1);
  // Head logits of h_out for rows [r0, r1) of model m (multiples of R).
  void (*head_rows)(const Net&, const Rows&, int m, int r0, int r1);
  // Per-token scores s (n+1, W) of the W rows from r0 (token-major, row in the lane):
  // s = log q - log p (log q alone when M == 1), CLIP_SCORE where log q < clip.
  // work: M * (n+1) * W floats.
  void (*token_scores)(const Net&, const Rows&, int r0, bool clip, float clip_logq, float* work,
                       float* s);
  // Inverse-CDF draw of W tokens from softmax(s) (s: (n+1, W)) with uniforms u (W):
  // tokens [0, last] are allowed. work: (n+1) * W floats.
  void (*sample_tokens)(int n, int last, const float* s, const float* u, float* work,
                        int32_t* tok);
};

const Kernels& kernels_avx512();
const Kernels& kernels_avx2();
const Kernels& kernels_scalar();

constexpr float CLIP_SCORE = -20.0f;

}  // namespace cpu
}  // namespace glamor
