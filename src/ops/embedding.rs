//! The input embedding: a row lookup forward and a deterministic backward, on a table
//! `[V, d]` that may be stored in pieces (one dispatch per piece).
//!
//! The backward is a gather rather than a scatter-add, so it needs no float atomics: the host
//! sorts the step's positions by token id ([`EmbeddingBackward::set_ids`]) and each GPU lane
//! owns one (distinct id, column) and sums that id's rows of `d_out` in position order.

use super::common::{grid_2d, to_u32, whole, whole_u32};
use crate::error::{Error, Result};
use crate::gpu::shaders::EMBEDDING;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    d: u32,
    row_start: u32,
    rows: u32,
    vocab: u32,
    groups_x: u32,
    offsets_at: u32,
    positions_at: u32,
}

fn check_table(op: &'static str, table: &Tensor, name: &str, tokens: &Tensor) -> Result<()> {
    let shape_err = |detail: String| Error::Shape { op, detail };
    if table.dtype() != DType::F32 {
        return Err(shape_err(format!(
            "{name} must be f32, got {:?}",
            table.dtype()
        )));
    }
    if table.shape().len() != 2 || table.rows() == 0 || table.row_len() == 0 {
        return Err(shape_err(format!(
            "{name} is {:?}, expected [V, d] with V, d >= 1",
            table.shape()
        )));
    }
    if tokens.row_len() != table.row_len() {
        return Err(shape_err(format!(
            "{name} is {:?} but the per-token tensor is {:?}: rows of different widths",
            table.shape(),
            tokens.shape()
        )));
    }
    to_u32(table.rows())?;
    Ok(())
}

/// `out[t] = table[ids[t]]` for `ids` `[N]` (u32) and `out` `[N, d]`. One dispatch per piece
/// of `table`, each writing the tokens whose id falls in that piece.
pub fn forward(gpu: &Gpu, table: &Tensor, ids: &Tensor, out: &Tensor) -> Result<Vec<Dispatch>> {
    let op = "embedding";
    check_table(op, table, "table", out)?;
    if ids.numel() != out.rows() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "ids has {} elements but out {:?} has {} rows",
                ids.numel(),
                out.shape(),
                out.rows()
            ),
        });
    }
    let (ib, ob) = (whole_u32(ids, op, "ids")?, whole(out, op, "out")?);
    let d = table.row_len();
    let n = out.numel();
    let grid = grid_2d(gpu, n.div_ceil(256))?;
    let mut dispatches = Vec::new();
    for piece in table.pieces().iter().filter(|p| p.rows > 0) {
        let p = Params {
            n: to_u32(n)?,
            d: d as u32,
            row_start: piece.row_start as u32,
            rows: piece.rows as u32,
            vocab: table.rows() as u32,
            groups_x: grid[0],
            offsets_at: 0,
            positions_at: 0,
        };
        dispatches.push(Dispatch::with_bindings(
            gpu,
            &EMBEDDING,
            "embedding_forward",
            bytemuck::bytes_of(&p),
            &[(1, &piece.buffer), (2, ib), (3, ob)],
            grid,
        ));
    }
    Ok(dispatches)
}

/// The prepared backward: `d_table[v] += sum of d_out[t] over positions t with ids[t] == v`,
/// summed in position order; rows of ids that do not occur are untouched. Prepare once per
/// `(d_out, d_table)`, call [`EmbeddingBackward::set_ids`] with each step's ids, then record
/// [`EmbeddingBackward::dispatches`].
pub struct EmbeddingBackward {
    tokens: usize,
    vocab: usize,
    /// The sorted positions, laid out as `shaders/embedding.wgsl` describes.
    index: wgpu::Buffer,
    dispatches: Vec<Dispatch>,
}

impl EmbeddingBackward {
    /// `d_out` is `[N, d]`; `d_table` is `[V, d]` and may be stored in pieces.
    pub fn new(gpu: &Gpu, d_out: &Tensor, d_table: &Tensor) -> Result<Self> {
        let op = "embedding backward";
        check_table(op, d_table, "d_table", d_out)?;
        let db = whole(d_out, op, "d_out")?;
        let tokens = d_out.rows();
        let d = d_table.row_len();
        let words = 3 * tokens + 2;
        let bytes = (words * 4) as u64;
        if bytes > gpu.binding_limit() {
            return Err(Error::TooLarge {
                detail: format!(
                    "{op}: the index of {tokens} tokens is {bytes} bytes, above the binding limit"
                ),
            });
        }
        let index = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("embedding backward index"),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // One lane per (slot, column); there are at most as many distinct ids as tokens.
        let n = tokens * d;
        let grid = grid_2d(gpu, n.div_ceil(256))?;
        let mut dispatches = Vec::new();
        for piece in d_table.pieces().iter().filter(|p| p.rows > 0) {
            let p = Params {
                n: to_u32(n)?,
                d: d as u32,
                row_start: piece.row_start as u32,
                rows: piece.rows as u32,
                vocab: d_table.rows() as u32,
                groups_x: grid[0],
                offsets_at: to_u32(1 + tokens)?,
                positions_at: to_u32(2 + 2 * tokens)?,
            };
            dispatches.push(Dispatch::with_bindings(
                gpu,
                &EMBEDDING,
                "embedding_backward",
                bytemuck::bytes_of(&p),
                &[(4, db), (5, &index), (6, &piece.buffer)],
                grid,
            ));
        }
        Ok(EmbeddingBackward {
            tokens,
            vocab: d_table.rows(),
            index,
            dispatches,
        })
    }

    /// Sort this step's `ids` (N of them) into the index the kernel reads, and queue its
    /// upload: it applies to work submitted after this call. An id outside the vocabulary is a
    /// data error (`Error::Invalid`) and leaves the previous index in place.
    pub fn set_ids(&self, gpu: &Gpu, ids: &[u32]) -> Result<()> {
        let n = self.tokens;
        if ids.len() != n {
            return Err(Error::Shape {
                op: "embedding backward",
                detail: format!("{} ids given for {n} tokens", ids.len()),
            });
        }
        if let Some(pos) = ids.iter().position(|&id| id as usize >= self.vocab) {
            return Err(Error::Invalid(format!(
                "token id {} at position {pos} is out of range for the vocabulary size {}: \
                 the data was tokenized with a different tokenizer than the model expects",
                ids[pos], self.vocab
            )));
        }
        let gpu_index = build_index(ids);
        gpu.queue
            .write_buffer(&self.index, 0, bytemuck::cast_slice(&gpu_index));
        Ok(())
    }

    pub fn dispatches(&self) -> &[Dispatch] {
        &self.dispatches
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            d.record(pass);
        }
    }
}

/// `[u, distinct ids (N slots), offsets (N + 1 slots), positions (N)]`: the distinct ids in
/// increasing order, and for each the positions where it occurs, in position order.
fn build_index(ids: &[u32]) -> Vec<u32> {
    let n = ids.len();
    let (distinct_at, offsets_at, positions_at) = (1, 1 + n, 2 + 2 * n);
    let mut index = vec![0u32; 3 * n + 2];
    let mut order: Vec<u32> = (0..n as u32).collect();
    // A stable sort: positions with equal ids stay in position order.
    order.sort_by_key(|&pos| ids[pos as usize]);
    let mut u = 0;
    for (k, &pos) in order.iter().enumerate() {
        let id = ids[pos as usize];
        if k == 0 || id != ids[order[k - 1] as usize] {
            index[distinct_at + u] = id;
            index[offsets_at + u] = k as u32;
            u += 1;
        }
        index[positions_at + k] = pos;
    }
    index[offsets_at + u] = n as u32;
    index[0] = u as u32;
    index
}

#[cfg(test)]
mod tests {
    use super::build_index;

    #[test]
    fn the_index_groups_positions_by_increasing_id() {
        // ids by position: 5 2 5 0 2 5
        let index = build_index(&[5, 2, 5, 0, 2, 5]);
        let n = 6;
        assert_eq!(index[0], 3);
        assert_eq!(&index[1..4], &[0, 2, 5]);
        assert_eq!(&index[1 + n..1 + n + 4], &[0, 1, 3, 6]);
        assert_eq!(&index[2 + 2 * n..], &[3, 1, 4, 0, 2, 5]);
    }
}
