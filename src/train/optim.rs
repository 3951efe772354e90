//! The optimizer on the device: a fused AdamW update per parameter piece, the global gradient
//! norm (for logging and optional clipping), and a non-blocking readback of per-step scalars.
//!
//! [`AdamW`] follows `torch.optim.AdamW` exactly (decoupled weight decay, bias corrections
//! with Adam's step `t` counted from 1):
//!
//! ```text
//! g = grad * grad_scale * clip          clip = min(1, max_norm / (norm + 1e-6)), or 1
//! p = p * (1 - lr * weight_decay)
//! m = m + (1 - beta1) (g - m)            (= beta1 m + (1 - beta1) g)
//! v = beta2 v + (1 - beta2) g^2
//! p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```
//!
//! `norm` is the global L2 norm of all (scaled) gradients, reduced on the device in a fixed
//! order (per-piece partial sums of squares, tensor by tensor, then one total; no atomics), so
//! it is bitwise reproducible on a given adapter. Clipping reads it from the device buffer:
//! there is no host round trip. The gradients themselves are left as they are (torch's
//! `clip_grad_norm_` scales them in place; here the scale is applied inside the update).
//!
//! **Per-step values.** The learning rate, `t`, the bias corrections and `grad_scale` live in
//! one small uniform buffer allocated in [`AdamW::new`]. [`AdamW::write_step`] (called by
//! [`AdamW::record_step`]) updates it with `queue.write_buffer`, which wgpu stages and applies
//! at the start of the next `queue.submit`, before that submission's command buffers run, and
//! after every earlier submission. Hence: **record at most one optimizer step per submission**
//! and submit it before writing the next step's values. Two steps recorded into one
//! submission would both see the values written last.

pub use super::readback::{NonFinite, StepReadback, StepValues};
use crate::error::{Error, Result};
use crate::gpu::shaders::ADAMW;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::model::decoder::Param;

/// Hyper-parameters of [`AdamW`]; the defaults are `torch.optim.AdamW`'s (and pico's, which
/// sets only `lr`), with clipping off as in pico.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    /// The base learning rate. [`AdamW::record_step`] takes each step's rate explicitly (from
    /// a schedule); this is what callers without a schedule pass.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay, applied to every parameter given to [`AdamW::new`].
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (`None`: no clipping).
    pub max_grad_norm: Option<f64>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            max_grad_norm: None,
        }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(format!("AdamW: {what}")));
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad(&format!(
                "betas must lie in [0, 1), got ({}, {})",
                self.beta1, self.beta2
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(&format!("eps must be positive, got {}", self.eps));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(&format!(
                "weight_decay must not be negative, got {}",
                self.weight_decay
            ));
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(&format!("lr must not be negative, got {}", self.lr));
        }
        if let Some(n) = self.max_grad_norm {
            if !(n.is_finite() && n > 0.0) {
                return bad(&format!("max_grad_norm must be positive, got {n}"));
            }
        }
        Ok(())
    }
}

/// Per-dispatch parameters (binding 0 of every kernel in adamw.wgsl).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    groups_x: u32,
    groups_y: u32,
    offset: u32,
}

/// The per-step values (binding 1), rewritten before each step's submission.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct StepUniform {
    decay: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    eps: f32,
    step_size: f32,
    bc2_sqrt: f32,
    max_norm: f32,
    grad_scale: f32,
    lr: f32,
    t: u32,
    pad: u32,
}

/// Elements one workgroup of `grad_sumsq_partial` reduces (CHUNK in adamw.wgsl).
const CHUNK: usize = 2048;
/// Lanes per workgroup of `adamw_step`.
const WG: usize = 256;

/// Adam's two moments for one parameter, shaped (and split in pieces) like it.
pub struct ParamState {
    /// The parameter's name; the moments are checkpointed as `m.<name>` and `v.<name>`.
    pub name: String,
    pub m: Tensor,
    pub v: Tensor,
}

/// Fused AdamW over a fixed set of parameters, planned once: the moments, the norm scratch
/// and every dispatch are allocated in [`AdamW::new`]; a step only writes 48 bytes of
/// per-step values and records the prepared dispatches.
pub struct AdamW {
    config: AdamWConfig,
    state: Vec<ParamState>,
    step_buffer: wgpu::Buffer,
    /// `[norm, non-finite flag]` (see adamw.wgsl).
    norm: Tensor,
    norm_dispatches: Vec<Dispatch>,
    update_dispatches: Vec<Dispatch>,
    _partials: wgpu::Buffer,
    /// The first partial (chunk) of each parameter's gradient, in order, with its name: what
    /// turns the device's non-finite flag into a tensor name.
    partial_owners: Vec<(usize, String)>,
    /// The zero bound as the loss when the caller gives none.
    _no_loss: Option<Tensor>,
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        detail: format!("{what} ({v}) does not fit the optimizer's 32-bit indices"),
    })
}

fn same_layout(a: &Tensor, b: &Tensor) -> bool {
    a.shape() == b.shape()
        && a.pieces().len() == b.pieces().len()
        && a.pieces()
            .iter()
            .zip(b.pieces())
            .all(|(x, y)| x.row_start == y.row_start && x.rows == y.rows)
}

/// Zeroed Adam moments for `p`, after checking that its value and gradient are f32 tensors
/// stored alike (the update binds them piece by piece together).
fn zero_moments(gpu: &Gpu, p: &Param) -> Result<ParamState> {
    let problem = |detail: String| Error::Shape {
        op: "AdamW",
        detail: format!("parameter {}: {detail}", p.name),
    };
    if p.value.dtype() != DType::F32 || p.grad.dtype() != DType::F32 {
        return Err(problem("value and gradient must be f32".into()));
    }
    if !same_layout(&p.value, &p.grad) {
        return Err(problem(format!(
            "value {:?} and gradient {:?} are not stored alike",
            p.value.shape(),
            p.grad.shape()
        )));
    }
    let m = Tensor::zeros(gpu, p.value.shape(), DType::F32)?;
    let v = Tensor::zeros(gpu, p.value.shape(), DType::F32)?;
    if !same_layout(&p.value, &m) {
        return Err(problem(
            "its pieces do not match a fresh tensor of its shape; create parameters \
             with Tensor::zeros on the same GPU"
                .into(),
        ));
    }
    Ok(ParamState {
        name: p.name.clone(),
        m,
        v,
    })
}

/// What [`plan_grad_norm`] planned.
struct NormPlan {
    dispatches: Vec<Dispatch>,
    partials: wgpu::Buffer,
    owners: Vec<(usize, String)>,
}

/// The global gradient norm in two passes: every gradient piece writes the sums of squares
/// of its chunks into its own range of a partials buffer, then one workgroup adds them all
/// in a fixed order into `norm[0]` (deterministic: no atomics) and flags a non-finite loss or
/// gradient in `norm[1]`.
fn plan_grad_norm(
    gpu: &Gpu,
    params: &[&Param],
    step_buffer: &wgpu::Buffer,
    norm: &Tensor,
    loss: &Tensor,
) -> Result<NormPlan> {
    // (gradient piece, its first partial, its chunks), for every non-empty piece.
    let mut plan = Vec::new();
    let mut partials = 0usize;
    let mut owners = Vec::with_capacity(params.len());
    for p in params {
        owners.push((partials, p.name.clone()));
        for piece in p.grad.pieces() {
            let n = piece.rows * p.grad.row_len();
            if n > 0 {
                let chunks = n.div_ceil(CHUNK);
                plan.push((piece, n, partials, chunks));
                partials += chunks;
            }
        }
    }
    let partials_buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("grad norm partials"),
        size: (partials.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let mut dispatches = Vec::with_capacity(plan.len() + 1);
    for (piece, n, offset, chunks) in plan {
        let grid = gpu.grid(u32_of(chunks, "gradient chunks")?)?;
        let p = Params {
            n: u32_of(n, "gradient piece size")?,
            groups_x: grid[0],
            groups_y: grid[1],
            offset: u32_of(offset, "gradient chunks")?,
        };
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &ADAMW,
            "grad_sumsq_partial",
            bytemuck::bytes_of(&p),
            &[(3, &piece.buffer), (7, &partials_buffer)],
            grid,
        ));
    }
    let p = Params {
        n: u32_of(partials, "gradient chunks")?,
        groups_x: 1,
        groups_y: 1,
        offset: 0,
    };
    dispatches.push(Dispatch::with_bindings(
        gpu,
        &ADAMW,
        "grad_norm_final",
        bytemuck::bytes_of(&p),
        &[
            (1, step_buffer),
            (7, &partials_buffer),
            (8, &norm.pieces()[0].buffer),
            (9, &loss.pieces()[0].buffer),
        ],
        [1, 1, 1],
    ));
    Ok(NormPlan {
        dispatches,
        partials: partials_buffer,
        owners,
    })
}

/// One fused AdamW update per piece of every parameter: value, gradient and both moments
/// are stored alike, so piece i of each goes together.
fn plan_updates(
    gpu: &Gpu,
    params: &[&Param],
    state: &[ParamState],
    step_buffer: &wgpu::Buffer,
    norm: &Tensor,
) -> Result<Vec<Dispatch>> {
    let norm_buf = &norm.pieces()[0].buffer;
    let mut dispatches = Vec::new();
    for (p, s) in params.iter().zip(state) {
        let row = p.value.row_len();
        let pieces = p
            .value
            .pieces()
            .iter()
            .zip(p.grad.pieces())
            .zip(s.m.pieces().iter().zip(s.v.pieces()));
        for ((value, grad), (m, v)) in pieces {
            let n = value.rows * row;
            if n == 0 {
                continue;
            }
            let grid = gpu.grid(u32_of(n.div_ceil(WG), "parameter piece size")?)?;
            let params = Params {
                n: u32_of(n, "parameter piece size")?,
                groups_x: grid[0],
                groups_y: grid[1],
                offset: 0,
            };
            dispatches.push(Dispatch::with_bindings(
                gpu,
                &ADAMW,
                "adamw_step",
                bytemuck::bytes_of(&params),
                &[
                    (1, step_buffer),
                    (2, &value.buffer),
                    (3, &grad.buffer),
                    (4, &m.buffer),
                    (5, &v.buffer),
                    (6, norm_buf),
                ],
                grid,
            ));
        }
    }
    Ok(dispatches)
}

impl AdamW {
    /// Plan AdamW for the trainable parameters among `params` (e.g. `decoder.params()`;
    /// frozen ones, the base weights under LoRA adapters, are skipped), with zeroed moments.
    pub fn new(gpu: &Gpu, params: &[Param], config: AdamWConfig) -> Result<AdamW> {
        Self::watching_loss(gpu, params, config, None)
    }

    /// [`AdamW::new`], also flagging a step whose `loss` (`[1]`, on the device) is not finite:
    /// such a step, like one with a non-finite gradient, applies no update.
    pub fn watching_loss(
        gpu: &Gpu,
        params: &[Param],
        config: AdamWConfig,
        loss: Option<&Tensor>,
    ) -> Result<AdamW> {
        config.validate()?;
        let params: Vec<&Param> = params.iter().filter(|p| p.trainable).collect();
        let step_buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("adamw step"),
            size: std::mem::size_of::<StepUniform>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let norm = Tensor::zeros(gpu, &[2], DType::F32)?;
        let state = params
            .iter()
            .map(|p| zero_moments(gpu, p))
            .collect::<Result<Vec<_>>>()?;
        let no_loss = match loss {
            Some(l) if l.dtype() == DType::F32 && l.numel() >= 1 => None,
            Some(l) => {
                return Err(Error::Shape {
                    op: "AdamW",
                    detail: format!("the watched loss must be an f32 [1], got {:?}", l.shape()),
                })
            }
            None => Some(Tensor::zeros(gpu, &[1], DType::F32)?),
        };
        let loss = loss.or(no_loss.as_ref()).expect("a loss or its stand-in");
        let norm_plan = plan_grad_norm(gpu, &params, &step_buffer, &norm, loss)?;
        let update_dispatches = plan_updates(gpu, &params, &state, &step_buffer, &norm)?;
        Ok(AdamW {
            config,
            state,
            step_buffer,
            norm,
            norm_dispatches: norm_plan.dispatches,
            update_dispatches,
            _partials: norm_plan.partials,
            partial_owners: norm_plan.owners,
            _no_loss: no_loss,
        })
    }

    /// What a step's non-finite flag names: the loss, or the first parameter (in
    /// [`AdamW::state`] order) whose gradient holds a NaN or Inf.
    pub fn nonfinite_source(&self, flag: NonFinite) -> Option<String> {
        match flag {
            NonFinite::None => None,
            NonFinite::Loss => Some("the loss".into()),
            NonFinite::Gradient { chunk } => {
                let owner = self
                    .partial_owners
                    .iter()
                    .rev()
                    .find(|(first, _)| *first <= chunk as usize)
                    .map_or("an unknown tensor", |(_, name)| name.as_str());
                Some(format!("the gradient of {owner}"))
            }
        }
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Write the values of Adam step `t` (1 for the first update) with learning rate `lr`
    /// into the step buffer. `grad_scale` multiplies every gradient before anything else
    /// (e.g. `1 / accumulation_steps`); the reported norm is that of the scaled gradients.
    /// Takes effect at the next `queue.submit` (see the module docs for the ordering).
    pub fn write_step(&self, gpu: &Gpu, lr: f32, t: u64, grad_scale: f32) -> Result<()> {
        if t == 0 {
            return Err(Error::Invalid(
                "AdamW: the step t counts from 1 (the first update is t = 1)".into(),
            ));
        }
        if !(lr.is_finite() && lr >= 0.0 && grad_scale.is_finite()) {
            return Err(Error::Invalid(format!(
                "AdamW: lr ({lr}) must be a non-negative number and grad_scale ({grad_scale}) finite"
            )));
        }
        let c = &self.config;
        let lr64 = lr as f64;
        // Powers in f64 as torch does (`1 - beta ** step` on Python floats).
        let bc1 = 1.0 - c.beta1.powf(t as f64);
        let bc2 = 1.0 - c.beta2.powf(t as f64);
        let u = StepUniform {
            decay: (1.0 - lr64 * c.weight_decay) as f32,
            one_minus_beta1: (1.0 - c.beta1) as f32,
            beta2: c.beta2 as f32,
            one_minus_beta2: (1.0 - c.beta2) as f32,
            eps: c.eps as f32,
            step_size: (lr64 / bc1) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            max_norm: c.max_grad_norm.unwrap_or(0.0) as f32,
            grad_scale,
            lr,
            t: t.min(u32::MAX as u64) as u32,
            pad: 0,
        };
        gpu.queue
            .write_buffer(&self.step_buffer, 0, bytemuck::bytes_of(&u));
        Ok(())
    }

    /// Record the global gradient norm and the update of every parameter into `pass`, using
    /// the values of the last [`AdamW::write_step`].
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in self.norm_dispatches.iter().chain(&self.update_dispatches) {
            d.record(pass);
        }
    }

    /// One optimizer step `t` (from 1) at learning rate `lr`: write the step values and record
    /// the norm and the update in a compute pass of `encoder`. Submit `encoder` before the
    /// next call (one step per submission; see the module docs).
    pub fn record_step(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        lr: f32,
        t: u64,
    ) -> Result<()> {
        self.record_step_scaled(gpu, encoder, lr, t, 1.0)
    }

    /// [`AdamW::record_step`] with every gradient multiplied by `grad_scale` first.
    pub fn record_step_scaled(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        lr: f32,
        t: u64,
        grad_scale: f32,
    ) -> Result<()> {
        self.write_step(gpu, lr, t, grad_scale)?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("adamw"),
            timestamp_writes: None,
        });
        self.record(&mut pass);
        Ok(())
    }

    /// The global L2 norm of the (scaled) gradients of the last step, on the device, before
    /// clipping (what torch's `clip_grad_norm_` returns), then the step's non-finite flag:
    /// `[norm, flag]`.
    pub fn grad_norm(&self) -> &Tensor {
        &self.norm
    }

    /// The moments of every parameter, in the order given to [`AdamW::new`].
    pub fn state(&self) -> &[ParamState] {
        &self.state
    }

    /// The moments (m, v) of the parameter `name`.
    pub fn moments(&self, name: &str) -> Option<(&Tensor, &Tensor)> {
        self.state
            .iter()
            .find(|s| s.name == name)
            .map(|s| (&s.m, &s.v))
    }

    /// Every state tensor with its checkpoint name: `m.<param>`, `v.<param>`, parameter by
    /// parameter.
    pub fn state_tensors(&self) -> Vec<(String, &Tensor)> {
        self.state
            .iter()
            .flat_map(|s| {
                [
                    (format!("m.{}", s.name), &s.m),
                    (format!("v.{}", s.name), &s.v),
                ]
            })
            .collect()
    }

    /// GPU memory of the moments, in bytes.
    pub fn state_bytes(&self) -> u64 {
        self.state
            .iter()
            .map(|s| s.m.size_bytes() + s.v.size_bytes())
            .sum()
    }

    /// Zero every moment (queued into `encoder`).
    pub fn record_reset(&self, encoder: &mut wgpu::CommandEncoder) {
        for s in &self.state {
            for piece in s.m.pieces().iter().chain(s.v.pieces()) {
                encoder.clear_buffer(&piece.buffer, 0, None);
            }
        }
    }

    /// Download every state tensor: (name, shape, values) in [`AdamW::state_tensors`] order.
    pub async fn read_state(&self, gpu: &Gpu) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        let mut out = Vec::with_capacity(2 * self.state.len());
        for (name, t) in self.state_tensors() {
            out.push((name, t.shape().to_vec(), t.read_f32(gpu).await?));
        }
        Ok(out)
    }

    /// Upload every state tensor by name (`m.<param>`, `v.<param>`), e.g. from a checkpoint.
    /// All must be given, each with the parameter's number of elements.
    pub fn load_state<'a>(
        &self,
        gpu: &Gpu,
        mut get: impl FnMut(&str) -> Option<&'a [f32]>,
    ) -> Result<()> {
        for (name, t) in self.state_tensors() {
            let data = get(&name).ok_or_else(|| {
                Error::Invalid(format!("no value given for optimizer state {name}"))
            })?;
            t.write(gpu, bytemuck::cast_slice(data))?;
        }
        Ok(())
    }
}
