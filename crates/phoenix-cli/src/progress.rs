//! Progress of `up`/`down`: bars on a terminal, timestamped lines in CI logs,
//! one JSON event per line with `--json`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use phoenix_core::ResourceAddr;
use phoenix_core::executor::{ApplyEvent, OpKind, Reporter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Json,
    Bars,
    Lines,
}

impl Mode {
    pub fn detect(json: bool) -> Self {
        if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
            Mode::Bars
        } else {
            Mode::Lines
        }
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

pub struct Progress {
    mode: Mode,
    verbose: u8,
    bars: Option<(MultiProgress, ProgressBar)>,
    active: Mutex<HashMap<(ResourceAddr, OpKind), ProgressBar>>,
}

impl Progress {
    pub fn new(mode: Mode, total_ops: usize, verbose: u8) -> Self {
        let bars = (mode == Mode::Bars).then(|| {
            let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = mp.add(ProgressBar::new(total_ops as u64));
            overall.set_style(
                ProgressStyle::with_template("{elapsed_precise:.dim} [{bar:30.cyan/blue}] {pos}/{len} operations {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            (mp, overall)
        });
        Self { mode, verbose, bars, active: Mutex::new(HashMap::new()) }
    }

    pub fn finish(&self) {
        if let Some((_, overall)) = &self.bars {
            overall.finish_and_clear();
        }
        for (_, bar) in self.active.lock().expect("not poisoned").drain() {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: String) {
        let ts = chrono::Utc::now().format("%H:%M:%S%.3f");
        match &self.bars {
            Some((mp, _)) => {
                let _ = mp.println(text);
            }
            None => println!("{} {text}", style(ts).dim()),
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: &ApplyEvent) {
        if self.mode == Mode::Json {
            crate::printer::emit(&phoenix_engine::event::Event::from(event));
            return;
        }
        match event {
            ApplyEvent::Started { addr, op, type_name } => match &self.bars {
                Some((mp, overall)) => {
                    let bar = mp.insert_before(overall, ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner:.cyan} {msg} {elapsed:.dim}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_message(format!("{} {addr} ({type_name})", verb(*op, false)));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.active.lock().expect("not poisoned").insert((addr.clone(), *op), bar);
                }
                None => self.line(format!("{addr}: {} ({type_name})", verb(*op, false))),
            },
            ApplyEvent::Finished { addr, op, elapsed_ms } => {
                if let Some(bar) = self.active.lock().expect("not poisoned").remove(&(addr.clone(), *op)) {
                    bar.finish_and_clear();
                }
                if let Some((_, overall)) = &self.bars {
                    overall.inc(1);
                }
                let secs = *elapsed_ms as f64 / 1000.0;
                if self.bars.is_none() || self.verbose > 0 || secs >= 1.0 {
                    self.line(format!("{addr}: {} {}", style(verb(*op, true)).green(), style(format!("after {secs:.1}s")).dim()));
                }
            }
            ApplyEvent::Failed { addr, op, error, elapsed_ms } => {
                if let Some(bar) = self.active.lock().expect("not poisoned").remove(&(addr.clone(), *op)) {
                    bar.finish_and_clear();
                }
                if let Some((_, overall)) = &self.bars {
                    overall.inc(1);
                }
                let secs = *elapsed_ms as f64 / 1000.0;
                self.line(format!("{addr}: {} after {secs:.1}s: {error}", style(format!("{} failed", verb(*op, false))).red().bold()));
            }
            ApplyEvent::Skipped { addr, op, because } => {
                if let Some((_, overall)) = &self.bars {
                    overall.inc(1);
                }
                self.line(format!("{addr}: {} ({} skipped because `{because}` failed)", style("skipped").yellow(), verb(*op, false)));
            }
            ApplyEvent::Log { addr, line } => {
                // Command output is noise at the default level; -v shows it.
                if self.verbose > 0 {
                    self.line(format!("{addr}: {}", style(line).dim()));
                }
            }
            ApplyEvent::Interrupted { in_flight } => {
                self.line(format!(
                    "{} waiting for {in_flight} operation(s) in flight, then saving state; press Ctrl-C again to exit at once",
                    style("Interrupted:").yellow().bold()
                ));
            }
        }
    }
}
