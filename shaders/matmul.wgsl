// prelude: grid_3d
//
// The matmul family: C = alpha * op(A) * op(B) + beta * C, batched and strided.
//
// A(m, k) lives at a[a_off + batch * a_bs + m * a_rs + k * a_cs], likewise B(k, n); C is
// row-major with row stride c_rs. Transposed layouts are just other strides, so A*B, A*B^T and
// A^T*B are one kernel and no transpose is ever materialised. beta == 0 never reads C.
//
// Workgroups are laid out linearly (tile_n fastest, then tile_m, then batch) and folded over
// x, y and z when there are more than one dispatch dimension allows.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_rs: u32, a_cs: u32, a_bs: u32,
    b_off: u32, b_rs: u32, b_cs: u32, b_bs: u32,
    c_off: u32, c_rs: u32, c_bs: u32, groups_x: u32,
    alpha: f32, beta: f32, tiles_m: u32, tiles_n: u32,
    groups_y: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

struct Tile { batch: u32, m0: u32, n0: u32, valid: bool }

fn tile_of(wid: vec3<u32>, tile_m: u32, tile_n: u32) -> Tile {
    let linear = group_index_3d(wid);
    let per_batch = p.tiles_m * p.tiles_n;
    var t: Tile;
    t.valid = linear < per_batch * p.batch;
    t.batch = linear / per_batch;
    let in_batch = linear % per_batch;
    t.m0 = (in_batch / p.tiles_n) * tile_m;
    t.n0 = (in_batch % p.tiles_n) * tile_n;
    return t;
}

fn store(batch: u32, row: u32, col: u32, v: f32) {
    if (row < p.m && col < p.n) {
        let i = p.c_off + batch * p.c_bs + row * p.c_rs + col;
        var out = p.alpha * v;
        if (p.beta != 0.0) {
            out = out + p.beta * c[i];
        }
        c[i] = out;
    }
}

// ---------------------------------------------------------------------------------------------
// matmul_rows: for software adapters (lavapipe, SwiftShader). On a CPU, workgroup memory is the
// same cache as everything else, so staging tiles only costs copies and barriers. Instead each
// workgroup owns ROWS_TM rows (the same for all its lanes) and each lane ROWS_TN columns,
// strided by the workgroup width so neighbouring lanes read neighbouring B elements.
// 8x4 per lane measured best on lavapipe (Mesa 25, AVX2) among 4x4, 6x2, 8x2, 8x1, 12x1, 16x1.

const ROWS_WG: u32 = 16u;
const ROWS_TM: u32 = 8u;
const ROWS_TN: u32 = 4u;

@compute @workgroup_size(16)
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

// ---------------------------------------------------------------------------------------------
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
