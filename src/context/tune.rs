//! Autotuning: a kernel family offers several variants of a launch that lay the work out differently
//! (register block, vector loads, workgroup shape) but add every sum in the same order, so any
//! variant gives the same bits. The first time a shape is launched on an adapter, the variants are
//! timed on the launch's own buffers and the fastest is kept, in memory and in a small text file
//! per adapter beside the pipeline cache, so later runs take it without timing.
//!
//! `WGCNN_TUNE` chooses the mode (see [`Tuning`]): `full` (the default) times shapes the cache does
//! not know, within [`TUNE_BUDGET`] per context; `cached` takes the cache's choices and the default
//! variant elsewhere, timing nothing; `off` always takes the default variant (variant 0: the
//! heuristic choice). `WGCNN_TUNE_CACHE=DIR|off` moves or disables the file (unset: the pipeline
//! cache's folder, `~/.cache/wgcnn`). A file that is missing, damaged, or written for another
//! adapter, driver or build of the kernels is ignored (and replaced at the next choice); a file that
//! cannot be written is a warning. Timing runs write only the launch's own output, which every
//! training step overwrites before reading it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::kernels::Launch;

/// How launches with several variants are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tuning {
    /// Always the default variant (the first: the heuristic choice); nothing timed, no file read.
    Off,
    /// The cache file's choice where it has one, the default elsewhere; nothing timed.
    Cached,
    /// The cache file's choice where it has one; otherwise time every variant on the launch's buffers
    /// (within the context's budget) and keep the fastest.
    Full,
    /// Variant `i % count` of every launch: tests use it to prove every variant gives the same bits.
    Force(usize),
}

impl Tuning {
    /// From `WGCNN_TUNE` (`off`, `cached` or `full`; unset means `full`, except in a browser, where
    /// nothing may block and it means `off`).
    pub fn from_env() -> Result<Self> {
        match std::env::var("WGCNN_TUNE") {
            Ok(v) if !v.trim().is_empty() => Tuning::parse(&v),
            _ if cfg!(target_arch = "wasm32") => Ok(Tuning::Off),
            _ => Ok(Tuning::Full),
        }
    }

    /// A `WGCNN_TUNE` value: `off`, `cached` or `full` (any case, surrounding blanks ignored).
    pub fn parse(v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Tuning::Off),
            "cached" => Ok(Tuning::Cached),
            "full" => Ok(Tuning::Full),
            _ => Err(Error::BadEnv { var: "WGCNN_TUNE", value: v.to_string(), expected: "off, cached or full".into() }),
        }
    }
}

/// Time a context may spend building and timing variants (a model's first steps on a new adapter)
/// unless `WGCNN_TUNE_BUDGET` says otherwise; shapes met after it is spent take their default
/// variant, and are timed by a later run. Building (compiling the variants' pipelines) is most of
/// it the first time: 2 s left most of LeNet-5's backward untuned on lavapipe.
pub const TUNE_BUDGET: Duration = Duration::from_secs(5);

/// `WGCNN_TUNE_BUDGET`: seconds (unset: [`TUNE_BUDGET`]).
pub fn tune_budget_from_env() -> Result<Duration> {
    match std::env::var("WGCNN_TUNE_BUDGET") {
        Ok(v) if !v.trim().is_empty() => parse_tune_budget(&v),
        _ => Ok(TUNE_BUDGET),
    }
}

/// A `WGCNN_TUNE_BUDGET` value: seconds, a number from 0 (`0` times nothing, like `cached`).
pub fn parse_tune_budget(v: &str) -> Result<Duration> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e6)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| Error::BadEnv {
            var: "WGCNN_TUNE_BUDGET",
            value: v.to_string(),
            expected: "seconds, a number from 0 (e.g. 5 or 0.5)".into(),
        })
}

/// How one launch was chosen, for reports (`wgcnn bench`, `scripts/gpu-check.sh`).
#[derive(Clone, Debug)]
pub struct TuneChoice {
    pub family: &'static str,
    /// The shape, as the cache keys it.
    pub shape: String,
    /// The chosen variant's name.
    pub variant: String,
    /// `default`, `cached`, `timed`, `forced` or `budget spent`.
    pub how: &'static str,
    /// Each timed variant's seconds per launch (timed choices only), in variant order: the best of
    /// its runs until it won or fell too far behind the leader to be timed again.
    pub timings: Vec<(String, f64)>,
}

const MAGIC: &str = "wgcnn-tune 1";

pub(crate) struct Tuner {
    pub(crate) mode: Tuning,
    path: Option<PathBuf>,
    /// Adapter, driver, backend and a digest of the kernels' sources: a file for anything else is
    /// stale.
    stamp: String,
    /// family + shape → variant name.
    known: HashMap<String, String>,
    spent: Duration,
    pub(crate) budget: Duration,
    pub(crate) choices: Vec<TuneChoice>,
}

/// A digest of every shader's source: variants of another build may differ.
fn kernels_digest() -> u64 {
    crate::kernels::ShaderFile::ALL
        .iter()
        .fold(crate::fsio::FNV_OFFSET, |h, f| crate::fsio::fnv1a(h, f.source().as_bytes()))
}

impl Tuner {
    pub(crate) fn new(mode: Tuning, info: &wgpu::AdapterInfo) -> Tuner {
        Tuner::in_folder(mode, info, crate::fsio::cache_folder("WGCNN_TUNE_CACHE", ""))
    }

    /// A tuner whose cache file lives in `folder` (`None`: no file).
    pub(crate) fn in_folder(mode: Tuning, info: &wgpu::AdapterInfo, folder: Option<PathBuf>) -> Tuner {
        let stamp = format!(
            "{} | {} | {} | {:?} | {:x} | kernels {:016x}",
            info.name,
            info.driver,
            info.driver_info,
            info.backend,
            info.device,
            kernels_digest()
        );
        let path = match mode {
            Tuning::Cached | Tuning::Full => folder.map(|d| {
                let h = crate::fsio::fnv1a(crate::fsio::FNV_OFFSET, stamp.as_bytes());
                d.join(format!("tune-{h:016x}.txt"))
            }),
            _ => None,
        };
        let mut t = Tuner {
            mode,
            path,
            stamp,
            known: HashMap::new(),
            spent: Duration::ZERO,
            budget: TUNE_BUDGET,
            choices: Vec::new(),
        };
        t.load();
        t
    }

    /// Read the cache file's choices; anything unexpected leaves the cache empty (never an error).
    fn load(&mut self) {
        let Some(path) = &self.path else { return };
        let Ok(text) = std::fs::read_to_string(path) else { return };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) || lines.next() != Some(self.stamp.as_str()) {
            log::warn!("tuning cache {}: not this adapter's, driver's or build's; ignored", path.display());
            return;
        }
        for line in lines {
            // family shape\tvariant
            if let Some((key, variant)) = line.split_once('\t') {
                if !key.is_empty() && !variant.is_empty() && !variant.contains('\t') {
                    self.known.insert(key.to_string(), variant.to_string());
                }
            }
        }
        log::info!("tuning cache {}: {} choices", path.display(), self.known.len());
    }

    fn save(&self) {
        let Some(path) = &self.path else { return };
        let mut keys: Vec<_> = self.known.iter().collect();
        keys.sort();
        let mut text = format!("{MAGIC}\n{}\n", self.stamp);
        for (k, v) in keys {
            text.push_str(&format!("{k}\t{v}\n"));
        }
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| crate::fsio::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string()));
        if let Err(e) = written {
            log::warn!("tuning cache {}: not saved: {e}", path.display());
        }
    }
}

/// Rounds in which every variant still in the running is timed once (the best of its runs is its
/// time).
const TUNE_ROUNDS: usize = 3;

/// A variant whose best time is this many times the leader's after a round is out of the running:
/// it cannot win, and timing it again would only spend the budget.
const PRUNE_AFTER_ROUND: f64 = 1.5;

/// The same for the first run of every variant ([`time_first`]), with more room.
const PRUNE_AFTER_FIRST: f64 = 2.0;

/// A leader slower than this per run has been measured precisely enough after two rounds; the third
/// is skipped. A variant's first run this long is its first timing.
const LONG_RUN: f64 = 0.02;

/// Seconds one run of `launch` takes: its first run's time where that is over [`LONG_RUN`] (one-off
/// costs are small beside it, and a second run would cost as much again), else a second run's.
fn time_first(ctx: &super::Context, launch: &Launch) -> Result<f64> {
    let cold = time_copies(ctx, launch, 1)?;
    if cold > LONG_RUN {
        return Ok(cold);
    }
    time_copies(ctx, launch, 1)
}

/// Seconds per copy of one submit of `copies` recordings of `launch` (enough for ~2 ms).
fn time_copies(ctx: &super::Context, launch: &Launch, copies: usize) -> Result<f64> {
    let batch: Vec<&Launch> = std::iter::repeat_n(launch, copies).collect();
    let t = Instant::now();
    ctx.run(&batch)?;
    ctx.wait()?;
    Ok(t.elapsed().as_secs_f64() / copies as f64)
}

/// One variant in the tuner's running: its index, launch, copies per timing run, best time so far
/// and whether it is still timed.
struct Contender {
    index: usize,
    launch: Launch,
    copies: usize,
    best: f64,
    timed: bool,
}

/// Takes out of the running every contender slower than `factor` times the fastest.
fn prune(runs: &mut [Contender], factor: f64) {
    let lead = runs.iter().filter(|r| r.timed).map(|r| r.best).fold(f64::INFINITY, f64::min);
    for r in runs.iter_mut().filter(|r| r.timed) {
        if r.best > lead * factor {
            r.timed = false;
        }
    }
}

/// The rounds after the first run: how many, given the leader's time per run.
fn rounds_for(lead: f64) -> usize {
    if lead > LONG_RUN {
        TUNE_ROUNDS - 1
    } else {
        TUNE_ROUNDS
    }
}

impl super::Context {
    /// The tuning mode of this context.
    pub fn tuning(&self) -> Tuning {
        self.tuner.lock().unwrap_or_else(|e| e.into_inner()).mode
    }

    /// Change how launches built from now on choose their variant (tests, `wgcnn bench`); the cache
    /// file is `WGCNN_TUNE_CACHE`'s, as at creation.
    pub fn set_tuning(&self, mode: Tuning) {
        self.set_tuning_in(mode, crate::fsio::cache_folder("WGCNN_TUNE_CACHE", ""));
    }

    /// [`Context::set_tuning`] with the cache file in `folder` (`None`: choices kept in memory only).
    pub fn set_tuning_in(&self, mode: Tuning, folder: Option<PathBuf>) {
        let mut t = self.tuner.lock().unwrap_or_else(|e| e.into_inner());
        let (choices, budget) = (std::mem::take(&mut t.choices), t.budget);
        *t = Tuner::in_folder(mode, &self.info, folder);
        t.choices = choices;
        t.budget = budget;
    }

    /// The tuning cache file of this context, where it has one.
    pub fn tuning_file(&self) -> Option<PathBuf> {
        self.tuner.lock().unwrap_or_else(|e| e.into_inner()).path.clone()
    }

    /// How every tuned launch built on this context so far was chosen.
    pub fn tune_choices(&self) -> Vec<TuneChoice> {
        self.tuner.lock().unwrap_or_else(|e| e.into_inner()).choices.clone()
    }

    /// The launch of one of `variants` (names; the first is the default), built by `build(i)`, chosen
    /// as [`Tuning`] says. Every variant must give the same bits.
    pub(crate) fn tuned(
        &self,
        family: &'static str,
        shape: String,
        variants: &[String],
        build: impl Fn(usize) -> Result<Launch>,
    ) -> Result<Launch> {
        let n = variants.len();
        if n <= 1 {
            return build(0);
        }
        // The variants offered are part of the key: a build that offers others (a layout added in
        // Rust, the shaders unchanged) times the shape again instead of keeping an older choice.
        let offered =
            variants.iter().fold(crate::fsio::FNV_OFFSET, |h, v| crate::fsio::fnv1a(h, format!("{v}|").as_bytes()));
        let key = format!("{family} {shape} among {:08x}", offered as u32);
        let (mode, known, spent, budget) = {
            let t = self.tuner.lock().unwrap_or_else(|e| e.into_inner());
            (t.mode, t.known.get(&key).cloned(), t.spent, t.budget)
        };
        let record = |variant: usize, how: &'static str, timings: Vec<(String, f64)>| {
            let mut t = self.tuner.lock().unwrap_or_else(|e| e.into_inner());
            t.choices.push(TuneChoice {
                family,
                shape: shape.clone(),
                variant: variants[variant].clone(),
                how,
                timings,
            });
        };
        let pick = match mode {
            Tuning::Off => Some((0, "default")),
            Tuning::Force(i) => Some((i % n, "forced")),
            Tuning::Cached | Tuning::Full => match known.and_then(|v| variants.iter().position(|x| *x == v)) {
                Some(i) => Some((i, "cached")),
                None if mode == Tuning::Cached => Some((0, "default")),
                None if spent >= budget => Some((0, "budget spent")),
                None => None,
            },
        };
        if let Some((i, how)) = pick {
            record(i, how, Vec::new());
            return build(i);
        }
        let start = Instant::now();
        // Every variant built and run once first, then the ones that can still win timed in rounds
        // (each round times each of them once), so that a burst of load on a shared machine slows
        // one round of all of them rather than every run of one. A variant far behind the leader
        // after a round is timed no more: on a slow adapter most of the budget went to runs of
        // variants that had already lost.
        let mut runs: Vec<Contender> = Vec::with_capacity(n);
        for (i, name) in variants.iter().enumerate() {
            // A variant that cannot be built or run here is left out (logged), never fatal.
            match build(i).and_then(|launch| Ok((time_first(self, &launch)?, launch))) {
                Ok((once, launch)) => {
                    let copies = ((2e-3 / once.max(1e-6)) as usize).clamp(1, 32);
                    runs.push(Contender { index: i, launch, copies, best: once, timed: true });
                }
                Err(e) => log::warn!("tuning {family} {shape}: variant {name} left out: {e}"),
            }
        }
        // A first run over LONG_RUN was timed once, cold: on a software adapter that run also
        // compiles the kernel (lavapipe compiles a pipeline's machine code at its first dispatch,
        // 0.1-0.3 s for the largest unrolled conv kernels), so a variant that fast kernels would
        // lose to on compile time alone is timed once more, warm, before it can be pruned.
        let lead = runs.iter().map(|r| r.best).fold(f64::INFINITY, f64::min);
        for r in runs.iter_mut().filter(|r| r.best > LONG_RUN && r.best > lead * PRUNE_AFTER_FIRST) {
            match time_copies(self, &r.launch, 1) {
                Ok(warm) if warm < r.best => {
                    r.best = warm;
                    r.copies = ((2e-3 / warm.max(1e-6)) as usize).clamp(1, 32);
                }
                Ok(_) => {}
                Err(e) => log::warn!("tuning {family} {shape}: a timing run failed: {e}"),
            }
        }
        prune(&mut runs, PRUNE_AFTER_FIRST);
        let lead = runs.iter().map(|r| r.best).fold(f64::INFINITY, f64::min);
        for _ in 0..rounds_for(lead) {
            for r in runs.iter_mut().filter(|r| r.timed) {
                match time_copies(self, &r.launch, r.copies) {
                    Ok(secs) => r.best = r.best.min(secs),
                    Err(e) => log::warn!("tuning {family} {shape}: a timing run failed: {e}"),
                }
            }
            prune(&mut runs, PRUNE_AFTER_ROUND);
        }
        let timings: Vec<(String, f64)> = runs.iter().map(|r| (variants[r.index].clone(), r.best)).collect();
        let best = runs.into_iter().min_by(|a, b| a.best.total_cmp(&b.best)).map(|r| (r.best, r.index, r.launch));
        let Some((_, i, launch)) = best else {
            // None ran: the default, whose error (if it has one) is the caller's.
            record(0, "default", timings);
            return build(0);
        };
        {
            let mut t = self.tuner.lock().unwrap_or_else(|e| e.into_inner());
            t.spent += start.elapsed();
            t.known.insert(key, variants[i].clone());
            t.save();
        }
        log::info!(
            "tuned {family} {shape} in {:.0} ms: {} ({timings:?})",
            start.elapsed().as_secs_f64() * 1e3,
            variants[i]
        );
        record(i, "timed", timings);
        Ok(launch)
    }
}
