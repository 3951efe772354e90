//! Reference for the residual add `y = a + b`; its backward passes `dy` to both inputs.

use super::real::{narrow, widen, Real};

pub fn add<T: Real>(a: &[T], b: &[T]) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "add: a and b must have the same shape");
    let y: Vec<f64> = widen(a).iter().zip(widen(b)).map(|(x, y)| x + y).collect();
    narrow(&y)
}

/// Returns (da, db), both equal to `dy`.
pub fn add_backward<T: Real>(dy: &[T]) -> (Vec<T>, Vec<T>) {
    (dy.to_vec(), dy.to_vec())
}
