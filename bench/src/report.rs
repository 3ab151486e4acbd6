//! Figures, their references and targets, and the two outputs of a run: a table for people
//! and JSON lines for tools. Every figure that has a reference carries its value, so the
//! ratio in the output was computed from two numbers measured in the same run.

use std::fmt::Write as _;

/// What a figure is compared with: another figure of the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Where the reference comes from, `scenario/figure`.
    pub label: String,
    /// The reference value, in the figure's unit.
    pub value: f64,
}

/// The goal a figure is held to (docs/BENCHMARKS.md lists every target).
#[allow(dead_code)] // `AtLeast` has no figure yet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// value / reference ≥ the bound (higher is better).
    RatioAtLeast(f64),
    /// value / reference ≤ the bound (lower is better).
    RatioAtMost(f64),
    /// value / reference < the bound (strictly lower is better).
    RatioBelow(f64),
    /// value ≤ the bound, in the figure's unit.
    AtMost(f64),
    /// value ≥ the bound, in the figure's unit.
    AtLeast(f64),
}

impl Target {
    /// Whether `value` (with `ratio` to its reference, if any) meets the target; `None`
    /// when the target needs a ratio and there is no reference.
    pub fn is_met(&self, value: f64, ratio: Option<f64>) -> Option<bool> {
        Some(match *self {
            Self::RatioAtLeast(bound) => ratio? >= bound,
            Self::RatioAtMost(bound) => ratio? <= bound,
            Self::RatioBelow(bound) => ratio? < bound,
            Self::AtMost(bound) => value <= bound,
            Self::AtLeast(bound) => value >= bound,
        })
    }

    /// The target as the table shows it, e.g. `≥ 0.9× ref` or `≤ 100 µs`.
    pub fn describe(&self, unit: &str) -> String {
        match *self {
            Self::RatioAtLeast(bound) => format!("≥ {bound}× ref"),
            Self::RatioAtMost(bound) => format!("≤ {bound}× ref"),
            Self::RatioBelow(bound) => format!("< {bound}× ref"),
            Self::AtMost(bound) => format!("≤ {bound} {unit}"),
            Self::AtLeast(bound) => format!("≥ {bound} {unit}"),
        }
    }
}

/// How a figure fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It meets its target.
    Pass,
    /// It misses its target.
    Short,
    /// It is a reference for other figures (no target of its own).
    Reference,
    /// Informational: no target.
    Info,
    /// It has a ratio target but its reference was not measured in this run.
    NoReference,
    /// The scenario failed before it could measure this figure.
    Error,
}

impl Status {
    /// The word the table and JSON use.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Short => "SHORT",
            Self::Reference => "ref",
            Self::Info => "info",
            Self::NoReference => "no-ref",
            Self::Error => "ERROR",
        }
    }
}

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Scenario that measured it (its `--only` name).
    pub scenario: String,
    /// What it is, unique within the scenario, e.g. `p99 64 B`.
    pub name: String,
    /// The measured value, in `unit`.
    pub value: f64,
    /// Unit of `value` (and of the reference), e.g. `MiB/s`, `µs`, `% core`.
    pub unit: String,
    /// The same-run figure it is compared with.
    pub reference: Option<Reference>,
    /// The goal it is held to.
    pub target: Option<Target>,
    /// Whether other figures use it as their reference (then it has no target).
    pub is_reference: bool,
    /// A short remark printed under the table (e.g. what the reference was).
    pub note: Option<String>,
    /// Set when the scenario failed: the error, and `value` is NaN.
    pub error: Option<String>,
    /// CPU (in cores) other processes used while the scenario ran; the figure assumes ~0.
    pub background_cores: Option<f64>,
}

impl Figure {
    /// A figure with no reference and no target (informational).
    pub fn new(scenario: &str, name: impl Into<String>, value: f64, unit: &str) -> Self {
        Self {
            scenario: scenario.to_owned(),
            name: name.into(),
            value,
            unit: unit.to_owned(),
            reference: None,
            target: None,
            is_reference: false,
            note: None,
            error: None,
            background_cores: None,
        }
    }

    /// Marks it as a reference other figures are compared with.
    pub fn marked_reference(mut self) -> Self {
        self.is_reference = true;
        self
    }

    /// Compares it with `reference` (a figure of the same run), if there is one.
    pub fn against(mut self, reference: Option<&Figure>) -> Self {
        self.reference = reference.map(|r| Reference {
            label: format!("{}/{}", r.scenario, r.name),
            value: r.value,
        });
        self
    }

    /// Holds it to `target`.
    pub fn with_target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    /// Adds a remark.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// A row standing for a scenario that failed with `error`.
    pub fn failed(scenario: &str, error: &str) -> Self {
        let mut figure = Self::new(scenario, "(scenario failed)", f64::NAN, "");
        figure.error = Some(error.to_owned());
        figure
    }

    /// value / reference, when there is a usable reference.
    pub fn ratio(&self) -> Option<f64> {
        let reference = self.reference.as_ref()?.value;
        (reference != 0.0 && reference.is_finite() && self.value.is_finite())
            .then(|| self.value / reference)
    }

    /// How the figure fared.
    pub fn status(&self) -> Status {
        if self.error.is_some() {
            return Status::Error;
        }
        match self.target {
            Some(target) => match target.is_met(self.value, self.ratio()) {
                Some(true) => Status::Pass,
                Some(false) => Status::Short,
                None => Status::NoReference,
            },
            None if self.is_reference => Status::Reference,
            None => Status::Info,
        }
    }
}

/// A number with about four significant digits, no exponent for everyday magnitudes.
pub fn format_value(value: f64) -> String {
    if !value.is_finite() {
        return "-".into();
    }
    let magnitude = value.abs();
    if magnitude >= 1e12 || (magnitude > 0.0 && magnitude < 1e-3) {
        format!("{value:.3e}")
    } else if magnitude >= 1000.0 {
        format!("{value:.0}")
    } else if magnitude >= 100.0 {
        format!("{value:.1}")
    } else if magnitude >= 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// The table of `figures`, one row each, then the notes.
pub fn table(figures: &[Figure]) -> String {
    let header = [
        "scenario",
        "figure",
        "value",
        "unit",
        "reference",
        "ratio",
        "target",
        "status",
    ];
    let rows: Vec<[String; 8]> = figures
        .iter()
        .map(|f| {
            [
                f.scenario.clone(),
                f.name.clone(),
                format_value(f.value),
                f.unit.clone(),
                f.reference
                    .as_ref()
                    .map(|r| format!("{} ({})", format_value(r.value), r.label))
                    .unwrap_or_else(|| "-".into()),
                f.ratio()
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_else(|| "-".into()),
                f.target
                    .map(|t| t.describe(&f.unit))
                    .unwrap_or_else(|| "-".into()),
                f.status().as_str().to_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned, words left-aligned.
            let right = matches!(i, 2 | 5);
            let pad = width - cell.chars().count();
            if i > 0 {
                text.push_str("  ");
            }
            if right {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header.map(String::from));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    let notes: Vec<String> = figures
        .iter()
        .filter_map(|f| {
            let text = f.error.as_ref().or(f.note.as_ref())?;
            Some(format!("  {}/{}: {text}", f.scenario, f.name))
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nnotes:\n");
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    out
}

/// The table as Markdown (for docs/BENCHMARKS.md).
pub fn markdown_table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| scenario | figure | value | unit | reference | ratio | target | status |\n\
         |---|---|---:|---|---|---:|---|---|\n",
    );
    for f in figures {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            f.scenario,
            f.name,
            format_value(f.value),
            f.unit,
            f.reference
                .as_ref()
                .map(|r| format!("{} ({})", format_value(r.value), r.label))
                .unwrap_or_else(|| "-".into()),
            f.ratio()
                .map(|r| format!("{r:.3}"))
                .unwrap_or_else(|| "-".into()),
            f.target
                .map(|t| t.describe(&f.unit))
                .unwrap_or_else(|| "-".into()),
            f.status().as_str(),
        );
    }
    out
}

/// One JSON object (a line of the `--json` output) for `figure`.
pub fn json_line(figure: &Figure, commit: Option<&str>) -> String {
    let number = |v: f64| {
        if v.is_finite() {
            format!("{v}")
        } else {
            "null".into()
        }
    };
    let text = |s: Option<&str>| s.map(json_string).unwrap_or_else(|| "null".into());
    format!(
        "{{\"scenario\":{},\"figure\":{},\"value\":{},\"unit\":{},\"reference\":{},\
         \"reference_figure\":{},\"ratio\":{},\"target\":{},\"status\":{},\"commit\":{},\
         \"background_cores\":{},\"error\":{}}}",
        json_string(&figure.scenario),
        json_string(&figure.name),
        number(figure.value),
        json_string(&figure.unit),
        figure
            .reference
            .as_ref()
            .map_or("null".into(), |r| number(r.value)),
        text(figure.reference.as_ref().map(|r| r.label.as_str())),
        figure.ratio().map_or("null".into(), number),
        text(figure.target.map(|t| t.describe(&figure.unit)).as_deref()),
        json_string(figure.status().as_str()),
        text(commit),
        figure.background_cores.map_or("null".into(), number),
        text(figure.error.as_deref()),
    )
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_target_passes_and_falls_short() {
        let reference = Figure::new("memcpy", "bw", 1000.0, "MiB/s").marked_reference();
        let pass = Figure::new("frames", "bw", 950.0, "MiB/s")
            .against(Some(&reference))
            .with_target(Target::RatioAtLeast(0.9));
        assert_eq!(pass.status(), Status::Pass);
        let short = Figure::new("frames", "bw", 800.0, "MiB/s")
            .against(Some(&reference))
            .with_target(Target::RatioAtLeast(0.9));
        assert_eq!(short.status(), Status::Short);
        assert_eq!(reference.status(), Status::Reference);
    }

    #[test]
    fn ratio_target_without_reference_is_flagged() {
        let orphan = Figure::new("frames", "bw", 800.0, "MiB/s")
            .against(None)
            .with_target(Target::RatioAtLeast(0.9));
        assert_eq!(orphan.status(), Status::NoReference);
    }

    #[test]
    fn absolute_target_ignores_reference() {
        let f = Figure::new("attach", "p99", 120.0, "µs").with_target(Target::AtMost(100.0));
        assert_eq!(f.status(), Status::Short);
    }

    #[test]
    fn json_line_escapes_and_nulls() {
        let f = Figure::new("s", "a \"b\"", 1.5, "µs");
        let line = json_line(&f, Some("abc"));
        assert_eq!(
            line,
            "{\"scenario\":\"s\",\"figure\":\"a \\\"b\\\"\",\"value\":1.5,\"unit\":\"µs\",\
             \"reference\":null,\"reference_figure\":null,\"ratio\":null,\"target\":null,\
             \"status\":\"info\",\"commit\":\"abc\",\"background_cores\":null,\"error\":null}"
        );
    }

    #[test]
    fn failed_scenario_has_error_status_and_null_value() {
        let f = Figure::failed("attach", "no driver");
        assert_eq!(f.status(), Status::Error);
        assert!(json_line(&f, None).contains("\"value\":null"));
    }
}
