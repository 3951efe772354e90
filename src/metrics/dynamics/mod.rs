//! Learning-dynamics metrics of weight matrices (pico-analyze's, as the ReLoRA study plots
//! them), computed on the device: only scalars and the singular values are read back (and,
//! for the small per-head OV matrices, their entries, whose few scalars the host sums).
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
//! - `layers.{i}.swiglu.w_2.weight` as stored (`[d_model, hidden]`), for weights and updates;
//! - pico-analyze's OV circuit of layer `i`, per query head: with pico's `v_proj`
//!   `[KV*hd, d]` and `o_proj` `[d, H*hd]` (`[out, in]`), head `h` reads kv head
//!   `g = h / (H / KV)`, and its OV matrix is
//!   `OV_h = W_v[g*hd .. (g+1)*hd, :] · W_o[:, h*hd .. (h+1)*hd]` (`hd x d` times `d x hd`:
//!   `hd x hd`), scored on its own under pico-analyze's name
//!   `layers.{i}.ov_circuit.weights.heads.{h}`; beside them
//!   `layers.{i}.ov_circuit.weights.head_mean`, each metric's plain mean over the layer's
//!   heads. Requested together as `layers.{i}.ov_circuit`; all heads of all requested layers
//!   go through one batched SVD (`ov_heads`). Weights only: pico-analyze
//!   forms no OV circuit of gradients, and neither do the study's update figures.
//! - `layers.{i}.ov_circuit_concat`, on request: the `d x (H*d)` concatenation
//!   `[W_o,h · W_v,g(h)]` over heads (the map from the attended residual to each head's
//!   output, side by side). Its singular values differ from the heads': it is not the figure
//!   the paper plots.
//!
//! The functions take weight tensors, so the trainer can pass weights, gradients, or LoRA
//! products `B·A` ([`lora_product`]).
//!
//! # The files
//!
//! - `matrix_metrics`: [`MetricsPlan`], the SVD followed by the sort and reductions;
//!   [`MatrixMetrics::from_parts`] for the batched small matrices;
//! - `ov_circuit`: the OV constructions on the device ([`OvCircuit`]);
//! - `ov_heads`: every head's OV metrics of several layers in one batched SVD;
//! - `matrix_names`: the names of the measured matrices ([`default_matrices`]);
//! - `measure`: the metrics of a list of names ([`measure_matrices`]), for any tensor source;
//! - `model_matrix`: those matrices of a live [`Decoder`](crate::model::decoder::Decoder)
//!   (the trainer's and the browser demo's dynamics);
//! - `analyze_checkpoint`: those matrices of a checkpoint (`wgtrain analyze`), effective
//!   ReLoRA weights by default ([`AnalyzedWeights`]).

mod analyze_checkpoint;
mod matrix_metrics;
mod matrix_names;
mod measure;
mod model_matrix;
mod ov_circuit;
mod ov_heads;

#[cfg(not(target_arch = "wasm32"))]
pub use analyze_checkpoint::analyze_checkpoint;
pub use analyze_checkpoint::{analyze_checkpoint_async, AnalyzedWeights};
#[cfg(not(target_arch = "wasm32"))]
pub use matrix_metrics::matrix_metrics_blocking;
pub use matrix_metrics::{matrix_metrics, MatrixMetrics, MetricsPlan, MetricsPlans};
pub use matrix_names::{
    default_matrices, is_ov_name, ov_circuit_name, ov_concat_name, ov_head_mean_name, ov_head_name,
    w2_name,
};
pub use measure::measure_matrices;
pub use model_matrix::{effective_weight, lora_product, model_matrix};
pub use ov_circuit::{ov_circuit, ov_circuit_with, OvCircuit, OvForm};
