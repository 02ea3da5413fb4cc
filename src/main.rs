//! The `wgcnn` command line: thin — parse arguments, call the library, turn errors into a message
//! and an exit code.

use std::process::ExitCode;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use wgcnn::checkpoint;
use wgcnn::data::{self, Split};
use wgcnn::digits;
use wgcnn::kernels::activation::Activation;
use wgcnn::kernels::loss::LossKind;
use wgcnn::kernels::optim::{Adam, Sgd};
use wgcnn::kernels::pool::PoolKind;
use wgcnn::model::{init_params, lenet5, LeNetConfig};
use wgcnn::train::{fit, Evaluator, Event, Optimizer, Schedule, Summary, TrainConfig, Trainer};
use wgcnn::Context;

#[derive(Parser)]
#[command(name = "wgcnn", version, about = "A CNN engine whose every computation runs in WGSL compute shaders")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the selected GPU adapter, the limits that matter and the optional features.
    ///
    /// Select another adapter with WGCNN_ADAPTER=software|hardware|<name substring> and restrict
    /// backends with WGPU_BACKEND=vulkan,metal,dx12.
    Info,
    /// Train LeNet-5 on MNIST-format data (default: the bundled 10,000-digit MNIST sample).
    Train(TrainArgs),
    /// Accuracy and loss of a saved model on the t10k-* files of a data folder.
    Eval(EvalArgs),
    /// Classify PNG/JPEG pictures of digits with a saved model.
    ///
    /// Each picture is converted to grey; when its border is lighter than mid-grey (dark ink on white
    /// paper) it is inverted to MNIST's white-on-black; the ink's bounding box is scaled to 20x20 and
    /// centred in 28x28, as MNIST was prepared. 28x28 pictures are used as they are (after inversion).
    Predict(PredictArgs),
    /// Headless benchmark: LeNet-5 training images/s at each batch size, inference images/s, time to
    /// the first finished step, peak memory, and a per-kernel table from GPU timestamp queries.
    ///
    /// Every timed window stops its clock after the GPU has finished. Compare kernel sets on one
    /// machine with WGCNN_KERNELS=plain|fast.
    Bench(BenchArgs),
    /// Run the article's classic 3x3 filters (identity, three edge detectors, sharpen, box and Gaussian
    /// blur) through the GPU conv2d kernel on a picture, plus ReLU and 2x2 max/average pooling of an edge
    /// map, and write the results as PNGs.
    ///
    /// Pictures are converted to grey; a longer side past 512 pixels is scaled down to 512 first.
    Filters(FiltersArgs),
    /// Pictures of what a trained LeNet-5 sees for one input: its conv filters, the feature maps after
    /// every conv, activation and pool layer, the fully connected activations, the class probabilities,
    /// and one overview.
    Visualize(VisualizeArgs),
}

#[derive(clap::Args)]
struct FiltersArgs {
    /// A PNG or JPEG picture (any size)
    image: PathBuf,
    /// Folder for the PNGs (created if missing)
    #[arg(long, default_value = "wgcnn-filters")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct VisualizeArgs {
    /// The model checkpoint (safetensors)
    #[arg(long)]
    model: PathBuf,
    /// A PNG or JPEG digit (prepared as for `predict`) [default: the first test digit of --data]
    image: Option<PathBuf>,
    /// Folder with t10k-* IDX files for the default image [default: the bundled MNIST sample]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder for the PNGs (created if missing)
    #[arg(long, default_value = "wgcnn-visualize")]
    out: PathBuf,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Folder with train-* and t10k-* IDX files [default: the bundled MNIST sample]
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training batch sizes to time, comma-separated
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256])]
    batch_sizes: Vec<usize>,
    /// Untimed steps before the windows (pipelines compiled, caches warm)
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed windows per batch size (the median is reported)
    #[arg(long, default_value_t = 5)]
    windows: usize,
    /// Training steps per window
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Inference batch size (forward passes over the test files)
    #[arg(long, default_value_t = 1000)]
    infer_batch: usize,
    /// Recordings of one step for the per-kernel table (median per kernel); 0 skips the table
    #[arg(long, default_value_t = 5)]
    profile: usize,
    /// A tiny run for CI: batch 8, one window of 2 steps, inference batch 100
    #[arg(long)]
    smoke: bool,
    /// Print one JSON object on stdout
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct PredictArgs {
    /// The model checkpoint (safetensors)
    #[arg(long)]
    model: PathBuf,
    /// Pictures to classify
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Print one JSON array on stdout
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ActArg {
    Relu,
    Tanh,
    Sigmoid,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PoolArg {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LossArg {
    /// Cross-entropy of softmax, mean over the batch.
    Xent,
    /// The article's squared error ½Σ(target − softmax)², mean over the batch.
    Mse,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OptArg {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum ScheduleArg {
    /// Cosine from --lr down to 0 over the run's steps
    Cosine,
    /// Multiply by --lr-decay after every epoch
    Step,
    /// Keep --lr
    Constant,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Folder with train-* and t10k-* IDX files (.gz or raw) [default: the bundled MNIST sample]
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate [default: 0.05 for sgd, 0.001 for adam]
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule over the run
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    schedule: ScheduleArg,
    /// With --schedule step: multiply the learning rate by this after every epoch (PyTorch's StepLR)
    #[arg(long, default_value_t = 0.7)]
    lr_decay: f64,
    /// SGD momentum
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Nesterov momentum (SGD)
    #[arg(long)]
    nesterov: bool,
    /// L2 penalty added to the gradient, as torch.optim's weight_decay
    #[arg(long, default_value_t = 1e-3)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value_t = OptArg::Sgd)]
    optimizer: OptArg,
    #[arg(long, value_enum, default_value_t = ActArg::Relu)]
    activation: ActArg,
    #[arg(long, value_enum, default_value_t = PoolArg::Max)]
    pool: PoolArg,
    #[arg(long, value_enum, default_value_t = LossArg::Xent)]
    loss: LossArg,
    /// Seed of the initialisation and the shuffling
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Save the model here (safetensors; optimizer state goes to NAME.optim.safetensors)
    #[arg(long)]
    save: Option<PathBuf>,
    /// Start from this checkpoint (and its optimizer state, when saved beside it)
    #[arg(long)]
    init: Option<PathBuf>,
    /// Stop after this many steps in total
    #[arg(long)]
    steps: Option<usize>,
    /// Keep the files' order instead of shuffling every epoch
    #[arg(long)]
    no_shuffle: bool,
    /// Read loss and accuracy back every this many steps
    #[arg(long, default_value_t = 20)]
    log_every: usize,
    /// Draw loss and accuracy per logged step and per epoch into this PNG when training ends
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of text
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The model checkpoint (safetensors)
    #[arg(long)]
    model: PathBuf,
    /// Folder with t10k-* IDX files [default: the bundled MNIST sample]
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Print one JSON object on stdout
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
        Command::Train(a) => train(a),
        Command::Eval(a) => eval(a),
        Command::Predict(a) => predict(a),
        Command::Bench(a) => bench(a),
        Command::Filters(a) => filters(a),
        Command::Visualize(a) => visualize(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> wgcnn::Result<()> {
    let ctx = Context::new()?;
    let i = &ctx.info;
    let l = &ctx.limits;
    let f = ctx.adapter_features();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("adapter      {}", i.name);
    println!("backend      {:?}", i.backend);
    println!("device type  {:?}{}", i.device_type, if ctx.is_software() { " (software)" } else { "" });
    println!("driver       {} {}", i.driver, i.driver_info);
    println!("limits (as requested from the adapter)");
    println!("  max_buffer_size                      {:.0} MiB", mib(l.max_buffer_size));
    println!("  max_storage_buffer_binding_size      {:.0} MiB", mib(l.max_storage_buffer_binding_size));
    println!("  max_storage_buffers_per_shader_stage {}", l.max_storage_buffers_per_shader_stage);
    println!("  max_compute_workgroups_per_dimension {}", l.max_compute_workgroups_per_dimension);
    println!("  max_compute_invocations_per_workgroup {}", l.max_compute_invocations_per_workgroup);
    println!("  max_compute_workgroup_storage_size   {} KiB", l.max_compute_workgroup_storage_size / 1024);
    println!("  min_storage_buffer_offset_alignment  {}", l.min_storage_buffer_offset_alignment);
    println!("optional features");
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("  timestamp queries  {}", yes(f.contains(wgpu::Features::TIMESTAMP_QUERY)));
    println!("  shader f16         {}", yes(f.contains(wgpu::Features::SHADER_F16)));
    println!("  subgroups          {}", yes(f.contains(wgpu::Features::SUBGROUP)));
    Ok(())
}

fn data_dir(d: &Option<PathBuf>) -> PathBuf {
    d.clone().unwrap_or_else(data::bundled_dir)
}

fn train(a: TrainArgs) -> wgcnn::Result<()> {
    let dir = data_dir(&a.data);
    // Where results go must exist before the run, not only when it ends.
    for p in a.save.iter().chain(&a.plot) {
        checkpoint::output_dir(p)?;
    }
    let train_set = data::load(&dir, Split::Train)?;
    let test_set = data::load(&dir, Split::Test)?;
    let mut cfg = LeNetConfig {
        activation: match a.activation {
            ActArg::Relu => Activation::Relu,
            ActArg::Tanh => Activation::Tanh,
            ActArg::Sigmoid => Activation::Sigmoid,
        },
        pool: match a.pool {
            PoolArg::Max => PoolKind::Max,
            PoolArg::Avg => PoolKind::Avg,
        },
        loss: match a.loss {
            LossArg::Xent => LossKind::CrossEntropy,
            LossArg::Mse => LossKind::SquaredError,
        },
    };
    let optimizer = match a.optimizer {
        OptArg::Sgd => Optimizer::Sgd(Sgd {
            lr: a.lr.unwrap_or(0.05),
            momentum: a.momentum,
            dampening: 0.0,
            weight_decay: a.weight_decay,
            nesterov: a.nesterov,
        }),
        OptArg::Adam => {
            Optimizer::Adam(Adam { lr: a.lr.unwrap_or(1e-3), weight_decay: a.weight_decay, ..Adam::default() })
        }
    };
    // Check the optimizer settings before any GPU work.
    match optimizer {
        Optimizer::Sgd(s) => s.params(1, 1).map(|_| ())?,
        Optimizer::Adam(ad) => ad.params(1, 1).map(|_| ())?,
    }
    let init = match &a.init {
        Some(p) => {
            let (ckpt_cfg, _, values) = checkpoint::load_model(p)?;
            if ckpt_cfg != cfg {
                eprintln!("note: {} was trained with {ckpt_cfg:?}; continuing with that architecture", p.display());
                cfg = ckpt_cfg;
            }
            values
        }
        None => init_params(&lenet5(cfg).params(), a.seed),
    };
    let ctx = Context::new()?;
    let t_start = std::time::Instant::now();
    let spec = lenet5(cfg);
    let mut trainer = Trainer::new(&ctx, spec.clone(), &train_set, a.batch_size, optimizer, &init)?;
    if let Some(p) = &a.init {
        if checkpoint::load_optimizer(&ctx, p, &mut trainer)? {
            eprintln!("resumed optimizer state at step {}", trainer.optim.step);
        }
    }
    let test = Evaluator::new(&ctx, &spec, &trainer.params, &test_set, 1000)?;
    // Both sets now live on the GPU; the host copies go (peak memory on full data sets).
    let (train_len, test_len) = (train_set.len(), test_set.len());
    drop(train_set);
    drop(test_set);
    let tcfg = TrainConfig {
        epochs: a.epochs,
        seed: a.seed,
        shuffle: !a.no_shuffle,
        max_steps: a.steps,
        log_every: a.log_every,
        schedule: match a.schedule {
            ScheduleArg::Cosine => Schedule::Cosine,
            ScheduleArg::Step => Schedule::Step { gamma: a.lr_decay },
            ScheduleArg::Constant => Schedule::Constant,
        },
    };
    if !(a.lr_decay > 0.0 && a.lr_decay.is_finite()) {
        return Err(wgcnn::Error::Train(format!("--lr-decay {} must be a positive number", a.lr_decay)));
    }
    if !a.json {
        eprintln!(
            "training LeNet-5 ({} parameters) on {} ({} train / {} test images) on {}",
            trainer.params.count(),
            dir.display(),
            train_len,
            test_len,
            ctx.info.name
        );
        eprintln!(
            "{} epochs of {} steps, batch {} (the last batch of an epoch holds the {} remaining images), {}",
            a.epochs,
            trainer.steps_per_epoch(),
            trainer.batch_size,
            match train_len % trainer.batch_size {
                0 => trainer.batch_size,
                r => r,
            },
            optimizer.name()
        );
    }
    let tty = std::io::stderr().is_terminal();
    let quiet = a.json;
    let mut points = Vec::new();
    let mut on_event = |e: &Event| {
        if let Event::Step { epoch, step, steps_per_epoch, loss, accuracy, .. } = e {
            let at = (*epoch - 1) as f64 + *step as f64 / (*steps_per_epoch).max(1) as f64;
            points.push(wgcnn::viz::StepPoint { at, loss: *loss, accuracy: *accuracy });
        }
        if quiet {
            return;
        }
        match e {
            Event::Step { epoch, step, steps_per_epoch, loss, accuracy, images_per_sec } => {
                let width = 30;
                let done = width * step / steps_per_epoch;
                let line = format!(
                    "epoch {epoch} [{}{}] {step}/{steps_per_epoch} loss {loss:.4} acc {:.1}% {images_per_sec:.0} img/s",
                    "=".repeat(done),
                    " ".repeat(width - done),
                    100.0 * accuracy
                );
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else if step == steps_per_epoch || step % (10 * a.log_every.max(1)) == 0 {
                    eprintln!("{line}");
                }
            }
            Event::Epoch(s) => {
                if tty {
                    eprintln!();
                }
                eprintln!(
                    "epoch {}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.1} s, {:.0} img/s",
                    s.epoch,
                    s.train_loss,
                    100.0 * s.train_accuracy,
                    s.test.loss,
                    100.0 * s.test.accuracy,
                    s.seconds,
                    s.images_per_sec
                );
            }
        }
    };
    let summary = fit(&ctx, &mut trainer, &test, &tcfg, &mut on_event)?;
    if let Some(p) = &a.plot {
        wgcnn::viz::plot_training(p, &points, &summary.epochs)?;
        if !a.json {
            eprintln!("wrote {}", p.display());
        }
    }
    if let Some(p) = &a.save {
        checkpoint::save_trainer(&ctx, p, &trainer, &cfg)?;
        if !a.json {
            eprintln!("saved {} and {}", p.display(), checkpoint::optim_path(p).display());
        }
    }
    let total = t_start.elapsed().as_secs_f64();
    if a.json {
        println!("{}", summary_json(&summary, &cfg, optimizer, a.seed, &dir, total, &ctx));
    } else {
        println!(
            "test accuracy {:.2}% ({}/{}), test loss {:.4}, {} steps in {:.1} s ({:.0} img/s)",
            100.0 * summary.test.accuracy,
            summary.test.correct,
            summary.test.count,
            summary.test.loss,
            summary.steps,
            summary.train_seconds,
            summary.images as f64 / summary.train_seconds.max(1e-9)
        );
    }
    Ok(())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn summary_json(
    s: &Summary,
    cfg: &LeNetConfig,
    opt: Optimizer,
    seed: u64,
    dir: &Path,
    total: f64,
    ctx: &Context,
) -> String {
    let epochs: Vec<String> = s
        .epochs
        .iter()
        .map(|e| {
            format!(
                "{{\"epoch\":{},\"train_loss\":{:.6},\"train_accuracy\":{:.6},\"test_loss\":{:.6},\"test_accuracy\":{:.6},\"seconds\":{:.3},\"images_per_sec\":{:.1}}}",
                e.epoch, e.train_loss, e.train_accuracy, e.test.loss, e.test.accuracy, e.seconds, e.images_per_sec
            )
        })
        .collect();
    format!(
        "{{\"model\":\"lenet5\",\"activation\":\"{:?}\",\"pool\":\"{:?}\",\"loss\":\"{:?}\",\"optimizer\":\"{}\",\"seed\":{seed},\"data\":{},\"adapter\":{},\"parameters\":{},\"steps\":{},\"images\":{},\"train_seconds\":{:.3},\"total_seconds\":{total:.3},\"dispatches_per_step\":{},\"submits_per_step\":1,\"peak_rss_bytes\":{},\"test_loss\":{:.6},\"test_accuracy\":{:.6},\"epochs\":[{}]}}",
        cfg.activation,
        cfg.pool,
        cfg.loss,
        opt.name(),
        json_str(&dir.display().to_string()),
        json_str(&ctx.info.name),
        s.parameters,
        s.steps,
        s.images,
        s.train_seconds,
        s.dispatches_per_step,
        wgcnn::bench::peak_rss_bytes().map_or("null".to_string(), |b| b.to_string()),
        s.test.loss,
        s.test.accuracy,
        epochs.join(",")
    )
}

fn eval(a: EvalArgs) -> wgcnn::Result<()> {
    let dir = data_dir(&a.data);
    let (cfg, spec, values) = checkpoint::load_model(&a.model)?;
    let test_set = data::load(&dir, Split::Test)?;
    let ctx = Context::new()?;
    let params = wgcnn::graph::Params::new(&ctx, &spec)?;
    params.values.write(&ctx, &values)?;
    let e = Evaluator::new(&ctx, &spec, &params, &test_set, a.batch_size)?.run(&ctx)?;
    if a.json {
        println!(
            "{{\"model\":{},\"data\":{},\"count\":{},\"correct\":{},\"accuracy\":{:.6},\"loss\":{:.6},\"activation\":\"{:?}\",\"pool\":\"{:?}\",\"loss_kind\":\"{:?}\"}}",
            json_str(&a.model.display().to_string()),
            json_str(&dir.display().to_string()),
            e.count,
            e.correct,
            e.accuracy,
            e.loss,
            cfg.activation,
            cfg.pool,
            cfg.loss
        );
    } else {
        println!(
            "accuracy {:.2}% ({}/{}), loss {:.4} on {}",
            100.0 * e.accuracy,
            e.correct,
            e.count,
            e.loss,
            dir.display()
        );
    }
    Ok(())
}

fn predict(a: PredictArgs) -> wgcnn::Result<()> {
    let (_, spec, values) = checkpoint::load_model(&a.model)?;
    let inputs = a.images.iter().map(|p| digits::load_digit(p)).collect::<wgcnn::Result<Vec<_>>>()?;
    let ctx = Context::new()?;
    let params = wgcnn::graph::Params::new(&ctx, &spec)?;
    params.values.write(&ctx, &values)?;
    let probs = wgcnn::train::predict(&ctx, &spec, &params, &inputs)?;
    let mut rows = Vec::new();
    for (path, p) in a.images.iter().zip(&probs) {
        let (class, best) = p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
        if a.json {
            let ps: Vec<String> = p.iter().map(|v| format!("{v:.6}")).collect();
            rows.push(format!(
                "{{\"image\":{},\"class\":{class},\"probability\":{best:.6},\"probabilities\":[{}]}}",
                json_str(&path.display().to_string()),
                ps.join(",")
            ));
        } else {
            let ps: Vec<String> = p.iter().enumerate().map(|(i, v)| format!("{i}:{v:.3}")).collect();
            println!("{}: {class} (p = {best:.3})  {}", path.display(), ps.join(" "));
        }
    }
    if a.json {
        println!("[{}]", rows.join(","));
    }
    Ok(())
}

/// One batch size's figures.
struct BenchRow {
    batch: usize,
    throughput: wgcnn::bench::Throughput,
    dispatches: usize,
    flops_per_image: f64,
}

fn bench(mut a: BenchArgs) -> wgcnn::Result<()> {
    use wgcnn::bench::{peak_rss_bytes, process_age, profile_launches, time_inference, time_training, TimingSource};
    let t_main = std::time::Instant::now();
    let age_at_main = process_age().unwrap_or(0.0);
    if a.smoke {
        (a.batch_sizes, a.warmup, a.windows, a.steps, a.infer_batch) = (vec![8], 1, 1, 2, 100);
        a.profile = a.profile.min(1);
    }
    if a.batch_sizes.is_empty() || a.batch_sizes.contains(&0) {
        return Err(wgcnn::Error::Train("--batch-sizes needs sizes of at least 1".into()));
    }
    if a.windows == 0 || a.steps == 0 {
        return Err(wgcnn::Error::Train("--windows and --steps must be at least 1".into()));
    }
    let dir = data_dir(&a.data);
    let train_set = data::load(&dir, Split::Train)?;
    let test_set = data::load(&dir, Split::Test)?;
    let ctx = Context::new()?;
    let cfg = LeNetConfig::default();
    let spec = lenet5(cfg);
    let init = init_params(&spec.params(), 1);
    let opt = Optimizer::Sgd(Sgd { lr: 0.01, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, nesterov: false });
    if !a.json {
        eprintln!("adapter   {}", wgcnn::context::describe_adapter(&ctx.info));
        eprintln!("kernels   {:?} (WGCNN_KERNELS)", ctx.kernels);
        eprintln!("data      {} ({} train images)", dir.display(), train_set.len());
    }
    let mut rows = Vec::new();
    let mut first_step = None;
    let mut profile = None;
    for &batch in &a.batch_sizes {
        let mut trainer = Trainer::new(&ctx, spec.clone(), &train_set, batch, opt, &init)?;
        if first_step.is_none() {
            trainer.start_epoch(&ctx, None)?;
            trainer.step(&ctx, 0)?;
            ctx.wait()?;
            first_step = Some(age_at_main + t_main.elapsed().as_secs_f64());
        }
        let throughput = time_training(&ctx, &mut trainer, a.warmup, a.windows, a.steps)?;
        let launches = trainer.step_launches();
        let flops: u64 = launches.iter().map(|l| l.flops).sum();
        if profile.is_none() && a.profile > 0 {
            profile = Some((batch, profile_launches(&ctx, &launches, a.profile)?));
        }
        let row = BenchRow {
            batch: trainer.batch_size,
            throughput,
            dispatches: trainer.dispatches_per_step(),
            flops_per_image: flops as f64 / trainer.batch_size as f64,
        };
        if !a.json {
            eprintln!(
                "training  batch {:>4}: {:>8.1} images/s (median of {} windows of {} steps), {:.2} GFLOP/s",
                row.batch,
                row.throughput.median,
                a.windows,
                a.steps,
                row.throughput.median * row.flops_per_image * 1e-9
            );
        }
        rows.push(row);
    }
    let params = wgcnn::graph::Params::new(&ctx, &spec)?;
    params.values.write(&ctx, &init)?;
    let evaluator = Evaluator::new(&ctx, &spec, &params, &test_set, a.infer_batch)?;
    let infer = time_inference(&ctx, &evaluator, a.windows)?;
    let rss = peak_rss_bytes();
    let gpu_bytes = ctx.bytes_allocated();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    if a.json {
        let rows_json: Vec<String> = rows
            .iter()
            .map(|r| {
                let w: Vec<String> = r.throughput.windows.iter().map(|v| format!("{v:.1}")).collect();
                format!(
                    "{{\"batch\":{},\"images_per_sec\":{:.1},\"windows\":[{}],\"dispatches_per_step\":{},\"submits_per_step\":1,\"flops_per_image\":{:.0},\"gflops\":{:.3}}}",
                    r.batch,
                    r.throughput.median,
                    w.join(","),
                    r.dispatches,
                    r.flops_per_image,
                    r.throughput.median * r.flops_per_image * 1e-9
                )
            })
            .collect();
        let kernels_json = match &profile {
            None => "null".to_string(),
            Some((batch, (source, times))) => {
                let total: f64 = times.iter().map(|t| t.seconds).sum();
                let items: Vec<String> = times
                    .iter()
                    .map(|t| {
                        format!(
                            "{{\"launch\":{},\"kernel\":\"{}\",\"dispatches\":{},\"ms\":{:.4},\"share\":{:.4},\"gflops\":{:.3},\"gbytes_per_sec\":{:.3}}}",
                            json_str(&t.label),
                            t.kernel,
                            t.dispatches,
                            t.seconds * 1e3,
                            t.seconds / total.max(1e-12),
                            t.flops as f64 / t.seconds.max(1e-12) * 1e-9,
                            t.bytes as f64 / t.seconds.max(1e-12) * 1e-9
                        )
                    })
                    .collect();
                format!(
                    "{{\"batch\":{batch},\"source\":\"{}\",\"total_ms\":{:.4},\"launches\":[{}]}}",
                    if *source == TimingSource::Timestamps { "timestamps" } else { "cpu_clock" },
                    total * 1e3,
                    items.join(",")
                )
            }
        };
        println!(
            "{{\"adapter\":{},\"backend\":\"{:?}\",\"kernels\":\"{:?}\",\"data\":{},\"training\":[{}],\"inference\":{{\"batch\":{},\"images_per_sec\":{:.1}}},\"first_step_seconds\":{:.3},\"peak_rss_bytes\":{},\"gpu_bytes_allocated\":{},\"per_kernel\":{}}}",
            json_str(&ctx.info.name),
            ctx.info.backend,
            ctx.kernels,
            json_str(&dir.display().to_string()),
            rows_json.join(","),
            evaluator.batch,
            infer.median,
            first_step.unwrap_or(0.0),
            rss.map_or("null".to_string(), |b| b.to_string()),
            gpu_bytes,
            kernels_json
        );
        return Ok(());
    }
    eprintln!("inference batch {:>4}: {:>8.1} images/s", evaluator.batch, infer.median);
    eprintln!(
        "first step finished {:.2} s after process start (adapter, data, graph, shader compilation)",
        first_step.unwrap_or(0.0)
    );
    eprintln!(
        "memory    peak RSS {}, GPU buffers {:.1} MiB",
        rss.map_or("unknown".to_string(), |b| format!("{:.1} MiB", mib(b))),
        mib(gpu_bytes)
    );
    for r in &rows {
        eprintln!("          batch {:>4}: {} dispatches and 1 submit per step", r.batch, r.dispatches);
    }
    if let Some((batch, (source, times))) = &profile {
        let total: f64 = times.iter().map(|t| t.seconds).sum();
        eprintln!(
            "per-kernel time of one batch-{batch} step ({}):",
            if *source == TimingSource::Timestamps { "GPU timestamp queries" } else { "CPU clock, each launch alone" }
        );
        eprintln!("  {:<22} {:<24} {:>9} {:>7} {:>14}", "launch", "kernel", "ms", "share", "achieved");
        for t in times {
            let achieved = if t.flops > 0 {
                format!("{:.2} GFLOP/s", t.flops as f64 / t.seconds.max(1e-12) * 1e-9)
            } else if t.bytes > 0 {
                format!("{:.2} GB/s", t.bytes as f64 / t.seconds.max(1e-12) * 1e-9)
            } else {
                "-".to_string()
            };
            eprintln!(
                "  {:<22} {:<24} {:>9.3} {:>6.1}% {:>14}",
                t.label,
                t.kernel,
                t.seconds * 1e3,
                100.0 * t.seconds / total.max(1e-12),
                achieved
            );
        }
        eprintln!("  {:<22} {:<24} {:>9.3}", "total", "", total * 1e3);
    }
    Ok(())
}

fn filters(a: FiltersArgs) -> wgcnn::Result<()> {
    let img = wgcnn::viz::load_grey(&a.image)?;
    let ctx = Context::new()?;
    let res = wgcnn::viz::run_filters(&ctx, &img)?;
    for f in wgcnn::viz::write_filters(&res, &a.out)? {
        println!("{}", f.display());
    }
    Ok(())
}

fn visualize(a: VisualizeArgs) -> wgcnn::Result<()> {
    let (_, spec, values) = checkpoint::load_model(&a.model)?;
    let input = match &a.image {
        Some(p) => digits::load_digit(p)?,
        None => {
            let dir = data_dir(&a.data);
            let test = data::load(&dir, Split::Test)?;
            let n = test.rows * test.cols;
            test.images[..n].iter().map(|&v| f32::from(v) / wgcnn::train::DIVISOR).collect()
        }
    };
    // Plain kernels: each conv's own output, before its ReLU.
    let mut ctx = Context::new()?;
    ctx.kernels = wgcnn::KernelSet::Plain;
    let params = wgcnn::graph::Params::new(&ctx, &spec)?;
    params.values.write(&ctx, &values)?;
    let acts = wgcnn::viz::run_layers(&ctx, &spec, &params, &input)?;
    let weights: Vec<(String, Vec<usize>, Vec<f32>)> =
        spec.params().iter().zip(values).map(|(p, v)| (p.name.clone(), p.shape.clone(), v)).collect();
    for f in wgcnn::viz::write_visualize(&weights, &acts, &a.out)? {
        println!("{}", f.display());
    }
    Ok(())
}
