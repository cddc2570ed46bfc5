//! CPU-bound steps of a delivery round (rendering and MIME-encoding thousands of messages)
//! spread over the machine's cores: a scoped thread per core pulls the next item until none
//! are left, so one very large message does not hold the others back. Results keep the
//! items' order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Below this many items per thread, the work stays on the calling thread.
const MIN_ITEMS_PER_THREAD: usize = 8;

/// `work` applied to every item, on up to as many threads as the machine has cores.
pub fn map_in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let threads = cores.min(items.len() / MIN_ITEMS_PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(work).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    mine.push((i, work(item)));
                }
                done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(mine);
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::map_in_parallel;

    #[test]
    fn every_item_is_mapped_once_and_in_order() {
        let items: Vec<u64> = (0..10_000).collect();
        let doubled = map_in_parallel(&items, |n| n * 2);
        assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(map_in_parallel(&items[..3], |n| n + 1), vec![1, 2, 3]);
        assert!(map_in_parallel(&Vec::<u64>::new(), |n| *n).is_empty());
    }
}
