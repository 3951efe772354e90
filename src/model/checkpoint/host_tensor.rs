//! Tensor values on the host as safetensors files hold them: floats as f32, integers as i64
//! when read ([`HostData`]), borrowed f32, i64 or i32 slices when written ([`HostSlice`]).

/// The values of a tensor read from a safetensors file: floats (F32, BF16, F16, F64) as f32,
/// integers (I8..I64, U8..U64) as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor read from a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

/// Borrowed values to write with [`write_safetensors`](super::write_safetensors), stored as
/// F32, I64 or I32.
#[derive(Clone, Copy, Debug)]
pub enum HostSlice<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
}

impl HostData {
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            HostData::F32(v) => Some(v),
            HostData::I64(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            HostData::I64(v) => Some(v),
            HostData::F32(_) => None,
        }
    }

    /// A borrowed view, to write it back with [`write_safetensors`](super::write_safetensors).
    pub fn as_slice(&self) -> HostSlice<'_> {
        match self {
            HostData::F32(v) => HostSlice::F32(v),
            HostData::I64(v) => HostSlice::I64(v),
        }
    }
}

impl HostSlice<'_> {
    pub fn len(&self) -> usize {
        match self {
            HostSlice::F32(v) => v.len(),
            HostSlice::I64(v) => v.len(),
            HostSlice::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
