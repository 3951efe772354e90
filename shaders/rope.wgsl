// prelude: grid
//
// Rotary position embedding with interleaved pairs: for each head vector, pair i = (2i, 2i+1)
// at position t is rotated by angle t * theta^(-2i / head_dim). The cos/sin table [T, hd/2]
// is computed on the host in f64 (accurate for long sequences, identical on every adapter).
// Backward is the rotation by the negative angle: sign = -1. `rope_apply_two` rotates two
// tensors at the same positions in one dispatch (q and k: their head counts differ).

struct Params {
    n_pairs: u32, seq: u32, heads: u32, half: u32, sign: f32, groups_x: u32,
    // rope_apply_two's second tensor (x2 -> y2); rope_apply ignores them.
    n_pairs_2: u32, heads_2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_sin: array<f32>; // [T][half][2]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> x2: array<f32>;
@group(0) @binding(5) var<storage, read_write> y2: array<f32>;

const WG: u32 = 256u; // lanes per workgroup, as in @workgroup_size(256)

// Pair `i` of a tensor with `heads` heads laid out [B, T, heads, half, 2], rotated.
fn rotated(i: u32, heads: u32, x0: f32, x1: f32) -> vec2<f32> {
    let pair = i % p.half;
    let t = (i / (p.half * heads)) % p.seq;
    let c = cos_sin[2u * (t * p.half + pair)];
    let s = p.sign * cos_sin[2u * (t * p.half + pair) + 1u];
    return vec2<f32>(x0 * c - x1 * s, x0 * s + x1 * c);
}

@compute @workgroup_size(256)
fn rope_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // One lane per pair of x.
    let i = element_index(wid, lid.x);
    if (i >= p.n_pairs) {
        return;
    }
    let r = rotated(i, p.heads, x[2u * i], x[2u * i + 1u]);
    y[2u * i] = r.x;
    y[2u * i + 1u] = r.y;
}

@compute @workgroup_size(256)
fn rope_apply_two(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // Lanes 0 .. n_pairs take x's pairs, the next n_pairs_2 lanes x2's.
    let i = element_index(wid, lid.x);
    if (i < p.n_pairs) {
        let r = rotated(i, p.heads, x[2u * i], x[2u * i + 1u]);
        y[2u * i] = r.x;
        y[2u * i + 1u] = r.y;
    } else if (i < p.n_pairs + p.n_pairs_2) {
        let j = i - p.n_pairs;
        let r = rotated(j, p.heads_2, x2[2u * j], x2[2u * j + 1u]);
        y2[2u * j] = r.x;
        y2[2u * j + 1u] = r.y;
    }
}
