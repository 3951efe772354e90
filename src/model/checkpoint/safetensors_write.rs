//! Writing safetensors files: the tensor list is checked first (names non-empty and unique,
//! shapes matching the data), then the values are serialized little-endian with PyTorch's
//! `format: pt` metadata. [`write_safetensors`] replaces a file atomically; a checkpoint's
//! weights go into its staging directory ([`save`](fn@super::save)) or into memory
//! ([`super::checkpoint_files`]).

use super::durable::replace_file_atomically;
use super::file_err;
use super::host_tensor::HostSlice;
use crate::error::Result;
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Write tensors to a safetensors file atomically (a temporary sibling file, fsync, rename):
/// F32 as F32, I64 as I64, I32 as I32.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &[usize], HostSlice<'_>)]) -> Result<()> {
    let views = checked_views(path, tensors)?;
    replace_file_atomically(path, |tmp| serialize_to_file(tmp, &views, path))
}

/// f32 tensors (a checkpoint's weights) in the form [`write_safetensors`] takes.
pub(super) fn f32_tensors<'a>(
    tensors: &[(&'a str, &'a [usize], &'a [f32])],
) -> Vec<(&'a str, &'a [usize], HostSlice<'a>)> {
    tensors
        .iter()
        .map(|(n, s, d)| (*n, *s, HostSlice::F32(d)))
        .collect()
}

/// `tensors` checked (see [`check_tensor_list`]; errors name `shown`), as views to serialize.
pub(super) fn checked_views<'a>(
    shown: &Path,
    tensors: &[(&'a str, &'a [usize], HostSlice<'a>)],
) -> Result<Vec<(&'a str, RawView<'a>)>> {
    check_tensor_list(shown, tensors)?;
    Ok(tensors
        .iter()
        .map(|(n, s, d)| (*n, RawView::new(s, *d)))
        .collect())
}

/// Serialize `views` to the file `path` (not fsynced: the caller makes it durable). `shown`
/// is the path errors name.
pub(super) fn serialize_to_file(
    path: &Path,
    views: &[(&str, RawView<'_>)],
    shown: &Path,
) -> Result<()> {
    safetensors::serialize_to_file(views.iter().map(|(n, v)| (*n, v)), pytorch_metadata(), path)
        .map_err(|e| file_err(shown, None, format!("could not write the file: {e}")))
}

/// Serialize the weights `views` into memory; `shown` is the path errors name.
pub(super) fn serialize_to_vec(views: &[(&str, RawView<'_>)], shown: &Path) -> Result<Vec<u8>> {
    safetensors::serialize(views.iter().map(|(n, v)| (*n, v)), pytorch_metadata())
        .map_err(|e| file_err(shown, None, format!("could not serialize the weights: {e}")))
}

/// The header metadata PyTorch's safetensors writer puts in every file.
fn pytorch_metadata() -> Option<HashMap<String, String>> {
    Some(HashMap::from([("format".to_string(), "pt".to_string())]))
}

/// A tensor to serialize: its bytes in little-endian order (borrowed where the host is LE).
pub(super) struct RawView<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    bytes: Cow<'a, [u8]>,
}

impl View for &RawView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The little-endian bytes of `v`: the values themselves on a little-endian host.
fn le_bytes<T: bytemuck::Pod, const N: usize>(
    v: &[T],
    to_le: impl Fn(&T) -> [u8; N],
) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(to_le).collect())
    }
}

impl<'a> RawView<'a> {
    fn new(shape: &'a [usize], data: HostSlice<'a>) -> Self {
        let (dtype, bytes) = match data {
            HostSlice::F32(v) => (Dtype::F32, le_bytes(v, |x| x.to_le_bytes())),
            HostSlice::I64(v) => (Dtype::I64, le_bytes(v, |x| x.to_le_bytes())),
            HostSlice::I32(v) => (Dtype::I32, le_bytes(v, |x| x.to_le_bytes())),
        };
        RawView {
            dtype,
            shape,
            bytes,
        }
    }
}

/// Names non-empty and unique, and each shape's element count equal to its data length.
fn check_tensor_list(path: &Path, tensors: &[(&str, &[usize], HostSlice<'_>)]) -> Result<()> {
    let mut seen = HashSet::new();
    for &(name, shape, data) in tensors {
        let len = data.len();
        if name.is_empty() {
            return Err(file_err(
                path,
                Some(name),
                "a tensor needs a non-empty name",
            ));
        }
        if !seen.insert(name) {
            return Err(file_err(
                path,
                Some(name),
                "given twice: tensor names must be unique",
            ));
        }
        let numel = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        if numel != Some(len) {
            return Err(file_err(
                path,
                Some(name),
                format!(
                    "shape {shape:?} holds {} values but {len} were given",
                    numel.map_or("too many".to_string(), |n| n.to_string())
                ),
            ));
        }
    }
    Ok(())
}
