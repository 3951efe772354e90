//! Matmul epilogues: elementwise ops that follow a product, run in the product's store
//! (`shaders/prelude/matmul_store*.wgsl`) so they cost no dispatch and no pass over memory.

use crate::error::{Error, Result};
use crate::gpu::{DType, Tensor};

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
    /// The index into a kernel's [`MatmulShaders`].
    pub(super) fn shader_index(&self) -> usize {
        match self {
            Epilogue::Plain => 0,
            Epilogue::SwiGlu { .. } => 1,
            Epilogue::SwiGluBackward { .. } => 2,
        }
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
