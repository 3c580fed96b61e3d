//! Proptests: random damage to a valid file never panics. Three levels, so that damage reaches
//! every stage of validation: raw bytes (mostly stopped by the header checks and the checksum),
//! raw bytes with the checksum fixed up (reaches the JSON parser), and edits of numbers and
//! names inside the JSON (reaches the tensor-table and metadata checks).

use super::super::*;
use super::util::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn sample() -> &'static [u8] {
    static SAMPLE: OnceLock<Vec<u8>> = OnceLock::new();
    SAMPLE.get_or_init(sample_bytes)
}

/// Opens `bytes`; if that works, uses every accessor. Panics only if the reader does.
fn open_and_touch(bytes: Vec<u8>) {
    if let Ok(model) = ModelFile::from_bytes(bytes) {
        touch_everything(&model);
    }
}

/// Values that tend to break size arithmetic.
const EDGE_NUMBERS: [i128; 14] = [
    0,
    1,
    2,
    7,
    8,
    15,
    16,
    63,
    64,
    65,
    1 << 32,
    (1 << 63) - 1,
    u64::MAX as i128,
    -1,
];

/// Numbers and strings in a JSON tree, in a fixed traversal order.
fn leaves(v: &serde_json::Value, out: &mut Vec<Vec<PathStep>>, path: &mut Vec<PathStep>) {
    match v {
        serde_json::Value::Number(_) | serde_json::Value::String(_) => out.push(path.clone()),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                leaves(item, out, path);
                path.pop();
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map {
                path.push(PathStep::Key(k.clone()));
                leaves(item, out, path);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathStep {
    Index(usize),
    Key(String),
}

fn at<'a>(v: &'a mut serde_json::Value, path: &[PathStep]) -> &'a mut serde_json::Value {
    path.iter().fold(v, |v, step| match step {
        PathStep::Index(i) => &mut v[*i],
        PathStep::Key(k) => &mut v[k.as_str()],
    })
}

/// A replacement for a JSON leaf.
fn replacement(choice: u8, pick: usize) -> serde_json::Value {
    let names = [
        "f32",
        "f16",
        "i8",
        "i32",
        "u8",
        "i8_packed",
        "f32_packed",
        "u6",
        "u7",
        "emb.f32",
        "lin.i8",
        "tokenizer.json",
        "table.pc.scale",
        "",
    ];
    match choice % 3 {
        0 => {
            let n = EDGE_NUMBERS[pick % EDGE_NUMBERS.len()];
            if n < 0 {
                serde_json::json!(n as i64)
            } else {
                serde_json::json!(n as u64)
            }
        }
        1 => serde_json::json!(names[pick % names.len()]),
        _ => serde_json::json!((pick % 4096) as u64 * 64),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_byte_mutations_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<usize>()),
    ) {
        let mut bytes = sample().to_vec();
        for (at, value) in edits {
            let len = bytes.len();
            bytes[at % len] = value;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        open_and_touch(bytes);
    }

    #[test]
    fn header_and_json_mutations_with_a_fixed_checksum_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = sample().to_vec();
        let json_end = split(&bytes).header.data_offset as usize;
        for (at, value) in edits {
            bytes[at % json_end] = value;
        }
        bytes[..8].copy_from_slice(&MAGIC);
        reseal(&mut bytes);
        open_and_touch(bytes);
    }

    #[test]
    fn json_value_edits_never_panic(
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..6),
    ) {
        let mut parts = split(sample());
        let mut paths = Vec::new();
        leaves(&parts.json, &mut paths, &mut Vec::new());
        for (which, choice, pick) in edits {
            let path = &paths[which % paths.len()];
            *at(&mut parts.json, path) = replacement(choice, pick);
        }
        open_and_touch(assemble(&parts));
    }
}
