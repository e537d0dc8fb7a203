//! The progress of a search on stderr: an `indicatif` bar on a terminal, and on anything else (a
//! log file, a batch job) a plain line every few seconds, so a long solve is never silent.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::report::{fmt_gap, fmt_s};

/// Seconds between plain progress lines.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// What the plain lines report.
struct Tally {
    started: Instant,
    last_line: Instant,
    done: u64,
    total: u64,
    what: String,
    incumbent_s: f64,
    bound_s: f64,
    /// Lines give the count alone (a sweep of many searches has no one incumbent).
    count_only: bool,
}

/// A bar on stderr when `show` and stderr is a terminal; plain lines when stderr is not a
/// terminal.
pub struct Progress(pub indicatif::ProgressBar, Option<Mutex<Tally>>);

impl Progress {
    /// Progress for a run; `show`: draw the bar (hidden for `--json`, whose stdout scripts read;
    /// plain lines still go to a non-terminal stderr).
    pub fn new(show: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if show && terminal {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        let now = Instant::now();
        let plain = (!terminal).then(|| {
            Mutex::new(Tally {
                started: now,
                last_line: now,
                done: 0,
                total: 0,
                what: String::new(),
                incumbent_s: f64::INFINITY,
                bound_s: 0.0,
                count_only: false,
            })
        });
        Progress(bar, plain)
    }

    /// Progress whose plain lines count what is settled and say nothing of a best plan.
    ///
    /// ```
    /// use watos::strategy::Observer;
    /// let p = watos::cli::Progress::counting(false);
    /// p.start(3, "fault patterns");
    /// p.advance(1);
    /// assert_eq!(p.0.position(), 1);
    /// ```
    pub fn counting(show: bool) -> Self {
        let p = Progress::new(show);
        if let Some(Ok(mut t)) = p.1.as_ref().map(|m| m.lock()) {
            t.count_only = true;
        }
        p
    }

    /// Prints a plain line if one is due.
    fn tick(&self, force: bool) {
        let Some(tally) = &self.1 else { return };
        let Ok(mut t) = tally.lock() else { return };
        if !force && t.last_line.elapsed() < LINE_EVERY {
            return;
        }
        t.last_line = Instant::now();
        let best = if t.count_only {
            String::new()
        } else if t.incumbent_s.is_finite() {
            let gap = (t.incumbent_s - t.bound_s) / t.incumbent_s;
            format!(
                " best {}, bound {}, gap {},",
                fmt_s(t.incumbent_s),
                fmt_s(t.bound_s),
                fmt_gap(gap)
            )
        } else {
            " no plan yet,".to_string()
        };
        super::eprint(&format!(
            "watos: {}/{} {} settled,{best} {:.0} s\n",
            t.done,
            t.total,
            t.what,
            t.started.elapsed().as_secs_f64()
        ));
    }
}

impl crate::strategy::Observer for Progress {
    fn start(&self, total: u64, what: &str) {
        self.0.set_length(total);
        if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{bar:30}}] {{pos}}/{{len}} {what} {{msg}} ({{elapsed}})"
        )) {
            self.0.set_style(style.progress_chars("=> "));
        }
        if let Some(Ok(mut t)) = self.1.as_ref().map(|m| m.lock()) {
            t.total = total;
            t.what = what.to_string();
        }
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
        if let Some(Ok(mut t)) = self.1.as_ref().map(|m| m.lock()) {
            t.done += n;
        }
        self.tick(false);
    }

    fn settled(&self, done: u64) {
        self.0.set_position(done);
        if let Some(Ok(mut t)) = self.1.as_ref().map(|m| m.lock()) {
            t.done = done;
        }
        self.tick(false);
    }

    fn status(&self, incumbent_s: f64, bound_s: f64) {
        if incumbent_s.is_finite() {
            self.0.set_message(format!(
                "best {} gap {}",
                fmt_s(incumbent_s),
                fmt_gap((incumbent_s - bound_s) / incumbent_s)
            ));
        }
        if let Some(Ok(mut t)) = self.1.as_ref().map(|m| m.lock()) {
            t.incumbent_s = incumbent_s;
            t.bound_s = bound_s;
        }
        self.tick(false);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
        // A run long enough to have printed lines ends with one, so a log shows where it stopped.
        let printed = self
            .1
            .as_ref()
            .and_then(|m| m.lock().ok().map(|t| t.started.elapsed() >= LINE_EVERY));
        if printed == Some(true) {
            self.tick(true);
        }
    }
}
