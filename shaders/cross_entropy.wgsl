// prelude: grid
//
// Softmax cross-entropy over rows of length v (the vocabulary), on one piece of the logits
// (a piece holds whole rows; row_start is its first row, for the per-row arrays).
// Forward, one workgroup per row: lse = logsumexp(row), loss = lse - row[label]. Each lane
// keeps a running (max, sum of exp(x - max)) over its strided columns, so the row is read
// once and exp never overflows; lanes merge in a fixed tree order, so results are bitwise
// reproducible on a given adapter.
// Backward, one lane per element, in place: grad = scale * (exp(x - lse) - onehot(label)).
// Labels are validated on the host; here they are clamped so no read goes out of bounds.

struct Params { rows: u32, v: u32, row_start: u32, groups_x: u32, scale: f32, pad0: u32, pad1: u32, pad2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> row_loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse: array<f32>;
// The backward's logits, overwritten with the gradient.
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;

const WG: u32 = 256u;
// The lowest finite f32: the running max of a lane that has seen no column yet. Finite, so
// merging two empty lanes computes 0 * exp(0) rather than exp(-inf + inf) = NaN.
const LOWEST: f32 = -0x1.fffffep+127f;

var<workgroup> part_max: array<f32, WG>;
var<workgroup> part_sum: array<f32, WG>;

fn label_of(r: u32) -> u32 {
    return min(labels[r], p.v - 1u);
}

@compute @workgroup_size(256)
fn cross_entropy_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = group_index(wid);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.v;
    var m = LOWEST;
    var s = 0.0;
    for (var j = lid.x; j < p.v; j += WG) {
        let x = logits[base + j];
        // One exp per element: rescale the sum only when the max grows.
        if (x > m) {
            s = s * exp(m - x) + 1.0;
            m = x;
        } else {
            s += exp(x - m);
        }
    }
    part_max[lid.x] = m;
    part_sum[lid.x] = s;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k >>= 1u) {
        if (lid.x < k) {
            let m2 = part_max[lid.x + k];
            let s2 = part_sum[lid.x + k];
            let mm = max(m, m2);
            s = s * exp(m - mm) + s2 * exp(m2 - mm);
            m = mm;
            part_max[lid.x] = m;
            part_sum[lid.x] = s;
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let r = p.row_start + row;
        let l = m + log(s);
        lse[r] = l;
        row_loss[r] = l - logits[base + label_of(r)];
    }
}

@compute @workgroup_size(256)
fn cross_entropy_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    // rows * v fits u32: the host checks it.
    if (i >= p.rows * p.v) {
        return;
    }
    let row = i / p.v;
    let r = p.row_start + row;
    var g = exp(grad[i] - lse[r]);
    if (i - row * p.v == label_of(r)) {
        g -= 1.0;
    }
    grad[i] = p.scale * g;
}
