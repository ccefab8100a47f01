//! Topic matching in the core trie (`mqgate_core::routing::TopicTrie`).
//!
//! Bindings are IoT-like: `site{s}.device{d}.{metric}` literals (85%), per-device `*` patterns
//! (10%, `site{s}.device{d}.*`) and cross-site `#` patterns (5%, `#.device{d}.*`). Each trie is
//! built once, outside the timed loop. Routing keys are 1,000 device readings spread over the
//! whole device range, so they hit literal, `*` and `#` bindings and some miss; with the cache on
//! they all fit in it (hot keys), with it off every call walks the trie.
//!
//! Run: `cargo bench -p mqgate-benches --bench topic_trie` (about two minutes on 2 cores).

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mqgate_core::routing::TopicTrie;
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];
const METRICS: [&str; 3] = ["temp", "hum", "volt"];
const HOT_KEYS: usize = 1_000;
const INSERT_SIZE: usize = 100_000;

fn pattern(i: usize) -> String {
    let site = i % 100;
    match i % 20 {
        0 | 1 => format!("site{site}.device{i}.*"),
        2 => format!("#.device{i}.*"),
        _ => format!("site{site}.device{i}.{}", METRICS[i % 3]),
    }
}

/// Deterministic keys over the device range `0..bindings` (a simple LCG, no `rand` needed).
fn keys(bindings: usize) -> Vec<String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..HOT_KEYS)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let device = (state >> 33) as usize % bindings;
            let metric = METRICS[(state >> 20) as usize % METRICS.len()];
            format!("site{}.device{device}.{metric}", device % 100)
        })
        .collect()
}

fn build(bindings: usize, cache_capacity: usize) -> TopicTrie<u32> {
    let trie = TopicTrie::with_cache_capacity(cache_capacity);
    for i in 0..bindings {
        // Values are binding ids; u32 is wide enough for every size here.
        trie.insert(&pattern(i), i as u32);
    }
    trie
}

fn bench_matches(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_trie");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for bindings in SIZES {
        let keys = keys(bindings);
        for (name, capacity) in [("match_cache_on", 4096), ("match_cache_off", 0)] {
            let trie = build(bindings, capacity);
            let hits = keys.iter().filter(|k| !trie.matches(k).is_empty()).count();
            eprintln!(
                "{name}/{bindings}: {} bindings, {hits}/{} keys match",
                trie.len(),
                keys.len()
            );
            group.bench_with_input(BenchmarkId::new(name, bindings), &trie, |b, trie| {
                let mut next = 0;
                b.iter(|| {
                    next = (next + 1) % keys.len();
                    black_box(trie.matches(black_box(&keys[next])))
                });
            });
        }
    }
    group.finish();
}

fn bench_insert(c: &mut Criterion) {
    let patterns: Vec<String> = (0..INSERT_SIZE).map(pattern).collect();
    let mut group = c.benchmark_group("topic_trie");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(INSERT_SIZE as u64));
    group.bench_function(BenchmarkId::new("insert", INSERT_SIZE), |b| {
        b.iter_batched(
            TopicTrie::<u32>::new,
            |trie| {
                for (i, pattern) in patterns.iter().enumerate() {
                    trie.insert(pattern, i as u32);
                }
                // Returned so that dropping the trie is not timed.
                trie
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_matches, bench_insert);
criterion_main!(benches);
