//! Measurement helpers behind `wgcnn bench` and `benches/step.rs`: training and inference
//! throughput timed with the GPU waited on, per-launch times from timestamp queries (or the CPU clock
//! where the adapter has none), peak host memory and process age.

use std::time::Instant;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::kernels::Launch;
use crate::train::{Evaluator, Trainer};

/// Images per second of each timed window, and their median.
#[derive(Clone, Debug)]
pub struct Throughput {
    pub windows: Vec<f64>,
    pub median: f64,
}

/// The median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => 0.0,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

impl Throughput {
    fn new(windows: Vec<f64>) -> Throughput {
        Throughput { median: median(&windows), windows }
    }
}

/// Train `warmup` steps, then `windows` windows of `steps` full-batch steps each; every window's clock
/// stops after the GPU has finished. The weights change as in real training.
pub fn time_training(
    ctx: &Context,
    trainer: &mut Trainer,
    warmup: usize,
    windows: usize,
    steps: usize,
) -> Result<Throughput> {
    Ok(time_training_beside(ctx, trainer, warmup, windows, steps, None)?.0)
}

/// [`time_training`], and where `ceiling` is given, one run of it right after each window: the
/// adapter's ceiling as it was while that window ran (GFLOP/s, one per window). A shared machine
/// whose speed swings within minutes (the development machine's by up to 1.7×) then gives each
/// window a ratio to a ceiling measured under the same load.
pub fn time_training_beside(
    ctx: &Context,
    trainer: &mut Trainer,
    warmup: usize,
    windows: usize,
    steps: usize,
    ceiling: Option<&CeilingProbe>,
) -> Result<(Throughput, Vec<f64>)> {
    let full = trainer.full_steps();
    if full == 0 {
        return Err(Error::Train(format!(
            "the training set is smaller than one batch of {}: nothing to time",
            trainer.batch_size
        )));
    }
    trainer.start_epoch(ctx, None)?;
    let mut i = 0usize;
    let mut next = || {
        let s = i % full;
        i += 1;
        s
    };
    for _ in 0..warmup {
        trainer.step(ctx, next())?;
    }
    ctx.wait()?;
    let (mut rates, mut ceilings) = (Vec::new(), Vec::new());
    for _ in 0..windows {
        let t = Instant::now();
        for _ in 0..steps {
            trainer.step(ctx, next())?;
        }
        ctx.wait()?;
        rates.push((steps * trainer.batch_size) as f64 / t.elapsed().as_secs_f64().max(1e-9));
        if let Some(c) = ceiling {
            ceilings.push(c.time_once(ctx)?);
        }
    }
    ctx.check_device_error()?;
    Ok((Throughput::new(rates), ceilings))
}

/// Forward passes over the evaluator's whole set (one readback at the end of each), `windows` times
/// after one warm-up pass.
pub fn time_inference(ctx: &Context, eval: &Evaluator, windows: usize) -> Result<Throughput> {
    let n = eval.run(ctx)?.count;
    let mut rates = Vec::new();
    for _ in 0..windows {
        let t = Instant::now();
        eval.run(ctx)?;
        rates.push(n as f64 / t.elapsed().as_secs_f64().max(1e-9));
    }
    Ok(Throughput::new(rates))
}

/// How per-launch times were taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimingSource {
    /// GPU timestamp queries around each launch (its own compute pass), all launches in one submit.
    Timestamps,
    /// The CPU clock around repeated submits of each launch alone (adapters without timestamps).
    CpuClock,
}

/// One launch's time.
#[derive(Clone, Debug)]
pub struct LaunchTime {
    pub label: String,
    pub kernel: &'static str,
    pub dispatches: usize,
    pub seconds: f64,
    pub flops: u64,
    pub bytes: u64,
}

/// Median time of each launch over `repeats` recordings.
pub fn profile_launches(
    ctx: &Context,
    launches: &[&Launch],
    repeats: usize,
) -> Result<(TimingSource, Vec<LaunchTime>)> {
    let repeats = repeats.max(1);
    let n = launches.len();
    let timestamps = ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) && n > 0 && 2 * n <= 4096;
    let mut samples = vec![Vec::with_capacity(repeats); n];
    let source = if timestamps {
        let count = 2 * n as u32;
        let _serial = ctx.serial();
        let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgcnn.profile"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let size = 8 * u64::from(count);
        let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgcnn.profile.resolve"),
            size,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let period = f64::from(ctx.queue.get_timestamp_period()) * 1e-9;
        for _ in 0..repeats + 1 {
            let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
            for (i, l) in launches.iter().enumerate() {
                l.record_timed(&mut enc, &queries, 2 * i as u32);
            }
            enc.resolve_query_set(&queries, 0..count, &resolved, 0);
            ctx.queue.submit([enc.finish()]);
            ctx.check_device_error()?;
            let bytes = ctx.read_bytes(&resolved, size)?;
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes); // Vec<u8> need not be 8-aligned
            for (i, s) in samples.iter_mut().enumerate() {
                s.push(ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period);
            }
        }
        // The first recording warms caches; drop it.
        for s in &mut samples {
            s.remove(0);
        }
        TimingSource::Timestamps
    } else {
        for (l, s) in launches.iter().zip(&mut samples) {
            ctx.run(&[l])?;
            ctx.wait()?;
            for _ in 0..repeats {
                let t = Instant::now();
                ctx.run(&[l])?;
                ctx.wait()?;
                s.push(t.elapsed().as_secs_f64());
            }
        }
        TimingSource::CpuClock
    };
    let rows = launches
        .iter()
        .zip(&samples)
        .map(|(l, s)| LaunchTime {
            label: l.label.clone(),
            kernel: l.kernel.entry_point(),
            dispatches: l.dispatches(),
            seconds: median(s),
            flops: l.flops,
            bytes: l.bytes,
        })
        .collect();
    Ok((source, rows))
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), when the OS tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Seconds since this process started (Linux: from `/proc`, 10 ms resolution), when the OS tells.
pub fn process_age() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let start_ticks: f64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime").ok()?.split_whitespace().next()?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture wgcnn targets.
    Some((uptime - start_ticks / 100.0).max(0.0))
}

/// The adapter's ceiling as wgcnn measures it: GFLOP/s of the best matrix product it has for this
/// adapter (`linear_forward_auto`: the register-blocked or tiled kernel, the plain one with
/// `WGCNN_KERNELS=plain`) on `side`³ (`side` × `side` inputs times a `side` × `side` weight), one
/// untimed run, then `runs` runs each timed to the GPU's finish; the median is reported.
pub fn time_ceiling(ctx: &Context, side: usize, runs: usize) -> Result<Throughput> {
    let probe = CeilingProbe::new(ctx, side)?;
    let rates = (0..runs.max(1)).map(|_| probe.time_once(ctx)).collect::<Result<Vec<f64>>>()?;
    Ok(Throughput::new(rates))
}

/// The ceiling's product, built (and run once) to be timed whenever asked: [`time_ceiling`], and
/// between training windows ([`time_training_beside`]).
pub struct CeilingProbe {
    launch: crate::kernels::Launch,
    flops: f64,
    _buffers: [crate::tensor::Tensor; 4],
}

impl CeilingProbe {
    /// Build the `side`³ product and run it once, untimed.
    pub fn new(ctx: &Context, side: usize) -> Result<CeilingProbe> {
        use crate::shape::LinearGeom;
        use crate::tensor::{DType, Tensor};
        let g = LinearGeom { n: side, in_f: side, out_f: side };
        let mut rng = crate::rng::Rng::new(1);
        let x = Tensor::from_f32(ctx, "ceiling.x", &[side, side], &rng.vec_f32(g.x_len(), -1.0, 1.0))?;
        let w = Tensor::from_f32(ctx, "ceiling.w", &[side, side], &rng.vec_f32(g.w_len(), -1.0, 1.0))?;
        let b = Tensor::zeros(ctx, "ceiling.b", &[side], DType::F32)?;
        let y = Tensor::zeros(ctx, "ceiling.y", &[side, side], DType::F32)?;
        let launch = crate::kernels::matmul::linear_forward_auto(ctx, "ceiling", &g, &x, &w, &b, &y, false)?;
        ctx.run(&[&launch])?;
        ctx.wait()?;
        Ok(CeilingProbe { launch, flops: 2.0 * (side as f64).powi(3), _buffers: [x, w, b, y] })
    }

    /// GFLOP/s of one run, timed to the GPU's finish.
    pub fn time_once(&self, ctx: &Context) -> Result<f64> {
        let t = Instant::now();
        ctx.run(&[&self.launch])?;
        ctx.wait()?;
        Ok(self.flops / t.elapsed().as_secs_f64().max(1e-9) * 1e-9)
    }
}
