//! The GPU context: one adapter, one device and queue, the limits we plan against, and a
//! cache of compiled pipelines.

use super::backend::{backend_of, Backend};
use super::shaders::ShaderSource;
use super::tuning::{Tuning, TuningStore};
use crate::error::{Error, Result};
use crate::formulas::kernels::KernelPins;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How to open the GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub backend: Backend,
    /// Pretend the adapter's `max_storage_buffer_binding_size` is this many bytes (never more
    /// than the real one). Tests use it to exercise tensors stored in pieces on small shapes.
    pub max_binding_bytes: Option<u64>,
    /// Pretend the adapter allows at most this many workgroups per dispatch dimension.
    pub max_workgroups_per_dim: Option<u32>,
    /// The memory the adapter holds, in bytes, as the user states it (`--memory-gib`): wgpu
    /// reports none for GPUs. Runs whose planned memory is larger are refused. Also how tests
    /// provoke the refusal with a lowered limit.
    pub memory_bytes: Option<u64>,
    /// Which of the machine's adapters to open.
    pub adapter: AdapterPick,
    /// Kernel variants pinned for every op on this device (`--kernel`); `Auto` by default.
    pub kernels: KernelPins,
    /// How `Auto` kernels are chosen: measured (the default) or by a fixed rule.
    pub tuning: Tuning,
}

/// The adapter to open among those of the chosen backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdapterPick {
    /// The best one (discrete GPUs first, then integrated, virtual, CPU).
    #[default]
    Best,
    /// The N-th (from 0) of the adapters of the best one's kind (`--device N`); an error if
    /// there are fewer.
    Nth(usize),
    /// A data-parallel rank's adapter: its local rank among the best one's kind, wrapping
    /// around when the machine has fewer adapters than ranks.
    LocalRank(usize),
}

/// What `wgtrain devices` shows about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub name: String,
    /// The PCI vendor id (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel, 0x10005 Mesa), or 0.
    pub vendor: u32,
    pub backend: &'static str,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub subgroup_sizes: (u32, u32),
}

impl AdapterReport {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterReport {
            name: info.name.clone(),
            vendor: info.vendor,
            backend: backend_of(info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            limits: adapter.limits(),
            features: adapter.features(),
            subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
        }
    }

    /// The report as the lines `wgtrain devices` prints.
    pub fn describe(&self) -> String {
        let l = &self.limits;
        let has = |f: wgpu::Features| {
            if self.features.contains(f) {
                "yes"
            } else {
                "no"
            }
        };
        let mib = |b: u64| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0));
        format!(
            "{name}\n  backend: {backend}, type: {ty}, driver: {driver} {info}\n  \
             max storage binding: {bind}, max buffer: {buf}\n  \
             workgroup storage: {wgs} B, invocations per workgroup: {inv}, workgroups per dimension: {dim}\n  \
             subgroup sizes: {smin}..{smax} (subgroups: {sub}), shader-f16: {f16}, timestamp queries: {ts}",
            name = self.name,
            backend = self.backend,
            ty = self.device_type,
            driver = self.driver,
            info = self.driver_info,
            bind = mib(l.max_storage_buffer_binding_size),
            buf = mib(l.max_buffer_size),
            wgs = l.max_compute_workgroup_storage_size,
            inv = l.max_compute_invocations_per_workgroup,
            dim = l.max_compute_workgroups_per_dimension,
            smin = self.subgroup_sizes.0,
            smax = self.subgroup_sizes.1,
            sub = has(wgpu::Features::SUBGROUP),
            f16 = has(wgpu::Features::SHADER_F16),
            ts = has(wgpu::Features::TIMESTAMP_QUERY),
        )
    }
}

/// Every adapter wgpu can see for `backend` (all backends for `auto`).
pub async fn list_adapters(backend: Backend) -> Result<Vec<AdapterReport>> {
    check_compiled_in(backend)?;
    let instance = make_instance(backend);
    Ok(enumerate(&instance, backend)
        .await
        .iter()
        .map(AdapterReport::of)
        .collect())
}

fn make_instance(backend: Backend) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backend.wgpu_backends();
    wgpu::Instance::new(desc)
}

fn check_compiled_in(backend: Backend) -> Result<()> {
    if backend.compiled_in() {
        Ok(())
    } else {
        Err(Error::NoAdapter(format!(
            "the {backend} backend is not available on this platform: {}",
            backend.install_hint()
        )))
    }
}

async fn enumerate(instance: &wgpu::Instance, backend: Backend) -> Vec<wgpu::Adapter> {
    let mut adapters = instance.enumerate_adapters(backend.wgpu_backends()).await;
    if adapters.is_empty() {
        // The browser backend does not enumerate; it hands out one adapter on request.
        let opts = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        if let Ok(a) = instance.request_adapter(&opts).await {
            adapters.push(a);
        }
    }
    adapters
}

/// Lower is better: discrete GPUs first, software renderers last; native APIs before GL.
/// The adapter `choice` names among `ranked` (sorted best first, not empty): the N-th of
/// those of the same backend and device type as the best.
fn pick(ranked: Vec<wgpu::Adapter>, choice: AdapterPick) -> Result<wgpu::Adapter> {
    let kind = |a: &wgpu::Adapter| {
        let i = a.get_info();
        (i.backend, i.device_type)
    };
    let best = kind(&ranked[0]);
    let mut same: Vec<wgpu::Adapter> = ranked.into_iter().filter(|a| kind(a) == best).collect();
    let n = same.len();
    let index = match choice {
        AdapterPick::Best => 0,
        AdapterPick::LocalRank(r) => r % n,
        AdapterPick::Nth(i) if i < n => i,
        AdapterPick::Nth(i) => {
            let names: Vec<String> = same.iter().map(|a| a.get_info().name).collect();
            return Err(Error::NoAdapter(format!(
                "--device {i}: this machine has {n} adapter(s) of its best kind ({:?} on {:?}): \
                 {}; give --device 0..{}",
                best.1,
                best.0,
                names.join(", "),
                n - 1
            )));
        }
    };
    Ok(same.swap_remove(index))
}

fn adapter_rank(adapter: &wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Gl => 1,
        _ => 0,
    };
    (ty, api)
}

/// The features we use when present; none of them is required.
fn wanted_features() -> wgpu::Features {
    wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP
}

/// One open GPU: the device everything in wgtrain runs on.
/// How a device-lost report starts in the error sink.
const DEVICE_LOST: &str = "the GPU device was lost";

/// A compiled pipeline's identity: shader name (file and epilogue), entry point, constants (`NAME=value,...`).
type PipelineKey = (&'static str, &'static str, String);

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterReport,
    /// Largest storage binding, in bytes, that tensors are planned against.
    binding_limit: u64,
    workgroups_limit: u32,
    memory_bytes: Option<u64>,
    errors: Arc<Mutex<Vec<String>>>,
    kernels: KernelPins,
    tuning: TuningStore,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
}

impl Gpu {
    /// Open the best adapter for `options.backend`, requesting the limits the adapter offers.
    pub async fn new(options: GpuOptions) -> Result<Gpu> {
        let backend = options.backend;
        check_compiled_in(backend)?;
        let instance = make_instance(backend);
        let mut adapters = enumerate(&instance, backend).await;
        adapters.sort_by_key(adapter_rank);
        if adapters.is_empty() {
            return Err(Error::NoAdapter(format!(
                "no GPU adapter found for backend '{backend}': {}",
                backend.install_hint()
            )));
        }
        let adapter = pick(adapters, options.adapter)?;
        let report = AdapterReport::of(&adapter);
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: adapter.features() & wanted_features(),
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            adapter
                .request_device(&desc)
                .await
                .map_err(|e| Error::DeviceRequest {
                    adapter: report.name.clone(),
                    reason: e.to_string(),
                })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("wgpu: {e}");
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(e.to_string());
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            // Destroyed on purpose (dropping the Gpu) is not a loss worth reporting.
            if reason != wgpu::DeviceLostReason::Destroyed || !message.is_empty() {
                log::error!("wgpu: device lost ({reason:?}): {message}");
            }
            sink.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{DEVICE_LOST}: {reason:?} {message}"));
        });
        let limits = device.limits();
        let real_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let binding_limit = options
            .max_binding_bytes
            .map_or(real_binding, |b| b.min(real_binding))
            .max(4);
        let workgroups_limit = options
            .max_workgroups_per_dim
            .map_or(limits.max_compute_workgroups_per_dimension, |w| {
                w.min(limits.max_compute_workgroups_per_dimension)
            })
            .max(1);
        let sources: Vec<&str> = super::shaders::ALL.iter().map(|s| s.code).collect();
        let tuning = TuningStore::open(
            format!("{} ({})", report.name, report.backend),
            format!("{} {}", report.driver, report.driver_info),
            options.tuning,
            &sources,
        );
        Ok(Gpu {
            device,
            queue,
            adapter: report,
            binding_limit,
            workgroups_limit,
            memory_bytes: options.memory_bytes,
            errors,
            kernels: options.kernels,
            tuning,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// [`Gpu::new`], blocking until the device is open (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(options: GpuOptions) -> Result<Gpu> {
        pollster::block_on(Self::new(options))
    }

    /// Largest storage binding in bytes that tensors are split against.
    pub fn binding_limit(&self) -> u64 {
        self.binding_limit
    }

    pub fn workgroups_limit(&self) -> u32 {
        self.workgroups_limit
    }

    /// Whether the adapter's memory was stated ([`GpuOptions::memory_bytes`]).
    pub fn memory_stated(&self) -> bool {
        self.memory_bytes.is_some()
    }

    /// The memory a plan may use, in bytes, when known: what the user stated
    /// ([`GpuOptions::memory_bytes`]), else for a CPU adapter (lavapipe, llvmpipe, WARP) the
    /// machine's memory. `None` for a GPU without a stated size (wgpu reports none).
    pub fn memory_budget(&self) -> Option<u64> {
        if self.memory_bytes.is_some() {
            return self.memory_bytes;
        }
        if !self.is_cpu() {
            return None;
        }
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb: u64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// The kernel variants pinned for this device (`Auto` where none is).
    pub fn kernels(&self) -> KernelPins {
        self.kernels
    }

    /// The kernel choices measured on this adapter.
    pub fn tuning(&self) -> &TuningStore {
        &self.tuning
    }

    /// True for software adapters (lavapipe, SwiftShader, WARP), where kernels tuned for CPUs win.
    pub fn is_cpu(&self) -> bool {
        self.adapter.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }

    /// Spread `total` workgroups over x, y and z so no dimension exceeds the adapter's limit.
    /// Kernels rebuild the linear index as `id.x + groups_x * (id.y + groups_y * id.z)` and
    /// skip indices at or past `total`.
    pub fn grid(&self, total: u32) -> Result<[u32; 3]> {
        let lim = self.workgroups_limit;
        let total = total.max(1);
        let x = total.min(lim);
        let y = total.div_ceil(x).min(lim);
        let z = total.div_ceil(x * y);
        if z > lim {
            return Err(Error::TooLarge {
                detail: format!("{total} workgroups exceed the adapter's dispatch limits"),
            });
        }
        Ok([x, y, z])
    }

    /// The compute pipeline for `entry` in `shader`, compiled once and cached.
    pub fn pipeline(
        &self,
        shader: &ShaderSource,
        entry: &'static str,
    ) -> Arc<wgpu::ComputePipeline> {
        self.pipeline_with(shader, entry, &[])
    }

    /// As [`Gpu::pipeline`], with values for the shader's `override` constants (one pipeline
    /// per set of values): how a kernel gets loop bounds the compiler can unroll.
    pub fn pipeline_with(
        &self,
        shader: &ShaderSource,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Arc<wgpu::ComputePipeline> {
        let named: Vec<String> = constants.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let key = (shader.name, entry, named.join(","));
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return p.clone();
        }
        let mut modules = self.modules.lock().unwrap();
        let module = modules.entry(shader.name).or_insert_with(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(shader.name),
                source: wgpu::ShaderSource::Wgsl(shader.code.into()),
            };
            // Bounds checks stay. The loop-bounding counters wgpu would add to every loop go:
            // they hide loop trip counts from the driver's compiler, which then cannot unroll
            // the short constant loops over a row or keep the row in registers (attention's
            // backward ran 2-3x slower on lavapipe with them). They exist against infinite
            // loops in untrusted shaders; every loop in shaders/ has a bound (a counter
            // against a uniform or constant limit, or a break at a fixed count).
            let checks = wgpu::ShaderRuntimeChecks {
                force_loop_bounding: false,
                ..wgpu::ShaderRuntimeChecks::checked()
            };
            // SAFETY: the only check turned off is loop bounding, and no loop in our shaders
            // can run forever (see above).
            unsafe { self.device.create_shader_module_trusted(desc, checks) }
        });
        // Pipeline compilation can dominate a first run (Mesa's GL compiles at the first
        // dispatch): logged.
        #[cfg(not(target_arch = "wasm32"))]
        let started = std::time::Instant::now();
        let pipeline = Arc::new(self.device.create_compute_pipeline(
            &wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    // No zeroing of `var<workgroup>` memory: in every shader, each element an
                    // invocation reads was written earlier in the same dispatch (checked shader
                    // by shader on 2026-12-04; a new shader must keep it so). naga's GLSL
                    // zeroes it from invocation 0 with one array constructor per variable
                    // (`float[2048](0.0, ...)`), and llvmpipe's GL driver, which splits
                    // barrier-using shaders into LLVM coroutines, then took minutes per
                    // pipeline on a cold shader cache (BENCHMARKS.md, "GL's slow first run").
                    // Browsers zero it regardless.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            },
        ));
        #[cfg(not(target_arch = "wasm32"))]
        log::info!(
            "pipeline {}:{entry} {} compiled in {:.3} s",
            shader.name,
            key.2,
            started.elapsed().as_secs_f64()
        );
        self.pipelines.lock().unwrap().insert(key, pipeline.clone());
        pipeline
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    pub fn submit(&self, encoder: wgpu::CommandEncoder) -> wgpu::SubmissionIndex {
        self.queue.submit([encoder.finish()])
    }

    /// Drive the device until queued work and map callbacks have run. A no-op in the
    /// browser, where the event loop does this.
    pub fn poll_wait(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }

    /// Wait until all submitted work has finished, then report any GPU error seen so far.
    pub async fn finish(&self) -> Result<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.poll_wait();
        rx.await
            .map_err(|_| Error::Readback("the device was lost".into()))?;
        self.check_errors()
    }

    /// Blocking [`Gpu::finish`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn finish_blocking(&self) -> Result<()> {
        pollster::block_on(self.finish())
    }

    /// Turn errors wgpu reported asynchronously (validation, out of memory) into a Result.
    pub fn check_errors(&self) -> Result<()> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let all = errors.join("; ");
        errors.clear();
        if all.contains(DEVICE_LOST) {
            Err(Error::DeviceLost(all))
        } else if all.to_lowercase().contains("out of memory") {
            Err(Error::OutOfMemory {
                what: "GPU buffers".into(),
                reason: all,
            })
        } else {
            Err(Error::Invalid(format!("GPU error: {all}")))
        }
    }
}
