//! A trained model, layer by layer: its filters, every layer's maps, its vectors and probabilities.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::*;
use crate::context::Context;
use crate::error::{io_err, Error, Result};
use crate::graph::{Metrics, Params};
use crate::model::ModelSpec;

/// Every layer's output for one input, read back from the GPU.
pub struct Activations {
    /// The model's name.
    pub model: String,
    /// `[c, h, w]` of the input.
    pub input_shape: [usize; 3],
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
    Ok(Activations {
        model: spec.name.clone(),
        input_shape: spec.input,
        input: input.to_vec(),
        layers,
        probs: graph.probs.to_f32(ctx)?,
    })
}

/// Learned filters `[c_out, c_in, k, k]` as a grid: one row per output channel, one column per input
/// channel, diverging colours centred on 0 with a shared scale.
pub fn filter_grid(name: &str, values: &[f32], shape: &[usize]) -> Result<Picture> {
    let (co, ci, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
    if ci == 3 {
        // A filter reading a colour picture: one RGB tile per output channel, its three input
        // channels' weights as red, green and blue (mid-grey = 0).
        let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        let tiles: Vec<Tile> = (0..co)
            .map(|o| Tile {
                label: format!("{o}"),
                w: kw,
                h: kh,
                data: values[o * 3 * kh * kw..(o + 1) * 3 * kh * kw].to_vec(),
            })
            .collect();
        let title = format!("{name}.weight {co}x3x{kh}x{kw} (each filter's R, G, B weights as colour; mid-grey = 0)");
        return grid(&title, &tiles, co.min(16), 16, Scale::Rgb { lo: -max, hi: max });
    }
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
    let title = format!("What {} sees: one input through every layer (blue < 0 < red, per layer)", acts.model);
    pic.text(&title, (MARGIN as i32, 8), 18)?;
    let label_w = 170u32;
    let mut y = TITLE_H;
    // The input, grey.
    let [c, h, w] = acts.input_shape;
    pic.text(&format!("input {c} x {h} x {w}"), (MARGIN as i32, (y + 30) as i32), 14)?;
    for i in 0..c {
        let x = label_w + i as u32 * (w as u32 * zoom(w, h, 80) + 4);
        let map = &acts.input[i * h * w..(i + 1) * h * w];
        pic.blit(x, y, map, w.max(1), zoom(w, h, 80), Scale::Grey { lo: 0.0, hi: 1.0 });
    }
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
    let c = acts.input_shape[0];
    write_visualize_prepared(weights, acts, out, &vec![0.0; c], &vec![1.0; c])
}

/// [`write_visualize`] for a model whose inputs were normalised by `mean` and `std` per channel: the
/// input is drawn as the picture it was (`x · std + mean`, in [0, 1]); three channels as one colour
/// picture.
pub fn write_visualize_prepared(
    weights: &[(String, Vec<usize>, Vec<f32>)],
    acts: &Activations,
    out: &Path,
    mean: &[f32],
    std: &[f32],
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
            save(filter_grid(layer, v, shape)?, format!("filters-{}.png", layer.replace('.', "-")))?;
        }
    }
    let [c, h, w] = acts.input_shape;
    let plane = h * w;
    let shown: Vec<f32> = acts
        .input
        .iter()
        .enumerate()
        .map(|(i, &v)| v * std.get(i / plane).copied().unwrap_or(1.0) + mean.get(i / plane).copied().unwrap_or(0.0))
        .collect();
    let picture = if c == 3 {
        let tile = Tile { label: format!("RGB ({c}x{h}x{w})"), w, h, data: shown };
        grid("input", &[tile], 1, zoom(w, h, 224), Scale::Rgb { lo: 0.0, hi: 1.0 })?
    } else {
        let input: Vec<Tile> = (0..c)
            .map(|i| Tile {
                label: format!("{i} ({c}x{h}x{w})"),
                w,
                h,
                data: shown[i * plane..(i + 1) * plane].to_vec(),
            })
            .collect();
        grid("input", &input, c.min(8), zoom(w, h, 224), Scale::Grey { lo: 0.0, hi: 1.0 })?
    };
    save(picture, "input.png".into())?;
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
