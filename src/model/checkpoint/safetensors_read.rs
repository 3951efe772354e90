//! Reading safetensors files: the bytes, checked as a safetensors file, and each tensor's
//! little-endian values decoded (floats to f32, integers to i64). Every error names the file
//! and what to do.

use super::half_float::{bf16_to_f32, f16_to_f32};
use super::host_tensor::{HostData, HostTensor};
use super::{file_err, io_err};
use crate::error::Result;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

/// Read every tensor of a safetensors file (floats as f32, integers as i64).
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = read_bytes(path, "")?;
    let st = parse(path, &bytes)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = decode(path, name, &view)?;
        out.insert(
            name.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

/// Whether `dtype` is one of the float types read as f32.
pub(super) fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F64)
}

/// The `N`-byte words of `bytes`, in order.
fn words<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut w = [0u8; N];
        w.copy_from_slice(c);
        w
    })
}

/// Convert one tensor's little-endian bytes.
pub(super) fn decode(path: &Path, name: &str, view: &TensorView<'_>) -> Result<HostData> {
    let b = view.data();
    let data = match view.dtype() {
        Dtype::F32 => HostData::F32(words::<4>(b).map(f32::from_le_bytes).collect()),
        Dtype::BF16 => HostData::F32(
            words::<2>(b)
                .map(|w| bf16_to_f32(u16::from_le_bytes(w)))
                .collect(),
        ),
        Dtype::F16 => HostData::F32(
            words::<2>(b)
                .map(|w| f16_to_f32(u16::from_le_bytes(w)))
                .collect(),
        ),
        Dtype::F64 => HostData::F32(
            words::<8>(b)
                .map(|w| f64::from_le_bytes(w) as f32)
                .collect(),
        ),
        Dtype::I64 => HostData::I64(words::<8>(b).map(i64::from_le_bytes).collect()),
        Dtype::I32 => HostData::I64(
            words::<4>(b)
                .map(|w| i32::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::I16 => HostData::I64(
            words::<2>(b)
                .map(|w| i16::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::I8 => HostData::I64(b.iter().map(|&v| v as i8 as i64).collect()),
        Dtype::U32 => HostData::I64(
            words::<4>(b)
                .map(|w| u32::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::U16 => HostData::I64(
            words::<2>(b)
                .map(|w| u16::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::U8 => HostData::I64(b.iter().map(|&v| v as i64).collect()),
        Dtype::U64 => {
            let mut out = Vec::with_capacity(b.len() / 8);
            for w in words::<8>(b) {
                let v = u64::from_le_bytes(w);
                out.push(i64::try_from(v).map_err(|_| {
                    file_err(
                        path,
                        Some(name),
                        format!("U64 value {v} does not fit in i64; store ids as I64"),
                    )
                })?);
            }
            HostData::I64(out)
        }
        other => {
            return Err(file_err(
                path,
                Some(name),
                format!(
                    "unsupported dtype {other:?}: store floats as F32, BF16, F16 or F64 and \
                     integers as I8..I64 or U8..U64"
                ),
            ))
        }
    };
    Ok(data)
}

/// The whole file; `missing_hint` follows "file not found" in the error.
pub(super) fn read_bytes(path: &Path, missing_hint: &str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => file_err(path, None, format!("file not found{missing_hint}")),
        _ => io_err(path, "read the file", e),
    })
}

/// The safetensors header and tensor views of `bytes`; a damaged file says so.
pub(super) fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        let what = match e {
            SafeTensorError::HeaderTooSmall
            | SafeTensorError::InvalidHeaderLength
            | SafeTensorError::MetadataIncompleteBuffer => "truncated or corrupt",
            _ => "corrupt",
        };
        file_err(
            path,
            None,
            format!(
                "is not a valid safetensors file, it is {what} ({e}; {} bytes). Write it again, \
                 or copy it again from where it came from",
                bytes.len()
            ),
        )
    })
}
