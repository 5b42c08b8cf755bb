//! A box of keyword space to the curve clusters that cover it: the index
//! ranges of every Hilbert sub-cube that meets the box, found by descending
//! the curve's sub-cubes level by level, then merged and capped.
//!
//! A sub-cube inside the box is one whole range; a sub-cube outside is
//! skipped; a sub-cube on the box's border is split into its `2^n` children
//! at the next level. Refinement stops when the next level would look at
//! more than [`MAX_CELLS`] sub-cubes: the border sub-cubes left are then
//! taken whole. The cover is therefore always complete (every point of the
//! box is inside it) and exact for boxes simple enough to resolve within
//! the budget, single points included.

use super::MAX_DIMS;
use super::hilbert;

/// The most sub-cubes examined at one level of the descent.
pub(super) const MAX_CELLS: usize = 4096;

/// Inclusive index ranges (on a curve of `lo.len()` dimensions of `bits`
/// bits) covering the box `lo..=hi`, sorted, disjoint, non-adjacent, and at
/// most `max_ranges` (at least 1) of them.
pub(super) fn cover(lo: &[u64], hi: &[u64], bits: u32, max_ranges: usize) -> Vec<(u64, u64)> {
    let n = lo.len() as u32;
    let mut found = Vec::new();
    // Border sub-cubes at `depth`, as index prefixes of `n * depth` bits.
    let mut border = Vec::new();
    match classify(0, 0, lo, hi, bits) {
        Overlap::Inside => found.push(span(0, 0, n, bits)),
        Overlap::Border => border.push(0u64),
        Overlap::Outside => {}
    }
    let mut depth = 0;
    while !border.is_empty() {
        if depth == bits || border.len() << n > MAX_CELLS {
            found.extend(border.iter().map(|&p| span(p, depth, n, bits)));
            break;
        }
        depth += 1;
        let mut next = Vec::new();
        for prefix in border
            .iter()
            .flat_map(|&p| (0..1u64 << n).map(move |c| (p << n) | c))
        {
            match classify(prefix, depth, lo, hi, bits) {
                Overlap::Inside => found.push(span(prefix, depth, n, bits)),
                Overlap::Border => next.push(prefix),
                Overlap::Outside => {}
            }
        }
        border = next;
    }
    cap(merge(found), max_ranges.max(1))
}

enum Overlap {
    Inside,
    Border,
    Outside,
}

/// How the sub-cube with index prefix `prefix` at `depth` meets the box.
fn classify(prefix: u64, depth: u32, lo: &[u64], hi: &[u64], bits: u32) -> Overlap {
    let n = lo.len();
    let (start, _) = span(prefix, depth, n as u32, bits);
    let mut corner = [0u64; MAX_DIMS];
    hilbert::decode(start, bits, &mut corner[..n]);
    let side = bits - depth;
    let mask = if side == 64 {
        u64::MAX
    } else {
        (1 << side) - 1
    };
    let mut inside = true;
    for i in 0..n {
        let (cell_lo, cell_hi) = (corner[i] & !mask, corner[i] | mask);
        if cell_hi < lo[i] || cell_lo > hi[i] {
            return Overlap::Outside;
        }
        inside &= lo[i] <= cell_lo && cell_hi <= hi[i];
    }
    if inside {
        Overlap::Inside
    } else {
        Overlap::Border
    }
}

/// The index range of the sub-cube with prefix `prefix` at `depth`.
fn span(prefix: u64, depth: u32, n: u32, bits: u32) -> (u64, u64) {
    let shift = n * (bits - depth);
    let start = u128::from(prefix) << shift;
    let end = start + (1u128 << shift) - 1;
    (start as u64, end as u64)
}

/// Sorts the ranges and joins those that touch.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Joins sorted disjoint ranges across their smallest gaps until at most
/// `max` remain: the `max - 1` widest gaps are kept.
fn cap(ranges: Vec<(u64, u64)>, max: usize) -> Vec<(u64, u64)> {
    if ranges.len() <= max {
        return ranges;
    }
    let mut gaps: Vec<(u64, usize)> = ranges
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].0 - w[0].1, i))
        .collect();
    // Widest first; among equal gaps the earlier one.
    gaps.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut keep = vec![false; ranges.len()];
    for &(_, i) in &gaps[..max - 1] {
        keep[i] = true;
    }
    let mut out = Vec::with_capacity(max);
    let mut start = ranges[0].0;
    for (i, range) in ranges.iter().enumerate() {
        if keep[i] || i == ranges.len() - 1 {
            out.push((start, range.1));
            if let Some(next) = ranges.get(i + 1) {
                start = next.0;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merging_joins_touching_and_overlapping_ranges() {
        assert_eq!(
            merge(vec![(5, 9), (0, 4), (20, 30), (25, 26)]),
            vec![(0, 9), (20, 30)]
        );
        assert_eq!(merge(vec![(0, u64::MAX), (3, 4)]), vec![(0, u64::MAX)]);
    }

    #[test]
    fn capping_closes_the_smallest_gaps() {
        let ranges = vec![(0, 1), (3, 4), (100, 101), (104, 105), (1000, 1000)];
        assert_eq!(cap(ranges.clone(), 5), ranges);
        assert_eq!(
            cap(ranges.clone(), 3),
            vec![(0, 4), (100, 105), (1000, 1000)]
        );
        assert_eq!(cap(ranges.clone(), 1), vec![(0, 1000)]);
    }

    #[test]
    fn the_whole_space_is_one_range() {
        assert_eq!(cover(&[0, 0], &[15, 15], 4, 8), vec![(0, 255)]);
        assert_eq!(
            cover(&[0, 0], &[u32::MAX as u64; 2], 32, 8),
            vec![(0, u64::MAX)]
        );
    }

    #[test]
    fn a_quadrant_is_a_quarter_of_the_curve() {
        let ranges = cover(&[0, 0], &[7, 7], 4, 8);
        assert_eq!(ranges, vec![(0, 63)]);
    }

    /// Every grid point, inside the box or not, against the cover.
    fn check_exhaustively(lo: &[u64], hi: &[u64], bits: u32, max: usize) -> usize {
        let ranges = cover(lo, hi, bits, max);
        assert!(ranges.len() <= max.max(1));
        assert!(ranges.windows(2).all(|w| w[0].1 + 1 < w[1].0), "{ranges:?}");
        let n = lo.len();
        let mut covered = 0;
        for h in 0..1u64 << (n as u32 * bits) {
            let mut p = [0u64; MAX_DIMS];
            hilbert::decode(h, bits, &mut p[..n]);
            let in_box = (0..n).all(|i| lo[i] <= p[i] && p[i] <= hi[i]);
            let in_cover = ranges.iter().any(|&(a, b)| a <= h && h <= b);
            assert!(
                !in_box || in_cover,
                "point {:?} of the box is not covered",
                &p[..n]
            );
            covered += usize::from(in_cover);
        }
        covered
    }

    proptest! {
        #[test]
        fn small_covers_are_complete_and_exact_when_uncapped(
            (bits, corners) in (2usize..=3).prop_flat_map(|n| {
                let bits = if n == 2 { 5u32 } else { 3 };
                let axis = 0..(1u64 << bits);
                (Just(bits), prop::collection::vec((axis.clone(), axis), n))
            }),
            max in 1usize..6,
        ) {
            let lo: Vec<u64> = corners.iter().map(|&(a, b)| a.min(b)).collect();
            let hi: Vec<u64> = corners.iter().map(|&(a, b)| a.max(b)).collect();
            let volume: u64 = lo.iter().zip(&hi).map(|(a, b)| b - a + 1).product();
            check_exhaustively(&lo, &hi, bits, max);
            let exact = check_exhaustively(&lo, &hi, bits, usize::MAX);
            prop_assert_eq!(exact as u64, volume);
        }
    }
}
