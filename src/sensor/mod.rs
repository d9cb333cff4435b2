//! Sensor adapters (issue 4, in progress): turn device data — files, sockets, serial ports —
//! into timestamped API readings. So far this holds the sans-io frame decoders ([`decode`],
//! [`nmea`]), the line splitter ([`lines`]) and the reading store ([`store`]); sources,
//! config and the backend wiring come next.

pub mod decode;
pub mod lines;
pub mod nmea;
pub mod run;
pub mod serial;
pub mod store;
