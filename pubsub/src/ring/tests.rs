use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::thread;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::room::RoomEvent;

fn ring<T: Send + Sync + 'static>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    let mut producer = Producer::new(capacity).unwrap();
    let consumer = producer.subscribe(Arc::new(Doorbell::new()));
    (producer, consumer)
}

/// Everything a consumer reads until the ring is empty, laps included.
fn read_all<T: Clone + Send + Sync + 'static>(
    consumer: &mut Consumer<T>,
) -> Vec<Result<T, Lapped>> {
    let mut out = Vec::new();
    loop {
        match consumer.try_recv() {
            Ok(Some(item)) => out.push(Ok(item)),
            Ok(None) => return out,
            Err(lapped) => out.push(Err(lapped)),
        }
    }
}

fn lapped(missed_from: u64, missed_to: u64) -> Lapped {
    Lapped {
        missed_from,
        missed_to,
    }
}

#[test]
fn capacity_must_be_a_power_of_two() {
    for bad in [0, 3, 6, 100, 1000] {
        assert_eq!(Producer::<u64>::new(bad).unwrap_err(), CapacityError(bad));
    }
    for good in [1, 2, 64, 1024] {
        assert_eq!(Producer::<u64>::new(good).unwrap().capacity(), good);
    }
    assert_eq!(
        CapacityError(3).to_string(),
        "ring capacity must be a power of two, got 3"
    );
}

#[test]
fn an_empty_ring_has_nothing_to_read() {
    let (_producer, mut consumer) = ring::<u64>(4);
    assert_eq!(consumer.try_recv(), Ok(None));
    assert!(!consumer.has_pending());
    assert_eq!(consumer.drain(10, |_| panic!("nothing to read")), 0);
}

#[test]
fn items_are_read_in_order() {
    let (mut producer, mut consumer) = ring(8);
    for i in 0..5_u64 {
        assert_eq!(producer.push(i * 10), i);
    }
    assert_eq!(producer.position(), 5);
    assert_eq!(
        read_all(&mut consumer),
        (0..5).map(|i| Ok(i * 10)).collect::<Vec<_>>()
    );
    assert_eq!(consumer.position(), 5);
    producer.push(50);
    assert_eq!(consumer.try_recv(), Ok(Some(50)));
    assert_eq!(consumer.try_recv(), Ok(None));
}

#[test]
fn each_consumer_has_its_own_cursor() {
    let mut producer = Producer::new(8).unwrap();
    let doorbell = Arc::new(Doorbell::new());
    let mut a = producer.subscribe(Arc::clone(&doorbell));
    let mut b = producer.subscribe(doorbell);
    producer.push(1_u32);
    producer.push(2);
    assert_eq!(a.try_recv(), Ok(Some(1)));
    producer.push(3);
    assert_eq!(read_all(&mut b), vec![Ok(1), Ok(2), Ok(3)]);
    assert_eq!(read_all(&mut a), vec![Ok(2), Ok(3)]);
}

#[test]
fn a_late_subscriber_starts_at_the_end() {
    let mut producer = Producer::new(8).unwrap();
    producer.push(1_u32);
    producer.push(2);
    let mut late = producer.subscribe(Arc::new(Doorbell::new()));
    assert_eq!(late.position(), 2);
    assert_eq!(late.try_recv(), Ok(None));
    producer.push(3);
    assert_eq!(read_all(&mut late), vec![Ok(3)]);
}

#[test]
fn exactly_a_lap_behind_is_not_lapped() {
    let (mut producer, mut consumer) = ring(4);
    for i in 0..4_u64 {
        producer.push(i);
    }
    assert_eq!(consumer.lag(), 4);
    assert_eq!(read_all(&mut consumer), vec![Ok(0), Ok(1), Ok(2), Ok(3)]);
}

#[test]
fn one_past_a_lap_reports_exactly_the_lost_item() {
    let (mut producer, mut consumer) = ring(4);
    for i in 0..5_u64 {
        producer.push(i);
    }
    assert_eq!(consumer.lag(), 5);
    let err = consumer.try_recv().unwrap_err();
    assert_eq!(err, lapped(0, 1));
    assert_eq!(err.missed(), 1);
    assert_eq!(consumer.position(), 1);
    assert_eq!(read_all(&mut consumer), vec![Ok(1), Ok(2), Ok(3), Ok(4)]);
}

#[test]
fn far_behind_reports_the_whole_gap_then_the_last_lap() {
    let (mut producer, mut consumer) = ring(8);
    for i in 0..100_u64 {
        producer.push(i);
    }
    let mut expected = vec![Err(lapped(0, 92))];
    expected.extend((92..100).map(Ok));
    assert_eq!(read_all(&mut consumer), expected);
}

#[test]
fn a_lap_after_some_reads_starts_at_the_cursor() {
    let (mut producer, mut consumer) = ring(4);
    for i in 0..3_u64 {
        producer.push(i);
    }
    assert_eq!(consumer.try_recv(), Ok(Some(0)));
    for i in 3..10_u64 {
        producer.push(i);
    }
    // Cursor at 1, tail 10, capacity 4: 1..6 are gone.
    assert_eq!(
        read_all(&mut consumer),
        vec![Err(lapped(1, 6)), Ok(6), Ok(7), Ok(8), Ok(9)]
    );
}

/// The consumer's cached tail says the next item is readable, but the producer has since
/// overwritten its slot: the entry's position gives it away.
#[test]
fn an_overwrite_after_the_tail_was_read_is_caught_by_the_slot_position() {
    let (mut producer, mut consumer) = ring(4);
    for i in 0..4_u64 {
        producer.push(i);
    }
    assert_eq!(consumer.try_recv(), Ok(Some(0))); // caches tail = 4
    for i in 4..7_u64 {
        producer.push(i); // overwrites positions 0, 1, 2
    }
    // The cached tail (4) is within a lap of the cursor (1); slot 1 now holds 5.
    assert_eq!(consumer.try_recv(), Err(lapped(1, 3)));
    assert_eq!(read_all(&mut consumer), vec![Ok(3), Ok(4), Ok(5), Ok(6)]);
}

#[test]
fn a_batch_is_read_like_single_pushes() {
    let (mut producer, mut consumer) = ring(8);
    assert_eq!(producer.push_batch([]), 0..0);
    assert!(!consumer.has_pending());
    assert_eq!(producer.push_batch([1_u64, 2, 3]), 0..3);
    assert_eq!(producer.push(4), 3);
    assert_eq!(producer.push_batch(5..=6), 4..6);
    assert_eq!(producer.position(), 6);
    assert_eq!(read_all(&mut consumer), (1..=6).map(Ok).collect::<Vec<_>>());
    // A batch longer than the ring laps a consumer that has not read it.
    assert_eq!(producer.push_batch(7..=26), 6..26);
    let mut expected = vec![Err(lapped(6, 18))];
    expected.extend((19..=26).map(Ok));
    assert_eq!(read_all(&mut consumer), expected);
}

#[test]
fn a_ring_of_one_slot_works() {
    let (mut producer, mut consumer) = ring(1);
    producer.push('a');
    assert_eq!(consumer.try_recv(), Ok(Some('a')));
    producer.push('b');
    producer.push('c');
    assert_eq!(read_all(&mut consumer), vec![Err(lapped(1, 2)), Ok('c')]);
}

/// Not `Clone`: drained by reference.
#[derive(Debug, PartialEq, Eq)]
struct Unclonable(u64);

#[test]
fn drain_borrows_items_and_reports_laps_in_order() {
    let (mut producer, mut consumer) = ring(4);
    for i in 0..6 {
        producer.push(Unclonable(i));
    }
    let mut seen = Vec::new();
    let calls = consumer.drain(100, |recv| {
        seen.push(match recv {
            Recv::Item(item) => Ok(item.0),
            Recv::Lapped(lapped) => Err(lapped),
        });
    });
    assert_eq!(calls, 5);
    assert_eq!(seen, vec![Err(lapped(0, 2)), Ok(2), Ok(3), Ok(4), Ok(5)]);
    assert_eq!(consumer.drain(100, |_| panic!("drained")), 0);
}

#[test]
fn drain_stops_at_max() {
    let (mut producer, mut consumer) = ring(16);
    for i in 0..10_u64 {
        producer.push(i);
    }
    let mut seen = Vec::new();
    assert_eq!(consumer.drain(0, |_| panic!("max 0")), 0);
    let collect = |seen: &mut Vec<u64>, recv: Recv<'_, u64>| match recv {
        Recv::Item(&item) => seen.push(item),
        Recv::Lapped(lapped) => panic!("unexpected {lapped}"),
    };
    assert_eq!(consumer.drain(4, |recv| collect(&mut seen, recv)), 4);
    assert_eq!(seen, vec![0, 1, 2, 3]);
    assert_eq!(consumer.lag(), 6);
    assert_eq!(consumer.drain(100, |recv| collect(&mut seen, recv)), 6);
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
}

#[test]
fn lag_and_pending_follow_the_producer() {
    let (mut producer, mut consumer) = ring(4);
    assert_eq!((consumer.lag(), consumer.has_pending()), (0, false));
    producer.push(1_u8);
    assert_eq!((consumer.lag(), consumer.has_pending()), (1, true));
    for _ in 0..9 {
        producer.push(1);
    }
    assert_eq!((consumer.lag(), consumer.has_pending()), (10, true));
    read_all(&mut consumer);
    assert_eq!((consumer.lag(), consumer.has_pending()), (0, false));
}

#[test]
fn the_lap_report_reads_well() {
    assert_eq!(
        lapped(3, 10).to_string(),
        "ring consumer lapped: positions 3..10 were overwritten before it read them"
    );
}

#[test]
fn producer_and_consumer_can_move_to_other_threads() {
    fn is_send<T: Send>() {}
    is_send::<Producer<RoomEvent>>();
    is_send::<Consumer<RoomEvent>>();
    is_send::<Arc<Doorbell>>();
}

/// Counts its drops in a counter of its own test.
struct Counted(&'static AtomicUsize);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn items_still_in_the_ring_are_dropped_with_it() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    let (mut producer, consumer) = ring(8);
    for _ in 0..8 {
        producer.push(Counted(&DROPPED)); // fills the ring, overwrites nothing
    }
    drop(producer);
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        0,
        "the consumer keeps the ring"
    );
    drop(consumer);
    assert_eq!(DROPPED.load(Ordering::Relaxed), 8);
}

#[test]
fn overwritten_items_are_freed_by_the_epoch_collector() {
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    let (mut producer, consumer) = ring(8);
    for _ in 0..200 {
        producer.push(Counted(&DROPPED));
    }
    drop((producer, consumer));
    assert!(DROPPED.load(Ordering::Relaxed) >= 8);
    // Retired items are freed once every pinned thread has moved on; other tests pin
    // and unpin concurrently, so keep flushing until they have been collected.
    for _ in 0..if cfg!(miri) { 1_000 } else { 10_000_000 } {
        if DROPPED.load(Ordering::Relaxed) == 200 {
            break;
        }
        epoch::pin().flush();
        thread::yield_now();
    }
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        200,
        "every item freed once"
    );
}

// ---- wake-ups ----

#[test]
fn a_burst_wakes_each_consumer_once() {
    let mut producer = Producer::new(1024).unwrap();
    let doorbells: Vec<_> = (0..3).map(|_| Arc::new(Doorbell::new())).collect();
    let consumers: Vec<_> = doorbells
        .iter()
        .map(|d| producer.subscribe(Arc::clone(d)))
        .collect();
    for i in 0..1000_u64 {
        producer.publish(i);
    }
    for doorbell in &doorbells {
        assert_eq!(doorbell.wakeups(), 1);
    }
    assert!(consumers.iter().all(|c| c.lag() == 1000));
}

#[test]
fn a_consumer_that_went_idle_is_woken_again() {
    let (mut producer, mut consumer) = ring(16);
    producer.publish(1_u64);
    producer.publish(2);
    assert_eq!(consumer.doorbell().wakeups(), 1);
    read_all(&mut consumer);
    // Still pending (not armed): publishing does not wake again.
    producer.publish(3);
    assert_eq!(consumer.doorbell().wakeups(), 1);
    read_all(&mut consumer);
    consumer.doorbell().arm(); // what `ready` does once it finds nothing to read
    producer.publish(4);
    producer.publish(5);
    assert_eq!(consumer.doorbell().wakeups(), 2);
}

#[test]
fn push_alone_does_not_wake_and_wake_rings_once_per_batch() {
    let (mut producer, consumer) = ring(16);
    producer.wake();
    assert_eq!(consumer.doorbell().wakeups(), 0, "nothing pushed");
    for i in 0..10_u64 {
        producer.push(i);
    }
    assert_eq!(consumer.doorbell().wakeups(), 0);
    producer.wake();
    assert_eq!(consumer.doorbell().wakeups(), 1);
    consumer.doorbell().arm();
    producer.wake();
    assert_eq!(
        consumer.doorbell().wakeups(),
        1,
        "nothing new since the last wake"
    );
}

#[test]
fn a_doorbell_shared_by_two_rings_is_rung_once_per_burst() {
    let doorbell = Arc::new(Doorbell::new());
    let mut a = Producer::new(8).unwrap();
    let mut b = Producer::new(8).unwrap();
    let from_a = a.subscribe(Arc::clone(&doorbell));
    let from_b = b.subscribe(Arc::clone(&doorbell));
    a.publish(1_u8);
    b.publish(2);
    a.publish(3);
    assert_eq!(doorbell.wakeups(), 1);
    assert!(from_a.has_pending() && from_b.has_pending());
}

#[tokio::test]
async fn ready_returns_at_once_when_items_are_pending() {
    let (mut producer, mut consumer) = ring(8);
    producer.push(7_u64); // no wake: ready must look at the ring itself
    consumer.ready().await;
    assert_eq!(consumer.try_recv(), Ok(Some(7)));
}

#[test]
fn ready_wakes_on_a_publish_from_another_thread() {
    const ROUNDS: u64 = if cfg!(miri) { 20 } else { 1000 };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (mut producer, mut consumer) = ring(8);
    let (go, went) = std::sync::mpsc::channel::<()>();
    let writer = thread::spawn(move || {
        for i in 0..ROUNDS {
            went.recv().unwrap();
            producer.publish(i);
        }
    });
    runtime.block_on(async {
        for i in 0..ROUNDS {
            go.send(()).unwrap();
            tokio::time::timeout(Duration::from_secs(60), consumer.ready())
                .await
                .expect("the publish woke the consumer");
            assert_eq!(consumer.try_recv(), Ok(Some(i)));
        }
    });
    writer.join().unwrap();
    assert!(consumer.doorbell().wakeups() <= ROUNDS);
}

// ---- multi-threaded stress ----

/// A stress-test item whose words must agree with each other; a torn read, or a read
/// of freed and reused memory, would break the agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    pos: u64,
    check: [u64; 3],
}

impl Stamp {
    fn new(pos: u64) -> Self {
        Self {
            pos,
            check: [
                !pos,
                pos.rotate_left(17),
                pos.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ],
        }
    }
}

/// What one reader saw: every item in order, or a lap report covering exactly the gap.
#[derive(Debug, Default)]
struct Checker {
    expected: u64,
    items: u64,
    missed: u64,
    laps: u64,
}

impl Checker {
    fn item(&mut self, pos: u64, stamp: &Stamp) {
        assert_eq!(stamp, &Stamp::new(stamp.pos), "item intact");
        assert_eq!(
            stamp.pos, self.expected,
            "items in order, none skipped silently"
        );
        assert_eq!(pos, self.expected);
        self.expected += 1;
        self.items += 1;
    }

    fn lapped(&mut self, lapped: Lapped) {
        assert_eq!(
            lapped.missed_from, self.expected,
            "a lap starts where reading stopped"
        );
        assert!(lapped.missed_to > lapped.missed_from);
        self.expected = lapped.missed_to;
        self.missed += lapped.missed();
        self.laps += 1;
    }
}

/// Reads until `total` positions are accounted for, alternating `drain` and `try_recv`.
fn read_until(consumer: &mut Consumer<Stamp>, total: u64, progress: Option<&AtomicU64>) -> Checker {
    let mut checker = Checker::default();
    let mut round = 0_u64;
    while checker.expected < total {
        round += 1;
        let before = checker.expected;
        if round.is_multiple_of(2) {
            consumer.drain(64, |recv| match recv {
                Recv::Item(stamp) => checker.item(checker.expected, stamp),
                Recv::Lapped(lapped) => checker.lapped(lapped),
            });
        } else {
            let pos = consumer.position();
            match consumer.try_recv() {
                Ok(Some(stamp)) => checker.item(pos, &stamp),
                Ok(None) => {}
                Err(lapped) => checker.lapped(lapped),
            }
        }
        assert_eq!(consumer.position(), checker.expected);
        if let Some(progress) = progress {
            progress.store(checker.expected, Ordering::Release);
        }
        if checker.expected == before {
            thread::yield_now();
        }
    }
    assert_eq!(checker.expected, total);
    assert_eq!(checker.items + checker.missed, total);
    assert_eq!(consumer.try_recv(), Ok(None));
    checker
}

/// One writer, three readers, a small ring: readers are lapped often (the machine may
/// have fewer cores than threads) and must account for every position exactly.
#[test]
fn stress_every_reader_sees_every_item_or_an_exact_lap_report() {
    // Miri runs the same code on a much smaller count.
    const TOTAL: u64 = if cfg!(miri) { 3_000 } else { 2_000_000 };
    let mut producer = Producer::new(256).unwrap();
    let consumers: Vec<_> = (0..3)
        .map(|_| producer.subscribe(Arc::new(Doorbell::new())))
        .collect();
    let readers: Vec<_> = consumers
        .into_iter()
        .map(|mut consumer| thread::spawn(move || read_until(&mut consumer, TOTAL, None)))
        .collect();
    let mut pos = 0;
    let mut turn = 0_u64;
    while pos < TOTAL {
        turn += 1;
        // Alternate single pushes and batches of 1..=16.
        if (turn / 1000).is_multiple_of(2) {
            assert_eq!(producer.push(Stamp::new(pos)), pos);
            pos += 1;
        } else {
            let end = (pos + 1 + turn % 16).min(TOTAL);
            assert_eq!(producer.push_batch((pos..end).map(Stamp::new)), pos..end);
            pos = end;
        }
        if turn.is_multiple_of(32) {
            producer.wake();
        }
        if turn.is_multiple_of(256) {
            // Let the readers in between laps, so that reads race with overwrites
            // instead of every reader being lapped wholesale.
            thread::yield_now();
        }
    }
    let mut items = 0;
    for reader in readers {
        let checker = reader.join().expect("reader checks passed");
        assert!(checker.items >= 256, "the last lap is always read");
        items += checker.items;
    }
    assert!(items >= 3 * 256);
}

/// Same, with the test holding the writer back (outside the ring) so no reader falls
/// a lap behind: every reader must see every item, through many wrap-arounds.
#[test]
fn stress_readers_within_a_lap_see_every_item() {
    const TOTAL: u64 = if cfg!(miri) { 1_000 } else { 1_000_000 };
    const CAPACITY: u64 = 64;
    let mut producer = Producer::new(CAPACITY as usize).unwrap();
    let progress: Arc<Vec<AtomicU64>> = Arc::new((0..3).map(|_| AtomicU64::new(0)).collect());
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let mut consumer = producer.subscribe(Arc::new(Doorbell::new()));
            let progress = Arc::clone(&progress);
            thread::spawn(move || read_until(&mut consumer, TOTAL, Some(&progress[i])))
        })
        .collect();
    for pos in 0..TOTAL {
        while progress
            .iter()
            .any(|p| p.load(Ordering::Acquire) + CAPACITY / 2 <= pos)
        {
            thread::yield_now();
        }
        producer.push(Stamp::new(pos));
    }
    for reader in readers {
        let checker = reader.join().expect("reader checks passed");
        assert_eq!(checker.laps, 0);
        assert_eq!(checker.items, TOTAL);
    }
}

/// Consumers on their own current-thread runtimes sleep on their doorbells; the writer
/// publishes in bursts. A lost wake-up would leave a consumer asleep with items pending.
#[test]
fn stress_wakeups_are_never_lost() {
    const TOTAL: u64 = if cfg!(miri) { 3_000 } else { 200_000 };
    let room: Arc<str> = Arc::from("ch_stress");
    let mut producer: Producer<RoomEvent> = Producer::new(1024).unwrap();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut consumer = producer.subscribe(Arc::new(Doorbell::new()));
            thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let mut expected = 0_u64;
                    let mut items = 0_u64;
                    while expected < TOTAL {
                        tokio::time::timeout(Duration::from_secs(120), consumer.ready())
                            .await
                            .expect("woken while items are pending");
                        consumer.drain(256, |recv| match recv {
                            Recv::Item(event) => {
                                assert_eq!(event.seq, expected + 1);
                                assert_eq!(&*event.room, "ch_stress");
                                assert_eq!(
                                    event.payload,
                                    Bytes::from(expected.to_le_bytes().to_vec())
                                );
                                expected += 1;
                                items += 1;
                            }
                            Recv::Lapped(lapped) => {
                                assert_eq!(lapped.missed_from, expected);
                                expected = lapped.missed_to;
                            }
                        });
                    }
                    (items, consumer.doorbell().wakeups())
                })
            })
        })
        .collect();
    let mut burst = 0;
    for pos in 0..TOTAL {
        producer.publish(RoomEvent::new(
            Arc::clone(&room),
            pos + 1,
            Bytes::from(pos.to_le_bytes().to_vec()),
        ));
        burst += 1;
        if burst == 1 + pos % 97 {
            burst = 0;
            thread::yield_now();
        }
    }
    for reader in readers {
        let (items, wakeups) = reader.join().expect("reader checks passed");
        assert!(items >= 1024);
        assert!((1..=TOTAL).contains(&wakeups));
    }
}
