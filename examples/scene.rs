//! Draw a photo-like test picture (sky gradient, sun, hills, a house with windows, film grain) to try
//! `wgcnn filters` on without a photo at hand:
//!
//!     cargo run --release --example scene -- scene.png [WIDTH HEIGHT]
//!     cargo run --release -- filters scene.png --out wgcnn-filters

use wgcnn::rng::Rng;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "scene.png".to_string());
    let size =
        |i: usize, default: u32| std::env::args().nth(i).map_or(default, |s| s.parse().expect("a size in pixels"));
    let (w, h) = (size(2, 480).max(1), size(3, 320).max(1));
    let mut rng = Rng::new(7);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        // Sky: light at the horizon, deeper blue above.
        let mut c = [110.0 + 90.0 * fy, 150.0 + 70.0 * fy, 235.0];
        // Sun.
        let (sx, sy) = (fx - 0.78, fy - 0.22);
        if sx * sx + sy * sy < 0.006 {
            c = [255.0, 230.0, 120.0];
        }
        // Two hills.
        let hill1 = 0.62 + 0.08 * (fx * 7.0).sin();
        let hill2 = 0.72 + 0.05 * (fx * 4.0 + 1.0).cos();
        if fy > hill1 {
            c = [70.0, 140.0, 60.0];
        }
        if fy > hill2 {
            c = [50.0, 110.0, 45.0];
        }
        // A house: wall, roof, door and two windows.
        if (0.2..0.42).contains(&fx) && (0.5..0.8).contains(&fy) {
            c = [200.0, 180.0, 150.0];
            let window = |x0: f32| (x0..x0 + 0.05).contains(&fx) && (0.56..0.64).contains(&fy);
            if window(0.24) || window(0.35) {
                c = [60.0, 80.0, 120.0];
            }
            if (0.295..0.325).contains(&fx) && (0.66..0.8).contains(&fy) {
                c = [110.0, 60.0, 30.0];
            }
        }
        let roof = 0.5 - (0.11 - (fx - 0.31).abs()) * 1.0;
        if (0.2..0.42).contains(&fx) && fy < 0.5 && fy > roof {
            c = [150.0, 50.0, 40.0];
        }
        let grain = rng.vec_f32(1, -3.0, 3.0)[0];
        image::Rgb(c.map(|v| (v + grain).clamp(0.0, 255.0) as u8))
    });
    img.save(&path).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    println!("{path}");
}
