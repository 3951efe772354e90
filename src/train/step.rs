//! One optimizer step on the device, shared by the CLI's trainer and the browser demo:
//! ReLoRA's merge-and-reset when one is due, the micro-batches (forward + backward, gradients
//! accumulating), the fused AdamW update, and an asynchronous copy of the loss and gradient
//! norm for the host. Nothing here waits for the GPU, and nothing touches files.

use super::optim::{AdamW, AdamWConfig, StepReadback};
use super::schedule::LrSchedule;
use crate::error::Result;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::model::decoder::Decoder;
use crate::model::relora::OptimizerReset;
use crate::ops::elementwise;
use crate::ops::lora::{self, MagnitudeRule, MagnitudeScratch, Seed};

#[cfg(not(target_arch = "wasm32"))]
mod exchanged;
#[cfg(not(target_arch = "wasm32"))]
pub use exchanged::GradientStaging;

/// A 32-bit key for (seed, purpose, step, index), for the device RNG streams.
pub fn rng_key(seed: u64, purpose: u64, step: u64, index: u64) -> u32 {
    let mut rng = crate::model::init::Rng::new(
        seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ step.wrapping_mul(0xD6E8_FEB8_6659_FD93)
            ^ index.rotate_left(32),
    );
    (rng.next_u64() >> 32) as u32
}

/// What [`TrainingStep::submit`] queued.
#[derive(Clone, Copy, Debug)]
pub struct Submitted {
    /// The optimizer step (1-based) just submitted.
    pub step: u64,
    /// Its learning rate.
    pub lr: f64,
    /// Whether it began with ReLoRA's merge-and-reset.
    pub reset: bool,
}

/// The device side of training: the model, its optimizer and schedule, and the dispatches
/// that glue them into steps.
pub struct TrainingStep {
    pub model: Decoder,
    pub optim: AdamW,
    pub schedule: LrSchedule,
    /// Loss and gradient norm of submitted steps, collected with `poll` / `finish`.
    pub readback: StepReadback,
    seed: u64,
    accumulation: usize,
    /// Sum of the micro-batches' mean losses of the current step.
    loss_sum: Tensor,
    add_loss: Dispatch,
    /// ReLoRA: pruning of the LoRA parameters' Adam moments at each reset.
    prune: Vec<Dispatch>,
    prune_seed: Seed,
    _magnitude_scratch: Vec<MagnitudeScratch>,
    /// Fault injection for tests: (step, parameter) pairs whose gradient is set to NaN after
    /// that step's backward pass.
    inject_nan: Vec<(u64, String)>,
}

impl TrainingStep {
    /// Wrap `model` (planned with `accumulation` micro-batches per step) with AdamW under
    /// `schedule`; `seed` keys dropout masks, ReLoRA's re-initialisation and pruning.
    pub fn new(
        gpu: &Gpu,
        model: Decoder,
        adamw: AdamWConfig,
        schedule: LrSchedule,
        seed: u64,
        accumulation: usize,
    ) -> Result<TrainingStep> {
        // The loss is watched with the gradients: a step whose loss is NaN or Inf applies no
        // update either.
        let loss_sum = Tensor::zeros(gpu, &[1], DType::F32)?;
        let optim = AdamW::watching_loss(gpu, model.params(), adamw, Some(&loss_sum))?;
        // ReLoRA's optimizer reset: prune the Adam moments of every A and B.
        let prune_seed = Seed::new(gpu, 0);
        let mut prune = Vec::new();
        let mut scratch = Vec::new();
        if let Some(r) = model.relora() {
            for (i, st) in optim.state().iter().enumerate() {
                if !(st.name.ends_with(".A_lora.weight") || st.name.ends_with(".B_lora.weight")) {
                    continue;
                }
                let ratio = r.prune_ratio as f32;
                match r.optimizer_reset {
                    OptimizerReset::Random => prune.extend(lora::prune_random(
                        gpu,
                        &st.m,
                        &st.v,
                        ratio,
                        &prune_seed,
                        i as u32,
                    )?),
                    OptimizerReset::Magnitude => {
                        let sc = MagnitudeScratch::new(gpu)?;
                        prune.extend(lora::prune_magnitude(
                            gpu,
                            &st.m,
                            &st.v,
                            ratio,
                            MagnitudeRule::Each,
                            &sc,
                        )?);
                        scratch.push(sc);
                    }
                }
            }
        }
        let add_loss = elementwise::accumulate(gpu, &loss_sum, model.loss())?;
        Ok(TrainingStep {
            model,
            optim,
            schedule,
            readback: StepReadback::new(gpu, StepReadback::DEFAULT_DEPTH),
            seed,
            accumulation: accumulation.max(1),
            loss_sum,
            add_loss,
            prune,
            prune_seed,
            _magnitude_scratch: scratch,
            inject_nan: Vec::new(),
        })
    }

    /// Make the gradient of parameter `name` NaN at optimizer step `step` (after its backward
    /// pass, before the update): how the tests provoke the non-finite path.
    #[doc(hidden)]
    pub fn inject_nan_gradient(&mut self, step: u64, name: &str) -> Result<()> {
        if !self
            .model
            .params()
            .iter()
            .any(|p| p.name == name && p.trainable)
        {
            return Err(crate::error::Error::Invalid(format!(
                "no trainable parameter {name} to inject a NaN gradient into"
            )));
        }
        self.inject_nan.push((step, name.to_string()));
        Ok(())
    }

    /// Micro-batches per optimizer step; a step's read-back loss is their sum.
    pub fn accumulation(&self) -> usize {
        self.accumulation
    }

    /// Record and submit optimizer step `done + 1` (`done` steps are complete), taking each
    /// micro-batch's tokens (`batch x (seq + 1)` ids) from `next_batch`.
    pub fn submit(
        &mut self,
        gpu: &Gpu,
        done: u64,
        mut next_batch: impl FnMut() -> Result<Vec<u32>>,
    ) -> Result<Submitted> {
        let t = done + 1;
        let seed = self.seed;
        let reset = self.reset_if_due(gpu, t);
        let mut enc = gpu.encoder();
        self.model.record_zero_grads(&mut enc);
        enc.clear_buffer(&self.loss_sum.pieces()[0].buffer, 0, None);
        for a in 0..self.accumulation {
            if a > 0 {
                // Token uploads are queue writes: each micro-batch needs its own submission.
                gpu.submit(std::mem::replace(&mut enc, gpu.encoder()));
            }
            let batch = next_batch()?;
            self.model.set_batch(gpu, &batch)?;
            self.model
                .set_dropout_seed(gpu, rng_key(seed, 3, t, a as u64));
            self.model.record_forward(&mut enc);
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                self.add_loss.record(&mut pass);
            }
            self.model.record_backward(&mut enc);
        }
        let lr = self.finish(gpu, enc, done)?;
        Ok(Submitted { step: t, lr, reset })
    }

    /// ReLoRA's merge-and-reset, submitted, when step `t` begins with one.
    fn reset_if_due(&mut self, gpu: &Gpu, t: u64) -> bool {
        let reset = self.model.relora().is_some_and(|r| r.resets_at(t));
        if reset {
            // Merge-and-reset before this step's forward; the moments of A and B are pruned,
            // Adam's step counter is left as it is.
            let mut enc = gpu.encoder();
            self.model
                .record_merge_and_reset(gpu, &mut enc, rng_key(self.seed, 1, t, 0));
            self.prune_seed.set_seed(gpu, rng_key(self.seed, 2, t, 0));
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                for d in &self.prune {
                    d.record(&mut pass);
                }
            }
            gpu.submit(enc);
        }
        reset
    }

    /// The end of step `done + 1`, once its gradients and loss sum are in place: the AdamW
    /// update and the copy of loss and gradient norm for the host. Returns the step's
    /// learning rate.
    fn finish(&mut self, gpu: &Gpu, mut enc: wgpu::CommandEncoder, done: u64) -> Result<f64> {
        let t = done + 1;
        if let Some((_, name)) = self.inject_nan.iter().find(|(s, _)| *s == t) {
            // A queue write lands between the submission before it and the one after.
            gpu.submit(std::mem::replace(&mut enc, gpu.encoder()));
            let p = self.model.params().iter().find(|p| &p.name == name);
            if let Some(p) = p {
                let nan = f32::NAN.to_le_bytes();
                gpu.queue.write_buffer(&p.grad.pieces()[0].buffer, 0, &nan);
            }
        }
        let lr = self.schedule.lr_at(done);
        self.optim.record_step(gpu, &mut enc, lr as f32, t)?;
        self.readback
            .record_copy(gpu, &mut enc, t, &self.loss_sum, self.optim.grad_norm())?;
        self.readback.submitted(gpu.submit(enc));
        Ok(lr)
    }
}
