//! Seeded parameter initialisation with the reference's distributions: linear weights
//! U(-1/sqrt(fan_in), +1/sqrt(fan_in)) (PyTorch's default, also for the output projection,
//! an `nn.Linear`), the input embedding N(0, 1), norm weights ones. Each parameter draws from
//! its own stream (seed and name), so adding a parameter never changes the others.

/// splitmix64: small, fast, and good enough for initialisation and data shuffling.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // in (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

fn name_hash(name: &str) -> u64 {
    // FNV-1a
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Initial values of the parameter `name` with `shape` ([out, in] for linear weights).
pub fn init_param(name: &str, shape: &[usize], seed: u64) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let mut rng = Rng::new(seed ^ name_hash(name));
    if name.ends_with("norm.weight") {
        vec![1.0; n]
    } else if name == "embedding_proj.weight" {
        (0..n).map(|_| rng.normal() as f32).collect()
    } else {
        let fan_in = *shape.last().unwrap_or(&1) as f64;
        let bound = 1.0 / fan_in.sqrt();
        (0..n)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_and_reproducibility() {
        let w = init_param("layers.0.swiglu.w_0.weight", &[384, 96], 7);
        let bound = 1.0 / 96f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        let mean = w.iter().sum::<f32>() / w.len() as f32;
        assert!(mean.abs() < 0.01 * bound * 10.0);
        assert_eq!(w, init_param("layers.0.swiglu.w_0.weight", &[384, 96], 7));
        assert_ne!(w, init_param("layers.0.swiglu.w_0.weight", &[384, 96], 8));
        let e = init_param("embedding_proj.weight", &[1000, 50], 1);
        let m = e.iter().map(|&v| v as f64).sum::<f64>() / e.len() as f64;
        let var = e.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / e.len() as f64;
        assert!(
            m.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "mean {m} var {var}"
        );
        assert!(init_param("output_norm.weight", &[96], 1)
            .iter()
            .all(|&v| v == 1.0));
    }
}
