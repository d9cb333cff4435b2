//! Sensor adapters (issue 4, in progress): turn device data — files, sockets, serial ports —
//! into timestamped API readings. So far this holds the sans-io frame decoders ([`decode`],
//! [`nmea`]); sources, the reading store and the backend wiring come next.

pub mod decode;
pub mod nmea;
