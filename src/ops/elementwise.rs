//! Elementwise sums over whole tensors: `out = a + b` (the residual add; its backward passes
//! dy to both inputs, so it needs no kernel) and `acc += x` (gradient accumulation).

use super::common::{flat_params, same_shape, whole};
use crate::error::{Error, Result};
use crate::gpu::shaders::ELEMENTWISE;
use crate::gpu::{Dispatch, Gpu, Tensor};

/// A buffer bound writable may not also be bound as an input of the same dispatch.
fn distinct(op: &'static str, written: &Tensor, read: &Tensor, names: (&str, &str)) -> Result<()> {
    if std::ptr::eq(written, read) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{} must not be the same tensor as {} (use accumulate for an in-place sum)",
                names.0, names.1
            ),
        });
    }
    Ok(())
}

/// `out = a + b`. `a` and `b` may be the same tensor; `out` must differ from both.
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<Dispatch> {
    let op = "add";
    same_shape(op, a, b, ("a", "b"))?;
    same_shape(op, a, out, ("a", "out"))?;
    distinct(op, out, a, ("out", "a"))?;
    distinct(op, out, b, ("out", "b"))?;
    let (p, grid) = flat_params(gpu, a.numel())?;
    let bufs = [
        whole(a, op, "a")?,
        whole(b, op, "b")?,
        whole(out, op, "out")?,
    ];
    Ok(Dispatch::new(
        gpu,
        &ELEMENTWISE,
        "elementwise_add",
        bytemuck::bytes_of(&p),
        &bufs,
        grid,
    ))
}

/// `acc += x`.
pub fn accumulate(gpu: &Gpu, acc: &Tensor, x: &Tensor) -> Result<Dispatch> {
    let op = "accumulate";
    same_shape(op, acc, x, ("acc", "x"))?;
    if std::ptr::eq(acc, x) {
        return Err(Error::Shape {
            op,
            detail: "acc must not be the same tensor as x".into(),
        });
    }
    let (p, grid) = flat_params(gpu, acc.numel())?;
    Ok(Dispatch::with_bindings(
        gpu,
        &ELEMENTWISE,
        "elementwise_accumulate",
        bytemuck::bytes_of(&p),
        &[(1, whole(x, op, "x")?), (3, whole(acc, op, "acc")?)],
        grid,
    ))
}
