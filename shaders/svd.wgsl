// prelude: grid, tree_sum3, svd_state
//
// Singular values by one-sided Jacobi (Hestenes), f32 storage, everything on the device.
//
// The matrix A (rows x cols, row-major, possibly stored in pieces of whole rows) is copied,
// scaled by an exact power of two so that max |a| lies in [0.5, 1), into `w`: k = min(rows,
// cols) vectors of length len = max(rows, cols), vector-major (vector v is w[v*len ..][..len]).
// When cols <= rows the vectors are A's columns (the copy transposes), otherwise A's rows
// (and always the rows for a batch, below: then k = rows, len = cols).
// The vectors form k / block independent blocks of `block` vectors (one block of k for one
// matrix; for a batch of small square matrices stacked vertically, one block per matrix, whose
// rows are its vectors). A sweep visits every pair of vectors of each block once, in kk - 1
// rounds of kk / 2 independent pairs per block (kk = block rounded up to even; round-robin
// "circle" pairing, the odd vector out sits with a dummy): `pairs` = blocks * kk / 2. Each
// pair is rotated so that the two vectors become orthogonal, skipping pairs whose
// cosine |<a_p, a_q>| / (|a_p| |a_q|) is already at most `tol`. The largest cosine met in a
// sweep is its convergence measure; when it is at most `tol`, the device sets `done` and every
// later kernel returns at once. The singular values are then the vector norms.
//
// Reductions run in a fixed order (per-lane strided sums, then a fixed tree), so results are
// reproducible on a given adapter.

struct Params {
    k: u32,          // number of vectors
    len: u32,        // length of each vector
    kk: u32,         // block rounded up to even
    round: u32,      // round of the sweep (svd_rotate)
    rows: u32,       // rows of this piece of A (svd_absmax, svd_load)
    cols: u32,       // columns of A
    row_start: u32,  // first row of A held by this piece
    transpose: u32,  // 1: the vectors are A's columns
    tol: f32,        // rotation / convergence threshold on the cosine
    groups_x: u32,   // workgroups along x of the dispatch grid
    total: u32,      // workgroups (or tiles) doing work; the grid may round up
    tiles_c: u32,    // tiles along A's columns (svd_load)
    block: u32,      // vectors per block (k for one matrix)
    pairs: u32,      // pairs per round over all blocks: (k / block) * kk / 2
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> state: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read_write> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> off: array<f32>;
@group(0) @binding(5) var<storage, read_write> sv: array<f32>;

// The words of `state` (S_EXP, S_DONE, ...) are in prelude/svd_state.wgsl.

const WG: u32 = 256u;
// red_a, red_b, red_c and tree_sum3 (fixed-order sums into element 0) come from the prelude.
var<workgroup> red_u: array<u32, WG>;
var<workgroup> flag: u32;
var<workgroup> tile: array<array<f32, 17>, 16>;

fn scale_exp() -> i32 {
    return bitcast<i32>(atomicLoad(&state[S_EXP]));
}

// Zero the state and the per-pair measures.
@compute @workgroup_size(256)
fn svd_reset(@builtin(local_invocation_index) lane: u32) {
    if (lane < S_WORDS) {
        atomicStore(&state[lane], 0u);
    }
    for (var i = lane; i < p.pairs; i += WG) {
        off[i] = 0.0;
    }
}

// max |a| over one piece, merged into state[S_ABSMAX] as bits (for non-negative floats, and for
// infinities and NaNs above them, the order of the bits is the order of the values).
@compute @workgroup_size(256)
fn svd_absmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let g = group_index(wid);
    if (g >= p.total) {
        return;
    }
    let n = p.rows * p.cols;
    let base = g * (WG * 16u);
    var m = 0u;
    for (var e = 0u; e < 16u; e++) {
        let i = base + e * WG + lane;
        if (i < n) {
            m = max(m, bitcast<u32>(a[i]) & 0x7fffffffu);
        }
    }
    red_u[lane] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            red_u[lane] = max(red_u[lane], red_u[lane + s]);
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        atomicMax(&state[S_ABSMAX], red_u[0]);
    }
}

// The power-of-two scale, from max |a|. A zero matrix or one with non-finite entries has
// nothing to iterate: it is marked done.
@compute @workgroup_size(1)
fn svd_scale() {
    _ = p.k; // binding 0 is every kernel's parameter block
    let m = atomicLoad(&state[S_ABSMAX]);
    var e = 0;
    if (m >= 0x7f800000u) {
        atomicStore(&state[S_NONFINITE], 1u);
        atomicStore(&state[S_DONE], 1u);
    } else if (m == 0u) {
        atomicStore(&state[S_DONE], 1u);
    } else {
        // max |a| * 2^-e lies in [0.5, 1); clamped so the scale stays a normal f32.
        e = clamp(frexp(bitcast<f32>(m)).exp, -120, 120);
    }
    atomicStore(&state[S_EXP], bitcast<u32>(e));
}

// Copy one piece of A into w, scaled by 2^-e, through 16 x 16 tiles (coalesced both ways).
@compute @workgroup_size(16, 16)
fn svd_load(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = group_index(wid);
    if (t >= p.total) {
        return;
    }
    let r0 = (t / p.tiles_c) * 16u;
    let c0 = (t % p.tiles_c) * 16u;
    let f = ldexp(1.0, -scale_exp());
    let r = r0 + lid.y;
    let c = c0 + lid.x;
    var v = 0.0;
    if (r < p.rows && c < p.cols) {
        v = a[r * p.cols + c] * f;
    }
    tile[lid.y][lid.x] = v;
    workgroupBarrier();
    if (p.transpose == 1u) {
        // Vector c0 + lid.y is A's column; element r0 + lid.x of it.
        let rr = r0 + lid.x;
        let cc = c0 + lid.y;
        if (rr < p.rows && cc < p.cols) {
            w[cc * p.len + p.row_start + rr] = tile[lid.x][lid.y];
        }
    } else if (r < p.rows && c < p.cols) {
        w[(p.row_start + r) * p.len + c] = v;
    }
}

// The vector at position `pos` of the round-robin arrangement in round `round`.
fn vector_at(pos: u32, round: u32) -> u32 {
    if (pos == 0u) {
        return 0u;
    }
    return 1u + (pos - 1u + round) % (p.kk - 1u);
}

// One round: workgroup i orthogonalises, in block i / (kk / 2), the pair at positions
// j = i % (kk / 2) and kk - 1 - j.
@compute @workgroup_size(256)
fn svd_rotate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = group_index(wid);
    if (i >= p.pairs) {
        return;
    }
    let half = p.kk / 2u;
    let first = (i / half) * p.block;
    let la = vector_at(i % half, p.round);
    let lb = vector_at(p.kk - 1u - i % half, p.round);
    if (la >= p.block || lb >= p.block) {
        return; // paired with the dummy
    }
    let va = first + la;
    let vb = first + lb;
    if (lane == 0u) {
        flag = atomicLoad(&state[S_DONE]);
    }
    if (workgroupUniformLoad(&flag) != 0u) {
        return;
    }
    let pa = va * p.len;
    let pb = vb * p.len;
    var alpha = 0.0;
    var beta = 0.0;
    var gamma = 0.0;
    for (var e = lane; e < p.len; e += WG) {
        let x = w[pa + e];
        let y = w[pb + e];
        alpha += x * x;
        beta += y * y;
        gamma += x * y;
    }
    red_a[lane] = alpha;
    red_b[lane] = beta;
    red_c[lane] = gamma;
    workgroupBarrier();
    tree_sum3(lane);
    alpha = red_a[0];
    beta = red_b[0];
    gamma = red_c[0];
    var cosine = 0.0;
    if (alpha > 0.0 && beta > 0.0) {
        cosine = abs(gamma) / (sqrt(alpha) * sqrt(beta));
    }
    if (lane == 0u) {
        off[i] = max(off[i], cosine);
    }
    if (!(cosine > p.tol)) {
        return;
    }
    if (lane == 0u) {
        atomicAdd(&state[S_ROT_CUR], 1u);
    }
    // Rutishauser's rotation: zeta = (beta - alpha) / (2 gamma), t the smaller root of
    // t^2 + 2 zeta t - 1 = 0; then <c a_p - s a_q, s a_p + c a_q> = 0.
    let zeta = (beta - alpha) / (2.0 * gamma);
    var t: f32;
    if (abs(zeta) > 1.0e15) {
        t = 0.5 / zeta;
    } else {
        let sg = select(-1.0, 1.0, zeta >= 0.0);
        t = sg / (abs(zeta) + sqrt(1.0 + zeta * zeta));
    }
    let c = 1.0 / sqrt(1.0 + t * t);
    let s = c * t;
    // Rutishauser's form: c x - s y = x - s (y + tau x) with tau = s / (1 + c), so a small
    // rotation adds a small correction and c never rounds to 1 (which would grow the norms
    // by t^2 at each rotation near convergence).
    let tau = s / (1.0 + c);
    for (var e = lane; e < p.len; e += WG) {
        let x = w[pa + e];
        let y = w[pb + e];
        w[pa + e] = x - s * (y + tau * x);
        w[pb + e] = y + s * (x - tau * y);
    }
}

// After each sweep: the sweep's largest cosine, the convergence test, counters.
@compute @workgroup_size(256)
fn svd_sweep_end(@builtin(local_invocation_index) lane: u32) {
    if (lane == 0u) {
        flag = atomicLoad(&state[S_DONE]);
    }
    if (workgroupUniformLoad(&flag) != 0u) {
        return;
    }
    var m = 0.0;
    for (var i = lane; i < p.pairs; i += WG) {
        m = max(m, off[i]);
        off[i] = 0.0;
    }
    red_a[lane] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            red_a[lane] = max(red_a[lane], red_a[lane + s]);
        }
        workgroupBarrier();
    }
    if (lane == 0u) {
        let worst = red_a[0];
        atomicAdd(&state[S_SWEEPS], 1u);
        atomicStore(&state[S_OFF], bitcast<u32>(worst));
        atomicStore(&state[S_ROT_LAST], atomicLoad(&state[S_ROT_CUR]));
        atomicStore(&state[S_ROT_CUR], 0u);
        if (!(worst > p.tol)) {
            atomicStore(&state[S_DONE], 1u);
        }
    }
}

// Singular value v = |w_v| * 2^e (one workgroup per vector).
@compute @workgroup_size(256)
fn svd_norms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let v = group_index(wid);
    if (v >= p.k) {
        return;
    }
    let base = v * p.len;
    var acc = 0.0;
    for (var e = lane; e < p.len; e += WG) {
        let x = w[base + e];
        acc += x * x;
    }
    red_a[lane] = acc;
    red_b[lane] = 0.0;
    red_c[lane] = 0.0;
    workgroupBarrier();
    tree_sum3(lane);
    if (lane == 0u) {
        sv[v] = ldexp(sqrt(red_a[0]), scale_exp());
    }
}
