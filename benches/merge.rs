//! Cost of one backend answer through `merge` (decode -> target -> allow -> mapping -> group ->
//! merge) against the peer it cannot beat: `serde_json` parsing the same bytes alone. Prints
//! medians of 21 runs and the ratio; run with `cargo bench --bench merge`.

mod common;

use std::hint::black_box;

use common::median_ns;

use gatelet::config::Encoding;
use gatelet::merge::{self, Shape};
use serde_json::{Map, Value};

const BODY: &[u8] =
    br#"{"data":{"fuel":{"level":71,"unit":"%"},"tyres":[{"psi":32.1,"pos":"fl"},{"psi":31.9,"pos":"fr"}],
"speed":42,"debug":{"trace":"abc","build":"2026-11-01"},"gps":{"lat":52.52,"lon":13.405}},"meta":{"v":3}}"#;

fn main() {
    let path = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
    let shape = Shape {
        target: path("data"),
        allow: vec![path("fuel.level"), path("tyres.psi"), path("speed"), path("gps")],
        mapping: vec![("speed".into(), "kmh".into())],
        group: Some("vehicle".into()),
        ..Shape::default()
    };
    let n = 20_000;
    let parse_only = median_ns(n, || {
        black_box(serde_json::from_slice::<Value>(black_box(BODY)).unwrap());
    });
    let full = median_ns(n, || {
        let data = merge::decode(Encoding::Json, false, black_box(BODY)).unwrap();
        let mut into = Map::new();
        merge::merge(&mut into, merge::shape(&shape, data));
        black_box(into);
    });
    println!("body {} bytes", BODY.len());
    println!("serde_json parse only:          {parse_only:>8.0} ns (median of 21)");
    println!("decode+shape+merge (gatelet):   {full:>8.0} ns (median of 21)");
    println!("ratio gatelet / parse:          {:>8.2}", full / parse_only);
}
