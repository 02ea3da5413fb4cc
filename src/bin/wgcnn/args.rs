//! The command line's arguments (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// A whole number >= 1 (0 steps, epochs or images is refused rather than silently bent).
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{e} (a whole number >= 1, at most {})", usize::MAX)),
    }
}

/// A finite number > 0.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{v} must be a finite number > 0")),
        Err(e) => Err(e.to_string()),
    }
}

/// A finite number >= 0.
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        Ok(v) => Err(format!("{v} must be a finite number >= 0")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Parser)]
#[command(name = "wgcnn", version, about = "A CNN engine whose every computation runs in WGSL compute shaders")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the selected GPU adapter, the limits that matter and the optional features.
    ///
    /// Select another adapter with WGCNN_ADAPTER=software|hardware|<name substring> and restrict
    /// backends with WGPU_BACKEND=vulkan,metal,dx12,gl (GL is otherwise tried only when no other
    /// backend has an adapter).
    Info,
    /// Train a model (default: LeNet-5, models/lenet5.toml) on MNIST-format data (default: the bundled
    /// 10,000-digit MNIST sample).
    Train(TrainArgs),
    /// Accuracy and loss of a saved model on the t10k-* files of a data folder.
    Eval(EvalArgs),
    /// Classify PNG/JPEG pictures of digits with a saved model.
    ///
    /// Each picture is converted to grey; when its border is lighter than mid-grey (dark ink on white
    /// paper) it is inverted to MNIST's white-on-black; the ink's bounding box is scaled to 20x20 and
    /// centred in 28x28, as MNIST was prepared. 28x28 pictures are used as they are (after inversion).
    Predict(PredictArgs),
    /// Headless benchmark: a model's (default LeNet-5) training images/s at each batch size, inference images/s, time to
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
    /// Pictures of what a trained model sees for one input: its conv filters, the feature maps after
    /// every layer with maps (each branch of a DAG), the vectors of the fully connected layers, the class
    /// probabilities, and one overview.
    Visualize(VisualizeArgs),
}

#[derive(clap::Args)]
pub struct FiltersArgs {
    /// A PNG or JPEG picture (any size)
    pub image: PathBuf,
    /// Folder for the PNGs (created if missing)
    #[arg(long, default_value = "wgcnn-filters")]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct VisualizeArgs {
    /// The trained model: a checkpoint (safetensors), which names its architecture
    #[arg(long)]
    pub model: PathBuf,
    /// A PNG or JPEG digit (prepared as for `predict`) [default: the first test digit of --data]
    pub image: Option<PathBuf>,
    /// Folder with t10k-* IDX files for the default image [default: the bundled MNIST sample]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Folder for the PNGs (created if missing)
    #[arg(long, default_value = "wgcnn-visualize")]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The model to time: a model file (.toml) or a checkpoint [default: LeNet-5]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder with train-* and t10k-* IDX files [default: the bundled MNIST sample]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Training batch sizes to time, comma-separated
    #[arg(long, value_delimiter = ',', default_values_t = [64, 256], value_parser = positive)]
    pub batch_sizes: Vec<usize>,
    /// Untimed steps before the windows (pipelines compiled, caches warm)
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Timed windows per batch size (the median is reported)
    #[arg(long, default_value_t = 5, value_parser = positive)]
    pub windows: usize,
    /// Training steps per window
    #[arg(long, default_value_t = 10, value_parser = positive)]
    pub steps: usize,
    /// Inference batch size (forward passes over the test files)
    #[arg(long, default_value_t = 1000, value_parser = positive)]
    pub infer_batch: usize,
    /// Recordings of one step for the per-kernel table (median per kernel); 0 skips the table
    #[arg(long, default_value_t = 5)]
    pub profile: usize,
    /// A tiny run for CI: batch 8, one window of 2 steps, inference batch 100
    #[arg(long)]
    pub smoke: bool,
    /// Print one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The trained model: a checkpoint (safetensors), which names its architecture
    #[arg(long)]
    pub model: PathBuf,
    /// Pictures to classify
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Print one JSON array on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ActArg {
    Relu,
    Tanh,
    Sigmoid,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PoolArg {
    Max,
    Avg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LossArg {
    /// Cross-entropy of softmax, mean over the batch.
    Xent,
    /// The article's squared error ½Σ(target − softmax)², mean over the batch.
    Mse,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OptArg {
    Sgd,
    Adam,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum ScheduleArg {
    /// Cosine from --lr down to 0 over the run's steps
    Cosine,
    /// Multiply by --lr-decay after every epoch
    Step,
    /// Keep --lr
    Constant,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The model to train: a model file (.toml, e.g. models/lenet5.toml) [default: LeNet-5]
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Folder with train-* and t10k-* IDX files (.gz or raw) [default: the bundled MNIST sample]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Epochs to train [default: 10; with --resume, the saved run's]
    #[arg(long, value_parser = positive)]
    pub epochs: Option<usize>,
    #[arg(long, default_value_t = 32, value_parser = positive)]
    pub batch_size: usize,
    /// Learning rate [default: 0.05 for sgd, 0.001 for adam]
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
    /// Learning-rate schedule over the run
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    pub schedule: ScheduleArg,
    /// With --schedule step: multiply the learning rate by this after every epoch (PyTorch's StepLR)
    #[arg(long, default_value_t = 0.7, value_parser = positive_f64)]
    pub lr_decay: f64,
    /// SGD momentum
    #[arg(long, default_value_t = 0.9, value_parser = non_negative_f64)]
    pub momentum: f64,
    /// Nesterov momentum (SGD)
    #[arg(long)]
    pub nesterov: bool,
    /// L2 penalty added to the gradient, as torch.optim's weight_decay
    #[arg(long, default_value_t = 1e-3, value_parser = non_negative_f64)]
    pub weight_decay: f64,
    #[arg(long, value_enum, default_value_t = OptArg::Sgd)]
    pub optimizer: OptArg,
    /// The built-in LeNet-5's activation [default: relu]
    #[arg(long, value_enum, conflicts_with_all = ["model", "init"])]
    pub activation: Option<ActArg>,
    /// The built-in LeNet-5's pooling [default: max]
    #[arg(long, value_enum, conflicts_with_all = ["model", "init"])]
    pub pool: Option<PoolArg>,
    /// The built-in LeNet-5's loss [default: xent]
    #[arg(long, value_enum, conflicts_with_all = ["model", "init"])]
    pub loss: Option<LossArg>,
    /// Seed of the initialisation and the shuffling
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Save the model here (safetensors; optimizer state and the run's position go to
    /// NAME.optim.safetensors). The path is test-written before training starts
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also save to --save after every epoch, so a crash or divergence keeps the last good epoch
    #[arg(long, requires = "save")]
    pub save_every_epoch: bool,
    /// Start from this checkpoint (its model, weights, and optimizer state when saved beside it)
    #[arg(long, conflicts_with = "model")]
    pub init: Option<PathBuf>,
    /// Continue the run saved in --init exactly where it stopped (Ctrl-C, --save-every-epoch, --steps):
    /// its settings, data order, learning-rate schedule and position come from the checkpoint
    #[arg(long, requires = "init", conflicts_with_all = ["lr", "schedule", "lr_decay", "momentum", "nesterov",
        "weight_decay", "optimizer", "seed", "batch_size", "steps", "no_shuffle"])]
    pub resume: bool,
    /// Stop after this many steps in total
    #[arg(long, value_parser = positive)]
    pub steps: Option<usize>,
    /// Keep the files' order instead of shuffling every epoch
    #[arg(long)]
    pub no_shuffle: bool,
    /// Read loss and accuracy back every this many steps
    #[arg(long, default_value_t = 20, value_parser = positive)]
    pub log_every: usize,
    /// Draw loss and accuracy per logged step and per epoch into this PNG when training ends
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print one JSON summary on stdout instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The trained model: a checkpoint (safetensors), which names its architecture
    #[arg(long)]
    pub model: PathBuf,
    /// Folder with t10k-* IDX files [default: the bundled MNIST sample]
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[arg(long, default_value_t = 1000, value_parser = positive)]
    pub batch_size: usize,
    /// Print one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

impl Command {
    /// Whether the command prints JSON (its errors then go to stdout as a JSON object too).
    pub fn json(&self) -> bool {
        match self {
            Command::Train(a) => a.json,
            Command::Eval(a) => a.json,
            Command::Predict(a) => a.json,
            Command::Bench(a) => a.json,
            _ => false,
        }
    }
}
