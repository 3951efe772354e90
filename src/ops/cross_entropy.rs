//! Fused softmax cross-entropy over the vocabulary, forward and backward, on logits `[N, V]`
//! that may be stored in pieces (pico's `[tokens, 50304]` logits exceed one binding on many
//! adapters): one dispatch per piece. No ignore index: every row has a label.
//!
//! Forward gives each row's loss and logsumexp (kept for the backward); [`super::reduce::mean`]
//! turns the losses into the step's loss. Backward overwrites the logits with their gradient,
//! so the `[N, V]` matrix is never allocated twice.

use super::common::{grid_2d, to_u32, whole, whole_u32};
use crate::error::{Error, Result};
use crate::gpu::shaders::CROSS_ENTROPY;
use crate::gpu::{DType, Dispatch, Gpu, Piece, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    v: u32,
    row_start: u32,
    groups_x: u32,
    scale: f32,
    pad: [u32; 3],
}

/// Checks logits `[N, V]` against labels and the per-row tensors (each `N` elements).
fn check(
    op: &'static str,
    logits: &Tensor,
    chunk: Chunk,
    labels: &Tensor,
    per_row: &[(&Tensor, &str)],
) -> Result<()> {
    let shape_err = |detail: String| Error::Shape { op, detail };
    if logits.dtype() != DType::F32 {
        return Err(shape_err(format!(
            "logits must be f32, got {:?}",
            logits.dtype()
        )));
    }
    if logits.shape().len() < 2 || logits.row_len() == 0 {
        return Err(shape_err(format!(
            "logits are {:?}, expected [N, V] with V >= 1",
            logits.shape()
        )));
    }
    let n = chunk.first + chunk.rows;
    if chunk.rows > logits.rows() {
        return Err(shape_err(format!(
            "a chunk of {} rows in logits {:?}",
            chunk.rows,
            logits.shape()
        )));
    }
    for (t, name) in std::iter::once(&(labels, "labels")).chain(per_row) {
        // The whole batch's per-row tensors match its logits; a chunk's hold more rows.
        let fits = if chunk.whole {
            t.numel() == n
        } else {
            t.numel() >= n
        };
        if !fits {
            let rows = if chunk.whole {
                format!("{n} rows of logits")
            } else {
                format!("token rows {}..{n} of logits", chunk.first)
            };
            return Err(shape_err(format!(
                "{name} has {} elements for {rows} {:?}",
                t.numel(),
                logits.shape()
            )));
        }
    }
    to_u32(n)?;
    Ok(())
}

/// Which token rows the logits hold: their rows `0..rows` are token rows
/// `first..first + rows` of the per-row tensors (labels, losses, lse). The whole batch is
/// one chunk; the head's chunked path ([`crate::model::decoder`]) computes the rest a chunk
/// at a time in the same logits buffer.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    pub first: usize,
    pub rows: usize,
    /// The logits hold every row (the per-row tensors then have exactly `rows` elements).
    pub whole: bool,
}

impl Chunk {
    pub fn whole(logits: &Tensor) -> Chunk {
        Chunk {
            first: 0,
            rows: logits.rows(),
            whole: true,
        }
    }

    /// Token rows `first .. first + rows` of a larger batch.
    pub fn rows(first: usize, rows: usize) -> Chunk {
        Chunk {
            first,
            rows,
            whole: false,
        }
    }
}

/// The pieces of `logits` holding rows `0..chunk.rows`, as (piece, rows used in it).
fn pieces_in(logits: &Tensor, chunk: Chunk) -> impl Iterator<Item = (&Piece, usize)> {
    logits
        .pieces()
        .iter()
        .filter(move |p| p.rows > 0 && p.row_start < chunk.rows)
        .map(move |p| (p, p.rows.min(chunk.rows - p.row_start)))
}

/// Per row r of `logits`: `lse[r] = logsumexp(logits[r])` and
/// `row_loss[r] = lse[r] - logits[r][labels[r]]`. One workgroup per row, one dispatch per
/// piece of `logits`.
pub fn forward(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    row_loss: &Tensor,
    lse: &Tensor,
) -> Result<Vec<Dispatch>> {
    forward_chunk(gpu, logits, Chunk::whole(logits), labels, row_loss, lse)
}

/// [`forward`] on the token rows `chunk` names (see [`Chunk`]).
pub fn forward_chunk(
    gpu: &Gpu,
    logits: &Tensor,
    chunk: Chunk,
    labels: &Tensor,
    row_loss: &Tensor,
    lse: &Tensor,
) -> Result<Vec<Dispatch>> {
    let op = "cross_entropy";
    check(
        op,
        logits,
        chunk,
        labels,
        &[(row_loss, "row_loss"), (lse, "lse")],
    )?;
    if std::ptr::eq(row_loss, lse) {
        return Err(Error::Shape {
            op,
            detail: "row_loss and lse must be different tensors".into(),
        });
    }
    let (lb, rb, sb) = (
        whole_u32(labels, op, "labels")?,
        whole(row_loss, op, "row_loss")?,
        whole(lse, op, "lse")?,
    );
    let v = to_u32(logits.row_len())?;
    let mut out = Vec::new();
    for (piece, rows) in pieces_in(logits, chunk) {
        to_u32(rows * logits.row_len())?;
        let grid = grid_2d(gpu, rows)?;
        let p = Params {
            rows: rows as u32,
            v,
            row_start: (chunk.first + piece.row_start) as u32,
            groups_x: grid[0],
            scale: 0.0,
            pad: [0; 3],
        };
        out.push(Dispatch::new(
            gpu,
            &CROSS_ENTROPY,
            "cross_entropy_forward",
            bytemuck::bytes_of(&p),
            &[&piece.buffer, lb, rb, sb],
            grid,
        ));
    }
    Ok(out)
}

/// Overwrites `logits` with `scale * (softmax(logits) - onehot(labels))`, using the `lse` the
/// forward saved. For the mean loss, `scale` is 1 / (number of rows). One dispatch per piece.
pub fn backward(
    gpu: &Gpu,
    logits: &Tensor,
    labels: &Tensor,
    lse: &Tensor,
    scale: f32,
) -> Result<Vec<Dispatch>> {
    backward_chunk(gpu, logits, Chunk::whole(logits), labels, lse, scale)
}

/// [`backward`] on the token rows `chunk` names (see [`Chunk`]).
pub fn backward_chunk(
    gpu: &Gpu,
    logits: &Tensor,
    chunk: Chunk,
    labels: &Tensor,
    lse: &Tensor,
    scale: f32,
) -> Result<Vec<Dispatch>> {
    let op = "cross_entropy backward";
    check(op, logits, chunk, labels, &[(lse, "lse")])?;
    let (lb, sb) = (whole_u32(labels, op, "labels")?, whole(lse, op, "lse")?);
    let v = logits.row_len();
    let mut out = Vec::new();
    for (piece, rows) in pieces_in(logits, chunk) {
        let n = rows * v;
        to_u32(n)?;
        let grid = grid_2d(gpu, n.div_ceil(256))?;
        let p = Params {
            rows: rows as u32,
            v: v as u32,
            row_start: (chunk.first + piece.row_start) as u32,
            groups_x: grid[0],
            scale,
            pad: [0; 3],
        };
        out.push(Dispatch::with_bindings(
            gpu,
            &CROSS_ENTROPY,
            "cross_entropy_backward",
            bytemuck::bytes_of(&p),
            &[(2, lb), (4, sb), (5, &piece.buffer)],
            grid,
        ));
    }
    Ok(out)
}
