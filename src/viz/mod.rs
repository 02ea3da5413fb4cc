//! Pictures of what the network sees: the article's classic 3×3 filters run through the engine's conv
//! kernel, a trained LeNet's filters and feature maps, its class probabilities, and training curves.
//!
//! Every number drawn here was computed by wgcnn's GPU kernels; this module only lays the numbers out
//! as pixels (colour maps, labels and charts with `plotters`, PNG encoding with `image`) and writes each
//! file atomically.

mod classic;
mod confusion;
mod model;
mod plot;

pub use classic::*;
pub use confusion::*;
pub use model::*;
pub use plot::*;

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
#[cfg(not(target_arch = "wasm32"))]
use plotters::style::{register_font, FontStyle};

use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};

/// The font family every label uses (DejaVu Sans, bundled in `assets/fonts/`).
const FONT: &str = "sans-serif";

#[cfg(not(target_arch = "wasm32"))]
fn font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FONT, FontStyle::Normal, include_bytes!("../../assets/fonts/DejaVuSans.ttf"))
            .map_err(|_| "the bundled font could not be read".to_string())
    })
    .clone()
    .map_err(Error::Render)
}

/// plotters has no font registry in wasm builds: the labelled pictures are drawn natively (the page
/// lays out the same numbers and colours itself).
#[cfg(target_arch = "wasm32")]
fn font() -> Result<()> {
    Err(Error::Render("labelled pictures are drawn by the native build only (no font in a wasm build)".into()))
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
        // A colour map is three planes: one pixel takes a value from each.
        let n = if let Scale::Rgb { .. } = scale { map.len() / 3 } else { map.len() };
        for (i, &v) in map[..n].iter().enumerate() {
            let c = match scale {
                Scale::Rgb { .. } => [0, 1, 2].map(|ch| scale.color(map[ch * n + i])[0]),
                _ => scale.color(v),
            };
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
    /// Colour pictures: a map holds three planes (red, green, blue), each channel black at `lo` and
    /// full at `hi` (clamped).
    Rgb { lo: f32, hi: f32 },
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
            Scale::Grey { lo, hi } | Scale::Rgb { lo, hi } => {
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
            Scale::Grey { lo, hi } | Scale::Rgb { lo, hi } => (lo, hi),
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

/// Pixels per value so that a `w × h` map is drawn about `target` pixels on its longer side.
pub(crate) fn zoom(w: usize, h: usize, target: usize) -> u32 {
    (target / w.max(h).max(1)).clamp(1, 32) as u32
}
