// prelude: grid, workgroup_sum
//
// RMSNorm over rows of length d: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
// Forward saves rstd per row for the backward. Reductions run in a fixed tree order, so
// results are bitwise reproducible on a given adapter. The residual add before a norm is
// fused into it (add_rmsnorm_forward), and the backward can add dx into the residual
// stream's gradient (accumulate = 1): the same f32 operations as the separate ops, in one
// dispatch.

struct Params { rows: u32, d: u32, eps: f32, groups_x: u32, accumulate: u32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn rmsnorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = group_index(wid);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var ss = 0.0;
    for (var j = lid.x; j < p.d; j += WG) {
        ss += x[base + j] * x[base + j];
    }
    let r = inverseSqrt(workgroup_sum(lid.x, ss) / f32(p.d) + p.eps);
    for (var j = lid.x; j < p.d; j += WG) {
        y[base + j] = x[base + j] * r * w[j];
    }
    if (lid.x == 0u) {
        rstd[row] = r;
    }
}

// Residual add and norm (one workgroup per row): h = x + b (written out: the residual
// stream), y = rmsnorm(h) * w. Each lane reads back only the h elements it wrote itself.
@group(0) @binding(6) var<storage, read> b: array<f32>;
@group(0) @binding(7) var<storage, read_write> h: array<f32>;

@compute @workgroup_size(64)
fn add_rmsnorm_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = group_index(wid);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var ss = 0.0;
    for (var j = lid.x; j < p.d; j += WG) {
        let v = x[base + j] + b[base + j];
        h[base + j] = v;
        ss += v * v;
    }
    let r = inverseSqrt(workgroup_sum(lid.x, ss) / f32(p.d) + p.eps);
    for (var j = lid.x; j < p.d; j += WG) {
        y[base + j] = h[base + j] * r * w[j];
    }
    if (lid.x == 0u) {
        rstd[row] = r;
    }
}

// Backward, part 1 (one workgroup per row):
//   dx_j = r * w_j * dy_j - x_j * r^3 / d * sum_i(dy_i * w_i * x_i)
// Bindings reuse the forward's slots: x, w, dx (as y), rstd; dy comes in binding 5.
@group(0) @binding(5) var<storage, read> dy: array<f32>;

@compute @workgroup_size(64)
fn rmsnorm_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = group_index(wid);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    let r = rstd[row];
    var dot = 0.0;
    for (var j = lid.x; j < p.d; j += WG) {
        dot += dy[base + j] * w[j] * x[base + j];
    }
    let c = workgroup_sum(lid.x, dot) * r * r * r / f32(p.d);
    for (var j = lid.x; j < p.d; j += WG) {
        let dx = r * w[j] * dy[base + j] - x[base + j] * c;
        if (p.accumulate != 0u) {
            y[base + j] += dx;
        } else {
            y[base + j] = dx;
        }
    }
}

// Backward, part 2 (one lane per column): dw_j += sum over rows of dy_j * x_j * r, rows in
// order (no atomics), into `y` (the dw buffer here). Like every parameter gradient, it
// accumulates, so micro-batches add up until the gradients are cleared.
@compute @workgroup_size(64)
fn rmsnorm_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.d) {
        return;
    }
    var acc = 0.0;
    for (var row = 0u; row < p.rows; row++) {
        acc += dy[row * p.d + j] * x[row * p.d + j] * rstd[row];
    }
    y[j] += acc;
}
