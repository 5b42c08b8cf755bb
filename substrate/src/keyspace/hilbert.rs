//! The Hilbert curve in any number of dimensions, after John Skilling,
//! "Programming the Hilbert curve" (AIP Conf. Proc. 707, 2004): coordinates
//! are turned into the curve's "transposed" index in place, whose bits are
//! then interleaved into one integer.
//!
//! Our own ~80 lines rather than a crate: the crates we looked at fix the
//! dimension at compile time or stop at 32-bit indexes, and the keyspace
//! needs D from 1 to 8 with up to 64 index bits, plus the sub-cube
//! contiguity property its cover relies on (tested below).
//!
//! With `n` dimensions of `bits` bits each (`n * bits <= 64`), every aligned
//! sub-cube of side `2^s` is one contiguous run of `2^(n*s)` indexes, which
//! all share their top `n * (bits - s)` bits.

/// The curve index of the point `coords` (each below `2^bits`). `coords` is
/// used as scratch space.
pub(super) fn encode(coords: &mut [u64], bits: u32) -> u64 {
    if coords.len() == 1 {
        return coords[0];
    }
    axes_to_transpose(coords, bits);
    if let [x, y] = coords
        && bits <= 32
    {
        return (spread(*x) << 1) | spread(*y);
    }
    interleave(coords, bits)
}

/// The bits of `coords` interleaved, highest first: bit `b` of
/// `coords[i]` goes to bit `b * n + (n - 1 - i)` of the index.
fn interleave(coords: &[u64], bits: u32) -> u64 {
    let mut index = 0u64;
    for b in (0..bits).rev() {
        for x in coords.iter() {
            index = (index << 1) | ((x >> b) & 1);
        }
    }
    index
}

/// The low 32 bits of `x` moved to the even bits (bit `b` to bit `2b`):
/// two dimensions' interleaving in five steps instead of 64.
fn spread(x: u64) -> u64 {
    let mut x = x & 0xffff_ffff;
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// The point at curve index `index`, written into `coords` (whose length is
/// the number of dimensions).
pub(super) fn decode(index: u64, bits: u32, coords: &mut [u64]) {
    let n = coords.len();
    if n == 1 {
        coords[0] = index;
        return;
    }
    coords.fill(0);
    let total = n as u32 * bits;
    for j in 0..total {
        let bit = (index >> (total - 1 - j)) & 1;
        let (level, dim) = (j / n as u32, j as usize % n);
        coords[dim] |= bit << (bits - 1 - level);
    }
    transpose_to_axes(coords, bits);
}

fn axes_to_transpose(x: &mut [u64], bits: u32) {
    let n = x.len();
    let top = 1u64 << (bits - 1);
    // Inverse undo.
    let mut q = top;
    while q > 1 {
        let p = q - 1;
        for i in 0..n {
            if x[i] & q != 0 {
                x[0] ^= p;
            } else {
                let t = (x[0] ^ x[i]) & p;
                x[0] ^= t;
                x[i] ^= t;
            }
        }
        q >>= 1;
    }
    // Gray encode.
    for i in 1..n {
        x[i] ^= x[i - 1];
    }
    let mut t = 0;
    let mut q = top;
    while q > 1 {
        if x[n - 1] & q != 0 {
            t ^= q - 1;
        }
        q >>= 1;
    }
    for xi in x.iter_mut() {
        *xi ^= t;
    }
}

fn transpose_to_axes(x: &mut [u64], bits: u32) {
    let n = x.len();
    // Gray decode.
    let t = x[n - 1] >> 1;
    for i in (1..n).rev() {
        x[i] ^= x[i - 1];
    }
    x[0] ^= t;
    // Undo excess work. `2 << (bits - 1)` is 2^bits, or 0 when bits == 64,
    // where `q` also reaches 0 after its last doubling.
    let end = 2u64 << (bits - 1);
    let mut q = 2u64;
    while q != end {
        let p = q - 1;
        for i in (0..n).rev() {
            if x[i] & q != 0 {
                x[0] ^= p;
            } else {
                let t = (x[0] ^ x[i]) & p;
                x[0] ^= t;
                x[i] ^= t;
            }
        }
        q <<= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every point of a small grid, in the order of their curve indexes.
    fn walk(n: usize, bits: u32) -> Vec<Vec<u64>> {
        let count = 1u64 << (n as u32 * bits);
        (0..count)
            .map(|h| {
                let mut p = vec![0; n];
                decode(h, bits, &mut p);
                p
            })
            .collect()
    }

    #[test]
    fn small_grids_are_walked_as_hilbert_curves() {
        for (n, bits) in [(2, 1), (2, 4), (3, 3), (4, 2), (5, 1)] {
            let points = walk(n, bits);
            // A bijection whose inverse is encode.
            for (h, p) in points.iter().enumerate() {
                assert!(p.iter().all(|&x| x < 1 << bits), "{p:?} out of the grid");
                assert_eq!(encode(&mut p.clone(), bits), h as u64, "n={n} bits={bits}");
            }
            // Consecutive points are neighbours: one step along one axis.
            for pair in points.windows(2) {
                let steps: u64 = pair[0]
                    .iter()
                    .zip(&pair[1])
                    .map(|(a, b)| a.abs_diff(*b))
                    .sum();
                assert_eq!(
                    steps, 1,
                    "n={n} bits={bits}: {:?} -> {:?}",
                    pair[0], pair[1]
                );
            }
            assert!(
                points[0].iter().all(|&x| x == 0),
                "the curve starts at the origin"
            );
        }
    }

    #[test]
    fn aligned_sub_cubes_are_contiguous_runs() {
        let (n, bits) = (3usize, 3u32);
        let points = walk(n, bits);
        for side in 0..bits {
            let run = 1usize << (n as u32 * side);
            for chunk in points.chunks(run) {
                let cell: Vec<u64> = chunk[0].iter().map(|x| x >> side).collect();
                for p in chunk {
                    let this: Vec<u64> = p.iter().map(|x| x >> side).collect();
                    assert_eq!(this, cell, "side 2^{side}: run leaves its cell");
                }
            }
        }
    }

    #[test]
    fn the_plane_curve_has_the_classic_shape() {
        // Bits 1: (0,0) (0,1) (1,1) (1,0) up to the curve's orientation.
        let points = walk(2, 1);
        assert_eq!(points[0], vec![0, 0]);
        assert_eq!(points[3].iter().sum::<u64>(), 1);
        assert_eq!(points[2], vec![1, 1]);
    }

    proptest! {
        #[test]
        fn the_plane_spread_interleaves_as_the_general_loop(
            x in any::<u32>(),
            y in any::<u32>(),
            bits in 1u32..=32,
        ) {
            let mask = if bits == 32 { u64::MAX >> 32 } else { (1u64 << bits) - 1 };
            let (x, y) = (u64::from(x) & mask, u64::from(y) & mask);
            prop_assert_eq!((spread(x) << 1) | spread(y), interleave(&[x, y], bits));
        }

        #[test]
        fn wide_points_round_trip(
            (bits, coords) in (1usize..=8).prop_flat_map(|n| {
                let bits = 64 / n as u32;
                let max = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
                (Just(bits), prop::collection::vec(0..=max, n))
            })
        ) {
            let h = encode(&mut coords.clone(), bits);
            let mut back = vec![0; coords.len()];
            decode(h, bits, &mut back);
            prop_assert_eq!(back, coords);
        }
    }
}
