// prelude: grid
//
// Causal grouped-query attention in the flash-attention style, forward and backward.
// q, out, dout, dq: [B, T, H, hd]; k, v, dk, dv: [B, T, KV, hd]; lse, delta: [B, H, T].
// Query head h reads kv head h / (H / KV); query t sees keys 0..=t; scores are scaled by
// 1/sqrt(hd). Scores are tiled over query and key blocks with an online softmax, so no T x T
// matrix ever reaches global memory. No atomics: each output element is written by one
// invocation after summing its terms in a fixed order, so results are bitwise reproducible on
// a given adapter.
//
// Block sizes (bq query rows, bk key rows; powers of two <= 64) come from the host, which picks
// them from hd so each kernel's tiles fit the fixed workgroup arrays below: 14.5 KiB in all,
// under WebGPU's guaranteed 16 KiB, for every hd <= 128. The bounds each kernel relies on are
// stated at its entry point.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    kv_heads: u32,
    hd: u32,
    group: u32,     // H / KV: query heads per kv head
    bq: u32,
    bk: u32,
    blocks: u32,    // blocks along the tiled axis: query blocks (forward, dq), key blocks (dkv)
    total: u32,     // workgroups doing work; the grid may round up
    groups_x: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<storage, read> dout: array<f32>;
@group(0) @binding(7) var<storage, read_write> delta: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;
@group(0) @binding(9) var<storage, read_write> dk: array<f32>;
@group(0) @binding(10) var<storage, read_write> dv: array<f32>;

const WG: u32 = 64u;
// Score of a masked entry: finite, so max() and exp() never meet inf - inf.
const NEG: f32 = -3.0e38;

// Shared by all kernels (each uses them differently), so the module's total stays small on
// backends that do not drop unused workgroup variables: (2048 + 1024 + 512 + 128) * 4 bytes.
var<workgroup> tile_a: array<f32, 2048>;
var<workgroup> tile_b: array<f32, 1024>;
var<workgroup> tile_s: array<f32, 512>;
var<workgroup> stats: array<f32, 128>;

// Offset of head h of token t in batch b, in a tensor with n heads.
fn tok(b: u32, t: u32, n: u32, h: u32) -> u32 {
    return ((b * p.seq + t) * n + h) * p.hd;
}

// Element readers that yield 0 past the end of the sequence (the padding rows of the last
// block). One per buffer, so an entry point binds only the buffers it reads.
fn q_at(b: u32, t: u32, h: u32, d: u32) -> f32 {
    var x = 0.0;
    if (t < p.seq) {
        x = q[tok(b, t, p.heads, h) + d];
    }
    return x;
}

fn k_at(b: u32, t: u32, g: u32, d: u32) -> f32 {
    var x = 0.0;
    if (t < p.seq) {
        x = k[tok(b, t, p.kv_heads, g) + d];
    }
    return x;
}

fn v_at(b: u32, t: u32, g: u32, d: u32) -> f32 {
    var x = 0.0;
    if (t < p.seq) {
        x = v[tok(b, t, p.kv_heads, g) + d];
    }
    return x;
}

fn dout_at(b: u32, t: u32, h: u32, d: u32) -> f32 {
    var x = 0.0;
    if (t < p.seq) {
        x = dout[tok(b, t, p.heads, h) + d];
    }
    return x;
}

// Causal mask: query i sees key j <= i; padding query rows see nothing.
fn visible(i: u32, j: u32) -> bool {
    return j <= i && i < p.seq;
}

// Dot product of the hd-long rows at offsets a_at in tile_a and b_at in tile_b.
fn tile_dot(a_at: u32, b_at: u32) -> f32 {
    var s = 0.0;
    for (var d = 0u; d < p.hd; d++) {
        s += tile_a[a_at + d] * tile_b[b_at + d];
    }
    return s;
}

// The query block a forward or dQ workgroup owns: batch b, query head h (reading kv head g),
// first query row t0.
struct QueryBlock {
    b: u32,
    h: u32,
    g: u32,
    t0: u32,
}

fn query_block(wg: u32) -> QueryBlock {
    let h = (wg / p.blocks) % p.heads;
    return QueryBlock(wg / (p.blocks * p.heads), h, h / p.group, (wg % p.blocks) * p.bq);
}

// Put the forward's log-sum-exp and the row sums D of the query rows t0.. of head h into
// stats[0..bq] and stats[WG..WG + bq] (0 for padding rows). Invocations lid < bq do it.
fn load_row_stats(lid: u32, b: u32, h: u32, t0: u32) {
    if (lid < p.bq) {
        var ls = 0.0;
        var dl = 0.0;
        if (t0 + lid < p.seq) {
            let at = (b * p.heads + h) * p.seq + t0 + lid;
            ls = lse[at];
            dl = delta[at];
        }
        stats[lid] = ls;
        stats[WG + lid] = dl;
    }
}

// Forward: one workgroup per (b, h, query block); key blocks in order up to the diagonal.
// Tiles: Q in tile_a (bq * hd <= 2048), K then V in tile_b (bk * hd <= 1024), scores in
// tile_s (bq * bk <= 512). The WG / bq invocations of a query row split its output dims (at
// most 32 each) and keep the running max m, sum l and accumulator in registers.
@compute @workgroup_size(64)
fn attention_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid);
    if (wg >= p.total) {
        return;
    }
    let hd = p.hd;
    let bq = p.bq;
    let bk = p.bk;
    let blk = query_block(wg);
    let b = blk.b;
    let h = blk.h;
    let g = blk.g;
    let t0 = blk.t0;
    for (var e = lid; e < bq * hd; e += WG) {
        tile_a[e] = q_at(b, t0 + e / hd, h, e % hd);
    }
    let per_row = WG / bq;
    let r = lid / per_row;
    let part = lid % per_row;
    var m = NEG;
    var l = 0.0;
    var acc: array<f32, 32>;
    // Keys past the block's last query are masked for all its rows.
    let n_kb = (min(t0 + bq, p.seq) - 1u) / bk + 1u;
    for (var kb = 0u; kb < n_kb; kb++) {
        let k0 = kb * bk;
        // Q is in place; the previous block is done with tile_b and tile_s.
        workgroupBarrier();
        for (var e = lid; e < bk * hd; e += WG) {
            tile_b[e] = k_at(b, k0 + e / hd, g, e % hd);
        }
        workgroupBarrier();
        for (var e = lid; e < bq * bk; e += WG) {
            let i = e / bk;
            let j = e % bk;
            var s = NEG;
            if (visible(t0 + i, k0 + j)) {
                s = tile_dot(i * hd, j * hd) * p.scale;
            }
            tile_s[e] = s;
        }
        workgroupBarrier();
        for (var e = lid; e < bk * hd; e += WG) {
            tile_b[e] = v_at(b, k0 + e / hd, g, e % hd);
        }
        workgroupBarrier();
        // Online softmax: rescale what was summed under the old max, then add this block.
        var m_new = m;
        for (var j = 0u; j < bk; j++) {
            m_new = max(m_new, tile_s[r * bk + j]);
        }
        let alpha = exp(m - m_new);
        l *= alpha;
        for (var x = 0u; x < 32u; x++) {
            acc[x] *= alpha;
        }
        for (var j = 0u; j < bk; j++) {
            let s = tile_s[r * bk + j];
            if (s > NEG) {
                let w = exp(s - m_new);
                l += w;
                for (var x = 0u; x < 32u; x++) {
                    let d = part + x * per_row;
                    if (d >= hd) {
                        break;
                    }
                    acc[x] += w * tile_b[j * hd + d];
                }
            }
        }
        m = m_new;
    }
    let t = t0 + r;
    if (t < p.seq) {
        // Key 0 is visible to every real row, so l >= 1.
        let inv = 1.0 / l;
        let base = tok(b, t, p.heads, h);
        for (var x = 0u; x < 32u; x++) {
            let d = part + x * per_row;
            if (d >= hd) {
                break;
            }
            o[base + d] = acc[x] * inv;
        }
        if (part == 0u) {
            lse[(b * p.heads + h) * p.seq + t] = m + log(l);
        }
    }
}

// Backward, part 1: D = rowsum(dout * out) per (b, h, t), one invocation per row, written to
// `delta` in [B, H, T] order.
@compute @workgroup_size(64)
fn attention_backward_delta(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = element_index(wid, lid);
    if (row >= p.batch * p.heads * p.seq) {
        return;
    }
    let t = row % p.seq;
    let h = (row / p.seq) % p.heads;
    let b = row / (p.seq * p.heads);
    let base = tok(b, t, p.heads, h);
    var s = 0.0;
    for (var d = 0u; d < p.hd; d++) {
        s += dout[base + d] * o[base + d];
    }
    delta[row] = s;
}

// Backward, part 2: dQ. One workgroup per (b, h, query block); key blocks in order:
//   dq_i = scale * sum_j ds_ij k_j,  ds_ij = p_ij (dout_i . v_j - D_i),
//   p_ij = exp(scale * q_i . k_j - lse_i), recomputed from the forward's lse.
// Tiles: Q and dout in tile_a (bq * hd <= 1024 each), V then K in tile_b (bk * hd <= 1024),
// dp then ds in tile_s (bq * bk <= 512), lse and D in stats. The WG / bq invocations of a
// query row split its dims (at most 16 each).
@compute @workgroup_size(64)
fn attention_backward_dq(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid);
    if (wg >= p.total) {
        return;
    }
    let hd = p.hd;
    let bq = p.bq;
    let bk = p.bk;
    let blk = query_block(wg);
    let b = blk.b;
    let h = blk.h;
    let g = blk.g;
    let t0 = blk.t0;
    let qd = bq * hd;
    for (var e = lid; e < qd; e += WG) {
        tile_a[e] = q_at(b, t0 + e / hd, h, e % hd);
        tile_a[qd + e] = dout_at(b, t0 + e / hd, h, e % hd);
    }
    load_row_stats(lid, b, h, t0);
    let per_row = WG / bq;
    let r = lid / per_row;
    let part = lid % per_row;
    var acc: array<f32, 16>;
    let n_kb = (min(t0 + bq, p.seq) - 1u) / bk + 1u;
    for (var kb = 0u; kb < n_kb; kb++) {
        let k0 = kb * bk;
        workgroupBarrier();
        for (var e = lid; e < bk * hd; e += WG) {
            tile_b[e] = v_at(b, k0 + e / hd, g, e % hd);
        }
        workgroupBarrier();
        for (var e = lid; e < bq * bk; e += WG) {
            let i = e / bk;
            let j = e % bk;
            var dp = 0.0;
            if (visible(t0 + i, k0 + j)) {
                dp = tile_dot(qd + i * hd, j * hd);
            }
            tile_s[e] = dp;
        }
        workgroupBarrier();
        for (var e = lid; e < bk * hd; e += WG) {
            tile_b[e] = k_at(b, k0 + e / hd, g, e % hd);
        }
        workgroupBarrier();
        // Same entry-to-invocation map as above: each invocation rewrites only its own dp.
        for (var e = lid; e < bq * bk; e += WG) {
            let i = e / bk;
            let j = e % bk;
            var ds = 0.0;
            if (visible(t0 + i, k0 + j)) {
                let s = tile_dot(i * hd, j * hd);
                ds = exp(s * p.scale - stats[i]) * (tile_s[e] - stats[WG + i]);
            }
            tile_s[e] = ds;
        }
        workgroupBarrier();
        for (var j = 0u; j < bk; j++) {
            let ds = tile_s[r * bk + j];
            for (var x = 0u; x < 16u; x++) {
                let d = part + x * per_row;
                if (d >= hd) {
                    break;
                }
                acc[x] += ds * tile_b[j * hd + d];
            }
        }
    }
    let t = t0 + r;
    if (t < p.seq) {
        let base = tok(b, t, p.heads, h);
        for (var x = 0u; x < 16u; x++) {
            let d = part + x * per_row;
            if (d >= hd) {
                break;
            }
            dq[base + d] = acc[x] * p.scale;
        }
    }
}

// Backward, part 3: dK and dV. One workgroup per (b, kv head g, key block); the group's query
// heads in order, and for each its query blocks from the key block's diagonal on:
//   dv_j = sum_i p_ij dout_i,  dk_j = scale * sum_i ds_ij q_i.
// Tiles: K and V in tile_a (bk * hd <= 1024 each), Q and dout in tile_b (bq * hd <= 512
// each), p and ds in tile_s (bq * bk <= 256 each), lse and D in stats. The WG / bk
// invocations of a key row split its dims (at most 16 each).
@compute @workgroup_size(64)
fn attention_backward_dkv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wg = group_index(wid);
    if (wg >= p.total) {
        return;
    }
    let hd = p.hd;
    let bq = p.bq;
    let bk = p.bk;
    let kb = wg % p.blocks;
    let g = (wg / p.blocks) % p.kv_heads;
    let b = wg / (p.blocks * p.kv_heads);
    let k0 = kb * bk;
    let kd = bk * hd;
    for (var e = lid; e < kd; e += WG) {
        tile_a[e] = k_at(b, k0 + e / hd, g, e % hd);
        tile_a[kd + e] = v_at(b, k0 + e / hd, g, e % hd);
    }
    let qd = bq * hd;
    let ps = bq * bk;
    let per_row = WG / bk;
    let c = lid / per_row;
    let part = lid % per_row;
    var acc_k: array<f32, 16>;
    var acc_v: array<f32, 16>;
    let n_qb = (p.seq + bq - 1u) / bq;
    for (var n = 0u; n < p.group; n++) {
        let h = g * p.group + n;
        // Query blocks wholly before this key block see none of its keys.
        for (var qb = k0 / bq; qb < n_qb; qb++) {
            let t0 = qb * bq;
            // K and V are in place; the previous block is done with tile_b, tile_s and stats.
            workgroupBarrier();
            for (var e = lid; e < qd; e += WG) {
                tile_b[e] = q_at(b, t0 + e / hd, h, e % hd);
                tile_b[qd + e] = dout_at(b, t0 + e / hd, h, e % hd);
            }
            load_row_stats(lid, b, h, t0);
            workgroupBarrier();
            for (var e = lid; e < ps; e += WG) {
                let i = e / bk;
                let j = e % bk;
                var pr = 0.0;
                var ds = 0.0;
                if (visible(t0 + i, k0 + j)) {
                    // Here the keys are in tile_a and the queries in tile_b.
                    let s = tile_dot(j * hd, i * hd);
                    let dp = tile_dot(kd + j * hd, qd + i * hd);
                    pr = exp(s * p.scale - stats[i]);
                    ds = pr * (dp - stats[WG + i]);
                }
                tile_s[e] = pr;
                tile_s[ps + e] = ds;
            }
            workgroupBarrier();
            for (var i = 0u; i < bq; i++) {
                let pr = tile_s[i * bk + c];
                let ds = tile_s[ps + i * bk + c];
                for (var x = 0u; x < 16u; x++) {
                    let d = part + x * per_row;
                    if (d >= hd) {
                        break;
                    }
                    acc_v[x] += pr * tile_b[qd + i * hd + d];
                    acc_k[x] += ds * tile_b[i * hd + d];
                }
            }
        }
    }
    let t = k0 + c;
    if (t < p.seq) {
        let base = tok(b, t, p.kv_heads, g);
        for (var x = 0u; x < 16u; x++) {
            let d = part + x * per_row;
            if (d >= hd) {
                break;
            }
            dk[base + d] = acc_k[x] * p.scale;
            dv[base + d] = acc_v[x];
        }
    }
}
