//! [`IdSet`]: the set of event-id hashes that deduplication keeps for the life of a process.

use std::collections::HashSet;

/// Tables an [`IdSet`] is split into (by the top byte of the hash).
const SHARDS: usize = 256;

/// A set of event ids, each as its xxh3-128 hash, split over 256 hash tables by the hash's top
/// byte. Each table grows on its own, so the insert that resizes one moves 1/256 of the ids
/// instead of all of them: one table of 7 million ids stalled the live consumer for over a
/// second when it doubled, and a resize briefly holds both the old and the new table. (Written
/// here: the crates that spread a resize over later inserts are not kept up, and a concurrent
/// map's locks would buy nothing for one owner.)
#[derive(Debug, Clone)]
pub struct IdSet {
    shards: Vec<HashSet<u128>>,
}

impl Default for IdSet {
    fn default() -> Self {
        Self::new()
    }
}

impl IdSet {
    pub fn new() -> Self {
        Self {
            shards: vec![HashSet::new(); SHARDS],
        }
    }

    fn shard(id: u128) -> usize {
        (id >> 120) as usize
    }

    /// Adds `id`; `true` when it was not in the set.
    pub fn insert(&mut self, id: u128) -> bool {
        self.shards[Self::shard(id)].insert(id)
    }

    pub fn contains(&self, id: u128) -> bool {
        self.shards[Self::shard(id)].contains(&id)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashSet::is_empty)
    }

    /// Makes room for about `additional` more ids (spread evenly, as hashes are).
    pub fn reserve(&mut self, additional: usize) {
        let per_shard = additional.div_ceil(SHARDS);
        for s in &mut self.shards {
            s.reserve(per_shard);
        }
    }
}

impl Extend<u128> for IdSet {
    fn extend<I: IntoIterator<Item = u128>>(&mut self, ids: I) {
        for id in ids {
            self.insert(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use xxhash_rust::xxh3::xxh3_128;

    use super::*;

    #[test]
    fn holds_each_id_once_across_its_tables() {
        let mut set = IdSet::new();
        assert!(set.is_empty());
        let ids: Vec<u128> = (0..10_000)
            .map(|i| xxh3_128(format!("evt-{i}").as_bytes()))
            .collect();
        for &id in &ids {
            assert!(set.insert(id));
        }
        assert!(!set.insert(ids[17]));
        set.extend(ids.iter().copied().take(100));
        assert_eq!(set.len(), 10_000);
        assert!(ids.iter().all(|&id| set.contains(id)));
        assert!(!set.contains(xxh3_128(b"evt-10000")));
        // Ids spread over the tables: none is empty, none holds more than twice its share.
        let sizes: Vec<usize> = set.shards.iter().map(HashSet::len).collect();
        assert!(
            sizes.iter().all(|&n| n > 0 && n < 2 * 10_000 / SHARDS),
            "{sizes:?}"
        );
        // The table is the top byte.
        assert_eq!(IdSet::shard(1u128 << 120), 1);
        assert_eq!(IdSet::shard(u128::MAX), 255);
        assert_eq!(IdSet::shard(u128::from(u64::MAX)), 0);
    }
}
