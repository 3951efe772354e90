// prelude: grid
//
// The elementwise part of SwiGLU: h = silu(g) * u, with g = x W_0^T and u = x W_1^T computed
// by the matmul. Backward: dg = dh * u * silu'(g), du = dh * silu(g), where
// silu'(g) = sigmoid(g) * (1 + g * (1 - sigmoid(g))).

struct Params { n: u32, groups_x: u32, pad0: u32, pad1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> u: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_or_dg: array<f32>;
@group(0) @binding(4) var<storage, read> dh: array<f32>;
@group(0) @binding(5) var<storage, read_write> du: array<f32>;

fn sigmoid(v: f32) -> f32 {
    return 1.0 / (1.0 + exp(-v));
}

const WG: u32 = 256u; // lanes per workgroup, as in @workgroup_size(256)

@compute @workgroup_size(256)
fn swiglu_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        h_or_dg[i] = g[i] * sigmoid(g[i]) * u[i];
    }
}

@compute @workgroup_size(256)
fn swiglu_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let s = sigmoid(g[i]);
        h_or_dg[i] = dh[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
        du[i] = dh[i] * g[i] * s;
    }
}
