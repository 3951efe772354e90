//! [`Collective`] over MPI (rsmpi on the system's MPI library, e.g. OpenMPI). Every wait is
//! a non-blocking MPI operation polled against a deadline, so a rank that died or hangs is
//! noticed within the timeout: the rank that notices names the peer, prints the last
//! checkpoint and the resume command, and aborts the job (MPI_Abort stops every rank; the
//! checkpoint on disk is untouched, as checkpoints are written atomically).

use super::Collective;
use crate::error::{Error, Result};
use mpi::datatype::PartitionMut;
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Count;
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of a host name kept for messages.
const HOST_BYTES: usize = 64;
/// The tag of the per-step arrival messages.
const ARRIVAL_TAG: i32 = 0x5747;

/// Whether this process was started by an MPI launcher (mpirun, mpiexec, srun).
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

pub struct MpiWorld {
    // Dropped last: finalizes MPI.
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    local_rank: usize,
    hosts: Vec<String>,
    timeout: Cell<Duration>,
    resume_hint: Arc<Mutex<String>>,
    _universe: mpi::environment::Universe,
}

impl MpiWorld {
    /// Initialize MPI and learn every rank's host; `timeout` bounds every wait on a peer.
    pub fn init(timeout: Duration) -> Result<MpiWorld> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::Invalid("MPI could not be initialized (was it initialized twice?)".into())
        })?;
        let world = universe.world();
        let rank = world.rank() as usize;
        let size = world.size() as usize;
        let local_rank = world.split_shared(rank as i32).rank() as usize;
        let mut name = [0u8; HOST_BYTES];
        let host = mpi::environment::processor_name().unwrap_or_else(|_| "?".into());
        for (d, s) in name.iter_mut().zip(host.bytes()) {
            *d = s;
        }
        let mut all = vec![0u8; HOST_BYTES * size];
        world.all_gather_into(&name[..], &mut all[..]);
        let hosts = all
            .chunks(HOST_BYTES)
            .map(|c| {
                let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
                String::from_utf8_lossy(&c[..end]).into_owned()
            })
            .collect();
        Ok(MpiWorld {
            world,
            rank,
            size,
            local_rank,
            hosts,
            timeout: Cell::new(timeout),
            resume_hint: Arc::default(),
            _universe: universe,
        })
    }

    /// Change the bound on waits (startup, where rank 0 may tokenize data first, waits longer).
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout.set(timeout);
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.get()
    }

    /// Report `message` with the resume hint and stop every rank.
    fn fail(&self, message: &str) -> ! {
        let hint = self.resume_hint.lock().map_or(String::new(), |h| h.clone());
        eprintln!(
            "\nerror: {} (data-parallel training stopped): {message}",
            self.describe_rank(self.rank)
        );
        if !hint.is_empty() {
            eprintln!("{hint}");
        }
        self.world.abort(1)
    }

    /// Poll `req` until it completes; past `deadline`, fail with `timed_out()`.
    fn wait<'a, B: ?Sized, S: Scope<'a>>(
        &self,
        mut req: Request<'a, B, S>,
        deadline: Instant,
        timed_out: impl FnOnce() -> String,
    ) {
        loop {
            match req.test() {
                Ok(_) => return,
                Err(r) => req = r,
            }
            if Instant::now() >= deadline {
                self.fail(&timed_out());
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout.get()
    }

    fn counts(&self, counts: &[usize], what: &str) -> Result<(Vec<Count>, Vec<Count>)> {
        let too_big = || {
            Error::Invalid(format!(
                "{what}: a message of more than {} values, above MPI's 32-bit counts",
                Count::MAX
            ))
        };
        let mut displs = Vec::with_capacity(counts.len());
        let mut at: usize = 0;
        for &c in counts {
            displs.push(Count::try_from(at).map_err(|_| too_big())?);
            at += c;
        }
        let counts = counts
            .iter()
            .map(|&c| Count::try_from(c).map_err(|_| too_big()))
            .collect::<Result<Vec<_>>>()?;
        Ok((counts, displs))
    }

    fn collective_timeout(&self, what: &str) -> String {
        format!(
            "not every rank joined {what} within {} s: a rank has died or hangs",
            self.timeout.get().as_secs()
        )
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn local_rank(&self) -> usize {
        self.local_rank
    }

    fn describe_rank(&self, rank: usize) -> String {
        match self.hosts.get(rank) {
            Some(h) => format!("rank {rank} (host {h})"),
            None => format!("rank {rank}"),
        }
    }

    fn all_gather_bytes(&self, mine: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
        let len = mine.len() as u64;
        let mut lens = vec![0u64; self.size];
        let deadline = self.deadline();
        mpi::request::scope(|scope| {
            let req = self
                .world
                .immediate_all_gather_into(scope, &len, &mut lens[..]);
            self.wait(req, deadline, || self.collective_timeout(what));
        });
        let sizes: Vec<usize> = lens.iter().map(|&l| l as usize).collect();
        let (counts, displs) = self.counts(&sizes, what)?;
        let mut all = vec![0u8; sizes.iter().sum()];
        {
            let mut part = PartitionMut::new(&mut all[..], counts, &displs[..]);
            mpi::request::scope(|scope| {
                let req = self
                    .world
                    .immediate_all_gather_varcount_into(scope, mine, &mut part);
                self.wait(req, deadline, || self.collective_timeout(what));
            });
        }
        let mut out = Vec::with_capacity(self.size);
        let mut at = 0;
        for s in sizes {
            out.push(all[at..at + s].to_vec());
            at += s;
        }
        Ok(out)
    }

    fn all_gather_f32(&self, mine: &[f32], counts: &[usize], what: &str) -> Result<Vec<f32>> {
        if counts.len() != self.size || counts[self.rank] != mine.len() {
            return Err(Error::Invalid(format!(
                "{what}: rank {} gives {} values, the plan says {:?}",
                self.rank,
                mine.len(),
                counts
            )));
        }
        let (c, displs) = self.counts(counts, what)?;
        let mut all = vec![0f32; counts.iter().sum()];
        {
            let mut part = PartitionMut::new(&mut all[..], c, &displs[..]);
            let deadline = self.deadline();
            mpi::request::scope(|scope| {
                let req = self
                    .world
                    .immediate_all_gather_varcount_into(scope, mine, &mut part);
                self.wait(req, deadline, || self.collective_timeout(what));
            });
        }
        Ok(all)
    }

    fn broadcast_f32(&self, buf: &mut [f32], what: &str) -> Result<()> {
        let root = self.world.process_at_rank(0);
        for chunk in buf.chunks_mut(super::exchange::BUCKET_VALUES) {
            let deadline = self.deadline();
            mpi::request::scope(|scope| {
                let req = root.immediate_broadcast_into(scope, chunk);
                self.wait(req, deadline, || self.collective_timeout(what));
            });
        }
        Ok(())
    }

    fn agree_to_stop(&self, step: u64, stop: bool) -> Result<bool> {
        let secs = self.timeout.get().as_secs();
        let deadline = self.deadline();
        if self.rank != 0 {
            // Tell rank 0 this rank has arrived; its answer says whether every rank goes on.
            let mine = [step, stop as u64];
            let mut answer = [0u64; 2];
            let zero = self.world.process_at_rank(0);
            mpi::request::scope(|scope| {
                let sent = zero.immediate_send_with_tag(scope, &mine[..], ARRIVAL_TAG);
                let got = zero.immediate_receive_into_with_tag(scope, &mut answer[..], ARRIVAL_TAG);
                let silent = || {
                    format!(
                        "{} has not answered at step {step} within {secs} s: it has died or hangs",
                        self.describe_rank(0)
                    )
                };
                self.wait(got, deadline, silent);
                self.wait(sent, deadline, silent);
            });
            if answer[0] != step {
                self.fail(&format!(
                    "rank 0 is at step {}, this rank at step {step}: the ranks are out of step",
                    answer[0]
                ));
            }
            return Ok(answer[1] != 0);
        }
        let mut arrived = vec![[0u64; 2]; self.size - 1];
        mpi::request::scope(|scope| {
            let mut pending: Vec<(usize, Request<'_, [u64], _>)> = arrived
                .iter_mut()
                .enumerate()
                .map(|(i, buf)| {
                    let r = i + 1;
                    let p = self.world.process_at_rank(r as i32);
                    (
                        r,
                        p.immediate_receive_into_with_tag(scope, &mut buf[..], ARRIVAL_TAG),
                    )
                })
                .collect();
            while !pending.is_empty() {
                let mut still = Vec::new();
                for (r, req) in pending {
                    if let Err(req) = req.test() {
                        still.push((r, req));
                    }
                }
                pending = still;
                if pending.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    let names: Vec<String> = pending
                        .iter()
                        .map(|(r, _)| self.describe_rank(*r))
                        .collect();
                    self.fail(&format!(
                        "{} {} not reached step {step} within {secs} s: died or hangs",
                        names.join(", "),
                        if names.len() == 1 { "has" } else { "have" }
                    ));
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        for (i, a) in arrived.iter().enumerate() {
            if a[0] != step {
                self.fail(&format!(
                    "{} is at step {}, rank 0 at step {step}: the ranks are out of step",
                    self.describe_rank(i + 1),
                    a[0]
                ));
            }
        }
        let any = stop || arrived.iter().any(|a| a[1] != 0);
        let answer = [step, any as u64];
        mpi::request::scope(|scope| {
            for r in 1..self.size {
                let p = self.world.process_at_rank(r as i32);
                let sent = p.immediate_send_with_tag(scope, &answer[..], ARRIVAL_TAG);
                self.wait(sent, deadline, || {
                    format!(
                        "{} did not take the answer for step {step} within {secs} s",
                        self.describe_rank(r)
                    )
                });
            }
        });
        Ok(any)
    }

    fn set_resume_hint(&self, hint: String) {
        if let Ok(mut h) = self.resume_hint.lock() {
            *h = hint;
        }
    }

    fn shared_resume_hint(&self) -> Arc<Mutex<String>> {
        self.resume_hint.clone()
    }
}

impl MpiWorld {
    /// MPI's own all-reduce (sum) of `values`: the baseline `wgbench allreduce` measures the
    /// fixed-tree exchange against. Its order of additions is MPI's choice, so its result may
    /// differ in the last bits between world sizes; it is never used for training.
    pub fn all_reduce_sum_baseline(&self, values: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; values.len()];
        for (send, recv) in values
            .chunks(super::exchange::BUCKET_VALUES)
            .zip(out.chunks_mut(super::exchange::BUCKET_VALUES))
        {
            self.world
                .all_reduce_into(send, recv, mpi::collective::SystemOperation::sum());
        }
        out
    }

    /// Wait until every rank gets here (benchmarks line their timings up with it).
    pub fn barrier(&self) {
        self.world.barrier();
    }
}
