//! Bad texts and inputs: invalid UTF-8, over-long texts, missing fields and columns, missing files.

use super::*;

#[test]
fn invalid_utf8_on_stdin_names_the_line_keeps_earlier_vectors_and_lossy_replaces() {
    let input = b"The cat sat.\nbad \xff\xfe bytes\nlast line\n";
    let o = run(&["embed", m()], Some(input));
    fails(
        &o,
        BAD_INPUT,
        &["line 2 of standard input is not valid UTF-8", "column 5", "--lossy"],
    );
    let kept = parse_jsonl(&stdout(&o));
    assert_eq!(kept.len(), 1, "the vector of line 1 must be written before the error");
    assert!(max_diff(&[kept[0].1.clone()], &embed_args(&["The cat sat."])) <= SAME);

    let lossy = vectors(&ok(run(&["embed", m(), "--lossy"], Some(input))));
    assert!(
        max_diff(
            &lossy,
            &embed_args(&["The cat sat.", "bad \u{fffd}\u{fffd} bytes", "last line"])
        ) <= SAME
    );
}

#[test]
fn a_text_longer_than_the_window_is_cut_with_a_note_or_refused() {
    let long = "word ".repeat(400);
    let input = format!("short one\n{long}\nshort two\n");
    let o = run(&["embed", m()], Some(input.as_bytes()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(parse_jsonl(&stdout(&o)).len(), 3);
    assert!(
        stderr(&o).contains("note: 1 text(s) were longer than the model's window of 256 tokens"),
        "{}",
        stderr(&o)
    );

    let o = run(&["embed", m(), "--no-truncate"], Some(input.as_bytes()));
    fails(
        &o,
        BAD_INPUT,
        &[
            "line 2 of standard input (id 1) is longer than the model's window of 256 tokens",
            "--no-truncate",
        ],
    );
    assert_eq!(
        parse_jsonl(&stdout(&o)).len(),
        1,
        "line 1's vector must be written before the error"
    );
}

#[test]
fn a_jsonl_line_without_the_field_keeps_earlier_vectors_for_resume() {
    let dir = test_dir("jsonl-field");
    let input = dir.join("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"title\": \"three\"}\n{\"text\": \"four\"}\n",
    )
    .unwrap();
    let o = run(&["embed", m(), "-i", input.to_str().unwrap(), "--field", "text"], None);
    fails(&o, BAD_INPUT, &["line 3 of", "no field 'text'", "'title'", "--field"]);
    assert_eq!(parse_jsonl(&stdout(&o)).len(), 2);

    // To a file: the complete vectors stay in the partial file; fix the line and resume.
    let out = dir.join("v.jsonl");
    let o = run(
        &[
            "embed",
            m(),
            "-i",
            input.to_str().unwrap(),
            "--field",
            "text",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    );
    fails(
        &o,
        BAD_INPUT,
        &["no field 'text'", "2 vectors before it are kept in", "--resume"],
    );
    assert!(!out.exists(), "an incomplete output must not look complete");
    assert_eq!(
        std::fs::read_to_string(dir.join("v.jsonl.partial"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    std::fs::write(
        &input,
        "{\"text\": \"one\"}\n{\"text\": \"two\"}\n{\"text\": \"three\"}\n{\"text\": \"four\"}\n",
    )
    .unwrap();
    ok(run(
        &[
            "embed",
            m(),
            "-i",
            input.to_str().unwrap(),
            "--field",
            "text",
            "-o",
            out.to_str().unwrap(),
            "--resume",
        ],
        None,
    ));
    let got = parse_jsonl(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [0, 1, 2, 3]);
    assert!(
        max_diff(
            &got.into_iter().map(|g| g.1).collect::<Vec<_>>(),
            &embed_args(&["one", "two", "three", "four"])
        ) <= SAME
    );
}

#[test]
fn a_csv_without_the_column() {
    let dir = test_dir("csv-column");
    let input = dir.join("in.csv");
    std::fs::write(&input, "id,title,body\n1,a,b\n").unwrap();
    let out = dir.join("v.npy");
    let o = run(
        &[
            "embed",
            m(),
            "-i",
            input.to_str().unwrap(),
            "--column",
            "text",
            "-o",
            out.to_str().unwrap(),
        ],
        None,
    );
    fails(
        &o,
        BAD_INPUT,
        &["has no column 'text'", "'id', 'title', 'body'", "--column"],
    );
    assert!(std::fs::read_dir(&dir).unwrap().count() == 1, "files were created");
}

#[test]
fn an_input_file_that_does_not_exist() {
    let o = run(&["embed", m(), "-i", "/nonexistent/in.txt"], None);
    fails(&o, NO_INPUT, &["/nonexistent/in.txt does not exist"]);
}
