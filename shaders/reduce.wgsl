// prelude: workgroup_sum
//
// Mean of a vector in one workgroup: each lane sums a strided slice in order, then lanes
// merge in a fixed tree order, so the result is bitwise reproducible on a given adapter.
// One workgroup suffices for what it reduces (per-token losses: one value per step).

struct Params { n: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn reduce_mean(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = 0.0;
    for (var i = lid.x; i < p.n; i += WG) {
        acc += x[i];
    }
    let total = workgroup_sum(lid.x, acc);
    if (lid.x == 0u) {
        out[0] = total / f32(p.n);
    }
}
