//! The names of the matrices the study measures: a 2-D parameter as pico names it, or one of
//! the OV-circuit names, which are built from the layer's attention weights:
//!
//! - `layers.{i}.ov_circuit`: a request for pico-analyze's per-head circuits of layer i; it
//!   yields `layers.{i}.ov_circuit.weights.heads.{h}` for every query head h (pico-analyze's
//!   names) and then `layers.{i}.ov_circuit.weights.head_mean` (each metric's mean over the
//!   layer's heads);
//! - either of those names alone;
//! - `layers.{i}.ov_circuit_concat`: the `d x (H*d)` concatenation `[W_o,h · W_v,g(h)]`,
//!   wgtrain's earlier form, kept under a name that says what it is.

use crate::model::config::ModelConfig;

/// `layers.{layer}.swiglu.w_2.weight`
pub fn w2_name(layer: usize) -> String {
    format!("layers.{layer}.swiglu.w_2.weight")
}

/// `layers.{layer}.ov_circuit`: the request for every head of the layer and their mean.
pub fn ov_circuit_name(layer: usize) -> String {
    format!("layers.{layer}.ov_circuit")
}

/// `layers.{layer}.ov_circuit.weights.heads.{head}`, as pico-analyze names it.
pub fn ov_head_name(layer: usize, head: usize) -> String {
    format!("layers.{layer}.ov_circuit.weights.heads.{head}")
}

/// `layers.{layer}.ov_circuit.weights.head_mean`: the mean over the layer's heads.
pub fn ov_head_mean_name(layer: usize) -> String {
    format!("layers.{layer}.ov_circuit.weights.head_mean")
}

/// `layers.{layer}.ov_circuit_concat`
pub fn ov_concat_name(layer: usize) -> String {
    format!("layers.{layer}.ov_circuit_concat")
}

/// What `wgtrain analyze` and the trainer's dynamics measure by default: every layer's `w_2`,
/// then its per-head OV circuits and their mean.
pub fn default_matrices(config: &ModelConfig) -> Vec<String> {
    (0..config.n_layers)
        .flat_map(|i| [w2_name(i), ov_circuit_name(i)])
        .collect()
}

/// Whether `name` is one of the OV-circuit names (built from two weights, so defined for
/// weights only: pico-analyze forms no OV circuit of gradients).
pub fn is_ov_name(name: &str) -> bool {
    !matches!(parse_request(name), Request::Matrix)
}

/// What a name asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Request {
    /// A 2-D tensor of the model, by its own name.
    Matrix,
    /// Every head of the layer, then their mean.
    OvHeads(usize),
    OvHead(usize, usize),
    OvHeadMean(usize),
    OvConcat(usize),
}

pub(super) fn parse_request(name: &str) -> Request {
    let parsed = || -> Option<Request> {
        let rest = name.strip_prefix("layers.")?;
        let (layer, what) = rest.split_once('.')?;
        let layer: usize = layer.parse().ok()?;
        match what {
            "ov_circuit" => Some(Request::OvHeads(layer)),
            "ov_circuit.weights.head_mean" => Some(Request::OvHeadMean(layer)),
            "ov_circuit_concat" => Some(Request::OvConcat(layer)),
            _ => {
                let head = what.strip_prefix("ov_circuit.weights.heads.")?;
                Some(Request::OvHead(layer, head.parse().ok()?))
            }
        }
    };
    parsed().unwrap_or(Request::Matrix)
}

impl Request {
    /// The layer of an OV request.
    pub(super) fn ov_layer(self) -> Option<usize> {
        match self {
            Request::Matrix => None,
            Request::OvHeads(l) | Request::OvHead(l, _) | Request::OvHeadMean(l) => Some(l),
            Request::OvConcat(l) => Some(l),
        }
    }

    /// Whether it needs the per-head circuits.
    pub(super) fn needs_heads(self) -> bool {
        matches!(
            self,
            Request::OvHeads(_) | Request::OvHead(..) | Request::OvHeadMean(_)
        )
    }
}
