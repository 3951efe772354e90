//! The stream itself: [`DataSource`] cuts the loaded ids into windows of `seq_len + 1`,
//! serves a split of them batch by batch (shuffled per epoch for training), and saves and
//! restores its position ([`DataState`]) so that a resumed run sees the same batches.

use super::discover::list_inputs;
use super::load::{load, Loaded, Segment};
use super::spec::{DataKind, DataSpec};
use super::split::{shuffle, split_windows, Split};
use super::store::Store;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// A position in a [`DataSource`]'s stream: save it with a checkpoint, give it to
/// [`DataSource::restore`] to continue with the same batches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataState {
    pub seed: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Windows consumed in the current epoch.
    pub position: u64,
    /// Windows per epoch (a check that the data is the same).
    pub windows: u64,
    /// A check that the window length is the same.
    pub seq_len: usize,
}

/// Rows of equal length laid out contiguously in a store; each row yields `per_row` windows.
struct Run {
    store: usize,
    start: u64,
    row_len: u64,
    n_rows: u64,
    per_row: u64,
    first_window: u64,
}

/// A deterministic, resumable stream of token windows; see the [module docs](super).
pub struct DataSource {
    kind: DataKind,
    stores: Vec<Store>,
    runs: Vec<Run>,
    window: usize,
    total_windows: u64,
    total_tokens: u64,
    n_files: usize,
    heldout_windows: u64,
    split: Split,
    /// This split's windows (global indices), in data order.
    base: Vec<u64>,
    /// This epoch's order.
    order: Vec<u64>,
    seed: u64,
    epoch: u64,
    position: u64,
}

impl DataSource {
    /// The training windows of `spec`.
    pub fn open(spec: &DataSpec) -> Result<DataSource> {
        Self::open_split(spec, Split::Train)
    }

    /// The held-out windows of `spec` (an error when it holds none out).
    pub fn open_heldout(spec: &DataSpec) -> Result<DataSource> {
        Self::open_split(spec, Split::Heldout)
    }

    pub fn open_split(spec: &DataSpec, split: Split) -> Result<DataSource> {
        if spec.seq_len == 0 {
            return Err(Error::Invalid("seq_len must be at least 1".to_string()));
        }
        if spec.vocab_size == 0 {
            return Err(Error::Invalid("vocab_size must be at least 1".to_string()));
        }
        let w = spec.seq_len as u64 + 1;
        let (kind, files) = list_inputs(spec)?;
        let Loaded { stores, segments } = load(spec, kind, &files)?;
        let (runs, total_windows) = cut_into_windows(segments, w);
        let total_tokens = stores.iter().map(|s| s.len).sum();
        let (train, held) = split_windows(total_windows, spec.holdout, spec.seq_len)?;
        let heldout_windows = held.len() as u64;
        let base = match split {
            Split::Train => train,
            Split::Heldout => {
                if held.is_empty() {
                    return Err(Error::Invalid(
                        "no held-out data: set a holdout (a fraction, or the last N windows)"
                            .to_string(),
                    ));
                }
                held
            }
        };
        let mut src = DataSource {
            kind,
            stores,
            runs,
            window: w as usize,
            total_windows,
            total_tokens,
            n_files: files.len(),
            heldout_windows,
            split,
            order: Vec::new(),
            base,
            seed: spec.seed,
            epoch: 0,
            position: 0,
        };
        src.reorder();
        Ok(src)
    }

    /// `batch_size` rows of `seq_len + 1` ids, row after row. The stream runs on across
    /// epochs (each reshuffled).
    pub fn next_batch(&mut self, batch_size: usize) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(batch_size * self.window);
        for _ in 0..batch_size {
            if self.position as usize >= self.order.len() {
                self.epoch += 1;
                self.position = 0;
                self.reorder();
            }
            let g = self.order[self.position as usize];
            self.position += 1;
            self.read_window(g, &mut out)?;
        }
        Ok(out)
    }

    /// The `i`-th window of this split in data order (for evaluation loops).
    pub fn window(&self, i: u64) -> Result<Vec<u32>> {
        let g = *self.base.get(i as usize).ok_or_else(|| {
            Error::Invalid(format!(
                "window {i} is out of range: this split has {} windows",
                self.base.len()
            ))
        })?;
        let mut out = Vec::with_capacity(self.window);
        self.read_window(g, &mut out)?;
        Ok(out)
    }

    /// A hash of what this source serves: its sizes, its position and the ids of up to 64
    /// windows spread over the split. Data-parallel ranks compare it to refuse a rank that
    /// reads other data (or other tokens of the same files).
    pub fn fingerprint(&self) -> Result<u64> {
        use crate::train::tokenizer::{fnv1a64, FNV_OFFSET};
        let s = self.state();
        let head = [
            self.total_tokens,
            self.total_windows,
            s.windows,
            s.seq_len as u64,
            s.epoch,
            s.position,
        ];
        let mut h = fnv1a64(FNV_OFFSET, bytemuck::cast_slice(&head));
        let n = self.num_windows();
        for k in 0..n.min(64) {
            let ids = self.window(k * n / n.min(64))?;
            h = fnv1a64(h, bytemuck::cast_slice(&ids));
        }
        Ok(h)
    }

    /// Where the stream is: save it to resume with [`DataSource::restore`].
    pub fn state(&self) -> DataState {
        DataState {
            seed: self.seed,
            epoch: self.epoch,
            position: self.position,
            windows: self.base.len() as u64,
            seq_len: self.window - 1,
        }
    }

    /// Continues from a saved [`DataState`] (of a source opened on the same data).
    pub fn restore(&mut self, state: &DataState) -> Result<()> {
        if state.seq_len != self.window - 1 || state.windows != self.base.len() as u64 {
            return Err(Error::Invalid(format!(
                "the saved data position does not match this data: it was {} windows of seq_len \
                 {}, this is {} windows of seq_len {}; was the data, the holdout or seq_len \
                 changed?",
                state.windows,
                state.seq_len,
                self.base.len(),
                self.window - 1
            )));
        }
        if state.position > state.windows {
            return Err(Error::Invalid(format!(
                "the saved data position {} is past the end of an epoch ({} windows)",
                state.position, state.windows
            )));
        }
        self.seed = state.seed;
        self.epoch = state.epoch;
        self.position = state.position;
        self.reorder();
        Ok(())
    }

    pub fn kind(&self) -> DataKind {
        self.kind
    }
    pub fn split(&self) -> Split {
        self.split
    }
    pub fn seq_len(&self) -> usize {
        self.window - 1
    }
    /// Windows in this split (one epoch).
    pub fn num_windows(&self) -> u64 {
        self.base.len() as u64
    }
    /// Windows in the whole data, both splits.
    pub fn total_windows(&self) -> u64 {
        self.total_windows
    }
    /// Token ids in the data (including the tails that fill no window).
    pub fn total_tokens(&self) -> u64 {
        self.total_tokens
    }
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A line for logs: kind, size, windows.
    pub fn describe(&self) -> String {
        format!(
            "{:?} data: {} file(s), {} tokens, {} windows of {} ids ({} held out); {:?} split: {} \
             windows",
            self.kind,
            self.n_files,
            self.total_tokens,
            self.total_windows,
            self.window,
            self.heldout_windows,
            self.split,
            self.base.len()
        )
        .to_lowercase()
    }

    fn reorder(&mut self) {
        self.order.clone_from(&self.base);
        if self.split == Split::Train {
            shuffle(&mut self.order, self.seed, self.epoch);
        }
    }

    fn read_window(&self, g: u64, out: &mut Vec<u32>) -> Result<()> {
        let r = &self.runs[self.runs.partition_point(|r| r.first_window <= g) - 1];
        let k = g - r.first_window;
        let (row, w) = (k / r.per_row, k % r.per_row);
        let start = r.start + row * r.row_len + w * self.window as u64;
        debug_assert!(row < r.n_rows);
        self.stores[r.store].read(start, self.window, out)
    }
}

/// The runs of `segments` that hold at least one window of `w` ids, with their windows
/// numbered in data order; and the number of windows in all.
fn cut_into_windows(segments: Vec<Segment>, w: u64) -> (Vec<Run>, u64) {
    let mut runs = Vec::new();
    let mut total_windows = 0u64;
    for s in segments {
        let per_row = s.row_len / w;
        if per_row * s.n_rows == 0 {
            continue;
        }
        runs.push(Run {
            store: s.store,
            start: s.start,
            row_len: s.row_len,
            n_rows: s.n_rows,
            per_row,
            first_window: total_windows,
        });
        total_windows += per_row * s.n_rows;
    }
    (runs, total_windows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::store::StoreData;

    #[test]
    fn shuffle_is_a_permutation_and_differs_by_epoch() {
        let mut s = DataSource {
            kind: DataKind::Bin,
            stores: vec![Store {
                data: StoreData::Memory((0..100).collect()),
                len: 100,
            }],
            runs: vec![Run {
                store: 0,
                start: 0,
                row_len: 100,
                n_rows: 1,
                per_row: 25,
                first_window: 0,
            }],
            window: 4,
            total_windows: 25,
            total_tokens: 100,
            n_files: 1,
            heldout_windows: 0,
            split: Split::Train,
            base: (0..25).collect(),
            order: Vec::new(),
            seed: 1,
            epoch: 0,
            position: 0,
        };
        s.reorder();
        let e0 = s.order.clone();
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..25).collect::<Vec<_>>());
        assert_ne!(e0, sorted);
        let b = s.next_batch(25).unwrap();
        assert_eq!(
            &b[..4],
            &[
                e0[0] as u32 * 4,
                e0[0] as u32 * 4 + 1,
                e0[0] as u32 * 4 + 2,
                e0[0] as u32 * 4 + 3
            ]
        );
        s.next_batch(1).unwrap();
        assert_eq!(s.epoch(), 1);
        assert_ne!(s.order, e0);
    }
}
