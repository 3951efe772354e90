// prelude/matmul_term_low_rank.wgsl: a LoRA product added to each output in the epilogue,
//   total = finished + lr_scale * mask * (left . right)  over the rank r,
// left [M, r] row-major, right r x N with strides (lr_right_js, lr_right_cs): LoRA's up
// product s * h B^T on the forward (right = B [N, r]), and dropout'(dh A) on the backward
// (right = A [r, N]) with dropout's mask regenerated from the key and stream as
// lora.wgsl's dropout kernels do (element index = row * C's columns + col). The dot is a
// fused multiply-add chain from 0 in the order of j, as the matmul kernels sum. Needs the
// prelude `philox`.

struct Key {
    seed: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

@group(0) @binding(8) var<uniform> key: Key;
@group(0) @binding(9) var<storage, read> left: array<f32>;
@group(0) @binding(10) var<storage, read> right: array<f32>;

fn total(i: u32, row: u32, col: u32, v: f32) -> f32 {
    let r = p.lr_row0 + row;
    let c_col = p.lr_col0 + col;
    var s = 0.0;
    for (var j = 0u; j < p.lr_rank; j++) {
        s = fma(left[r * p.lr_rank + j], right[j * p.lr_right_js + c_col * p.lr_right_cs], s);
    }
    var term = p.lr_scale * s;
    if (p.lr_dropout != 0u) {
        let word = philox(vec2<u32>(r * p.lr_cols + c_col, p.lr_stream), key.seed).x;
        term = select(0.0, term * p.lr_drop_scale, (word >> 8u) >= p.lr_threshold);
    }
    return finished(i, v) + term;
}
