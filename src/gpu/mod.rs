//! Device layer: adapter choice, limits, tensors (bound in pieces when large), pipelines.

mod backend;
mod context;
mod dispatch;
pub mod shaders;
mod tensor;
pub mod tuning;

pub use backend::Backend;
pub use context::{list_adapters, AdapterPick, AdapterReport, Gpu, GpuOptions};
pub use dispatch::{record_all, run_all, Dispatch};
pub use tensor::{DType, Piece, Tensor};
