//! Small checks and grid helpers shared by the ops and the on-device metrics.

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};

/// Why an op's tensor would be stored in pieces: its activations are too large.
const SMALLER_ACTIVATIONS: &str = "reduce the batch size or sequence length";

/// The one buffer of an f32 tensor that these ops need whole. Activations of the model sizes
/// we train fit one binding; only the vocabulary-sized matrices are split, and the matmul and
/// cross-entropy handle those.
pub fn whole<'t>(t: &'t Tensor, op: &'static str, name: &str) -> Result<&'t wgpu::Buffer> {
    whole_of(t, DType::F32, op, name, SMALLER_ACTIVATIONS)
}

/// [`whole`] for u32 tensors (token ids, labels).
pub fn whole_u32<'t>(t: &'t Tensor, op: &'static str, name: &str) -> Result<&'t wgpu::Buffer> {
    whole_of(t, DType::U32, op, name, SMALLER_ACTIVATIONS)
}

/// The one buffer of a `dtype` tensor that a kernel binds whole; `remedy` ends the error when
/// the tensor exceeds one storage binding (it is then stored in pieces).
pub fn whole_of<'t>(
    t: &'t Tensor,
    dtype: DType,
    op: &'static str,
    name: &str,
    remedy: &str,
) -> Result<&'t wgpu::Buffer> {
    if t.dtype() != dtype {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{name} must be {}, got {:?}",
                format!("{dtype:?}").to_lowercase(),
                t.dtype()
            ),
        });
    }
    match t.pieces() {
        [p] => Ok(&p.buffer),
        _ => Err(Error::TooLarge {
            detail: format!(
                "{op}: {name} {:?} exceeds one storage binding; {remedy}",
                t.shape()
            ),
        }),
    }
}

/// Rows and columns of a matrix tensor (2-D, f32).
pub fn matrix_dims(m: &Tensor, op: &'static str) -> Result<(usize, usize)> {
    if m.shape().len() != 2 || m.dtype() != DType::F32 {
        return Err(Error::Shape {
            op,
            detail: format!(
                "expected a 2-D f32 matrix, got {:?} {:?}",
                m.shape(),
                m.dtype()
            ),
        });
    }
    Ok((m.shape()[0], m.shape()[1]))
}

pub fn same_shape(op: &'static str, a: &Tensor, b: &Tensor, names: (&str, &str)) -> Result<()> {
    if a.shape() == b.shape() {
        Ok(())
    } else {
        Err(Error::Shape {
            op,
            detail: format!(
                "{} is {:?} but {} is {:?}",
                names.0,
                a.shape(),
                names.1,
                b.shape()
            ),
        })
    }
}

/// A 2-D grid (kernels index `id.x + id.y * groups_x`) of `groups` workgroups.
pub fn grid_2d(gpu: &Gpu, groups: usize) -> Result<[u32; 3]> {
    let groups = u32::try_from(groups).map_err(|_| Error::TooLarge {
        detail: format!("{groups} workgroups"),
    })?;
    let g = gpu.grid(groups)?;
    if g[2] != 1 {
        return Err(Error::TooLarge {
            detail: format!("{groups} workgroups exceed a 2-D dispatch"),
        });
    }
    Ok(g)
}

pub fn to_u32(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        detail: format!("{v} does not fit the kernel's 32-bit indices"),
    })
}

/// The parameter block of kernels that run one lane per element of a flat range
/// (`shaders/elementwise.wgsl`, `shaders/swiglu.wgsl`): 256 lanes per workgroup.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FlatParams {
    pub n: u32,
    pub groups_x: u32,
    pub pad: [u32; 2],
}

/// [`FlatParams`] and the grid for `n` elements.
pub fn flat_params(gpu: &Gpu, n: usize) -> Result<(FlatParams, [u32; 3])> {
    let grid = grid_2d(gpu, n.div_ceil(256))?;
    Ok((
        FlatParams {
            n: to_u32(n)?,
            groups_x: grid[0],
            pad: [0; 2],
        },
        grid,
    ))
}
