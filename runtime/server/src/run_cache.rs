//! The executor's cache of live runs, least recently used out first.
//!
//! A run is taken out of the cache while a batch steps it and put back after, so a run id is
//! pushed onto the recency queue once per step. Each push carries a stamp, and only the entry
//! with a run's latest stamp can evict it: older entries of the same run are skipped in O(1)
//! (a search of the queue for a later entry made each eviction O(cached runs)).

use std::collections::{HashMap, VecDeque};

pub(crate) struct RunCache<V> {
    runs: HashMap<String, (V, u64)>,
    /// Run ids in the order they were put back, oldest first, with the stamp of that put.
    recency: VecDeque<(String, u64)>,
    next_stamp: u64,
    capacity: usize,
}

impl<V> RunCache<V> {
    pub(crate) fn new(capacity: usize) -> Self {
        RunCache {
            runs: HashMap::new(),
            recency: VecDeque::new(),
            next_stamp: 0,
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }

    /// Puts a run (back) in the cache as the most recently used.
    pub(crate) fn put(&mut self, run_id: String, run: V) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.recency.push_back((run_id.clone(), stamp));
        self.runs.insert(run_id, (run, stamp));
    }

    /// Takes a run out, to step it or because it must be rebuilt.
    pub(crate) fn take(&mut self, run_id: &str) -> Option<V> {
        self.runs.remove(run_id).map(|(run, _)| run)
    }

    pub(crate) fn clear(&mut self) {
        self.runs.clear();
        self.recency.clear();
    }

    /// Evicts the least recently used runs down to the capacity.
    pub(crate) fn trim(&mut self) {
        while self.runs.len() > self.capacity {
            let Some((oldest, stamp)) = self.recency.pop_front() else {
                break;
            };
            if self.is_latest(&oldest, stamp) {
                self.runs.remove(&oldest);
            }
        }
        // Runs taken and never put back (closed) leave stale entries behind; drop them once
        // they outnumber the live ones, so the queue stays within a few times the capacity.
        if self.recency.len() > self.capacity * 4 {
            let runs = &self.runs;
            self.recency
                .retain(|(id, stamp)| runs.get(id).is_some_and(|(_, s)| s == stamp));
        }
    }

    fn is_latest(&self, run_id: &str, stamp: u64) -> bool {
        self.runs.get(run_id).is_some_and(|(_, s)| *s == stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(cache: &RunCache<u32>) -> Vec<String> {
        let mut ids: Vec<String> = cache.runs.keys().cloned().collect();
        ids.sort();
        ids
    }

    #[test]
    fn the_least_recently_put_run_goes_first() {
        let mut cache = RunCache::new(2);
        cache.put("a".into(), 1);
        cache.put("b".into(), 2);
        // `a` is stepped again: taken out and put back, so `b` is now the oldest.
        let a = cache.take("a").unwrap();
        cache.put("a".into(), a);
        cache.put("c".into(), 3);
        cache.trim();
        assert_eq!(cached(&cache), ["a", "c"]);
        // A run taken and not put back (it closed) is not in the way.
        assert_eq!(cache.take("c"), Some(3));
        cache.put("d".into(), 4);
        cache.trim();
        assert_eq!(cached(&cache), ["a", "d"]);
        cache.put("e".into(), 5);
        cache.trim();
        assert_eq!(cached(&cache), ["d", "e"]);
    }

    #[test]
    fn stale_entries_are_dropped_once_they_outnumber_the_capacity() {
        let mut cache = RunCache::new(2);
        cache.put("a".into(), 0);
        for i in 0..100 {
            let a = cache.take("a").unwrap();
            cache.put("a".into(), a + i);
            cache.trim();
            assert!(cache.recency.len() <= 2 * 4 + 1, "{}", cache.recency.len());
        }
        assert_eq!(cache.len(), 1);
        cache.put("b".into(), 1);
        cache.put("c".into(), 2);
        cache.trim();
        assert_eq!(cached(&cache), ["b", "c"], "a's latest put is the oldest");
        cache.clear();
        assert_eq!(cache.len(), 0);
        assert!(cache.recency.is_empty());
    }
}
