//! systemd's notify protocol, a few lines over a Unix datagram socket: `READY=1` once serving,
//! `WATCHDOG=1` from a timer on the event loop itself (a wedged loop stops the pings and
//! systemd restarts the service), `STOPPING=1` on shutdown. Nothing happens when
//! `NOTIFY_SOCKET` is unset (not started by systemd). Sends never block: the socket is
//! non-blocking, and a message the reader's full queue cannot take is dropped and counted
//! ([`dropped`], `gatelet_sd_notify_dropped_total` in `/__stats`).

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Notifications dropped because the reader's queue was full, since the process started.
// 32 bits: ARMv5 (the Pi Zero's static build) has no 64-bit atomics; at one dropped message a
// second it wraps after 136 years.
static DROPPED: AtomicU32 = AtomicU32::new(0);

/// How many notifications were dropped (the reader's queue was full), process-wide: a reload
/// does not reset it.
pub fn dropped() -> u64 {
    u64::from(DROPPED.load(Ordering::Relaxed))
}

/// Sends one notification; errors are logged, never fatal (systemd may have gone away).
pub fn notify(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else { return };
    // A blocking send waits while the reader's queue (net.unix.max_dgram_qlen, 10 by default)
    // is full, and it would wait on the one thread: no request served, no signal
    // handled. Better to lose a notification than the gateway.
    if socket.set_nonblocking(true).is_err() {
        return;
    }
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's default in containers).
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| socket.send_to_addr(message.as_bytes(), &a))
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    match sent {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            // A reader that stopped reading drops every later ping: warn once, not per ping.
            if DROPPED.fetch_add(1, Ordering::Relaxed) == 0 {
                log::warn!(
                    "sd_notify {message:?} dropped: the notify socket's queue is full (later drops \
                     are logged at debug level and counted in gatelet_sd_notify_dropped_total)"
                );
            } else {
                log::debug!("sd_notify {message:?} dropped: the notify socket's queue is full");
            }
        }
        Err(e) => log::warn!("sd_notify {message:?}: {e}"),
    }
}

/// Half of `WATCHDOG_USEC`, when the watchdog is on for this process (`WATCHDOG_PID`, if set,
/// must be ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog forever from the event loop.
pub async fn watchdog(every: Duration) {
    loop {
        notify("WATCHDOG=1");
        crate::runtime::sleep(every).await;
    }
}
