//! The runtime: one `LocalExecutor` driven by `async_io::block_on` on the calling thread, and
//! the two small combinators the gateway needs on it. No `smol::spawn`, no thread pool: the
//! only other OS thread is async-io's parked helper. Shared state is `Rc`/`Cell`/`RefCell`.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use async_executor::LocalExecutor;
use async_io::Timer;
use futures_lite::future;

/// A future borrowed for the duration of one request.
pub type LocalFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs `main` on a new single-threaded executor until it completes. Tasks spawned on the
/// executor it is given (connections, upstream connections) run on this thread too.
pub fn block_on<T, F: Future<Output = T>>(main: impl FnOnce(Rc<LocalExecutor<'static>>) -> F) -> T {
    let executor = Rc::new(LocalExecutor::new());
    let fut = main(executor.clone());
    async_io::block_on(executor.run(fut))
}

/// `work`'s output, or `None` when `deadline` passes first (`work` is then dropped). The one
/// way gatelet bounds a wait in time.
pub fn until<F: Future>(deadline: Instant, work: F) -> Until<F> {
    Until {
        work,
        deadline,
        timer: None,
    }
}

/// Like [`until`], with a duration from now.
pub fn within<F: Future>(limit: std::time::Duration, work: F) -> Until<F> {
    until(Instant::now() + limit, work)
}

pin_project_lite::pin_project! {
    /// The future of [`until`]. A named type rather than an `async fn`: an async wrapper holds
    /// its argument and its own copy of the awaited future, doubling the size of everything it
    /// wraps (and copying it); the timer is only created (and registered with the reactor) if
    /// `work` is not ready at its first poll.
    pub struct Until<F> {
        #[pin]
        work: F,
        deadline: Instant,
        timer: Option<Timer>,
    }
}

impl<F: Future> Future for Until<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.work.poll(cx) {
            return Poll::Ready(Some(v));
        }
        let deadline = *this.deadline;
        let timer = this.timer.get_or_insert_with(|| Timer::at(deadline));
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Polls all `futures` concurrently until each has finished or `deadline` passes; slot `i` is
/// `None` when future `i` had not finished by then (it is dropped, i.e. cancelled).
pub async fn join_until<'a, T>(mut futures: Vec<LocalFuture<'a, T>>, deadline: Instant) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut timer = Timer::at(deadline);
    future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if !pending || Pin::new(&mut timer).poll(cx).is_ready() {
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
    future::poll_fn(|cx| {
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
    let mut timer = Timer::at(deadline);
    future::poll_fn(|cx| {
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
        if Pin::new(&mut timer).poll(cx).is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    out
}

/// A one-shot broadcast: [`Signal::fire`] once, and every [`Signal::wait`] (past or future)
/// completes. Used for shutdown. Built on `event-listener`, so a waiter that is polled many
/// times registers once (a hand-rolled waker list would grow with every poll).
#[derive(Default)]
pub struct Signal {
    fired: std::cell::Cell<bool>,
    event: event_listener::Event,
}

impl Signal {
    /// Fires it (idempotent).
    pub fn fire(&self) {
        self.fired.set(true);
        self.event.notify(usize::MAX);
    }

    /// Completes once it has fired.
    pub async fn wait(&self) {
        while !self.fired.get() {
            let listener = self.event.listen();
            // Fired between the check and the registration: the listener would miss it.
            if self.fired.get() {
                break;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    #[test]
    fn join_bounded_never_runs_more_than_the_limit_and_stops_at_the_deadline() {
        let active = Rc::new(Cell::new(0usize));
        let peak = Rc::new(Cell::new(0usize));
        let results = async_io::block_on(async {
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
                        Timer::after(wait).await;
                        active.set(active.get() - 1);
                        i
                    }) as LocalFuture<'_, usize>
                })
                .collect();
            join_bounded(futures, 3, Instant::now() + Duration::from_millis(300)).await
        });
        assert_eq!(peak.get(), 3);
        let done: Vec<usize> = results.iter().flatten().copied().collect();
        assert_eq!(done, [0, 1, 2, 3, 4, 5, 6, 8, 9], "all but the hanging one, in order");
    }
}
