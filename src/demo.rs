//! The in-browser demo's training session, kept in the library so it runs (and is tested)
//! natively too: a tiny pico-decoder over the bytes of a text, trained plain or with ReLoRA,
//! with live learning-dynamics metrics, sampling, and export as a pico checkpoint.
//!
//! Everything is `async` and nothing blocks, so a browser can drive it between frames; the
//! `wasm/` crate is only the JavaScript bindings around [`DemoSession`].

use crate::error::{Error, Result};
use crate::eval::perplexity::perplexity;
use crate::gpu::Gpu;
use crate::metrics::dynamics::{measure_matrices, model_matrix, MatrixMetrics, MetricsPlans};
use crate::model::archive;
use crate::model::checkpoint::checkpoint_files;
use crate::model::config::ModelConfig;
use crate::model::decoder::Decoder;
use crate::model::generate::SampleOptions;
use crate::model::init::Rng;
use crate::model::kv_cache::{generate_cached, CachedDecoder};
use crate::model::relora::ReloraConfig;
use crate::train::byte_tokenizer::{self, EOS_ID};
use crate::train::optim::AdamWConfig;
use crate::train::schedule::{LrSchedule, Schedule};
use crate::train::step::TrainingStep;
use serde::{Deserialize, Serialize};

/// The demo's settings (the page's form; every field has a default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoOptions {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub seq: usize,
    pub batch: usize,
    pub lr: f64,
    /// Linear warmup; by default a tenth of `steps`, between 1 and 20 (see [`Self::warmup`]).
    pub warmup_steps: Option<u64>,
    /// The learning-rate schedule's horizon (cosine decay to 10% of `lr` by this step).
    pub steps: u64,
    /// ReLoRA instead of plain training.
    pub relora: bool,
    pub relora_r: usize,
    pub relora_reset_every: u64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            d_model: 64,
            n_layers: 2,
            n_heads: 4,
            n_kv_heads: 2,
            seq: 64,
            batch: 8,
            lr: 3e-3,
            warmup_steps: None,
            steps: 400,
            relora: false,
            relora_r: 8,
            relora_reset_every: 100,
            seed: 0,
        }
    }
}

impl DemoOptions {
    /// The pico-decoder these options train (vocabulary: 256 bytes + end-of-text, padded to
    /// 320 as pico pads to a multiple of 64; SwiGLU hidden 4 d_model), with pico-relora's
    /// adapters when `relora` is set.
    pub fn model_config(&self) -> Result<ModelConfig> {
        let config = ModelConfig {
            d_model: self.d_model,
            n_layers: self.n_layers,
            vocab_size: byte_tokenizer::VOCAB.div_ceil(64) * 64,
            attention_n_heads: self.n_heads,
            attention_n_kv_heads: self.n_kv_heads,
            activation_hidden_dim: 4 * self.d_model,
            max_seq_len: self.seq,
            norm_eps: 1e-6,
            position_emb_theta: 10000.0,
            relora: self.relora.then(|| ReloraConfig {
                target_modules: vec!["attention".into(), "swiglu".into()],
                reset_frequency: self.relora_reset_every,
                r: self.relora_r,
                lora_alpha: 2.0 * self.relora_r as f64,
                lora_dropout: 0.1,
                ..ReloraConfig::default()
            }),
        };
        config.validate()?;
        if self.batch == 0 || self.steps == 0 || !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::Invalid(
                "the demo needs batch >= 1, steps >= 1 and a positive learning rate".into(),
            ));
        }
        Ok(config)
    }

    /// Warmup steps: `warmup_steps`, else a tenth of `steps` clamped to 1..=20 (the page and
    /// `wgbench demo` both rely on this rule, so their runs match).
    pub fn warmup(&self) -> u64 {
        self.warmup_steps.unwrap_or((self.steps / 10).clamp(1, 20))
    }

    /// The JSON form of the options (what the page sends).
    pub fn from_json(text: &str) -> Result<DemoOptions> {
        serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("demo options: {e} (see DemoOptions)")))
    }
}

/// Context windows of held-out text scored by [`DemoSession::heldout_loss`] at most.
pub const HELDOUT_WINDOWS: usize = 32;

/// One step's outcome as the page plots it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StepPoint {
    pub step: u64,
    pub loss: f32,
    pub grad_norm: f32,
    pub lr: f64,
    /// The step began with ReLoRA's merge-and-reset.
    pub reset: bool,
}

/// A live training session on one text.
pub struct DemoSession {
    options: DemoOptions,
    config: ModelConfig,
    train: TrainingStep,
    /// A batch-1 plain copy of the model for sampling and held-out scoring.
    sampler: Decoder,
    /// Generation against a KV cache, reading the sampler's weights.
    cache: CachedDecoder,
    sampler_step: Option<u64>,
    tokens: Vec<u32>,
    heldout: Vec<u32>,
    rng: Rng,
    step: u64,
    metrics: MetricsPlans,
}

impl DemoSession {
    /// Tokenize `text` (bytes), hold out its last 10% when long enough, and build and
    /// initialise the model.
    pub fn new(gpu: &Gpu, text: &str, options: DemoOptions) -> Result<DemoSession> {
        let config = options.model_config()?;
        let seq = options.seq;
        let mut tokens = byte_tokenizer::encode(text);
        let need = 2 * (seq + 1);
        if tokens.len() < need {
            return Err(Error::Invalid(format!(
                "the text has {} bytes; training windows of {} need at least {need}: paste a \
                 longer text",
                tokens.len(),
                seq + 1
            )));
        }
        let held = tokens.len() / 10;
        let heldout = if tokens.len() - held >= need && held > seq + 1 {
            tokens.split_off(tokens.len() - held)
        } else {
            Vec::new()
        };
        let model = Decoder::new(gpu, &config, options.batch, seq)?;
        model.init_params(gpu, options.seed)?;
        let adamw = AdamWConfig {
            lr: options.lr,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        };
        let schedule = LrSchedule {
            schedule: if options.relora {
                Schedule::ReloraJaggedCosine
            } else {
                Schedule::Cosine
            },
            lr: options.lr,
            warmup_steps: options.warmup(),
            max_steps: options.steps,
            min_lr_ratio: 0.1,
            restart_every: if options.relora {
                options.relora_reset_every
            } else {
                0
            },
            restart_warmup_steps: options.warmup().min(options.relora_reset_every / 4),
        };
        let train = TrainingStep::new(gpu, model, adamw, schedule, options.seed, 1)?;
        let mut plain = config.clone();
        plain.relora = None;
        let sampler = Decoder::for_generation(gpu, &plain, seq)?;
        let cache = CachedDecoder::new(gpu, &sampler, seq)?;
        Ok(DemoSession {
            rng: Rng::new(options.seed ^ 0x5eed),
            options,
            config,
            train,
            sampler,
            cache,
            sampler_step: None,
            tokens,
            heldout,
            step: 0,
            metrics: MetricsPlans::default(),
        })
    }

    pub fn options(&self) -> &DemoOptions {
        &self.options
    }

    /// The live model (for ReLoRA, with its adapters).
    pub fn model(&self) -> &Decoder {
        &self.train.model
    }

    /// The trained model's config (with its `relora` block in ReLoRA mode).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Optimizer steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Token ids used for training and held out.
    pub fn token_counts(&self) -> (usize, usize) {
        (self.tokens.len(), self.heldout.len())
    }

    /// Parameters trained (LoRA's A and B and the unwrapped weights in ReLoRA mode) and in all.
    pub fn parameter_counts(&self) -> (usize, usize) {
        let params = self.train.model.params();
        let trainable = params
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.value.numel())
            .sum();
        let total = params.iter().map(|p| p.value.numel()).sum();
        (trainable, total)
    }

    /// Tokens per optimizer step.
    pub fn tokens_per_step(&self) -> usize {
        self.options.batch * self.options.seq
    }

    /// A batch of random windows of the training text.
    fn next_batch(&mut self) -> Vec<u32> {
        let window = self.options.seq + 1;
        let starts = (self.tokens.len() - window + 1) as u64;
        let mut out = Vec::with_capacity(self.options.batch * window);
        for _ in 0..self.options.batch {
            let s = (self.rng.next_u64() % starts) as usize;
            out.extend_from_slice(&self.tokens[s..s + window]);
        }
        out
    }

    /// Run `steps` optimizer steps and wait for their losses.
    pub async fn train(&mut self, gpu: &Gpu, steps: u32) -> Result<Vec<StepPoint>> {
        let mut sent = Vec::with_capacity(steps as usize);
        for _ in 0..steps {
            let batch = self.next_batch();
            let mut batch = Some(batch);
            let s = self.train.submit(gpu, self.step, || {
                batch
                    .take()
                    .ok_or_else(|| Error::Invalid("one micro-batch per step".into()))
            })?;
            self.step = s.step;
            sent.push(s);
        }
        let values = self.train.readback.finish(gpu).await?;
        gpu.check_errors()?;
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let s = sent.iter().find(|s| s.step == v.step);
            if !v.loss.is_finite() {
                return Err(Error::Invalid(format!(
                    "the loss became {} at step {}: lower the learning rate",
                    v.loss, v.step
                )));
            }
            out.push(StepPoint {
                step: v.step,
                loss: v.loss,
                grad_norm: v.grad_norm,
                lr: s.map_or(f64::NAN, |s| s.lr),
                reset: s.is_some_and(|s| s.reset),
            });
        }
        Ok(out)
    }

    /// The weights as a plain pico-decoder: in ReLoRA mode every wrapped weight is the
    /// effective `W + s·B·A` (computed on the device), adapters dropped. In pico's order.
    pub async fn merged_params(&self, gpu: &Gpu) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        let mut out = Vec::new();
        for spec in self.sampler.config.param_specs() {
            let m = model_matrix_or_vector(gpu, &self.train.model, &spec.name)?;
            out.push((spec.name, spec.shape, m.read_f32(gpu).await?));
        }
        Ok(out)
    }

    /// Bring the batch-1 sampler up to the current weights (once per step).
    async fn sync_sampler(&mut self, gpu: &Gpu) -> Result<()> {
        if self.sampler_step == Some(self.step) {
            return Ok(());
        }
        let params = self.merged_params(gpu).await?;
        self.sampler.load_params(gpu, |name| {
            params
                .iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, _, v)| v.as_slice())
        })?;
        self.sampler_step = Some(self.step);
        Ok(())
    }

    /// Continue `prompt` (an empty prompt starts from end-of-text) with the current model.
    pub async fn generate(
        &mut self,
        gpu: &Gpu,
        prompt: &str,
        options: &SampleOptions,
    ) -> Result<String> {
        self.sync_sampler(gpu).await?;
        let mut ids = vec![EOS_ID];
        ids.extend(byte_tokenizer::encode(prompt));
        let out = generate_cached(gpu, &mut self.cache, &ids, Some(EOS_ID), options).await?;
        Ok(byte_tokenizer::decode(&out))
    }

    /// Mean loss (nats per byte) on the held-out tenth of the text (its first
    /// [`HELDOUT_WINDOWS`] context windows, so a long text does not stall the page), if
    /// there is one.
    pub async fn heldout_loss(&mut self, gpu: &Gpu) -> Result<Option<f64>> {
        if self.heldout.is_empty() {
            return Ok(None);
        }
        self.sync_sampler(gpu).await?;
        let n = self
            .heldout
            .len()
            .min(HELDOUT_WINDOWS * self.options.seq + 1);
        let report = perplexity(gpu, &self.sampler, &self.heldout[..n]).await?;
        Ok(Some(report.mean_nll))
    }

    /// PER, condition number and norms of `matrix` as the model has it now (ReLoRA: the
    /// effective weight): a 2-D parameter name or an OV-circuit name; for
    /// `layers.N.ov_circuit` the mean over the layer's per-head circuits
    /// (`layers.N.ov_circuit.weights.head_mean`).
    pub async fn matrix_metrics(&mut self, gpu: &Gpu, matrix: &str) -> Result<MatrixMetrics> {
        let model = &self.train.model;
        let names = [matrix.to_string()];
        let mut measured = measure_matrices(gpu, &mut self.metrics, &model.config, &names, |n| {
            model_matrix(gpu, model, n, false)
        })
        .await?;
        measured
            .pop()
            .map(|(_, m)| m)
            .ok_or_else(|| Error::Invalid(format!("nothing to measure in {matrix}")))
    }

    /// The current model as a pico checkpoint directory `dir` packed in a tar archive:
    /// `config.json`, `model.safetensors` (plain weights, ReLoRA merged) and the byte-level
    /// `tokenizer.json`, dated `mtime` (seconds since the epoch). `tar xf` it, then
    /// `wgtrain eval --checkpoint dir`.
    pub async fn checkpoint_tar(&self, gpu: &Gpu, dir: &str, mtime: u64) -> Result<Vec<u8>> {
        let params = self.merged_params(gpu).await?;
        let tensors: Vec<(&str, &[usize], &[f32])> = params
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        let mut files = checkpoint_files(&self.sampler.config, &tensors)?;
        files.push((
            "tokenizer.json",
            byte_tokenizer::tokenizer_json().into_bytes(),
        ));
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
        archive::tar(dir, &refs, mtime)
    }
}

/// A parameter as the plain model sees it: 2-D weights through [`model_matrix`] (merging
/// ReLoRA's adapters), vectors (norm weights) as they are.
fn model_matrix_or_vector(gpu: &Gpu, model: &Decoder, name: &str) -> Result<crate::gpu::Tensor> {
    let p = model
        .param(name)
        .ok_or_else(|| Error::Invalid(format!("the model has no parameter {name}")))?;
    if p.value.shape().len() == 2 {
        model_matrix(gpu, model, name, false)
    } else {
        p.value.reshaped(p.value.shape())
    }
}
