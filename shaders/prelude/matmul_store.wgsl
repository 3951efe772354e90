// prelude/matmul_store.wgsl: the plain epilogue, C = alpha * op(A) op(B) + beta * C.

fn store(batch: u32, row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        let i = out_index(batch, row, col);
        c[i] = total(i, row, col, v);
    }
}
