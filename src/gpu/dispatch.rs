//! A dispatch prepared once (pipeline, bind group, parameters, grid) and recorded many times.
//!
//! Binding convention for every kernel: `@binding(0)` is the uniform parameter block, then
//! the storage buffers in the order the kernel declares them.

use super::context::Gpu;
use super::shaders::ShaderSource;
use std::sync::Arc;
use wgpu::util::DeviceExt;

pub struct Dispatch {
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

impl Dispatch {
    /// A dispatch whose storage buffers take bindings 1, 2, ... in order.
    pub fn new(
        gpu: &Gpu,
        shader: &ShaderSource,
        entry: &'static str,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Dispatch {
        let numbered: Vec<(u32, &wgpu::Buffer)> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32 + 1, *b))
            .collect();
        Self::with_bindings(gpu, shader, entry, params, &numbered, workgroups)
    }

    /// A dispatch with explicit binding numbers, for entry points that use only some of the
    /// bindings their shader file declares.
    pub fn with_bindings(
        gpu: &Gpu,
        shader: &ShaderSource,
        entry: &'static str,
        params: &[u8],
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) -> Dispatch {
        Self::with_constants(gpu, shader, entry, &[], params, buffers, workgroups)
    }

    /// As [`Dispatch::with_bindings`], with values for the shader's `override` constants.
    pub fn with_constants(
        gpu: &Gpu,
        shader: &ShaderSource,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        params: &[u8],
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: [u32; 3],
    ) -> Dispatch {
        let pipeline = gpu.pipeline_with(shader, entry, constants);
        let uniform = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(entry),
                contents: params,
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(buffers.iter().map(|(binding, b)| wgpu::BindGroupEntry {
            binding: *binding,
            resource: b.as_entire_binding(),
        }));
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(entry),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            pipeline,
            bind_group,
            workgroups,
        }
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }
}

/// Record `dispatches` in order into one compute pass of `encoder`.
pub fn record_all(encoder: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: None,
        timestamp_writes: None,
    });
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// Record `dispatches` into a fresh encoder and submit (does not wait).
pub fn run_all(gpu: &Gpu, dispatches: &[Dispatch]) {
    let mut encoder = gpu.encoder();
    record_all(&mut encoder, dispatches);
    gpu.submit(encoder);
}
