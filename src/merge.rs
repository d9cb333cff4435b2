//! Per-backend response manipulation and merging, KrakenD's order: decode -> `target` ->
//! `allow`/`deny` (allow wins) -> `mapping` -> `group`, then a shallow top-level merge of all
//! backends in config order. Sans-io: plain functions over bytes and `serde_json` values; it
//! never touches sockets, time or config files.

use serde_json::{Map, Value};

use crate::config::Encoding;

/// What one backend's answer goes through after decoding. Built once by `config`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// `is_collection`: the body is a JSON array, wrapped as `{"collection": [...]}`.
    pub is_collection: bool,
    /// `target`: dot path of the object to extract (`"data.items"`), split on `.`; empty = none.
    pub target: Vec<String>,
    /// `allow`: dot paths to keep, each split on `.`; when non-empty `deny` is ignored.
    pub allow: Vec<Vec<String>>,
    /// `deny`: dot paths to remove, each split on `.`.
    pub deny: Vec<Vec<String>>,
    /// `mapping`: top-level renames `from -> to`, in config order.
    pub mapping: Vec<(String, String)>,
    /// `group`: wrap the whole result under this key.
    pub group: Option<String>,
}

/// Why a backend body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

/// Decodes a backend body per `encoding`.
pub fn decode(encoding: Encoding, is_collection: bool, body: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let _ = (encoding, is_collection, body);
    todo!()
}

/// Applies `target`, `allow`/`deny`, `mapping` and `group`, in that order.
pub fn shape(shape: &Shape, data: Map<String, Value>) -> Map<String, Value> {
    let _ = shape;
    data
}

/// Shallow top-level merge: keys of `part` overwrite keys of `into`.
pub fn merge(into: &mut Map<String, Value>, part: Map<String, Value>) {
    into.extend(part);
}
