// prelude: grid_3d, workgroup_sum
//
// The optimizer step: the global L2 norm of all gradients (for logging and clipping) and a
// fused AdamW update, one dispatch per parameter piece.
//
// Global norm, deterministic (no atomics, a fixed order on a given adapter):
//   grad_sumsq_partial: one workgroup per CHUNK consecutive elements of one gradient piece
//     writes the chunk's sum of squares to partials[p.offset + chunk]; the pieces of all
//     tensors own consecutive ranges of `partials`, tensor by tensor.
//   grad_norm_final: one workgroup sums all partials in order and writes
//     norm[0] = sqrt(total) * s.grad_scale (the norm of the gradients the update uses) and
//     norm[1], the step's non-finite flag: 0 when the loss and every gradient are finite,
//     1 + c when c is the first partial (chunk) whose sum of squares is NaN or Inf, -1 when
//     only the loss is not finite.
// Non-finite steps: adamw_step applies no update when norm[1] != 0 (parameters and moments
// stay as they were), so a NaN never reaches the weights; the host reads the flag back.
// AdamW (torch.optim.AdamW semantics, decoupled weight decay):
//   g = grad * grad_scale * clip, clip = min(1, max_norm / (norm + 1e-6)) when clipping is on
//   p = p * (1 - lr * wd)
//   m = m + (1 - b1) (g - m)            (torch's lerp)
//   v = b2 v + (1 - b2) g^2
//   p = p - (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^t
// The per-step values (lr, t's bias corrections, clipping) come from the `Step` uniform,
// which the host rewrites with queue.write_buffer before each submission.

struct Params { n: u32, groups_x: u32, groups_y: u32, offset: u32 }

struct Step {
    decay: f32,         // 1 - lr * weight_decay
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step_size: f32,     // lr / (1 - beta1^t)
    bc2_sqrt: f32,      // sqrt(1 - beta2^t)
    max_norm: f32,      // clipping threshold; <= 0 turns clipping off
    grad_scale: f32,    // applied to every gradient (and to the reported norm)
    lr: f32,            // for reference; the update uses decay and step_size
    t: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> s: Step;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read> norm_in: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<f32>;
@group(0) @binding(8) var<storage, read_write> norm_out: array<f32>;
// The step's loss (summed over its micro-batches), or a zero when the caller has none.
@group(0) @binding(9) var<storage, read> loss_in: array<f32>;

const WG: u32 = 256u;
// Elements per workgroup of grad_sumsq_partial (WG lanes x 8 each).
const CHUNK: u32 = 2048u;

@compute @workgroup_size(256)
fn grad_sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let chunk = group_index_3d(wid);
    let start = chunk * CHUNK;
    // Workgroups past the end (grid padding) have nothing to do; the test is uniform.
    if (start >= p.n) {
        return;
    }
    let end = min(start + CHUNK, p.n);
    var acc = 0.0;
    for (var i = start + lane; i < end; i += WG) {
        let g = grad[i];
        acc += g * g;
    }
    let total = workgroup_sum(lane, acc);
    if (lane == 0u) {
        partials[p.offset + chunk] = total;
    }
}

@compute @workgroup_size(256)
fn grad_norm_final(@builtin(local_invocation_index) lane: u32) {
    var acc = 0.0;
    for (var i = lane; i < p.n; i += WG) {
        acc += partials[i];
    }
    let total = workgroup_sum(lane, acc);
    if (lane == 0u) {
        norm_out[0] = sqrt(total) * s.grad_scale;
        var flag = 0.0;
        if (!is_finite(total)) {
            // Rare, so one lane finds the first offending chunk in order.
            for (var i = 0u; i < p.n; i++) {
                if (!is_finite(partials[i])) {
                    flag = f32(i + 1u);
                    break;
                }
            }
        } else if (!is_finite(loss_in[0])) {
            flag = -1.0;
        }
        norm_out[1] = flag;
    }
}

// NaN and both infinities have every exponent bit set (a bit test: no fast-math folding).
fn is_finite(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(256)
fn adamw_step(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let i = group_index_3d(wid) * WG + lane;
    // norm_in[1] is the same for every lane: the whole update is skipped or applied.
    if (i >= p.n || norm_in[1] != 0.0) {
        return;
    }
    var scale = s.grad_scale;
    if (s.max_norm > 0.0) {
        scale *= min(1.0, s.max_norm / (norm_in[0] + 1e-6));
    }
    let g = grad[i] * scale;
    let w = param[i] * s.decay;
    let mi = m[i] + s.one_minus_beta1 * (g - m[i]);
    let vi = v[i] * s.beta2 + s.one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    let denom = sqrt(vi) / s.bc2_sqrt + s.eps;
    param[i] = w - s.step_size * (mi / denom);
}
