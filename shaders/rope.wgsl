// prelude: grid
//
// Rotary position embedding with interleaved pairs: for each head vector, pair i = (2i, 2i+1)
// at position t is rotated by angle t * theta^(-2i / head_dim). The cos/sin table [T, hd/2]
// is computed on the host in f64 (accurate for long sequences, identical on every adapter).
// Backward is the rotation by the negative angle: sign = -1.

struct Params { n_pairs: u32, seq: u32, heads: u32, half: u32, sign: f32, groups_x: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_sin: array<f32>; // [T][half][2]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

const WG: u32 = 256u; // lanes per workgroup, as in @workgroup_size(256)

@compute @workgroup_size(256)
fn rope_apply(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // One lane per pair of x laid out [B, T, heads, half, 2].
    let i = element_index(wid, lid.x);
    if (i >= p.n_pairs) {
        return;
    }
    let pair = i % p.half;
    let t = (i / (p.half * p.heads)) % p.seq;
    let c = cos_sin[2u * (t * p.half + pair)];
    let s = p.sign * cos_sin[2u * (t * p.half + pair) + 1u];
    let x0 = x[2u * i];
    let x1 = x[2u * i + 1u];
    y[2u * i] = x0 * c - x1 * s;
    y[2u * i + 1u] = x0 * s + x1 * c;
}
