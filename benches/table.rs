//! A markdown table with aligned columns, printed at the end of a benchmark run and pasted
//! into `RESULTS.md` as is.

/// Rows of cells under a header.
#[derive(Clone, Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty, extra cells are dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as markdown, columns padded to their widest cell; numeric-looking columns
    /// are right-aligned.
    pub fn render(&self) -> String {
        let cols = self.header.len();
        let cell = |row: &[String], c: usize| row.get(c).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| cell(r, c).chars().count())
                    .chain([self.header[c].chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let numeric: Vec<bool> = (0..cols)
            .map(|c| self.rows.iter().all(|r| looks_numeric(&cell(r, c))))
            .collect();
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    if numeric[c] {
                        format!("{s:>w$}", w = widths[c])
                    } else {
                        format!("{s:<w$}", w = widths[c])
                    }
                })
                .collect();
            format!("| {} |", padded.join(" | "))
        };
        let mut out = line(self.header.clone());
        out.push('\n');
        let rule: Vec<String> = (0..cols)
            .map(|c| {
                if numeric[c] {
                    format!("{}:", "-".repeat(widths[c] - 1))
                } else {
                    "-".repeat(widths[c])
                }
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for r in &self.rows {
            out.push_str(&line((0..cols).map(|c| cell(r, c)).collect()));
            out.push('\n');
        }
        out
    }
}

/// True for cells like `312.5`, `-3`, `78%`, `3.1x` and `n/a`.
fn looks_numeric(cell: &str) -> bool {
    cell == "n/a" || cell.trim_start_matches('-').starts_with(|ch: char| ch.is_ascii_digit())
}

/// A number with `decimals` places, or `n/a`.
pub fn num(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "n/a".to_string(),
    }
}

/// A percentage with no decimals, or `n/a`.
pub fn pct(fraction: Option<f64>) -> String {
    match fraction {
        Some(f) if f.is_finite() => format!("{:.0}%", f * 100.0),
        _ => "n/a".to_string(),
    }
}

/// A ratio like `3.12x`, or `n/a`.
pub fn ratio(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.2}x"),
        _ => "n/a".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_aligned_markdown() {
        let mut t = Table::new(&["shape", "GOPS"]);
        t.row(vec!["qkv".into(), "312.5".into()]);
        t.row(vec!["ffn-up 384x1536".into(), num(None, 1)]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines.iter().all(|l| l.chars().count() == lines[0].chars().count()),
            "{text}"
        );
        assert!(lines[1].ends_with(": |"), "{text}");
    }
}
