use super::Real;

pub fn relu_forward<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| if v > T::zero() { v } else { T::zero() }).collect()
}
pub fn relu_backward<T: Real>(y: &[T], dy: &[T]) -> Vec<T> {
    y.iter().zip(dy).map(|(&y, &d)| if y > T::zero() { d } else { T::zero() }).collect()
}
pub fn tanh_forward<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| v.tanh()).collect()
}
pub fn tanh_backward<T: Real>(y: &[T], dy: &[T]) -> Vec<T> {
    y.iter().zip(dy).map(|(&y, &d)| d * (T::one() - y * y)).collect()
}
pub fn sigmoid_forward<T: Real>(x: &[T]) -> Vec<T> {
    x.iter().map(|&v| T::one() / (T::one() + (-v).exp())).collect()
}
pub fn sigmoid_backward<T: Real>(y: &[T], dy: &[T]) -> Vec<T> {
    y.iter().zip(dy).map(|(&y, &d)| d * y * (T::one() - y)).collect()
}
