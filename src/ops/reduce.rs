//! Reductions of a whole vector to one value, in a fixed order (deterministic).

use super::common::{to_u32, whole};
use crate::error::{Error, Result};
use crate::gpu::shaders::REDUCE;
use crate::gpu::{Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
}

/// `out[0] = sum(x) / n` over all `n` elements of `x` (n >= 1), in one workgroup: meant for
/// per-row values such as the loss of each token, not for large activations.
pub fn mean(gpu: &Gpu, x: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let op = "mean";
    if x.numel() == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("x {:?} is empty", x.shape()),
        });
    }
    if out.numel() != 1 {
        return Err(Error::Shape {
            op,
            detail: format!("out is {:?}, expected one element", out.shape()),
        });
    }
    let p = Params {
        n: to_u32(x.numel())?,
        pad: [0; 3],
    };
    Ok(Dispatch::new(
        gpu,
        &REDUCE,
        "reduce_mean",
        bytemuck::bytes_of(&p),
        &[whole(x, op, "x")?, whole(out, op, "out")?],
        [1, 1, 1],
    ))
}
