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

type MapResult = std::result::Result<(), wgpu::BufferAsyncError>;

struct Slot {
    buffer: wgpu::Buffer,
    pending: Option<Pending>,
}

/// A step whose values are on their way: its map callback's receiver, and the submission
/// that carries the copy once [`StepReadback::submitted`] has been told it.
struct Pending {
    step: u64,
    rx: oneshot::Receiver<MapResult>,
    submission: Option<wgpu::SubmissionIndex>,
}

/// Per-step scalars (loss, gradient norm) brought to the host without stalling the step
/// pipeline: each step copies them into one of a small ring of MAP_READ buffers, mapped when
/// that step's submission completes; [`StepReadback::poll`] collects whatever has arrived,
/// typically a step or two later.
///
/// ```text
/// readback.record_copy(&gpu, &mut encoder, step, decoder.loss(), adamw.grad_norm())?;
/// readback.submitted(gpu.submit(encoder));
/// for v in readback.poll(&gpu)? { log(v.step, v.loss, v.grad_norm) }
/// ```
///
/// The ring is also the pipeline's back-pressure: when every slot is in flight,
/// `record_copy` waits for the oldest step's submission to finish (native), so the host is
/// never more than `depth` steps ahead of the device, and tokens/s, the ETA and Ctrl-C
/// follow what the device has done. In the browser, where the host cannot block, it adds a
/// slot instead (the demo awaits its steps in short batches).
pub struct StepReadback {
    slots: Vec<Slot>,
    /// Values collected while making room in `record_copy`, handed out by the next `poll`.
    ready: Vec<StepValues>,
}

impl StepReadback {
    /// Slots a ring starts with: enough for the host to run two steps ahead.
    pub const DEFAULT_DEPTH: usize = 3;

    pub fn new(gpu: &Gpu, depth: usize) -> StepReadback {
        StepReadback {
            slots: (0..depth.max(1)).map(|_| Self::slot(gpu)).collect(),
            ready: Vec::new(),
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
    /// dispatches are recorded, and pass the submission's index to [`Self::submitted`].
    /// With every slot in flight, it first waits for the oldest (see the type's docs).
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
            None => self.make_room(gpu)?,
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
        slot.pending = Some(Pending {
            step,
            rx,
            submission: None,
        });
        Ok(())
    }

    /// The submission that carries the copies recorded since the last call: what
    /// [`Self::record_copy`] waits on when the ring is full.
    pub fn submitted(&mut self, index: wgpu::SubmissionIndex) {
        for p in self.slots.iter_mut().filter_map(|s| s.pending.as_mut()) {
            if p.submission.is_none() {
                p.submission = Some(index.clone());
            }
        }
    }

    /// Free the slot of the oldest step in flight by waiting for it; its values go to
    /// `ready`. Returns the slot's index.
    #[cfg(not(target_arch = "wasm32"))]
    fn make_room(&mut self, gpu: &Gpu) -> Result<usize> {
        let (i, oldest) = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.pending.as_ref().map(|p| (i, p)))
            .min_by_key(|(_, p)| p.step)
            .expect("make_room is called with every slot in flight");
        // Without a recorded index, wait for everything submitted so far (it includes it).
        let _ = gpu.device.poll(wgpu::PollType::Wait {
            submission_index: oldest.submission.clone(),
            timeout: None,
        });
        let mut p = self.slots[i].pending.take().expect("found above");
        match p.rx.try_recv() {
            Ok(Some(r)) => {
                let v = Self::take(&self.slots[i].buffer, p.step, r)?;
                self.ready.push(v);
            }
            // Not mapped after its submission finished: the device is lost (reported by
            // the caller's error check) or the copy was never submitted.
            Ok(None) => {
                return Err(Error::Readback(format!(
                    "step {}: the device finished the step without mapping its values",
                    p.step
                )))
            }
            Err(oneshot::Canceled) => {
                log::warn!("step readback: step {} was never submitted", p.step)
            }
        }
        Ok(i)
    }

    /// In the browser the host cannot wait: grow the ring instead.
    #[cfg(target_arch = "wasm32")]
    fn make_room(&mut self, gpu: &Gpu) -> Result<usize> {
        log::debug!(
            "step readback: all {} slots in flight; adding one",
            self.slots.len()
        );
        self.slots.push(Self::slot(gpu));
        Ok(self.slots.len() - 1)
    }

    /// Slots in the ring: the most steps the host runs ahead of the device (native).
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// Steps recorded whose values have not come back from the device yet.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.pending.is_some()).count()
    }

    /// Collect every step whose values have arrived, in step order, without blocking (on
    /// native it checks the device once; in the browser the event loop delivers them).
    pub fn poll(&mut self, gpu: &Gpu) -> Result<Vec<StepValues>> {
        let _ = gpu.device.poll(wgpu::PollType::Poll);
        let mut out = std::mem::take(&mut self.ready);
        for slot in &mut self.slots {
            let Some(Pending { step, rx, .. }) = &mut slot.pending else {
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
        let mut out = std::mem::take(&mut self.ready);
        for slot in &mut self.slots {
            if let Some(Pending { step, rx, .. }) = slot.pending.take() {
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

    fn take(buffer: &wgpu::Buffer, step: u64, mapped: MapResult) -> Result<StepValues> {
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
