// prelude: grid, philox
//
// ReLoRA device kernels: a counter-based RNG (Philox2x32-10), LoRA dropout forward and
// backward, re-initialisation of A (kaiming uniform), and pruning of Adam moments (random and
// by magnitude). Mirrored bit for bit by src/reference/lora.rs.
//
// RNG: philox2x32_10(counter = (element index, stream), key = seed) -> two u32 words, with
// 32-bit integer arithmetic only (the 32x32 -> 64 product is built from 16-bit halves), so
// every adapter gives the same words. A uniform is (word >> 8) * 2^-24 in [0, 1), exact.
// Random decisions compare the 24-bit integer (word >> 8) with an integer threshold the host
// derives from the float probability, which is the same test as the float comparison.
//
// Element indices are global over a tensor: a tensor stored in pieces is processed piece by
// piece with `offset` = the piece's first element, so the pieces never change the values.
//
// Magnitude pruning finds the k-th smallest key (|x| as bits: the f32 bit pattern without the
// sign, which orders non-negative floats as u32) by radix selection, 8 bits per pass from the
// top: a 256-bin histogram of the keys that match the bits chosen so far (integer atomics:
// exact, so the result does not depend on the order), then one invocation walks the bins in
// order. No float atomics, no host round trip.

struct Params {
    n: u32,          // elements this dispatch covers
    groups_x: u32,   // workgroups along x (linear workgroup id = x + y * groups_x)
    offset: u32,     // global index of this dispatch's first element
    stream: u32,     // RNG stream
    threshold: u32,  // keep iff (word >> 8) >= threshold; radix pass: bit shift
    word: u32,       // which Philox output word (0 or 1); select init: rank
    pad0: u32,
    pad1: u32,
    scale: f32,      // dropout: 1 / (1 - p); kaiming: the bound
    pad2: f32,
    pad3: f32,
    pad4: f32,
}

// The per-step key, rewritten with queue.write_buffer (no new buffers per step).
struct Key {
    seed: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

// Scratch of the magnitude selection: the bits chosen so far, which bits those are, the rank
// still sought among the keys that match, and the histogram of the current pass.
struct Select {
    prefix: u32,
    mask: u32,
    rank: u32,
    pad: u32,
    hist: array<atomic<u32>, 256>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<uniform> key: Key;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read_write> mbits: array<u32>;
@group(0) @binding(5) var<storage, read_write> vbits: array<u32>;
@group(0) @binding(6) var<storage, read_write> sel: Select;
@group(0) @binding(7) var<storage, read> keys: array<u32>;
@group(0) @binding(8) var<storage, read_write> words: array<u32>;

const WG: u32 = 256u;
// Elements one workgroup of magnitude_histogram counts (CHUNK in src/ops/lora.rs).
const CHUNK: u32 = 4096u;
const ABS: u32 = 0x7fffffffu;

// Word 0 of the counter (global index, stream): the word dropout and kaiming use.
fn word0(i: u32) -> u32 {
    return philox(vec2<u32>(p.offset + i, p.stream), key.seed).x;
}

// Raw RNG words, for tests and diagnostics: words[i] = word `p.word` of (offset + i, stream).
@compute @workgroup_size(256)
fn random_words(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let w = philox(vec2<u32>(p.offset + i, p.stream), key.seed);
        words[i] = select(w.x, w.y, p.word == 1u);
    }
}

// dst = src * keep * scale, keep = (word0 >> 8) >= threshold.
@compute @workgroup_size(256)
fn dropout_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let keep = (word0(i) >> 8u) >= p.threshold;
        dst[i] = select(0.0, src[i] * p.scale, keep);
    }
}

// dst += src * keep * scale with the same mask as dropout_forward.
@compute @workgroup_size(256)
fn dropout_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let keep = (word0(i) >> 8u) >= p.threshold;
        if (keep) {
            dst[i] = dst[i] + src[i] * p.scale;
        }
    }
}

// dst = s * bound with s = ((word0 >> 7) - 2^24) * 2^-24, uniform on [-1, 1) in steps of 2^-24.
@compute @workgroup_size(256)
fn kaiming_uniform(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let s = f32(i32(word0(i) >> 7u) - 16777216) * 5.9604644775390625e-8;
        dst[i] = s * p.scale;
    }
}

// Zero m[i] unless (word0 >> 8) >= threshold, and v[i] unless (word1 >> 8) >= threshold:
// independent masks for the two moments, as torch.rand_like draws one per tensor.
@compute @workgroup_size(256)
fn prune_random(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let w = philox(vec2<u32>(p.offset + i, p.stream), key.seed);
        mbits[i] = select(0u, mbits[i], (w.x >> 8u) >= p.threshold);
        vbits[i] = select(0u, vbits[i], (w.y >> 8u) >= p.threshold);
    }
}

// Start a selection of the key of rank `p.word` (0-based, ascending).
@compute @workgroup_size(1)
fn magnitude_init() {
    for (var b = 0u; b < 256u; b++) {
        atomicStore(&sel.hist[b], 0u);
    }
    sel.prefix = 0u;
    sel.mask = 0u;
    sel.rank = p.word;
}

var<workgroup> local_hist: array<atomic<u32>, 256>;

// Count the digit (key >> shift) & 255 of the keys that match the bits chosen so far.
@compute @workgroup_size(256)
fn magnitude_histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    atomicStore(&local_hist[lid.x], 0u);
    workgroupBarrier();
    let prefix = sel.prefix;
    let mask = sel.mask;
    let shift = p.threshold;
    let base = group_index(wid) * CHUNK;
    for (var j = 0u; j < CHUNK; j += WG) {
        let i = base + j + lid.x;
        if (i < p.n) {
            let k = keys[i] & ABS;
            if ((k & mask) == prefix) {
                atomicAdd(&local_hist[(k >> shift) & 0xffu], 1u);
            }
        }
    }
    workgroupBarrier();
    let c = atomicLoad(&local_hist[lid.x]);
    if (c != 0u) {
        atomicAdd(&sel.hist[lid.x], c);
    }
}

// Walk the histogram in order to the bin holding the sought rank; fix those 8 bits; clear.
@compute @workgroup_size(1)
fn magnitude_select() {
    let shift = p.threshold;
    var r = sel.rank;
    var b = 0u;
    loop {
        let c = atomicLoad(&sel.hist[b]);
        if (r < c || b == 255u) {
            break;
        }
        r -= c;
        b += 1u;
    }
    for (var i = 0u; i < 256u; i++) {
        atomicStore(&sel.hist[i], 0u);
    }
    sel.prefix = sel.prefix | (b << shift);
    sel.mask = sel.mask | (0xffu << shift);
    sel.rank = r;
}

// Zero m[i] and v[i] where |m[i]| <= the selected key.
@compute @workgroup_size(256)
fn magnitude_apply_pair(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        let t = sel.prefix;
        if ((mbits[i] & ABS) <= t) {
            mbits[i] = 0u;
            vbits[i] = 0u;
        }
    }
}

// Zero x[i] (bound as m) where |x[i]| <= the selected key.
@compute @workgroup_size(256)
fn magnitude_apply_one(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i < p.n) {
        if ((mbits[i] & ABS) <= sel.prefix) {
            mbits[i] = 0u;
        }
    }
}
