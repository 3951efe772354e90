// prelude/matmul_store_swiglu_backward.wgsl: SwiGLU's backward in the epilogue of the
// product d_act = dy W_2 (w_2's input gradient). d_act itself is not stored (only SwiGLU
// reads it); C is read when beta is not 0, to finish a sum begun there. Writes
//   d_gate = d_act * up * silu'(gate),   d_up = d_act * silu(gate),
// silu'(g) = sigmoid(g) * (1 + g * (1 - sigmoid(g))), term for term as swiglu.wgsl.
// gate, up, d_gate and d_up are laid out as C (the host checks it) and share its index.

@group(0) @binding(4) var<storage, read> gate: array<f32>;
@group(0) @binding(5) var<storage, read> up: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_gate: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_up: array<f32>;

fn store(batch: u32, row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        let i = out_index(batch, row, col);
        let dh = total(i, row, col, v);
        let g = gate[i];
        let s = 1.0 / (1.0 + exp(-g));
        d_gate[i] = dh * up[i] * s * (1.0 + g * (1.0 - s));
        d_up[i] = dh * g * s;
    }
}
