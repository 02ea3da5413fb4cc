//! Folders of pictures, one folder per class (torchvision's `ImageFolder` layout).
//!
//! - Classes are the class folders' names, sorted (byte order); labels number them from 0.
//! - A class folder is read recursively (links followed; a link loop is an error naming it); files are
//!   taken in sorted path order.
//! - Names starting with a dot (`.DS_Store`, `.ipynb_checkpoints`) are skipped, and so are files that
//!   are not `.png`, `.jpg` or `.jpeg` by their extension (any case): they are counted and reported,
//!   never decoded.
//! - A PNG or JPEG that cannot be used (corrupt or truncated, 16-bit, CMYK, smaller than 8×8) is an
//!   error naming it: every such file is listed (the first ten, with the count), none is dropped
//!   silently.
//! - No class folder, a single class, an empty class folder, or a test class the training split lacks
//!   is an error naming it.
//!
//! Pictures are decoded on every core, converted to the model's `[C, H, W]` ([`super::prep`]), and
//! cached ([`super::cache`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{cache, prep, Dataset, LoadOptions, LoadProgress, SourceKind, MAX_CLASSES};
use crate::error::{data_err, io_err, Error, Result};
use crate::rng::Rng;

/// The pictures of one split: files and their labels, in order.
#[derive(Clone, Debug)]
pub struct Listing {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub files: Vec<(PathBuf, u8)>,
    /// Files skipped (dot names, other extensions), with a few of them.
    pub skipped: usize,
    pub skipped_examples: Vec<PathBuf>,
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

fn is_picture(p: &Path) -> bool {
    p.extension().is_some_and(|e| {
        let e = e.to_string_lossy().to_ascii_lowercase();
        e == "png" || e == "jpg" || e == "jpeg"
    })
}

/// Sorted entries of `dir` (names starting with a dot left out, and counted in `hidden`).
fn entries(dir: &Path, hidden: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_err(dir, e))?;
        if is_hidden(&e.file_name()) {
            hidden.push(e.path());
        } else {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The class folders of `root` (sorted), and the other entries found beside them.
fn class_dirs(root: &Path, skipped: &mut Vec<PathBuf>) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for p in entries(root, skipped)? {
        // `metadata` follows links: a link to a folder is a class folder.
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => dirs.push(p),
            Ok(_) => skipped.push(p),
            Err(e) => return Err(io_err(&p, e)),
        }
    }
    Ok(dirs)
}

/// Every file under `dir` (recursively, links followed), sorted by path.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, skipped: &mut Vec<PathBuf>, seen: &mut BTreeSet<PathBuf>) -> Result<()> {
    let real = std::fs::canonicalize(dir).map_err(|e| io_err(dir, e))?;
    if !seen.insert(real.clone()) {
        return Err(data_err(dir, format!("a link loop: this folder is {} again (remove the link)", real.display())));
    }
    for p in entries(dir, skipped)? {
        let m = std::fs::metadata(&p).map_err(|e| io_err(&p, e))?;
        if m.is_dir() {
            walk(&p, files, skipped, seen)?;
        } else if m.is_file() && is_picture(&p) {
            files.push(p);
        } else {
            skipped.push(p);
        }
    }
    seen.remove(&real);
    Ok(())
}

/// List the class folders of `root`; with `classes`, the names must be among them (a test split).
pub fn list(root: &Path, classes: Option<&[String]>) -> Result<Listing> {
    let mut skipped = Vec::new();
    let dirs = class_dirs(root, &mut skipped)?;
    if dirs.is_empty() {
        return Err(data_err(
            root,
            "no class folders: expected one folder of pictures per class (e.g. cats/ and dogs/), or IDX or CIFAR files",
        ));
    }
    let names: Vec<String> =
        dirs.iter().map(|d| d.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect();
    let all: Vec<String> = match classes {
        None => {
            if names.len() < 2 {
                return Err(data_err(
                    root,
                    format!("only one class folder ({}): a classifier needs at least two classes", names[0]),
                ));
            }
            if names.len() > MAX_CLASSES {
                return Err(data_err(root, format!("{} class folders: at most {MAX_CLASSES} classes", names.len())));
            }
            names.clone()
        }
        Some(train) => {
            if let Some(n) = names.iter().find(|n| !train.contains(n)) {
                return Err(data_err(
                    &root.join(n),
                    format!("class {n:?} is not among the training split's classes ({})", train.join(", ")),
                ));
            }
            train.to_vec()
        }
    };
    let mut files = Vec::new();
    for (d, n) in dirs.iter().zip(&names) {
        let label = all.iter().position(|c| c == n).expect("checked above") as u8;
        let mut found = Vec::new();
        walk(d, &mut found, &mut skipped, &mut BTreeSet::new())?;
        if found.is_empty() {
            return Err(data_err(d, format!("class folder {n:?} holds no PNG or JPEG pictures")));
        }
        files.extend(found.into_iter().map(|f| (f, label)));
    }
    let skipped_examples = skipped.iter().take(5).cloned().collect();
    Ok(Listing { root: root.to_path_buf(), classes: all, files, skipped: skipped.len(), skipped_examples })
}

/// The number of colour components a JPEG's frame header declares (4: CMYK or YCCK), if it is one.
fn jpeg_components(bytes: &[u8]) -> Option<u8> {
    if !bytes.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xff {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xff {
            at += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        // Start of frame (baseline, progressive, …; not DHT 0xc4, JPG 0xc8, DAC 0xcc).
        if (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker) {
            return bytes.get(at + 9).copied();
        }
        at += 2 + len;
    }
    None
}

/// Decode one picture file into `[C, H, W]` bytes.
pub fn decode_file(path: &Path, input: [usize; 3]) -> Result<Vec<u8>> {
    let (f, len) = crate::fsio::open_regular(path)?;
    if len > 256 << 20 {
        return Err(data_err(path, format!("{len} bytes: over the 256 MiB cap on a picture file")));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    std::io::Read::read_to_end(&mut std::io::BufReader::new(f), &mut bytes).map_err(|e| io_err(path, e))?;
    decode_bytes(path, &bytes, input)
}

/// [`decode_file`] on a file's bytes (e.g. a picture a browser page was given), `path` naming it in
/// errors.
pub fn decode_bytes(path: &Path, bytes: &[u8], input: [usize; 3]) -> Result<Vec<u8>> {
    if jpeg_components(bytes) == Some(4) {
        return Err(data_err(
            path,
            "a CMYK JPEG: wgcnn reads grey and RGB pictures (convert it to RGB, e.g. `convert IN -colorspace sRGB OUT`)",
        ));
    }
    let img = crate::digits::decode_picture_bytes(path, bytes)?;
    prep::picture_to_input(path, &img, input)
}

/// Decode `files` into one buffer of `[C, H, W]` pictures on every core, telling `progress`; every
/// file that fails is reported (the first ten and the count).
pub fn decode_all(
    files: &[(PathBuf, u8)],
    input: [usize; 3],
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Vec<u8>> {
    let item: usize = input.iter().product();
    let total = files.len();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(total.max(1));
    let next = AtomicUsize::new(0);
    let mut images = vec![0u8; total * item];
    let mut failures: Vec<(usize, Error)> = Vec::new();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<Vec<u8>>)>(4 * threads);
        for _ in 0..threads {
            let (tx, next) = (tx.clone(), &next);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if tx.send((i, decode_file(&files[i].0, input))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let step = (total / 100).max(64);
        for (done, (i, r)) in rx.into_iter().enumerate() {
            match r {
                Ok(v) => images[i * item..(i + 1) * item].copy_from_slice(&v),
                Err(e) => failures.push((i, e)),
            }
            if (done + 1) % step == 0 || done + 1 == total {
                progress(LoadProgress::Decoding { done: done + 1, total });
            }
        }
    });
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.0);
        let n = failures.len();
        let list: Vec<String> = failures.iter().take(10).map(|(_, e)| format!("  {e}")).collect();
        let more = if n > 10 { format!("\n  … and {} more", n - 10) } else { String::new() };
        return Err(data_err(
            &files[failures[0].0].0,
            format!("{n} of {total} pictures cannot be used:\n{}{more}", list.join("\n")),
        ));
    }
    Ok(images)
}

/// The pictures of `listing` as a data set in the layout `opts.input`, from the cache when it holds
/// them.
fn decode_listing(listing: &Listing, opts: &LoadOptions, progress: &mut dyn FnMut(LoadProgress)) -> Result<Dataset> {
    if listing.skipped > 0 {
        progress(LoadProgress::Skipped { count: listing.skipped, examples: listing.skipped_examples.clone() });
    }
    let key = cache::key(listing, opts.input)?;
    let cached = if opts.cache { cache::read(&key, listing.files.len(), opts.input) } else { None };
    let images = match cached {
        Some((path, images)) => {
            progress(LoadProgress::Cached(path));
            images
        }
        None => {
            let images = decode_all(&listing.files, opts.input, progress)?;
            let labels: Vec<u8> = listing.files.iter().map(|f| f.1).collect();
            if opts.cache {
                cache::write(&key, &labels, &images);
            }
            images
        }
    };
    let [c, h, w] = opts.input;
    Ok(Dataset {
        images,
        labels: listing.files.iter().map(|f| f.1).collect(),
        channels: c,
        rows: h,
        cols: w,
        class_names: listing.classes.clone(),
        source: listing.root.clone(),
    })
}

/// Both splits of an image-folder source (see the module docs).
pub fn load(
    dir: &Path,
    kind: SourceKind,
    opts: &LoadOptions,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<(Dataset, Dataset)> {
    if kind == SourceKind::FolderSplits {
        let test_dir = ["test", "val"].iter().map(|n| dir.join(n)).find(|p| p.is_dir()).ok_or_else(|| {
            data_err(dir, "has train/ but no test/ or val/ folder beside it (or use DIR/<class>/* with --val-split)")
        })?;
        let train = list(&dir.join("train"), None)?;
        let test = list(&test_dir, Some(&train.classes))?;
        if opts.test_only {
            let test = decode_listing(&test, opts, progress)?;
            let train = Dataset { source: train.root.clone(), ..test.empty_like() };
            return Ok((train, test));
        }
        return Ok((decode_listing(&train, opts, progress)?, decode_listing(&test, opts, progress)?));
    }
    if !(opts.val_split > 0.0 && opts.val_split < 1.0) {
        return Err(Error::Train(format!(
            "--val-split {} must be between 0 and 1 (exclusive): {} has no test folder to evaluate on",
            opts.val_split,
            dir.display()
        )));
    }
    let all = decode_listing(&list(dir, None)?, opts, progress)?;
    let (train, val) = stratified_split(&all.labels, all.class_names.len(), opts.val_split, opts.seed);
    Ok((all.select(&train), all.select(&val)))
}

/// Split items by label into (train, validation) index lists, each in item order: from every class
/// with at least two items, `round(n · fraction)` items (at least 1, at most n − 1), drawn from `seed`.
pub fn stratified_split(labels: &[u8], classes: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = Rng::new(seed ^ 0x5a11_7000);
    let mut val = Vec::new();
    for c in 0..classes {
        let mut of: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == c).collect();
        if of.len() < 2 {
            continue;
        }
        let take = ((of.len() as f64 * fraction).round() as usize).clamp(1, of.len() - 1);
        rng.shuffle(&mut of);
        val.extend_from_slice(&of[..take]);
    }
    val.sort_unstable();
    let mut is_val = vec![false; labels.len()];
    val.iter().for_each(|&i| is_val[i] = true);
    ((0..labels.len()).filter(|&i| !is_val[i]).collect(), val)
}
