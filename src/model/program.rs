//! What a planned model is made of: parameters with their gradients, stages of prepared
//! dispatches, and the allocator that counts the memory of a plan as it allocates it.

use crate::error::Result;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};

/// A parameter and its gradient (same shape, accumulated by the backward). Frozen
/// parameters (the base weights under LoRA adapters) get no gradient: `grad` is a
/// one-element placeholder and `trainable` is false.
pub struct Param {
    pub name: String,
    pub value: Tensor,
    pub grad: Tensor,
    pub trainable: bool,
}

/// Dispatches of one op family, recorded in order (and timed together by `wgbench step`).
pub struct Stage {
    pub family: &'static str,
    pub dispatches: Vec<Dispatch>,
}

/// Collects stages, merging consecutive dispatches of the same family.
#[derive(Default)]
pub struct Program(pub Vec<Stage>);

impl Program {
    pub fn push(&mut self, family: &'static str, dispatches: impl IntoIterator<Item = Dispatch>) {
        match self.0.last_mut() {
            Some(s) if s.family == family => s.dispatches.extend(dispatches),
            _ => self.0.push(Stage {
                family,
                dispatches: dispatches.into_iter().collect(),
            }),
        }
    }
}

/// Allocates the tensors of a plan and adds up their sizes, so the planned memory is counted
/// where each buffer is made and cannot drift from what was allocated.
pub struct Memory<'g> {
    gpu: &'g Gpu,
    bytes: u64,
}

impl<'g> Memory<'g> {
    pub fn new(gpu: &'g Gpu) -> Memory<'g> {
        Memory { gpu, bytes: 0 }
    }

    fn counted(&mut self, t: Tensor) -> Tensor {
        self.bytes += t.size_bytes();
        t
    }

    /// A zero-filled f32 tensor.
    pub fn zeros(&mut self, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::zeros(self.gpu, shape, DType::F32)?;
        Ok(self.counted(t))
    }

    /// A zero-filled u32 tensor (token ids).
    pub fn zeros_u32(&mut self, shape: &[usize]) -> Result<Tensor> {
        let t = Tensor::zeros(self.gpu, shape, DType::U32)?;
        Ok(self.counted(t))
    }

    /// An f32 tensor holding `data`.
    pub fn upload(&mut self, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = Tensor::from_f32(self.gpu, shape, data)?;
        Ok(self.counted(t))
    }

    /// The GPU it allocates on.
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Bytes allocated so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}
