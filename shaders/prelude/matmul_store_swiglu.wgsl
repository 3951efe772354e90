// prelude/matmul_store_swiglu.wgsl: SwiGLU in the epilogue of the up product u = x W_1^T.
// Stores u (the backward reads it) and act = silu(gate) * u, with gate = x W_0^T computed
// before. gate and act are laid out as C (the host checks it), so they share C's index.
// The arithmetic is swiglu.wgsl's, term for term.

@group(0) @binding(4) var<storage, read> gate: array<f32>;
@group(0) @binding(5) var<storage, read_write> act: array<f32>;

fn store(batch: u32, row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        let i = out_index(batch, row, col);
        let u = total(i, row, col, v);
        c[i] = u;
        let g = gate[i];
        act[i] = g * (1.0 / (1.0 + exp(-g))) * u;
    }
}
