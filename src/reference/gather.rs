/// `x[b, j] = images[indices[b] * item_size + j] / divisor; y[b] = labels[indices[b]]`;
/// an index past the end gives zeros and label `u32::MAX`.
pub fn gather_batch(divisor: f32, images: &[u8], labels: &[u8], indices: &[u32]) -> (Vec<f32>, Vec<u32>) {
    let item = images.len() / labels.len();
    let mut x = Vec::with_capacity(indices.len() * item);
    let mut y = Vec::with_capacity(indices.len());
    for &i in indices {
        let i = i as usize;
        if i < labels.len() {
            x.extend(images[i * item..(i + 1) * item].iter().map(|&b| f32::from(b) / divisor));
            y.push(u32::from(labels[i]));
        } else {
            x.extend(std::iter::repeat_n(0.0, item));
            y.push(u32::MAX);
        }
    }
    (x, y)
}
