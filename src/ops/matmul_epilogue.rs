//! Matmul epilogues: what a product adds to each output and how it stores it, run in the
//! product's store so they cost no dispatch and no pass over memory: an [`Epilogue`]
//! (`shaders/prelude/matmul_store*.wgsl`: SwiGLU, forward and backward) and an optional
//! [`LowRank`] term (`matmul_term_low_rank.wgsl`: LoRA's product, with dropout's mask).

use super::lora::{dropout_threshold, Seed};
use crate::error::{Error, Result};
use crate::formulas::lora::dropout_scale;
use crate::gpu::{DType, Gpu, Tensor};
use wgpu::util::DeviceExt;

/// A LoRA product added to every output: `+ scale · mask ⊙ (left · right)` with left
/// `[M, r]` and right `[N, r]` (`right_transposed`: LoRA's B on the forward, `s · h Bᵀ`) or
/// `[r, N]` (A on the backward, `dh A`); the mask is LoRA dropout's, regenerated from
/// `dropout`'s seed and stream over C's elements as `lora::dropout_forward` draws it.
#[derive(Clone, Copy)]
pub struct LowRank<'t> {
    pub left: &'t Tensor,
    pub right: &'t Tensor,
    pub right_transposed: bool,
    pub scale: f32,
    pub dropout: Option<LowRankDropout<'t>>,
}

/// LoRA dropout's mask on a [`LowRank`] term: probability, key and RNG stream.
#[derive(Clone, Copy)]
pub struct LowRankDropout<'t> {
    pub p: f32,
    pub seed: &'t Seed,
    pub stream: u32,
}

/// What a dispatch of a product with a low-rank term needs: its uniform values (the same
/// for every dispatch but the first row and column) and its buffers.
pub(super) struct LowRankBinding {
    pub rank: u32,
    pub right_js: u32,
    pub right_cs: u32,
    pub stream: u32,
    pub threshold: u32,
    pub dropout: u32,
    pub scale: f32,
    pub drop_scale: f32,
    /// The key (a placeholder without dropout), left and right: bindings 8, 9, 10.
    pub key: wgpu::Buffer,
    pub left: wgpu::Buffer,
    pub right: wgpu::Buffer,
}

impl<'t> LowRank<'t> {
    /// Check the operands against a product with C `[m, n]` and take their buffers.
    pub(super) fn bind(&self, gpu: &Gpu, m: usize, n: usize) -> Result<LowRankBinding> {
        let err = |detail: String| Error::Shape {
            op: "matmul low-rank term",
            detail,
        };
        let ls = self.left.shape();
        let rank = if ls.len() == 2 { ls[1] } else { 0 };
        let right_want = if self.right_transposed {
            [n, rank]
        } else {
            [rank, n]
        };
        if ls != [m, rank] || rank == 0 || self.right.shape() != right_want {
            return Err(err(format!(
                "left {:?} and right {:?} do not fit C [{m}, {n}] (left [{m}, r], right {:?}                  with r > 0)",
                ls,
                self.right.shape(),
                if self.right_transposed { "[N, r]" } else { "[r, N]" }
            )));
        }
        let one = |t: &Tensor, name: &str| match t.pieces() {
            [one] if t.dtype() == DType::F32 => Ok(one.buffer.clone()),
            _ => Err(err(format!("{name} must be f32 in one piece"))),
        };
        let (left, right) = (one(self.left, "left")?, one(self.right, "right")?);
        let (right_js, right_cs) = if self.right_transposed {
            (1, rank)
        } else {
            (n, 1)
        };
        let u = |v: usize| {
            u32::try_from(v).map_err(|_| Error::TooLarge {
                detail: format!("{v} does not fit the low-rank term's 32-bit indices"),
            })
        };
        u(m * n)?;
        let (key, stream, threshold, dropout, drop_scale) = match self.dropout {
            Some(d) => (
                d.seed.buffer().clone(),
                d.stream,
                dropout_threshold(d.p)?,
                1,
                dropout_scale(d.p),
            ),
            None => {
                let key = gpu
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("low-rank term: no dropout key"),
                        contents: &[0; 16],
                        usage: wgpu::BufferUsages::UNIFORM,
                    });
                (key, 0, 0, 0, 1.0)
            }
        };
        Ok(LowRankBinding {
            rank: u(rank)?,
            right_js: u(right_js)?,
            right_cs: u(right_cs)?,
            stream,
            threshold,
            dropout,
            scale: self.scale,
            drop_scale,
            key,
            left,
            right,
        })
    }
}

/// What a product does with each finished output `c = alpha · op(A) op(B) + beta · C` besides
/// (or instead of) storing it: how an elementwise op that follows a product runs inside it.
/// The tensors are laid out as C (same shape, each in one piece, as C must then be).
#[derive(Clone, Copy, Default)]
pub enum Epilogue<'t> {
    /// Store c.
    #[default]
    Plain,
    /// The product is SwiGLU's up projection u: store u and `act = silu(gate) · u`.
    SwiGlu { gate: &'t Tensor, act: &'t Tensor },
    /// The product is the gradient of SwiGLU's output (`d_act = dy W_2`): store not it but
    /// `d_gate = d_act · up · silu'(gate)` and `d_up = d_act · silu(gate)`.
    SwiGluBackward {
        gate: &'t Tensor,
        up: &'t Tensor,
        d_gate: &'t Tensor,
        d_up: &'t Tensor,
    },
}

impl<'t> Epilogue<'t> {
    /// The index into a kernel's [`MatmulShaders`](crate::gpu::shaders::MatmulShaders)
    /// (see `MATMUL_EPILOGUES`), with or without a low-rank term.
    pub(super) fn shader_index(&self, low_rank: bool) -> Result<usize> {
        Ok(match (self, low_rank) {
            (Epilogue::Plain, false) => 0,
            (Epilogue::SwiGlu { .. }, false) => 1,
            (Epilogue::SwiGluBackward { .. }, false) => 2,
            (Epilogue::Plain, true) => 3,
            (Epilogue::SwiGlu { .. }, true) => 4,
            (Epilogue::SwiGluBackward { .. }, true) => {
                return Err(Error::Invalid(
                    "a low-rank term with SwiGLU's backward epilogue would bind 9 storage \
                     buffers (WebGPU guarantees 8): add the LoRA share to C first"
                        .into(),
                ))
            }
        })
    }

    /// The extra bindings (4, 5, ..) in order, with the names errors use.
    pub(super) fn tensors(&self) -> Vec<(&'t Tensor, &'static str)> {
        match *self {
            Epilogue::Plain => Vec::new(),
            Epilogue::SwiGlu { gate, act } => vec![(gate, "gate"), (act, "act")],
            Epilogue::SwiGluBackward {
                gate,
                up,
                d_gate,
                d_up,
            } => vec![
                (gate, "gate"),
                (up, "up"),
                (d_gate, "d_gate"),
                (d_up, "d_up"),
            ],
        }
    }

    /// The buffers of the extra bindings, after checking each is laid out as `c` (a whole
    /// tensor in one piece; `c_whole`: not a window of its rows): the shaders index them with
    /// C's index.
    pub(super) fn buffers(&self, c: &Tensor, c_whole: bool) -> Result<Vec<&'t wgpu::Buffer>> {
        let tensors = self.tensors();
        if tensors.is_empty() {
            return Ok(Vec::new());
        }
        let err = |detail: String| Error::Shape {
            op: "matmul epilogue",
            detail,
        };
        if !c_whole || c.pieces().len() != 1 {
            return Err(err(
                "C must be a whole tensor in one piece for an epilogue".into()
            ));
        }
        tensors
            .into_iter()
            .map(|(t, name)| {
                if t.shape() != c.shape() || t.dtype() != DType::F32 {
                    return Err(err(format!(
                        "{name} is {:?} {:?}, C is {:?} f32: they must match",
                        t.shape(),
                        t.dtype(),
                        c.shape()
                    )));
                }
                match t.pieces() {
                    [one] => Ok(&one.buffer),
                    _ => Err(err(format!(
                        "{name} is stored in pieces; an epilogue needs it in one"
                    ))),
                }
            })
            .collect()
    }
}
