//! Progress of `up`, `down` and `restore`, in one of three modes:
//!
//! - **Bars** (stderr is a terminal, not CI): a live area at the bottom with a
//!   spinner per operation in flight and an overall bar whose clock runs from
//!   the first moment. Above it, a permanent log like Terraform's: one line per
//!   finished operation with its time and the object's id
//!   (`web: created in 2.1s [pid 4242]`), `still creating… (10s)` every ten
//!   seconds of a long one, failures, and command output prefixed with its
//!   resource (`announce: …`).
//! - **Lines** (a pipe, a file, CI): the same permanent lines, each starting with
//!   a UTC time, on stdout; nothing is redrawn.
//! - **Json** (`--json`): one event per line on stdout.
//!
//! ```text
//!   preflight: created in 0.0s
//!   web: created in 0.1s [pid 4242]
//!   web-ready: still creating… (10s)          <- permanent log (scrolls)
//!   ⠙ creating web-ready (metal.http_check) 12s
//!   ⠙ 00:00:12 [==========>          ] 4/7 operations   <- live area (redrawn)
//! ```

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use console::{StyledObject, style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use phoenix_core::ResourceAddr;
use phoenix_core::executor::{ApplyEvent, OpKind, Reporter};

/// How often a long operation says it is still running.
const STILL_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Bars,
    Lines,
}

impl Mode {
    pub fn detect(json: bool) -> Self {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() && !dumb {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// The live area while one is drawn, so that log lines (tracing) are printed
/// above it instead of through it.
static LIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Runs `write` with the live area, if any, lifted out of the way.
pub fn above_live_area(write: impl FnOnce()) {
    let live = LIVE.lock().ok().and_then(|l| l.clone());
    match live {
        Some(mp) => mp.suspend(write),
        None => write(),
    }
}

fn verb(op: OpKind, done: bool) -> &'static str {
    match (op, done) {
        (OpKind::Create, false) => "creating",
        (OpKind::Create, true) => "created",
        (OpKind::Update, false) => "updating",
        (OpKind::Update, true) => "updated",
        (OpKind::Destroy, false) => "destroying",
        (OpKind::Destroy, true) => "destroyed",
        (OpKind::Adopt, false) => "adopting",
        (OpKind::Adopt, true) => "adopted",
    }
}

fn secs(elapsed_ms: u64) -> String {
    format!("{:.1}s", elapsed_ms as f64 / 1000.0)
}

/// An operation in flight.
struct Op {
    started: Instant,
    /// Its spinner (Bars mode).
    bar: Option<ProgressBar>,
    /// When it next says it is still running.
    next_still: Duration,
}

struct Inner {
    mode: Mode,
    /// The live area and its overall bar (Bars mode).
    bars: Option<(MultiProgress, ProgressBar)>,
    active: Mutex<BTreeMap<(ResourceAddr, OpKind), Op>>,
    /// Permanent lines kept instead of printed (unit tests).
    captured: Option<Mutex<Vec<String>>>,
}

pub struct Progress {
    inner: Arc<Inner>,
    /// Stops the thread that prints `still creating…` lines.
    ticker: Mutex<Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

impl Progress {
    pub fn new(mode: Mode, total_ops: usize) -> Self {
        let target = if mode == Mode::Bars { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        let progress = Self::build(mode, total_ops, target, false);
        if let Some((mp, _)) = &progress.inner.bars
            && let Ok(mut live) = LIVE.lock()
        {
            *live = Some(mp.clone());
        }
        progress
    }

    fn build(mode: Mode, total_ops: usize, target: ProgressDrawTarget, capture: bool) -> Self {
        let bars = (mode == Mode::Bars).then(|| {
            let mp = MultiProgress::with_draw_target(target);
            let overall = mp.add(ProgressBar::new(total_ops as u64));
            overall.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {elapsed_precise:.dim} [{bar:30.cyan/blue}] {pos}/{len} operations{msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            // Drawn now and redrawn on a clock: the elapsed time runs even while
            // the first (slow) operation has not finished.
            overall.enable_steady_tick(Duration::from_millis(120));
            (mp, overall)
        });
        let inner = Arc::new(Inner { mode, bars, active: Mutex::new(BTreeMap::new()), captured: capture.then(|| Mutex::new(Vec::new())) });
        let ticker = (mode != Mode::Json && !capture).then(|| {
            let (stop, stopped) = mpsc::channel::<()>();
            let inner = inner.clone();
            let handle = std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_secs(1)) {
                    inner.still_running(Instant::now());
                }
            });
            (stop, handle)
        });
        Self { inner, ticker: Mutex::new(ticker) }
    }

    /// The run is over: clear the live area (nothing of it stays on screen).
    pub fn finish(&self) {
        if let Some((stop, handle)) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            drop(stop);
            let _ = handle.join();
        }
        self.clear();
    }

    /// Clears the live area at once, e.g. before exiting on a second Ctrl-C,
    /// so no spinner frame is left on the terminal.
    pub fn clear(&self) {
        if let Ok(mut live) = LIVE.lock() {
            *live = None;
        }
        for (_, op) in std::mem::take(&mut *self.inner.active.lock().expect("not poisoned")) {
            if let Some(bar) = op.bar {
                bar.finish_and_clear();
            }
        }
        if let Some((mp, overall)) = &self.inner.bars {
            overall.finish_and_clear();
            let _ = mp.clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Inner {
    /// Colour for where the line goes: stderr under the live area, stdout otherwise.
    fn paint<D>(&self, s: StyledObject<D>) -> StyledObject<D> {
        if self.bars.is_some() { s.for_stderr() } else { s.for_stdout() }
    }

    /// A permanent line: above the live area, or timestamped on stdout.
    fn line(&self, text: String) {
        if let Some(captured) = &self.captured {
            captured.lock().expect("not poisoned").push(text);
            return;
        }
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(text);
            }
            None => {
                let ts = chrono::Utc::now().format("%H:%M:%S%.3f");
                outln!("{} {text}", self.paint(style(ts)).dim());
            }
        }
    }

    fn done(&self, addr: &ResourceAddr, op: OpKind) -> Option<Op> {
        let op = self.active.lock().expect("not poisoned").remove(&(addr.clone(), op));
        if let Some(bar) = op.as_ref().and_then(|o| o.bar.as_ref()) {
            bar.finish_and_clear();
        }
        if let Some((_, overall)) = &self.bars {
            overall.inc(1);
        }
        op
    }

    /// `still creating… (10s)` for each operation that crossed another ten seconds by `now`.
    fn still_running(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut active = self.active.lock().expect("not poisoned");
            for ((addr, op), o) in active.iter_mut() {
                let elapsed = now.saturating_duration_since(o.started);
                if elapsed >= o.next_still {
                    // The last whole ten seconds passed, even if the ticker was late.
                    let every = STILL_EVERY.as_secs();
                    let passed = elapsed.as_secs() / every * every;
                    due.push((addr.clone(), *op, passed));
                    o.next_still = Duration::from_secs(passed + every);
                }
            }
        }
        for (addr, op, s) in due {
            self.line(format!("{addr}: {}", self.paint(style(format!("still {}… ({s}s)", verb(op, false)))).dim()));
        }
    }

    fn event(&self, event: &ApplyEvent) {
        match event {
            ApplyEvent::Started { addr, op, type_name } => {
                let bar = self.bars.as_ref().map(|(mp, overall)| {
                    let bar = mp.insert_before(overall, ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner:.cyan} {msg} {elapsed:.dim}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(format!("{} {addr} ({type_name})", verb(*op, false)));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                let o = Op { started: Instant::now(), bar, next_still: STILL_EVERY };
                self.active.lock().expect("not poisoned").insert((addr.clone(), *op), o);
                if self.bars.is_none() {
                    self.line(format!("{addr}: {} ({type_name})", verb(*op, false)));
                }
            }
            ApplyEvent::Finished { addr, op, elapsed_ms, id } => {
                self.done(addr, *op);
                let id = id.as_deref().map(|id| format!(" {}", self.paint(style(format!("[{id}]"))).dim())).unwrap_or_default();
                self.line(format!("{addr}: {} in {}{id}", self.paint(style(verb(*op, true))).green(), secs(*elapsed_ms)));
            }
            ApplyEvent::Failed { addr, op, error, elapsed_ms } => {
                self.done(addr, *op);
                if let Some((_, overall)) = &self.bars {
                    overall.set_message(format!(" {}", self.paint(style("(a failure: see above)")).red()));
                }
                let head = self.paint(style(format!("{} failed", verb(*op, false)))).red().bold();
                self.line(format!("{addr}: {head} after {}: {error}", secs(*elapsed_ms)));
            }
            ApplyEvent::Skipped { addr, op, because } => {
                self.done(addr, *op);
                self.line(format!(
                    "{addr}: {} ({} skipped because `{because}` failed)",
                    self.paint(style("skipped")).yellow(),
                    verb(*op, false)
                ));
            }
            ApplyEvent::Log { addr, line } => {
                // Command output (metal.exec, hooks, wipe commands) as it comes,
                // under the resource that ran it.
                self.line(format!("{addr}: {}", self.paint(style(line)).dim()));
            }
            ApplyEvent::Interrupted { in_flight } => {
                if let Some((_, overall)) = &self.bars {
                    overall.set_message(format!(" {}", self.paint(style("(interrupted: finishing what is in flight)")).yellow()));
                }
                self.line(format!(
                    "{} waiting for {in_flight} operation(s) in flight, then saving state; press Ctrl-C again to exit at once",
                    self.paint(style("Interrupted:")).yellow().bold()
                ));
            }
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: &ApplyEvent) {
        if self.inner.mode == Mode::Json {
            crate::printer::emit(&phoenix_engine::event::Event::from(event));
            return;
        }
        self.inner.event(event);
    }
}

#[cfg(test)]
mod tests {
    use phoenix_core::executor::OpError;
    use phoenix_core::provider::ErrorKind;

    use super::*;

    fn addr(s: &str) -> ResourceAddr {
        ResourceAddr::parse(s).unwrap()
    }

    /// A display whose live area is drawn nowhere and whose permanent lines are kept.
    fn display(mode: Mode, total: usize) -> Progress {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
        Progress::build(mode, total, ProgressDrawTarget::hidden(), true)
    }

    fn lines(p: &Progress) -> Vec<String> {
        p.inner.captured.as_ref().unwrap().lock().unwrap().clone()
    }

    fn started(a: &str, op: OpKind) -> ApplyEvent {
        ApplyEvent::Started { addr: addr(a), op, type_name: "metal.service".into() }
    }

    #[test]
    fn the_overall_bar_is_there_from_the_first_moment_with_a_running_clock() {
        let p = display(Mode::Bars, 3);
        let (_, overall) = p.inner.bars.as_ref().unwrap();
        assert_eq!(overall.length(), Some(3));
        assert_eq!(overall.position(), 0);
        assert!(!overall.is_finished());
        // The clock runs before any operation finishes.
        std::thread::sleep(Duration::from_millis(30));
        assert!(overall.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_finished_operation_leaves_a_permanent_line_with_its_time_and_id() {
        let p = display(Mode::Bars, 2);
        p.event(&started("web-3", OpKind::Create));
        {
            let active = p.inner.active.lock().unwrap();
            let bar = active[&(addr("web-3"), OpKind::Create)].bar.as_ref().unwrap();
            assert_eq!(bar.message(), "creating web-3 (metal.service)");
        }
        assert!(lines(&p).is_empty(), "a start is shown by its spinner only");
        p.event(&ApplyEvent::Finished { addr: addr("web-3"), op: OpKind::Create, elapsed_ms: 2140, id: Some("i-0abc".into()) });
        assert_eq!(lines(&p), vec!["web-3: created in 2.1s [i-0abc]"]);
        assert!(p.inner.active.lock().unwrap().is_empty(), "its spinner is gone");
        assert_eq!(p.inner.bars.as_ref().unwrap().1.position(), 1);
    }

    #[test]
    fn plain_lines_say_when_each_operation_starts_and_ends() {
        let p = display(Mode::Lines, 2);
        p.event(&started("web", OpKind::Destroy));
        p.event(&ApplyEvent::Finished { addr: addr("web"), op: OpKind::Destroy, elapsed_ms: 40, id: Some("pid 4242".into()) });
        p.event(&ApplyEvent::Finished { addr: addr("index"), op: OpKind::Update, elapsed_ms: 5, id: None });
        assert_eq!(lines(&p), vec!["web: destroying (metal.service)", "web: destroyed in 0.0s [pid 4242]", "index: updated in 0.0s"]);
    }

    #[test]
    fn a_long_operation_says_it_is_still_running_every_ten_seconds() {
        let p = display(Mode::Bars, 1);
        p.event(&started("db", OpKind::Create));
        let t0 = p.inner.active.lock().unwrap()[&(addr("db"), OpKind::Create)].started;
        p.inner.still_running(t0 + Duration::from_secs(9));
        assert!(lines(&p).is_empty());
        p.inner.still_running(t0 + Duration::from_secs(10));
        p.inner.still_running(t0 + Duration::from_secs(15));
        p.inner.still_running(t0 + Duration::from_secs(21));
        // A stalled ticker does not repeat the lines it missed.
        p.inner.still_running(t0 + Duration::from_secs(55));
        assert_eq!(lines(&p), vec!["db: still creating… (10s)", "db: still creating… (20s)", "db: still creating… (50s)"]);
    }

    #[test]
    fn command_output_is_shown_under_its_resource_at_the_default_level() {
        let p = display(Mode::Bars, 1);
        p.event(&ApplyEvent::Log { addr: addr("preflight"), line: "Python 3.11.2".into() });
        assert_eq!(lines(&p), vec!["preflight: Python 3.11.2"]);
    }

    #[test]
    fn failures_skips_and_interrupts_are_permanent_lines() {
        let p = display(Mode::Bars, 3);
        p.event(&started("db", OpKind::Create));
        p.event(&ApplyEvent::Failed {
            addr: addr("db"),
            op: OpKind::Create,
            error: OpError::new(ErrorKind::RateLimited, "Throttling"),
            elapsed_ms: 1200,
        });
        p.event(&ApplyEvent::Skipped { addr: addr("app"), op: OpKind::Create, because: addr("db") });
        p.event(&ApplyEvent::Interrupted { in_flight: 1 });
        assert_eq!(
            lines(&p),
            vec![
                "db: creating failed after 1.2s: Throttling",
                "app: skipped (creating skipped because `db` failed)",
                "Interrupted: waiting for 1 operation(s) in flight, then saving state; press Ctrl-C again to exit at once",
            ]
        );
        assert_eq!(p.inner.bars.as_ref().unwrap().1.position(), 2);
    }

    #[test]
    fn clearing_leaves_no_bar_behind() {
        let p = display(Mode::Bars, 2);
        p.event(&started("a", OpKind::Create));
        p.event(&started("b", OpKind::Create));
        p.clear();
        assert!(p.inner.active.lock().unwrap().is_empty());
        assert!(p.inner.bars.as_ref().unwrap().1.is_finished());
    }
}
