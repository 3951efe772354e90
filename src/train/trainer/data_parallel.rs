//! The trainer as one rank of data-parallel training ([`crate::distributed`]): how the ranks
//! start (rank 0 first, then the others, then a check that all train the same run), agree on
//! stopping, exchange gradients each step, and check at every checkpoint that their weights
//! are still rank 0's.

use super::Trainer;
use crate::distributed::exchange::CommStats;
use crate::distributed::{Collective, Fault};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::decoder::Decoder;
use crate::train::step::{GradientStaging, Submitted, TrainingStep};
use crate::train::tokenizer::{fnv1a64, FNV_OFFSET};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Weights or optimizer moments read back from the device: (name, shape, values).
type HostTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// A trainer's place among the ranks.
pub struct DataParallel<'g> {
    world: &'g dyn Collective,
    staging: Option<GradientStaging>,
    fault: Option<Fault>,
}

impl<'g> DataParallel<'g> {
    pub fn new(world: &'g dyn Collective) -> Result<DataParallel<'g>> {
        Ok(DataParallel {
            world,
            staging: None,
            fault: Fault::from_env()?,
        })
    }

    /// Rank 0 writes the log and the checkpoints and prints progress.
    pub fn is_leader(&self) -> bool {
        self.world.rank() == 0
    }

    pub fn world(&self) -> &'g dyn Collective {
        self.world
    }

    /// The host staging for `model`'s gradients.
    pub(super) fn prepare(&mut self, gpu: &Gpu, model: &Decoder) -> Result<()> {
        self.staging = Some(GradientStaging::new(gpu, model)?);
        Ok(())
    }

    /// Submit optimizer step `done + 1` with the gradients summed over the ranks.
    pub(super) fn submit(
        &mut self,
        gpu: &Gpu,
        engine: &mut TrainingStep,
        done: u64,
        next_batch: impl FnMut() -> Result<Vec<u32>>,
    ) -> Result<(Submitted, CommStats)> {
        let staging = self
            .staging
            .as_ref()
            .ok_or_else(|| Error::Invalid("data-parallel trainer used before prepare".into()))?;
        engine.submit_exchanged(gpu, done, self.world, staging, next_batch)
    }

    /// The metrics-log values of one step's exchange.
    pub(super) fn comm_values(&self, c: CommStats) -> Vec<(&'static str, f64)> {
        vec![
            ("dist/ranks", self.world.size() as f64),
            ("dist/bytes_sent", c.bytes_sent as f64),
            ("dist/bytes_received", c.bytes_received as f64),
            ("dist/comm_seconds", c.seconds),
        ]
    }
}

/// What each rank tells the others at the start and at every checkpoint.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RankStatus {
    error: Option<String>,
    config: u64,
    data: u64,
    tokenizer: u64,
    weights: u64,
    step: u64,
    micro_batches: usize,
    adapter: String,
}

impl RankStatus {
    fn failed(e: &Error) -> RankStatus {
        RankStatus {
            error: Some(e.to_string()),
            ..Default::default()
        }
    }
}

/// Every rank's status, in rank order.
fn gather(world: &dyn Collective, mine: &RankStatus, what: &str) -> Result<Vec<RankStatus>> {
    let bytes = serde_json::to_vec(mine).map_err(|e| Error::Invalid(e.to_string()))?;
    world
        .all_gather_bytes(&bytes, what)?
        .iter()
        .map(|b| serde_json::from_slice(b).map_err(|e| Error::Invalid(format!("{what}: {e}"))))
        .collect()
}

/// The values of tensor `name` in `set`.
fn find<'a>(set: &'a HostTensors, name: &str) -> Option<&'a [f32]> {
    set.iter().find(|t| t.0 == name).map(|t| t.2.as_slice())
}

/// One hash of the weights and moments, bit for bit.
fn weights_hash(params: &HostTensors, moments: &HostTensors) -> u64 {
    let mut h = FNV_OFFSET;
    for (name, _, values) in params.iter().chain(moments) {
        h = fnv1a64(h, name.as_bytes());
        h = fnv1a64(h, bytemuck::cast_slice(values));
    }
    h
}

/// The ranks' failures, as one message naming each, or `None` if every rank is fine.
fn failures(world: &dyn Collective, statuses: &[RankStatus]) -> Option<String> {
    let lines: Vec<String> = statuses
        .iter()
        .enumerate()
        .filter_map(|(r, s)| {
            let e = s.error.as_ref()?;
            Some(format!("{}: {e}", world.describe_rank(r)))
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Build this rank's trainer with `build`, rank 0 first (it may create the run directory,
/// train a tokenizer or tokenize the data, which the others then find), and check that every
/// rank trains the same run: the same config, data, tokenizer and step, with at least one
/// micro-batch per rank. Ranks whose initial weights differ from rank 0's take rank 0's.
pub fn start_in_order<'g>(
    world: &'g dyn Collective,
    build: impl FnOnce(DataParallel<'g>) -> Result<Trainer<'g>>,
) -> Result<Trainer<'g>> {
    let leader = world.rank() == 0;
    let mut build = Some(build);
    let mut build_once = || match build.take() {
        Some(b) => DataParallel::new(world).and_then(b),
        None => Err(Error::Invalid("the trainer was built twice".into())),
    };
    let mut built = None;
    if leader {
        built = Some(build_once());
    }
    // Rank 0 says whether it started; the others build only once it has.
    let said = match &built {
        Some(Err(e)) => RankStatus::failed(e),
        _ => RankStatus::default(),
    };
    let first = gather(world, &said, "the start of the run (rank 0's set-up)")?;
    if let Some(e) = &first[0].error {
        return match built {
            Some(result) => result,
            None => Err(Error::RanksDisagree(format!("rank 0 could not start: {e}"))),
        };
    }
    let built = match built {
        Some(result) => result,
        None => build_once(),
    };
    let mine = match &built {
        Ok(t) => t.status().unwrap_or_else(|e| RankStatus::failed(&e)),
        Err(e) => RankStatus::failed(e),
    };
    let statuses = gather(world, &mine, "the start of the run")?;
    if let Some(message) = failures(world, &statuses) {
        return match built {
            Err(e) if mine.error.is_some() && !leader => Err(e),
            _ => Err(Error::RanksDisagree(format!(
                "data-parallel training cannot start:\n{message}"
            ))),
        };
    }
    let mut t = built?;
    let reference = &statuses[0];
    let mut problems = Vec::new();
    for (r, s) in statuses.iter().enumerate().skip(1) {
        let who = world.describe_rank(r);
        let differs = [
            (s.config != reference.config, "its training config differs from rank 0's (give every rank the same --config and --set)"),
            (s.data != reference.data, "it reads other data than rank 0 (the same data path must hold the same files on every machine)"),
            (s.tokenizer != reference.tokenizer, "its tokenizer differs from rank 0's"),
            (s.step != reference.step, "it starts at another step than rank 0 (resume every rank from the same checkpoint)"),
        ];
        for (bad, why) in differs {
            if bad {
                problems.push(format!("{who}: {why}"));
            }
        }
    }
    let n = world.size();
    if reference.micro_batches < n {
        problems.push(format!(
            "{n} ranks, but a step has only {} micro-batch(es) \
             (training.optimization.gradient_accumulation_steps) to share: use at most {} ranks, \
             or raise gradient_accumulation_steps (the global batch stays data.dataloader.batch_size)",
            reference.micro_batches, reference.micro_batches
        ));
    }
    if !problems.is_empty() {
        return Err(Error::RanksDisagree(format!(
            "data-parallel training refused:\n{}",
            problems.join("\n")
        )));
    }
    if statuses.iter().any(|s| s.weights != reference.weights) {
        t.take_rank0_weights("at the start")?;
    }
    world.set_resume_hint(t.resume_hint());
    Ok(t)
}

impl<'g> Trainer<'g> {
    /// Whether this trainer writes the run's files: alone, or rank 0 of data-parallel training.
    pub fn is_leader(&self) -> bool {
        self.parallel.as_ref().is_none_or(DataParallel::is_leader)
    }

    /// The other ranks, in data-parallel training.
    pub fn parallel(&self) -> Option<&DataParallel<'g>> {
        self.parallel.as_ref()
    }

    fn status(&self) -> Result<RankStatus> {
        let params = pollster::block_on(self.engine.model.read_params(self.gpu))?;
        let moments = pollster::block_on(self.engine.optim.read_state(self.gpu))?;
        Ok(RankStatus {
            error: None,
            config: fnv1a64(FNV_OFFSET, self.config.to_yaml().as_bytes()),
            data: self.data.fingerprint()?,
            tokenizer: self.tokenizer.as_ref().map_or(0, |t| t.fingerprint()),
            weights: weights_hash(&params, &moments),
            step: self.step,
            micro_batches: self.engine.accumulation(),
            adapter: self.gpu.adapter.name.clone(),
        })
    }

    /// Whether training stops before step `step + 1`: alone, `stop`; with other ranks,
    /// whether any rank's `stop` is set (every rank gets the same answer).
    pub(super) fn stop_requested(&mut self, stop: bool) -> Result<bool> {
        let Some(p) = &self.parallel else {
            return Ok(stop);
        };
        let next = self.step + 1;
        if let Some(f) = p.fault {
            f.strike(p.world.rank(), next);
        }
        p.world.agree_to_stop(next, stop)
    }

    /// After a checkpoint of the weights `params` and moments `moments` (rank 0 wrote it to
    /// `dir`, with result `written`; other ranks pass `None`): every rank learns whether it
    /// was written, and ranks whose weights drifted from rank 0's take rank 0's.
    pub(super) fn after_save(
        &mut self,
        written: Option<Result<PathBuf>>,
        dir: &Path,
        params: &HostTensors,
        moments: &HostTensors,
    ) -> Result<()> {
        let Some(p) = &self.parallel else {
            return Ok(());
        };
        let world = p.world;
        let mut mine = RankStatus {
            weights: weights_hash(params, moments),
            step: self.step,
            ..Default::default()
        };
        let written = match written {
            Some(Err(e)) => {
                mine.error = Some(e.to_string());
                Some(e)
            }
            _ => None,
        };
        let statuses = gather(world, &mine, "the checkpoint")?;
        if let Some(e) = written {
            return Err(e);
        }
        if let Some(message) = failures(world, &statuses) {
            return Err(Error::RanksDisagree(format!(
                "the checkpoint {} could not be written:\n{message}",
                dir.display()
            )));
        }
        if statuses.iter().any(|s| s.weights != statuses[0].weights) {
            self.take_rank0_weights(&format!("after step {}", self.step))?;
            self.log.write(self.step, &[("dist/resynced", 1.0)])?;
        }
        self.last_checkpoint = Some(dir.to_path_buf());
        world.set_resume_hint(self.resume_hint());
        Ok(())
    }

    /// Every rank takes rank 0's weights and optimizer moments (ranks whose adapters
    /// compute differently drift apart by rounding; this brings them back).
    fn take_rank0_weights(&mut self, when: &str) -> Result<()> {
        let Some(p) = &self.parallel else {
            return Ok(());
        };
        let world = p.world;
        if world.rank() == 0 {
            eprintln!(
                "note: the ranks' weights differ {when} (adapters that round differently?): \
                 every rank takes rank 0's"
            );
        }
        let gpu = self.gpu;
        let mut params = pollster::block_on(self.engine.model.read_params(gpu))?;
        let mut moments = pollster::block_on(self.engine.optim.read_state(gpu))?;
        for (_, _, v) in params.iter_mut().chain(moments.iter_mut()) {
            world.broadcast_f32(v, "rank 0's weights")?;
        }
        self.engine.model.load_params(gpu, |n| find(&params, n))?;
        self.engine.optim.load_state(gpu, |n| find(&moments, n))?;
        Ok(())
    }

    /// What to tell the user if a rank fails: the last checkpoint and the command that
    /// continues from it.
    fn resume_hint(&self) -> String {
        let n = self.parallel.as_ref().map_or(1, |p| p.world.size());
        match &self.last_checkpoint {
            Some(c) => format!(
                "the last checkpoint is {} (intact); continue with: mpirun -np {n} wgtrain train \
                 --resume {} (any number of ranks continues the run exactly)",
                c.display(),
                self.run_dir.display()
            ),
            None => "no checkpoint has been saved yet: start the run again".to_string(),
        }
    }
}
