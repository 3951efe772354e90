//! Tensors: typed GPU storage with a shape. A tensor is viewed as a matrix of rows (all dims
//! but the last) by `row_len` (the last dim). When it is larger than the adapter's storage
//! binding limit it is stored as several buffers ("pieces"), each holding whole rows, so every
//! piece can be bound on its own; ops split their work along piece boundaries.

use super::context::Gpu;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    I32,
}

impl DType {
    pub fn size(self) -> usize {
        4
    }
}

/// One bindable buffer holding rows `row_start .. row_start + rows` of its tensor.
pub struct Piece {
    pub buffer: wgpu::Buffer,
    pub row_start: usize,
    pub rows: usize,
}

pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    pieces: Vec<Piece>,
}

impl Tensor {
    /// A zero-filled tensor.
    pub fn zeros(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let (rows, row_len) = matrix_view(shape);
        let row_bytes = (row_len * dtype.size()) as u64;
        let limit = gpu.binding_limit();
        if row_bytes > limit {
            return Err(Error::TooLarge {
                detail: format!(
                    "one row of a {shape:?} tensor is {row_bytes} bytes, above the binding limit \
                     of {limit} bytes"
                ),
            });
        }
        let rows_per_piece = limit
            .checked_div(row_bytes)
            .map_or(rows.max(1), |r| r as usize);
        let mut pieces = Vec::new();
        let mut row_start = 0;
        loop {
            let n = rows_per_piece.min(rows - row_start);
            // wgpu cannot bind an empty buffer; empty tensors get one word.
            let bytes = ((n as u64) * row_bytes).max(4);
            let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            pieces.push(Piece {
                buffer,
                row_start,
                rows: n,
            });
            row_start += n;
            if row_start >= rows {
                break;
            }
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            pieces,
        })
    }

    pub fn from_f32(gpu: &Gpu, shape: &[usize], data: &[f32]) -> Result<Tensor> {
        let t = Tensor::zeros(gpu, shape, DType::F32)?;
        t.write(gpu, bytemuck::cast_slice(data))?;
        Ok(t)
    }

    pub fn from_u32(gpu: &Gpu, shape: &[usize], data: &[u32]) -> Result<Tensor> {
        let t = Tensor::zeros(gpu, shape, DType::U32)?;
        t.write(gpu, bytemuck::cast_slice(data))?;
        Ok(t)
    }

    /// Overwrite the whole tensor with `bytes` (queued; visible to later submissions).
    pub fn write(&self, gpu: &Gpu, bytes: &[u8]) -> Result<()> {
        let expected = self.numel() * self.dtype.size();
        if bytes.len() != expected {
            return Err(Error::Shape {
                op: "tensor write",
                detail: format!(
                    "{} bytes given for a {:?} tensor of {expected} bytes",
                    bytes.len(),
                    self.shape
                ),
            });
        }
        let row_bytes = self.row_len() * self.dtype.size();
        for p in &self.pieces {
            let range = p.row_start * row_bytes..(p.row_start + p.rows) * row_bytes;
            if !range.is_empty() {
                gpu.queue.write_buffer(&p.buffer, 0, &bytes[range]);
            }
        }
        Ok(())
    }

    /// The same storage seen with another shape of as many elements: a view, no copy.
    /// Pieces must still hold whole rows of the new shape.
    pub fn reshaped(&self, shape: &[usize]) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel != self.numel() {
            return Err(Error::Shape {
                op: "reshape",
                detail: format!(
                    "{:?} has {} elements, not {numel} as {shape:?}",
                    self.shape,
                    self.numel()
                ),
            });
        }
        let old_row = self.row_len();
        let new_row = matrix_view(shape).1.max(1);
        let mut pieces = Vec::with_capacity(self.pieces.len());
        for p in &self.pieces {
            let (start, len) = (p.row_start * old_row, p.rows * old_row);
            if self.pieces.len() > 1 && (start % new_row != 0 || len % new_row != 0) {
                return Err(Error::Shape {
                    op: "reshape",
                    detail: format!("{shape:?} would split a row of a tensor stored in pieces"),
                });
            }
            pieces.push(Piece {
                buffer: p.buffer.clone(),
                row_start: start / new_row,
                rows: if self.pieces.len() > 1 {
                    len / new_row
                } else {
                    matrix_view(shape).0
                },
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: self.dtype,
            pieces,
        })
    }

    /// Bytes of GPU memory this tensor occupies.
    pub fn size_bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.buffer.size()).sum()
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of rows of the matrix view (product of all dims but the last).
    pub fn rows(&self) -> usize {
        matrix_view(&self.shape).0
    }

    /// Length of one row (the last dim; 1 for a 1-D tensor, so each element is a row).
    pub fn row_len(&self) -> usize {
        matrix_view(&self.shape).1
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The piece holding `row`, and the row's index inside it.
    pub fn piece_of_row(&self, row: usize) -> (&Piece, usize) {
        let i = self
            .pieces
            .partition_point(|p| p.row_start + p.rows <= row)
            .min(self.pieces.len() - 1);
        let p = &self.pieces[i];
        (p, row - p.row_start)
    }

    /// Row indices where a new piece starts (excluding 0).
    pub fn piece_starts(&self) -> Vec<usize> {
        self.pieces.iter().skip(1).map(|p| p.row_start).collect()
    }

    /// Download the raw bytes. Resolves once the GPU has copied them out; never blocks a
    /// browser's event loop (on native, it drives the device itself).
    pub async fn read_bytes(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        let row_bytes = (self.row_len() * self.dtype.size()) as u64;
        let mut encoder = gpu.encoder();
        let staging: Vec<(wgpu::Buffer, u64)> = self
            .pieces
            .iter()
            .map(|p| {
                let size = (p.rows as u64 * row_bytes).max(4);
                let s = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                encoder.copy_buffer_to_buffer(&p.buffer, 0, &s, 0, size);
                (s, p.rows as u64 * row_bytes)
            })
            .collect();
        gpu.submit(encoder);
        let mut waits = Vec::new();
        for (s, _) in &staging {
            let (tx, rx) = futures_channel::oneshot::channel();
            s.map_async(wgpu::MapMode::Read, .., move |r| {
                let _ = tx.send(r);
            });
            waits.push(rx);
        }
        gpu.poll_wait();
        let mut out = Vec::with_capacity(self.numel() * self.dtype.size());
        for ((s, used), rx) in staging.iter().zip(waits) {
            rx.await
                .map_err(|_| Error::Readback("the device was lost".into()))?
                .map_err(|e| Error::Readback(e.to_string()))?;
            {
                let view = s
                    .get_mapped_range(..)
                    .map_err(|e| Error::Readback(e.to_string()))?;
                out.extend_from_slice(&view[..*used as usize]);
            }
            s.unmap();
        }
        gpu.check_errors()?;
        Ok(out)
    }

    pub async fn read_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(gpu).await?))
    }

    pub async fn read_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(gpu).await?))
    }

    /// Blocking [`Tensor::read_u32`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        pollster::block_on(self.read_u32(gpu))
    }

    /// Blocking [`Tensor::read_f32`] (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec_f32(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        pollster::block_on(self.read_f32(gpu))
    }
}

fn matrix_view(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (*n, 1),
        [lead @ .., last] => (lead.iter().product(), *last),
    }
}
