//! The accept loop: takes connections while fewer than the cap are open (beyond it, new ones
//! wait in the kernel's backlog and the open ones keep being served), and runs each as a task
//! on the one thread's `LocalSet`. Also the entry point [`run`] that tests and `main` share,
//! and the SIGHUP reload.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::http;
use crate::runtime;

/// Pause after a failed `accept` (e.g. out of file descriptors) instead of spinning on it.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Start-up options that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve `/__debug/` (`run -d`).
    pub debug: bool,
    /// The config file, re-read on SIGHUP (none for the embedded config).
    pub config_path: Option<std::path::PathBuf>,
}

/// Open connections and the accept loop waiting for one to close.
#[derive(Default)]
struct Slots {
    /// Connections open now: the `/__stats` gauge too (`Metrics::connections`, carried from
    /// gateway to gateway across reloads).
    open: Rc<Cell<u64>>,
    waiting: RefCell<Option<Waker>>,
}

/// Frees a connection slot when the connection's task ends, however it ends.
struct SlotGuard(Rc<Slots>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
        if let Some(w) = self.0.waiting.borrow_mut().take() {
            w.wake();
        }
    }
}

/// Serves `config` on `listener` on the current thread until `shutdown` completes. `shutdown`
/// is first polled inside the runtime (it may register signal handlers there).
pub fn run(
    listener: std::net::TcpListener,
    config: Config,
    options: Options,
    shutdown: impl Future<Output = ()> + 'static,
) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    runtime::block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let grace = config.shutdown_grace;
        let gw = Rc::new(Gateway::new(config, options.debug).map_err(io::Error::other)?);
        let current = Rc::new(RefCell::new(gw.clone()));
        if let Some(path) = options.config_path.clone() {
            runtime::spawn(reload_on_sighup(path, options.debug, current.clone()));
        }
        let slots = Rc::new(Slots {
            open: gw.metrics.connections.clone(),
            waiting: RefCell::new(None),
        });
        // Bound, routes compiled, sensor tasks spawned: ready.
        crate::notify::notify("READY=1");
        if let Some(every) = crate::notify::watchdog_interval() {
            runtime::spawn(crate::notify::watchdog(every));
        }
        // This future is polled at every turn of the LocalSet, whether woken or not, so it only
        // waits on `stop` (a flag and a waker compare). Accepting and the shutdown signal are
        // tasks of their own, polled when their socket or signal is ready: polled from here,
        // they cost ~600 instructions per proxied request.
        let stop = Rc::new(runtime::Signal::default());
        let accepted = Rc::new(RefCell::new(Ok(())));
        let accepting = {
            let (stop, accepted) = (stop.clone(), accepted.clone());
            let accepting = accept(listener, current.clone(), slots.clone());
            runtime::Task::spawn(async move {
                *accepted.borrow_mut() = accepting.await;
                stop.fire();
            })
        };
        let stopping = {
            let stop = stop.clone();
            runtime::Task::spawn(async move {
                shutdown.await;
                stop.fire();
            })
        };
        stop.wait().await;
        // Stop accepting (the listener is dropped with the accept task), let in-flight requests
        // finish within the grace period, close idle keep-alive connections now.
        drop((accepting, stopping));
        crate::notify::notify("STOPPING=1");
        log::info!(
            "shutting down: {} connection(s) open, waiting at most {grace:?}",
            slots.open.get()
        );
        gw.shutdown.fire();
        let drained = std::future::poll_fn(|cx| {
            if slots.open.get() == 0 {
                Poll::Ready(())
            } else {
                *slots.waiting.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        runtime::within(grace, drained).await;
        accepted.replace(Ok(()))
    })?
}

/// SIGHUP: read and validate the config file again; if valid, new connections get a gateway
/// built from it (open connections keep theirs; unchanged sensors keep running); if not, the
/// old one stays, every error is logged, and `/__health` says the reload failed.
async fn reload_on_sighup(path: std::path::PathBuf, debug: bool, current: Rc<RefCell<Rc<Gateway>>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        log::warn!("SIGHUP cannot be handled: no config reload");
        return;
    };
    while hangups.recv().await.is_some() {
        crate::notify::notify("RELOADING=1");
        let old = current.borrow().clone();
        match crate::config::load(&path) {
            Ok(mut config) => {
                // The listening socket stays: a new port or address needs a restart.
                if (config.listen_ip, config.port) != (old.config.listen_ip, old.config.port) {
                    log::warn!("reload: listen_ip/port changes take effect at the next restart");
                    (config.listen_ip, config.port) = (old.config.listen_ip, old.config.port);
                }
                let endpoints = config.endpoints.len();
                match Gateway::replacing(config, debug, Some(&old)) {
                    Ok(new) => {
                        *current.borrow_mut() = Rc::new(new);
                        log::info!("reloaded {}: {endpoints} endpoint(s)", path.display());
                    }
                    Err(e) => {
                        log::error!("reload refused: {e}");
                        *old.reload_error.borrow_mut() = Some(vec![e]);
                    }
                }
            }
            Err(errors) => {
                for e in &errors {
                    log::error!("reload refused: {e}");
                }
                *old.reload_error.borrow_mut() = Some(errors.iter().map(|e| e.to_string()).collect());
            }
        }
        crate::notify::notify("READY=1");
    }
}

async fn accept(listener: TcpListener, current: Rc<RefCell<Rc<Gateway>>>, slots: Rc<Slots>) -> io::Result<()> {
    loop {
        std::future::poll_fn(|cx| {
            if slots.open.get() < current.borrow().config.max_connections as u64 {
                Poll::Ready(())
            } else {
                *slots.waiting.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        match listener.accept().await {
            Ok((stream, peer)) => {
                // Responses are small and written whole: no Nagle delay.
                let _ = stream.set_nodelay(true);
                slots.open.set(slots.open.get() + 1);
                let guard = SlotGuard(slots.clone());
                let gw = current.borrow().clone();
                // One task per connection, sized for its own kind: the TLS state (rustls'
                // buffers, handshake) is never part of a plain connection's task.
                #[cfg(feature = "tls")]
                if let Some(tls) = gw.config.tls.clone() {
                    runtime::spawn(async move {
                        let _guard = guard;
                        let (timeouts, shutdown) = (gw.config.timeouts, gw.shutdown.clone());
                        http::serve_tls(
                            tls,
                            stream,
                            peer,
                            timeouts,
                            shutdown,
                            crate::dispatch::handler(gw, peer),
                        )
                        .await;
                    });
                    continue;
                }
                runtime::spawn(async move {
                    let _guard = guard;
                    let (timeouts, shutdown) = (gw.config.timeouts, gw.shutdown.clone());
                    http::serve(stream, peer, timeouts, shutdown, crate::dispatch::handler(gw, peer)).await;
                });
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                runtime::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}
