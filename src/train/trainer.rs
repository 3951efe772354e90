//! The training loop: data → micro-steps (forward + backward, gradients accumulating) →
//! one fused AdamW update per optimizer step, with the loss and gradient norm read back
//! asynchronously so the GPU never waits for the host. Checkpoints hold everything needed to
//! continue bit for bit: weights, Adam moments, the step, the data position, the config.

use super::checkpoint_write::{write_checkpoint, CheckpointFiles};
use super::config::TrainConfig;
use super::data::{resolve_dataset, DataSource, DataState, Holdout, Split};
use super::nonfinite::NonFinitePolicy;
use super::optim::{AdamWConfig, StepValues};
use super::paloma::{held_out_documents, HeldOutDocuments};
use super::progress;
pub use super::run_setup::latest_checkpoint;
use super::run_setup::{check_memory, copy_into_run, data_spec, model_config_for};
use super::schedule::LrSchedule;
use super::step::TrainingStep;
use super::tokenizer::{self, Tokenizer};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::metrics::log::MetricsLog;
use crate::model::checkpoint;
use crate::model::config::ModelConfig;
use crate::model::decoder::Decoder;
use crate::train::run_lock::RunLock;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use super::run_setup::{OPTIMIZER_FILE, TOKENIZER_FILE, TRAINER_STATE_FILE};

mod data_parallel;
mod evaluation;

pub use data_parallel::{start_in_order, DataParallel};

/// What a checkpoint stores besides weights and optimizer moments.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps completed.
    pub step: u64,
    pub data: DataState,
    /// The full training config, so `--resume` needs nothing else.
    pub config_yaml: String,
    /// The data path the run reads (after resolving `pypi:` names).
    pub data_path: PathBuf,
    pub wgtrain_version: String,
}

/// What the host remembers of a submitted step until its values come back.
struct PendingStep {
    lr: f64,
    /// The data position before the step's first micro-batch.
    data: DataState,
}

/// How a run ended.
#[derive(Debug)]
pub struct Summary {
    pub steps: u64,
    pub last_loss: Option<f32>,
    pub first_loss: Option<f32>,
    pub checkpoint: Option<PathBuf>,
    pub interrupted: bool,
}

pub struct Trainer<'g> {
    gpu: &'g Gpu,
    pub config: TrainConfig,
    pub model_config: ModelConfig,
    /// The model, optimizer and schedule on the device.
    engine: TrainingStep,
    data: DataSource,
    heldout: Option<DataSource>,
    /// The documents `paloma` scores, tokenized once at the start.
    paloma: Option<HeldOutDocuments>,
    tokenizer: Option<Tokenizer>,
    data_path: PathBuf,
    step: u64,
    run_dir: PathBuf,
    log: MetricsLog,
    /// Learning rate and data position of each step whose values have not come back yet.
    pending: BTreeMap<u64, PendingStep>,
    /// `training.on_nonfinite` and its counts.
    nonfinite: NonFinitePolicy,
    /// The newest complete checkpoint of this run (saved, or resumed from).
    last_checkpoint: Option<PathBuf>,
    pub show_progress: bool,
    losses: Vec<(u64, f32)>,
    dynamics_plans: crate::metrics::dynamics::MetricsPlans,
    /// Steps (1-based) that started with a merge-and-reset in this session.
    pub resets: Vec<u64>,
    /// This trainer's hold on the run directory (`None` on data-parallel ranks other than 0,
    /// which write nothing there).
    _lock: Option<RunLock>,
    /// The other ranks, in data-parallel training.
    parallel: Option<DataParallel<'g>>,
    /// Called with the step after every optimizer step of [`Trainer::run`] (a study's
    /// progress view; it may set the stop flag).
    pub on_step: Option<Box<dyn FnMut(u64)>>,
}

impl<'g> Trainer<'g> {
    /// A fresh run writing into `run_dir` (checkpoints, metrics log, plots, tokenizer).
    pub fn new(gpu: &'g Gpu, config: TrainConfig, run_dir: &Path) -> Result<Trainer<'g>> {
        Self::new_with(gpu, config, run_dir, None)
    }

    /// [`Trainer::new`] as one rank of data-parallel training (`parallel`), or alone (`None`).
    /// Ranks other than 0 write nothing into `run_dir` and take no lock on it.
    pub fn new_with(
        gpu: &'g Gpu,
        config: TrainConfig,
        run_dir: &Path,
        parallel: Option<DataParallel<'g>>,
    ) -> Result<Trainer<'g>> {
        let leader = parallel.as_ref().is_none_or(DataParallel::is_leader);
        if leader && run_dir.join("metrics.jsonl").exists() {
            // A new run would mix its log and checkpoints with the old one's.
            return Err(Error::Invalid(format!(
                "{} already holds a run: continue it with `wgtrain train --resume {}`, or start \
                 a new one elsewhere (--run-dir, or checkpointing.run_name), or delete it",
                run_dir.display(),
                run_dir.display()
            )));
        }
        std::fs::create_dir_all(run_dir)
            .map_err(|e| Error::Invalid(format!("cannot create {}: {e}", run_dir.display())))?;
        let lock = leader.then(|| RunLock::acquire(run_dir)).transpose()?;
        let dataset = resolve_dataset(&config.data.dataset.name)?;
        let tokenizer = if dataset.is_text || super::paloma::needs_tokenizer(&config) {
            // The run directory keeps the tokenizer: one trained for the run is saved there.
            let saved = run_dir.join(TOKENIZER_FILE);
            let texts = || dataset.text_files();
            Some(tokenizer::resolve(&config.data.tokenizer, &saved, texts)?)
        } else {
            None
        };
        let t = Self::build(
            gpu,
            config,
            dataset.path,
            tokenizer,
            run_dir,
            0,
            lock,
            parallel,
        )?;
        t.engine.model.init_params(gpu, t.config.training.seed)?;
        Ok(t)
    }

    /// Continue the run saved in checkpoint `dir`, exactly where it stopped. `overrides`
    /// (`key=value`) may change e.g. `training.max_steps`.
    pub fn resume(gpu: &'g Gpu, dir: &Path, overrides: &[String]) -> Result<Trainer<'g>> {
        Self::resume_with(gpu, dir, overrides, None)
    }

    /// [`Trainer::resume`] as one rank of data-parallel training (`parallel`), or alone; the
    /// checkpoint may have been written with any number of ranks.
    pub fn resume_with(
        gpu: &'g Gpu,
        dir: &Path,
        overrides: &[String],
        parallel: Option<DataParallel<'g>>,
    ) -> Result<Trainer<'g>> {
        let leader = parallel.as_ref().is_none_or(DataParallel::is_leader);
        let state_path = dir.join(TRAINER_STATE_FILE);
        let text = std::fs::read_to_string(&state_path).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a wgtrain training checkpoint ({}: {e}); --resume needs a directory \
                 written by `wgtrain train` (runs/NAME/checkpoints/step_N)",
                dir.display(),
                TRAINER_STATE_FILE
            ))
        })?;
        let state: TrainerState = serde_json::from_str(&text)
            .map_err(|e| Error::Invalid(format!("{}: {e}", state_path.display())))?;
        let config = TrainConfig::from_yaml(&state.config_yaml, overrides)?;
        // A resumed run continues on its own data, from its saved position: another dataset
        // given now would be silently ignored, so it is refused.
        let saved = TrainConfig::from_yaml(&state.config_yaml, &[])?;
        if config.data.dataset.name != saved.data.dataset.name {
            return Err(Error::Invalid(format!(
                "--resume continues on the data the run started with ('{}', read from {}); \
                 '{}' differs: leave out --data (or data.dataset.name) to resume, or start a \
                 new run to train on other data",
                saved.data.dataset.name,
                state.data_path.display(),
                config.data.dataset.name
            )));
        }
        let run_dir = dir
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.to_path_buf());
        let lock = leader.then(|| RunLock::acquire(&run_dir)).transpose()?;
        let tok_path = dir.join(TOKENIZER_FILE);
        let tokenizer = if tok_path.exists() {
            Some(Tokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        let mut t = Self::build(
            gpu,
            config,
            state.data_path.clone(),
            tokenizer,
            &run_dir,
            state.step,
            lock,
            parallel,
        )?;
        let ckpt = checkpoint::load(dir)?;
        ckpt.check_against(&t.model_config.param_specs())?;
        t.engine
            .model
            .load_params(gpu, |n| ckpt.tensors.get(n).map(|x| x.data.as_slice()))?;
        let opt_path = dir.join(OPTIMIZER_FILE);
        let opt = checkpoint::read_safetensors(&opt_path)?;
        for (name, tensor) in t.engine.optim.state_tensors() {
            let problem = match opt.get(&name) {
                None => Some("is missing".to_string()),
                Some(x) if x.data.as_f32().map(<[f32]>::len) != Some(tensor.numel()) => {
                    Some(format!(
                        "has shape {:?}, the model's is {:?} (or is not a float tensor)",
                        x.shape,
                        tensor.shape()
                    ))
                }
                Some(_) => None,
            };
            if let Some(problem) = problem {
                return Err(Error::Checkpoint {
                    path: opt_path,
                    tensor: Some(name),
                    problem: format!(
                        "{problem}: the optimizer state is damaged or belongs to another model; \
                         resume from an earlier checkpoint of this run"
                    ),
                });
            }
        }
        t.engine
            .optim
            .load_state(gpu, |n| opt.get(n).and_then(|x| x.data.as_f32()))?;
        t.data.restore(&state.data)?;
        t.last_checkpoint = Some(dir.to_path_buf());
        Ok(t)
    }

    /// The run's parts, in order: the model config, the data, the model, optimizer and
    /// schedule on the device, and the metrics log.
    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &'g Gpu,
        config: TrainConfig,
        data_path: PathBuf,
        tokenizer: Option<Tokenizer>,
        run_dir: &Path,
        step: u64,
        lock: Option<RunLock>,
        mut parallel: Option<DataParallel<'g>>,
    ) -> Result<Trainer<'g>> {
        let leader = parallel.as_ref().is_none_or(DataParallel::is_leader);
        let model_config = model_config_for(&config, tokenizer.as_ref())?;
        if let Some(tok) = tokenizer.as_ref().filter(|_| leader) {
            copy_into_run(tok, run_dir)?;
        }
        let seq = model_config.max_seq_len;
        let o = &config.training.optimization;
        let spec = data_spec(&config, &data_path, tokenizer.clone(), &model_config);
        let data = DataSource::open_split(&spec, Split::Train)?;
        let heldout = if matches!(spec.holdout, Holdout::None) {
            None
        } else {
            Some(DataSource::open_split(&spec, Split::Heldout)?)
        };
        let paloma = held_out_documents(&config, seq, &data_path, tokenizer.as_ref())?;
        check_memory(gpu, &config, &model_config)?;
        let model = Decoder::with_accumulation(
            gpu,
            &model_config,
            config.micro_batch(),
            seq,
            o.gradient_accumulation_steps,
        )?;
        let adamw = AdamWConfig {
            lr: o.lr,
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
            max_grad_norm: o.max_grad_norm,
        };
        let relora = model_config.relora.clone();
        let schedule = LrSchedule {
            schedule: o.lr_scheduler.parse()?,
            lr: o.lr,
            warmup_steps: o.lr_warmup_steps,
            max_steps: config.training.max_steps,
            min_lr_ratio: o.min_lr_ratio,
            restart_every: relora.as_ref().map_or(0, |r| r.reset_frequency),
            restart_warmup_steps: o.restart_warmup_steps.unwrap_or(0),
        };
        let engine = TrainingStep::new(
            gpu,
            model,
            adamw,
            schedule,
            config.training.seed,
            o.gradient_accumulation_steps,
        )?;
        // A resumed run repeats the steps after its checkpoint: their old lines go.
        let nonfinite = NonFinitePolicy::new(&config.training);
        let log_path = run_dir.join("metrics.jsonl");
        let log = if leader {
            MetricsLog::open_at(&log_path, Some(step))?
        } else {
            MetricsLog::discard(&log_path)
        };
        if let Some(p) = parallel.as_mut() {
            p.prepare(gpu, &engine.model)?;
        }
        Ok(Trainer {
            gpu,
            config,
            model_config,
            engine,
            data,
            heldout,
            paloma,
            tokenizer,
            data_path,
            step,
            run_dir: run_dir.to_path_buf(),
            log,
            pending: BTreeMap::new(),
            nonfinite,
            last_checkpoint: None,
            show_progress: true,
            losses: Vec::new(),
            dynamics_plans: Default::default(),
            resets: Vec::new(),
            _lock: lock,
            parallel,
            on_step: None,
        })
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    pub fn model(&self) -> &Decoder {
        &self.engine.model
    }

    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.tokenizer.as_ref()
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// A one-line description of the run for the console.
    pub fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "pico-decoder {:.2} M params (d {}, {} layers, vocab {}), {} steps of {} x {} tokens \
             ({} micro-batch{} of {}), lr {} {}, data {}, {} of device memory planned",
            self.model_config.num_params() as f64 / 1e6,
            self.model_config.d_model,
            self.model_config.n_layers,
            self.model_config.vocab_size,
            c.training.max_steps,
            c.data.dataloader.batch_size,
            self.model_config.max_seq_len,
            c.training.optimization.gradient_accumulation_steps,
            if c.training.optimization.gradient_accumulation_steps == 1 {
                ""
            } else {
                "es"
            },
            c.micro_batch(),
            c.training.optimization.lr,
            c.training.optimization.lr_scheduler,
            self.data.describe(),
            crate::model::memory_estimate::human_bytes(
                self.engine.model.planned_bytes() + self.engine.optim.state_bytes()
            )
        )
    }

    /// Run one optimizer step (all micro-batches, then AdamW); does not wait for the GPU.
    pub fn train_step(&mut self) -> Result<()> {
        let micro = self.config.micro_batch();
        let position = self.data.state();
        let data = &mut self.data;
        let sent = match self.parallel.as_mut() {
            None => self
                .engine
                .submit(self.gpu, self.step, || data.next_batch(micro))?,
            Some(p) => {
                let (sent, comm) = p.submit(self.gpu, &mut self.engine, self.step, || {
                    data.next_batch(micro)
                })?;
                self.log.write(sent.step, &p.comm_values(comm))?;
                sent
            }
        };
        if sent.reset {
            self.resets.push(sent.step);
            self.log.write(sent.step, &[("relora/reset", 1.0)])?;
        }
        self.step = sent.step;
        let pending = PendingStep {
            lr: sent.lr,
            data: position,
        };
        self.pending.insert(sent.step, pending);
        Ok(())
    }

    /// Make the gradient of `param` NaN at optimizer step `step` (tests of the non-finite
    /// path).
    #[doc(hidden)]
    pub fn inject_nan_gradient(&mut self, step: u64, param: &str) -> Result<()> {
        self.engine.inject_nan_gradient(step, param)
    }

    /// Non-finite steps skipped so far in this session.
    pub fn nonfinite_skipped(&self) -> u64 {
        self.nonfinite.total()
    }

    fn log_values(&mut self, values: Vec<StepValues>, tokens_per_s: f64) -> Result<Option<f32>> {
        // The read-back loss sums the step's micro-batches.
        let accum = self.engine.accumulation() as f32;
        let mut last = None;
        for v in values {
            let loss = v.loss / accum;
            let pending = self.pending.remove(&v.step);
            let lr = pending.as_ref().map_or(f64::NAN, |p| p.lr);
            self.log.write(
                v.step,
                &[
                    ("loss", loss as f64),
                    ("lr", lr),
                    ("grad_norm", v.grad_norm as f64),
                    ("tokens_per_s", tokens_per_s),
                ],
            )?;
            // The device flags NaN and Inf in the loss and every gradient, and then applies
            // no update (adamw.wgsl); a finite loss with a flagged gradient is caught too.
            let source = self
                .engine
                .optim
                .nonfinite_source(v.nonfinite)
                .or_else(|| (!loss.is_finite()).then(|| "the loss".to_string()));
            let Some(source) = source else {
                self.nonfinite.finite();
                self.losses.push((v.step, loss));
                last = Some(loss);
                continue;
            };
            let total = self
                .nonfinite
                .skipped(v.step, &source, loss, pending.map(|p| p.data))?;
            self.log.write(
                v.step,
                &[
                    ("nonfinite/skipped", 1.0),
                    ("nonfinite/skipped_total", total as f64),
                ],
            )?;
        }
        Ok(last)
    }

    /// Train until `training.max_steps` (or until `stop` is set, e.g. by Ctrl-C), saving
    /// checkpoints every `checkpointing.save_every_n_steps` and at the end.
    ///
    /// An error after training has started (a non-finite step with `on_nonfinite: stop`, a
    /// lost device, running out of memory) is returned as [`Error::TrainingStopped`], naming
    /// the last complete checkpoint and the command that continues from it.
    pub fn run(&mut self, stop: &Arc<AtomicBool>) -> Result<Summary> {
        let e = match self.run_steps(stop) {
            Ok(summary) => return Ok(summary),
            Err(e @ Error::TrainingStopped { .. }) => return Err(e),
            Err(e) => e,
        };
        // A failed readback or copy is often the symptom, a lost device the cause (wgpu
        // reports the loss once its queue has drained: wait for that).
        self.gpu.poll_wait();
        let cause = match self.gpu.check_errors() {
            Err(lost @ Error::DeviceLost(_)) => lost,
            _ => e,
        };
        Err(Error::TrainingStopped {
            cause: Box::new(cause),
            checkpoint: self.last_checkpoint.clone(),
            run_dir: self.run_dir.clone(),
        })
    }

    fn run_steps(&mut self, stop: &Arc<AtomicBool>) -> Result<Summary> {
        let gpu = self.gpu;
        let max = self.config.training.max_steps;
        let tokens_per_step =
            (self.config.data.dataloader.batch_size * self.model_config.max_seq_len) as f64;
        let bar = progress::bar(
            self.show_progress,
            max,
            "{spinner} step {pos}/{len} [{bar:30}] {msg} | {elapsed_precise} ETA {eta_precise}",
        );
        bar.set_position(self.step);
        let started = Instant::now();
        let start_step = self.step;
        let mut completed = self.step;
        let mut last_loss = None;
        let mut last_checkpoint = None;
        let mut interrupted = false;
        while self.step < max {
            // Every rank stops at the same step (any rank's Ctrl-C stops all).
            if self.stop_requested(stop.load(Ordering::SeqCst))? {
                interrupted = true;
                break;
            }
            // Waits when the device is StepReadback's depth of steps behind (back-pressure).
            self.train_step()?;
            let done = self.engine.readback.poll(gpu)?;
            // Throughput and the bar count the steps the device has finished, not the ones
            // submitted, so they hold on an asynchronous queue too.
            completed = done.last().map_or(completed, |v| v.step);
            let elapsed = started.elapsed().as_secs_f64().max(1e-9);
            let tps = (completed - start_step) as f64 * tokens_per_step / elapsed;
            // A lost device or an out-of-memory error surfaces here, within a step.
            gpu.check_errors()?;
            if let Some(l) = self.log_values(done, tps)? {
                last_loss = Some(l);
            }
            bar.set_position(completed);
            if let Some(f) = self.on_step.as_mut() {
                f(self.step);
            }
            bar.set_message(format!(
                "loss {} | {:.0} tok/s",
                last_loss.map_or("…".to_string(), |l| format!("{l:.4}")),
                tps
            ));
            let dyn_every = self.config.evaluation.dynamics_every_n_steps;
            if dyn_every > 0 && (self.step.is_multiple_of(dyn_every) || self.step == 1) {
                let values = self.dynamics()?;
                let refs: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                self.log.write(self.step, &refs)?;
            }
            let every = self.config.evaluation.every_n_steps;
            if every > 0 && self.step.is_multiple_of(every) && self.step < max {
                self.evaluate_and_log(&bar)?;
            }
            // Saved after the step's measurements are logged: a run killed after this
            // checkpoint resumes with nothing of its step missing from the log.
            if self
                .step
                .is_multiple_of(self.config.checkpointing.save_every_n_steps)
                || self.step == max
            {
                let rest = pollster::block_on(self.engine.readback.finish(gpu))?;
                completed = self.step;
                if let Some(l) = self.log_values(rest, tps)? {
                    last_loss = Some(l);
                }
                last_checkpoint = Some(self.save()?);
            }
        }
        let rest = pollster::block_on(self.engine.readback.finish(gpu))?;
        if let Some(l) = self.log_values(rest, 0.0)? {
            last_loss = Some(l);
        }
        if interrupted {
            bar.println(format!(
                "interrupted at step {}: saving a checkpoint",
                self.step
            ));
            last_checkpoint = Some(self.save()?);
        }
        bar.finish();
        Ok(Summary {
            steps: self.step,
            last_loss,
            first_loss: self.losses.first().map(|l| l.1),
            checkpoint: last_checkpoint,
            interrupted,
        })
    }

    /// Write a checkpoint of the current state to `run/checkpoints/step_N` (atomically) and
    /// point `run/checkpoints/latest` at it.
    pub fn save(&mut self) -> Result<PathBuf> {
        let gpu = self.gpu;
        let ckpt_root = self
            .run_dir
            .join(&self.config.checkpointing.checkpoints_dir);
        let params = pollster::block_on(self.engine.model.read_params(gpu))?;
        let moments = pollster::block_on(self.engine.optim.read_state(gpu))?;
        let state = TrainerState {
            step: self.step,
            data: self.data.state(),
            config_yaml: self.config.to_yaml(),
            data_path: self.data_path.clone(),
            wgtrain_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let state_json =
            serde_json::to_string_pretty(&state).map_err(|e| Error::Invalid(e.to_string()))?;
        let tokenizer = self.tokenizer.as_ref().and_then(|t| t.path());
        let files = CheckpointFiles {
            params: &params,
            moments: &moments,
            config_json: &self.model_config.to_json_string(),
            trainer_state_json: &state_json,
            tokenizer,
        };
        let dir = match &self.parallel {
            None => write_checkpoint(&ckpt_root, self.step, &files)?,
            // Rank 0 writes; every rank learns whether it could and checks its weights
            // still equal rank 0's.
            Some(p) => {
                let written = p
                    .is_leader()
                    .then(|| write_checkpoint(&ckpt_root, self.step, &files));
                let dir = ckpt_root.join(super::checkpoint_write::step_dir_name(self.step));
                self.after_save(written, &dir, &params, &moments)?;
                dir
            }
        };
        self.last_checkpoint = Some(dir.clone());
        Ok(dir)
    }
}
