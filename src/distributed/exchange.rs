//! The gradient exchange of one optimizer step: each rank sums its micro-batches' values in
//! the fixed tree ([`super::tree`]), the ranks all-gather those partial sums bucket by
//! bucket (staged in host memory: wgpu buffers cannot be handed to MPI), and every rank
//! completes the tree the same way. The order of every addition is fixed by the micro-batch
//! indices alone, never by the number of ranks or by MPI's choice of algorithm (MPI only
//! moves bytes here; it adds nothing).

use super::tree::{block, canonical_nodes, complete, node_sum};
use super::Collective;
use crate::error::Result;
use std::collections::BTreeMap;
use std::time::Instant;

/// Values per all-gather bucket and node (16 MiB of f32): keeps each MPI message's element
/// count far below MPI's 32-bit limit and the host's extra memory bounded per message.
pub const BUCKET_VALUES: usize = 4 << 20;

/// What one exchange moved, and the time spent waiting in collectives.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub seconds: f64,
}

/// The sum over micro-batches `0..total` of `len`-element vectors, where this rank supplies
/// `leaf(i)` for the micro-batches of its block (asked in increasing order), summed in the
/// fixed tree: bitwise the same result on every rank and for every world size.
pub fn tree_sum(
    world: &dyn Collective,
    total: usize,
    len: usize,
    bucket_values: usize,
    mut leaf: impl FnMut(usize) -> Result<Vec<f32>>,
) -> Result<(Vec<f32>, CommStats)> {
    let n = world.size();
    let me = world.rank();
    let nodes_of: Vec<Vec<std::ops::Range<usize>>> = (0..n)
        .map(|r| canonical_nodes(&block(r, n, total), total))
        .collect();
    let mut mine = Vec::with_capacity(nodes_of[me].len());
    for node in &nodes_of[me] {
        mine.push(node_sum(node.clone(), &mut leaf)?);
    }
    let mut stats = CommStats::default();
    let mut all: BTreeMap<(usize, usize), Vec<f32>> = BTreeMap::new();
    if n == 1 {
        for (node, v) in nodes_of[0].iter().zip(mine) {
            all.insert((node.start, node.end), v);
        }
        return Ok((complete(total, all)?, stats));
    }
    for nodes in &nodes_of {
        for node in nodes {
            all.insert((node.start, node.end), Vec::with_capacity(len));
        }
    }
    let bucket = bucket_values.max(1);
    let mut start = 0;
    while start < len {
        let end = (start + bucket).min(len);
        let width = end - start;
        // One node (the usual case) is sent from where it lies; several are packed.
        let packed: Vec<f32>;
        let send: &[f32] = match mine.as_slice() {
            [one] => &one[start..end],
            _ => {
                packed = mine
                    .iter()
                    .flat_map(|v| v[start..end].iter().copied())
                    .collect();
                &packed
            }
        };
        let counts: Vec<usize> = nodes_of.iter().map(|nodes| nodes.len() * width).collect();
        let t = Instant::now();
        let gathered = world.all_gather_f32(send, &counts, "the gradient exchange")?;
        stats.seconds += t.elapsed().as_secs_f64();
        stats.bytes_sent += (send.len() * 4) as u64;
        stats.bytes_received += ((gathered.len() - send.len()) * 4) as u64;
        let mut at = 0;
        for nodes in &nodes_of {
            for node in nodes {
                let slot = all
                    .get_mut(&(node.start, node.end))
                    .expect("every canonical node has a slot");
                slot.extend_from_slice(&gathered[at..at + width]);
                at += width;
            }
        }
        start = end;
    }
    Ok((complete(total, all)?, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::SingleProcess;

    #[test]
    fn one_rank_sums_in_the_tree() {
        let leaves = [[1.0e8f32, 2.0], [1.0, 3.0], [-1.0e8, 5.0], [1.0, 7.0]];
        let (sum, stats) = tree_sum(&SingleProcess, 4, 2, 1, |i| Ok(leaves[i].to_vec())).unwrap();
        assert_eq!(sum, vec![(1.0e8 + 1.0) + (-1.0e8 + 1.0), 17.0]);
        assert_eq!(stats, CommStats::default());
    }
}
