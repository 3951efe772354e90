// prelude: grid_3d, matmul_common
//
// The matmul family: C = alpha * op(A) * op(B) + beta * C, batched and strided.
//
// A(m, k) lives at a[a_off + batch * a_bs + m * a_rs + k * a_cs], likewise B(k, n); C is
// row-major with row stride c_rs. Transposed layouts are just other strides, so A*B, A*B^T and
// A^T*B are one kernel and no transpose is ever materialised. beta == 0 never reads C.
//
// Workgroups are laid out linearly (tile_n fastest, then tile_m, then batch) and folded over
// x, y and z when there are more than one dispatch dimension allows.
//
// The variants: matmul_tiled here (GPUs), and the register-blocked rows kernel
// (prelude/matmul_rows.wgsl) at the tile shapes of the matmul_rows_*.wgsl files. Every one
// sums an output's K terms in order, one fma each, from zero: they agree bit for bit.

// matmul_tiled: for GPUs. 64x64 output tiles, 16-deep K slices staged in workgroup memory,
// 16x16 threads each holding a 4x4 register block. A thread's outputs are strided by 16 so
// that a warp reads consecutive workgroup-memory words. Tile loads follow whichever stride
// of A and B is 1, so transposed operands are read coalesced too.

const TILE: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1040>; // [TK][TILE + 1], padded against bank conflicts
var<workgroup> b_tile: array<f32, 1040>;

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let t = tile_of(wid, TILE, TILE);
    if (!t.valid) {
        return;
    }
    let tx = li % 16u;
    let ty = li / 16u;
    let a_base = p.a_off + t.batch * p.a_bs;
    let b_base = p.b_off + t.batch * p.b_bs;
    let a_k_fast = p.a_cs == 1u;
    let b_n_fast = p.b_cs == 1u;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var e = 0u; e < 4u; e++) {
            let idx = li + 256u * e;
            // A tile element (row r, depth d), walking the contiguous direction fastest.
            var r = idx / TK;
            var d = idx % TK;
            if (!a_k_fast) {
                r = idx % TILE;
                d = idx / TILE;
            }
            let gr = t.m0 + r;
            let gk = k0 + d;
            var av = 0.0;
            if (gr < p.m && gk < p.k) {
                av = a[a_base + gr * p.a_rs + gk * p.a_cs];
            }
            a_tile[d * (TILE + 1u) + r] = av;
            // B tile element (depth d, column q).
            var q = idx % TILE;
            var dd = idx / TILE;
            if (!b_n_fast) {
                q = idx / TK;
                dd = idx % TK;
            }
            let gq = t.n0 + q;
            let gk2 = k0 + dd;
            var bv = 0.0;
            if (gq < p.n && gk2 < p.k) {
                bv = b[b_base + gk2 * p.b_rs + gq * p.b_cs];
            }
            b_tile[dd * (TILE + 1u) + q] = bv;
        }
        workgroupBarrier();
        for (var d = 0u; d < TK; d++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = a_tile[d * (TILE + 1u) + ty + 16u * i];
                br[i] = b_tile[d * (TILE + 1u) + tx + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(ar[i], br[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(t.batch, t.m0 + ty + 16u * i, t.n0 + tx + 16u * j, acc[i][j]);
        }
    }
}
