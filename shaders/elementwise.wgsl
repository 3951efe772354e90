// prelude: grid
//
// Elementwise sums over whole tensors: out = a + b (the residual add) and acc += x (gradient
// accumulation, e.g. the residual stream's two backward paths), one lane per element.

struct Params { n: u32, groups_x: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
// `out` for add; `acc` for accumulate, which reads x from `a`.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u; // lanes per workgroup, as in @workgroup_size(256)

@compute @workgroup_size(256)
fn elementwise_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        out[i] = a[i] + b[i];
    }
}

@compute @workgroup_size(256)
fn elementwise_accumulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        out[i] += a[i];
    }
}
