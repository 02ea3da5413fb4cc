//! Pictures of what the network sees: the article's classic 3×3 filters run through the engine's conv
//! kernel, a trained LeNet's filters and feature maps, its class probabilities, and training curves.
//!
//! Every number drawn here was computed by wgcnn's GPU kernels; this module only lays the numbers out
//! as pixels (colour maps, labels and charts with `plotters`, PNG encoding with `image`) and writes each
//! file atomically.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::checkpoint::write_atomic;
use crate::context::Context;
use crate::error::{data_err, io_err, Error, Result};
use crate::graph::{Metrics, Params};
use crate::kernels::activation::{activation_forward, Activation};
use crate::kernels::conv_fast::conv2d_forward_auto;
use crate::kernels::pool::{avgpool2d_forward, maxpool2d_forward};
use crate::model::ModelSpec;
use crate::shape::{Conv2dGeom, Pool2dGeom};
use crate::tensor::{DType, Tensor};
use crate::train::EpochStats;

/// The font family every label uses (DejaVu Sans, bundled in `assets/fonts/`).
const FONT: &str = "sans-serif";

fn font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, include_bytes!("../assets/fonts/DejaVuSans.ttf"))
            .map_err(|_| "the bundled font could not be read".to_string())
    })
    .clone()
    .map_err(Error::Render)
}

fn render_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Render(format!("{e:?}"))
}

/// An RGB picture being drawn.
pub struct Picture {
    pub width: u32,
    pub height: u32,
    rgb: Vec<u8>,
}

impl Picture {
    pub fn new(width: u32, height: u32) -> Picture {
        Picture { width, height, rgb: vec![255; width as usize * height as usize * 3] }
    }

    /// A plotters drawing area over the picture (text, charts).
    fn area(&mut self) -> DrawingArea<BitMapBackend<'_>, Shift> {
        BitMapBackend::with_buffer(&mut self.rgb, (self.width, self.height)).into_drawing_area()
    }

    fn put(&mut self, x: u32, y: u32, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y as usize * self.width as usize + x as usize) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Draw `map` (`w × h` values) at (x, y), each value a `px × px` square coloured by `scale`.
    fn blit(&mut self, x: u32, y: u32, map: &[f32], w: usize, px: u32, scale: Scale) {
        for (i, &v) in map.iter().enumerate() {
            let c = scale.color(v);
            let (mx, my) = ((i % w) as u32, (i / w) as u32);
            for dy in 0..px {
                for dx in 0..px {
                    self.put(x + mx * px + dx, y + my * px + dy, c);
                }
            }
        }
    }

    fn text(&mut self, s: &str, (x, y): (i32, i32), size: u32) -> Result<()> {
        self.area().draw(&Text::new(s.to_string(), (x, y), (FONT, size).into_font().color(&BLACK))).map_err(render_err)
    }

    /// The raw RGB bytes, row by row.
    pub fn pixels(&self) -> &[u8] {
        &self.rgb
    }

    /// Encode as PNG and write it atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut png = Vec::new();
        let enc = image::codecs::png::PngEncoder::new(&mut png);
        image::ImageEncoder::write_image(enc, &self.rgb, self.width, self.height, image::ExtendedColorType::Rgb8)
            .map_err(render_err)?;
        write_atomic(path, &png)
    }
}

/// How values become colours.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// Black at `lo`, white at `hi` (clamped).
    Grey { lo: f32, hi: f32 },
    /// Blue below 0, white at 0, red above, saturating at ±`max`.
    Diverging { max: f32 },
}

impl Scale {
    /// A diverging scale for these values, symmetric around 0, saturating at the 99.5th percentile of
    /// |value| (a few extreme values, e.g. at zero-padded borders, do not wash out the rest).
    pub fn diverging(values: &[f32]) -> Scale {
        let mut mags: Vec<f32> = values.iter().filter(|v| v.is_finite()).map(|v| v.abs()).collect();
        if mags.is_empty() {
            return Scale::Diverging { max: 1.0 };
        }
        let k = ((mags.len() - 1) as f64 * 0.995).round() as usize;
        let (_, m, _) = mags.select_nth_unstable_by(k, f32::total_cmp);
        Scale::Diverging { max: if *m > 0.0 { *m } else { 1.0 } }
    }

    pub fn color(&self, v: f32) -> [u8; 3] {
        match *self {
            Scale::Grey { lo, hi } => {
                let t = ((v - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0);
                let g = (t * 255.0).round() as u8;
                [g, g, g]
            }
            Scale::Diverging { max } => {
                let t = (v / max).clamp(-1.0, 1.0);
                let (end, t) = if t < 0.0 { ([44.0, 90.0, 200.0], -t) } else { ([200.0, 40.0, 40.0], t) };
                let mix = |e: f32| (255.0 + (e - 255.0) * t).round() as u8;
                [mix(end[0]), mix(end[1]), mix(end[2])]
            }
        }
    }

    fn range(&self) -> (f32, f32) {
        match *self {
            Scale::Grey { lo, hi } => (lo, hi),
            Scale::Diverging { max } => (-max, max),
        }
    }
}

/// One map of a grid: its values (`w × h`, row-major) and a label.
pub struct Tile {
    pub label: String,
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

const MARGIN: u32 = 12;
const TITLE_H: u32 = 34;
const LABEL_H: u32 = 20;
const GAP: u32 = 14;
const BAR_W: u32 = 90;

fn fmt_value(v: f32) -> String {
    if v != 0.0 && (v.abs() >= 1000.0 || v.abs() < 0.01) {
        format!("{v:.1e}")
    } else {
        format!("{v:.2}")
    }
}

/// Draw a vertical colour bar for `scale` with its extremes (and 0 when diverging) labelled.
fn colorbar(pic: &mut Picture, x: u32, y: u32, h: u32, scale: Scale) -> Result<()> {
    let (lo, hi) = scale.range();
    for dy in 0..h {
        let v = hi - (hi - lo) * dy as f32 / (h - 1).max(1) as f32;
        let c = scale.color(v);
        for dx in 0..16 {
            pic.put(x + dx, y + dy, c);
        }
    }
    pic.text(&fmt_value(hi), (x as i32 + 20, y as i32 - 2), 13)?;
    pic.text(&fmt_value(lo), (x as i32 + 20, (y + h) as i32 - 12), 13)?;
    if let Scale::Diverging { .. } = scale {
        pic.text("0", (x as i32 + 20, (y + h / 2) as i32 - 7), 13)?;
    }
    Ok(())
}

/// A titled grid of maps, `cols` per row, each value `px` pixels wide, all coloured by `scale`, with a
/// colour bar. Cells are as large as the largest tile; smaller tiles (pooled maps) show smaller.
pub fn grid(title: &str, tiles: &[Tile], cols: usize, px: u32, scale: Scale) -> Result<Picture> {
    font()?;
    let cols = cols.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(cols).max(1);
    let cw = tiles.iter().map(|t| t.w).max().unwrap_or(1) as u32 * px;
    let ch = tiles.iter().map(|t| t.h).max().unwrap_or(1) as u32 * px;
    let cell_w = cw.max(90);
    let width = 2 * MARGIN + cols as u32 * (cell_w + GAP) + BAR_W;
    let height = TITLE_H + rows as u32 * (ch + LABEL_H + GAP) + MARGIN;
    let mut pic = Picture::new(width, height);
    pic.text(title, (MARGIN as i32, 8), 18)?;
    for (i, t) in tiles.iter().enumerate() {
        let x = MARGIN + (i % cols) as u32 * (cell_w + GAP);
        let y = TITLE_H + (i / cols) as u32 * (ch + LABEL_H + GAP);
        pic.blit(x, y, &t.data, t.w, px, scale);
        pic.text(&t.label, (x as i32, (y + ch + 3) as i32), 15)?;
    }
    let bar_h = (height - TITLE_H - MARGIN - 10).clamp(40, 300);
    colorbar(&mut pic, width - BAR_W + 8, TITLE_H + 8, bar_h, scale)?;
    Ok(pic)
}

// ---------------------------------------------------------------------------------------------
// The article's classic filters.

/// A named 3×3 kernel from the article.
pub struct ClassicKernel {
    pub name: &'static str,
    pub weights: [f32; 9],
}

/// Identity, three edge detectors, sharpen, box blur and Gaussian blur, in the article's order.
pub const CLASSIC: [ClassicKernel; 7] = [
    ClassicKernel { name: "identity", weights: [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0] },
    ClassicKernel { name: "edge-1", weights: [1.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 1.0] },
    ClassicKernel { name: "edge-2", weights: [0.0, 1.0, 0.0, 1.0, -4.0, 1.0, 0.0, 1.0, 0.0] },
    ClassicKernel { name: "edge-3", weights: [-1.0, -1.0, -1.0, -1.0, 8.0, -1.0, -1.0, -1.0, -1.0] },
    ClassicKernel { name: "sharpen", weights: [0.0, -1.0, 0.0, -1.0, 5.0, -1.0, 0.0, -1.0, 0.0] },
    ClassicKernel { name: "box-blur", weights: [1.0 / 9.0; 9] },
    ClassicKernel {
        name: "gaussian-blur",
        weights: [
            1.0 / 16.0,
            2.0 / 16.0,
            1.0 / 16.0,
            2.0 / 16.0,
            4.0 / 16.0,
            2.0 / 16.0,
            1.0 / 16.0,
            2.0 / 16.0,
            1.0 / 16.0,
        ],
    },
];

/// Which classic result the ReLU and pooling figure shows (edge-3: it has both signs).
pub const RECTIFIED: usize = 3;

/// Longest side pictures are scaled down to before filtering.
pub const MAX_SIDE: u32 = 512;

/// A grey picture, values in [0, 1].
#[derive(Clone, Debug)]
pub struct Grey {
    pub w: usize,
    pub h: usize,
    pub data: Vec<f32>,
}

/// Load a PNG or JPEG as grey in [0, 1], scaled down (aspect kept) when its longer side is past
/// [`MAX_SIDE`]. Missing, unreadable or zero-sized pictures are errors naming the file.
pub fn load_grey(path: &Path) -> Result<Grey> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    if bytes.is_empty() {
        return Err(data_err(path, "the file is empty, not an image"));
    }
    let img = image::load_from_memory(&bytes)
        .map_err(|e| data_err(path, format!("not a readable PNG or JPEG image: {e}")))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(data_err(path, "the image has no pixels"));
    }
    let img = if img.width().max(img.height()) > MAX_SIDE {
        img.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let g = img.to_luma8();
    Ok(Grey {
        w: g.width() as usize,
        h: g.height() as usize,
        data: g.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect(),
    })
}

/// The classic filters' results, all computed on the GPU.
pub struct FilterResults {
    pub input: Grey,
    /// One map per [`CLASSIC`] kernel, the input's size (zero padding 1).
    pub outputs: Vec<Vec<f32>>,
    /// ReLU of `outputs[RECTIFIED]`.
    pub relu: Vec<f32>,
    /// 2×2 max and average pooling of `relu`, `pool_w × pool_h`.
    pub max_pool: Vec<f32>,
    pub avg_pool: Vec<f32>,
    pub pool_w: usize,
    pub pool_h: usize,
}

/// Run every classic kernel over `img` with one conv2d launch (7 output channels), then ReLU and 2×2
/// max/average pooling of the edge map: one submit, then the results are read back.
pub fn run_filters(ctx: &Context, img: &Grey) -> Result<FilterResults> {
    let (w, h) = (img.w, img.h);
    let k = CLASSIC.len();
    let g = Conv2dGeom::square(1, 1, h, w, k, 3, 1, 1);
    g.validate("filters")?;
    let x = Tensor::from_f32(ctx, "filters.input", &[1, 1, h, w], &img.data)?;
    let weights: Vec<f32> = CLASSIC.iter().flat_map(|c| c.weights).collect();
    let wt = Tensor::from_f32(ctx, "filters.weights", &[k, 1, 3, 3], &weights)?;
    let bt = Tensor::zeros(ctx, "filters.bias", &[k], DType::F32)?;
    let y = Tensor::zeros(ctx, "filters.output", &[1, k, h, w], DType::F32)?;
    let conv = conv2d_forward_auto(ctx, "filters", &g, &x, &wt, &bt, &y)?;
    let plane = w * h;
    let edge = Tensor::zeros(ctx, "filters.edge", &[1, 1, h, w], DType::F32)?;
    let relu = Tensor::zeros(ctx, "filters.relu", &[1, 1, h, w], DType::F32)?;
    let pg = Pool2dGeom::square(1, 1, h, w, 2, 2);
    let (ph, pw) = if h >= 2 && w >= 2 { (pg.out_h(), pg.out_w()) } else { (0, 0) };
    // The edge map is a copy of one output channel (a buffer-to-buffer copy, no CPU round trip).
    let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("filters") });
    {
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("filters"), timestamp_writes: None });
        conv.record(&mut pass);
    }
    enc.copy_buffer_to_buffer(&y.buffer, (RECTIFIED * plane * 4) as u64, &edge.buffer, 0, (plane * 4) as u64);
    let act = activation_forward(ctx, "filters.relu", Activation::Relu, &edge, &relu)?;
    let pools = if ph > 0 && pw > 0 {
        let my = Tensor::zeros(ctx, "filters.maxpool", &[1, 1, ph, pw], DType::F32)?;
        let arg = Tensor::zeros(ctx, "filters.argmax", &[1, 1, ph, pw], DType::U32)?;
        let ay = Tensor::zeros(ctx, "filters.avgpool", &[1, 1, ph, pw], DType::F32)?;
        let lm = maxpool2d_forward(ctx, "filters.maxpool", &pg, &relu, &my, &arg)?;
        let la = avgpool2d_forward(ctx, "filters.avgpool", &pg, &relu, &ay)?;
        Some((my, ay, lm, la))
    } else {
        None
    };
    {
        let mut pass = enc
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("filters.rest"), timestamp_writes: None });
        act.record(&mut pass);
        if let Some((_, _, lm, la)) = &pools {
            lm.record(&mut pass);
            la.record(&mut pass);
        }
    }
    ctx.queue.submit([enc.finish()]);
    ctx.check_device_error()?;
    let all = y.to_f32(ctx)?;
    let outputs = all.chunks(plane).map(<[f32]>::to_vec).collect();
    let (max_pool, avg_pool) = match &pools {
        Some((my, ay, _, _)) => (my.to_f32(ctx)?, ay.to_f32(ctx)?),
        None => (Vec::new(), Vec::new()),
    };
    Ok(FilterResults {
        input: img.clone(),
        outputs,
        relu: relu.to_f32(ctx)?,
        max_pool,
        avg_pool,
        pool_w: pw,
        pool_h: ph,
    })
}

/// Pixels per value so that a `w × h` map is drawn about `target` pixels on its longer side.
fn zoom(w: usize, h: usize, target: usize) -> u32 {
    (target / w.max(h).max(1)).clamp(1, 32) as u32
}

/// Write `filters.png` (the input and every classic result, labelled with its kernel), one
/// `filter-<name>.png` per kernel at the input's size, and `relu-pool.png` (the edge map, its ReLU,
/// and its 2×2 max and average pooling). Returns the files written.
pub fn write_filters(res: &FilterResults, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let (w, h) = (res.input.w, res.input.h);
    let px = zoom(w, h, 240);
    let grey = Scale::Grey { lo: 0.0, hi: 1.0 };
    let kernel_text = |k: &ClassicKernel| {
        let f = |v: f32| if v.fract() == 0.0 { format!("{v}") } else { format!("{v:.2}") };
        format!(
            "{} [{} {} {} | {} {} {} | {} {} {}]",
            k.name,
            f(k.weights[0]),
            f(k.weights[1]),
            f(k.weights[2]),
            f(k.weights[3]),
            f(k.weights[4]),
            f(k.weights[5]),
            f(k.weights[6]),
            f(k.weights[7]),
            f(k.weights[8])
        )
    };
    let mut tiles = vec![Tile { label: format!("input {w}x{h}"), w, h, data: res.input.data.clone() }];
    for (k, o) in CLASSIC.iter().zip(&res.outputs) {
        tiles.push(Tile { label: k.name.to_string(), w, h, data: o.clone() });
    }
    let mut files = Vec::new();
    let title = "Classic 3x3 filters through wgcnn's conv2d kernel (values clamped to [0, 1])";
    let pic = grid(title, &tiles, 4, px, grey)?;
    let path = out.join("filters.png");
    pic.save(&path)?;
    files.push(path);
    for (k, o) in CLASSIC.iter().zip(&res.outputs) {
        let title = kernel_text(k);
        let pic = grid(&title, &[Tile { label: format!("{w}x{h}"), w, h, data: o.clone() }], 1, zoom(w, h, 400), grey)?;
        let path = out.join(format!("filter-{}.png", k.name));
        pic.save(&path)?;
        files.push(path);
    }
    let edge = &res.outputs[RECTIFIED];
    let scale = Scale::diverging(edge);
    let name = CLASSIC[RECTIFIED].name;
    let mut tiles = vec![
        Tile { label: format!("{name} {w}x{h}"), w, h, data: edge.clone() },
        Tile { label: "ReLU".into(), w, h, data: res.relu.clone() },
    ];
    if res.pool_w > 0 {
        let (pw, ph) = (res.pool_w, res.pool_h);
        tiles.push(Tile { label: format!("max-pool 2x2: {pw}x{ph}"), w: pw, h: ph, data: res.max_pool.clone() });
        tiles.push(Tile { label: format!("avg-pool 2x2: {pw}x{ph}"), w: pw, h: ph, data: res.avg_pool.clone() });
    }
    let title = format!("Feature map ({name}), ReLU, and pooling (blue < 0 < red)");
    let pic = grid(&title, &tiles, 4, px, scale)?;
    let path = out.join("relu-pool.png");
    pic.save(&path)?;
    files.push(path);
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// A trained LeNet, layer by layer.

/// Every layer's output for one input, read back from the GPU.
pub struct Activations {
    pub input: Vec<f32>,
    /// (layer tag, shape without the batch, values).
    pub layers: Vec<LayerOutput>,
    pub probs: Vec<f32>,
}

/// A layer's tag, output shape (without the batch) and values.
pub type LayerOutput = (String, Vec<usize>, Vec<f32>);

impl Activations {
    /// The layers with `[c, h, w]` outputs (conv, activation, pool).
    fn maps(&self) -> impl Iterator<Item = &LayerOutput> {
        self.layers.iter().filter(|(_, s, _)| s.len() == 3)
    }

    /// The fully connected layers and their activations (vectors; the flatten, a view, left out).
    fn vectors(&self) -> impl Iterator<Item = &LayerOutput> {
        self.layers.iter().filter(|(t, s, _)| s.len() == 1 && !t.starts_with("flatten"))
    }
}

/// Run the forward graph on one input (`c·h·w` values) and read back every layer's output. Build the
/// context with [`crate::KernelSet::Plain`] to see each conv's output before its ReLU.
pub fn run_layers(ctx: &Context, spec: &ModelSpec, params: &Params, input: &[f32]) -> Result<Activations> {
    let [c, h, w] = spec.input;
    if input.len() != c * h * w {
        return Err(Error::Train(format!("the input has {} values, {} expects {c}x{h}x{w}", input.len(), spec.name)));
    }
    let metrics = Metrics::new(ctx, "visualize")?;
    let graph = crate::graph::Graph::build(ctx, spec, params, &metrics, 1, false)?;
    graph.x.write_f32(ctx, input)?;
    ctx.submit_pass("visualize", |pass| graph.record_forward(pass))?;
    let mut layers = Vec::new();
    for (tag, t) in &graph.outputs {
        layers.push((tag.clone(), t.shape[1..].to_vec(), t.to_f32(ctx)?));
    }
    Ok(Activations { input: input.to_vec(), layers, probs: graph.probs.to_f32(ctx)? })
}

/// Learned filters `[c_out, c_in, k, k]` as a grid: one row per output channel, one column per input
/// channel, diverging colours centred on 0 with a shared scale.
pub fn filter_grid(name: &str, values: &[f32], shape: &[usize]) -> Result<Picture> {
    let (co, ci, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
    let tiles: Vec<Tile> = (0..co * ci)
        .map(|i| Tile {
            label: if ci == 1 { format!("{}", i) } else { format!("{},{}", i / ci, i % ci) },
            w: kw,
            h: kh,
            data: values[i * kh * kw..(i + 1) * kh * kw].to_vec(),
        })
        .collect();
    let title = format!("{name}.weight {co}x{ci}x{kh}x{kw} (out,in; blue < 0 < red)");
    grid(&title, &tiles, if ci == 1 { co } else { ci }, if ci == 1 { 16 } else { 10 }, Scale::diverging(values))
}

/// One layer's feature maps as a grid labelled with the layer's shape.
pub fn map_grid(tag: &str, shape: &[usize], values: &[f32]) -> Result<Picture> {
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let tiles: Vec<Tile> = (0..c)
        .map(|i| Tile { label: format!("{i}"), w, h, data: values[i * h * w..(i + 1) * h * w].to_vec() })
        .collect();
    let title = format!("{tag}: {c} x {h} x {w}");
    grid(&title, &tiles, c.min(8), zoom(w, h, 112), Scale::diverging(values))
}

/// Draw a bar chart of `values` on `area`, the bar `highlight` in red.
fn bars(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    values: &[f32],
    highlight: Option<usize>,
    y_range: (f32, f32),
) -> Result<()> {
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 16))
        .margin(8)
        .x_label_area_size(26)
        .y_label_area_size(46)
        .build_cartesian_2d(-0.5f32..values.len() as f32 - 0.5, y_range.0..y_range.1)
        .map_err(render_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(values.len().min(12))
        .x_label_formatter(&|v| format!("{}", v.round() as i64))
        .label_style((FONT, 12))
        .draw()
        .map_err(render_err)?;
    chart
        .draw_series(values.iter().enumerate().map(|(i, &v)| {
            let color = if Some(i) == highlight { RGBColor(200, 40, 40) } else { RGBColor(70, 110, 180) };
            Rectangle::new([(i as f32 - 0.4, 0.0f32.max(y_range.0)), (i as f32 + 0.4, v)], color.filled())
        }))
        .map_err(render_err)?;
    Ok(())
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

/// The fully connected activations and the output probabilities (predicted class in red).
pub fn fc_chart(acts: &Activations) -> Result<Picture> {
    font()?;
    let fcs: Vec<&LayerOutput> = acts.vectors().collect();
    let rows = fcs.len() as u32 + 1;
    let mut pic = Picture::new(900, 230 * rows);
    let best = argmax(&acts.probs);
    {
        let root = pic.area();
        let parts = root.split_evenly((rows as usize, 1));
        for (area, (tag, shape, v)) in parts.iter().zip(&fcs) {
            let lo = v.iter().cloned().fold(0.0f32, f32::min);
            let hi = v.iter().cloned().fold(0.0f32, f32::max).max(lo + 1e-6);
            bars(area, &format!("{tag}: {} values", shape[0]), v, None, (lo, hi * 1.05))?;
        }
        let title = format!("class probabilities: predicted {} ({:.1}%)", best, 100.0 * acts.probs[best]);
        bars(&parts[rows as usize - 1], &title, &acts.probs, Some(best), (0.0, 1.0))?;
        root.present().map_err(render_err)?;
    }
    Ok(pic)
}

/// One picture of the whole forward pass, top to bottom: the input, each conv/activation/pool layer's
/// maps in a row, the fully connected layers as strips, and the probabilities.
pub fn overview(acts: &Activations) -> Result<Picture> {
    font()?;
    let maps: Vec<&LayerOutput> = acts.maps().collect();
    let fcs: Vec<&LayerOutput> = acts.vectors().collect();
    let width = 1100u32;
    let row_h = 92u32;
    let height = TITLE_H + (1 + maps.len() as u32) * row_h + fcs.len() as u32 * 44 + 220;
    let mut pic = Picture::new(width, height);
    pic.text("What LeNet-5 sees: one input through every layer (blue < 0 < red, per layer)", (MARGIN as i32, 8), 18)?;
    let label_w = 170u32;
    let mut y = TITLE_H;
    // The input, grey.
    let side = (acts.input.len() as f64).sqrt() as usize;
    pic.text(&format!("input 1 x {side} x {side}"), (MARGIN as i32, (y + 30) as i32), 14)?;
    pic.blit(label_w, y, &acts.input, side.max(1), zoom(side, side, 80), Scale::Grey { lo: 0.0, hi: 1.0 });
    y += row_h;
    for (tag, shape, v) in &maps {
        let (c, h, w) = (shape[0], shape[1], shape[2]);
        pic.text(&format!("{tag} {c}x{h}x{w}"), (MARGIN as i32, (y + 30) as i32), 14)?;
        let scale = Scale::diverging(v);
        let px = zoom(w, h, 80).min(((width - label_w) / (c as u32 * (w as u32 + 2))).max(1));
        for i in 0..c {
            let x = label_w + i as u32 * (w as u32 * px + 4);
            pic.blit(x, y, &v[i * h * w..(i + 1) * h * w], w, px, scale);
        }
        y += row_h;
    }
    for (tag, shape, v) in &fcs {
        pic.text(&format!("{tag} {}", shape[0]), (MARGIN as i32, (y + 10) as i32), 14)?;
        let scale = Scale::diverging(v);
        let px = ((width - label_w - MARGIN) / shape[0].max(1) as u32).clamp(1, 30);
        for (i, &val) in v.iter().enumerate() {
            let c = scale.color(val);
            for dx in 0..px.saturating_sub(1).max(1) {
                for dy in 0..30 {
                    pic.put(label_w + i as u32 * px + dx, y + dy, c);
                }
            }
        }
        y += 44;
    }
    let best = argmax(&acts.probs);
    {
        let root = pic.area();
        let area = root.margin(y as i32, 0, 0, 0);
        bars(
            &area,
            &format!("output: class {best} ({:.1}%)", 100.0 * acts.probs[best]),
            &acts.probs,
            Some(best),
            (0.0, 1.0),
        )?;
        root.present().map_err(render_err)?;
    }
    Ok(pic)
}

/// Write the filter grids of every conv layer, one feature-map grid per conv/activation/pool layer,
/// `fc.png` and `overview.png`. `weights` are the model's parameters by PyTorch name.
pub fn write_visualize(
    weights: &[(String, Vec<usize>, Vec<f32>)],
    acts: &Activations,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let mut files = Vec::new();
    let mut save = |pic: Picture, name: String| -> Result<()> {
        let path = out.join(name);
        pic.save(&path)?;
        files.push(path);
        Ok(())
    };
    for (name, shape, v) in weights {
        if shape.len() == 4 {
            let layer = name.trim_end_matches(".weight");
            save(filter_grid(layer, v, shape)?, format!("filters-{layer}.png"))?;
        }
    }
    let input_side = (acts.input.len() as f64).sqrt() as usize;
    let input =
        Tile { label: format!("1x{input_side}x{input_side}"), w: input_side, h: input_side, data: acts.input.clone() };
    save(grid("input", &[input], 1, 8, Scale::Grey { lo: 0.0, hi: 1.0 })?, "input.png".into())?;
    for (i, (tag, shape, v)) in acts.layers.iter().enumerate() {
        if shape.len() == 3 {
            let file = tag.replace('.', "-");
            save(map_grid(tag, shape, v)?, format!("maps-{:02}-{file}.png", i + 1))?;
        }
    }
    save(fc_chart(acts)?, "fc.png".into())?;
    save(overview(acts)?, "overview.png".into())?;
    Ok(files)
}

// ---------------------------------------------------------------------------------------------
// Training curves.

/// One logged training window: position in epochs (e.g. 2.5 = half-way through epoch 3), mean loss
/// and accuracy over the window.
#[derive(Clone, Copy, Debug)]
pub struct StepPoint {
    pub at: f64,
    pub loss: f64,
    pub accuracy: f64,
}

/// Loss (top) and accuracy (bottom) against epochs: training windows as thin lines, test figures after
/// each epoch as marked lines. Written atomically to `path`.
pub fn plot_training(path: &Path, steps: &[StepPoint], epochs: &[EpochStats]) -> Result<()> {
    font()?;
    let mut pic = Picture::new(900, 640);
    {
        let root = pic.area();
        root.fill(&WHITE).map_err(render_err)?;
        let (top, bottom) = root.split_vertically(320);
        let x_max = steps.iter().map(|s| s.at).chain(epochs.iter().map(|e| e.epoch as f64)).fold(1.0f64, f64::max);
        let loss_max = steps
            .iter()
            .map(|s| s.loss)
            .chain(epochs.iter().map(|e| e.test.loss))
            .filter(|v| v.is_finite())
            .fold(0.1f64, f64::max);
        let train_color = RGBColor(70, 110, 180);
        let test_color = RGBColor(200, 40, 40);
        let draw = |area: &DrawingArea<BitMapBackend<'_>, Shift>,
                    title: &str,
                    y: std::ops::Range<f64>,
                    train: Vec<(f64, f64)>,
                    test: Vec<(f64, f64)>|
         -> Result<()> {
            let mut chart = ChartBuilder::on(area)
                .caption(title, (FONT, 18))
                .margin(10)
                .x_label_area_size(34)
                .y_label_area_size(56)
                .build_cartesian_2d(0.0..x_max, y)
                .map_err(render_err)?;
            chart.configure_mesh().x_desc("epoch").label_style((FONT, 13)).draw().map_err(render_err)?;
            chart
                .draw_series(LineSeries::new(train, train_color.stroke_width(1)))
                .map_err(render_err)?
                .label("training (each logged window)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], train_color));
            chart
                .draw_series(LineSeries::new(test.clone(), test_color.stroke_width(2)))
                .map_err(render_err)?
                .label("test (after each epoch)")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], test_color));
            chart.draw_series(test.into_iter().map(|p| Circle::new(p, 4, test_color.filled()))).map_err(render_err)?;
            chart
                .configure_series_labels()
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(render_err)
        };
        draw(
            &top,
            "loss",
            0.0..loss_max * 1.05,
            steps.iter().map(|s| (s.at, s.loss)).collect(),
            epochs.iter().map(|e| (e.epoch as f64, e.test.loss)).collect(),
        )?;
        let acc_min = steps
            .iter()
            .map(|s| s.accuracy)
            .chain(epochs.iter().map(|e| e.test.accuracy))
            .fold(1.0f64, f64::min)
            .clamp(0.0, 0.95);
        draw(
            &bottom,
            "accuracy",
            (acc_min - 0.02).max(0.0)..1.0,
            steps.iter().map(|s| (s.at, s.accuracy)).collect(),
            epochs.iter().map(|e| (e.epoch as f64, e.test.accuracy)).collect(),
        )?;
        root.present().map_err(render_err)?;
    }
    pic.save(path)
}
