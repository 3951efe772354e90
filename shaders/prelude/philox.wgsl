// prelude/philox.wgsl: the counter-based RNG of ReLoRA's kernels (see shaders/lora.wgsl),
// shared with the matmul epilogue that applies LoRA dropout's mask (matmul_term_low_rank).

const PHILOX_M: u32 = 0xD256D193u;
const PHILOX_W: u32 = 0x9E3779B9u;

// (high, low) words of the 64-bit product a * b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox2x32 with 10 rounds (Salmon et al. 2011, Random123's philox2x32_R(10, ...)).
fn philox(counter: vec2<u32>, seed: u32) -> vec2<u32> {
    var c = counter;
    var k = seed;
    for (var r = 0u; r < 10u; r++) {
        let hl = mulhilo(PHILOX_M, c.x);
        c = vec2<u32>(hl.x ^ k ^ c.y, hl.y);
        k = k + PHILOX_W;
    }
    return c;
}
