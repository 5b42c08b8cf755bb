//! [`Covers`]: templates' keyspace covers, remembered. A cover with a
//! formal field takes a descent of the curve (hundreds of µs), and the
//! same few templates come back on every take of a job, so a peer and a
//! routing client each keep the covers they computed, keyed by the
//! template's keyword fields (the only ones the cover depends on).

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::Keyspace;
use crate::template::{Field, Template};

/// Covers remembered at most; past it they are all forgotten at once.
pub const MAX_COVERS: usize = 1_024;

/// A template's keyspace cover: the ring ranges its candidates own.
pub type Cover = Arc<Vec<RangeInclusive<u64>>>;

/// Covers by keyword fields, for one keyspace and one `max_ranges`.
#[derive(Debug)]
pub struct Covers {
    keyspace: Keyspace,
    max_ranges: usize,
    known: HashMap<Vec<Field>, Cover>,
}

impl Covers {
    pub fn new(keyspace: Keyspace, max_ranges: usize) -> Covers {
        Covers {
            keyspace,
            max_ranges,
            known: HashMap::new(),
        }
    }

    /// The keyspace cover of `template` ([`Keyspace::ranges_for`]).
    pub fn cover(&mut self, template: &Template) -> Cover {
        let keywords = &template.fields()[..template.len().min(self.keyspace.dims())];
        if let Some(cover) = self.known.get(keywords) {
            return Arc::clone(cover);
        }
        let cover = Arc::new(self.keyspace.ranges_for(template, self.max_ranges));
        if self.known.len() >= MAX_COVERS {
            self.known.clear();
        }
        self.known.insert(keywords.to_vec(), Arc::clone(&cover));
        cover
    }
}
