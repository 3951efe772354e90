// prelude/matmul_common.wgsl: what every matmul kernel shares: the parameters and bindings
// of C = alpha * op(A) * op(B) + beta * C (see shaders/matmul.wgsl for the layout), the tile
// a workgroup owns, and the finished value of one output; the `store` of it comes from the
// epilogue snippets (below). Needs the prelude `grid_3d`.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_off: u32, a_rs: u32, a_cs: u32, a_bs: u32,
    b_off: u32, b_rs: u32, b_cs: u32, b_bs: u32,
    c_off: u32, c_rs: u32, c_bs: u32, groups_x: u32,
    alpha: f32, beta: f32, tiles_m: u32, tiles_n: u32,
    groups_y: u32,
    // The low-rank term (matmul_term_low_rank.wgsl; the other kernels ignore these): rank r,
    // this dispatch's first row and column in C, C's columns, right's strides, LoRA
    // dropout's RNG stream, threshold and on/off, the term's scale and dropout's 1 / (1 - p).
    lr_rank: u32, lr_row0: u32, lr_col0: u32,
    lr_cols: u32, lr_right_js: u32, lr_right_cs: u32, lr_stream: u32,
    lr_threshold: u32, lr_dropout: u32, lr_scale: f32, lr_drop_scale: f32,
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
// alpha * v + beta * (what c holds). A matmul is composed with two epilogue snippets: a
// term (`matmul_term_*.wgsl`: `total`, the finished value plus what it adds) and a store
// (`matmul_store*.wgsl`: `store`, which writes total or what follows from it).
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
