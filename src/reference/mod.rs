//! Plain-loop CPU implementations of every kernel, with the kernels' names: the spec the GPU is tested
//! against. Generic over [`Real`] so gradient checks can run in f64 while the GPU comparison uses the
//! same code.

mod activation;
mod batchnorm;
mod concat;
mod conv;
mod dropout;
mod elementwise;
mod gather;
mod linear;
mod loss;
mod optim;
mod pool;
mod reduce;

pub use activation::*;
pub use batchnorm::*;
pub use concat::*;
pub use conv::*;
pub use dropout::*;
pub use elementwise::*;
pub use gather::*;
pub use linear::*;
pub use loss::*;
pub use optim::*;
pub use pool::*;
pub use reduce::*;

/// `mix32` of `shaders/common.wgsl` ("lowbias32"): the hash dropout's masks and the gather's
/// augmentation draw from.
pub fn mix32(v: u32) -> u32 {
    let mut x = v;
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// The float operations the references need; implemented for `f32` and `f64`.
pub trait Real:
    Copy
    + Debug
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    fn is_nan(self) -> bool;
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

macro_rules! impl_real {
    ($t:ty) => {
        impl Real for $t {
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
impl_real!(f32);
impl_real!(f64);
