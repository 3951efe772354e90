//! The matmul variants agree bit for bit (so the autotune's choice never changes a result), the
//! autotune measures a shape once and keeps its choice on disk, a corrupt choices file is
//! measured over, and a pin or the fixed rule is obeyed. One test: it sets WGTRAIN_CACHE for
//! the whole process.

mod common;

use common::{gpu_with, random};
use wgtrain::formulas::kernels::KernelPins;
use wgtrain::gpu::tuning::Tuning;
use wgtrain::ops::matmul_tune::{self, ProductShape};
use wgtrain::ops::{Matmul, MatmulKernel, MatmulSpec};
use wgtrain::{Gpu, GpuOptions, Tensor};

fn product_bits(gpu: &Gpu, s: ProductShape, spec: MatmulSpec) -> Vec<u32> {
    let a_dims = if s.trans_a { [s.k, s.m] } else { [s.m, s.k] };
    let b_dims = if s.trans_b { [s.n, s.k] } else { [s.k, s.n] };
    let a = Tensor::from_f32(gpu, &a_dims, &random(s.m * s.k, 1)).unwrap();
    let b = Tensor::from_f32(gpu, &b_dims, &random(s.k * s.n, 2)).unwrap();
    let c = Tensor::from_f32(gpu, &[s.m, s.n], &random(s.m * s.n, 3)).unwrap();
    Matmul::new(gpu, &a, &b, &c, spec).unwrap().run(gpu);
    c.to_vec_f32(gpu)
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

fn shape(m: usize, k: usize, n: usize, trans_a: bool, trans_b: bool) -> ProductShape {
    ProductShape {
        m,
        n,
        k,
        batch: 1,
        trans_a,
        trans_b,
    }
}

#[test]
fn variants_agree_and_the_autotune_keeps_its_choice() {
    let cache = std::env::temp_dir().join(format!("wgtrain-tune-{}", std::process::id()));
    std::fs::remove_dir_all(&cache).ok();
    std::env::set_var("WGTRAIN_CACHE", &cache);

    // Every variant, every layout, ragged shapes, with alpha and beta: the same bits.
    let gpu = gpu_with(GpuOptions::default());
    for (m, k, n) in [(37, 29, 71), (130, 67, 9), (8, 96, 384)] {
        for (ta, tb) in [(false, false), (false, true), (true, false)] {
            let s = shape(m, k, n, ta, tb);
            let spec = MatmulSpec {
                trans_a: ta,
                trans_b: tb,
                alpha: 0.75,
                beta: 1.0,
                ..MatmulSpec::default()
            };
            let kernels = wgtrain::ops::matmul::available_kernels(&gpu);
            let first = product_bits(&gpu, s, spec.with_kernel(kernels[0]));
            for kernel in &kernels[1..] {
                let got = product_bits(&gpu, s, spec.with_kernel(*kernel));
                assert!(
                    got == first,
                    "{kernel} differs from {} on {s:?}",
                    kernels[0]
                );
            }
        }
    }

    // A shape above the tuning threshold is measured once and recorded on disk.
    let big = shape(256, 128, 128, false, true);
    assert!(big.flops() >= matmul_tune::TUNE_MIN_FLOPS);
    let chosen = wgtrain::ops::matmul::choose_kernel(&gpu, big);
    assert!(wgtrain::ops::matmul::available_kernels(&gpu).contains(&chosen));
    let path = gpu
        .tuning()
        .path()
        .expect("a measuring device has a choices file")
        .to_path_buf();
    assert!(path.starts_with(&cache), "{}", path.display());
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&big.key()) && text.contains(chosen.name()),
        "{text}"
    );
    // A second device on the same adapter reads it back without measuring.
    let again = gpu_with(GpuOptions::default());
    assert_eq!(
        again.tuning().get(&big.key()).as_deref(),
        Some(chosen.name())
    );
    assert_eq!(wgtrain::ops::matmul::choose_kernel(&again, big), chosen);
    // Small products take the rule and record nothing.
    let small = shape(8, 8, 8, false, false);
    assert_eq!(
        wgtrain::ops::matmul::choose_kernel(&again, small),
        matmul_tune::rule(&again)
    );
    assert_eq!(again.tuning().get(&small.key()), None);
    drop((gpu, again));

    // A corrupt file is ignored, then rewritten whole at the next choice.
    std::fs::write(&path, "{ not json").unwrap();
    let fresh = gpu_with(GpuOptions::default());
    assert_eq!(fresh.tuning().get(&big.key()), None);
    let chosen = wgtrain::ops::matmul::choose_kernel(&fresh, big);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&big.key()) && text.contains(chosen.name()),
        "{text}"
    );
    serde_json::from_str::<serde_json::Value>(&text).expect("rewritten as JSON");
    drop(fresh);

    // The fixed rule neither measures nor writes; a pin wins over both.
    std::fs::remove_dir_all(&cache).unwrap();
    let rule = gpu_with(GpuOptions {
        tuning: Tuning::Rule,
        ..GpuOptions::default()
    });
    assert!(rule.tuning().path().is_none());
    assert_eq!(
        wgtrain::ops::matmul::choose_kernel(&rule, big),
        matmul_tune::rule(&rule)
    );
    assert!(!cache.exists());
    let pinned = gpu_with(GpuOptions {
        kernels: KernelPins {
            matmul: MatmulKernel::Rows8x8,
            ..KernelPins::default()
        },
        tuning: Tuning::Rule,
        ..GpuOptions::default()
    });
    assert_eq!(pinned.kernels().matmul, MatmulKernel::Rows8x8);
    std::fs::remove_dir_all(&cache).ok();
}
