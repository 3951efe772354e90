//! The fixed summation tree over an optimizer step's micro-batches.
//!
//! Floating-point addition is not associative, so a sum is reproducible only if its order is
//! fixed. Here the order is a binary tree over the micro-batch indices `0..A` that does not
//! depend on how many ranks share the work: node `lo..hi` is the sum of its halves
//! `lo..mid` and `mid..hi` with `mid = lo + (hi - lo) / 2`, left plus right, element by
//! element, in f32. A rank owns a contiguous block of micro-batches; it computes the tree's
//! nodes that lie inside its block (its *canonical nodes*: inside the block, their parent
//! not), the ranks exchange those, and every rank completes the tree above them the same
//! way. Each node is computed by the same additions in every world size, so the result is
//! bitwise that of one rank computing the whole tree.

use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::ops::Range;

/// The micro-batches (of `total`, indices `0..total`) that `rank` of `world` computes: a
/// contiguous block, the first `total % world` ranks taking one more.
pub fn block(rank: usize, world: usize, total: usize) -> Range<usize> {
    let start = |r: usize| r * total / world;
    start(rank)..start(rank + 1)
}

/// The tree's split point of node `lo..hi` (at least two leaves).
fn mid(node: &Range<usize>) -> usize {
    node.start + (node.end - node.start) / 2
}

/// The tree's nodes inside `block` whose parent is not inside it, left to right: what a
/// rank owning `block` of `0..total` contributes.
pub fn canonical_nodes(block: &Range<usize>, total: usize) -> Vec<Range<usize>> {
    fn walk(node: Range<usize>, block: &Range<usize>, out: &mut Vec<Range<usize>>) {
        if node.end <= block.start || node.start >= block.end {
            return;
        }
        if block.start <= node.start && node.end <= block.end {
            out.push(node);
            return;
        }
        let m = mid(&node);
        walk(node.start..m, block, out);
        walk(m..node.end, block, out);
    }
    let mut out = Vec::new();
    if !block.is_empty() {
        walk(0..total, block, &mut out);
    }
    out
}

/// Adds `right` into `left`, element by element (the tree's one operation).
fn add_into(left: &mut [f32], right: &[f32]) {
    for (l, r) in left.iter_mut().zip(right) {
        *l += *r;
    }
}

/// The tree sum of node `node`, asking `leaf` for each leaf in increasing order. Holds at
/// most one partial sum per tree level.
pub fn node_sum(
    node: Range<usize>,
    leaf: &mut impl FnMut(usize) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    if node.end - node.start == 1 {
        return leaf(node.start);
    }
    let m = mid(&node);
    let mut left = node_sum(node.start..m, leaf)?;
    let right = node_sum(m..node.end, leaf)?;
    if left.len() != right.len() {
        return Err(Error::Invalid(format!(
            "summation tree: micro-batch values of {} and {} elements",
            left.len(),
            right.len()
        )));
    }
    add_into(&mut left, &right);
    Ok(left)
}

/// The root sum of `0..total` from the canonical nodes of every rank (keyed by range): the
/// tree above them, completed in its fixed order.
pub fn complete(total: usize, mut nodes: BTreeMap<(usize, usize), Vec<f32>>) -> Result<Vec<f32>> {
    fn build(
        node: Range<usize>,
        nodes: &mut BTreeMap<(usize, usize), Vec<f32>>,
    ) -> Result<Vec<f32>> {
        if let Some(v) = nodes.remove(&(node.start, node.end)) {
            return Ok(v);
        }
        if node.end - node.start <= 1 {
            return Err(Error::Invalid(format!(
                "summation tree: no rank contributed micro-batch {}",
                node.start
            )));
        }
        let m = mid(&node);
        let mut left = build(node.start..m, nodes)?;
        let right = build(m..node.end, nodes)?;
        add_into(&mut left, &right);
        Ok(left)
    }
    if total == 0 {
        return Err(Error::Invalid(
            "summation tree over no micro-batches".into(),
        ));
    }
    build(0..total, &mut nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaf values that make the order of additions visible in the last bits.
    fn leaf_value(i: usize, n: usize) -> Vec<f32> {
        (0..n)
            .map(|j| {
                let x = ((i * 7919 + j * 104_729) % 1000) as f32;
                (x - 500.0) * 1.0e-3 * 10f32.powi((i % 5) as i32 - 2)
            })
            .collect()
    }

    fn sum_with_world(total: usize, world: usize, n: usize) -> Vec<f32> {
        let mut nodes = BTreeMap::new();
        for rank in 0..world {
            let b = block(rank, world, total);
            for node in canonical_nodes(&b, total) {
                let key = (node.start, node.end);
                let v = node_sum(node, &mut |i| Ok(leaf_value(i, n))).unwrap();
                nodes.insert(key, v);
            }
        }
        complete(total, nodes).unwrap()
    }

    #[test]
    fn blocks_cover_every_micro_batch_once() {
        for total in 1..20 {
            for world in 1..=total {
                let mut next = 0;
                for r in 0..world {
                    let b = block(r, world, total);
                    assert_eq!(b.start, next);
                    assert!(
                        !b.is_empty(),
                        "rank {r} of {world} has no micro-batch of {total}"
                    );
                    next = b.end;
                }
                assert_eq!(next, total);
            }
        }
    }

    #[test]
    fn canonical_nodes_tile_the_block() {
        for total in 1..40 {
            for world in 1..=total {
                for r in 0..world {
                    let b = block(r, world, total);
                    let nodes = canonical_nodes(&b, total);
                    let mut next = b.start;
                    for n in &nodes {
                        assert_eq!(n.start, next);
                        next = n.end;
                    }
                    assert_eq!(next, b.end);
                }
            }
        }
    }

    #[test]
    fn every_world_size_gives_the_same_bits() {
        for total in [1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 31] {
            let one = sum_with_world(total, 1, 33);
            for world in 2..=total {
                let many = sum_with_world(total, world, 33);
                let same = one
                    .iter()
                    .zip(&many)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "{total} micro-batches over {world} ranks differ from one rank"
                );
            }
        }
    }

    #[test]
    fn the_tree_is_pairwise_not_a_running_sum() {
        // Four leaves: (l0 + l1) + (l2 + l3), which differs from ((l0 + l1) + l2) + l3 here.
        let leaves = [1.0e8f32, 1.0, -1.0e8, 1.0];
        let tree = sum_with_leaves(&leaves);
        assert_eq!(tree, (leaves[0] + leaves[1]) + (leaves[2] + leaves[3]));
        let running = ((leaves[0] + leaves[1]) + leaves[2]) + leaves[3];
        assert_ne!(tree, running);
    }

    fn sum_with_leaves(leaves: &[f32]) -> f32 {
        node_sum(0..leaves.len(), &mut |i| Ok(vec![leaves[i]])).unwrap()[0]
    }

    #[test]
    fn a_missing_contribution_is_an_error() {
        let mut nodes = BTreeMap::new();
        nodes.insert((0, 2), vec![1.0]);
        let e = complete(4, nodes).unwrap_err().to_string();
        assert!(e.contains("micro-batch 2"), "{e}");
    }
}
