//! `wgcnn bench`: training images/s of a model at each batch size, inference images/s, time to the
//! first finished step, peak memory, and a per-kernel table (see [`crate::bench`] for the timing).

use std::path::PathBuf;

use serde::Serialize;

use crate::bench::{
    median, peak_rss_bytes, process_age, profile_launches, time_ceiling, time_inference, time_training_beside,
    CeilingProbe, TimingSource,
};
use crate::context::Context;
use crate::data;
use crate::error::{Error, Result};
use crate::graph::Params;
use crate::kernels::optim::Sgd;
use crate::model::{init_params, ModelSpec};
use crate::train::{Evaluator, Optimizer, Trainer};

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub data: PathBuf,
    pub model: ModelSpec,
    pub batch_sizes: Vec<usize>,
    /// Untimed steps before the windows.
    pub warmup: usize,
    /// Timed windows per batch size (the median is reported).
    pub windows: usize,
    /// Training steps per window.
    pub steps: usize,
    pub infer_batch: usize,
    /// Recordings of one step for the per-kernel table (0: no table).
    pub profile: usize,
    /// Augmentation of the training pictures (its cost shows in the gather's row of the table).
    pub augment: data::Augment,
    /// Side of the square product timed as the adapter's ceiling ([`CEILING_SIDE`]; 0: not measured).
    pub ceiling_side: usize,
}

/// The side of the product `wgcnn bench` times as the adapter's ceiling: 1024³.
pub const CEILING_SIDE: usize = 1024;

/// What `wgcnn bench --ceiling` prints: the adapter's best matrix product.
#[derive(Clone, Debug, Serialize)]
pub struct Ceiling {
    pub adapter: String,
    pub kernels: String,
    /// The product timed: `side`³ (2·side³ floating-point operations).
    pub side: usize,
    pub gflops: f64,
    /// Each timed run's GFLOP/s.
    pub runs: Vec<f64>,
    pub tuning: String,
    /// How the product's variant was chosen.
    pub tuned: Vec<TunedRow>,
}

/// Time the adapter's ceiling alone (`wgcnn bench --ceiling`): the median of `runs` runs.
pub fn ceiling(side: usize, runs: usize) -> Result<Ceiling> {
    let ctx = Context::new()?;
    let t = time_ceiling(&ctx, side, runs)?;
    Ok(Ceiling {
        adapter: ctx.info.name.clone(),
        kernels: format!("{:?}", ctx.kernels),
        side,
        gflops: t.median,
        runs: t.windows,
        tuning: format!("{:?}", ctx.tuning()).to_lowercase(),
        tuned: tuned_rows(&ctx),
    })
}

impl BenchOptions {
    /// A tiny run for CI: batch 8, one window of 2 steps, inference batch 100.
    pub fn smoke(&mut self) {
        (self.batch_sizes, self.warmup, self.windows, self.steps, self.infer_batch) = (vec![8], 1, 1, 2, 100);
        self.ceiling_side = self.ceiling_side.min(128);
        self.profile = self.profile.min(1);
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainingRow {
    pub batch: usize,
    pub images_per_sec: f64,
    pub windows: Vec<f64>,
    pub dispatches_per_step: usize,
    pub submits_per_step: usize,
    pub flops_per_image: f64,
    pub gflops: f64,
    /// The ceiling's GFLOP/s timed right after each window (empty when it was not measured).
    pub ceilings: Vec<f64>,
    /// The median over windows of the window's GFLOP/s over the ceiling timed right after it (null
    /// when the ceiling was not measured).
    pub ceiling_fraction: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct InferenceRow {
    pub batch: usize,
    pub images_per_sec: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub launch: String,
    pub kernel: &'static str,
    pub dispatches: usize,
    pub ms: f64,
    pub share: f64,
    pub gflops: f64,
    pub gbytes_per_sec: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelTable {
    pub batch: usize,
    /// `timestamps` (GPU timestamp queries) or `cpu_clock` (each launch alone).
    pub source: &'static str,
    pub total_ms: f64,
    pub launches: Vec<KernelRow>,
}

/// What `wgcnn bench --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub adapter: String,
    pub backend: String,
    pub kernels: String,
    pub model: String,
    pub data: String,
    pub training: Vec<TrainingRow>,
    pub inference: InferenceRow,
    pub first_step_seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub gpu_bytes_allocated: u64,
    pub per_kernel: Option<KernelTable>,
    /// The adapter's ceiling: GFLOP/s of its best `ceiling_side`³ product (0: not measured).
    pub ceiling_side: usize,
    pub ceiling_gflops: f64,
    /// `WGCNN_TUNE`'s mode and how each tuned launch (the model's, then the ceiling's) was chosen.
    pub tuning: String,
    pub tuned: Vec<TunedRow>,
}

/// One tuned launch of a bench run (see `context/tune.rs`).
#[derive(Clone, Debug, Serialize)]
pub struct TunedRow {
    pub family: &'static str,
    pub shape: String,
    pub variant: String,
    /// `default`, `cached`, `timed`, `forced` or `budget spent`.
    pub how: &'static str,
}

/// The context's tuned launches as report rows.
pub fn tuned_rows(ctx: &Context) -> Vec<TunedRow> {
    ctx.tune_choices()
        .into_iter()
        .map(|t| TunedRow { family: t.family, shape: t.shape, variant: t.variant, how: t.how })
        .collect()
}

/// One line on the tuned launches: the mode, each chosen variant with its count, and how they were
/// chosen.
pub fn render_tuning(mode: &str, rows: &[TunedRow]) -> String {
    let mut variants: Vec<(String, usize)> = Vec::new();
    let mut hows: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        let v = format!("{} {}", r.family, r.variant);
        match variants.iter_mut().find(|(n, _)| *n == v) {
            Some(e) => e.1 += 1,
            None => variants.push((v, 1)),
        }
        match hows.iter_mut().find(|(n, _)| *n == r.how) {
            Some(e) => e.1 += 1,
            None => hows.push((r.how, 1)),
        }
    }
    let list = |v: Vec<String>| if v.is_empty() { "none".to_string() } else { v.join(", ") };
    format!(
        "tuning    {mode} (WGCNN_TUNE): {} launches: {}; chosen {}\n",
        rows.len(),
        list(variants.into_iter().map(|(v, n)| format!("{v} ×{n}")).collect()),
        list(hows.into_iter().map(|(h, n)| format!("{h} {n}")).collect())
    )
}

fn kernel_table(batch: usize, source: TimingSource, times: &[crate::bench::LaunchTime]) -> KernelTable {
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let per = |v: u64, t: f64| v as f64 / t.max(1e-12) * 1e-9;
    KernelTable {
        batch,
        source: if source == TimingSource::Timestamps { "timestamps" } else { "cpu_clock" },
        total_ms: total * 1e3,
        launches: times
            .iter()
            .map(|t| KernelRow {
                launch: t.label.clone(),
                kernel: t.kernel,
                dispatches: t.dispatches,
                ms: t.seconds * 1e3,
                share: t.seconds / total.max(1e-12),
                gflops: per(t.flops, t.seconds),
                gbytes_per_sec: per(t.bytes, t.seconds),
            })
            .collect(),
    }
}

/// Time `opts.model`; `progress` gets a line per finished batch size.
pub fn run(opts: &BenchOptions, progress: &mut dyn FnMut(String)) -> Result<BenchReport> {
    let t_main = std::time::Instant::now();
    let age_at_start = process_age().unwrap_or(0.0);
    if opts.batch_sizes.is_empty() || opts.batch_sizes.contains(&0) {
        return Err(Error::Train("--batch-sizes needs sizes of at least 1".into()));
    }
    if opts.windows == 0 || opts.steps == 0 {
        return Err(Error::Train("--windows and --steps must be at least 1".into()));
    }
    let splits = data::load_splits(&opts.data, &data::LoadOptions::new(opts.model.input), &mut |_| {})?;
    let (train_set, test_set) = (splits.train, splits.test);
    let prep = data::Preparation::of(opts.model.input, splits.kind, &train_set, &data::Normalize::Auto)?;
    let ctx = Context::new()?;
    let spec = &opts.model;
    let init = init_params(&spec.params(), 1);
    let opt = Optimizer::Sgd(Sgd { lr: 0.01, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false });
    let (mut training, mut first_step, mut profile) = (Vec::new(), None, None);
    let mut probe = None;
    for &batch in &opts.batch_sizes {
        let mut trainer = Trainer::new(&ctx, spec.clone(), &train_set, batch, opt, &init)?;
        trainer.set_preparation(&ctx, prep.clone(), opts.augment)?;
        if first_step.is_none() {
            trainer.start_epoch(&ctx, None)?;
            trainer.step(&ctx, 0)?;
            ctx.wait()?;
            first_step = Some(age_at_start + t_main.elapsed().as_secs_f64());
        }
        // The ceiling's product is built after the first step (whose time is the model's alone), and
        // timed after each window.
        if probe.is_none() && opts.ceiling_side > 0 {
            probe = Some(CeilingProbe::new(&ctx, opts.ceiling_side)?);
        }
        let (throughput, ceilings) =
            time_training_beside(&ctx, &mut trainer, opts.warmup, opts.windows, opts.steps, probe.as_ref())?;
        let launches = trainer.step_launches();
        let flops_per_image = launches.iter().map(|l| l.flops).sum::<u64>() as f64 / trainer.batch_size as f64;
        let fractions: Vec<f64> =
            throughput.windows.iter().zip(&ceilings).map(|(r, c)| r * flops_per_image * 1e-9 / c.max(1e-12)).collect();
        if profile.is_none() && opts.profile > 0 {
            let (source, times) = profile_launches(&ctx, &launches, opts.profile)?;
            profile = Some(kernel_table(trainer.batch_size, source, &times));
        }
        let row = TrainingRow {
            batch: trainer.batch_size,
            images_per_sec: throughput.median,
            dispatches_per_step: trainer.dispatches_per_step(),
            submits_per_step: 1,
            flops_per_image,
            gflops: throughput.median * flops_per_image * 1e-9,
            windows: throughput.windows,
            ceiling_fraction: (!fractions.is_empty()).then(|| median(&fractions)),
            ceilings,
        };
        progress(format!(
            "training  batch {:>4}: {:>8.1} images/s (median of {} windows of {} steps), {:.2} GFLOP/s",
            row.batch, row.images_per_sec, opts.windows, opts.steps, row.gflops
        ));
        training.push(row);
    }
    let params = Params::new(&ctx, spec)?;
    params.values.write(&ctx, &init)?;
    let evaluator = Evaluator::prepared(&ctx, spec, &params, &test_set, opts.infer_batch, &prep.transform())?;
    let infer = time_inference(&ctx, &evaluator, opts.windows)?;
    let gpu_bytes_allocated = ctx.bytes_allocated();
    // The ceiling: the median of its runs beside the training windows.
    let all: Vec<f64> = training.iter().flat_map(|r| r.ceilings.iter().copied()).collect();
    let ceiling_gflops = if all.is_empty() { 0.0 } else { median(&all) };
    if ceiling_gflops > 0.0 {
        progress(format!(
            "ceiling   {:.2} GFLOP/s: the adapter's best {s}x{s}x{s} product (wgcnn bench --ceiling), the median of \
             {} runs, one after each training window ({:.2}-{:.2})",
            ceiling_gflops,
            all.len(),
            all.iter().copied().fold(f64::MAX, f64::min),
            all.iter().copied().fold(0.0, f64::max),
            s = opts.ceiling_side
        ));
    }
    Ok(BenchReport {
        adapter: ctx.info.name.clone(),
        backend: format!("{:?}", ctx.info.backend),
        kernels: format!("{:?}", ctx.kernels),
        model: spec.name.clone(),
        data: opts.data.display().to_string(),
        training,
        inference: InferenceRow { batch: evaluator.batch, images_per_sec: infer.median },
        first_step_seconds: first_step.unwrap_or(0.0),
        peak_rss_bytes: peak_rss_bytes(),
        gpu_bytes_allocated,
        per_kernel: profile,
        ceiling_side: opts.ceiling_side,
        ceiling_gflops,
        tuning: format!("{:?}", ctx.tuning()).to_lowercase(),
        tuned: tuned_rows(&ctx),
    })
}

/// The report as the text `wgcnn bench` prints after its progress lines.
pub fn render(r: &BenchReport) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut s = format!("inference batch {:>4}: {:>8.1} images/s\n", r.inference.batch, r.inference.images_per_sec);
    s += &format!(
        "first step finished {:.2} s after process start (adapter, data, graph, shader compilation)\n",
        r.first_step_seconds
    );
    let rss = r.peak_rss_bytes.map_or("unknown".to_string(), |b| format!("{:.1} MiB", mib(b)));
    s += &format!("memory    peak RSS {rss}, GPU buffers {:.1} MiB\n", mib(r.gpu_bytes_allocated));
    s += &render_tuning(&r.tuning, &r.tuned);
    for t in &r.training {
        let share = t.ceiling_fraction.map_or(String::new(), |f| {
            format!(
                ", {:.2} GFLOP/s = {:.0} % of the ceiling (the median of each window's ratio to the ceiling run after it)",
                t.gflops,
                100.0 * f
            )
        });
        s += &format!(
            "          batch {:>4}: {} dispatches and 1 submit per step{share}\n",
            t.batch, t.dispatches_per_step
        );
    }
    if let Some(k) = &r.per_kernel {
        let how = if k.source == "timestamps" { "GPU timestamp queries" } else { "CPU clock, each launch alone" };
        s += &format!("per-kernel time of one batch-{} step ({how}):\n", k.batch);
        s += &format!("  {:<22} {:<25} {:>9} {:>7} {:>14}\n", "launch", "kernel", "ms", "share", "achieved");
        for t in &k.launches {
            let achieved = if t.gflops > 0.0 {
                format!("{:.2} GFLOP/s", t.gflops)
            } else if t.gbytes_per_sec > 0.0 {
                format!("{:.2} GB/s", t.gbytes_per_sec)
            } else {
                "-".to_string()
            };
            s += &format!(
                "  {:<22} {:<25} {:>9.3} {:>6.1}% {achieved:>14}\n",
                t.launch,
                t.kernel,
                t.ms,
                100.0 * t.share
            );
        }
        s += &format!("  {:<22} {:<25} {:>9.3}\n", "total", "", k.total_ms);
    }
    s
}
