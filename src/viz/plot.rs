//! Training curves.

use std::path::Path;

use plotters::prelude::*;

use super::*;
use crate::error::Result;
use crate::train::EpochStats;

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
