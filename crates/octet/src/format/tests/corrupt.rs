//! The corrupt-file battery: every kind of damage gets its own error variant, never a panic.

use super::super::header::HEADER_LEN;
use super::super::*;
use super::util::*;
use serde_json::json;

type HeaderEdit = Box<dyn Fn(&mut super::super::header::Header)>;
type PartsEdit = Box<dyn Fn(&mut Parts)>;

#[test]
fn truncation_at_every_offset_is_reported_as_truncated() {
    let bytes = sample_bytes();
    for len in 0..bytes.len() {
        match ModelFile::from_bytes(bytes[..len].to_vec()) {
            Err(FormatError::Truncated { expected, got }) => {
                assert_eq!(got, len as u64);
                let expected_len = if len < HEADER_LEN { HEADER_LEN } else { bytes.len() };
                assert_eq!(expected, expected_len as u64, "at {len}");
            }
            Err(e) => panic!("truncated to {len} bytes: wrong error {e:?}"),
            Ok(_) => panic!("truncated to {len} bytes: opened"),
        }
    }
}

#[test]
fn truncated_files_on_disk_are_reported_before_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = sample_bytes();
    for len in [0, 3, 8, 100, HEADER_LEN, HEADER_LEN + 5, bytes.len() - 1] {
        let path = dir.path().join(format!("cut{len}.octet"));
        std::fs::write(&path, &bytes[..len]).unwrap();
        let err = ModelFile::open(&path).unwrap_err();
        assert!(
            matches!(err, FormatError::Truncated { got, .. } if got == len as u64),
            "{len}: {err:?}"
        );
        assert!(err.to_string().contains("truncated"), "{err}");
    }
    let err = ModelFile::open(&dir.path().join("absent.octet")).unwrap_err();
    assert!(
        matches!(err, FormatError::Io { .. }) && err.to_string().contains("absent.octet"),
        "{err}"
    );
}

#[test]
fn appended_bytes_are_reported() {
    let mut bytes = sample_bytes();
    bytes.push(0);
    assert!(matches!(open_err(bytes), FormatError::TrailingBytes { .. }));
}

#[test]
fn foreign_files_are_not_octet() {
    for foreign in [
        &b"{\"__metadata__\":{}}"[..],
        b"GGUF\x03\x00\x00\x00",
        b"\x7fELF\x02\x01\x01\x00rest",
        b"hello",
    ] {
        let err = open_err(foreign.to_vec());
        assert!(matches!(err, FormatError::NotOctet { .. }), "{err:?}");
        assert!(err.to_string().contains("octet convert"), "{err}");
    }
    let mut bytes = sample_bytes();
    bytes[0] = b'X';
    assert!(matches!(open_err(bytes), FormatError::NotOctet { .. }));
    // A proper prefix of the magic is a truncated octet file.
    assert!(matches!(open_err(b"OCTE".to_vec()), FormatError::Truncated { .. }));
}

#[test]
fn newer_major_version_is_rejected_with_a_clear_message() {
    let mut parts = split(&sample_bytes());
    parts.header.major = FORMAT_MAJOR + 1;
    parts.header.minor = 3;
    let err = open_err(assemble(&parts));
    assert!(
        matches!(err, FormatError::NewerVersion { file_major, file_minor: 3, .. } if file_major == FORMAT_MAJOR + 1)
    );
    let message = err.to_string();
    assert!(
        message.contains("newer") && message.contains("upgrade octet"),
        "{message}"
    );

    // Even if the rest of the header means something else in that version (so not resealed).
    let mut bytes = sample_bytes();
    bytes[8..10].copy_from_slice(&(FORMAT_MAJOR + 1).to_le_bytes());
    assert!(matches!(open_err(bytes.clone()), FormatError::NewerVersion { .. }));
    // And even when only the first 12 bytes are there.
    assert!(matches!(
        open_err(bytes[..12].to_vec()),
        FormatError::NewerVersion { .. }
    ));

    let mut parts = split(&sample_bytes());
    parts.header.major = 0;
    assert!(matches!(open_err(assemble(&parts)), FormatError::OlderVersion { .. }));
}

#[test]
fn unknown_required_flags_are_rejected() {
    let mut parts = split(&sample_bytes());
    parts.header.flags = 0x0002_0000;
    let err = open_err(assemble(&parts));
    assert!(
        matches!(err, FormatError::UnknownRequiredFlags { flags: 0x0002_0000 }),
        "{err:?}"
    );
}

/// The channel-order flag and its tensor come together: the writer sets the flag exactly when
/// the tensor is there, and a file with one but not the other does not open.
#[test]
fn the_channel_order_flag_and_tensor_come_together() {
    let mut writer = sample_writer();
    writer.add_i32(CHANNEL_ORDER_TENSOR, &[3], &[2, 0, 1]).unwrap();
    let ordered = writer.to_bytes().unwrap();
    let parts = split(&ordered);
    assert_eq!(parts.header.flags, FLAG_CHANNEL_ORDER);
    assert!(ModelFile::from_bytes(ordered).is_ok());
    assert_eq!(split(&sample_bytes()).header.flags, 0);

    let mut cleared = parts;
    cleared.header.flags = 0;
    let err = open_err(assemble(&cleared));
    assert!(err.to_string().contains("channel-order flag is clear"), "{err}");
    let mut set = split(&sample_bytes());
    set.header.flags = FLAG_CHANNEL_ORDER;
    let err = open_err(assemble(&set));
    assert!(err.to_string().contains("channel-order flag is set"), "{err}");
}

#[test]
fn flipped_bytes_in_header_or_json_fail_the_checksum() {
    let bytes = sample_bytes();
    let parts = split(&bytes);
    let json_end = (parts.header.json_offset + parts.header.json_len) as usize;
    // Every byte of the JSON, and the header fields no other check covers.
    let positions = (HEADER_LEN..json_end).chain(10..12).chain(56..HEADER_LEN);
    for at in positions {
        let mut bad = bytes.clone();
        bad[at] ^= 0x20;
        match ModelFile::from_bytes(bad) {
            Err(FormatError::ChecksumMismatch { .. }) => {}
            other => panic!("flip at {at}: {:?}", other.map(|_| ())),
        }
    }
    let message = open_err({
        let mut b = bytes.clone();
        b[HEADER_LEN + 3] ^= 1;
        b
    })
    .to_string();
    assert!(
        message.contains("checksum mismatch") && message.contains("re-run `octet convert`"),
        "{message}"
    );
}

#[test]
fn flipped_bytes_in_the_data_fail_verify_data() {
    let bytes = sample_bytes();
    let data_offset = split(&bytes).header.data_offset as usize;
    for at in [data_offset, data_offset + 100, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let model = ModelFile::from_bytes(bad).unwrap();
        assert!(matches!(
            model.verify_data(),
            Err(FormatError::ChecksumMismatch { what: "data section" })
        ));
    }
}

#[test]
fn impossible_header_layouts_are_rejected() {
    let bytes = sample_bytes();
    let parts = split(&bytes);
    let json = serde_json::to_vec(&parts.json).unwrap();
    let build = |edit: &dyn Fn(&mut super::super::header::Header)| {
        let mut out = assemble_raw(&parts.header, &json, &parts.data);
        let mut h = super::super::header::Header::decode(&out).unwrap();
        edit(&mut h);
        out[..HEADER_LEN].copy_from_slice(&h.encode());
        reseal(&mut out);
        open_err(out)
    };
    let len = bytes.len() as u64;
    let cases: Vec<(&str, HeaderEdit)> = vec![
        ("json inside header", Box::new(|h| h.json_offset = 64)),
        ("json over limit", Box::new(|h| h.json_len = MAX_JSON_LEN + 1)),
        ("json into data", Box::new(|h| h.json_len += 64)),
        ("json offset overflow", Box::new(|h| h.json_offset = u64::MAX - 2)),
        ("misaligned data", Box::new(|h| h.data_offset += 8)),
        ("data overflow", Box::new(|h| h.data_len = u64::MAX)),
        ("data short of end", Box::new(|h| h.data_len -= 64)),
    ];
    for (what, edit) in cases {
        let err = build(&*edit);
        assert!(matches!(err, FormatError::BadHeader { .. }), "{what}: {err:?}");
    }
    // file_len disagreeing with the real length is truncation or trailing bytes.
    assert!(matches!(
        build(&|h| h.file_len = len + 1),
        FormatError::Truncated { .. }
    ));
    assert!(matches!(
        build(&|h| h.file_len = len - 1),
        FormatError::TrailingBytes { .. }
    ));
}

/// Edits the sample's JSON, reassembles with a valid checksum, and returns the open error.
fn edited(edit: impl FnOnce(&mut Parts)) -> FormatError {
    let mut parts = split(&sample_bytes());
    edit(&mut parts);
    open_err(assemble(&parts))
}

#[test]
fn bad_json_is_reported() {
    let parts = split(&sample_bytes());
    for doc in [
        &b"not json"[..],
        b"{\"meta\": {}}",
        b"[]",
        b"\xff\xfe",
        b"{\"meta\":1,\"tensors\":[],\"data_sha256\":\"\"}",
    ] {
        let err = open_err(assemble_raw(&parts.header, doc, &parts.data));
        assert!(matches!(err, FormatError::BadJson { .. }), "{err:?}");
    }
    let deep = "[".repeat(100_000);
    let err = open_err(assemble_raw(&parts.header, deep.as_bytes(), &parts.data));
    assert!(matches!(err, FormatError::BadJson { .. }), "{err:?}");
    assert!(matches!(
        edited(|p| p.json["data_sha256"] = json!("xyz")),
        FormatError::BadJson { .. }
    ));
    assert!(matches!(
        edited(|p| p.json["meta"]["pooling"]["mode"] = json!("median")),
        FormatError::BadJson { .. }
    ));
    assert!(matches!(
        edited(|p| p.json["meta"]["max_seq_len"] = json!(-1)),
        FormatError::BadJson { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "emb.f32")["shape"] = json!([3.5, 5])),
        FormatError::BadJson { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "emb.f32")["name"] = json!("")),
        FormatError::BadJson { .. }
    ));
}

#[test]
fn unknown_architecture_is_named_with_the_fix() {
    let err = edited(|p| p.json["meta"]["architecture"] = json!("llama"));
    assert!(matches!(&err, FormatError::UnknownArchitecture { name, .. } if name == "llama"));
    assert_eq!(
        err.to_string(),
        "unknown architecture 'llama': this octet supports bert, gemma3, t5; upgrade octet or re-convert"
    );
}

#[test]
fn unknown_dtype_is_named() {
    let err = edited(|p| entry_mut(p, "emb.f32")["dtype"] = json!("f64"));
    assert!(matches!(&err, FormatError::UnknownDtype { tensor, dtype, .. } if tensor == "emb.f32" && dtype == "f64"));
}

#[test]
fn out_of_bounds_offsets_are_rejected() {
    let data_len = split(&sample_bytes()).data.len() as u64;
    for offset in [data_len.div_ceil(64) * 64, 1 << 40, u64::MAX - 63] {
        let err = edited(|p| entry_mut(p, "emb.f32")["offset"] = json!(offset));
        assert!(matches!(err, FormatError::OutOfBounds { .. }), "{offset}: {err:?}");
    }
    // The last tensor pushed one cache line further runs off the end.
    let err = edited(|p| {
        let e = entry_mut(p, "scalar");
        e["offset"] = json!(e["offset"].as_u64().unwrap() + 64);
    });
    assert!(matches!(err, FormatError::OutOfBounds { .. }), "{err:?}");
}

#[test]
fn misaligned_offsets_are_rejected() {
    for delta in [1, 4, 32] {
        let err = edited(|p| {
            let e = entry_mut(p, "emb.f32");
            e["offset"] = json!(e["offset"].as_u64().unwrap() + delta);
        });
        assert!(
            matches!(err, FormatError::Misaligned { offset, .. } if offset % 64 == delta),
            "{err:?}"
        );
    }
}

#[test]
fn overlapping_and_duplicate_tensors_are_rejected() {
    let err = edited(|p| {
        let offset = entry_mut(p, "emb.f32")["offset"].clone();
        entry_mut(p, "dense.0.bias")["offset"] = offset;
    });
    assert!(matches!(err, FormatError::Overlap { .. }), "{err:?}");
    let err = edited(|p| {
        let copy = entry_mut(p, "emb.f32").clone();
        p.json["tensors"].as_array_mut().unwrap().push(copy);
    });
    assert!(matches!(err, FormatError::DuplicateTensor { name } if name == "emb.f32"));
}

#[test]
fn sizes_inconsistent_with_dtype_and_shape_are_rejected() {
    let err = edited(|p| entry_mut(p, "emb.f32")["shape"] = json!([3, 6]));
    assert!(
        matches!(
            err,
            FormatError::SizeMismatch {
                expected: 72,
                got: 60,
                ..
            }
        ),
        "{err:?}"
    );
    let err = edited(|p| entry_mut(p, "emb.f32")["len"] = json!(59));
    assert!(matches!(err, FormatError::SizeMismatch { .. }), "{err:?}");
    let err = edited(|p| entry_mut(p, "emb.f32")["dtype"] = json!("f16"));
    assert!(matches!(err, FormatError::SizeMismatch { expected: 30, .. }), "{err:?}");
    // Packed sizes follow the layout, not the logical shape.
    let err = edited(|p| entry_mut(p, "lin.i8")["shape"] = json!([17, 9]));
    assert!(
        matches!(
            err,
            FormatError::SizeMismatch {
                expected: 512,
                got: 256,
                ..
            }
        ),
        "{err:?}"
    );
    let err = edited(|p| {
        entry_mut(p, "lin.i8g").as_object_mut().unwrap().remove("k_group");
    });
    assert!(
        matches!(
            err,
            FormatError::SizeMismatch {
                expected: 1280,
                got: 2048,
                ..
            }
        ),
        "{err:?}"
    );
    // The same weight bytes with one 64-wide group: col_sums no longer fit.
    let err = edited(|p| entry_mut(p, "lin.i8g")["k_group"] = json!(64));
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
    let err = edited(|p| entry_mut(p, "lin.f32")["shape"] = json!([3, 6]));
    assert!(matches!(err, FormatError::SizeMismatch { .. }), "{err:?}");
    // u6: 3 bytes per started group of 4 values in each row.
    let err = edited(|p| entry_mut(p, "table.u6")["shape"] = json!([3, 9]));
    assert!(
        matches!(
            err,
            FormatError::SizeMismatch {
                expected: 27,
                got: 18,
                ..
            }
        ),
        "{err:?}"
    );
    let err = edited(|p| entry_mut(p, "table.u6t")["len"] = json!(11));
    assert!(matches!(err, FormatError::SizeMismatch { expected: 12, .. }), "{err:?}");
    // u7: 7 bytes per started group of 8 values in each row.
    let err = edited(|p| entry_mut(p, "table.u7")["shape"] = json!([3, 17]));
    assert!(
        matches!(
            err,
            FormatError::SizeMismatch {
                expected: 63,
                got: 42,
                ..
            }
        ),
        "{err:?}"
    );
    // The same bytes read as u6 (3 rows of 3 x 3 bytes) do not fit either.
    let err = edited(|p| entry_mut(p, "table.u7")["dtype"] = json!("u6"));
    assert!(
        matches!(
            err,
            FormatError::SizeMismatch {
                expected: 27,
                got: 42,
                ..
            }
        ),
        "{err:?}"
    );
    let err = edited(|p| entry_mut(p, "table.u7t")["len"] = json!(27));
    assert!(matches!(err, FormatError::SizeMismatch { expected: 28, .. }), "{err:?}");
}

#[test]
fn overflowing_or_malformed_shapes_are_rejected() {
    let huge = json!([u64::MAX, u64::MAX, 2]);
    assert!(matches!(
        edited(|p| entry_mut(p, "emb.f32")["shape"] = huge.clone()),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "emb.f32")["shape"] = json!([1u64 << 62, 4])),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "lin.i8")["shape"] = json!([u64::MAX, 9])),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "lin.i8")["shape"] = json!([5, 9, 1])),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "lin.i8")["k_group"] = json!(0)),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "lin.i8")["k_group"] = json!(8)),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "lin.i8")["shape"] = json!([0, 9])),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "lin.f32")["shape"] = json!([15])),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        edited(|p| entry_mut(p, "scalar")["shape"] = json!(vec![1; 9])),
        FormatError::BadShape { .. }
    ));
    for shape in [
        json!([18]),
        json!([3, 5, 1]),
        json!([u64::MAX, 5]),
        json!([1u64 << 62, 8]),
    ] {
        let err = edited(|p| entry_mut(p, "table.u6")["shape"] = shape.clone());
        assert!(matches!(err, FormatError::BadShape { .. }), "{shape}: {err:?}");
    }
    for shape in [
        json!([42]),
        json!([3, 9, 1]),
        json!([]),
        json!([u64::MAX, 9]),
        json!([1u64 << 62, 8]),
        json!([1u64 << 62, 1]),
        json!([3, u64::MAX]),
    ] {
        let err = edited(|p| entry_mut(p, "table.u7")["shape"] = shape.clone());
        assert!(matches!(err, FormatError::BadShape { .. }), "{shape}: {err:?}");
    }
}

#[test]
fn missing_or_wrong_companions_are_rejected() {
    for companion in [
        "lin.i8.col_scales",
        "lin.i8g.col_sums",
        "table.pc.scale",
        "table.pc.zero_point",
        "table.u6.scale",
        "table.u6.zero_point",
        "table.u7.scale",
        "table.u7.zero_point",
        "tokenizer.json",
    ] {
        let err = edited(|p| remove_entry(p, companion));
        assert!(
            matches!(&err, FormatError::MissingTensor { name, .. } if name == companion),
            "{companion}: {err:?}"
        );
    }
    let err = edited(|p| remove_entry(p, "dense.0.bias"));
    assert!(
        matches!(&err, FormatError::MissingTensor { needed_by, .. } if needed_by == "dense layer 0"),
        "{err:?}"
    );
    // A companion of the wrong shape or dtype.
    let err = edited(|p| {
        let sums = entry_mut(p, "lin.i8g.col_sums");
        sums["shape"] = json!([64]);
    });
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
    let err = edited(|p| {
        let scale = entry_mut(p, "table.pc.scale");
        scale["dtype"] = json!("i32");
    });
    assert!(matches!(err, FormatError::WrongDtype { .. }), "{err:?}");
    let err = edited(|p| entry_mut(p, "tokenizer.json")["dtype"] = json!("i8"));
    assert!(matches!(err, FormatError::WrongDtype { .. }), "{err:?}");
    let err = edited(|p| p.json["meta"]["dense"][0]["out"] = json!(5));
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
}

#[test]
fn invalid_quantization_records_are_rejected() {
    let cases: Vec<(&str, PartsEdit)> = vec![
        (
            "quant on f32",
            Box::new(|p| entry_mut(p, "emb.f32")["quant"] = json!({ "scale": 1.0 })),
        ),
        (
            "k_group on f32",
            Box::new(|p| entry_mut(p, "emb.f32")["k_group"] = json!(8)),
        ),
        (
            "axis out of range",
            Box::new(|p| entry_mut(p, "table.pc")["quant"]["axis"] = json!(2)),
        ),
        (
            "per-channel without axis",
            Box::new(|p| entry_mut(p, "table.pc")["quant"]["axis"] = json!(null)),
        ),
        (
            "scale of a bad type",
            Box::new(|p| entry_mut(p, "table.pt")["quant"]["scale"] = json!([1])),
        ),
        (
            "huge scale",
            Box::new(|p| entry_mut(p, "table.pt")["quant"]["scale"] = json!(1e300)),
        ),
        (
            "zero point out of i32",
            Box::new(|p| entry_mut(p, "table.pt")["quant"]["zero_point"] = json!(1u64 << 40)),
        ),
        (
            "u6 without quant",
            Box::new(|p| {
                entry_mut(p, "table.u6t").as_object_mut().unwrap().remove("quant");
            }),
        ),
        (
            "u6 quantized along axis 1",
            Box::new(|p| entry_mut(p, "table.u6t")["quant"]["axis"] = json!(1)),
        ),
        (
            "u6 per row without axis",
            Box::new(|p| entry_mut(p, "table.u6")["quant"]["axis"] = json!(null)),
        ),
        (
            "u7 without quant",
            Box::new(|p| {
                entry_mut(p, "table.u7t").as_object_mut().unwrap().remove("quant");
            }),
        ),
        (
            "u7 quantized along axis 1",
            Box::new(|p| entry_mut(p, "table.u7t")["quant"]["axis"] = json!(1)),
        ),
        (
            "u7 per row without axis",
            Box::new(|p| entry_mut(p, "table.u7")["quant"]["axis"] = json!(null)),
        ),
        (
            "u7 with a non-finite scale",
            Box::new(|p| entry_mut(p, "table.u7t")["quant"]["scale"] = json!(1e39)),
        ),
        (
            "k_group on u7",
            Box::new(|p| entry_mut(p, "table.u7t")["k_group"] = json!(32)),
        ),
        (
            "fractional zero point",
            Box::new(|p| entry_mut(p, "table.pt")["quant"]["zero_point"] = json!(0.5)),
        ),
    ];
    for (what, edit) in cases {
        let err = edited(edit);
        assert!(matches!(err, FormatError::BadMetadata { .. }), "{what}: {err:?}");
    }
    let err = edited(|p| entry_mut(p, "table.pc")["quant"]["scale"] = json!("nowhere"));
    assert!(matches!(err, FormatError::MissingTensor { .. }), "{err:?}");
    // Per-channel scales along the wrong axis have the wrong length.
    let err = edited(|p| entry_mut(p, "table.pc")["quant"]["axis"] = json!(1));
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
    let err = edited(|p| entry_mut(p, "table.u6")["quant"]["axis"] = json!(1));
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
    let err = edited(|p| entry_mut(p, "table.u7")["quant"]["axis"] = json!(1));
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
    let err = edited(|p| entry_mut(p, "table.u7")["quant"]["zero_point"] = json!("table.u7.scale"));
    assert!(matches!(err, FormatError::WrongDtype { .. }), "{err:?}");
    let err = edited(|p| {
        let scale = entry_mut(p, "table.u6.scale");
        scale["shape"] = json!([5]);
        scale["len"] = json!(20);
    });
    assert!(matches!(err, FormatError::WrongShape { .. }), "{err:?}");
}

#[test]
fn invalid_metadata_values_are_rejected() {
    let cases: Vec<(&str, PartsEdit)> = vec![
        (
            "default prompt",
            Box::new(|p| p.json["meta"]["default_prompt"] = json!("nope")),
        ),
        ("max_seq_len", Box::new(|p| p.json["meta"]["max_seq_len"] = json!(0))),
        ("config", Box::new(|p| p.json["meta"]["config"] = json!([1, 2]))),
        (
            "matryoshka",
            Box::new(|p| p.json["meta"]["matryoshka_dims"] = json!([8, 0])),
        ),
        (
            "provenance",
            Box::new(|p| p.json["meta"]["provenance"]["sources"][0]["sha256"] = json!("abc")),
        ),
        (
            "k_group",
            Box::new(|p| p.json["meta"]["quantization"]["k_group"] = json!(0)),
        ),
        (
            "dense chain",
            Box::new(|p| {
                let mut second = p.json["meta"]["dense"][0].clone();
                second["weight"] = json!("emb.f32");
                p.json["meta"]["dense"].as_array_mut().unwrap().push(second);
            }),
        ),
    ];
    for (what, edit) in cases {
        let err = edited(edit);
        assert!(matches!(err, FormatError::BadMetadata { .. }), "{what}: {err:?}");
    }
}
