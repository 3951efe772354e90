//! JavaScript bindings of [`wgtrain::demo::DemoSession`] on the browser's WebGPU: the page
//! (`www/`) opens a [`Demo`], starts a session on a text, and calls `train` in short chunks
//! so the event loop keeps running between them. Results cross as JSON strings; the
//! checkpoint as bytes.
//!
//! One operation runs at a time: a call made while another is still running is refused
//! with a "busy" error rather than queued (the page serialises its calls).

mod suite;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use wgtrain::demo::{DemoOptions, DemoSession};
use wgtrain::model::generate::SampleOptions;
use wgtrain::{Backend, Gpu, GpuOptions};

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn json(value: serde_json::Value) -> JsValue {
    JsValue::from_str(&value.to_string())
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// The demo's default options as JSON (the page fills its form from them).
#[wasm_bindgen(js_name = defaultOptions)]
pub fn default_options() -> String {
    serde_json::to_string(&DemoOptions::default()).expect("options serialize")
}

/// The session, lent out to one operation at a time: while an operation runs it holds the
/// session (taken out of the cell, never a borrow across an `await`) and `busy` is set.
#[derive(Default)]
struct Slot {
    session: RefCell<Option<DemoSession>>,
    busy: Cell<bool>,
}

const BUSY: &str = "the demo is busy with another operation; wait for it";

/// The open WebGPU device and the current training session.
#[wasm_bindgen]
pub struct Demo {
    gpu: Rc<Gpu>,
    slot: Rc<Slot>,
}

/// Run `op` on the session, refusing when there is none or another operation has it.
async fn with_session<T>(
    slot: &Slot,
    op: impl AsyncFnOnce(&mut DemoSession) -> wgtrain::Result<T>,
) -> Result<T, JsValue> {
    if slot.busy.get() {
        return Err(js_error(BUSY));
    }
    let mut session = slot
        .session
        .take()
        .ok_or_else(|| js_error("no training session: start one first"))?;
    slot.busy.set(true);
    let result = op(&mut session).await;
    slot.session.replace(Some(session));
    slot.busy.set(false);
    result.map_err(js_error)
}

#[wasm_bindgen]
impl Demo {
    /// Open the browser's WebGPU adapter; fails with what to enable when there is none.
    pub async fn open() -> Result<Demo, JsValue> {
        let gpu = Gpu::new(GpuOptions {
            backend: Backend::WebGpu,
            ..Default::default()
        })
        .await
        .map_err(|e| {
            js_error(format!(
                "{e}. This page needs WebGPU: use a recent Chrome or Edge (Linux: start it with \
                 --enable-unsafe-webgpu), Safari 26+ or Firefox 141+ on Windows, and check \
                 that hardware acceleration is on"
            ))
        })?;
        Ok(Demo {
            gpu: Rc::new(gpu),
            slot: Rc::new(Slot::default()),
        })
    }

    /// What the adapter is, as JSON.
    pub fn adapter(&self) -> String {
        let a = &self.gpu.adapter;
        serde_json::json!({
            "name": a.name,
            "backend": a.backend,
            "device_type": a.device_type,
            "driver": a.driver,
            "driver_info": a.driver_info,
            "max_storage_binding_mib": a.limits.max_storage_buffer_binding_size as f64 / 1048576.0,
            "max_workgroup_invocations": a.limits.max_compute_invocations_per_workgroup,
            "shader_f16": a.features.contains(wgpu::Features::SHADER_F16),
            "software": self.gpu.is_cpu(),
        })
        .to_string()
    }

    /// Start a new session on `text` with `options` (JSON, any subset of the defaults),
    /// replacing the current one. Returns a JSON summary of the model and data.
    pub fn start(&self, text: &str, options: &str) -> Result<String, JsValue> {
        let options = if options.trim().is_empty() {
            DemoOptions::default()
        } else {
            DemoOptions::from_json(options).map_err(js_error)?
        };
        if self.slot.busy.get() {
            return Err(js_error(BUSY));
        }
        // Free the old session's buffers before planning the new one.
        self.slot.session.replace(None);
        let session = DemoSession::new(&self.gpu, text, options).map_err(js_error)?;
        let (train_tokens, heldout_tokens) = session.token_counts();
        let (trainable, total) = session.parameter_counts();
        let summary = serde_json::json!({
            "config": session.config(),
            "options": session.options(),
            "train_tokens": train_tokens,
            "heldout_tokens": heldout_tokens,
            "trainable_params": trainable,
            "total_params": total,
            "tokens_per_step": session.tokens_per_step(),
        });
        self.slot.session.replace(Some(session));
        Ok(summary.to_string())
    }

    /// Run `steps` optimizer steps; resolves to a JSON array of
    /// `{step, loss, grad_norm, lr, reset}`.
    pub fn train(&self, steps: u32) -> js_sys::Promise {
        let (gpu, slot) = (self.gpu.clone(), self.slot.clone());
        future_to_promise(async move {
            let points = with_session(&slot, async |s| s.train(&gpu, steps).await).await?;
            Ok(json(serde_json::json!(points)))
        })
    }

    /// PER, condition number and norms of `matrix` (e.g. `layers.0.swiglu.w_2.weight` or
    /// `layers.0.ov_circuit`), as JSON.
    pub fn metrics(&self, matrix: String) -> js_sys::Promise {
        let (gpu, slot) = (self.gpu.clone(), self.slot.clone());
        future_to_promise(async move {
            let m = with_session(&slot, async |s| s.matrix_metrics(&gpu, &matrix).await).await?;
            Ok(json(serde_json::json!(m)))
        })
    }

    /// Mean held-out loss in nats per byte (JSON number, or null when nothing is held out).
    #[wasm_bindgen(js_name = heldoutLoss)]
    pub fn heldout_loss(&self) -> js_sys::Promise {
        let (gpu, slot) = (self.gpu.clone(), self.slot.clone());
        future_to_promise(async move {
            let loss = with_session(&slot, async |s| s.heldout_loss(&gpu).await).await?;
            Ok(json(serde_json::json!(loss)))
        })
    }

    /// Continue `prompt` with the current model; resolves to the new text.
    pub fn generate(
        &self,
        prompt: String,
        max_new_tokens: u32,
        temperature: f32,
        top_k: u32,
        seed: u32,
    ) -> js_sys::Promise {
        let (gpu, slot) = (self.gpu.clone(), self.slot.clone());
        let options = SampleOptions {
            max_new_tokens: max_new_tokens as usize,
            temperature: temperature.max(0.0),
            top_k: top_k as usize,
            seed: seed as u64,
        };
        future_to_promise(async move {
            let text =
                with_session(&slot, async |s| s.generate(&gpu, &prompt, &options).await).await?;
            Ok(JsValue::from_str(&text))
        })
    }

    /// The current model as a pico checkpoint directory `dir` in a tar archive (bytes).
    pub fn checkpoint(&self, dir: String) -> js_sys::Promise {
        let (gpu, slot) = (self.gpu.clone(), self.slot.clone());
        future_to_promise(async move {
            let now = (js_sys::Date::now() / 1000.0) as u64;
            let bytes =
                with_session(&slot, async |s| s.checkpoint_tar(&gpu, &dir, now).await).await?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// The benchmark suite's quick entries on this page's WebGPU (`wgbench suite --quick` in
    /// the browser), the demo session on `text`; resolves to the JSON record, whose host,
    /// commit and date the caller fills in. Replaces the current training session.
    pub fn suite(&self, text: String) -> js_sys::Promise {
        let (gpu, slot) = (self.gpu.clone(), self.slot.clone());
        future_to_promise(async move {
            if slot.busy.get() {
                return Err(js_error(BUSY));
            }
            slot.busy.set(true);
            slot.session.replace(None);
            let record = suite::run(&gpu, &text).await;
            slot.busy.set(false);
            serde_json::to_string(&record)
                .map(|s| JsValue::from_str(&s))
                .map_err(js_error)
        })
    }
}
