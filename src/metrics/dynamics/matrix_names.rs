//! The names of the matrices the study measures: a 2-D parameter as pico names it, or
//! `layers.{i}.ov_circuit` (`_vo`), which is built from the layer's attention weights.

use super::ov_circuit::OvForm;
use crate::model::config::ModelConfig;

/// `layers.{layer}.swiglu.w_2.weight`
pub fn w2_name(layer: usize) -> String {
    format!("layers.{layer}.swiglu.w_2.weight")
}

/// `layers.{layer}.ov_circuit`
pub fn ov_circuit_name(layer: usize) -> String {
    format!("layers.{layer}.ov_circuit")
}

/// What `wgtrain analyze` measures by default: every layer's `w_2`, then its OV circuit.
pub fn default_matrices(config: &ModelConfig) -> Vec<String> {
    (0..config.n_layers)
        .flat_map(|i| [w2_name(i), ov_circuit_name(i)])
        .collect()
}

/// `Some((layer, form))` for `layers.{i}.ov_circuit` / `layers.{i}.ov_circuit_vo`.
pub(super) fn parse_ov_name(name: &str) -> Option<(usize, OvForm)> {
    let rest = name.strip_prefix("layers.")?;
    let (layer, what) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    match what {
        "ov_circuit" => Some((layer, OvForm::Circuit)),
        "ov_circuit_vo" => Some((layer, OvForm::HeadsVo)),
        _ => None,
    }
}
