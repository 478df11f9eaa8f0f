//! Precise open-loop pacing on one thread. The runtime's timers have a 1 ms resolution,
//! which would release requests in bursts of a millisecond's worth; spinning instead
//! would burn the generator's core and starve its sockets. One periodic timerfd ticks
//! every [`TICK`] while requests are waiting and wakes one pacer task, which releases
//! every connection whose request is due. Measured on this VM: re-arming a one-shot
//! timer for each due time spent 39 % of the generator's CPU in `timerfd_settime`
//! (2026-11-25, perf); the periodic timer is armed once per busy period.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use timerfd::{ClockId, SetTimeFlags, TimerFd, TimerState};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// How often the pacer looks for due requests while any wait: a request is released at
/// most this much (plus the kernel's timer slack) after its due time.
pub const TICK: Duration = Duration::from_micros(50);

/// Releases waiting connections at their due times.
#[derive(Debug)]
pub struct Pacer {
    due: RefCell<BinaryHeap<Reverse<(Instant, u32)>>>,
    release: Vec<Notify>,
    idle: Cell<bool>,
    woken: Notify,
}

impl Pacer {
    /// A pacer for connections `0..connections`.
    pub fn new(connections: u32) -> Rc<Pacer> {
        Rc::new(Pacer {
            due: RefCell::default(),
            release: (0..connections).map(|_| Notify::new()).collect(),
            idle: Cell::new(true),
            woken: Notify::new(),
        })
    }

    /// Waits until `at`, as connection `conn`.
    pub async fn wait(&self, conn: u32, at: Instant) {
        self.due.borrow_mut().push(Reverse((at, conn)));
        if self.idle.get() {
            self.woken.notify_one();
        }
        self.release[conn as usize].notified().await;
    }

    /// Runs the pacer until dropped (spawn it on the connections' thread).
    pub async fn run(self: Rc<Self>) -> std::io::Result<()> {
        let tfd = TimerFd::new_custom(ClockId::Monotonic, true, true)?;
        // SAFETY: `TimerFd` owns its descriptor (an `OwnedFd`) and `as_raw_fd` always
        // returns that one; it stays open until the `AsyncFd` drops the `TimerFd`.
        // Exercised by `connections_are_released_in_due_order_and_not_before`.
        #[allow(unsafe_code)]
        let registered = unsafe { AsyncFd::register(tfd) };
        let mut timer = registered.map_err(std::io::Error::from)?;
        let mut ticking = false;
        loop {
            let now = Instant::now();
            let waiting = {
                let mut due = self.due.borrow_mut();
                while let Some(&Reverse((at, conn))) = due.peek() {
                    if at > now {
                        break;
                    }
                    due.pop();
                    self.release[conn as usize].notify_one();
                }
                !due.is_empty()
            };
            if !waiting {
                if ticking {
                    timer
                        .get_mut()
                        .set_state(TimerState::Disarmed, SetTimeFlags::Default);
                    ticking = false;
                }
                self.idle.set(true);
                self.woken.notified().await;
                self.idle.set(false);
                continue;
            }
            if !ticking {
                timer.get_mut().set_state(
                    TimerState::Periodic {
                        current: TICK,
                        interval: TICK,
                    },
                    SetTimeFlags::Default,
                );
                ticking = true;
            }
            let mut guard = timer.readable().await?;
            guard.get_inner().read();
            guard.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn connections_are_released_in_due_order_and_not_before() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let pacer = Pacer::new(3);
                let runner = tokio::task::spawn_local(Rc::clone(&pacer).run());
                let start = Instant::now();
                let order = Rc::new(RefCell::new(Vec::new()));
                let tasks: Vec<_> = [(0u32, 30u64), (1, 10), (2, 20)]
                    .into_iter()
                    .map(|(conn, ms)| {
                        let (pacer, order) = (Rc::clone(&pacer), Rc::clone(&order));
                        tokio::task::spawn_local(async move {
                            let at = start + Duration::from_millis(ms);
                            pacer.wait(conn, at).await;
                            assert!(Instant::now() >= at, "released early");
                            order.borrow_mut().push(conn);
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                assert_eq!(*order.borrow(), vec![1, 2, 0]);
                runner.abort();
            })
            .await;
    }
}
