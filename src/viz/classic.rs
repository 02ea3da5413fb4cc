//! The article's classic 3×3 filters run through the engine's conv kernel on a picture.

use std::path::{Path, PathBuf};

use super::*;
use crate::context::Context;
use crate::error::{io_err, Result};
use crate::kernels::activation::{activation_forward, Activation};
use crate::kernels::conv_fast::conv2d_forward_auto;
use crate::kernels::pool::{avgpool2d_forward, maxpool2d_forward};
use crate::shape::{Conv2dGeom, Pool2dGeom};
use crate::tensor::{DType, Tensor};

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
    let img = crate::digits::decode_picture(path)?;
    let img = if img.width().max(img.height()) > MAX_SIDE {
        img.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle)
    } else {
        img
    };
    let g = crate::digits::to_grey(&img);
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
    let _serial = ctx.serial();
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
