//! Per-step scalars brought back from the device without stalling it: the loss, the
//! gradient norm and the step's non-finite flag, through a small ring of mapped buffers.

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};
use futures_channel::oneshot;

/// The loss and gradient norm of one step, read back without waiting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepValues {
    pub step: u64,
    pub loss: f32,
    pub grad_norm: f32,
    /// Whether the step's update was skipped for a NaN or Inf, and where it was seen first.
    pub nonfinite: NonFinite,
}

/// The device's verdict on a step's loss and gradients (`norm[1]` of [`AdamW::grad_norm`](super::optim::AdamW::grad_norm)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NonFinite {
    /// Everything finite: the update was applied.
    None,
    /// The gradients are finite, the loss is not; no update.
    Loss,
    /// Gradient chunk `chunk` (see [`AdamW::nonfinite_source`](super::optim::AdamW::nonfinite_source)) is the first holding a NaN or
    /// Inf; no update.
    Gradient { chunk: u32 },
}

impl NonFinite {
    fn from_flag(flag: f32) -> NonFinite {
        if flag == 0.0 || flag.is_nan() {
            NonFinite::None
        } else if flag < 0.0 {
            NonFinite::Loss
        } else {
            NonFinite::Gradient {
                chunk: flag as u32 - 1,
            }
        }
    }

    pub fn is_none(self) -> bool {
        self == NonFinite::None
    }
}

struct Slot {
    buffer: wgpu::Buffer,
    pending: Option<(
        u64,
        oneshot::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    )>,
}

/// Per-step scalars (loss, gradient norm) brought to the host without stalling the step
/// pipeline: each step copies them into one of a small ring of MAP_READ buffers, mapped when
/// that step's submission completes; [`StepReadback::poll`] collects whatever has arrived,
/// typically a step or two later.
///
/// ```text
/// readback.record_copy(&mut encoder, step, decoder.loss(), adamw.grad_norm())?;
/// gpu.submit(encoder);
/// for v in readback.poll(&gpu)? { log(v.step, v.loss, v.grad_norm) }
/// ```
///
/// When every slot is still in flight, `record_copy` adds a slot rather than waiting.
pub struct StepReadback {
    slots: Vec<Slot>,
}

impl StepReadback {
    /// Slots a ring starts with: enough for the host to run two steps ahead.
    pub const DEFAULT_DEPTH: usize = 3;

    pub fn new(gpu: &Gpu, depth: usize) -> StepReadback {
        StepReadback {
            slots: (0..depth.max(1)).map(|_| Self::slot(gpu)).collect(),
        }
    }

    fn slot(gpu: &Gpu) -> Slot {
        Slot {
            buffer: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("step readback"),
                size: 12,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            pending: None,
        }
    }

    /// Copy `loss[0]` and `grad_norm[0..2]` (the norm and the non-finite flag of
    /// [`AdamW::grad_norm`](super::optim::AdamW::grad_norm); a one-element norm counts as finite) at the end of `encoder` into
    /// a free slot, to be mapped when `encoder` is submitted. Call it after the step's
    /// dispatches are recorded.
    pub fn record_copy(
        &mut self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        step: u64,
        loss: &Tensor,
        grad_norm: &Tensor,
    ) -> Result<()> {
        for (t, what) in [(loss, "loss"), (grad_norm, "grad_norm")] {
            if t.dtype() != DType::F32 || t.numel() == 0 {
                return Err(Error::Shape {
                    op: "step readback",
                    detail: format!("{what} must be a non-empty f32 tensor, got {:?}", t.shape()),
                });
            }
        }
        let i = match self.slots.iter().position(|s| s.pending.is_none()) {
            Some(i) => i,
            None => {
                log::debug!(
                    "step readback: all {} slots in flight; adding one",
                    self.slots.len()
                );
                self.slots.push(Self::slot(gpu));
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        encoder.copy_buffer_to_buffer(&loss.pieces()[0].buffer, 0, &slot.buffer, 0, 4);
        if grad_norm.numel() >= 2 {
            encoder.copy_buffer_to_buffer(&grad_norm.pieces()[0].buffer, 0, &slot.buffer, 4, 8);
        } else {
            encoder.copy_buffer_to_buffer(&grad_norm.pieces()[0].buffer, 0, &slot.buffer, 4, 4);
            encoder.clear_buffer(&slot.buffer, 8, Some(4));
        }
        let (tx, rx) = oneshot::channel();
        encoder.map_buffer_on_submit(&slot.buffer, wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        slot.pending = Some((step, rx));
        Ok(())
    }

    /// Steps recorded but not collected yet.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.pending.is_some()).count()
    }

    /// Collect every step whose values have arrived, in step order, without blocking (on
    /// native it checks the device once; in the browser the event loop delivers them).
    pub fn poll(&mut self, gpu: &Gpu) -> Result<Vec<StepValues>> {
        let _ = gpu.device.poll(wgpu::PollType::Poll);
        let mut out = Vec::new();
        for slot in &mut self.slots {
            let Some((step, rx)) = &mut slot.pending else {
                continue;
            };
            let step = *step;
            match rx.try_recv() {
                Ok(None) => {}
                Ok(Some(r)) => {
                    slot.pending = None;
                    out.push(Self::take(&slot.buffer, step, r)?);
                }
                Err(oneshot::Canceled) => {
                    // The encoder was dropped without being submitted.
                    log::warn!("step readback: step {step} was never submitted");
                    slot.pending = None;
                }
            }
        }
        out.sort_by_key(|v| v.step);
        Ok(out)
    }

    /// Wait for every step in flight and collect them, in step order (end of training).
    pub async fn finish(&mut self, gpu: &Gpu) -> Result<Vec<StepValues>> {
        gpu.poll_wait();
        let mut out = Vec::new();
        for slot in &mut self.slots {
            if let Some((step, rx)) = slot.pending.take() {
                match rx.await {
                    Ok(r) => out.push(Self::take(&slot.buffer, step, r)?),
                    Err(oneshot::Canceled) => {
                        log::warn!("step readback: step {step} was never submitted")
                    }
                }
            }
        }
        out.sort_by_key(|v| v.step);
        Ok(out)
    }

    fn take(
        buffer: &wgpu::Buffer,
        step: u64,
        mapped: std::result::Result<(), wgpu::BufferAsyncError>,
    ) -> Result<StepValues> {
        mapped.map_err(|e| Error::Readback(format!("step {step}: {e}")))?;
        let values: [f32; 3] = {
            let view = buffer
                .get_mapped_range(..)
                .map_err(|e| Error::Readback(e.to_string()))?;
            bytemuck::pod_read_unaligned(&view[..12])
        };
        buffer.unmap();
        Ok(StepValues {
            step,
            loss: values[0],
            grad_norm: values[1],
            nonfinite: NonFinite::from_flag(values[2]),
        })
    }
}
