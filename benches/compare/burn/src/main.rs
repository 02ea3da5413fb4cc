//! LeNet-5 in Burn on its wgpu backend: the same layers, batch sizes and timing windows as
//! `wgcnn bench`, so `benches/compare/burn.sh` can put the two side by side on one adapter.
//!
//! Prints one JSON object: training images/s per batch size (median of windows, the device
//! synced before each window's clock stops) and inference images/s at batch 1000.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use std::time::Instant;

#[derive(Module, Debug)]
struct LeNet {
    conv1: Conv2d,
    conv2: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
    relu: Relu,
}

impl LeNet {
    fn new(device: &Device) -> Self {
        Self {
            conv1: Conv2dConfig::new([1, 6], [5, 5]).with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2)).init(device),
            conv2: Conv2dConfig::new([6, 16], [5, 5]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(400, 120).init(device),
            fc2: LinearConfig::new(120, 84).init(device),
            fc3: LinearConfig::new(84, 10).init(device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.relu.forward(self.conv1.forward(x)));
        let x = self.pool.forward(self.relu.forward(self.conv2.forward(x)));
        let [n, c, h, w] = x.dims();
        let x = x.reshape([n, c * h * w]);
        let x = self.relu.forward(self.fc1.forward(x));
        let x = self.relu.forward(self.fc2.forward(x));
        self.fc3.forward(x)
    }
}

/// Deterministic pseudo-random pixels and labels (the figure is throughput; the data's values
/// do not change the work).
struct Data {
    state: u64,
}

impl Data {
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }
    fn batch(&mut self, n: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let pixels: Vec<f32> = (0..n * 784).map(|_| (self.next() % 256) as f32 / 255.0).collect();
        let labels: Vec<i64> = (0..n).map(|_| (self.next() % 10) as i64).collect();
        (
            Tensor::from_data(TensorData::new(pixels, [n, 1, 28, 28]), device),
            Tensor::from_data(TensorData::new(labels, [n]), device),
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a whole number"))
        .unwrap_or(default)
}

fn train(device: &Device, batch: usize, warmup: usize, windows: usize, steps: usize) -> f64 {
    let mut model = LeNet::new(device);
    let mut optim = SgdConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut data = Data { state: 0x9E37_79B9_7F4A_7C15 };
    let mut step = |model: LeNet| {
        let (x, y) = data.batch(batch, device);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(0.01, model, grads)
    };
    for _ in 0..warmup {
        model = step(model);
    }
    device.sync().expect("the device finished its work");
    let mut rates = Vec::new();
    for _ in 0..windows {
        let t = Instant::now();
        for _ in 0..steps {
            model = step(model);
        }
        device.sync().expect("the device finished its work");
        rates.push((batch * steps) as f64 / t.elapsed().as_secs_f64());
    }
    median(rates)
}

fn infer(device: &Device, batch: usize, windows: usize) -> f64 {
    let model = LeNet::new(device);
    let mut data = Data { state: 0x2545_F491_4F6C_DD1D };
    // A fresh batch each time, and the logits summed and read back: the figure counts a finished
    // forward pass (with the same input twice, a lazy backend could answer from what it holds).
    let mut once = || {
        let (x, _) = data.batch(batch, device);
        model.forward(x).sum().into_scalar::<f32>()
    };
    let mut check = once();
    let mut rates = Vec::new();
    for _ in 0..windows {
        let t = Instant::now();
        check += once();
        rates.push(batch as f64 / t.elapsed().as_secs_f64());
    }
    eprintln!("burn inference: logits summed over the runs {check:.3}");
    median(rates)
}

fn main() {
    let device = Device::wgpu(Default::default());
    let warmup = arg("--warmup", 5);
    let windows = arg("--windows", 5);
    let steps = arg("--steps", 10);
    let first = Instant::now();
    let mut rows = Vec::new();
    for batch in [64usize, 256] {
        let rate = train(&device.clone().autodiff(), batch, warmup, windows, steps);
        eprintln!("burn training batch {batch}: {rate:.1} images/s");
        rows.push(format!("{{\"batch\": {batch}, \"images_per_sec\": {rate:.1}}}"));
    }
    let inference = infer(&device, 1000, windows);
    eprintln!("burn inference batch 1000: {inference:.1} images/s ({:.0} s in all)", first.elapsed().as_secs_f64());
    println!(
        "{{\"engine\": \"burn 0.22.1 wgpu\", \"training\": [{}], \"inference\": {{\"batch\": 1000, \"images_per_sec\": {inference:.1}}}}}",
        rows.join(", ")
    );
}
