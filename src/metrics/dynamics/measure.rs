//! The metrics of a list of matrix names (see [`matrix_names`](super::matrix_names)), for any
//! source of 2-D tensors: a checkpoint's weights, a live model's weights or updates.

use super::matrix_metrics::{MatrixMetrics, MetricsPlans};
use super::matrix_names::{ov_head_mean_name, ov_head_name, parse_request, Request};
use super::ov_circuit::{layer_ov_circuit, OvForm};
use super::ov_heads::{measure_ov_heads, LayerHeads};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};
use crate::model::config::ModelConfig;
use std::collections::BTreeMap;

/// The metrics of `names`, in order, each OV request expanded into its entries
/// (`layers.{i}.ov_circuit` gives every head, then the heads' mean). `matrix` gives a 2-D
/// tensor by parameter name. The per-head OV circuits of all requested layers are measured
/// in one batch.
pub async fn measure_matrices(
    gpu: &Gpu,
    plans: &mut MetricsPlans,
    config: &ModelConfig,
    names: &[String],
    mut matrix: impl FnMut(&str) -> Result<Tensor>,
) -> Result<Vec<(String, MatrixMetrics)>> {
    let requests: Vec<Request> = names.iter().map(|n| parse_request(n)).collect();
    let (n_layers, n_heads) = (config.n_layers, config.attention_n_heads);
    for (name, r) in names.iter().zip(&requests) {
        let bad_layer = r.ov_layer().is_some_and(|l| l >= n_layers);
        let bad_head = matches!(r, Request::OvHead(_, h) if *h >= n_heads);
        if bad_layer || bad_head {
            return Err(Error::Invalid(format!(
                "{name}: the model has {n_layers} layers of {n_heads} heads"
            )));
        }
    }
    let mut head_layers: Vec<usize> = requests
        .iter()
        .filter(|r| r.needs_heads())
        .filter_map(|r| r.ov_layer())
        .collect();
    head_layers.sort_unstable();
    head_layers.dedup();
    let mut heads: BTreeMap<usize, LayerHeads> = BTreeMap::new();
    if !head_layers.is_empty() {
        let measured = measure_ov_heads(gpu, plans, config, &head_layers, &mut matrix).await?;
        heads = head_layers.iter().copied().zip(measured).collect();
    }
    let mut out = Vec::with_capacity(names.len());
    for (name, r) in names.iter().zip(requests) {
        match r {
            Request::Matrix => {
                let m = matrix(name)?;
                if m.shape().len() != 2 {
                    return Err(Error::Shape {
                        op: "matrix metrics",
                        detail: format!("{name} is {:?}, not a matrix", m.shape()),
                    });
                }
                out.push((name.clone(), plans.metrics(gpu, &m).await?));
            }
            Request::OvConcat(l) => {
                let m = layer_ov_circuit(gpu, config, l, OvForm::Concat, &mut matrix)?;
                out.push((name.clone(), plans.metrics(gpu, &m).await?));
            }
            Request::OvHeads(l) => {
                let layer = &heads[&l];
                for (h, m) in layer.heads.iter().enumerate() {
                    out.push((ov_head_name(l, h), m.clone()));
                }
                out.push((ov_head_mean_name(l), layer.mean.clone()));
            }
            Request::OvHead(l, h) => out.push((name.clone(), heads[&l].heads[h].clone())),
            Request::OvHeadMean(l) => out.push((name.clone(), heads[&l].mean.clone())),
        }
    }
    Ok(out)
}
