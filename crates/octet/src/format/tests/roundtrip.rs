//! Round trips: what the writer stores, the reader returns, from memory and from disk.

use super::super::*;
use super::util::*;
use half::{bf16, f16};

fn check_sample(model: &ModelFile) {
    assert_eq!(model.meta(), &sample_meta());
    model.verify_data().unwrap();
    assert_eq!(model.tokenizer_json().unwrap(), TOKENIZER_JSON);
    assert_eq!(model.blob("tokenizer.json").unwrap(), TOKENIZER_JSON);

    assert_eq!(model.f32("emb.f32", &[3, 5]).unwrap(), &ramp_f32(15, 0.0)[..]);
    let halves: Vec<f16> = ramp_f32(6, 1.0).into_iter().map(f16::from_f32).collect();
    assert_eq!(model.f16("emb.f16", &[2, 3]).unwrap(), &halves[..]);
    let brains: Vec<bf16> = ramp_f32(4, 2.0).into_iter().map(bf16::from_f32).collect();
    assert_eq!(model.bf16("emb.bf16", &[4]).unwrap(), &brains[..]);
    assert_eq!(model.i32("ids", &[2, 2]).unwrap(), &ramp_i32(4, 0)[..]);

    let raw = model.i8("raw.i8", &[7]).unwrap();
    assert_eq!(raw.data, &ramp_i8(7, 0)[..]);
    assert_eq!(raw.quant, None);

    let pt = model.i8("table.pt", &[2, 3]).unwrap();
    assert_eq!(pt.data, &ramp_i8(6, 1)[..]);
    assert_eq!(
        pt.quant,
        Some(I8Quant {
            scale: QuantParam::PerTensor(0.5),
            zero_point: QuantParam::PerTensor(3),
            axis: None
        })
    );

    let pc = model.i8("table.pc", &[4, 3]).unwrap();
    assert_eq!(pc.data, &ramp_i8(12, 2)[..]);
    assert_eq!(
        pc.quant,
        Some(I8Quant {
            scale: QuantParam::PerChannel(&[0.1, 0.2, 0.3, 0.4]),
            zero_point: QuantParam::PerChannel(&[-1, 0, 1, 2]),
            axis: Some(0),
        })
    );
    let cols = model.i8("table.cols", &[2, 3]).unwrap();
    assert_eq!(
        cols.quant,
        Some(I8Quant {
            scale: QuantParam::PerChannel(&[0.25, 0.5, 1.0]),
            zero_point: QuantParam::PerTensor(0),
            axis: Some(1),
        })
    );

    let u6 = model.u6("table.u6", 3, 5).unwrap();
    assert_eq!(u6.data, &packed_u6(3, 5, 1)[..]);
    assert_eq!(u6.data.len(), 3 * 6);
    assert_eq!(octet_kernels::gather::unpack_u6(u6.data, 3, 5).unwrap(), ramp_u6(15, 1));
    assert_eq!(
        u6.quant,
        I8Quant {
            scale: QuantParam::PerChannel(&[0.5, 0.25, 0.125]),
            zero_point: QuantParam::PerChannel(&[31, 0, 63]),
            axis: Some(0),
        }
    );
    let u6t = model.u6("table.u6t", 2, 8).unwrap();
    assert_eq!(u6t.data, &packed_u6(2, 8, 2)[..]);
    assert_eq!(
        u6t.quant,
        I8Quant {
            scale: QuantParam::PerTensor(0.25),
            zero_point: QuantParam::PerTensor(32),
            axis: None,
        }
    );
    assert_eq!(model.tensor("table.u6").unwrap().dtype, Dtype::U6);

    let u7 = model.u7("table.u7", 3, 9).unwrap();
    assert_eq!(u7.data, &packed_u7(3, 9, 3)[..]);
    assert_eq!(u7.data.len(), 3 * 14);
    assert_eq!(octet_kernels::gather::unpack_u7(u7.data, 3, 9).unwrap(), ramp_u7(27, 3));
    assert_eq!(
        u7.quant,
        I8Quant {
            scale: QuantParam::PerChannel(&[0.5, 0.25, 0.125]),
            zero_point: QuantParam::PerChannel(&[63, 0, 127]),
            axis: Some(0),
        }
    );
    let u7t = model.u7("table.u7t", 2, 16).unwrap();
    assert_eq!(u7t.data, &packed_u7(2, 16, 4)[..]);
    assert_eq!(u7t.data.len(), 2 * 14);
    assert_eq!(
        u7t.quant,
        I8Quant {
            scale: QuantParam::PerTensor(0.125),
            zero_point: QuantParam::PerTensor(64),
            axis: None,
        }
    );
    assert_eq!(model.tensor("table.u7").unwrap().dtype, Dtype::U7);

    let (layout, w, s, c) = model.packed_i8_parts("lin.i8", 5, 9).unwrap();
    assert_eq!(
        (layout.n_pad, layout.k_pad, layout.groups, layout.k_group),
        (16, 16, 1, 16)
    );
    assert_eq!(model.tensor("lin.i8").unwrap().k_group(), None);
    assert_eq!(w, &ramp_i8(256, 4)[..]);
    assert_eq!(s, &ramp_f32(16, 3.0)[..]);
    assert_eq!(c, &ramp_i32(16, 5)[..]);
    let (layout, w, s, c) = model.packed_i8_parts("lin.i8g", 17, 40).unwrap();
    assert_eq!(
        (layout.n_pad, layout.k_pad, layout.groups, layout.k_group),
        (32, 64, 2, 32)
    );
    assert_eq!(w, &ramp_i8(32 * 64, 5)[..]);
    assert_eq!(s, &ramp_f32(32, 4.0)[..]);
    assert_eq!(c, &ramp_i32(64, 6)[..]);
    assert_eq!(model.tensor("lin.i8g").unwrap().k_group(), Some(32));
    // The parts are what the kernels take.
    octet_kernels::int8::PackedI8::from_parts(layout, w, s, c).unwrap();
    assert_eq!(model.packed_f32_parts("lin.f32", 3, 5).unwrap(), &ramp_f32(80, 5.0)[..]);

    assert_eq!(model.f32("empty", &[0, 3]).unwrap(), &[] as &[f32]);
    assert_eq!(model.f32("scalar", &[]).unwrap(), &[42.0]);

    // Every tensor is 64-byte aligned in memory, whatever backs the file.
    for t in model.tensors() {
        assert_eq!(t.bytes.as_ptr() as usize % 64, 0, "{} is misaligned", t.name);
    }
    let names: Vec<&str> = model.tensors().map(|t| t.name).collect();
    assert_eq!(names.len(), 31, "{names:?}");
    assert!(names.contains(&"table.u6.scale") && names.contains(&"table.u6.zero_point"));
    assert!(!names.contains(&"table.u6t.scale"));
    assert!(names.contains(&"table.u7.scale") && names.contains(&"table.u7.zero_point"));
    assert!(!names.contains(&"table.u7t.scale"));
    assert!(names.contains(&"table.pc.scale") && names.contains(&"table.pc.zero_point"));
    assert!(names.contains(&"lin.i8.col_scales") && names.contains(&"lin.i8.col_sums"));
    assert!(!names.contains(&"table.cols.zero_point"));
}

#[test]
fn every_dtype_round_trips_in_memory() {
    let bytes = sample_bytes();
    let model = ModelFile::from_bytes(bytes.clone()).unwrap();
    assert_eq!(model.version(), (FORMAT_MAJOR, FORMAT_MINOR));
    assert_eq!(model.file_len(), bytes.len() as u64);
    assert!(model.path().is_none());
    check_sample(&model);
}

#[test]
fn every_dtype_round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.octet");
    let written = sample_writer().write(&path).unwrap();
    assert_eq!(written, std::fs::metadata(&path).unwrap().len());
    let model = ModelFile::open(&path).unwrap();
    assert_eq!(model.path(), Some(path.as_path()));
    check_sample(&model);
    // The file is byte-identical to the in-memory serialization: the writer is deterministic.
    assert_eq!(std::fs::read(&path).unwrap(), sample_bytes());
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("model.octet")]);
}

#[test]
fn rewriting_a_mapped_file_replaces_it_without_touching_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.octet");
    sample_writer().write(&path).unwrap();
    let old = ModelFile::open(&path).unwrap();

    let mut w = sample_writer();
    w.meta_mut().max_seq_len = 128;
    w.add_f32("new", &[2], &[1.0, 2.0]).unwrap();
    w.write(&path).unwrap();

    // The old map still sees the old file (the writer renamed a new file over it).
    check_sample(&old);
    let new = ModelFile::open(&path).unwrap();
    assert_eq!(new.meta().max_seq_len, 128);
    assert_eq!(new.f32("new", &[2]).unwrap(), &[1.0, 2.0]);
}

#[test]
fn accessors_check_dtype_shape_and_presence() {
    let model = ModelFile::from_bytes(sample_bytes()).unwrap();
    assert!(matches!(
        model.f32("emb.f32", &[5, 3]),
        Err(FormatError::WrongShape { expected, got, .. }) if expected == [5, 3] && got == [3, 5]
    ));
    assert!(matches!(
        model.f16("emb.f32", &[3, 5]),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.i8("emb.f32", &[3, 5]),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(model.blob("emb.f32"), Err(FormatError::WrongDtype { .. })));
    assert!(matches!(
        model.f32("nope", &[1]),
        Err(FormatError::MissingTensor { .. })
    ));
    assert!(matches!(model.tensor("nope"), Err(FormatError::MissingTensor { .. })));
    assert!(matches!(
        model.packed_i8_parts("lin.i8", 9, 5),
        Err(FormatError::WrongShape { .. })
    ));
    assert!(matches!(
        model.packed_i8_parts("lin.f32", 3, 5),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.packed_f32_parts("lin.i8", 5, 9),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.u6("table.u6", 5, 3),
        Err(FormatError::WrongShape { .. })
    ));
    assert!(matches!(
        model.u6("table.pc", 4, 3),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.i8("table.u6", &[3, 5]),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.u7("table.u7", 9, 3),
        Err(FormatError::WrongShape { .. })
    ));
    assert!(matches!(
        model.u7("table.u6", 3, 5),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.u6("table.u7", 3, 9),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.i8("table.u7", &[3, 9]),
        Err(FormatError::WrongDtype { .. })
    ));
    assert!(model.contains("lin.i8") && !model.contains("nope"));
}

#[test]
fn writer_rejects_inconsistent_input() {
    let mut w = sample_writer();
    let invalid = |r: Result<(), FormatError>| matches!(r, Err(FormatError::InvalidInput { .. }));
    assert!(invalid(w.add_f32("emb.f32", &[1], &[0.0])), "duplicate name");
    assert!(invalid(w.add_f32("x", &[2, 2], &[0.0; 3])), "wrong length");
    assert!(invalid(w.add_f32("x", &[usize::MAX, 2], &[])), "overflowing shape");
    assert!(
        invalid(w.add("x", Dtype::I8Packed, &[1, 1], vec![0; 128])),
        "packed through add"
    );
    assert!(
        invalid(w.add_packed_i8("p", 5, 9, None, &[0; 255], &[0.0; 16], &[0; 16])),
        "short weights"
    );
    assert!(
        invalid(w.add_packed_i8("p", 5, 9, Some(0), &[0; 256], &[0.0; 16], &[0; 16])),
        "zero k_group"
    );
    assert!(
        invalid(w.add_packed_i8("p", 5, 9, Some(8), &[0; 128], &[0.0; 16], &[0; 32])),
        "k_group not x32"
    );
    let mut bent = octet_kernels::int8::PackedI8Layout::new(5, 9, None).unwrap();
    bent.groups = 2;
    assert!(
        invalid(w.add_packed_i8_layout("p", &bent, &[0; 256], &[0.0; 16], &[0; 32])),
        "inconsistent layout"
    );
    assert!(
        invalid(w.add_packed_i8("p", 5, 9, None, &[0; 256], &[0.0; 15], &[0; 16])),
        "short col_scales"
    );
    assert!(invalid(w.add_packed_f32("p", 3, 5, &[0.0; 15])), "short packed f32");
    assert!(invalid(w.add_i8_table(
        "t",
        &[2, 2],
        &[0; 4],
        QuantParam::PerTensor(f32::NAN),
        QuantParam::PerTensor(0),
        None
    )));
    assert!(invalid(w.add_i8_table(
        "t",
        &[2, 2],
        &[0; 4],
        QuantParam::PerChannel(&[1.0, 1.0]),
        QuantParam::PerTensor(0),
        None
    )));
    assert!(invalid(w.add_i8_table(
        "t",
        &[2, 2],
        &[0; 4],
        QuantParam::PerChannel(&[1.0]),
        QuantParam::PerTensor(0),
        Some(0)
    )));
    assert!(invalid(w.add_i8_table(
        "t",
        &[2, 2],
        &[0; 4],
        QuantParam::PerTensor(1.0),
        QuantParam::PerTensor(0),
        Some(2)
    )));
    assert!(invalid(w.add_i8_table(
        "emb.f32",
        &[2, 2],
        &[0; 4],
        QuantParam::PerTensor(1.0),
        QuantParam::PerTensor(0),
        None
    )));
    assert!(invalid(w.add("x", Dtype::U6, &[1, 4], vec![0; 3])), "u6 through add");
    let u6 = |w: &mut ModelWriter, name: &str, rows, dim, len, scale, zero_point| {
        invalid(w.add_u6_table(name, rows, dim, &vec![0u8; len], scale, zero_point))
    };
    let (one, zero) = (QuantParam::PerTensor(1.0), QuantParam::PerTensor(0));
    assert!(u6(&mut w, "u", 2, 5, 11, one, zero), "short u6 bytes");
    assert!(u6(&mut w, "u", 2, 5, 13, one, zero), "long u6 bytes");
    assert!(u6(&mut w, "u", usize::MAX, 8, 0, one, zero), "overflowing u6 shape");
    assert!(
        u6(&mut w, "u", 2, 4, 6, QuantParam::PerTensor(f32::INFINITY), zero),
        "infinite u6 scale"
    );
    assert!(
        u6(&mut w, "u", 2, 4, 6, QuantParam::PerChannel(&[1.0]), zero),
        "short u6 scales"
    );
    assert!(
        u6(&mut w, "u", 2, 4, 6, one, QuantParam::PerChannel(&[0, 0, 0])),
        "long u6 zero points"
    );
    assert!(u6(&mut w, "table.u6", 2, 4, 6, one, zero), "duplicate u6 name");
    let mut clash = ModelWriter::new(sample_meta());
    clash.add_f32("c.scale", &[2], &[1.0, 1.0]).unwrap();
    assert!(
        u6(&mut clash, "c", 2, 4, 6, QuantParam::PerChannel(&[1.0, 1.0]), zero),
        "u6 companion clashing with an existing tensor"
    );
    assert!(invalid(w.add("x", Dtype::U7, &[1, 8], vec![0; 7])), "u7 through add");
    let u7 = |w: &mut ModelWriter, name: &str, rows, dim, len, scale, zero_point| {
        invalid(w.add_u7_table(name, rows, dim, &vec![0u8; len], scale, zero_point))
    };
    // 2 rows of 9 values take 2 x 14 bytes.
    assert!(u7(&mut w, "u", 2, 9, 27, one, zero), "short u7 bytes");
    assert!(u7(&mut w, "u", 2, 9, 29, one, zero), "long u7 bytes");
    assert!(u7(&mut w, "u", 2, 9, 18, one, zero), "u7 given u6 bytes");
    assert!(u7(&mut w, "u", usize::MAX, 8, 0, one, zero), "overflowing u7 shape");
    assert!(u7(&mut w, "u", usize::MAX / 4, 1, 0, one, zero), "overflowing u7 bytes");
    assert!(
        u7(&mut w, "u", 2, 8, 14, QuantParam::PerTensor(f32::NAN), zero),
        "NaN u7 scale"
    );
    assert!(
        u7(&mut w, "u", 2, 8, 14, QuantParam::PerChannel(&[1.0]), zero),
        "short u7 scales"
    );
    assert!(
        u7(&mut w, "u", 2, 8, 14, one, QuantParam::PerChannel(&[0, 0, 0])),
        "long u7 zero points"
    );
    assert!(u7(&mut w, "table.u7", 2, 8, 14, one, zero), "duplicate u7 name");
    assert!(
        u7(&mut clash, "c", 2, 8, 14, QuantParam::PerChannel(&[1.0, 1.0]), zero),
        "u7 companion clashing with an existing tensor"
    );
    // The rejected calls left nothing behind: the model still writes and reads back.
    check_sample(&ModelFile::from_bytes(w.to_bytes().unwrap()).unwrap());

    // A model the reader would reject is not written.
    let mut no_tokenizer = ModelWriter::new(sample_meta());
    no_tokenizer.add_f32("dense.0.weight", &[4, 8], &[0.0; 32]).unwrap();
    no_tokenizer.add_f32("dense.0.bias", &[4], &[0.0; 4]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.octet");
    let err = no_tokenizer.write(&path).unwrap_err();
    assert!(matches!(err, FormatError::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
    assert!(!path.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "temporary file left behind"
    );
}

#[test]
fn every_dtype_name_parses_back() {
    for d in Dtype::ALL {
        assert_eq!(Dtype::parse(d.as_str()), Some(d));
    }
    assert_eq!(Dtype::parse("f64"), None);
}

#[test]
fn packed_layouts_come_from_the_kernels() {
    use super::super::dtype::{file_k_group, packed_f32_layout, packed_i8_layout};
    // MiniLM FFN: n = 1536, k = 384.
    let l = packed_i8_layout(1536, 384, None).unwrap();
    assert_eq!((l.n_pad, l.k_pad, l.groups, l.data_len()), (1536, 384, 1, 1536 * 384));
    assert_eq!(file_k_group(&l), None);
    let l = packed_i8_layout(1, 1, None).unwrap();
    assert_eq!((l.n_pad, l.k_pad, l.scales_len(), l.sums_len()), (16, 8, 16, 16));
    // Gemma FFN with groups of 64.
    let l = packed_i8_layout(1152, 768, Some(64)).unwrap();
    assert_eq!((l.k_pad, l.groups, l.sums_len()), (768, 12, 12 * 1152));
    assert_eq!(file_k_group(&l), Some(64));
    // One group that happens to span k is the per-row layout: stored as None.
    assert_eq!(file_k_group(&packed_i8_layout(16, 384, Some(384)).unwrap()), None);
    assert_eq!(file_k_group(&packed_i8_layout(16, 100, Some(128)).unwrap()), Some(128));
    assert!(packed_i8_layout(u64::MAX, 8, None).is_err());
    assert!(packed_i8_layout(1 << 40, 1 << 40, None).is_err());
    assert!(packed_i8_layout(4, 4, Some(0)).is_err());
    assert!(packed_i8_layout(0, 4, None).is_err());
    let l = packed_f32_layout(17, 3).unwrap();
    assert_eq!((l.n_pad, l.len()), (32, 96));
    assert_eq!(packed_f32_layout(0, u64::MAX).unwrap().len(), 0);
    assert!(packed_f32_layout(u64::MAX - 3, 1).is_err());
    assert!(packed_f32_layout(1 << 40, 1 << 40).is_err());
}

#[test]
fn model_file_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ModelFile>();
}

#[test]
fn optional_flags_and_newer_minor_versions_are_accepted() {
    let mut parts = split(&sample_bytes());
    parts.header.flags = 0x0000_8001;
    parts.header.minor = FORMAT_MINOR + 7;
    // Unknown fields, as a newer minor version may add, are ignored.
    parts.json["meta"]["some_new_field"] = serde_json::json!(true);
    parts.json["tensors"][0]["some_new_field"] = serde_json::json!(1);
    let model = ModelFile::from_bytes(assemble(&parts)).unwrap();
    assert_eq!(model.version(), (FORMAT_MAJOR, FORMAT_MINOR + 7));
    check_sample(&model);
}

/// Files of every older minor of this major (1.0, 1.1, 1.2) still open: a minor only adds
/// dtypes and flags that an older reader rejects by name.
#[test]
fn older_minor_versions_are_accepted() {
    for minor in 0..FORMAT_MINOR {
        let mut parts = split(&sample_bytes());
        parts.header.minor = minor;
        let model = ModelFile::from_bytes(assemble(&parts)).unwrap();
        assert_eq!(model.version(), (FORMAT_MAJOR, minor));
        check_sample(&model);
    }
}

#[test]
fn advising_random_access_changes_no_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.octet");
    sample_writer().write(&path).unwrap();
    let mapped = ModelFile::open(&path).unwrap();
    let copied = ModelFile::open_copied(&path).unwrap();
    let elsewhere = vec![0u8; 100];
    for model in [&mapped, &copied] {
        for view in model.tensors() {
            model.advise_random_access(view.bytes);
        }
        // A slice that is not the file's, and an empty one: ignored.
        model.advise_random_access(&elsewhere);
        model.advise_random_access(&[]);
        check_sample(model);
    }
}
