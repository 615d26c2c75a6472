//! Showing a followed run: a progress bar on a terminal (rows, rows/s, ETA, current step; a
//! spinner when the source gave no row estimate), one line per change when stdout is not a
//! terminal, nothing with `--output json`.

use std::io::IsTerminal;
use std::time::Duration;

use fdi_client::RunEntry;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{Output, duration_ms, thousands};

const BAR_TEMPLATE: &str =
    "{spinner:.green} [{bar:20.cyan/blue}] {percent:>3}% {human_pos}/{human_len} rows · {wide_msg}";
const SPINNER_TEMPLATE: &str = "{spinner:.green} {elapsed:>4} {human_pos} rows · {wide_msg}";

/// How a followed run is shown.
pub enum RunDisplay {
    Bar { bar: ProgressBar, estimated: bool },
    Lines { last: String },
    Quiet,
}

impl RunDisplay {
    /// Bar on a terminal, lines when stdout is redirected, nothing for JSON.
    pub fn new(output: Output) -> RunDisplay {
        if output == Output::Json {
            return RunDisplay::Quiet;
        }
        if !std::io::stdout().is_terminal() {
            return RunDisplay::Lines {
                last: String::new(),
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(style(SPINNER_TEMPLATE));
        bar.enable_steady_tick(Duration::from_millis(120));
        RunDisplay::Bar {
            bar,
            estimated: false,
        }
    }

    /// Show the run's latest entry.
    pub fn update(&mut self, entry: &RunEntry) {
        match self {
            RunDisplay::Bar { bar, estimated } => draw_bar(bar, estimated, entry),
            RunDisplay::Lines { last } => {
                let line = progress_line(entry);
                if *last != line {
                    println!("{line}");
                    *last = line;
                }
            }
            RunDisplay::Quiet => {}
        }
    }

    /// Clear the bar (the caller prints the outcome).
    pub fn finish(&mut self) {
        if let RunDisplay::Bar { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn draw_bar(bar: &ProgressBar, estimated: &mut bool, entry: &RunEntry) {
    let rows = entry.rows();
    match (entry.progress, entry.total_count) {
        (Some(_), Some(total)) => {
            if !*estimated {
                bar.set_style(style(BAR_TEMPLATE));
                *estimated = true;
            }
            bar.set_length(total.max(rows));
        }
        _ => {
            if *estimated {
                bar.set_style(style(SPINNER_TEMPLATE));
                bar.unset_length();
                *estimated = false;
            }
        }
    }
    bar.set_position(rows);
    bar.set_message(details(entry).join(" · "));
}

/// rows/s, ETA and the current step, those that are known.
fn details(entry: &RunEntry) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(rps) = entry.rows_per_second {
        parts.push(format!("{} rows/s", thousands(rps.max(0.0).round() as u64)));
    }
    if let Some(eta) = entry.remaining_time {
        parts.push(format!("ETA {}", duration_ms(eta)));
    }
    if let Some(step) = step_text(entry) {
        parts.push(step);
    }
    parts
}

/// `stage: remarks` of the current step.
fn step_text(entry: &RunEntry) -> Option<String> {
    let step = entry.current_step.as_ref()?;
    let stage = step.stage.as_deref().filter(|s| !s.is_empty());
    let remarks = step.remarks.as_deref().filter(|s| !s.is_empty());
    match (stage, remarks) {
        (Some(s), Some(r)) => Some(format!("{s}: {r}")),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(r)) => Some(r.to_string()),
        (None, None) => None,
    }
}

/// One line for a change: `RUNNING 45% 4,500/10,000 rows · 12,000 rows/s · ETA 3.0s · step`.
pub fn progress_line(entry: &RunEntry) -> String {
    let mut line = entry.execute_status.clone();
    if let Some(p) = entry.progress {
        line.push_str(&format!(" {}%", p.round() as i64));
    }
    let rows = thousands(entry.rows());
    match entry.total_count {
        Some(total) => line.push_str(&format!(" {rows}/{} rows", thousands(total))),
        None => line.push_str(&format!(" {rows} rows")),
    }
    for part in details(entry) {
        line.push_str(" · ");
        line.push_str(&part);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(json: serde_json::Value) -> RunEntry {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn lines_show_what_is_known() {
        let e = entry(serde_json::json!({
            "id": "r", "execute_status": "RUNNING", "progress": 45, "read_count": 4500,
            "total_count": 10000, "rows_per_second": 12000.4, "remaining_time": 3000,
            "current_step": {"status": 2, "stage": "WRITER", "remarks": "writing"}
        }));
        assert_eq!(
            progress_line(&e),
            "RUNNING 45% 4,500/10,000 rows · 12,000 rows/s · ETA 3.0s · WRITER: writing"
        );
        let e = entry(
            serde_json::json!({"id": "r", "execute_status": "RUNNING", "progress": null, "data_count": 7}),
        );
        assert_eq!(progress_line(&e), "RUNNING 7 rows");
    }
}
