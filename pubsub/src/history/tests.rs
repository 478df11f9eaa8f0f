use super::*;

fn limits(max_events: usize, max_age: Option<Duration>) -> HistoryLimits {
    HistoryLimits {
        max_events,
        max_age,
    }
}

/// The seqs of a replay, or `None` when not recoverable.
fn replayed(history: &History<String>, since: u64, now: Instant) -> Option<Vec<u64>> {
    match history.since(since, now).expect("since within range") {
        Recovery::Replay(replay) => {
            let events: Vec<_> = replay.collect();
            for (seq, value) in &events {
                assert_eq!(
                    **value,
                    format!("event {seq}"),
                    "each seq carries its own event"
                );
            }
            Some(events.into_iter().map(|(seq, _)| seq).collect())
        }
        Recovery::NotRecoverable => None,
    }
}

fn filled(limits: HistoryLimits, last: u64, t0: Instant) -> History<String> {
    let mut history = History::new(limits);
    for seq in 1..=last {
        assert_eq!(
            history.record(seq, format!("event {seq}"), t0),
            Recorded::Appended
        );
    }
    history
}

#[test]
fn a_new_room_recovers_since_zero_with_nothing() {
    let now = Instant::now();
    let history: History<String> = History::new(HistoryLimits::default());
    assert_eq!(history.last_seq(), 0);
    assert!(history.is_empty());
    assert_eq!(replayed(&history, 0, now), Some(vec![]));
    assert_eq!(
        history.since(1, now).unwrap_err(),
        SinceAhead {
            since: 1,
            last_seq: 0
        }
    );
}

#[test]
fn since_replays_exactly_the_events_after_it() {
    let now = Instant::now();
    let history = filled(HistoryLimits::default(), 10, now);
    assert_eq!(history.last_seq(), 10);
    assert_eq!(history.len(), 10);
    assert_eq!(replayed(&history, 0, now), Some((1..=10).collect()));
    assert_eq!(replayed(&history, 4, now), Some(vec![5, 6, 7, 8, 9, 10]));
    assert_eq!(replayed(&history, 9, now), Some(vec![10]));
}

#[test]
fn since_the_last_seq_is_an_empty_recovery() {
    let now = Instant::now();
    let history = filled(HistoryLimits::default(), 3, now);
    let recovery = history.since(3, now).unwrap();
    assert!(recovery.is_recovered());
    match recovery {
        Recovery::Replay(replay) => assert_eq!(replay.len(), 0),
        Recovery::NotRecoverable => panic!("since == last is recovered"),
    }
}

#[test]
fn since_past_the_last_seq_is_an_error() {
    let now = Instant::now();
    let history = filled(HistoryLimits::default(), 3, now);
    let err = history.since(4, now).unwrap_err();
    assert_eq!(
        err,
        SinceAhead {
            since: 4,
            last_seq: 3
        }
    );
    assert_eq!(err.to_string(), "since 4 is past the room's last seq 3");
    assert!(history.since(1_000_000, now).is_err());
}

#[test]
fn the_count_limit_keeps_the_newest_and_refuses_older_gaps_whole() {
    let now = Instant::now();
    let history = filled(limits(5, None), 12, now);
    assert_eq!(history.len(), 5);
    assert_eq!(replayed(&history, 7, now), Some(vec![8, 9, 10, 11, 12]));
    assert_eq!(replayed(&history, 10, now), Some(vec![11, 12]));
    // Seq 7 is gone: never a partial replay of 8..=12.
    assert_eq!(replayed(&history, 6, now), None);
    assert_eq!(replayed(&history, 0, now), None);
    assert_eq!(replayed(&history, 12, now), Some(vec![]));
}

#[test]
fn the_age_limit_expires_old_events() {
    let t0 = Instant::now();
    let second = Duration::from_secs(1);
    let mut history = History::new(limits(100, Some(10 * second)));
    for seq in 1..=10 {
        history.record(seq, format!("event {seq}"), t0 + second * seq as u32);
    }
    // At t0 + 10.5s nothing is 10s old.
    assert_eq!(
        replayed(&history, 0, t0 + 10 * second + second / 2),
        Some((1..=10).collect())
    );
    // At t0 + 13.5s, events 1..=3 (at 1s, 2s, 3s) are more than 10s old.
    let now = t0 + 13 * second + second / 2;
    assert_eq!(replayed(&history, 3, now), Some((4..=10).collect()));
    assert_eq!(replayed(&history, 2, now), None);
    // Exactly 10s old is too old: at t0 + 14s event 4 is gone too.
    assert_eq!(replayed(&history, 3, t0 + 14 * second), None);
    assert_eq!(
        replayed(&history, 4, t0 + 14 * second),
        Some((5..=10).collect())
    );
    // Everything expired: only since == last recovers.
    let late = t0 + 60 * second;
    assert_eq!(replayed(&history, 10, late), Some(vec![]));
    assert_eq!(replayed(&history, 9, late), None);
    assert_eq!(history.len(), 10, "since does not mutate");
    history.prune(now);
    assert_eq!(history.len(), 7);
    history.prune(late);
    assert!(history.is_empty());
    assert_eq!(history.last_seq(), 10);
}

#[test]
fn recording_prunes_expired_events() {
    let t0 = Instant::now();
    let mut history = History::new(limits(100, Some(Duration::from_secs(5))));
    history.record(1, "event 1".to_owned(), t0);
    history.record(2, "event 2".to_owned(), t0 + Duration::from_secs(3));
    history.record(3, "event 3".to_owned(), t0 + Duration::from_secs(7));
    assert_eq!(history.len(), 2);
    assert_eq!(
        replayed(&history, 1, t0 + Duration::from_secs(7)),
        Some(vec![2, 3])
    );
}

#[test]
fn a_clock_going_backwards_does_not_break_expiry_order() {
    let t0 = Instant::now();
    let mut history = History::new(limits(100, Some(Duration::from_secs(5))));
    history.record(1, "event 1".to_owned(), t0 + Duration::from_secs(10));
    history.record(2, "event 2".to_owned(), t0);
    // Event 2 counts as no older than event 1.
    assert_eq!(
        replayed(&history, 0, t0 + Duration::from_secs(14)),
        Some(vec![1, 2])
    );
    assert_eq!(replayed(&history, 0, t0 + Duration::from_secs(16)), None);
    assert_eq!(
        replayed(&history, 2, t0 + Duration::from_secs(16)),
        Some(vec![])
    );
}

#[test]
fn duplicates_are_ignored() {
    let now = Instant::now();
    let mut history = filled(HistoryLimits::default(), 3, now);
    assert_eq!(
        history.record(2, "again".to_owned(), now),
        Recorded::Duplicate
    );
    assert_eq!(
        history.record(3, "again".to_owned(), now),
        Recorded::Duplicate
    );
    assert_eq!(history.last_seq(), 3);
    assert_eq!(replayed(&history, 0, now), Some(vec![1, 2, 3]));
}

#[test]
fn a_seq_gap_restarts_the_history_after_it() {
    let now = Instant::now();
    let mut history = filled(HistoryLimits::default(), 3, now);
    assert_eq!(
        history.record(7, "event 7".to_owned(), now),
        Recorded::AfterGap {
            missing_from: 4,
            missing_to: 6
        }
    );
    assert_eq!(history.last_seq(), 7);
    assert_eq!(history.len(), 1);
    assert_eq!(replayed(&history, 6, now), Some(vec![7]));
    assert_eq!(replayed(&history, 5, now), None);
    assert_eq!(
        replayed(&history, 2, now),
        None,
        "1..=3 cannot bridge the gap"
    );
    assert_eq!(
        history.record(8, "event 8".to_owned(), now),
        Recorded::Appended
    );
    assert_eq!(replayed(&history, 6, now), Some(vec![7, 8]));
}

#[test]
fn a_history_started_mid_room_cannot_replay_before_it() {
    let now = Instant::now();
    let mut history = History::starting_after(41, HistoryLimits::default());
    assert_eq!(history.last_seq(), 41);
    assert_eq!(replayed(&history, 41, now), Some(vec![]));
    assert_eq!(replayed(&history, 40, now), None);
    assert_eq!(
        history.record(42, "event 42".to_owned(), now),
        Recorded::Appended
    );
    assert_eq!(replayed(&history, 41, now), Some(vec![42]));
    assert_eq!(replayed(&history, 40, now), None);
}

#[test]
fn a_zero_event_limit_keeps_nothing_but_the_last_seq() {
    let now = Instant::now();
    let history = filled(limits(0, None), 5, now);
    assert!(history.is_empty());
    assert_eq!(history.last_seq(), 5);
    assert_eq!(replayed(&history, 5, now), Some(vec![]));
    assert_eq!(replayed(&history, 4, now), None);
}

/// A tiny deterministic generator for the model test (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Random records (mostly in order, some duplicates and gaps, random clock steps) and
/// random `since` queries, checked against a model that keeps everything.
#[test]
fn since_agrees_with_a_model_that_keeps_everything() {
    let t0 = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..200 {
        let max_events = rng.below(12) as usize;
        let max_age = (rng.below(3) > 0).then(|| Duration::from_millis(rng.below(50) + 1));
        let mut history = History::new(limits(max_events, max_age));
        // The model: every event seen, as (seq, at), and where the last gap ended.
        let mut seen: Vec<(u64, Instant)> = Vec::new();
        let mut restart_after = 0_u64;
        let mut last = 0_u64;
        let mut now = t0;
        for _ in 0..150 {
            now += Duration::from_millis(rng.below(10));
            let seq = match rng.below(20) {
                0 => last.saturating_sub(rng.below(3)), // a duplicate
                1 => last + 2 + rng.below(3),           // a gap
                _ => last + 1,
            };
            let outcome = history.record(seq, format!("event {seq}"), now);
            if seq <= last {
                assert_eq!(outcome, Recorded::Duplicate);
                continue;
            }
            if seq > last + 1 {
                restart_after = seq - 1;
                assert!(matches!(outcome, Recorded::AfterGap { .. }));
            }
            seen.push((seq, now));
            last = seq;
            assert_eq!(history.last_seq(), last);

            let query_now = now + Duration::from_millis(rng.below(30));
            for since in 0..=last + 1 {
                let result = history.since(since, query_now);
                if since > last {
                    assert!(result.is_err());
                    continue;
                }
                // The model: recoverable when every seq in since+1..=last was seen after
                // the last gap, is among the newest max_events and is not expired.
                let kept_from = last.saturating_sub(max_events as u64) + 1;
                let recoverable = (since + 1..=last).all(|s| {
                    s > restart_after
                        && s >= kept_from
                        && seen.iter().any(|&(seq, at)| {
                            seq == s && max_age.is_none_or(|age| query_now.duration_since(at) < age)
                        })
                });
                let expected = recoverable.then(|| (since + 1..=last).collect::<Vec<_>>());
                assert_eq!(
                    replayed(&history, since, query_now),
                    expected,
                    "round {round}, since {since}, last {last}"
                );
            }
        }
    }
}

#[test]
fn milliseconds_work_as_time_and_reads_see_what_is_kept() {
    let mut history: History<String, i64> =
        History::new(limits(3, Some(Duration::from_millis(100))));
    for seq in 1..=4 {
        history.record(seq, format!("event {seq}"), seq as i64 * 10);
    }
    // 1 was evicted by count; 2..=4 are kept.
    assert_eq!(history.get(1), None);
    assert_eq!(history.get(3).map(String::as_str), Some("event 3"));
    assert_eq!(history.get(5), None);
    let newest_first: Vec<u64> = history.before(u64::MAX, 40).map(|(s, _)| s).collect();
    assert_eq!(newest_first, vec![4, 3, 2]);
    let before_four: Vec<u64> = history.before(4, 40).map(|(s, _)| s).collect();
    assert_eq!(before_four, vec![3, 2]);
    // At 120 event 2 (recorded at 20) is exactly 100 ms old: expired, so not read.
    let live: Vec<u64> = history.before(u64::MAX, 120).map(|(s, _)| s).collect();
    assert_eq!(live, vec![4, 3]);
    assert!(!history.since(1, 120).unwrap().is_recovered());
    assert!(history.since(2, 120).unwrap().is_recovered());
}
