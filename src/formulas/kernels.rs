//! Which kernel variant runs an op. Every variant of an op computes the same thing; `Auto`
//! lets the adapter decide (a heuristic, or for matmul a measurement cached per adapter), and
//! a named variant pins it (`--kernel matmul=rows,attention=tiled`, or a test that checks
//! each variant).

use std::fmt;
use std::str::FromStr;

/// The matmul kernels (`shaders/matmul.wgsl` and `shaders/matmul_rows_*.wgsl`). All of them
/// sum each output's K terms in the same order with the same fused multiply-adds, so they
/// agree bit for bit: which one an adapter picks never changes a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MatmulKernel {
    /// Measured per adapter and shape, the choice cached on disk (see `ops::matmul_tune`).
    #[default]
    Auto,
    /// Register-blocked rows, no workgroup memory (software adapters): 8 rows per workgroup,
    /// 4 columns per lane, 16 lanes.
    Rows8x4,
    /// As `Rows8x4` with 16 rows per workgroup, 8 columns per lane and 8 lanes.
    Rows16x8,
    /// As `Rows8x4` with 8 columns per lane and 8 lanes.
    Rows8x8,
    /// As `Rows16x8`, with A's elements shared across the lanes by subgroup shuffles instead
    /// of loaded by every lane: only where the adapter has subgroups of at least 8 lanes.
    RowsSubgroup16x8,
    /// 64 x 64 tiles staged in workgroup memory: for GPUs.
    Tiled,
}

impl MatmulKernel {
    /// The concrete variants, in the order the tuner tries them.
    pub const VARIANTS: [MatmulKernel; 5] = [
        MatmulKernel::Rows8x4,
        MatmulKernel::Rows16x8,
        MatmulKernel::Rows8x8,
        MatmulKernel::RowsSubgroup16x8,
        MatmulKernel::Tiled,
    ];

    /// The fewest lanes a subgroup must have for this variant, if it uses subgroups.
    pub fn min_subgroup(self) -> Option<u32> {
        match self {
            MatmulKernel::RowsSubgroup16x8 => Some(8),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MatmulKernel::Auto => "auto",
            MatmulKernel::Rows8x4 => "rows_8x4",
            MatmulKernel::Rows16x8 => "rows_16x8",
            MatmulKernel::Rows8x8 => "rows_8x8",
            MatmulKernel::RowsSubgroup16x8 => "rows_sg_16x8",
            MatmulKernel::Tiled => "tiled",
        }
    }

    /// The variant called `name` (as [`MatmulKernel::name`] spells it), `auto` included.
    pub fn named(name: &str) -> Option<MatmulKernel> {
        std::iter::once(MatmulKernel::Auto)
            .chain(Self::VARIANTS)
            .find(|k| k.name() == name)
    }
}

/// The attention kernels: `attention.wgsl` (tiled) and `attention_rows.wgsl` (rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AttentionKernel {
    /// Rows on software adapters, tiles on GPUs.
    #[default]
    Auto,
    /// Query and key blocks staged in workgroup memory: for GPUs.
    Tiled,
    /// One row per invocation, no workgroup memory or barriers: for software adapters.
    Rows,
}

impl AttentionKernel {
    pub const VARIANTS: [AttentionKernel; 2] = [AttentionKernel::Tiled, AttentionKernel::Rows];

    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::Auto => "auto",
            AttentionKernel::Tiled => "tiled",
            AttentionKernel::Rows => "rows",
        }
    }
}

/// How a LoRA-wrapped linear runs its adapters' products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LoraKernel {
    /// Separate on every adapter for now: the only adapter measured (lavapipe) ran the
    /// ReLoRA step about 9 % slower fused (BENCHMARKS.md, "Fewer dispatches").
    #[default]
    Auto,
    /// Each product its own dispatch (`s · h Bᵀ` accumulated into y; `dh A` and dropout's
    /// mask into dx).
    Separate,
    /// The products as a low-rank term in the base product's epilogue: 3 dispatches fewer
    /// per wrapped linear and step under dropout, and no buffer for dropout'(dh A).
    Fused,
}

impl LoraKernel {
    pub const VARIANTS: [LoraKernel; 2] = [LoraKernel::Separate, LoraKernel::Fused];

    pub fn name(self) -> &'static str {
        match self {
            LoraKernel::Auto => "auto",
            LoraKernel::Separate => "separate",
            LoraKernel::Fused => "fused",
        }
    }

    /// Whether the products run fused (`Auto` resolved).
    pub fn fused(self) -> bool {
        self == LoraKernel::Fused
    }
}

impl fmt::Display for LoraKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for MatmulKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for AttentionKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The variant an adapter runs for each op: `Auto` unless pinned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KernelPins {
    pub matmul: MatmulKernel,
    pub attention: AttentionKernel,
    pub lora: LoraKernel,
}

fn pick<T: Copy>(
    op: &str,
    value: &str,
    variants: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    variants
        .iter()
        .copied()
        .find(|&v| name(v) == value)
        .ok_or_else(|| {
            let names: Vec<&str> = variants.iter().map(|&v| name(v)).collect();
            format!(
                "unknown {op} kernel '{value}': choose one of {}",
                names.join(", ")
            )
        })
}

impl FromStr for KernelPins {
    type Err = String;

    /// `op=variant` pairs separated by commas, e.g. `matmul=rows_8x4,attention=tiled`.
    fn from_str(s: &str) -> Result<Self, String> {
        let mut pins = KernelPins::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (op, value) = pair.split_once('=').ok_or_else(|| {
                format!("'{pair}' is not op=variant (e.g. matmul=rows_8x4 or attention=tiled)")
            })?;
            let all_m: Vec<MatmulKernel> = std::iter::once(MatmulKernel::Auto)
                .chain(MatmulKernel::VARIANTS)
                .collect();
            let all_a = [
                AttentionKernel::Auto,
                AttentionKernel::Tiled,
                AttentionKernel::Rows,
            ];
            match op.trim() {
                "matmul" => pins.matmul = pick("matmul", value.trim(), &all_m, MatmulKernel::name)?,
                "attention" => {
                    pins.attention = pick("attention", value.trim(), &all_a, AttentionKernel::name)?
                }
                "lora" => {
                    let all = [LoraKernel::Auto, LoraKernel::Separate, LoraKernel::Fused];
                    pins.lora = pick("lora", value.trim(), &all, LoraKernel::name)?
                }
                other => {
                    return Err(format!(
                        "unknown op '{other}' in --kernel: the ops with variants are matmul, \
                         attention and lora"
                    ))
                }
            }
        }
        Ok(pins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_bad_ones_are_explained() {
        let p: KernelPins = "matmul=rows_8x8, attention=rows".parse().unwrap();
        assert_eq!(p.matmul, MatmulKernel::Rows8x8);
        assert_eq!(p.attention, AttentionKernel::Rows);
        let p: KernelPins = "lora=fused".parse().unwrap();
        assert_eq!((p.lora, p.matmul), (LoraKernel::Fused, MatmulKernel::Auto));
        assert!("lora=fast"
            .parse::<KernelPins>()
            .unwrap_err()
            .contains("auto, separate, fused"));
        assert_eq!("".parse::<KernelPins>().unwrap(), KernelPins::default());
        let e = "matmul=fast".parse::<KernelPins>().unwrap_err();
        assert!(
            e.contains("auto, rows_8x4, rows_16x8, rows_8x8, rows_sg_16x8, tiled"),
            "{e}"
        );
        assert!("softmax=rows"
            .parse::<KernelPins>()
            .unwrap_err()
            .contains("unknown op"));
        assert!("matmul"
            .parse::<KernelPins>()
            .unwrap_err()
            .contains("op=variant"));
    }
}
