//! systemd's notify protocol, a few lines over a Unix datagram socket: `READY=1` once serving,
//! `WATCHDOG=1` from a timer on the event loop itself (a wedged loop stops the pings and
//! systemd restarts the service), `STOPPING=1` on shutdown. Nothing happens when
//! `NOTIFY_SOCKET` is unset (not started by systemd).

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification; errors are logged, never fatal (systemd may have gone away).
pub fn notify(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(socket) = UnixDatagram::unbound() else { return };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (systemd's default in containers).
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| socket.send_to_addr(message.as_bytes(), &a))
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    if let Err(e) = sent {
        log::warn!("sd_notify {message:?}: {e}");
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
