//! Real English prose cut to an exact token count, for end-to-end timings at fixed sequence
//! lengths.
//!
//! The words come from the English texts of the MiniLM reference fixture
//! (`tests/fixtures/minilm/reference.json`: news paragraphs and sentences), so the tokenizer
//! sees ordinary text rather than one repeated token. A text is grown word by word from a
//! starting word (wrapping around the pool); a word that would overshoot the target is skipped
//! and the next one tried, so the count lands exactly on the target.

use octet::tokenize::{TextTokenizer, Truncation};
use std::path::Path;

/// Fixture categories that hold ordinary English prose.
const PROSE_CATEGORIES: [&str; 4] = ["sentence_en", "medium_en", "long_exact_", "long_over"];

/// The words of the fixture's English prose texts, in order.
pub fn fixture_words(fixture: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(fixture).map_err(|e| format!("cannot read {}: {e}", fixture.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", fixture.display()))?;
    let texts = json["texts"]
        .as_array()
        .ok_or_else(|| format!("{}: no `texts` array", fixture.display()))?;
    let words: Vec<String> = texts
        .iter()
        .filter(|t| {
            t["category"]
                .as_str()
                .is_some_and(|c| PROSE_CATEGORIES.iter().any(|p| c.starts_with(p)))
        })
        .filter_map(|t| t["text"].as_str())
        .flat_map(|t| t.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    if words.is_empty() {
        return Err(format!("{}: no prose texts", fixture.display()));
    }
    Ok(words)
}

/// A text of exactly `target` tokens as counted by `count` (which returns `None` for a text
/// the tokenizer had to truncate), built from `words` starting at word `start`; `None` if the
/// pool cannot reach the target.
pub fn text_of_tokens(
    words: &[String],
    start: usize,
    target: usize,
    count: impl Fn(&str) -> Option<usize>,
) -> Option<String> {
    let mut text = String::new();
    let mut skipped_in_a_row = 0;
    for i in 0.. {
        if skipped_in_a_row > words.len() {
            return None;
        }
        let word = &words[(start + i) % words.len()];
        let candidate = if text.is_empty() {
            word.clone()
        } else {
            format!("{text} {word}")
        };
        match count(&candidate) {
            Some(n) if n == target => return Some(candidate),
            Some(n) if n < target => {
                text = candidate;
                skipped_in_a_row = 0;
            }
            _ => skipped_in_a_row += 1,
        }
    }
    None
}

/// `batch` texts of exactly `tokens` tokens each (special tokens included, as `tokenizer`
/// counts them), all different: text `i` starts at word `i * 97` of `words`.
pub fn texts_of_exact_tokens(
    tokenizer: &TextTokenizer,
    words: &[String],
    batch: usize,
    tokens: usize,
) -> Result<Vec<String>, String> {
    let count = |text: &str| {
        let t = tokenizer.encode(0, text, Truncation::Truncate).ok()?;
        (!t.truncated).then_some(t.ids.len())
    };
    (0..batch)
        .map(|i| {
            text_of_tokens(words, i * 97, tokens, count)
                .ok_or_else(|| format!("cannot build a text of {tokens} tokens"))
        })
        .collect()
}

/// The lines of a corpus file (one text per line, blank lines skipped).
pub fn corpus_lines(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if lines.is_empty() {
        return Err(format!("{}: no texts", path.display()));
    }
    Ok(lines)
}

/// The fixed corpus of the throughput runs: `tools/data/lee-sentences.txt` (400 sentences).
pub fn lee_corpus() -> Result<Vec<String>, String> {
    corpus_lines(&crate::repo_root().join("tools/data/lee-sentences.txt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lands_exactly_on_the_target() {
        let words: Vec<String> = "the quick brown fox jumps over the lazy dog"
            .split(' ')
            .map(String::from)
            .collect();
        // One token per character: "brown" must be skipped to hit 13 exactly ("the quick fox").
        let count = |t: &str| Some(t.len());
        for target in [3, 9, 13] {
            assert_eq!(text_of_tokens(&words, 0, target, count).unwrap().len(), target);
        }
        assert_eq!(text_of_tokens(&words, 0, 2, count), None);
    }

    #[test]
    fn the_fixture_has_prose() {
        let words = fixture_words(&crate::repo_root().join("tests/fixtures/minilm/reference.json")).unwrap();
        assert!(words.len() > 500, "{}", words.len());
    }

    #[test]
    fn the_corpus_has_400_sentences() {
        assert_eq!(lee_corpus().unwrap().len(), 400);
    }
}
