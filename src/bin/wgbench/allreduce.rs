//! `wgbench allreduce` (feature `mpi`, under mpirun): the gradient exchange of data-parallel
//! training, the fixed-tree all-gather that makes every world size give the same bits, timed
//! on the gradient sizes of pico's presets against MPI's own all-reduce (sum) of the same
//! values in the same run.

use std::time::{Duration, Instant};
use wgtrain::distributed::exchange::{tree_sum, BUCKET_VALUES};
use wgtrain::distributed::mpi_world::MpiWorld;
use wgtrain::distributed::Collective;
use wgtrain::model::config::ModelConfig;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn bench_allreduce(presets: &str, repeats: usize) -> wgtrain::Result<()> {
    let world = MpiWorld::init(Duration::from_secs(600))?;
    let n = world.size();
    let me = world.rank();
    if me == 0 {
        println!(
            "gradient exchange over {n} ranks (one micro-batch per rank), median of {repeats}; \
             baseline: MPI_Allreduce (sum) of the same values in the same run"
        );
        println!(
            "| model | values | sent per rank | received per rank | fixed tree (s) | of which \
             in MPI (s) | MPI_Allreduce (s) | tree / allreduce |"
        );
        println!("|---|---|---|---|---|---|---|---|");
    }
    for preset in presets.split(',') {
        let config = ModelConfig::preset(preset.trim())?;
        // Every parameter's gradient, and the loss, as the trainer exchanges them.
        let len = config.num_params() + 1;
        let mine: Vec<f32> = (0..len)
            .map(|i| ((i * 31 + me * 7) % 1000) as f32 * 1e-3)
            .collect();
        let (mut tree, mut inside, mut base) = (Vec::new(), Vec::new(), Vec::new());
        let mut stats = Default::default();
        for _ in 0..repeats.max(1) {
            world.barrier();
            let t = Instant::now();
            let (sum, s) = tree_sum(&world, n, len, BUCKET_VALUES, |_| Ok(mine.clone()))?;
            tree.push(t.elapsed().as_secs_f64());
            inside.push(s.seconds);
            stats = s;
            std::hint::black_box(sum);
            world.barrier();
            let t = Instant::now();
            std::hint::black_box(world.all_reduce_sum_baseline(&mine));
            base.push(t.elapsed().as_secs_f64());
        }
        if me == 0 {
            let (t, i, b) = (median(tree), median(inside), median(base));
            println!(
                "| {preset} | {len} | {:.1} MiB | {:.1} MiB | {t:.3} | {i:.3} | {b:.3} | {:.2}x |",
                stats.bytes_sent as f64 / (1 << 20) as f64,
                stats.bytes_received as f64 / (1 << 20) as f64,
                t / b
            );
        }
    }
    Ok(())
}
