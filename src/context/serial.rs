//! Serialised GPU calls on wgpu's GL backend (see [`crate::Context::serial`]).

use std::sync::Arc;

use super::Context;

/// The lock [`Context::serial`] hands out: reentrant, so a guarded function may call another.
pub(crate) type SerialLock = Arc<parking_lot::ReentrantMutex<()>>;

/// A GPU object whose drop happens under the context's serial lock (see [`Context::serial`]): on GL,
/// releasing a buffer takes wgpu's context lock, which panics when another thread holds it for more
/// than 6 s.
pub struct Guarded<T> {
    value: Option<T>,
    lock: Option<SerialLock>,
}

impl<T> Guarded<T> {
    pub(crate) fn new(ctx: &Context, value: T) -> Self {
        Guarded { value: Some(value), lock: ctx.serial.clone() }
    }
}

impl<T> std::ops::Deref for Guarded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.value {
            Some(v) => v,
            None => unreachable!("the value is taken only by drop"),
        }
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        let _guard = self.lock.as_ref().map(|l| l.lock());
        drop(self.value.take());
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Guarded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}
