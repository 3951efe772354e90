// prelude/tree_sum3.wgsl: three workgroup sums at once, in a fixed tree order (bitwise
// reproducible on a given adapter), with one barrier per level for all three.
// Needs from the shader: `const WG` (lanes per workgroup, a power of two).

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;
var<workgroup> red_c: array<f32, WG>;

// Sums red_a, red_b and red_c into their element 0. Every lane calls it (in uniform control
// flow) after writing its values and a workgroupBarrier().
fn tree_sum3(lane: u32) {
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lane < s) {
            red_a[lane] += red_a[lane + s];
            red_b[lane] += red_b[lane + s];
            red_c[lane] += red_c[lane + s];
        }
        workgroupBarrier();
    }
}
