//! Serial ports: open a tty raw (`O_NOCTTY`, non-blocking, `CLOCAL | CREAD`), set baud, data
//! bits, parity and stop bits through termios, and register it with the reactor (`AsyncFd`):
//! reads and writes wait for readiness, never block the thread. A hang-up or `EIO` (device
//! unplugged, pty master closed) ends the stream; the sensor loop reopens the path with
//! backoff.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::termios::{self, ControlModes, OptionalActions};
use tokio::io::unix::AsyncFd;

use crate::config::{Parity, SerialSettings};

/// An open serial device.
pub struct Serial(OwnedFd);

impl std::os::fd::AsFd for Serial {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl std::os::fd::AsRawFd for Serial {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Opens and configures `path`.
pub fn open(path: &Path, s: &SerialSettings) -> io::Result<AsyncFd<Serial>> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut t = termios::tcgetattr(&fd)?;
    t.make_raw();
    t.set_speed(s.baud)?;
    let mut c = t.control_modes;
    c.remove(ControlModes::CSIZE | ControlModes::PARENB | ControlModes::PARODD | ControlModes::CSTOPB);
    c.insert(match s.data_bits {
        5 => ControlModes::CS5,
        6 => ControlModes::CS6,
        7 => ControlModes::CS7,
        _ => ControlModes::CS8,
    });
    match s.parity {
        Parity::None => {}
        Parity::Even => c.insert(ControlModes::PARENB),
        Parity::Odd => c.insert(ControlModes::PARENB | ControlModes::PARODD),
    }
    if s.stop_bits == 2 {
        c.insert(ControlModes::CSTOPB);
    }
    c.insert(ControlModes::CLOCAL | ControlModes::CREAD);
    t.control_modes = c;
    termios::tcsetattr(&fd, OptionalActions::Now, &t)?;
    // SAFETY: `Serial` owns the descriptor and only reads and writes it; nothing closes or
    // replaces it while the `AsyncFd` holds it registered.
    Ok(unsafe { AsyncFd::register(Serial(fd)) }?)
}
