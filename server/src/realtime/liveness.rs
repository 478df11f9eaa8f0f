//! One sweep per shard instead of timers in every WebSocket session: each tick it pings
//! the sessions whose ping is due, closes those silent past the pong timeout (1001) and
//! `graphql-transport-ws` sessions not initialised in time (4408); when the shard shuts
//! down it closes every session with 1001. A session costs a slot here, not a timer.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use streamhub_ws::frame;
use streamhub_ws::gqlws::close as gql_close;
use streamhub_ws::message::code;
use streamhub_ws::queue::SendQueue;
use tokio::time::Instant;

use crate::conn::ConnState;

/// The shard's open sessions and their deadlines.
#[derive(Debug)]
pub struct Liveness {
    slots: RefCell<Slots>,
    /// How often each session is pinged.
    interval: Duration,
    /// How long past a due ping a silent session is kept.
    patience: Duration,
}

#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// Set once the shard shuts down: sessions registered later are closed at once.
    closed: bool,
}

#[derive(Debug)]
struct Entry {
    queue: Rc<SendQueue>,
    conn: Rc<ConnState>,
    next_ping: Instant,
    /// A `graphql-transport-ws` session not yet initialised must be by then.
    init_by: Option<Instant>,
}

/// A session's slot; dropping it leaves the sweep.
#[derive(Debug)]
pub struct Registration<'a> {
    liveness: &'a Liveness,
    key: u32,
}

impl Registration<'_> {
    /// The session was initialised: its init deadline no longer applies.
    pub fn initialized(&self) {
        if let Some(Some(e)) = self
            .liveness
            .slots
            .borrow_mut()
            .entries
            .get_mut(self.key as usize)
        {
            e.init_by = None;
        }
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut slots = self.liveness.slots.borrow_mut();
        slots.entries[self.key as usize] = None;
        slots.free.push(self.key);
    }
}

impl Liveness {
    /// Sessions pinged every `interval`, closed when silent for `interval + patience`.
    pub fn new(interval: Duration, patience: Duration) -> Liveness {
        Liveness {
            slots: RefCell::default(),
            interval,
            patience,
        }
    }

    /// Adds a session: pinged from now on, closed with 4408 if `init_within` is given and
    /// passes before [`Registration::initialized`]. During shutdown it is closed at once.
    pub fn register(
        &self,
        queue: &Rc<SendQueue>,
        conn: &Rc<ConnState>,
        init_within: Option<Duration>,
    ) -> Registration<'_> {
        let now = Instant::now();
        let mut slots = self.slots.borrow_mut();
        if slots.closed {
            queue.close_with(frame::close(code::GOING_AWAY, "server shutting down"));
        }
        let entry = Entry {
            queue: Rc::clone(queue),
            conn: Rc::clone(conn),
            next_ping: now + self.interval,
            init_by: init_within.map(|d| now + d),
        };
        let key = match slots.free.pop() {
            Some(k) => {
                slots.entries[k as usize] = Some(entry);
                k
            }
            None => {
                slots.entries.push(Some(entry));
                (slots.entries.len() - 1) as u32
            }
        };
        Registration {
            liveness: self,
            key,
        }
    }

    /// How often the sweep looks: often enough for every deadline to be kept within a
    /// tenth of its length or a second, whichever is shorter.
    pub fn tick(&self, init_within: Duration) -> Duration {
        let shortest = self.interval.min(self.patience).min(init_within);
        (shortest / 10)
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10))
    }

    /// One pass at `now`.
    pub fn sweep(&self, now: Instant) {
        let mut slots = self.slots.borrow_mut();
        for e in slots.entries.iter_mut().flatten() {
            if e.queue.is_closing() {
                continue;
            }
            if e.init_by.is_some_and(|t| now >= t) {
                e.queue.close_with(frame::close(
                    gql_close::INIT_TIMEOUT,
                    "Connection initialisation timeout",
                ));
            } else if now.saturating_duration_since(e.conn.last_read())
                > self.interval + self.patience
            {
                e.queue
                    .close_with(frame::close(code::GOING_AWAY, "no answer to pings"));
            } else if now >= e.next_ping {
                e.queue.push(frame::ping(b""));
                e.next_ping = now + self.interval;
            }
        }
    }

    /// Closes every session with 1001, and any registered from now on.
    pub fn close_all(&self) {
        let mut slots = self.slots.borrow_mut();
        slots.closed = true;
        for e in slots.entries.iter().flatten() {
            e.queue
                .close_with(frame::close(code::GOING_AWAY, "server shutting down"));
        }
    }

    /// Sessions registered.
    #[cfg(test)]
    fn len(&self) -> usize {
        let slots = self.slots.borrow();
        slots.entries.len() - slots.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(now: Instant) -> Rc<ConnState> {
        Rc::new(ConnState::new("127.0.0.1:1".parse().unwrap(), now, false))
    }

    fn sent(q: &SendQueue) -> usize {
        q.queued_bytes()
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_are_pinged_when_due_and_closed_when_silent_too_long() {
        let live = Liveness::new(Duration::from_secs(25), Duration::from_secs(10));
        let t0 = Instant::now();
        let (qa, qb) = (SendQueue::new(1 << 20), SendQueue::new(1 << 20));
        let (ca, cb) = (conn(t0), conn(t0));
        let _a = live.register(&qa, &ca, None);
        let b = live.register(&qb, &cb, None);
        assert_eq!(live.len(), 2);
        live.sweep(t0 + Duration::from_secs(24));
        assert_eq!((sent(&qa), sent(&qb)), (0, 0), "no ping before it is due");
        live.sweep(t0 + Duration::from_secs(25));
        assert_eq!(sent(&qa), frame::ping(b"").len(), "pinged");
        assert!(!qa.is_closing());
        // Nothing read for more than 35 s: closed.
        live.sweep(t0 + Duration::from_secs(36));
        assert!(qa.is_closing() && qb.is_closing());
        drop(b);
        assert_eq!(live.len(), 1, "a dropped registration leaves");
    }

    #[tokio::test(start_paused = true)]
    async fn an_uninitialised_session_is_closed_at_its_deadline_unless_initialised() {
        let live = Liveness::new(Duration::from_secs(25), Duration::from_secs(10));
        let t0 = Instant::now();
        let (qa, qb) = (SendQueue::new(1 << 20), SendQueue::new(1 << 20));
        let (ca, cb) = (conn(t0), conn(t0));
        let _a = live.register(&qa, &ca, Some(Duration::from_secs(3)));
        let b = live.register(&qb, &cb, Some(Duration::from_secs(3)));
        b.initialized();
        live.sweep(t0 + Duration::from_secs(3));
        assert!(qa.is_closing(), "4408");
        assert!(!qb.is_closing());
    }

    #[tokio::test(start_paused = true)]
    async fn shutting_down_closes_every_session_and_any_that_comes_later() {
        let live = Liveness::new(Duration::from_secs(25), Duration::from_secs(10));
        let t0 = Instant::now();
        let qa = SendQueue::new(1 << 20);
        let ca = conn(t0);
        let _a = live.register(&qa, &ca, None);
        live.close_all();
        assert!(qa.is_closing());
        let qb = SendQueue::new(1 << 20);
        let _b = live.register(&qb, &ca, None);
        assert!(qb.is_closing());
    }
}
