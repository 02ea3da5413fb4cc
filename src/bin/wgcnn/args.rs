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

/// A fraction strictly between 0 and 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        Ok(v) => Err(format!("{v} must be between 0 and 1 (exclusive)")),
        Err(e) => Err(e.to_string()),
    }
}

/// Where the data is and how it is read: shared by train and eval.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// The data folder: MNIST-format IDX files, CIFAR-10/100 binary files, or folders of PNG/JPEG
    /// pictures, one per class (DIR/train/<class>/ with DIR/test/<class>/ or DIR/val/<class>/, or
    /// DIR/<class>/ split by --val-split) [default: the bundled MNIST sample]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With DIR/<class>/ folders (no train/ and test/): the fraction of each class held out for
    /// testing, drawn from --seed
    #[arg(long, default_value_t = 0.1, value_parser = fraction)]
    pub val_split: f64,
    /// CIFAR-100's labels: the 100 fine classes or the 20 coarse superclasses
    #[arg(long, value_enum, default_value_t = LabelsArg::Fine)]
    pub labels: LabelsArg,
    /// Decode the pictures again instead of using (and writing) the decoded-picture cache
    /// (WGCNN_DATA_CACHE names its folder, `off` disables it)
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum LabelsArg {
    Fine,
    Coarse,
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
    /// Train a model (default: LeNet-5, models/lenet5.toml) on IDX files, CIFAR files or folders of
    /// pictures (default: the bundled 10,000-digit MNIST sample).
    ///
    /// Pictures are converted to the model's input [C, H, W] (grey or RGB, resized with an antialiased
    /// bilinear filter), normalised per channel and, with --augment, cropped and flipped on the GPU.
    Train(Box<TrainArgs>),
    /// Accuracy, loss, per-class accuracy and the confusion matrix of a saved model on the test split of
    /// a data folder (its pictures prepared as the checkpoint records).
    Eval(EvalArgs),
    /// Classify PNG/JPEG pictures with a saved model, prepared as it was trained.
    ///
    /// Models trained on pictures: each is converted to the model's channels, resized to its input and
    /// normalised as the checkpoint records. Models trained on IDX digits (28x28 grey): each picture is
    /// converted to grey; when its border is lighter than mid-grey (dark ink on white paper) it is
    /// inverted to MNIST's white-on-black; the ink's bounding box is scaled to 20x20 and placed in
    /// 28x28 with the ink's centre of mass at pixel (14, 14), as MNIST was prepared (28x28 pictures
    /// are used as they are, after inversion).
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
    /// probabilities, and one overview; layers.json holds the numbers (the input as fed, every layer's
    /// output, the probabilities).
    Visualize(VisualizeArgs),
    /// Write a saved model as an ONNX file (opset 17) that onnxruntime and other runtimes read.
    ///
    /// The graph's input is `input` [N, C, H, W] float32 (any batch), already prepared as the checkpoint
    /// records: each channel's (pixel / 255 - mean) / std, stated in the file's metadata
    /// (`input_preparation`); its output is `logits` [N, classes]. Batch-norm becomes an inference-mode
    /// BatchNormalization, dropout is left out, and every tensor keeps its PyTorch name.
    Export(ExportArgs),
    /// Read an ONNX model into a checkpoint and its model file.
    ///
    /// The graph may use Conv, Gemm, MatMul (+ Add), Relu, Tanh, Sigmoid, MaxPool, AveragePool,
    /// GlobalAveragePool (or ReduceMean over H and W), BatchNormalization, Add, Concat, Flatten,
    /// Reshape to 2-D, Dropout and Identity, with one input [N, C, H, W] of fixed C, H and W; anything
    /// else is an error naming the node. Weights may be external data beside the file. Layers keep
    /// the PyTorch names the graph's tensors have.
    Import(ImportArgs),
}

#[derive(clap::Args)]
pub struct WeightsArgs {
    /// The weights, when not in --model's own checkpoint: any safetensors file of the model's tensors
    /// under their PyTorch names, e.g. a state_dict saved with safetensors.torch.save_file (loaded
    /// strictly; a missing num_batches_tracked is 0)
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// With --weights: the input preparation: none (x / 255), imagenet (torchvision's pretrained
    /// weights), or MEANS/STDS such as 0.5/0.25 [default: the weights file's, else none]
    #[arg(long, requires = "weights")]
    pub normalize: Option<wgcnn::data::Normalize>,
}

impl WeightsArgs {
    pub fn weights(&self) -> wgcnn::session::Weights {
        wgcnn::session::Weights { file: self.weights.clone(), normalize: self.normalize.clone() }
    }
}

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The trained model: a checkpoint (safetensors), which names its architecture
    pub checkpoint: PathBuf,
    /// The ONNX file to write (written whole or not at all)
    #[arg(long)]
    pub onnx: PathBuf,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The ONNX model to read
    pub onnx: PathBuf,
    /// The checkpoint to write (safetensors, with the model and its input preparation inside)
    #[arg(long)]
    pub out: PathBuf,
    /// The model file to write beside it [default: the checkpoint's path with .toml]
    #[arg(long)]
    pub model_file: Option<PathBuf>,
    /// The input preparation to record: auto (the file's, from a wgcnn export; else none), none
    /// (x / 255), imagenet (torchvision's pretrained weights), or MEANS/STDS such as 0.5/0.25
    #[arg(long, default_value = "auto")]
    pub normalize: String,
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
    /// A PNG or JPEG picture (prepared as for `predict`) [default: the first test picture of --data]
    pub image: Option<PathBuf>,
    /// The data folder for the default picture [default: the bundled MNIST sample]
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
    /// Time only the adapter's ceiling: its best 1024x1024x1024 matrix product (GFLOP/s), which every
    /// bench report also gives each model's GFLOP/s as a fraction of
    #[arg(long)]
    pub ceiling: bool,
    /// Augment the training pictures as `train --augment` does (e.g. crop=4,flip)
    #[arg(long, default_value = "none")]
    pub augment: wgcnn::data::Augment,
    /// Time every model file of this folder [models/] at --batch-sizes: training and inference
    /// images/s, GFLOP/s, the fraction of the ceiling and dispatches per step, beside each model's
    /// PyTorch twin on the same CPU threads when python3 imports torch (scripts/torch_bench.py)
    #[arg(long, num_args = 0..=1, default_missing_value = "models", conflicts_with_all = ["model", "ceiling"])]
    pub zoo: Option<PathBuf>,
    /// A tiny run for CI: batch 8, one window of 2 steps, inference batch 100
    #[arg(long)]
    pub smoke: bool,
    /// Print one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The trained model: a checkpoint (safetensors), which names its architecture; or, with
    /// --weights, a model file (.toml)
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub weights: WeightsArgs,
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
    #[command(flatten)]
    pub data: DataArgs,
    /// Input normalisation, per channel: auto (pictures and CIFAR: the training split's mean and std;
    /// IDX files: none, x/255), computed, none, imagenet, or MEANS/STDS such as 0.49,0.48,0.45/0.25,0.24,0.26.
    /// Stored in the checkpoint; with --init and auto, the checkpoint's is kept
    #[arg(long, default_value = "auto")]
    pub normalize: wgcnn::data::Normalize,
    /// Augment the training pictures on the GPU: crop=N (a random crop of the picture padded by N
    /// zero pixels), flip (random horizontal flips), and for drawn strokes rotate=DEG, shear=DEG
    /// (slant), scale=F (size x [1-F, 1+F]), shift=PX, thick=PX (strokes thicker or thinner), each drawn
    /// per picture up to the given amount; e.g. crop=4,flip or rotate=12,shear=15,scale=0.1,shift=2,thick=1
    /// [default: the model file's [train] augment, else none (flipped digits are wrong digits)]
    #[arg(long)]
    pub augment: Option<wgcnn::data::Augment>,
    /// Epochs to train [default: the model file's [train] epochs, else 10; with --resume, the saved run's]
    #[arg(long, value_parser = positive)]
    pub epochs: Option<usize>,
    /// Images per step [default: the model file's [train] batch_size, else 32]
    #[arg(long, value_parser = positive)]
    pub batch_size: Option<usize>,
    /// Learning rate [default: the model file's [train] lr, else 0.05 for sgd, 0.001 for adam]
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
    /// Learning-rate schedule over the run [default: the model file's [train] schedule, else cosine]
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// With --schedule step: multiply the learning rate by this after every epoch (PyTorch's StepLR)
    /// [default: the model file's [train] lr_decay, else 0.7]
    #[arg(long, value_parser = positive_f64)]
    pub lr_decay: Option<f64>,
    /// SGD momentum [default: the model file's [train] momentum, else 0.9]
    #[arg(long, value_parser = non_negative_f64)]
    pub momentum: Option<f64>,
    /// Nesterov momentum (SGD) [default: the model file's [train] nesterov, else off]
    #[arg(long)]
    pub nesterov: bool,
    /// L2 penalty added to the gradient, as torch.optim's weight_decay [default: the model file's
    /// [train] weight_decay, else 0.001]
    #[arg(long, value_parser = non_negative_f64)]
    pub weight_decay: Option<f64>,
    /// [default: the model file's [train] optimizer, else sgd]
    #[arg(long, value_enum)]
    pub optimizer: Option<OptArg>,
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
    /// Start from this checkpoint (its model, weights, and optimizer state when saved beside it); with
    /// --model, the model file's architecture and this file's weights: any safetensors file of its
    /// tensors under their PyTorch names, e.g. a state_dict saved with safetensors.torch.save_file
    /// (loaded strictly but for --reset layers; a missing num_batches_tracked is 0)
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// With --init: start these layers from a fresh initialisation instead (their shapes from the
    /// model: e.g. a new head for another number of classes, --reset fc); the file's tensors for them
    /// are not read
    #[arg(long, num_args = 1.., value_name = "LAYER", requires = "init")]
    pub reset: Vec<String>,
    /// Leave these layers' weights exactly as they start (fine-tuning the rest); a frozen batch-norm
    /// also keeps its running statistics
    #[arg(long, num_args = 1.., value_name = "LAYER")]
    pub freeze: Vec<String>,
    /// Continue the run saved in --init exactly where it stopped (Ctrl-C, --save-every-epoch, --steps):
    /// its settings, data order, learning-rate schedule and position come from the checkpoint
    #[arg(long, requires = "init", conflicts_with_all = ["model", "reset", "freeze", "lr", "schedule", "lr_decay", "momentum", "nesterov",
        "weight_decay", "optimizer", "seed", "batch_size", "steps", "no_shuffle", "normalize", "augment", "val_split"])]
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
    /// The trained model: a checkpoint (safetensors), which names its architecture; or, with
    /// --weights, a model file (.toml)
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub weights: WeightsArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// With --val-split: the seed the model was trained with (the same pictures are held out)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 1000, value_parser = positive)]
    pub batch_size: usize,
    /// Draw the confusion matrix into this PNG
    #[arg(long)]
    pub plot: Option<PathBuf>,
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
