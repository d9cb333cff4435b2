//! Sensor adapters: turn device data (files, TCP and Unix sockets, serial ports) into
//! timestamped API readings. The sans-io cores are the frame decoders ([`decode`], [`nmea`]),
//! the line splitter ([`lines`]) and the reading store ([`store`]); [`run`] owns the I/O (one
//! task per sensor: open, read, reconnect with backoff, write) and [`serial`] the port setup.

pub mod decode;
pub mod lines;
pub mod nmea;
pub mod run;
pub mod serial;
pub mod store;
