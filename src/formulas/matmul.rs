//! What a matmul computes, shared by the GPU op and its CPU reference:
//! `C = alpha * op(A) * op(B) + beta * C`, op = identity or transpose (see `ops::matmul`).

pub use super::kernels::MatmulKernel;

#[derive(Clone, Copy, Debug)]
pub struct MatmulSpec {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// 0 overwrites C; 1 accumulates into it.
    pub beta: f32,
    pub kernel: MatmulKernel,
}

impl Default for MatmulSpec {
    fn default() -> Self {
        MatmulSpec {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            kernel: MatmulKernel::Auto,
        }
    }
}

impl MatmulSpec {
    /// `C = A · B`
    pub fn nn() -> Self {
        Self::default()
    }
    /// `C = A · Bᵀ` (a linear layer's forward with weights `[out, in]`).
    pub fn nt() -> Self {
        MatmulSpec {
            trans_b: true,
            ..Self::default()
        }
    }
    /// `C = Aᵀ · B` (a weight gradient).
    pub fn tn() -> Self {
        MatmulSpec {
            trans_a: true,
            ..Self::default()
        }
    }
    pub fn scale(self, alpha: f32) -> Self {
        MatmulSpec { alpha, ..self }
    }
    pub fn accumulate(self) -> Self {
        MatmulSpec { beta: 1.0, ..self }
    }
    pub fn with_kernel(self, kernel: MatmulKernel) -> Self {
        MatmulSpec { kernel, ..self }
    }
}
