//! The float types the reference ops accept. Every op widens its inputs to f64, computes in
//! f64 and rounds once on output: the f32 instantiation is the ground truth for the GPU, and
//! the f64 one lets the gradient tests use finite differences with tight tolerances.

pub trait Real: Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// Copies a slice into f64.
pub fn widen<T: Real>(x: &[T]) -> Vec<f64> {
    x.iter().map(|v| v.to_f64()).collect()
}

/// Rounds an f64 result back to the caller's type (the single rounding of each op).
pub fn narrow<T: Real>(x: &[f64]) -> Vec<T> {
    x.iter().map(|&v| T::from_f64(v)).collect()
}
