//! The `wgcnn` command line: thin — parse arguments, call the library ([`wgcnn::session`]), print what
//! it reports, and turn errors into a message and an exit code.

mod args;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use args::*;
use clap::Parser;
use wgcnn::kernels::activation::Activation;
use wgcnn::kernels::loss::LossKind;
use wgcnn::kernels::optim::{Adam, Sgd};
use wgcnn::kernels::pool::PoolKind;
use wgcnn::model::{lenet5, LeNetConfig, ModelSpec};
use wgcnn::session::train::{Progress, TrainOptions};
use wgcnn::session::{self, bench::BenchOptions, data_dir, ModelSource};
use wgcnn::train::{Event, Optimizer, Schedule, TrainConfig};
use wgcnn::Context;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // With --json, a bad argument is reported as JSON on stdout too (and as usual on stderr).
            let wants_json = std::env::args().skip(1).any(|a| a == "--json");
            if wants_json && e.use_stderr() {
                let text = e.render().to_string();
                let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
                println!("{}", serde_json::json!({ "error": first }));
            }
            e.exit()
        }
    };
    let json_errors = cli.command.json();
    let result = match cli.command {
        Command::Info => info(),
        Command::Train(a) => train(*a),
        Command::Eval(a) => eval(a),
        Command::Predict(a) => predict(a),
        Command::Bench(a) => bench(a),
        Command::Filters(a) => filters(a),
        Command::Visualize(a) => visualize(a),
        Command::Export(a) => export(a),
        Command::Import(a) => import(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if json_errors {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            match e {
                // As a shell reports a process stopped by SIGINT.
                wgcnn::Error::Interrupted(_) => ExitCode::from(130),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// SIGINT/SIGTERM (Ctrl-C) during training: the first finishes the current step, saves a checkpoint
/// and exits with 130; a second exits at once (files being written stay whole: writes are atomic).
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: exiting now");
            std::process::exit(130);
        }
        eprintln!("\ninterrupt: finishing the current step, then saving (interrupt again to quit at once)");
    });
    if let Err(e) = installed {
        log::warn!("cannot catch Ctrl-C ({e}): an interrupted run will not be saved");
    }
    stop
}

fn info() -> wgcnn::Result<()> {
    let ctx = Context::new()?;
    let (i, l, f) = (&ctx.info, &ctx.limits, ctx.adapter_features());
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let yes = |b: bool| if b { "yes" } else { "no" };
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
    println!("  timestamp queries  {}", yes(f.contains(wgpu::Features::TIMESTAMP_QUERY)));
    println!("  shader f16         {}", yes(f.contains(wgpu::Features::SHADER_F16)));
    println!("  subgroups          {}", yes(f.contains(wgpu::Features::SUBGROUP)));
    Ok(())
}

/// The model `--model` names (a file or a checkpoint's architecture), or LeNet-5 with `cfg`.
fn model_arg(path: Option<&Path>, cfg: LeNetConfig) -> wgcnn::Result<ModelSpec> {
    match path {
        Some(p) => Ok(ModelSource::load(p)?.spec().clone()),
        None => Ok(lenet5(cfg)),
    }
}

fn lenet_config(a: &TrainArgs) -> LeNetConfig {
    let d = LeNetConfig::default();
    LeNetConfig {
        activation: a.activation.map_or(d.activation, |v| match v {
            ActArg::Relu => Activation::Relu,
            ActArg::Tanh => Activation::Tanh,
            ActArg::Sigmoid => Activation::Sigmoid,
        }),
        pool: a.pool.map_or(d.pool, |v| if matches!(v, PoolArg::Max) { PoolKind::Max } else { PoolKind::Avg }),
        loss: a.loss.map_or(d.loss, |v| match v {
            LossArg::Xent => LossKind::CrossEntropy,
            LossArg::Mse => LossKind::SquaredError,
        }),
    }
}

fn train_options(a: &TrainArgs) -> wgcnn::Result<TrainOptions> {
    // Settings: a flag, else the model file's [train] table, else the command's default.
    let file = match a.model.as_deref() {
        Some(p) if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) => {
            wgcnn::model::file::load_train_settings(p)?
        }
        _ => Default::default(),
    };
    let opt = a.optimizer.unwrap_or(match file.optimizer.as_deref() {
        Some("adam") => OptArg::Adam,
        _ => OptArg::Sgd,
    });
    let lr = a.lr.or(file.lr);
    let weight_decay = a.weight_decay.or(file.weight_decay).unwrap_or(1e-3);
    let optimizer = match opt {
        OptArg::Sgd => Optimizer::Sgd(Sgd {
            lr: lr.unwrap_or(0.05),
            momentum: a.momentum.or(file.momentum).unwrap_or(0.9),
            dampening: 0.0,
            weight_decay,
            nesterov: a.nesterov || file.nesterov.unwrap_or(false),
        }),
        OptArg::Adam => Optimizer::Adam(Adam { lr: lr.unwrap_or(1e-3), weight_decay, ..Adam::default() }),
    };
    let schedule = a.schedule.unwrap_or(match file.schedule.as_deref() {
        Some("step") => ScheduleArg::Step,
        Some("constant") => ScheduleArg::Constant,
        _ => ScheduleArg::Cosine,
    });
    let schedule = match schedule {
        ScheduleArg::Cosine => Schedule::Cosine,
        ScheduleArg::Step => Schedule::Step { gamma: a.lr_decay.or(file.lr_decay).unwrap_or(0.7) },
        ScheduleArg::Constant => Schedule::Constant,
    };
    let augment = match (&a.augment, &file.augment) {
        (Some(g), _) => *g,
        (None, Some(f)) => f.parse().map_err(|e: String| wgcnn::Error::Train(format!("[train] augment: {e}")))?,
        (None, None) => wgcnn::data::Augment::default(),
    };
    let epochs = a.epochs.or(file.epochs);
    let from_file: Vec<&str> = file.given().into_iter().filter(|k| !flag_given(a, k)).collect();
    if !from_file.is_empty() {
        eprintln!("settings from the model file's [train]: {} (flags override them)", from_file.join(", "));
    }
    Ok(TrainOptions {
        data: data_dir(a.data.data.as_deref()),
        normalize: a.normalize.clone(),
        augment,
        val_split: a.data.val_split,
        cifar_labels: cifar_labels(a.data.labels),
        cache: !a.data.no_cache,
        model: model_arg(a.model.as_deref(), lenet_config(a))?,
        batch_size: a.batch_size.or(file.batch_size).unwrap_or(32),
        optimizer,
        config: TrainConfig {
            epochs: epochs.unwrap_or(10),
            seed: a.seed,
            shuffle: !a.no_shuffle,
            max_steps: a.steps,
            log_every: a.log_every,
            schedule,
            stop: None,
        },
        seed: a.seed,
        init: a.init.clone(),
        model_given: a.model.is_some(),
        reset: a.reset.clone(),
        freeze: a.freeze.clone(),
        save: a.save.clone(),
        plot: a.plot.clone(),
        resume: a.resume,
        epochs_given: epochs.is_some(),
        save_every_epoch: a.save_every_epoch,
    })
}

/// Whether the flag that overrides `[train]` field `key` was given.
fn flag_given(a: &TrainArgs, key: &str) -> bool {
    match key {
        "optimizer" => a.optimizer.is_some(),
        "lr" => a.lr.is_some(),
        "momentum" => a.momentum.is_some(),
        "nesterov" => a.nesterov,
        "weight_decay" => a.weight_decay.is_some(),
        "batch_size" => a.batch_size.is_some(),
        "epochs" => a.epochs.is_some(),
        "schedule" => a.schedule.is_some(),
        "lr_decay" => a.lr_decay.is_some(),
        "augment" => a.augment.is_some(),
        _ => false,
    }
}

fn cifar_labels(l: LabelsArg) -> wgcnn::data::CifarLabels {
    match l {
        LabelsArg::Fine => wgcnn::data::CifarLabels::Fine,
        LabelsArg::Coarse => wgcnn::data::CifarLabels::Coarse,
    }
}

/// Print a data set's loading progress on stderr: a bar redrawn in place on a terminal.
fn print_load(p: &wgcnn::data::LoadProgress, tty: bool) {
    use wgcnn::data::LoadProgress as L;
    match p {
        L::Decoding { done, total } => {
            // Off a terminal: a line at every tenth.
            static LAST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);
            let (bar, tenth) = (30 * done / total.max(&1), 10 * done / total.max(&1));
            let line = format!("decoding pictures [{}{}] {done}/{total}", "=".repeat(bar), " ".repeat(30 - bar));
            if tty {
                eprint!("\r{line}\x1b[K");
                if done == total {
                    eprintln!();
                }
            } else if LAST.swap(tenth, std::sync::atomic::Ordering::Relaxed) != tenth {
                eprintln!("{line}");
            }
        }
        L::Cached(path) => eprintln!("decoded pictures from the cache {}", path.display()),
        L::Skipped { count, examples } => {
            let ex: Vec<String> = examples.iter().map(|p| p.display().to_string()).collect();
            eprintln!(
                "skipped {count} files that are not PNG or JPEG pictures or start with a dot (e.g. {})",
                ex.join(", ")
            );
        }
    }
}

/// Print a run's progress on stderr: a bar redrawn in place on a terminal, every tenth log line else.
fn print_progress(p: Progress<'_>, opts: &TrainOptions, log_every: usize, tty: bool) {
    match p {
        Progress::Start { model, parameters, train, test, steps_per_epoch, adapter, epochs, batch, optimizer } => {
            eprintln!(
                "training {} ({parameters} parameters) on {} ({train} train / {test} test images) on {adapter}",
                model.name,
                opts.data.display()
            );
            let last = match train % batch.max(1) {
                0 => batch,
                r => r,
            };
            eprintln!(
                "{epochs} epochs of {steps_per_epoch} steps, batch {batch} (the last batch of an epoch holds {last} images), {optimizer}"
            );
        }
        Progress::Resumed(step, None) => eprintln!("resumed optimizer state at step {step}"),
        Progress::Resumed(step, Some(p)) => eprintln!(
            "resuming the saved run at epoch {}, step {} of the epoch ({step} updates done)",
            p.epoch, p.step_in_epoch
        ),
        Progress::Wrote(path) => eprintln!("wrote {}", path.display()),
        Progress::Data(p) => print_load(&p, tty),
        Progress::Prepared { source, prep, augment, load_seconds } => {
            let names = if prep.classes.len() > 12 {
                format!("{}, … ({} classes)", prep.classes[..12].join(", "), prep.classes.len())
            } else {
                prep.classes.join(", ")
            };
            eprintln!("data: {source}, loaded in {load_seconds:.2} s; classes {names}");
            let [c, h, w] = prep.input;
            let norm = if prep.is_plain() {
                "x/255".to_string()
            } else {
                let f = |v: &[f32]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(",");
                format!("mean {} std {}", f(&prep.mean), f(&prep.std))
            };
            eprintln!("input {c}x{h}x{w}, normalised {norm}, augmentation {augment}");
        }
        Progress::Event(Event::Step { epoch, step, steps_per_epoch, loss, accuracy, images_per_sec }) => {
            let (step, of) = (*step, *steps_per_epoch);
            let done = 30 * step / of.max(1);
            let line = format!(
                "epoch {epoch} [{}{}] {step}/{of} loss {loss:.4} acc {:.1}% {images_per_sec:.0} img/s",
                "=".repeat(done),
                " ".repeat(30 - done),
                100.0 * accuracy
            );
            if tty {
                eprint!("\r{line}\x1b[K");
            } else if step == of || step % log_every.saturating_mul(10) == 0 {
                eprintln!("{line}");
            }
        }
        Progress::Event(Event::Epoch(s)) => {
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
}

fn train(a: TrainArgs) -> wgcnn::Result<()> {
    let mut opts = train_options(&a)?;
    opts.config.stop = Some(stop_on_signal());
    let tty = std::io::stderr().is_terminal();
    let r = session::train::run(&opts, &mut |p| {
        if !a.json {
            print_progress(p, &opts, a.log_every, tty)
        }
    })?;
    if a.json {
        println!("{}", json(&r));
    } else {
        println!(
            "test accuracy {:.2}% ({}/{}), test loss {:.4}, {} steps in {:.1} s ({:.0} img/s)",
            100.0 * r.test_accuracy,
            r.test_correct,
            r.test_count,
            r.test_loss,
            r.steps,
            r.train_seconds,
            r.images as f64 / r.train_seconds.max(1e-9)
        );
    }
    Ok(())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn eval(a: EvalArgs) -> wgcnn::Result<()> {
    let opts = session::infer::EvalOptions {
        data: data_dir(a.data.data.as_deref()),
        batch_size: a.batch_size,
        val_split: a.data.val_split,
        seed: a.seed,
        cifar_labels: cifar_labels(a.data.labels),
        cache: !a.data.no_cache,
        weights: a.weights.weights(),
    };
    if let Some(p) = &a.plot {
        wgcnn::fsio::check_output(p, 1 << 20)?;
    }
    let tty = std::io::stderr().is_terminal();
    let r = session::infer::eval(&a.model, &opts, &mut |p| print_load(&p, tty))?;
    if let Some(p) = &a.plot {
        wgcnn::viz::plot_confusion(p, &r.classes, &r.confusion, &r.name)?;
        eprintln!("wrote {}", p.display());
    }
    if a.json {
        println!("{}", json(&r));
    } else {
        let acc = 100.0 * r.accuracy;
        println!("accuracy {acc:.2}% ({}/{}), loss {:.4} on {} ({})", r.correct, r.count, r.loss, r.data, r.name);
        let width = r.per_class.iter().map(|c| c.class.chars().count()).max().unwrap_or(0);
        for c in &r.per_class {
            println!("  {:<width$}  {:6.2}%  ({}/{})", c.class, 100.0 * c.accuracy, c.correct, c.count);
        }
    }
    Ok(())
}

/// `wgcnn bench --zoo`: every model file of `dir`, with the PyTorch twin's figures where torch is
/// importable.
fn bench_zoo(dir: &Path, mut opts: BenchOptions, json_out: bool) -> wgcnn::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| wgcnn::Error::Train(format!("--zoo {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(wgcnn::Error::Train(format!("--zoo: no model files (*.toml) in {}", dir.display())));
    }
    opts.profile = 0;
    let ceiling_side = opts.ceiling_side;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let torch = std::process::Command::new("python3")
        .args(["-c", "import torch"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // The twin's timer: the working folder's scripts/ (a source tree), else the one this binary was
    // built from.
    let script = [
        Path::new("scripts/torch_bench.py").to_path_buf(),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/torch_bench.py"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .unwrap_or_else(|| PathBuf::from("scripts/torch_bench.py"));
    if !json_out {
        eprintln!("zoo       {} model files of {}", files.len(), dir.display());
        if !torch {
            eprintln!("PyTorch   skipped: python3 cannot import torch (pip install torch to time the twins)");
        }
    }
    let mut rows = Vec::new();
    for f in &files {
        opts.model = wgcnn::model::file::load(f)?;
        // The ceiling beside every model's windows: each model's fraction is of the ceiling as it
        // was while that model ran.
        let quiet = json_out;
        let r = session::bench::run(&opts, &mut |line| {
            if !quiet {
                eprintln!("{:<15} {line}", opts.model.name);
            }
        })?;
        let twin = if torch {
            let sizes: Vec<String> = opts.batch_sizes.iter().map(|b| b.to_string()).collect();
            let out = std::process::Command::new("python3")
                .arg(&script)
                .arg(f)
                .args(["--batch-sizes", &sizes.join(","), "--threads", &threads.to_string()])
                .args(["--infer-batch", &opts.infer_batch.to_string()])
                .output();
            match out {
                Ok(o) if o.status.success() => serde_json::from_slice::<serde_json::Value>(&o.stdout).ok(),
                Ok(o) => {
                    eprintln!("PyTorch twin of {}: {}", f.display(), String::from_utf8_lossy(&o.stderr).trim());
                    None
                }
                Err(e) => {
                    eprintln!("PyTorch twin of {}: {e}", f.display());
                    None
                }
            }
        } else {
            None
        };
        rows.push((f.clone(), r, twin));
    }
    if json_out {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(f, r, twin)| {
                serde_json::json!({
                    "file": f.display().to_string(),
                    "report": r,
                    "ceiling_gflops": r.ceiling_gflops,
                    "ceiling_fraction": r.training.iter().map(|t| t.ceiling_fraction).collect::<Vec<_>>(),
                    "pytorch": twin,
                })
            })
            .collect();
        println!("{}", json(&v));
        return Ok(());
    }
    println!(
        "ceiling: the adapter's best {ceiling_side}x{ceiling_side}x{ceiling_side} product, timed after each training \
         window (the model's median), and each window's ratio to it (the median); PyTorch on {threads} threads"
    );
    println!(
        "{:<15} {:>5} {:>12} {:>8} {:>8} {:>8} {:>10} {:>12} {:>14} {:>14}",
        "model",
        "batch",
        "train img/s",
        "GFLOP/s",
        "ceiling",
        "of it",
        "dispatches",
        "infer img/s",
        "torch train",
        "torch infer"
    );
    for (_, r, twin) in &rows {
        for t in &r.training {
            let torch_train = twin
                .as_ref()
                .and_then(|j| j["training"][t.batch.to_string()].as_f64())
                .map_or("-".to_string(), |v| format!("{v:.1}"));
            let torch_infer =
                twin.as_ref().and_then(|j| j["inference"].as_f64()).map_or("-".to_string(), |v| format!("{v:.1}"));
            println!(
                "{:<15} {:>5} {:>12.1} {:>8.2} {:>8.2} {:>7} {:>10} {:>12.1} {:>14} {:>14}",
                r.model,
                t.batch,
                t.images_per_sec,
                t.gflops,
                wgcnn::bench::median(&t.ceilings),
                t.ceiling_fraction.map_or("-".to_string(), |f| format!("{:.0}%", 100.0 * f)),
                t.dispatches_per_step,
                r.inference.images_per_sec,
                torch_train,
                torch_infer
            );
        }
    }
    Ok(())
}

fn export(a: ExportArgs) -> wgcnn::Result<()> {
    let (spec, state, prep) = wgcnn::checkpoint::load_prepared(&a.checkpoint)?;
    wgcnn::onnx::save_onnx(&a.onnx, &spec, &state, &prep)?;
    let [c, h, w] = spec.input;
    println!(
        "wrote {}: {} as ONNX opset {}, input \"{}\" [N, {c}, {h}, {w}] float32, output \"{}\" [N, {}]",
        a.onnx.display(),
        spec.name,
        wgcnn::onnx::OPSET,
        wgcnn::onnx::INPUT_NAME,
        wgcnn::onnx::OUTPUT_NAME,
        spec.classes
    );
    if prep.is_plain() {
        println!("input preparation: pixel / 255");
    } else {
        println!("input preparation: (pixel / 255 - mean) / std per channel, mean {:?}, std {:?}", prep.mean, prep.std);
    }
    Ok(())
}

fn import(a: ImportArgs) -> wgcnn::Result<()> {
    let normalize: wgcnn::data::transform::Normalize =
        a.normalize.parse().map_err(|e: String| wgcnn::Error::Train(format!("--normalize: {e}")))?;
    let mut im = wgcnn::onnx::import_file(&a.onnx)?;
    let c = im.spec.input[0];
    if let Some((mean, std)) = normalize.without_data(c).map_err(wgcnn::Error::Train)? {
        if std.iter().any(|&s| !(s > 0.0 && s.is_finite())) {
            return Err(wgcnn::Error::Train(format!("--normalize: every std must be above 0, got {std:?}")));
        }
        (im.prep.mean, im.prep.std) = (mean, std);
        im.notes.retain(|n| !n.contains("preparation"));
    }
    let model_file = a.model_file.clone().unwrap_or_else(|| a.out.with_extension("toml"));
    wgcnn::checkpoint::save_model_prepared(&a.out, &im.spec, &im.state, &im.prep)?;
    wgcnn::fsio::write_atomic(&model_file, wgcnn::model::file::to_toml(&im.spec).as_bytes())?;
    let params: usize = im.spec.params().iter().map(|p| p.len()).sum();
    println!(
        "imported {} ({} layers, {params} parameters, input {:?}, {} classes)",
        im.spec.name,
        im.spec.layers.len(),
        im.spec.input,
        im.spec.classes
    );
    println!("wrote {} and {}", a.out.display(), model_file.display());
    for n in &im.notes {
        println!("note: {n}");
    }
    Ok(())
}

fn predict(a: PredictArgs) -> wgcnn::Result<()> {
    let (names, rows) = session::infer::predict_with(&a.model, &a.weights.weights(), &a.images)?;
    if a.json {
        println!("{}", json(&rows));
        return Ok(());
    }
    for r in rows {
        // Every class's probability for up to ten classes, the five most likely beyond.
        let mut top: Vec<(usize, f32)> = r.probabilities.iter().copied().enumerate().collect();
        if top.len() > 10 {
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            top.truncate(5);
        }
        let ps: Vec<String> = top.iter().map(|(i, v)| format!("{}:{v:.3}", names[*i])).collect();
        println!("{}: {} (p = {:.3})  {}", r.image, r.name, r.probability, ps.join(" "));
    }
    Ok(())
}

fn bench(a: BenchArgs) -> wgcnn::Result<()> {
    let mut opts = BenchOptions {
        data: data_dir(a.data.as_deref()),
        model: model_arg(a.model.as_deref(), LeNetConfig::default())?,
        batch_sizes: a.batch_sizes,
        warmup: a.warmup,
        windows: a.windows,
        steps: a.steps,
        infer_batch: a.infer_batch,
        profile: a.profile,
        augment: a.augment,
        ceiling_side: session::bench::CEILING_SIDE,
    };
    if a.ceiling {
        let c = session::bench::ceiling(opts.ceiling_side, opts.windows.max(3))?;
        if a.json {
            println!("{}", json(&c));
        } else {
            println!(
                "ceiling {:.2} GFLOP/s: the best {s}x{s}x{s} product on {} ({} kernels; median of {} runs)",
                c.gflops,
                c.adapter,
                c.kernels,
                c.runs.len(),
                s = c.side
            );
            print!("{}", session::bench::render_tuning(&c.tuning, &c.tuned));
        }
        return Ok(());
    }
    if a.smoke {
        opts.smoke();
    }
    if let Some(dir) = &a.zoo {
        return bench_zoo(dir, opts, a.json);
    }
    if !a.json {
        eprintln!(
            "model     {} ({})",
            opts.model.name,
            a.model.as_deref().map_or("built in".into(), |p| p.display().to_string())
        );
        eprintln!("data      {}", opts.data.display());
    }
    let quiet = a.json;
    let r = session::bench::run(&opts, &mut |line| {
        if !quiet {
            eprintln!("{line}")
        }
    })?;
    if a.json {
        println!("{}", json(&r));
    } else {
        eprintln!("adapter   {} ({}), kernels {} (WGCNN_KERNELS)", r.adapter, r.backend, r.kernels);
        eprint!("{}", session::bench::render(&r));
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
    let data = data_dir(a.data.as_deref());
    let files: Vec<PathBuf> = session::infer::visualize(&a.model, a.image.as_deref(), &data, &a.out)?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}
