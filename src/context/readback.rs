//! Readback: GPU buffers to the host. One implementation, awaited: natively the blocking calls wait on
//! it (polling the device meanwhile); in a browser the page awaits it, and the map callback runs from
//! the event loop (a blocking wait there would stop the very loop that delivers it).

use super::Context;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl Context {
    /// Block until all submitted work has finished (in a browser the work is only submitted: await a
    /// readback instead).
    pub fn wait(&self) -> Result<()> {
        let _serial = self.serial();
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Device(e.to_string()))?;
        self.check_device_error()
    }

    /// Copy `size` bytes of `buffer` (which needs `COPY_SRC`) to the host, blocking until they arrive.
    pub fn read_bytes(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let mut parts = block_on(self.read_ranges(&[(buffer, 0, size)]))?;
        Ok(parts.pop().unwrap_or_default())
    }

    /// Copy each `(buffer, offset, size)` range to the host: one submit, one staging buffer and one map
    /// for all of them. Offsets are multiples of 4, as every tensor's is.
    pub async fn read_ranges(&self, parts: &[(&wgpu::Buffer, u64, u64)]) -> Result<Vec<Vec<u8>>> {
        // Each copy starts on a 4-byte boundary and copies whole words (a byte tensor's buffer is padded).
        let spans: Vec<(u64, u64)> = parts
            .iter()
            .scan(0u64, |at, &(_, _, size)| {
                let span = (*at, size.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT));
                *at += span.1;
                Some(span)
            })
            .collect();
        let total: u64 = spans.iter().map(|s| s.1).sum();
        if total == 0 {
            return Ok(vec![Vec::new(); parts.len()]);
        }
        let _serial = self.serial();
        self.count_created(1);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgcnn.readback"),
            size: total,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgcnn.readback") });
        for (&(buffer, offset, _), &(at, len)) in parts.iter().zip(&spans) {
            if len > 0 {
                enc.copy_buffer_to_buffer(buffer, offset, &staging, at, len);
            }
        }
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // The receiver only goes away if this function already returned with an error.
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.wait()?;
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(Error::Readback(e.to_string())),
            None => return Err(Error::Readback("the map callback never ran".into())),
        }
        self.check_device_error()?;
        let out = {
            let mapped = slice.get_mapped_range().map_err(|e| Error::Readback(e.to_string()))?;
            parts
                .iter()
                .zip(&spans)
                .map(|(&(_, _, size), &(at, _))| mapped[at as usize..(at + size) as usize].to_vec())
                .collect()
        };
        staging.unmap();
        Ok(out)
    }

    /// Download f32 tensors in one readback (see [`Context::read_ranges`]).
    pub async fn read_f32s(&self, tensors: &[&Tensor]) -> Result<Vec<Vec<f32>>> {
        for t in tensors {
            t.expect_dtype("read_f32s", crate::tensor::DType::F32)?;
        }
        let parts: Vec<_> = tensors.iter().map(|t| t.range()).collect();
        Ok(self.read_ranges(&parts).await?.iter().map(|b| bytemuck::pod_collect_to_vec(b)).collect())
    }
}

/// Run a readback to completion on this thread. Natively the device is polled inside it; a browser
/// cannot block, so there it is an error naming the awaited call to use.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    pollster::block_on(f)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn block_on<T>(_f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    Err(Error::Readback(
        "a blocking readback cannot run in a browser (it would stop the event loop that completes it): \
         await Context::read_ranges or Context::read_f32s instead"
            .into(),
    ))
}
