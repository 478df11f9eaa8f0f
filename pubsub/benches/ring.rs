//! Ring micro-benchmark: 1 writer, 3 readers (and 1 reader, which fits 2 cores).
//!
//! `cargo bench -p streamhub-pubsub --bench ring` prints ns per publish and per read:
//! - alone: the writer with no reader running, then each reader draining a full ring
//!   with no writer running (the costs of the operations themselves);
//! - concurrent: the writer publishing while the readers busy-poll, and while they
//!   sleep on their doorbells in current-thread tokio runtimes (the shard's shape).
//!
//! The allocator is mimalloc, as in the server (each publish allocates one entry).
//!
//! Items are `u64` (the ring's own cost) and `RoomEvent<Bytes>` (what the hub carries).
//! With fewer than 4 cores the concurrent figures include time-slicing between the
//! threads; the output says how many cores there were.
#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use streamhub_pubsub::{Consumer, Doorbell, Producer, Recv, RoomEvent};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CAPACITY: usize = 4096;
const READERS: usize = 3;

fn ns_per(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

trait Item: Send + Sync + 'static {
    fn make(pos: u64, room: &Arc<str>, payload: &Bytes) -> Self;
    fn touch(&self) -> u64;
}

impl Item for u64 {
    fn make(pos: u64, _: &Arc<str>, _: &Bytes) -> Self {
        pos
    }
    fn touch(&self) -> u64 {
        *self
    }
}

impl Item for RoomEvent {
    fn make(pos: u64, room: &Arc<str>, payload: &Bytes) -> Self {
        RoomEvent::new(Arc::clone(room), pos + 1, payload.clone())
    }
    fn touch(&self) -> u64 {
        self.seq + self.payload.len() as u64
    }
}

fn ring<T: Item>(readers: usize) -> (Producer<T>, Vec<Consumer<T>>) {
    let mut producer = Producer::new(CAPACITY).expect("power of two");
    let consumers = (0..readers)
        .map(|_| producer.subscribe(Arc::new(Doorbell::new())))
        .collect();
    (producer, consumers)
}

/// Reads everything pending; returns (items, missed).
fn drain_all<T: Item>(consumer: &mut Consumer<T>, sum: &mut u64) -> (u64, u64) {
    let (mut items, mut missed) = (0, 0);
    loop {
        let calls = consumer.drain(256, |recv| match recv {
            Recv::Item(item) => {
                *sum = sum.wrapping_add(item.touch());
                items += 1;
            }
            Recv::Lapped(lapped) => missed += lapped.missed(),
        });
        if calls == 0 {
            return (items, missed);
        }
    }
}

fn alone<T: Item>(name: &str, items: u64) {
    let room: Arc<str> = Arc::from("ch_bench");
    let payload = Bytes::from(vec![b'x'; 200]);

    let (mut producer, consumers) = ring::<T>(READERS);
    let start = Instant::now();
    for pos in 0..items {
        producer.push(T::make(pos, &room, &payload));
    }
    let push = ns_per(start.elapsed(), items);
    // Publish = push + wake; the doorbells stay pending, as during a burst.
    let start = Instant::now();
    for pos in 0..items {
        producer.publish(T::make(pos, &room, &payload));
    }
    let publish = ns_per(start.elapsed(), items);
    // Batches of 64, one epoch pin and one tail store each.
    let start = Instant::now();
    let mut pos = 0;
    while pos < items {
        let end = (pos + 64).min(items);
        producer.push_batch((pos..end).map(|p| T::make(p, &room, &payload)));
        producer.wake();
        pos = end;
    }
    let batch = ns_per(start.elapsed(), items);
    drop(consumers);

    // Reads: fill the ring, then drain it with each reader, one at a time.
    let (mut producer, mut consumers) = ring::<T>(READERS);
    let rounds = (items / CAPACITY as u64).max(1);
    let mut read_time = Duration::ZERO;
    let mut sum = 0;
    for round in 0..rounds {
        for pos in 0..CAPACITY as u64 {
            producer.push(T::make(round * CAPACITY as u64 + pos, &room, &payload));
        }
        for consumer in &mut consumers {
            let start = Instant::now();
            let (read, missed) = drain_all(consumer, &mut sum);
            read_time += start.elapsed();
            assert_eq!((read, missed), (CAPACITY as u64, 0));
        }
    }
    black_box(sum);
    let read = ns_per(read_time, rounds * CAPACITY as u64 * READERS as u64);
    println!(
        "alone       {name:<16} push {push:6.1} ns   publish (3 doorbells) {publish:6.1} ns   push_batch(64)+wake {batch:6.1} ns/item   read {read:6.1} ns"
    );
}

/// The writer publishes `items` while the readers busy-poll (`sleep: false`) or sleep on
/// their doorbells in current-thread runtimes (`sleep: true`).
fn concurrent<T: Item>(name: &str, items: u64, readers: usize, sleep: bool) {
    let room: Arc<str> = Arc::from("ch_bench");
    let payload = Bytes::from(vec![b'x'; 200]);
    let (mut producer, consumers) = ring::<T>(readers);
    let done = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(readers + 1));
    let handles: Vec<_> = consumers
        .into_iter()
        .map(|mut consumer| {
            let done = Arc::clone(&done);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let mut sum = 0;
                let (mut read, mut missed, mut busy) = (0, 0, Duration::ZERO);
                let mut account = |consumer: &mut Consumer<T>, sum: &mut u64| {
                    let start = Instant::now();
                    let (r, m) = drain_all(consumer, sum);
                    if r + m > 0 {
                        busy += start.elapsed();
                    }
                    read += r;
                    missed += m;
                };
                barrier.wait();
                if sleep {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("runtime");
                    runtime.block_on(async {
                        while consumer.position() < items {
                            consumer.ready().await;
                            account(&mut consumer, &mut sum);
                        }
                    });
                } else {
                    while consumer.position() < items {
                        account(&mut consumer, &mut sum);
                        if !done.load(Ordering::Relaxed) {
                            std::hint::spin_loop();
                        }
                    }
                }
                black_box(sum);
                (read, missed, busy, consumer.doorbell().wakeups())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for pos in 0..items {
        producer.publish(T::make(pos, &room, &payload));
    }
    let publish = ns_per(start.elapsed(), items);
    done.store(true, Ordering::Relaxed);
    let mode = if sleep { "sleeping" } else { "polling" };
    println!("concurrent  {name:<16} {readers} {mode:<8} reader(s): publish {publish:6.1} ns");
    for (i, reader) in handles.into_iter().enumerate() {
        let (read, missed, busy, wakeups) = reader.join().expect("reader");
        let wakes = if sleep {
            format!(
                "   {wakeups} wake-ups ({:.0} items each)",
                read as f64 / wakeups.max(1) as f64
            )
        } else {
            String::new()
        };
        println!(
            "              reader {i}: read {read:>9} ({:6.1} ns each while reading), lapped past {missed:>9}{wakes}",
            ns_per(busy, read.max(1)),
        );
    }
}

fn main() {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "ring: capacity {CAPACITY}, 1 writer, {READERS} readers, {cores} cores (release profile)"
    );
    alone::<u64>("u64", 4_000_000);
    alone::<RoomEvent>("RoomEvent<Bytes>", 4_000_000);
    for readers in [1, READERS] {
        for sleep in [false, true] {
            concurrent::<u64>("u64", 4_000_000, readers, sleep);
            concurrent::<RoomEvent>("RoomEvent<Bytes>", 4_000_000, readers, sleep);
        }
    }
}
