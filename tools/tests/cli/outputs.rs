//! Every output format, and `--resume` of a torn partial file.

use super::*;

#[test]
fn npy_npy_int8_and_f16_outputs_match_the_jsonl_vectors() {
    let dir = test_dir("outputs");
    let txt = dir.join("t.txt");
    std::fs::write(&txt, TEXTS.join("\n")).unwrap();
    let reference = embed_args(&TEXTS);
    let flat: Vec<f32> = reference.concat();

    let npy = dir.join("v.npy");
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            npy.to_str().unwrap(),
            "-q",
        ],
        None,
    ));
    let (descr, shape, data) = read_npy(&npy);
    assert_eq!((descr.as_str(), shape.as_slice()), ("<f4", &[3, 384][..]));
    assert!(f32s(&data).iter().zip(&flat).all(|(a, b)| (a - b).abs() <= SAME));

    let q8 = dir.join("q.npy");
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            q8.to_str().unwrap(),
            "--format",
            "npy-int8",
        ],
        None,
    ));
    let (descr, shape, data) = read_npy(&q8);
    assert_eq!((descr.as_str(), shape.as_slice()), ("|i1", &[3, 384][..]));
    let (sdescr, sshape, sdata) = read_npy(&dir.join("q.scales.npy"));
    assert_eq!((sdescr.as_str(), sshape.as_slice()), ("<f4", &[3][..]));
    let scales = f32s(&sdata);
    for (i, row) in data.chunks_exact(384).enumerate() {
        assert!(
            row.iter().any(|&b| b as i8 == 127 || b as i8 == -127),
            "the largest value maps to +-127"
        );
        for (j, &b) in row.iter().enumerate() {
            // Rounding error of symmetric int8: at most half a step.
            assert!((b as i8 as f32 * scales[i] - flat[i * 384 + j]).abs() <= scales[i] * 0.5 + SAME);
        }
    }

    let f16 = dir.join("v.f16");
    ok(run(
        &["embed", m(), "-i", txt.to_str().unwrap(), "-o", f16.to_str().unwrap()],
        None,
    ));
    let halves: Vec<f32> = std::fs::read(&f16)
        .unwrap()
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    assert_eq!(halves.len(), 3 * 384);
    // f16 keeps 11 significant bits: relative error 2^-11, values here are below 0.5.
    assert!(halves.iter().zip(&flat).all(|(a, b)| (a - b).abs() <= 2.5e-4));

    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".partial")),
        "temporary files left: {names:?}"
    );
}

#[test]
fn resume_continues_a_torn_partial_file_without_loss_or_duplicates() {
    let dir = test_dir("resume");
    let txt = dir.join("t.txt");
    let texts: Vec<String> = (0..40)
        .map(|i| format!("Sentence {i} about a cat, a dog or the weather."))
        .collect();
    std::fs::write(&txt, texts.join("\n")).unwrap();
    let full = dir.join("full.jsonl");
    ok(run(
        &["embed", m(), "-i", txt.to_str().unwrap(), "-o", full.to_str().unwrap()],
        None,
    ));
    let reference = std::fs::read_to_string(&full).unwrap();

    // An interrupted run: 17 complete lines and half of the 18th.
    let out = dir.join("v.jsonl");
    let partial = dir.join("v.jsonl.partial");
    let cut: usize = reference.lines().take(17).map(|l| l.len() + 1).sum::<usize>() + 100;
    std::fs::write(&partial, &reference.as_bytes()[..cut]).unwrap();

    let o = run(
        &["embed", m(), "-i", txt.to_str().unwrap(), "-o", out.to_str().unwrap()],
        None,
    );
    fails(&o, USAGE, &["v.jsonl.partial exists", "--resume"]);
    assert_eq!(
        std::fs::metadata(&partial).unwrap().len(),
        cut as u64,
        "a refused run touched the partial file"
    );

    let o = run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming after 17 vectors"), "{}", stderr(&o));
    assert!(!partial.exists());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        reference,
        "resumed output differs from one run"
    );

    // Resuming a complete output changes nothing.
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    ));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), reference);

    // A partial file from another model width is refused, untouched.
    std::fs::write(&partial, "{\"id\":0,\"embedding\":[0.5,0.5]}\n").unwrap();
    let o = run(
        &[
            "embed",
            m(),
            "-i",
            txt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    );
    fails(&o, USAGE, &["2 dims", "384"]);
    assert_eq!(
        std::fs::read_to_string(&partial).unwrap(),
        "{\"id\":0,\"embedding\":[0.5,0.5]}\n"
    );
}
