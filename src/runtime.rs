//! The runtime: one tokio `current_thread` runtime with one `LocalSet`, on the calling thread,
//! and the few combinators the gateway needs on it. Tasks are `spawn_local`ed and hold `Rc`
//! state; nothing here (or anywhere in gatelet) starts a second OS thread: no
//! `rt-multi-thread`, no `spawn_blocking`, no `tokio::fs`, no `lookup_host` (each of these
//! would start tokio's blocking pool). Host names are resolved before the runtime starts.
//!
//! Why tokio: its reactor registers each socket once, edge-triggered, and keeps timers in a
//! wheel inside the process, so waiting costs one `epoll_wait` and no re-arming or timer-fd
//! system calls per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// A future borrowed for the duration of one request.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The runtime `main` and the tests run gatelet on: I/O and time drivers, one thread.
pub fn new() -> std::io::Result<(tokio::runtime::Runtime, tokio::task::LocalSet)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    Ok((runtime, tokio::task::LocalSet::new()))
}

/// Runs `main` to completion on a new runtime on this thread. Tasks it spawns with [`spawn`]
/// run on this thread too, while `main` runs; those still pending when it returns are dropped.
pub fn block_on<F: Future>(main: F) -> std::io::Result<F::Output> {
    let (runtime, local) = new()?;
    Ok(local.block_on(&runtime, main))
}

/// Runs `task` on this thread's `LocalSet`, detached: it ends on its own or with the runtime.
pub fn spawn(task: impl Future<Output = ()> + 'static) {
    drop(tokio::task::spawn_local(task));
}

/// A spawned task that is cancelled when this handle is dropped (sensor tasks end with the
/// last gateway that uses them).
#[derive(Debug)]
pub struct Task(tokio::task::JoinHandle<()>);

impl Task {
    /// Runs `task` on this thread's `LocalSet` until it ends or the handle is dropped.
    pub fn spawn(task: impl Future<Output = ()> + 'static) -> Task {
        Task(tokio::task::spawn_local(task))
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn tokio_instant(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at)
}

/// A timer for `deadline`; it joins the timer wheel at its first poll, not before.
pub fn sleep_until(deadline: Instant) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio_instant(deadline))
}

/// Moves a timer to `deadline` (no system call: the wheel is in the process).
pub fn reset(sleep: Pin<&mut tokio::time::Sleep>, deadline: Instant) {
    sleep.reset(tokio_instant(deadline));
}

/// Waits for `wait`.
pub async fn sleep(wait: std::time::Duration) {
    tokio::time::sleep(wait).await;
}

/// `work`'s output, or `None` when `deadline` passes first (`work` is then dropped). The one
/// way gatelet bounds a wait in time.
pub fn until<F: Future>(deadline: Instant, work: F) -> Until<F> {
    Until(tokio::time::timeout_at(tokio_instant(deadline), work))
}

/// Like [`until`], with a duration from now.
pub fn within<F: Future>(limit: std::time::Duration, work: F) -> Until<F> {
    Until(tokio::time::timeout(limit, work))
}

/// The future of [`until`]: tokio's `Timeout` (a named type rather than an `async fn`, which
/// would hold its argument and its own copy of the awaited future). `work` is polled first;
/// the timer only joins the wheel if `work` is not ready at once.
pub struct Until<F>(tokio::time::Timeout<F>);

impl<F: Future> Future for Until<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of the only field; `Until` never moves it out.
        let inner = unsafe { self.map_unchecked_mut(|u| &mut u.0) };
        inner.poll(cx).map(Result::ok)
    }
}

/// Whichever of `a` and `b` finishes first (`a` is polled first); the other is dropped.
pub async fn first<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        b.as_mut().poll(cx)
    })
    .await
}

/// Polls all `futures` concurrently until each has finished or `deadline` passes; slot `i` is
/// `None` when future `i` had not finished by then (it is dropped, i.e. cancelled).
pub async fn join_until<'a, T>(mut futures: Vec<LocalFuture<'a, T>>, deadline: Instant) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut timer = std::pin::pin!(sleep_until(deadline));
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending || timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out
}

/// The first `Ok` of `futures` run concurrently, or the last error when all fail (the others
/// are cancelled as soon as one succeeds). `futures` must not be empty.
pub async fn first_ok<'a, T, E>(mut futures: Vec<LocalFuture<'a, Result<T, E>>>) -> Result<T, E> {
    let mut last_err = None;
    std::future::poll_fn(|cx| {
        let mut i = 0;
        while i < futures.len() {
            match futures[i].as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => return Poll::Ready(Ok(v)),
                Poll::Ready(Err(e)) => {
                    last_err = Some(e);
                    drop(futures.swap_remove(i));
                }
                Poll::Pending => i += 1,
            }
        }
        match (futures.is_empty(), last_err.take()) {
            (true, Some(e)) => Poll::Ready(Err(e)),
            (_, e) => {
                last_err = e;
                Poll::Pending
            }
        }
    })
    .await
}

/// Like [`join_until`], but at most `limit` of the futures are started at a time (in order);
/// futures not started by `deadline` are never polled (slot `None`).
pub async fn join_bounded<'a, T>(
    mut futures: Vec<LocalFuture<'a, T>>,
    limit: usize,
    deadline: Instant,
) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut started = 0;
    let mut running = 0;
    let mut timer = std::pin::pin!(sleep_until(deadline));
    std::future::poll_fn(|cx| {
        loop {
            while running < limit.max(1) && started < futures.len() {
                started += 1;
                running += 1;
            }
            let mut finished_any = false;
            for (fut, slot) in futures[..started].iter_mut().zip(out.iter_mut()) {
                if slot.is_none()
                    && let Poll::Ready(v) = fut.as_mut().poll(cx)
                {
                    *slot = Some(v);
                    running -= 1;
                    finished_any = true;
                }
            }
            if running == 0 && started == futures.len() {
                return Poll::Ready(());
            }
            // Freed slots start the next futures right away, in this same poll.
            if !finished_any || started == futures.len() {
                break;
            }
        }
        if timer.as_mut().poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out
}

/// A one-shot broadcast: [`Signal::fire`] once, and every [`Signal::wait`] (past or future)
/// completes. Used for shutdown, which every connection waits for: a waiter takes a slot once
/// and a later poll only compares wakers, with no lock or atomic, since the connection's task
/// polls it on every wake-up.
#[derive(Default)]
pub struct Signal {
    fired: std::cell::Cell<bool>,
    waiters: std::cell::RefCell<Waiters>,
}

/// Waiters' wakers by slot, and the free slots. At most one slot per live [`Wait`].
#[derive(Default)]
struct Waiters {
    slots: Vec<Option<std::task::Waker>>,
    free: Vec<usize>,
}

impl Signal {
    /// Fires it (idempotent).
    pub fn fire(&self) {
        self.fired.set(true);
        let woken: Vec<_> = self
            .waiters
            .borrow_mut()
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        woken.into_iter().for_each(std::task::Waker::wake);
    }

    /// Completes once it has fired.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            signal: self,
            slot: None,
        }
    }
}

/// The future of [`Signal::wait`].
pub struct Wait<'s> {
    signal: &'s Signal,
    slot: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired.get() {
            return Poll::Ready(());
        }
        let mut waiters = self.signal.waiters.borrow_mut();
        match self.slot {
            Some(i) => match &mut waiters.slots[i] {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            },
            None => {
                let waker = Some(cx.waker().clone());
                let i = match waiters.free.pop() {
                    Some(i) => {
                        waiters.slots[i] = waker;
                        i
                    }
                    None => {
                        waiters.slots.push(waker);
                        waiters.slots.len() - 1
                    }
                };
                drop(waiters);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut waiters = self.signal.waiters.borrow_mut();
            waiters.slots[i] = None;
            waiters.free.push(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn join_bounded_never_runs_more_than_the_limit_and_stops_at_the_deadline() {
        let active = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let results = block_on(async {
            let futures: Vec<LocalFuture<'_, usize>> = (0..10usize)
                .map(|i| {
                    let (active, peak) = (active.clone(), peak.clone());
                    Box::pin(async move {
                        active.set(active.get() + 1);
                        peak.set(peak.get().max(active.get()));
                        // Member 7 hangs past the deadline.
                        let wait = if i == 7 {
                            Duration::from_secs(5)
                        } else {
                            Duration::from_millis(5)
                        };
                        sleep(wait).await;
                        active.set(active.get() - 1);
                        i
                    }) as LocalFuture<'_, usize>
                })
                .collect();
            join_bounded(futures, 3, Instant::now() + Duration::from_millis(300)).await
        })
        .unwrap();
        assert_eq!(peak.get(), 3);
        let done: Vec<usize> = results.iter().flatten().copied().collect();
        assert_eq!(done, [0, 1, 2, 3, 4, 5, 6, 8, 9], "all but the hanging one, in order");
    }

    #[test]
    fn a_signal_wakes_waiters_from_before_and_after_it_fired() {
        block_on(async {
            let signal = Rc::new(Signal::default());
            let woken = Rc::new(Cell::new(0));
            for _ in 0..3 {
                let (signal, woken) = (signal.clone(), woken.clone());
                spawn(async move {
                    signal.wait().await;
                    woken.set(woken.get() + 1);
                });
            }
            // Let the three register, then fire.
            tokio::task::yield_now().await;
            signal.fire();
            signal.wait().await;
            within(Duration::from_secs(5), async {
                while woken.get() < 3 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("every waiter woken");
        })
        .unwrap();
    }

    #[test]
    fn a_dropped_task_is_cancelled() {
        block_on(async {
            let held = Rc::new(());
            let h = held.clone();
            let task = Task::spawn(async move {
                let _h = h;
                std::future::pending::<()>().await;
            });
            tokio::task::yield_now().await;
            assert_eq!(Rc::strong_count(&held), 2, "the task holds its state while it runs");
            drop(task);
            within(Duration::from_secs(5), async {
                while Rc::strong_count(&held) > 1 {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("a dropped task's future is dropped");
        })
        .unwrap();
    }
}
