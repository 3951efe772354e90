//! The suite's shape tables: one table for `wgbench suite`, the PyTorch baseline it calls and
//! the criterion benches in `benches/`, so every figure of a shape means the same product.

use crate::ops::matmul_tune::ProductShape;

/// How large a run is: `Quick` is every entry at its smallest size (seconds, for CI);
/// `Full` is the sizes BENCHMARKS.md reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Quick,
    Full,
}

impl Size {
    pub fn name(self) -> &'static str {
        match self {
            Size::Quick => "quick",
            Size::Full => "full",
        }
    }
}

/// Which product of a linear layer a matmul entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Product {
    /// A square `C = A · B`.
    Square,
    /// `Y = X · Wᵀ` (the layer's forward).
    Forward,
    /// `dX = dY · W` (the gradient into the layer's input).
    GradInput,
    /// `dW = dYᵀ · X` (the weight gradient).
    GradWeight,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Square => "square",
            Product::Forward => "forward",
            Product::GradInput => "grad input",
            Product::GradWeight => "grad weight",
        }
    }
}

/// One matmul entry: a product of a shape, named by the layer it comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct MatmulCase {
    /// e.g. `tiny w_2`, or `square 512`.
    pub layer: String,
    pub product: Product,
    pub shape: ProductShape,
}

impl MatmulCase {
    /// A stable label, e.g. `tiny w_2 grad weight (96 x 512 x 384, tn)`.
    pub fn label(&self) -> String {
        let s = &self.shape;
        let t = |x: bool| if x { 't' } else { 'n' };
        let product = match self.product {
            Product::Square => String::new(),
            p => format!(" {}", p.name()),
        };
        format!(
            "{}{product} ({} x {} x {}, {}{})",
            self.layer,
            s.m,
            s.k,
            s.n,
            t(s.trans_a),
            t(s.trans_b)
        )
    }
}

/// The linear layers of pico's presets: (preset, layer, in features, out features). tiny and
/// small have d_model 96 and 384, 12 query and 4 key/value heads, hidden 4 d_model.
pub const PICO_LAYERS: [(&str, &str, usize, usize); 9] = [
    ("tiny", "q/o proj", 96, 96),
    ("tiny", "k/v proj", 96, 32),
    ("tiny", "w_0/w_1", 96, 384),
    ("tiny", "w_2", 384, 96),
    ("tiny", "output proj", 96, 50304),
    ("small", "q/o proj", 384, 384),
    ("small", "k/v proj", 384, 128),
    ("small", "w_0/w_1", 384, 1536),
    ("small", "w_2", 1536, 384),
];

/// Token rows (batch x sequence) of the pico-shaped products.
pub fn matmul_tokens(size: Size) -> usize {
    match size {
        Size::Quick => 64,
        Size::Full => 512,
    }
}

/// Square sizes.
pub fn squares(size: Size) -> &'static [usize] {
    match size {
        Size::Quick => &[256],
        Size::Full => &[256, 512, 1024],
    }
}

/// The three products of a linear layer `in -> out` over `tokens` rows.
pub fn layer_products(layer: &str, tokens: usize, inp: usize, out: usize) -> Vec<MatmulCase> {
    let shape = |m, k, n, trans_a, trans_b| ProductShape {
        m,
        n,
        k,
        batch: 1,
        trans_a,
        trans_b,
    };
    vec![
        MatmulCase {
            layer: layer.to_string(),
            product: Product::Forward,
            shape: shape(tokens, inp, out, false, true),
        },
        MatmulCase {
            layer: layer.to_string(),
            product: Product::GradInput,
            shape: shape(tokens, out, inp, false, false),
        },
        MatmulCase {
            layer: layer.to_string(),
            product: Product::GradWeight,
            shape: shape(out, tokens, inp, true, false),
        },
    ]
}

/// Every matmul case of a run of `size`: the squares, then each pico layer's three products
/// (tiny's layers only in a quick run).
pub fn matmul_cases(size: Size) -> Vec<MatmulCase> {
    let mut v: Vec<MatmulCase> = squares(size)
        .iter()
        .map(|&s| MatmulCase {
            layer: format!("square {s}"),
            product: Product::Square,
            shape: ProductShape {
                m: s,
                n: s,
                k: s,
                batch: 1,
                trans_a: false,
                trans_b: false,
            },
        })
        .collect();
    let tokens = matmul_tokens(size);
    for (preset, layer, inp, out) in PICO_LAYERS {
        if size == Size::Quick && preset != "tiny" {
            continue;
        }
        v.extend(layer_products(
            &format!("{preset} {layer}"),
            tokens,
            inp,
            out,
        ));
    }
    v
}

/// Pico's attention head shapes: (preset, query heads, key/value heads, head_dim).
pub const HEAD_SHAPES: [(&str, usize, usize, usize); 2] =
    [("tiny", 12, 4, 8), ("small", 12, 4, 32)];

/// Sequence lengths of the attention entries (batch 1; both head shapes in every run).
pub fn attention_seqs(size: Size) -> &'static [usize] {
    match size {
        Size::Quick => &[128],
        Size::Full => &[128, 512, 2048],
    }
}

/// A training-step entry: preset and micro-batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepCase {
    pub preset: &'static str,
    pub batch: usize,
    pub seq: usize,
}

/// The step entries (each plain and pico-relora): two batch shapes per preset; a quick run
/// has tiny's smallest only.
pub fn step_cases(size: Size) -> Vec<StepCase> {
    let case = |preset, batch, seq| StepCase { preset, batch, seq };
    match size {
        Size::Quick => vec![case("tiny", 1, 64)],
        Size::Full => vec![
            case("tiny", 4, 128),
            case("tiny", 8, 256),
            case("small", 1, 128),
            case("small", 4, 128),
        ],
    }
}

/// The evaluation-throughput entries (the forward perplexity and BLiMP run, no dropout).
pub fn eval_cases(size: Size) -> Vec<StepCase> {
    let case = |preset, batch, seq| StepCase { preset, batch, seq };
    match size {
        Size::Quick => vec![case("tiny", 1, 64)],
        Size::Full => vec![case("tiny", 8, 256), case("small", 4, 128)],
    }
}

/// Presets whose metrics (SVD of w_2, per-head OV circuits) are timed.
pub fn metric_presets(size: Size) -> &'static [&'static str] {
    match size {
        Size::Quick => &["tiny"],
        Size::Full => &["tiny", "small"],
    }
}

/// Timed repeats per kernel entry (after one warm-up).
pub fn repeats(size: Size) -> usize {
    match size {
        Size::Quick => 2,
        Size::Full => 5,
    }
}

/// Timed repeats per model entry (training steps, evaluation, the demo's chunks).
pub fn step_repeats(size: Size) -> usize {
    match size {
        Size::Quick => 1,
        Size::Full => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_products_are_the_three_of_a_linear_layer() {
        let p = layer_products("w", 512, 384, 96);
        // Every product of one layer does the same work.
        assert!(p
            .iter()
            .all(|c| c.shape.flops() == 2.0 * 512.0 * 384.0 * 96.0));
        assert_eq!(p[0].label(), "w forward (512 x 384 x 96, nt)");
        assert_eq!(p[2].label(), "w grad weight (96 x 512 x 384, tn)");
    }

    #[test]
    fn labels_are_unique() {
        for size in [Size::Quick, Size::Full] {
            let labels: std::collections::BTreeSet<String> =
                matmul_cases(size).iter().map(MatmulCase::label).collect();
            assert_eq!(labels.len(), matmul_cases(size).len());
        }
    }
}
