//! The device-side pieces of ReLoRA: a counter-based RNG, LoRA dropout (forward and
//! backward), re-initialisation of A after a merge, and pruning of the Adam moments of the
//! LoRA parameters at each reset. `shaders/lora.wgsl` holds the kernels and
//! `reference::lora` mirrors them bit for bit (see there for the exact formulas).
//!
//! **RNG.** Philox2x32-10 of the counter `(element index, stream)` under the key `seed`, in
//! 32-bit integer arithmetic only: the same words on every adapter and on the CPU. The
//! element index is global over the tensor (tensors stored in pieces get the same values as
//! whole ones). Use one stream per place that draws (a LoRA site's dropout, an A matrix, a
//! parameter's moments) and a fresh seed per step or per reset.
//!
//! **Seeds without new buffers.** The seed lives on the device in a [`Seed`]: a 16-byte
//! uniform buffer that the prepared dispatches read. [`Seed::set_seed`] rewrites it with
//! `queue.write_buffer`, which takes effect at the start of the next `queue.submit` (after all
//! earlier submissions), so dispatches are built once and each step only writes 4 bytes.
//! A step's seed may be, e.g., the run's seed plus the optimizer step (wrapping); Philox
//! keys that differ by one give unrelated words.
//! Everything recorded into one submission sees the seed written last before it: record at
//! most one step per submission (as for `AdamW`), or give places that need different seeds
//! within one submission their own [`Seed`].
//!
//! **Dropout.** The same `(seed, stream)` gives the same mask in [`dropout_forward`] and
//! [`dropout_backward_accumulate`]: the mask is regenerated from the counter, never stored.
//! So record the forward and the backward of a step with the same [`Seed`] value and stream
//! (the same submission, or without a `set_seed` in between). `p = 0` is the identity exactly.
//!
//! **Merge.** `W += s * B A` is `Matmul::new(gpu, b, a, w, MatmulSpec::nn().scale(s)
//! .accumulate())` and zeroing B is `encoder.clear_buffer` on its pieces; no kernel here.

use super::common::{grid_2d, same_shape, to_u32, whole};
use crate::error::{Error, Result};
use crate::gpu::shaders::LORA;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use wgpu::util::DeviceExt;

pub use crate::formulas::lora::MagnitudeRule;

/// Lanes per workgroup of the elementwise kernels (WG in lora.wgsl).
const WG: usize = 256;
/// Elements one workgroup of `magnitude_histogram` counts (CHUNK in lora.wgsl).
const CHUNK: usize = 4096;
/// Words of the magnitude-selection scratch: prefix, mask, rank, pad, 256 bins.
const SELECT_WORDS: usize = 4 + 256;

/// Binding 0 of every kernel in lora.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    groups_x: u32,
    offset: u32,
    stream: u32,
    /// Keep threshold on `word >> 8`; the bit shift of a radix pass.
    threshold: u32,
    /// Output word of `random_words`; the rank sought by `magnitude_init`.
    word: u32,
    pad0: [u32; 2],
    /// Dropout's `1 / (1 - p)`; kaiming's bound.
    scale: f32,
    pad1: [f32; 3],
}

/// The RNG key on the device, rewritable per step without creating buffers.
pub struct Seed {
    buffer: wgpu::Buffer,
}

impl Seed {
    pub fn new(gpu: &Gpu, seed: u32) -> Seed {
        let buffer = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("lora seed"),
                contents: bytemuck::bytes_of(&[seed, 0, 0, 0]),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            });
        Seed { buffer }
    }

    /// Set the seed every dispatch built with this [`Seed`] uses from the next submission on.
    pub fn set_seed(&self, gpu: &Gpu, seed: u32) {
        gpu.queue
            .write_buffer(&self.buffer, 0, bytemuck::bytes_of(&[seed, 0u32, 0, 0]));
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

fn invalid(op: &str, what: &str, v: f32) -> Error {
    Error::Invalid(format!("{op}: {what} must lie in [0, 1], got {v}"))
}

/// Keep iff `(word >> 8) >= t`  <=>  `(word >> 8) * 2^-24 >= p`: `t = ceil(p * 2^24)`.
pub(crate) fn dropout_threshold(p: f32) -> Result<u32> {
    if !(0.0..=1.0).contains(&p) {
        return Err(invalid("lora dropout", "p", p));
    }
    Ok((p as f64 * 16_777_216.0).ceil() as u32)
}

/// Keep iff `(word >> 8) >= t`  <=>  `(word >> 8) * 2^-24 > ratio`: `t = floor(ratio * 2^24) + 1`.
fn prune_threshold(ratio: f32) -> Result<u32> {
    if !(0.0..=1.0).contains(&ratio) {
        return Err(invalid("random pruning", "ratio", ratio));
    }
    Ok((ratio as f64 * 16_777_216.0).floor() as u32 + 1)
}

/// (buffer, first global element, elements) of each non-empty piece of `t`.
fn pieces(t: &Tensor) -> Vec<(&wgpu::Buffer, usize, usize)> {
    let row = t.row_len();
    t.pieces()
        .iter()
        .filter(|p| p.rows > 0)
        .map(|p| (&p.buffer, p.row_start * row, p.rows * row))
        .collect()
}

/// One elementwise `entry` dispatch per non-empty piece of `t`, each over the piece's global
/// elements with RNG `stream`; `set` fills the entry's own parameters and `bind` names the
/// piece's bindings (the seed is bound at 1 for every entry that draws).
fn per_piece<'t>(
    gpu: &Gpu,
    entry: &'static str,
    t: &'t Tensor,
    stream: u32,
    set: impl Fn(&mut Params),
    bind: impl Fn(usize, &'t wgpu::Buffer) -> Vec<(u32, &'t wgpu::Buffer)>,
) -> Result<Vec<Dispatch>> {
    pieces(t)
        .into_iter()
        .enumerate()
        .map(|(i, (buf, offset, n))| {
            let (mut p, grid) = elementwise(gpu, n, offset, stream)?;
            set(&mut p);
            Ok(Dispatch::with_bindings(
                gpu,
                &LORA,
                entry,
                bytemuck::bytes_of(&p),
                &bind(i, buf),
                grid,
            ))
        })
        .collect()
}

/// Params and grid of an elementwise dispatch over `n` elements starting at `offset`.
fn elementwise(gpu: &Gpu, n: usize, offset: usize, stream: u32) -> Result<(Params, [u32; 3])> {
    let grid = grid_2d(gpu, n.div_ceil(WG))?;
    Ok((
        Params {
            n: to_u32(n)?,
            groups_x: grid[0],
            offset: to_u32(offset)?,
            stream,
            ..Params::default()
        },
        grid,
    ))
}

fn check_f32(op: &'static str, t: &Tensor, name: &str) -> Result<()> {
    if t.dtype() == DType::F32 {
        Ok(())
    } else {
        Err(Error::Shape {
            op,
            detail: format!("{name} must be f32, got {:?}", t.dtype()),
        })
    }
}

/// m and v must be f32, of one shape, and split into the same pieces.
fn check_moments(op: &'static str, m: &Tensor, v: &Tensor) -> Result<()> {
    check_f32(op, m, "m")?;
    check_f32(op, v, "v")?;
    same_shape(op, m, v, ("m", "v"))?;
    let same = m.pieces().len() == v.pieces().len()
        && m.pieces()
            .iter()
            .zip(v.pieces())
            .all(|(a, b)| a.row_start == b.row_start && a.rows == b.rows);
    if same {
        Ok(())
    } else {
        Err(Error::Shape {
            op,
            detail: "m and v are not split into the same pieces".into(),
        })
    }
}

/// `out[i]` = RNG word `word` (0 or 1) of `(i, stream)` under `seed`, for a u32 tensor (in
/// pieces or not). For tests and diagnostics; equals `reference::lora::random_words`.
pub fn random_words(
    gpu: &Gpu,
    out: &Tensor,
    seed: &Seed,
    stream: u32,
    word: u32,
) -> Result<Vec<Dispatch>> {
    if out.dtype() != DType::U32 || word > 1 {
        return Err(Error::Shape {
            op: "random words",
            detail: format!(
                "out must be u32 (got {:?}) and word 0 or 1 (got {word})",
                out.dtype()
            ),
        });
    }
    let set = |p: &mut Params| p.word = word;
    per_piece(gpu, "random_words", out, stream, set, |_, buf| {
        vec![(1, &seed.buffer), (8, buf)]
    })
}

/// One dropout dispatch: `(op, entry)` names the error context and the kernel.
fn dropout(
    gpu: &Gpu,
    (op, entry): (&'static str, &'static str),
    src: (&Tensor, &str),
    dst: (&Tensor, &str),
    p: f32,
    seed: &Seed,
    stream: u32,
) -> Result<Dispatch> {
    same_shape(op, src.0, dst.0, (src.1, dst.1))?;
    let bufs = [whole(src.0, op, src.1)?, whole(dst.0, op, dst.1)?];
    let (mut params, grid) = elementwise(gpu, src.0.numel(), 0, stream)?;
    params.threshold = dropout_threshold(p)?;
    params.scale = crate::formulas::lora::dropout_scale(p);
    Ok(Dispatch::with_bindings(
        gpu,
        &LORA,
        entry,
        bytemuck::bytes_of(&params),
        &[(1, &seed.buffer), (2, bufs[0]), (3, bufs[1])],
        grid,
    ))
}

/// LoRA dropout: `out = x * keep / (1 - p)` with `keep = uniform(seed, stream, i) >= p`
/// (dropped elements are +0). `p` lies in [0, 1]; `p = 0` copies `x` exactly. The same seed
/// value and `stream` give the same mask in [`dropout_backward_accumulate`].
pub fn dropout_forward(
    gpu: &Gpu,
    x: &Tensor,
    out: &Tensor,
    p: f32,
    seed: &Seed,
    stream: u32,
) -> Result<Dispatch> {
    let op = "lora dropout";
    dropout(
        gpu,
        (op, "dropout_forward"),
        (x, "x"),
        (out, "out"),
        p,
        seed,
        stream,
    )
}

/// Backward of [`dropout_forward`]: `dx += d_out * keep / (1 - p)`, with the mask regenerated
/// from the same seed value and `stream` (dropped elements of `dx` are left untouched).
pub fn dropout_backward_accumulate(
    gpu: &Gpu,
    d_out: &Tensor,
    dx: &Tensor,
    p: f32,
    seed: &Seed,
    stream: u32,
) -> Result<Dispatch> {
    let op = "lora dropout backward";
    dropout(
        gpu,
        (op, "dropout_backward"),
        (d_out, "d_out"),
        (dx, "dx"),
        p,
        seed,
        stream,
    )
}

/// Re-initialise a LoRA A `[r, in]` (in pieces or not) with kaiming_uniform(a = sqrt 5),
/// i.e. U(-1/sqrt(in), 1/sqrt(in)) as torch's `nn.Linear`, from word 0 of `(i, stream)`
/// under `seed` (see `reference::lora::kaiming_uniform` for the exact values).
pub fn kaiming_uniform(gpu: &Gpu, a: &Tensor, seed: &Seed, stream: u32) -> Result<Vec<Dispatch>> {
    check_f32("kaiming uniform", a, "A")?;
    let bound = crate::formulas::lora::kaiming_bound(a.row_len());
    let set = |p: &mut Params| p.scale = bound;
    per_piece(gpu, "kaiming_uniform", a, stream, set, |_, buf| {
        vec![(1, &seed.buffer), (3, buf)]
    })
}

/// Random pruning of one LoRA parameter's Adam moments (ReLoRA's default reset, pico's ratio
/// 0.999): each entry of `m` and of `v` becomes +0 with probability `ratio`, independently
/// (m from RNG word 0, v from word 1 of `(i, stream)` under `seed`); give each parameter its
/// own stream. `m` and `v` may be stored in pieces (alike).
pub fn prune_random(
    gpu: &Gpu,
    m: &Tensor,
    v: &Tensor,
    ratio: f32,
    seed: &Seed,
    stream: u32,
) -> Result<Vec<Dispatch>> {
    let op = "random pruning";
    check_moments(op, m, v)?;
    let threshold = prune_threshold(ratio)?;
    // m and v are split alike (checked above): piece i of v goes with piece i of m.
    let v_pieces = pieces(v);
    let set = |p: &mut Params| p.threshold = threshold;
    per_piece(gpu, "prune_random", m, stream, set, |i, m_buf| {
        vec![(1, &seed.buffer), (4, m_buf), (5, v_pieces[i].0)]
    })
}

/// Device scratch of magnitude pruning (1 KiB), allocated once and shared by every
/// [`prune_magnitude`] call: their dispatches run one after the other, each selection
/// starting afresh. Layout (u32): the selected key, the mask of the bits selected, the rank
/// left, a pad word, then a 256-bin histogram.
pub struct MagnitudeScratch {
    state: Tensor,
}

impl MagnitudeScratch {
    pub fn new(gpu: &Gpu) -> Result<MagnitudeScratch> {
        Ok(MagnitudeScratch {
            state: Tensor::zeros(gpu, &[SELECT_WORDS], DType::U32)?,
        })
    }

    /// The scratch words; word 0 is the threshold key of the selection that ran last.
    pub fn state(&self) -> &Tensor {
        &self.state
    }

    fn buffer(&self) -> &wgpu::Buffer {
        &self.state.pieces()[0].buffer
    }
}

/// Select the threshold key of `t` (rank `floor(ratio * (n - 1))` of its magnitudes) into
/// the scratch: init, then 4 radix passes of 8 bits (histogram per piece, then select).
fn select_threshold(
    gpu: &Gpu,
    t: &Tensor,
    ratio: f32,
    scratch: &MagnitudeScratch,
    out: &mut Vec<Dispatch>,
) -> Result<()> {
    let rank = crate::formulas::lora::magnitude_rank(t.numel(), ratio);
    let sel = scratch.buffer();
    let init = Params {
        word: to_u32(rank)?,
        ..Params::default()
    };
    out.push(Dispatch::with_bindings(
        gpu,
        &LORA,
        "magnitude_init",
        bytemuck::bytes_of(&init),
        &[(6, sel)],
        [1, 1, 1],
    ));
    for shift in [24u32, 16, 8, 0] {
        for (buf, _, n) in pieces(t) {
            let grid = grid_2d(gpu, n.div_ceil(CHUNK))?;
            let p = Params {
                n: to_u32(n)?,
                groups_x: grid[0],
                threshold: shift,
                ..Params::default()
            };
            out.push(Dispatch::with_bindings(
                gpu,
                &LORA,
                "magnitude_histogram",
                bytemuck::bytes_of(&p),
                &[(6, sel), (7, buf)],
                grid,
            ));
        }
        let p = Params {
            threshold: shift,
            ..Params::default()
        };
        out.push(Dispatch::with_bindings(
            gpu,
            &LORA,
            "magnitude_select",
            bytemuck::bytes_of(&p),
            &[(6, sel)],
            [1, 1, 1],
        ));
    }
    Ok(())
}

/// Magnitude pruning of one parameter's Adam moments, entirely on the device: the threshold
/// is the order statistic of rank `floor(ratio * (n - 1))` (f32, as `torch.quantile`'s rank)
/// of the magnitudes, found by an exact radix selection on the f32 bit patterns, and every
/// entry whose magnitude is at most it becomes +0 (ties at the threshold are zeroed too, as
/// ReLoRA's `keep = |t| > quantile`). `rule` says whether |m| decides for both moments or
/// each moment for itself (ReLoRA). Equals `reference::lora::prune_magnitude` exactly;
/// `m` and `v` may be stored in pieces (alike). Uses `scratch`, which the returned
/// dispatches keep bound.
pub fn prune_magnitude(
    gpu: &Gpu,
    m: &Tensor,
    v: &Tensor,
    ratio: f32,
    rule: MagnitudeRule,
    scratch: &MagnitudeScratch,
) -> Result<Vec<Dispatch>> {
    let op = "magnitude pruning";
    check_moments(op, m, v)?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(invalid(op, "ratio", ratio));
    }
    let mut out = Vec::new();
    if m.numel() == 0 {
        return Ok(out);
    }
    let sel = scratch.buffer();
    // Zero every entry of `t` (and of `pair`, split alike) at or below the selected key.
    // The apply kernels index pieces locally, so the offset stays 0.
    let apply = |t: &Tensor, pair: Option<&Tensor>, out: &mut Vec<Dispatch>| -> Result<()> {
        let local = |p: &mut Params| p.offset = 0;
        out.extend(match pair.map(pieces) {
            Some(others) => per_piece(gpu, "magnitude_apply_pair", t, 0, local, |i, buf| {
                vec![(4, buf), (5, others[i].0), (6, sel)]
            })?,
            None => per_piece(gpu, "magnitude_apply_one", t, 0, local, |_, buf| {
                vec![(4, buf), (6, sel)]
            })?,
        });
        Ok(())
    };
    select_threshold(gpu, m, ratio, scratch, &mut out)?;
    match rule {
        MagnitudeRule::ByM => apply(m, Some(v), &mut out)?,
        MagnitudeRule::Each => {
            apply(m, None, &mut out)?;
            select_threshold(gpu, v, ratio, scratch, &mut out)?;
            apply(v, None, &mut out)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer thresholds make the same decisions as the float comparisons they replace.
    #[test]
    fn integer_thresholds_match_float_comparisons() {
        let ps = [0.0f32, 0.1, 0.5, 0.999, 1.0, 1e-9, 0.3333333, 0.999_999_94];
        let ks = |t: u32| [0u32, 1, 2, t.saturating_sub(1), t, t + 1, (1 << 24) - 1];
        for p in ps {
            let t = dropout_threshold(p).unwrap();
            for k in ks(t).into_iter().filter(|&k| k < 1 << 24) {
                let u = crate::formulas::lora::word_to_uniform(k << 8);
                assert_eq!(k >= t, u >= p, "dropout p {p} k {k}");
            }
            let t = prune_threshold(p).unwrap();
            for k in ks(t).into_iter().filter(|&k| k < 1 << 24) {
                let u = crate::formulas::lora::word_to_uniform(k << 8);
                assert_eq!(k >= t, u > p, "prune ratio {p} k {k}");
            }
        }
        assert!(dropout_threshold(-0.1).is_err());
        assert!(dropout_threshold(f32::NAN).is_err());
        assert!(prune_threshold(1.5).is_err());
    }
}
