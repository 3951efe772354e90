// prelude: grid
//
// Attention of one new query row against a KV cache (generation): for every query head h,
//   out[h] = sum_j softmax_j(scale * q[h] . k[j, g]) v[j, g],   j < len,   g = h / group,
// where len (the positions cached so far, the new one included) is read from `cache_len[0]`, so
// one prepared dispatch serves every position. One workgroup per head: its lanes write the
// head's scores to `scores[h]`, reduce their max and sum in a fixed tree order (bitwise
// reproducible), then each lane below head_dim sums its output element over the positions.

struct Params { heads: u32, head_dim: u32, group: u32, kv_heads: u32, capacity: u32, groups_x: u32, scale: f32, pad0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;        // [heads, head_dim]
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;  // [capacity, kv_heads, head_dim]
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;  // [capacity, kv_heads, head_dim]
@group(0) @binding(4) var<storage, read> cache_len: array<u32>; // [len]
@group(0) @binding(5) var<storage, read_write> scores: array<f32>; // [heads, capacity]
@group(0) @binding(6) var<storage, read_write> out: array<f32>;    // [heads, head_dim]

const WG: u32 = 128u;

var<workgroup> part: array<f32, WG>;

// Tree reduction of `part` (max when `take_max`, else sum); every lane gets the result.
fn reduce(lane: u32, take_max: bool) -> f32 {
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lane < k) {
            if (take_max) {
                part[lane] = max(part[lane], part[lane + k]);
            } else {
                part[lane] = part[lane] + part[lane + k];
            }
        }
        workgroupBarrier();
    }
    let r = part[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(128)
fn attention_decode(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let h = group_index(wid);
    // Uniform per workgroup, so the barriers below are reached by every lane or none.
    if (h >= p.heads) {
        return;
    }
    let len = min(cache_len[0], p.capacity);
    let hd = p.head_dim;
    let g = h / p.group;
    let row = p.kv_heads * hd;
    let s_base = h * p.capacity;

    var m = -0x1.fffffep+127f;
    for (var j = lid.x; j < len; j += WG) {
        var s = 0.0;
        for (var i = 0u; i < hd; i++) {
            s += q[h * hd + i] * k_cache[j * row + g * hd + i];
        }
        s *= p.scale;
        scores[s_base + j] = s;
        m = max(m, s);
    }
    part[lid.x] = m;
    workgroupBarrier();
    m = reduce(lid.x, true);

    var sum = 0.0;
    for (var j = lid.x; j < len; j += WG) {
        let e = exp(scores[s_base + j] - m);
        scores[s_base + j] = e;
        sum += e;
    }
    part[lid.x] = sum;
    // The exponentials written above are read by other lanes below.
    storageBarrier();
    workgroupBarrier();
    sum = reduce(lid.x, false);

    for (var i = lid.x; i < hd; i += WG) {
        var acc = 0.0;
        for (var j = 0u; j < len; j++) {
            acc += scores[s_base + j] * v_cache[j * row + g * hd + i];
        }
        out[h * hd + i] = acc / sum;
    }
}
