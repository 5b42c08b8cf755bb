//! An index of templates (parked waiters, subscriptions) by the tuples they
//! can match, so that an `out` looks only at the templates that may match it:
//! those with its index key, and those of its arity without a key.

use std::collections::BTreeSet;

use super::hash::FastMap;
use super::table::template_key;
use crate::template::Template;

#[derive(Debug, Default)]
pub(crate) struct TemplateIndex {
    keyed: FastMap<u64, BTreeSet<u64>>,
    by_arity: FastMap<usize, BTreeSet<u64>>,
    len: usize,
}

impl TemplateIndex {
    pub fn insert(&mut self, id: u64, template: &Template) {
        match template_key(template) {
            Some(key) => self.keyed.entry(key).or_default().insert(id),
            None => self.by_arity.entry(template.len()).or_default().insert(id),
        };
        self.len += 1;
    }

    pub fn remove(&mut self, id: u64, template: &Template) {
        let removed = match template_key(template) {
            Some(key) => remove_from(&mut self.keyed, key, id),
            None => remove_from(&mut self.by_arity, template.len(), id),
        };
        if removed {
            self.len -= 1;
        }
    }

    /// The ids of the templates that may match a tuple of this key and arity,
    /// in ascending order (arrival order). Allocates nothing when empty.
    pub fn candidates(&self, key: u64, arity: usize) -> Vec<u64> {
        if self.len == 0 {
            return Vec::new();
        }
        let keyed = self.keyed.get(&key);
        let any = self.by_arity.get(&arity);
        match (keyed, any) {
            (None, None) => Vec::new(),
            (Some(a), None) | (None, Some(a)) => a.iter().copied().collect(),
            (Some(a), Some(b)) => {
                let mut ids: Vec<u64> = a.iter().chain(b).copied().collect();
                ids.sort_unstable();
                ids
            }
        }
    }
}

fn remove_from<K: std::hash::Hash + Eq + Copy>(
    map: &mut FastMap<K, BTreeSet<u64>>,
    key: K,
    id: u64,
) -> bool {
    let Some(ids) = map.get_mut(&key) else {
        return false;
    };
    let removed = ids.remove(&id);
    if ids.is_empty() {
        map.remove(&key);
    }
    removed
}
