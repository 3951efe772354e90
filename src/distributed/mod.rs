//! Data parallelism: one model trained by several processes (ranks), each on its own adapter,
//! launched by MPI (`mpirun -np N wgtrain train ...`, cargo feature `mpi`).
//!
//! Every rank holds the whole model and optimizer. An optimizer step's micro-batches are
//! split into contiguous blocks, one per rank ([`tree::block`]); each rank computes the
//! gradients of its block, the ranks exchange partial sums of a fixed summation tree
//! ([`tree`], [`exchange`]), and every rank applies the same AdamW update to the same summed
//! gradient. The tree does not depend on the number of ranks, so the weights after every
//! step are bitwise the same for 1, 2 or 4 ranks (on adapters that compute alike).
//!
//! [`Collective`] is what the trainer needs from the ranks' transport: [`SingleProcess`] is
//! the one-rank world (no MPI, used by tests and by `wgtrain` built without the feature),
//! `MpiWorld` (feature `mpi`) is MPI's. Waits on other ranks are bounded: a rank that dies
//! or hangs is named and the run stops with the resume command.

pub mod exchange;
#[cfg(all(feature = "mpi", not(target_arch = "wasm32")))]
pub mod mpi_world;
pub mod tree;

use crate::error::{Error, Result};
use std::sync::{Arc, Mutex};

/// The operations data-parallel training needs from its ranks. Every method is collective:
/// all ranks call it, in the same order. A peer that does not join within the world's
/// timeout stops the run (the rank noticing it names the peer).
pub trait Collective {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// This rank's index among the ranks on its machine (chooses its adapter).
    fn local_rank(&self) -> usize;
    /// A name for this rank in messages: `rank R (host H)`.
    fn describe_rank(&self, rank: usize) -> String;
    /// Every rank's `mine`, in rank order.
    fn all_gather_bytes(&self, mine: &[u8], what: &str) -> Result<Vec<Vec<u8>>>;
    /// Every rank's `mine` (rank `r` gives `counts[r]` values), concatenated in rank order.
    fn all_gather_f32(&self, mine: &[f32], counts: &[usize], what: &str) -> Result<Vec<f32>>;
    /// Rank 0's `buf` on every rank (every rank's `buf` has the same length).
    fn broadcast_f32(&self, buf: &mut [f32], what: &str) -> Result<()>;
    /// The start of optimizer step `step`: every rank says whether it wants to stop (Ctrl-C);
    /// the answer, the same on every rank, is whether any does. A rank that has not arrived
    /// within the timeout is named, and the run stops.
    fn agree_to_stop(&self, step: u64, stop: bool) -> Result<bool>;
    /// The command and checkpoint to name if the run has to stop on a fault.
    fn set_resume_hint(&self, hint: String);
    /// The hint of [`Collective::set_resume_hint`], shared with a signal handler (which runs
    /// on another thread, and may be all that runs before mpirun kills a job).
    fn shared_resume_hint(&self) -> Arc<Mutex<String>>;
}

/// The world of one process: every collective is the identity.
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn describe_rank(&self, rank: usize) -> String {
        format!("rank {rank}")
    }
    fn all_gather_bytes(&self, mine: &[u8], _what: &str) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }
    fn all_gather_f32(&self, mine: &[f32], counts: &[usize], what: &str) -> Result<Vec<f32>> {
        if counts != [mine.len()] {
            return Err(Error::Invalid(format!(
                "{what}: counts {counts:?} for one rank"
            )));
        }
        Ok(mine.to_vec())
    }
    fn broadcast_f32(&self, _buf: &mut [f32], _what: &str) -> Result<()> {
        Ok(())
    }
    fn agree_to_stop(&self, _step: u64, stop: bool) -> Result<bool> {
        Ok(stop)
    }
    fn set_resume_hint(&self, _hint: String) {}
    fn shared_resume_hint(&self) -> Arc<Mutex<String>> {
        Arc::default()
    }
}

/// A fault to inject on one rank, for the tests of fault handling: the environment variable
/// `WGTRAIN_TEST_FAULT=RANK:die:STEP` kills rank RANK (SIGKILL) at the start of step STEP,
/// `RANK:hang:STEP` makes it stop answering there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub rank: usize,
    pub step: u64,
    pub hang: bool,
}

impl Fault {
    pub const ENV: &'static str = "WGTRAIN_TEST_FAULT";

    /// The fault the environment asks for, if any.
    pub fn from_env() -> Result<Option<Fault>> {
        match std::env::var(Self::ENV) {
            Ok(s) if !s.is_empty() => Self::parse(&s).map(Some),
            _ => Ok(None),
        }
    }

    pub fn parse(s: &str) -> Result<Fault> {
        let bad = || {
            Error::Invalid(format!(
                "{}={s}: expected RANK:die:STEP or RANK:hang:STEP",
                Self::ENV
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [rank, kind, step] = parts[..] else {
            return Err(bad());
        };
        Ok(Fault {
            rank: rank.parse().map_err(|_| bad())?,
            step: step.parse().map_err(|_| bad())?,
            hang: match kind {
                "die" => false,
                "hang" => true,
                _ => return Err(bad()),
            },
        })
    }

    /// Carry out the fault if it is this rank's at `step`.
    pub fn strike(&self, rank: usize, step: u64) {
        if rank != self.rank || step != self.step {
            return;
        }
        if self.hang {
            eprintln!("{}: rank {rank} hangs at step {step}", Self::ENV);
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        eprintln!("{}: rank {rank} is killed at step {step}", Self::ENV);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &std::process::id().to_string()])
                .status();
        }
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_refuse_garbage() {
        let f = Fault::parse("1:hang:3").unwrap();
        assert_eq!((f.rank, f.step, f.hang), (1, 3, true));
        assert!(!Fault::parse("0:die:2").unwrap().hang);
        for bad in ["", "1:hang", "x:die:2", "1:explode:2", "1:die:2:3"] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
    }
}
