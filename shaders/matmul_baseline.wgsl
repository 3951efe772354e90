// The yardstick for `wgbench matmul`: a plain shared-memory kernel, 64x64 output tiles,
// 16x16 threads with a contiguous 4x4 block each, row-major C = A * B only. It is not used
// for training; it exists so the benchmark can report our kernel against it in the same run.

struct Dims { m: u32, n: u32, k: u32, pad: u32 }

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

var<workgroup> as_: array<array<f32, 16>, 64>;
var<workgroup> bs_: array<array<f32, 64>, 16>;

@compute @workgroup_size(16, 16)
fn matmul_baseline(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * 64u + lid.y * 4u;
    let col0 = wid.x * 64u + lid.x * 4u;
    let li = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < dims.k; k0 += 16u) {
        for (var e = 0u; e < 4u; e++) {
            let idx = li * 4u + e;
            let ar = wid.y * 64u + idx / 16u;
            let ak = k0 + idx % 16u;
            var av = 0.0;
            if (ar < dims.m && ak < dims.k) {
                av = a[ar * dims.k + ak];
            }
            as_[idx / 16u][idx % 16u] = av;
            let bk = k0 + idx / 64u;
            let bc = wid.x * 64u + idx % 64u;
            var bv = 0.0;
            if (bk < dims.k && bc < dims.n) {
                bv = b[bk * dims.n + bc];
            }
            bs_[idx / 64u][idx % 64u] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            for (var i = 0u; i < 4u; i++) {
                let av = as_[lid.y * 4u + i][kk];
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] += av * bs_[kk][lid.x * 4u + j];
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let r = row0 + i;
            let cc = col0 + j;
            if (r < dims.m && cc < dims.n) {
                c[r * dims.n + cc] = acc[i][j];
            }
        }
    }
}
