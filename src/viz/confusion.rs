//! The confusion matrix of an evaluation (`wgcnn eval --plot`).

use std::path::Path;

use plotters::prelude::*;

use super::*;
use crate::error::Result;

/// Draw `confusion[true][predicted]` as a grid: each row shaded by the share of its class's images
/// (white 0 → dark blue 1), counts written in the cells when they fit, class names on both axes, and
/// each class's accuracy at the row's end. Written atomically to `path`.
pub fn plot_confusion(path: &Path, classes: &[String], confusion: &[Vec<u64>], title: &str) -> Result<()> {
    font()?;
    let k = classes.len().max(1);
    let cell: u32 = (640 / k as u32).clamp(4, 56);
    let names_w: u32 = if k <= 40 { 130 } else { 10 };
    let (left, top) = (names_w + 10, 60u32);
    let width = (left + cell * k as u32 + 90).max(620);
    let height = top + cell * k as u32 + names_w + 30;
    let mut pic = Picture::new(width, height);
    let total: u64 = confusion.iter().flatten().sum();
    let correct: u64 = (0..k).map(|i| confusion.get(i).and_then(|r| r.get(i)).copied().unwrap_or(0)).sum();
    let share = 100.0 * correct as f64 / total.max(1) as f64;
    pic.text(&format!("{title}: confusion matrix, {share:.2}% of {total} right"), (10, 10), 18)?;
    pic.text("predicted class →   (rows: true class; shade: share of the row)", (left as i32, 36), 13)?;
    {
        let area = pic.area();
        let label = |s: &str| -> String { s.chars().take(16).collect() };
        for (t, row) in confusion.iter().enumerate().take(k) {
            let n: u64 = row.iter().sum();
            let y = (top + t as u32 * cell) as i32;
            for (p, &v) in row.iter().enumerate().take(k) {
                let share = if n > 0 { v as f64 / n as f64 } else { 0.0 };
                let shade = |full: f64, c: f64| (255.0 - (255.0 - c) * share.sqrt().min(1.0) * full) as u8;
                let color = RGBColor(shade(1.0, 20.0), shade(1.0, 60.0), shade(1.0, 140.0));
                let x = (left + p as u32 * cell) as i32;
                area.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], color.filled()))
                    .map_err(render_err)?;
                area.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], RGBColor(220, 220, 220)))
                    .map_err(render_err)?;
                if cell >= 28 && v > 0 {
                    let ink = if share > 0.35 { WHITE } else { BLACK };
                    let text = v.to_string();
                    let size = if text.len() > 4 { 10 } else { 12 };
                    area.draw(&Text::new(text, (x + 3, y + cell as i32 / 2 - 6), (FONT, size).into_font().color(&ink)))
                        .map_err(render_err)?;
                }
            }
            if k <= 40 {
                area.draw(&Text::new(
                    label(&classes[t]),
                    (8, y + cell as i32 / 2 - 7),
                    (FONT, 13).into_font().color(&BLACK),
                ))
                .map_err(render_err)?;
            }
            let acc = if n > 0 {
                format!("{:.1}%", 100.0 * row.get(t).copied().unwrap_or(0) as f64 / n as f64)
            } else {
                "-".into()
            };
            let x = (left + k as u32 * cell + 6) as i32;
            area.draw(&Text::new(acc, (x, y + cell as i32 / 2 - 7), (FONT, 12).into_font().color(&BLACK)))
                .map_err(render_err)?;
        }
        if k <= 40 {
            let y = (top + k as u32 * cell + 6) as i32;
            for (p, name) in classes.iter().enumerate() {
                let x = (left + p as u32 * cell + cell / 2) as i32 - 6;
                let style = (FONT, 13).into_font().transform(FontTransform::Rotate90).color(&BLACK);
                area.draw(&Text::new(label(name), (x + 12, y), style)).map_err(render_err)?;
            }
        }
        area.present().map_err(render_err)?;
    }
    pic.save(path)
}
