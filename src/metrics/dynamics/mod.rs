//! Learning-dynamics metrics of weight matrices (pico-analyze's, as the ReLoRA study plots
//! them), computed on the device: only scalars and the singular values are read back.
//!
//! # Metrics ([`MatrixMetrics`])
//!
//! From the singular values `s` (all `min(rows, cols)` of them, by one-sided Jacobi: see
//! [`crate::metrics::svd`] for its accuracy):
//! - proportional effective rank: `p = s / sum s`, `erank = exp(-sum p ln p)` (natural log, no
//!   epsilon; terms with `s = 0` count `0 ln 0 = 0`, where pico-analyze's PyTorch code would
//!   turn the whole PER into NaN), `PER = erank / len(s)`;
//! - condition number `max s / min s` (infinite when `min s = 0`);
//! - nuclear norm `sum s`, spectral norm `max s`.
//!
//! From the entries `x` (n of them):
//! - Frobenius norm `sqrt(sum x^2)`, `max |x|` (the entrywise inf norm, what
//!   `torch.norm(p=inf)` gives pico-analyze);
//! - Gini `sum_i (2i - n - 1) |x|_(i) / (n sum |x|)` over `|x|` sorted ascending (i from 1).
//!   Exact: the entries are sorted on the device (bitonic sort, ties need no order), and the
//!   weighted sum runs in a fixed order;
//! - Hoyer `(sqrt n - |x|_1 / |x|_2) / (sqrt n - 1)`.
//!
//! Conventions for degenerate inputs (as pico-analyze's PyTorch code gives them): for the
//! zero matrix PER, effective rank, condition number and Hoyer are NaN (0/0) and Gini is 0;
//! Hoyer of a single entry is NaN. A matrix holding infinities or NaNs is an error. serde_json
//! writes non-finite values as `null`.
//!
//! # What is measured
//!
//! - `layers.{i}.swiglu.w_2.weight` as stored (`[d_model, hidden]`);
//! - the OV circuit of layer `i` ([`ov_circuit`], named `layers.{i}.ov_circuit`): with pico's
//!   `v_proj` `[KV*hd, d]` and `o_proj` `[d, H*hd]` (`[out, in]`), query head `h` reads kv
//!   head `g = h / (H / KV)`, and its OV matrix is
//!   `OV_h = W_o[:, h*hd .. (h+1)*hd] · W_v[g*hd .. (g+1)*hd, :]` (`d x hd` times `hd x d`:
//!   `d x d`, the map from the attended token's residual to the head's output); the heads are
//!   concatenated along the columns: `[OV_0 | OV_1 | ... | OV_{H-1}]`, `d x (H*d)`.
//! - for comparison, pico-analyze's code multiplies the other way round, per head
//!   `W_v[g*hd.., :] · W_o[:, h*hd..]` (`hd x hd`), and scores each head on its own:
//!   [`OvForm::HeadsVo`] builds those side by side (`hd x (H*hd)`, named
//!   `layers.{i}.ov_circuit_vo`).
//!
//! The functions take weight tensors, so the trainer can pass weights, gradients, or LoRA
//! products `B·A` ([`lora_product`]).
//!
//! # The files
//!
//! - `matrix_metrics`: [`MetricsPlan`], the SVD followed by the sort and reductions;
//! - `ov_circuit`: the OV construction on the device ([`OvCircuit`]);
//! - `matrix_names`: the names of the measured matrices ([`default_matrices`]);
//! - `model_matrix`: those matrices of a live [`Decoder`](crate::model::decoder::Decoder)
//!   (the trainer's and the browser demo's dynamics);
//! - `analyze_checkpoint`: those matrices of a checkpoint (`wgtrain analyze`).
//!
//! [`ov_circuit`]: fn@ov_circuit

mod analyze_checkpoint;
mod matrix_metrics;
mod matrix_names;
mod model_matrix;
mod ov_circuit;

#[cfg(not(target_arch = "wasm32"))]
pub use analyze_checkpoint::analyze_checkpoint;
pub use analyze_checkpoint::analyze_checkpoint_async;
#[cfg(not(target_arch = "wasm32"))]
pub use matrix_metrics::matrix_metrics_blocking;
pub use matrix_metrics::{matrix_metrics, MatrixMetrics, MetricsPlan, MetricsPlans};
pub use matrix_names::{default_matrices, ov_circuit_name, w2_name};
pub use model_matrix::{lora_product, model_matrix};
pub use ov_circuit::{ov_circuit, ov_circuit_with, OvCircuit, OvForm};
