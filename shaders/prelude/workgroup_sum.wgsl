// prelude/workgroup_sum.wgsl: the sum of one value per lane over the workgroup, in a fixed
// tree order, so the result is bitwise reproducible on a given adapter.
// Needs from the shader: `const WG` (lanes per workgroup, a power of two).

var<workgroup> partial: array<f32, WG>;

// Every lane calls it (in uniform control flow) with its value and gets the total.
fn workgroup_sum(lane: u32, v: f32) -> f32 {
    partial[lane] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            partial[lane] += partial[lane + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}
