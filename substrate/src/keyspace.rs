//! The Squid keyspace: where a tuple lives on the ring, and which stretches
//! of the ring a template must ask. Pure functions, no I/O.
//!
//! The first D fields of a tuple (its keywords; D from 1 to [`MAX_DIMS`],
//! default [`DEFAULT_DIMS`]) are mapped order-preservingly to coordinates of
//! `64 / D` bits each (see `coord`), and the point they make is mapped by a
//! D-dimensional Hilbert curve (see `hilbert`) to an index; the index is
//! shifted to the top of a `u64` so that the keyspace spans the whole ring
//! even when `D` does not divide 64. A tuple with fewer than D fields puts 0
//! on the missing axes.
//!
//! A template's keyword fields describe a box (an actual value: one
//! coordinate; `*` or `?kind`: an axis or a kind's slice of it; a range or a
//! prefix: an interval); [`Keyspace::ranges_for`] turns it into the ring
//! ranges (curve clusters, see `cover`) that hold every tuple it can match.
//! Completeness — a matching tuple's index always lies in one of those
//! ranges — is what lets the node ask only the peers owning them.
//!
//! Who uses it: the node, to find a tuple's primary and a template's peers.

mod coord;
mod cover;
mod covers;
mod hilbert;

pub use covers::{Cover, Covers, MAX_COVERS};

use std::ops::RangeInclusive;

use crate::template::Template;
use crate::tuple::{Tuple, Value};

/// Keyword fields when nothing else is said.
pub const DEFAULT_DIMS: usize = 2;
/// The most keyword fields: each axis keeps at least 8 bits, 3 of them for
/// the kind.
pub const MAX_DIMS: usize = 8;

/// Why a keyspace could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyspaceError {
    #[error("keyword fields must number from 1 to {MAX_DIMS}, found {0}")]
    Dims(usize),
}

/// The mapping of keyword fields to ring indexes, for one choice of D.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keyspace {
    dims: usize,
    /// Bits per axis: `64 / dims`.
    bits: u32,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace::new(DEFAULT_DIMS).expect("the default is valid")
    }
}

impl Keyspace {
    /// A keyspace over the first `dims` fields of tuples.
    pub fn new(dims: usize) -> Result<Keyspace, KeyspaceError> {
        if !(1..=MAX_DIMS).contains(&dims) {
            return Err(KeyspaceError::Dims(dims));
        }
        Ok(Keyspace {
            dims,
            bits: 64 / dims as u32,
        })
    }

    /// The number of keyword fields, D.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Bits per axis, `64 / D`.
    pub fn bits_per_dim(&self) -> u32 {
        self.bits
    }

    /// The coordinate of a keyword value on an axis: monotone in
    /// [`Value`]'s order, kinds in their own slices.
    pub fn coordinate(&self, value: &Value) -> u64 {
        coord::coordinate(value, self.bits)
    }

    /// The ring index of a tuple.
    pub fn index_of(&self, tuple: &Tuple) -> u64 {
        self.index_of_fields(tuple.fields())
    }

    /// The ring index of a tuple with these fields.
    pub fn index_of_fields(&self, fields: &[Value]) -> u64 {
        let mut point = [0u64; MAX_DIMS];
        for (c, v) in point.iter_mut().zip(fields).take(self.dims) {
            *c = self.coordinate(v);
        }
        hilbert::encode(&mut point[..self.dims], self.bits) << self.shift()
    }

    /// The ring index of a tuple with these fields, taken from `prev` (a
    /// tuple's fields and their index) when both have the same keywords
    /// (their first `dims` fields, all the index depends on): a run of
    /// tuples of one kind, as a batch brings, is indexed once.
    pub fn index_next_to(&self, fields: &[Value], prev: Option<(&[Value], u64)>) -> u64 {
        match prev {
            Some((before, index))
                if before
                    .iter()
                    .take(self.dims)
                    .eq(fields.iter().take(self.dims)) =>
            {
                index
            }
            _ => self.index_of_fields(fields),
        }
    }

    /// Sorted, disjoint ring ranges holding the index of every tuple that
    /// `template` can match: at most `max_ranges` of them (at least one,
    /// unless the template matches nothing). Fewer ranges cover more of the
    /// ring; a template whose keywords are all actual values yields the one
    /// index of its tuples.
    pub fn ranges_for(&self, template: &Template, max_ranges: usize) -> Vec<RangeInclusive<u64>> {
        let (mut lo, mut hi) = ([0u64; MAX_DIMS], [0u64; MAX_DIMS]);
        for (i, field) in template.fields().iter().take(self.dims).enumerate() {
            match coord::interval(field, self.bits) {
                Some((a, b)) => (lo[i], hi[i]) = (a, b),
                None => return Vec::new(),
            }
        }
        // Tuple indexes have their low `shift` bits clear, so the ranges end
        // at their last curve point's index and a point stays a point.
        let shift = self.shift();
        if lo == hi {
            // Every keyword an actual value: the one index, without the
            // descent.
            let index = hilbert::encode(&mut lo[..self.dims], self.bits) << shift;
            return vec![index..=index];
        }
        cover::cover(&lo[..self.dims], &hi[..self.dims], self.bits, max_ranges)
            .into_iter()
            .map(|(a, b)| (a << shift)..=(b << shift))
            .collect()
    }

    /// Unused low bits of the ring index when D does not divide 64.
    fn shift(&self) -> u32 {
        64 - self.dims as u32 * self.bits
    }
}

#[cfg(test)]
mod tests;
