// prelude/matmul_common.wgsl: what every matmul kernel shares: the parameters and bindings
// of C = alpha * op(A) * op(B) + beta * C (see shaders/matmul.wgsl for the layout), the tile
// a workgroup owns, and the finished value of one output; the `store` of it comes from an
// epilogue snippet (`matmul_store*.wgsl`). Needs the prelude `grid_3d`.

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

// The index of output (row, col) of matrix `batch` in c, and the finished value there:
// alpha * v + beta * (what c holds). Each epilogue snippet (`matmul_store*.wgsl`) defines
// `store` from these two.
fn out_index(batch: u32, row: u32, col: u32) -> u32 {
    return p.c_off + batch * p.c_bs + row * p.c_rs + col;
}

fn finished(i: u32, v: f32) -> f32 {
    var out = p.alpha * v;
    if (p.beta != 0.0) {
        out = out + p.beta * c[i];
    }
    return out;
}
