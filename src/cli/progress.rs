//! Progress of long commands (`hookd prune`, `hookd rotate-main-key`, `hookd apply`,
//! `hookd replay`) on a
//! terminal: one line on standard error, redrawn at most five times a second, with the
//! count so far (of the total, when known) and the rate. When standard error is not a
//! terminal (a log, CI) nothing is drawn, and the command's final line on standard output
//! says what it did, as before.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const REDRAW: Duration = Duration::from_millis(200);

pub struct Progress<W: Write> {
    out: Option<W>,
    what: &'static str,
    started: Instant,
    drawn: Option<Instant>,
    count: u64,
    total: Option<u64>,
}

impl Progress<std::io::Stderr> {
    /// Draws on standard error if it is a terminal.
    pub fn on_terminal(what: &'static str) -> Self {
        let stderr = std::io::stderr();
        let out = stderr.is_terminal().then_some(stderr);
        Self::new(out, what)
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: Option<W>, what: &'static str) -> Self {
        Self {
            out,
            what,
            started: Instant::now(),
            drawn: None,
            count: 0,
            total: None,
        }
    }

    /// Adds `n` to the count and redraws if the last drawing is old enough.
    pub fn add(&mut self, n: u64) {
        self.count += n;
        if self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        };
        let of = self.total.map(|t| format!("/{t}")).unwrap_or_default();
        format!(
            "\r{}{of} {} ({:.0}/s, {:.1} s)\x1b[K",
            self.count, self.what, rate, secs
        )
    }

    fn draw(&mut self) {
        let line = self.line();
        if let Some(out) = &mut self.out {
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// Sets the count (of `total`, when known) and redraws if the last drawing is old
    /// enough.
    pub fn set(&mut self, count: u64, total: Option<u64>) {
        self.count = count;
        self.total = total;
        if self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    /// Draws the final count and ends the line.
    pub fn finish(mut self) {
        self.draw();
        if let Some(out) = &mut self.out {
            let _ = out.write_all(b"\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_counts_at_most_five_times_a_second_and_ends_the_line() {
        let mut buffer = Vec::new();
        let mut progress = Progress::new(Some(&mut buffer), "messages deleted");
        for _ in 0..1000 {
            progress.add(10);
        }
        progress.finish();
        let text = String::from_utf8(buffer).unwrap();
        let draws = text.matches('\r').count();
        // The first add, maybe one more if the loop was slow, and the finish.
        assert!((2..=4).contains(&draws), "{text:?}");
        assert!(text.contains("\r10000 messages deleted ("), "{text:?}");
        assert!(text.ends_with("\x1b[K\n"), "{text:?}");
    }

    #[test]
    fn shows_the_total_when_known() {
        let mut buffer = Vec::new();
        let mut progress = Progress::new(Some(&mut buffer), "changes made");
        progress.set(3, Some(7));
        progress.finish();
        let text = String::from_utf8(buffer).unwrap();
        assert!(text.starts_with("\r3/7 changes made ("), "{text:?}");
    }

    #[test]
    fn draws_nothing_off_a_terminal() {
        let mut progress = Progress::<Vec<u8>>::new(None, "messages deleted");
        progress.add(5);
        progress.finish();
    }
}
