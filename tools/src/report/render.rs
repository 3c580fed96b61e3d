//! The report as an aligned text table (for the terminal), a Markdown table (for notes and
//! READMEs) or JSON (for scripts).

use super::Report;

/// Output format of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Markdown,
    Json,
}

impl ReportFormat {
    /// Parses `text`, `markdown` (or `md`) or `json`.
    pub fn parse(name: &str) -> Option<ReportFormat> {
        match name {
            "text" => Some(ReportFormat::Text),
            "markdown" | "md" => Some(ReportFormat::Markdown),
            "json" => Some(ReportFormat::Json),
            _ => None,
        }
    }
}

const HEADERS: [&str; 9] = [
    "recipe", "size MB", "vs f32", "mean cos", "p1 cos", "min cos", "top-10", "ms/pass", "speed",
];

fn cells(report: &Report) -> Vec<[String; 9]> {
    report
        .rows
        .iter()
        .map(|r| {
            [
                r.recipe.clone(),
                format!("{:.2}", r.bytes as f64 / 1e6),
                format!("{:.1}%", r.size_vs_f32 * 100.0),
                format!("{:.6}", r.mean_cosine),
                format!("{:.6}", r.p1_cosine),
                format!("{:.6}", r.min_cosine),
                if r.top10_overlap.is_nan() {
                    "n/a".into()
                } else {
                    format!("{:.3}", r.top10_overlap)
                },
                format!("{:.0}", r.seconds * 1e3),
                format!("{:.2}x", r.speed_vs_f32),
            ]
        })
        .collect()
}

fn caption(report: &Report) -> String {
    format!(
        "{} texts ({}), {} thread(s), best of {} round(s); cosines and top-10 neighbour overlap vs f32; speed = f32 time / recipe time",
        report.texts, report.texts_source, report.threads, report.rounds
    )
}

/// Renders `report` in `format`.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(report).expect("a report serializes") + "\n",
        ReportFormat::Markdown => {
            let mut out = format!("{}\n\n", caption(report));
            out += &format!("| {} |\n", HEADERS.join(" | "));
            out += &format!("|{}\n", "---|".repeat(HEADERS.len()));
            for row in cells(report) {
                out += &format!("| {} |\n", row.join(" | "));
            }
            out
        }
        ReportFormat::Text => {
            let rows = cells(report);
            let widths: Vec<usize> = (0..HEADERS.len())
                .map(|c| {
                    rows.iter()
                        .map(|r| r[c].len())
                        .chain([HEADERS[c].len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |cols: Vec<&str>| -> String {
                let parts: Vec<String> = cols
                    .iter()
                    .enumerate()
                    .map(|(c, s)| {
                        if c == 0 {
                            format!("{s:<w$}", w = widths[c])
                        } else {
                            format!("{s:>w$}", w = widths[c])
                        }
                    })
                    .collect();
                parts.join("  ").trim_end().to_string() + "\n"
            };
            let mut out = format!("{}\n", report.source.display());
            out += &line(HEADERS.to_vec());
            for row in &rows {
                out += &line(row.iter().map(String::as_str).collect());
            }
            out += &format!("{}\n", caption(report));
            out
        }
    }
}
