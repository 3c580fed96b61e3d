//! Every way texts come in: arguments, standard input, files, JSON lines, CSV.

use super::*;

#[test]
fn stdin_file_jsonl_and_csv_give_the_argument_vectors() {
    let reference = embed_args(&TEXTS);
    let dir = test_dir("inputs");

    let stdin = ok(run(&["embed", m()], Some(format!("{}\n", TEXTS.join("\n")).as_bytes())));
    assert!(max_diff(&vectors(&stdin), &reference) <= SAME);

    let txt = dir.join("t.txt");
    std::fs::write(&txt, format!("{}\r\n{}\r\n{}", TEXTS[0], TEXTS[1], TEXTS[2])).unwrap();
    let file = ok(run(&["embed", m(), "--input", txt.to_str().unwrap()], None));
    assert!(max_diff(&vectors(&file), &reference) <= SAME);

    let jsonl = dir.join("t.jsonl");
    let lines: Vec<String> = TEXTS
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"n": i, "body": t}).to_string())
        .collect();
    std::fs::write(&jsonl, format!("{}\n\n{}\n{}\n", lines[0], lines[1], lines[2])).unwrap();
    let out = ok(run(
        &["embed", m(), "--input", jsonl.to_str().unwrap(), "--field", "body"],
        None,
    ));
    let parsed = parse_jsonl(&out);
    assert_eq!(
        parsed.iter().map(|p| p.0).collect::<Vec<_>>(),
        [0, 1, 2],
        "ids count records, not blank lines"
    );
    assert!(max_diff(&vectors(&out), &reference) <= SAME);

    // Quoted fields with commas, quotes and a line break.
    let tricky = "Hello, \"world\"\nsecond line";
    let csv = dir.join("t.csv");
    std::fs::write(
        &csv,
        format!(
            "id,text\n1,{}\n2,\"{}\"\n3,\"{}\"\n",
            TEXTS[0],
            TEXTS[1],
            tricky.replace('"', "\"\"")
        ),
    )
    .unwrap();
    let out = vectors(&ok(run(
        &["embed", m(), "--input", csv.to_str().unwrap(), "--column", "text"],
        None,
    )));
    assert!(max_diff(&out, &embed_args(&[TEXTS[0], TEXTS[1], tricky])) <= SAME);
}

#[test]
fn empty_lines_are_empty_texts_and_keep_ids_aligned_with_lines() {
    let out = ok(run(&["embed", m()], Some(b"first\n\n\nfourth\n")));
    let parsed = parse_jsonl(&out);
    assert_eq!(parsed.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let reference = embed_args(&["first", "", "", "fourth"]);
    assert!(max_diff(&vectors(&out), &reference) <= SAME);
    assert!(max_diff(&reference[1..2], &reference[2..3]) == 0.0);
}
