// prelude/matmul_rows.wgsl: the register-blocked kernel for software adapters (lavapipe,
// llvmpipe, SwiftShader). On a CPU, workgroup memory is the same cache as everything else, so
// staging tiles only costs copies and barriers. Instead each workgroup owns ROWS_TM rows (the
// same for all its lanes, so A is read with uniform loads) and each lane ROWS_TN columns,
// strided by the workgroup width so neighbouring lanes read neighbouring B elements.
// Needs from the shader: `const ROWS_WG, ROWS_TM, ROWS_TN` (plain constants, not overrides:
// lavapipe ran the kernel at about half speed with the same values as pipeline constants),
// and the preludes `grid_3d` and `matmul_common`. Each `matmul_rows_*.wgsl` is one tile shape.

@compute @workgroup_size(ROWS_WG)
fn matmul_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = tile_of(wid, ROWS_TM, ROWS_WG * ROWS_TN);
    if (!t.valid) {
        return;
    }
    let a_base = p.a_off + t.batch * p.a_bs;
    let b_base = p.b_off + t.batch * p.b_bs;
    // Clamped indices keep every load in bounds without branching in the inner loop;
    // the clamped rows and columns are simply not stored.
    var a_row: array<u32, ROWS_TM>;
    for (var i = 0u; i < ROWS_TM; i++) {
        a_row[i] = a_base + min(t.m0 + i, p.m - 1u) * p.a_rs;
    }
    var b_col: array<u32, ROWS_TN>;
    for (var j = 0u; j < ROWS_TN; j++) {
        b_col[j] = b_base + min(t.n0 + lid.x + j * ROWS_WG, p.n - 1u) * p.b_cs;
    }
    var acc: array<array<f32, ROWS_TN>, ROWS_TM>;
    for (var kk = 0u; kk < p.k; kk++) {
        var bv: array<f32, ROWS_TN>;
        let b_k = kk * p.b_rs;
        for (var j = 0u; j < ROWS_TN; j++) {
            bv[j] = b[b_col[j] + b_k];
        }
        let a_k = kk * p.a_cs;
        for (var i = 0u; i < ROWS_TM; i++) {
            let av = a[a_row[i] + a_k];
            for (var j = 0u; j < ROWS_TN; j++) {
                acc[i][j] = fma(av, bv[j], acc[i][j]);
            }
        }
    }
    for (var i = 0u; i < ROWS_TM; i++) {
        for (var j = 0u; j < ROWS_TN; j++) {
            store(t.batch, t.m0 + i, t.n0 + lid.x + j * ROWS_WG, acc[i][j]);
        }
    }
}
