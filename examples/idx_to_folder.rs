//! Write an IDX data set (MNIST, Fashion-MNIST) out as a tree of PNG pictures in the `ImageFolder`
//! layout, `OUT/train/<class>/<n>.png` and `OUT/test/<class>/<n>.png`: a folder of "your own images"
//! to try `wgcnn train --data OUT` on, and the data of the decoding benchmark in BENCHMARKS.md.
//!
//!     cargo run --release --example idx_to_folder -- /usr/share/datasets/fashion-mnist fashion-png [NAMES]
//!
//! NAMES: `fashion` names the class folders after Fashion-MNIST's garments (numbered so that they sort
//! in label order: `0_tshirt`, `1_trouser`, …); otherwise the folders are `0` to `9`.

use std::path::PathBuf;

use wgcnn::data::{self, Split};

const FASHION: [&str; 10] =
    ["0_tshirt", "1_trouser", "2_pullover", "3_dress", "4_coat", "5_sandal", "6_shirt", "7_sneaker", "8_bag", "9_boot"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(src), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: idx_to_folder IDX_DIR OUT_DIR [fashion]");
        std::process::exit(2);
    };
    let fashion = args.get(2).is_some_and(|a| a == "fashion");
    let (src, out) = (PathBuf::from(src), PathBuf::from(out));
    for (split, name) in [(Split::Train, "train"), (Split::Test, "test")] {
        let d = data::load(&src, split)?;
        let class = |l: usize| if fashion { FASHION[l].to_string() } else { l.to_string() };
        for c in 0..10 {
            std::fs::create_dir_all(out.join(name).join(class(c)))?;
        }
        for i in 0..d.len() {
            let class = class(d.labels[i] as usize);
            let pic = image::GrayImage::from_raw(d.cols as u32, d.rows as u32, d.image(i).to_vec()).ok_or("size")?;
            pic.save(out.join(name).join(class).join(format!("{i:05}.png")))?;
        }
        eprintln!("{name}: {} pictures written under {}", d.len(), out.join(name).display());
    }
    Ok(())
}
