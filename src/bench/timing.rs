//! The suite's timer: each timed run is its own submission, measured on the device by
//! timestamp queries around its passes where the adapter has them, and on the host (submit
//! to completion) otherwise.

use super::record::Timing;
use crate::gpu::DType;
use crate::{Gpu, Result, Tensor};
use std::time::Instant;

/// Where a [`Timer`]'s figures come from.
pub const GPU_TIMESTAMPS: &str = "gpu timestamps";
pub const WALL: &str = "wall";

pub struct Timer<'g> {
    gpu: &'g Gpu,
    queries: Option<Queries>,
}

struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: Tensor,
}

impl<'g> Timer<'g> {
    pub fn new(gpu: &'g Gpu) -> Result<Timer<'g>> {
        let has = gpu
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY);
        let queries = if has {
            Some(Queries {
                set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("suite timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                }),
                resolve: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("suite timestamps resolved"),
                    size: 16,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                readback: Tensor::zeros(gpu, &[4], DType::U32)?,
            })
        } else {
            None
        };
        Ok(Timer { gpu, queries })
    }

    /// `gpu timestamps` or `wall`: what [`Timer::measure`] reports.
    pub fn source(&self) -> &'static str {
        if self.queries.is_some() {
            GPU_TIMESTAMPS
        } else {
            WALL
        }
    }

    /// Run what `record` encodes once to warm up (pipelines compile, caches fill), then
    /// `repeats` times, one submission each.
    pub fn measure(
        &self,
        repeats: usize,
        record: &mut dyn FnMut(&mut wgpu::CommandEncoder),
    ) -> Result<Timing> {
        self.run_once(record)?;
        let mut samples = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            samples.push(self.run_once(record)?);
        }
        Ok(Timing::of(self.source(), &samples).expect("at least one sample"))
    }

    /// As [`Timer::measure`], for work recorded into one compute pass.
    pub fn measure_pass(
        &self,
        repeats: usize,
        record: &dyn Fn(&mut wgpu::ComputePass<'_>),
    ) -> Result<Timing> {
        self.measure(repeats, &mut |enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            record(&mut pass);
        })
    }

    fn run_once(&self, record: &mut dyn FnMut(&mut wgpu::CommandEncoder)) -> Result<f64> {
        let gpu = self.gpu;
        let mut enc = gpu.encoder();
        // Empty passes carry the timestamps, so any mix of passes and copies is spanned.
        let mark = |enc: &mut wgpu::CommandEncoder, q: &Queries, index: u32| {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &q.set,
                beginning_of_pass_write_index: Some(index),
                end_of_pass_write_index: None,
            };
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("suite timestamp"),
                timestamp_writes: Some(writes),
            });
        };
        if let Some(q) = &self.queries {
            mark(&mut enc, q, 0);
        }
        record(&mut enc);
        if let Some(q) = &self.queries {
            mark(&mut enc, q, 1);
            enc.resolve_query_set(&q.set, 0..2, &q.resolve, 0);
            enc.copy_buffer_to_buffer(&q.resolve, 0, &q.readback.pieces()[0].buffer, 0, 16);
        }
        let t0 = Instant::now();
        gpu.submit(enc);
        gpu.finish_blocking()?;
        let wall = t0.elapsed().as_secs_f64();
        let Some(q) = &self.queries else {
            return Ok(wall);
        };
        let w = q.readback.to_vec_u32(gpu)?;
        let (t0, t1) = (
            w[0] as u64 | (w[1] as u64) << 32,
            w[2] as u64 | (w[3] as u64) << 32,
        );
        let ns = t1.saturating_sub(t0) as f64 * gpu.queue.get_timestamp_period() as f64;
        Ok(ns * 1e-9)
    }
}

/// Wall time of `run` (which waits for the device itself): one warm-up, then `repeats` runs.
pub fn measure_wall(repeats: usize, run: &mut dyn FnMut() -> Result<()>) -> Result<Timing> {
    run()?;
    let mut samples = Vec::new();
    for _ in 0..repeats.max(1) {
        let t0 = Instant::now();
        run()?;
        samples.push(t0.elapsed().as_secs_f64());
    }
    Ok(Timing::of(WALL, &samples).expect("at least one sample"))
}
