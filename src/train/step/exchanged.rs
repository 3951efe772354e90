//! One optimizer step of data-parallel training ([`crate::distributed`]): this rank computes
//! the gradients of its block of the step's micro-batches one at a time, reads each back
//! (with its loss) into host memory, and the ranks sum them in the fixed tree; the sum goes
//! back into the gradient buffers and the loss sum, and the step ends as a local one does
//! (the same AdamW update on every rank).
//!
//! Every rank reads every micro-batch of the step from its data source, its own or not, so
//! the data position stays global: a checkpoint resumes with any number of ranks.

use super::{rng_key, Submitted, TrainingStep};
use crate::distributed::exchange::{tree_sum, CommStats, BUCKET_VALUES};
use crate::distributed::Collective;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::decoder::Decoder;

/// Largest staging buffer for gradient read-back.
const STAGING_BYTES: u64 = 256 << 20;

/// Host-visible copies of the trainable parameters' gradients and the micro-batch loss, laid
/// out as one vector: every trainable parameter in model order (row-major), then the loss.
pub struct GradientStaging {
    chunks: Vec<Chunk>,
    /// Values in the vector (gradients and the loss).
    len: usize,
}

/// A device range copied into staging: (parameter index, or `None` for the loss; piece
/// index; bytes).
type StagedRange = (Option<usize>, usize, u64);

/// One staging buffer and the device ranges copied into it, in order.
struct Chunk {
    buffer: wgpu::Buffer,
    copies: Vec<StagedRange>,
}

impl GradientStaging {
    pub fn new(gpu: &Gpu, model: &Decoder) -> Result<GradientStaging> {
        let limit = STAGING_BYTES.min(gpu.device.limits().max_buffer_size);
        let mut ranges = Vec::new();
        for (i, p) in model.params().iter().enumerate() {
            if !p.trainable {
                continue;
            }
            let row_bytes = (p.grad.row_len() * 4) as u64;
            for (j, piece) in p.grad.pieces().iter().enumerate() {
                ranges.push((Some(i), j, piece.rows as u64 * row_bytes));
            }
        }
        ranges.push((None, 0, 4));
        // Group the ranges into buffers of at most `limit` bytes, then create each buffer.
        let mut groups: Vec<(Vec<StagedRange>, u64)> = Vec::new();
        let mut len = 0;
        for (param, piece, bytes) in ranges {
            if bytes == 0 {
                continue;
            }
            len += (bytes / 4) as usize;
            match groups.last_mut() {
                Some((copies, total)) if *total + bytes <= limit => {
                    copies.push((param, piece, bytes));
                    *total += bytes;
                }
                _ => groups.push((vec![(param, piece, bytes)], bytes)),
            }
        }
        let chunks = groups
            .into_iter()
            .map(|(copies, bytes)| Chunk {
                buffer: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("gradient staging"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
                copies,
            })
            .collect();
        Ok(GradientStaging { chunks, len })
    }

    /// Values per micro-batch: the trainable parameters' elements and the loss.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn record_copy(&self, enc: &mut wgpu::CommandEncoder, model: &Decoder) {
        for c in &self.chunks {
            let mut at = 0;
            for &(param, piece, bytes) in &c.copies {
                let src = match param {
                    Some(i) => &model.params()[i].grad.pieces()[piece].buffer,
                    None => &model.loss().pieces()[0].buffer,
                };
                enc.copy_buffer_to_buffer(src, 0, &c.buffer, at, bytes);
                at += bytes;
            }
        }
    }

    /// The staged values, once the submission that copied them has completed.
    fn read(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let mut waits = Vec::new();
        for c in &self.chunks {
            let (tx, rx) = std::sync::mpsc::channel();
            c.buffer.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            waits.push(rx);
        }
        gpu.poll_wait();
        let mut out = Vec::with_capacity(self.len);
        for (c, rx) in self.chunks.iter().zip(waits) {
            rx.recv()
                .map_err(|_| Error::Readback("the device was lost".into()))?
                .map_err(|e| Error::Readback(e.to_string()))?;
            {
                let view = c
                    .buffer
                    .get_mapped_range(..)
                    .map_err(|e| Error::Readback(e.to_string()))?;
                out.extend_from_slice(bytemuck::cast_slice(&view[..]));
            }
            c.buffer.unmap();
        }
        gpu.check_errors()?;
        Ok(out)
    }
}

impl TrainingStep {
    /// [`TrainingStep::submit`] for data-parallel training over `world`: this rank computes
    /// its block of the step's micro-batches, the ranks sum gradients and losses in the fixed
    /// tree, and the update runs on the sum. Returns what was submitted and what the exchange
    /// moved.
    pub fn submit_exchanged(
        &mut self,
        gpu: &Gpu,
        done: u64,
        world: &dyn Collective,
        staging: &GradientStaging,
        mut next_batch: impl FnMut() -> Result<Vec<u32>>,
    ) -> Result<(Submitted, CommStats)> {
        let t = done + 1;
        let seed = self.seed;
        let reset = self.reset_if_due(gpu, t);
        // Every micro-batch is read, so every rank's data position is the step's end.
        let batches = (0..self.accumulation)
            .map(|_| next_batch())
            .collect::<Result<Vec<_>>>()?;
        let model = &self.model;
        let micro_gradient = |a: usize| -> Result<Vec<f32>> {
            let mut enc = gpu.encoder();
            model.record_zero_grads(&mut enc);
            model.set_batch(gpu, &batches[a])?;
            model.set_dropout_seed(gpu, rng_key(seed, 3, t, a as u64));
            model.record_forward(&mut enc);
            model.record_backward(&mut enc);
            staging.record_copy(&mut enc, model);
            gpu.submit(enc);
            staging.read(gpu)
        };
        let (sum, stats) = tree_sum(
            world,
            self.accumulation,
            staging.len(),
            BUCKET_VALUES,
            micro_gradient,
        )?;
        // The summed gradients replace this rank's; the loss sum is the tree's too.
        let mut at = 0;
        for p in self.model.params().iter().filter(|p| p.trainable) {
            let n = p.grad.numel();
            p.grad.write(gpu, bytemuck::cast_slice(&sum[at..at + n]))?;
            at += n;
        }
        self.loss_sum
            .write(gpu, bytemuck::cast_slice(&sum[at..at + 1]))?;
        let lr = self.finish(gpu, gpu.encoder(), done)?;
        Ok((Submitted { step: t, lr, reset }, stats))
    }
}
