// prelude: grid
//
// Causal grouped-query attention for software adapters (lavapipe, llvmpipe, SwiftShader),
// forward and backward: the same contract as attention.wgsl (layouts, lse, delta, scale,
// determinism), computed one row per invocation with no workgroup memory and no barriers.
//
// Why a second kernel: on a CPU, workgroup memory is the same cache as everything else, so
// staging tiles only adds copies, and every barrier makes the driver split the shader into
// coroutines (llvmpipe took minutes to compile the tiled kernels' barrier loops on a cold
// cache). Here each invocation keeps its row (and running sums) in registers and walks the
// other side's rows in order; the loop index is the same for the whole workgroup, so those
// rows are read with uniform (broadcast) loads.
//
// HD4, the head size in vec4s, is a pipeline constant, so every loop over a row has a
// constant trip count and the compiler can keep rows in registers; vec4 loads take a quarter
// of the address arithmetic and bounds checks of scalar ones.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    kv_heads: u32,
    hd: u32,
    group: u32,     // H / KV: query heads per kv head
    bq: u32,        // rows per workgroup (WG); unused here
    bk: u32,
    blocks: u32,    // row blocks of WG rows per (batch, head)
    total: u32,     // workgroups doing work; the grid may round up
    groups_x: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> o: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> delta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> dk: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read_write> dv: array<vec4<f32>>;

// Rows per workgroup: small, so the rows of one workgroup end their causal loops close
// together (the loop runs to the workgroup's last row, later keys masked).
const WG: u32 = 16u;
// The head size in vec4s (head_dim / 4; the host runs this kernel only when 4 divides it)
// as a pipeline constant, so loops over a row unroll; 0 for large heads, whose fully unrolled
// loops took the driver a minute to compile: they then read it from the uniform (`n4`).
override HD4: u32 = 0u;
const MAX_HD4: u32 = 32u;
const NEG: f32 = -3.0e38;

fn n4() -> u32 {
    return select(p.hd / 4u, HD4, HD4 != 0u);
}

fn tok(b: u32, t: u32, n: u32, h: u32) -> u32 {
    return ((b * p.seq + t) * n + h) * n4();
}

// The row block a workgroup owns: batch b, head h (of `n` heads), first row t0.
struct RowBlock {
    b: u32,
    h: u32,
    t0: u32,
}

fn row_block(wg: u32, n: u32) -> RowBlock {
    return RowBlock(wg / (p.blocks * n), (wg / p.blocks) % n, (wg % p.blocks) * WG);
}

// The query row an invocation of the forward or dQ owns: batch b, head h (reading kv head g),
// row t, the end of its workgroup's rows (keys from there on are masked for all of them), and
// the row's offset. Padding invocations past the sequence work on the last row (`live` false)
// and store nothing.
struct QueryRow {
    b: u32,
    h: u32,
    g: u32,
    t: u32,
    end: u32,
    base: u32,
    live: bool,
}

fn query_row(wg: u32, lid: u32) -> QueryRow {
    let blk = row_block(wg, p.heads);
    let t = min(blk.t0 + lid, p.seq - 1u);
    return QueryRow(
        blk.b,
        blk.h,
        blk.h / p.group,
        t,
        min(blk.t0 + WG, p.seq),
        tok(blk.b, t, p.heads, blk.h),
        blk.t0 + lid < p.seq,
    );
}

// Forward: invocation = query row t of head h; keys 0 .. the workgroup's end, those after t
// masked for this row.
@compute @workgroup_size(16)
fn attention_rows_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid);
    if (wg >= p.total) {
        return;
    }
    let r = query_row(wg, lid);
    let b = r.b;
    let h = r.h;
    let g = r.g;
    let t = r.t;
    let end = r.end;
    let qb = r.base;
    var qs: array<vec4<f32>, MAX_HD4>;
    for (var d = 0u; d < n4(); d++) {
        qs[d] = q[qb + d] * p.scale;
    }
    // Online softmax over steps of 4 keys, their scores in one vec4: one rescale of the
    // running sums per step. Keys past `end` in the last step are read clamped and masked.
    var m = NEG;
    var l = 0.0;
    var acc: array<vec4<f32>, MAX_HD4>;
    for (var j0 = 0u; j0 < end; j0 += 4u) {
        var kb: array<u32, 4>;
        var s = vec4(NEG);
        for (var jj = 0u; jj < 4u; jj++) {
            let j = j0 + jj;
            kb[jj] = tok(b, min(j, end - 1u), p.kv_heads, g);
            var dot_qk = 0.0;
            for (var d = 0u; d < n4(); d++) {
                dot_qk += dot(qs[d], k[kb[jj] + d]);
            }
            s[jj] = select(NEG, dot_qk, j <= t && j < end);
        }
        let m_new = max(m, max(max(s.x, s.y), max(s.z, s.w)));
        let corr = exp(m - m_new);
        // Key 0 is in the first step and visible to every row, so m_new is a real score and
        // masked keys weigh exp(NEG - m_new) = 0.
        let w = select(vec4(0.0), exp(s - m_new), s > vec4(NEG));
        l = fma(l, corr, w.x + w.y + w.z + w.w);
        for (var d = 0u; d < n4(); d++) {
            var a = acc[d] * corr;
            a = fma(vec4(w.x), v[kb[0] + d], a);
            a = fma(vec4(w.y), v[kb[1] + d], a);
            a = fma(vec4(w.z), v[kb[2] + d], a);
            acc[d] = fma(vec4(w.w), v[kb[3] + d], a);
        }
        m = m_new;
    }
    if (r.live) {
        // Key 0 is visible to every row, so l >= 1.
        let inv = 1.0 / l;
        for (var d = 0u; d < n4(); d++) {
            o[qb + d] = acc[d] * inv;
        }
        lse[(b * p.heads + h) * p.seq + t] = m + log(l);
    }
}

// dQ: invocation = query row t of head h; keys in order:
//   dq_t = scale * sum_j ds_tj k_j,  ds_tj = p_tj (dout_t . v_j - D_t),
//   p_tj = exp(scale * q_t . k_j - lse_t).
@compute @workgroup_size(16)
fn attention_rows_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid);
    if (wg >= p.total) {
        return;
    }
    let r = query_row(wg, lid);
    let b = r.b;
    let h = r.h;
    let g = r.g;
    let t = r.t;
    let end = r.end;
    let qb = r.base;
    var qs: array<vec4<f32>, MAX_HD4>;
    var dos: array<vec4<f32>, MAX_HD4>;
    for (var d = 0u; d < n4(); d++) {
        qs[d] = q[qb + d] * p.scale;
        dos[d] = dout[qb + d];
    }
    let row = (b * p.heads + h) * p.seq + t;
    let ls = lse[row];
    let dl = delta[row];
    var acc: array<vec4<f32>, MAX_HD4>;
    for (var j = 0u; j < end; j++) {
        let kb = tok(b, j, p.kv_heads, g);
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < n4(); d++) {
            s += dot(qs[d], k[kb + d]);
            dp += dot(dos[d], v[kb + d]);
        }
        let pr = select(0.0, exp(s - ls), j <= t);
        let ds = pr * (dp - dl);
        for (var d = 0u; d < n4(); d++) {
            acc[d] = fma(vec4(ds), k[kb + d], acc[d]);
        }
    }
    if (r.live) {
        for (var d = 0u; d < n4(); d++) {
            dq[qb + d] = acc[d] * p.scale;
        }
    }
}

// dK and dV: invocation = key row j of kv head g; the group's query heads in order, and for
// each the query rows from the workgroup's first key row on:
//   dv_j = sum_i p_ij dout_i,  dk_j = scale * sum_i ds_ij q_i.
@compute @workgroup_size(16)
fn attention_rows_dkv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid);
    if (wg >= p.total) {
        return;
    }
    let blk = row_block(wg, p.kv_heads);
    let b = blk.b;
    let g = blk.h;
    let j = min(blk.t0 + lid, p.seq - 1u);
    let kb = tok(b, j, p.kv_heads, g);
    var ks: array<vec4<f32>, MAX_HD4>;
    var vs: array<vec4<f32>, MAX_HD4>;
    for (var d = 0u; d < n4(); d++) {
        ks[d] = k[kb + d] * p.scale;
        vs[d] = v[kb + d];
    }
    var acc_k: array<vec4<f32>, MAX_HD4>;
    var acc_v: array<vec4<f32>, MAX_HD4>;
    for (var n = 0u; n < p.group; n++) {
        let h = g * p.group + n;
        // Queries before the block's first key see none of its keys.
        for (var i = blk.t0; i < p.seq; i++) {
            let qb = tok(b, i, p.heads, h);
            let row = (b * p.heads + h) * p.seq + i;
            var s = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < n4(); d++) {
                s += dot(ks[d], q[qb + d]);
                dp += dot(vs[d], dout[qb + d]);
            }
            let pr = select(0.0, exp(s - lse[row]), i >= j);
            let ds = pr * (dp - delta[row]);
            for (var d = 0u; d < n4(); d++) {
                acc_v[d] = fma(vec4(pr), dout[qb + d], acc_v[d]);
                acc_k[d] = fma(vec4(ds), q[qb + d], acc_k[d]);
            }
        }
    }
    if (blk.t0 + lid < p.seq) {
        for (var d = 0u; d < n4(); d++) {
            dk[kb + d] = acc_k[d] * p.scale;
            dv[kb + d] = acc_v[d];
        }
    }
}
