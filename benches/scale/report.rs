//! Figures and the summary table: each figure with the limit it is bounded by, the ratio
//! and a verdict (`ok`, `MISS`, `info`); a scenario's own tables, printed again under the
//! summary; correctness violations, which make the run fail; and the median / p95 /
//! maximum of a set of latencies.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Miss,
    Info,
}

pub struct Figure {
    name: String,
    value: String,
    limit: String,
    ratio: Option<f64>,
    verdict: Verdict,
}

/// A scenario's table of results: a title, a header and rows of cells.
pub struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Markdown, every column right-aligned and as wide as its widest cell.
    fn print(&self) {
        let columns = self.header.len();
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .map(String::len)
                    .fold(self.header[i].len(), usize::max)
            })
            .collect();
        let line = |cells: &[String]| {
            let cells: Vec<String> = (0..columns)
                .map(|i| {
                    let cell = cells.get(i).map_or("", String::as_str);
                    format!(" {cell:>width$} ", width = widths[i])
                })
                .collect();
            println!("|{}|", cells.join("|"));
        };
        println!("{}:", self.title);
        line(&self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        println!("|{}|", rule.join("|"));
        for row in &self.rows {
            line(row);
        }
    }
}

#[derive(Default)]
pub struct Report {
    figures: Vec<Figure>,
    tables: Vec<Table>,
    /// Correctness violations and broken runs: each makes the exit status non-zero.
    pub failures: Vec<String>,
}

impl Report {
    pub fn add(
        &mut self,
        name: &str,
        value: impl Into<String>,
        limit: impl Into<String>,
        ratio: Option<f64>,
        verdict: Verdict,
    ) {
        let figure = Figure {
            name: name.to_owned(),
            value: value.into(),
            limit: limit.into(),
            ratio,
            verdict,
        };
        println!(
            "  => {}: {} (limit/target {}; ratio {}) {}",
            figure.name,
            figure.value,
            figure.limit,
            figure
                .ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            verdict_word(figure.verdict)
        );
        self.figures.push(figure);
    }

    /// A count whose target is exactly `target` (a correctness target when `hard`).
    pub fn exact(&mut self, name: &str, value: usize, target: usize, hard: bool) {
        let ok = value == target;
        self.add(
            name,
            value.to_string(),
            format!("= {target}"),
            (target > 0).then(|| value as f64 / target as f64),
            if ok { Verdict::Ok } else { Verdict::Miss },
        );
        if hard && !ok {
            self.failures
                .push(format!("{name}: {value}, must be exactly {target}"));
        }
    }

    /// A count whose target is zero.
    pub fn zero(&mut self, name: &str, value: usize, hard: bool) {
        self.exact(name, value, 0, hard);
    }

    /// Prints a table now and keeps it for the end of the summary.
    pub fn table(&mut self, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
        let table = Table {
            title: title.to_owned(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        };
        println!();
        table.print();
        self.tables.push(table);
    }

    pub fn fail(&mut self, message: String) {
        println!("  !! {message}");
        self.failures.push(message);
    }

    pub fn print_summary(&self) {
        println!();
        println!("== summary ==");
        let width = |field: fn(&Figure) -> &str, header: usize| {
            self.figures
                .iter()
                .map(|f| field(f).len())
                .fold(header, usize::max)
        };
        let name_width = width(|f| f.name.as_str(), 6);
        let value_width = width(|f| f.value.as_str(), 5);
        let limit_width = width(|f| f.limit.as_str(), 13);
        println!(
            "| {:<name_width$} | {:>value_width$} | {:<limit_width$} | {:>6} |        |",
            "figure", "value", "limit/target", "ratio"
        );
        println!(
            "|{}|{}|{}|{}|--------|",
            "-".repeat(name_width + 2),
            "-".repeat(value_width + 2),
            "-".repeat(limit_width + 2),
            "-".repeat(8)
        );
        for f in &self.figures {
            let ratio = f
                .ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
            println!(
                "| {:<name_width$} | {:>value_width$} | {:<limit_width$} | {:>6} | {:<6} |",
                f.name,
                f.value,
                f.limit,
                ratio,
                verdict_word(f.verdict)
            );
        }
        for table in &self.tables {
            println!();
            table.print();
        }
        if self.failures.is_empty() {
            println!("\nno correctness violations; the run completed");
        } else {
            println!("\nFAILED ({}):", self.failures.len());
            for failure in &self.failures {
                println!("  - {failure}");
            }
        }
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "ok",
        Verdict::Miss => "MISS",
        Verdict::Info => "info",
    }
}

/// Median, 95th percentile (nearest rank) and maximum.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub count: usize,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

pub fn stats(values: &[f64]) -> Stats {
    if values.is_empty() {
        return Stats::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Stats {
        count: sorted.len(),
        median: rank(0.5),
        p95: rank(0.95),
        max: sorted[sorted.len() - 1],
    }
}

impl Stats {
    pub fn text(&self) -> String {
        format!("{:.3}/{:.3}/{:.3} s", self.median, self.p95, self.max)
    }
}
