// prelude: grid, tree_sum3, svd_state
//
// Matrix statistics for the learning-dynamics metrics, and the OV-circuit construction.
//
// From the entries (taken from the SVD's working copy right after it is loaded: the entries
// of A scaled by the exact power of two 2^-e recorded in the SVD state):
//   stats_fill      keys = |x|, padded with zeros to a power of two >= BLOCK
//   sort_local      bitonic sort in blocks of BLOCK in workgroup memory (full sort of each
//                   block when p.k == 0, else the steps j < BLOCK of stage p.k)
//   sort_global     one bitonic compare-exchange step (stage p.k, distance p.j >= BLOCK)
//   stats_reduce    per CHUNK of sorted keys: sum |x|, sum x^2, sum ((2i - n - 1) / n) |x|_(i)
//   stats_finalize  one workgroup: Frobenius, L1, Gini, Hoyer, max |x|
// From the singular values:
//   stats_singular  nuclear, spectral, min, entropy, PER, condition number, sum s^2
// The sort makes the Gini coefficient exact (the rank of every entry is its sorted position;
// ties do not change the sum). Every sum runs in a fixed order: reproducible on an adapter.

struct Params {
    n: u32,        // entries of the matrix (stats_*), or singular values (stats_singular)
    padded: u32,   // length of `keys`: a power of two >= BLOCK
    k: u32,        // bitonic stage (the size of the sequences being merged)
    j: u32,        // bitonic step distance (sort_global)
    groups_x: u32,
    total: u32,    // workgroups doing work; the grid may round up
    count: u32,    // partial sums to merge (stats_finalize)
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> keys: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read> state: array<u32>;

// Words of `stats`.
const T_NUCLEAR: u32 = 0u;
const T_SPECTRAL: u32 = 1u;
const T_MIN: u32 = 2u;
const T_ENTROPY: u32 = 3u;
const T_PER: u32 = 4u;
const T_COND: u32 = 5u;      // max / min, 0 when min = 0
const T_FRO: u32 = 6u;
const T_L1: u32 = 7u;
const T_GINI: u32 = 8u;
const T_HOYER: u32 = 9u;
const T_MAXABS: u32 = 10u;
const T_SUMSQ_SV: u32 = 11u;

// The SVD state's word S_EXP (prelude/svd_state.wgsl) holds e (i32 bits): the entries in
// `src` are a * 2^-e.

const WG: u32 = 256u;
const BLOCK: u32 = 2048u;    // keys sorted per workgroup in sort_local
const CHUNK: u32 = 4096u;    // keys summed per workgroup in stats_reduce

var<workgroup> block: array<f32, BLOCK>;
// red_a, red_b, red_c and tree_sum3 (fixed-order sums into element 0) come from the prelude.

@compute @workgroup_size(256)
fn stats_fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = element_index(wid, lane);
    if (i >= p.padded) {
        return;
    }
    var v = 0.0;
    if (i < p.n) {
        v = abs(src[i]);
    }
    keys[i] = v;
}

// Compare-exchange of local positions l and l + j inside the block, for stage k; `base` is
// the block's first global index (the direction depends on the global index).
fn local_step(lane: u32, base: u32, k: u32, j: u32) {
    for (var q = lane; q < BLOCK / 2u; q += WG) {
        let l = 2u * j * (q / j) + q % j;
        let up = ((base + l) & k) == 0u;
        let x = block[l];
        let y = block[l + j];
        if ((x > y) == up) {
            block[l] = y;
            block[l + j] = x;
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn sort_local(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let g = group_index(wid);
    if (g >= p.total) {
        return;
    }
    let base = g * BLOCK;
    for (var e = lane; e < BLOCK; e += WG) {
        block[e] = keys[base + e];
    }
    workgroupBarrier();
    if (p.k == 0u) {
        for (var k = 2u; k <= BLOCK; k <<= 1u) {
            for (var j = k / 2u; j > 0u; j >>= 1u) {
                local_step(lane, base, k, j);
            }
        }
    } else {
        for (var j = BLOCK / 2u; j > 0u; j >>= 1u) {
            local_step(lane, base, p.k, j);
        }
    }
    for (var e = lane; e < BLOCK; e += WG) {
        keys[base + e] = block[e];
    }
}

@compute @workgroup_size(256)
fn sort_global(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let q = element_index(wid, lane);
    if (q >= p.padded / 2u) {
        return;
    }
    let l = 2u * p.j * (q / p.j) + q % p.j;
    let up = (l & p.k) == 0u;
    let x = keys[l];
    let y = keys[l + p.j];
    if ((x > y) == up) {
        keys[l] = y;
        keys[l + p.j] = x;
    }
}

@compute @workgroup_size(256)
fn stats_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let g = group_index(wid);
    if (g >= p.total) {
        return;
    }
    // Sorted position q holds the entry of rank q - (padded - n) + 1 (1-based); the padding
    // zeros (and zero entries) contribute nothing whatever their weight.
    let shift = i32(p.padded - p.n);
    let nf = f32(p.n);
    var s1 = 0.0;
    var s2 = 0.0;
    var sg = 0.0;
    let end = min((g + 1u) * CHUNK, p.padded);
    for (var q = g * CHUNK + lane; q < end; q += WG) {
        let x = keys[q];
        let rank = i32(q) - shift + 1;
        let weight = f32(2 * rank - i32(p.n) - 1) / nf;
        s1 += x;
        s2 += x * x;
        sg += weight * x;
    }
    red_a[lane] = s1;
    red_b[lane] = s2;
    red_c[lane] = sg;
    workgroupBarrier();
    tree_sum3(lane);
    if (lane == 0u) {
        partials[3u * g] = red_a[0];
        partials[3u * g + 1u] = red_b[0];
        partials[3u * g + 2u] = red_c[0];
    }
}

@compute @workgroup_size(256)
fn stats_finalize(@builtin(local_invocation_index) lane: u32) {
    var s1 = 0.0;
    var s2 = 0.0;
    var sg = 0.0;
    for (var g = lane; g < p.count; g += WG) {
        s1 += partials[3u * g];
        s2 += partials[3u * g + 1u];
        sg += partials[3u * g + 2u];
    }
    red_a[lane] = s1;
    red_b[lane] = s2;
    red_c[lane] = sg;
    workgroupBarrier();
    tree_sum3(lane);
    if (lane == 0u) {
        let e = bitcast<i32>(state[S_EXP]);
        let l1 = red_a[0];
        let l2 = sqrt(red_b[0]);
        stats[T_FRO] = ldexp(l2, e);
        stats[T_L1] = ldexp(l1, e);
        stats[T_MAXABS] = ldexp(keys[p.padded - 1u], e);
        var gini = 0.0;
        var hoyer = 0.0;
        if (l1 > 0.0) {
            gini = red_c[0] / l1;
            let rn = sqrt(f32(p.n));
            if (p.n > 1u) {
                hoyer = (rn - l1 / l2) / (rn - 1.0);
            }
        }
        stats[T_GINI] = gini;
        stats[T_HOYER] = hoyer;
    }
}

// Metrics of the singular values src[0 .. n] (any order).
@compute @workgroup_size(256)
fn stats_singular(@builtin(local_invocation_index) lane: u32) {
    var sum = 0.0;
    var sq = 0.0;
    var hi = 0.0;
    var lo = 0.0;
    if (p.n > 0u) {
        lo = src[0];
    }
    for (var i = lane; i < p.n; i += WG) {
        let s = src[i];
        sum += s;
        sq += s * s;
        hi = max(hi, s);
        lo = min(lo, s);
    }
    red_a[lane] = sum;
    red_b[lane] = sq;
    red_c[lane] = 0.0;
    block[lane] = hi;
    block[WG + lane] = lo;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            red_a[lane] += red_a[lane + s];
            red_b[lane] += red_b[lane + s];
            block[lane] = max(block[lane], block[lane + s]);
            block[WG + lane] = min(block[WG + lane], block[WG + lane + s]);
        }
        workgroupBarrier();
    }
    let total = red_a[0];
    let smax = block[0];
    let smin = block[WG];
    workgroupBarrier();
    // Entropy of p = s / sum s, with 0 ln 0 = 0.
    var h = 0.0;
    if (total > 0.0) {
        for (var i = lane; i < p.n; i += WG) {
            let q = src[i] / total;
            if (q > 0.0) {
                h -= q * log(q);
            }
        }
    }
    red_c[lane] = h;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            red_c[lane] += red_c[lane + s];
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        let entropy = red_c[0];
        stats[T_NUCLEAR] = total;
        stats[T_SPECTRAL] = smax;
        stats[T_MIN] = smin;
        stats[T_ENTROPY] = entropy;
        stats[T_PER] = exp(entropy) / f32(p.n);
        var cond = 0.0;
        if (smin > 0.0) {
            cond = smax / smin;
        }
        stats[T_COND] = cond;
        stats[T_SUMSQ_SV] = red_b[0];
    }
}

// ---------------------------------------------------------------------------------------------
// OV circuit: out[out_offset + h * out_hs + i * out_rs + j]
//   = sum_c x[xo(h) + i * x_rs + c] * y[yo(h) + c * y_rs + j]
// for every head h, with xo(h) = x_hq * h + x_hkv * (h / group) (likewise yo): the heads'
// products side by side along the columns (out_hs = cols, out_rs = heads * cols) or stacked
// (out_hs = rows * cols, out_rs = cols). 16 x 16 output tiles, the inner dim in steps of 16.

struct OvParams {
    rows: u32,     // rows of one head's product
    cols: u32,     // columns of one head's product
    inner: u32,    // inner dimension
    heads: u32,
    group: u32,    // query heads per kv head
    x_rs: u32,
    x_hq: u32,
    x_hkv: u32,
    y_rs: u32,
    y_hq: u32,
    y_hkv: u32,
    tiles_r: u32,
    tiles_c: u32,
    groups_x: u32,
    total: u32,
    out_offset: u32, // where head 0's product starts in ov_out
    out_hs: u32,     // stride between heads' products in ov_out
    out_rs: u32,     // stride between rows of one head's product in ov_out
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> ov: OvParams;
@group(0) @binding(6) var<storage, read> ov_x: array<f32>;
@group(0) @binding(7) var<storage, read> ov_y: array<f32>;
@group(0) @binding(8) var<storage, read_write> ov_out: array<f32>;

var<workgroup> tx: array<array<f32, 17>, 16>;
var<workgroup> ty: array<array<f32, 17>, 16>;

@compute @workgroup_size(16, 16)
fn ov_circuit(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = wid.x + ov.groups_x * wid.y;
    if (t >= ov.total) {
        return;
    }
    let per_head = ov.tiles_r * ov.tiles_c;
    let h = t / per_head;
    let r0 = ((t % per_head) / ov.tiles_c) * 16u;
    let c0 = (t % ov.tiles_c) * 16u;
    let kvh = h / ov.group;
    let xo = ov.x_hq * h + ov.x_hkv * kvh;
    let yo = ov.y_hq * h + ov.y_hkv * kvh;
    let i = r0 + lid.y;
    let j = c0 + lid.x;
    var acc = 0.0;
    for (var c0k = 0u; c0k < ov.inner; c0k += 16u) {
        // tx[row][c] = x(r0 + row, c0k + c); ty[c][col] = y(c0k + c, c0 + col)
        let xc = c0k + lid.x;
        var xv = 0.0;
        if (i < ov.rows && xc < ov.inner) {
            xv = ov_x[xo + i * ov.x_rs + xc];
        }
        tx[lid.y][lid.x] = xv;
        let yc = c0k + lid.y;
        var yv = 0.0;
        if (yc < ov.inner && j < ov.cols) {
            yv = ov_y[yo + yc * ov.y_rs + j];
        }
        ty[lid.y][lid.x] = yv;
        workgroupBarrier();
        for (var c = 0u; c < 16u; c++) {
            acc += tx[lid.y][c] * ty[c][lid.x];
        }
        workgroupBarrier();
    }
    if (i < ov.rows && j < ov.cols) {
        ov_out[ov.out_offset + h * ov.out_hs + i * ov.out_rs + j] = acc;
    }
}
