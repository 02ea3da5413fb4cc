// Scratch probe (not committed): time matmul layouts on the adapter.
use std::time::Instant;
use wgcnn::context::Context;
use wgcnn::tensor::{DType, Tensor};

fn main() {
    let ctx = Context::new().unwrap();
    let src = std::fs::read_to_string(std::env::args().nth(1).unwrap()).unwrap();
    let side: usize = std::env::args().nth(2).map(|s| s.parse().unwrap()).unwrap_or(1024);
    let (m, n, k) = (16usize, side, side);
    let mut rng = wgcnn::rng::Rng::new(1);
    let adata = rng.vec_f32(m * k, -1.0, 1.0);
    let a = Tensor::from_f32(&ctx, "a", &[m, k], &adata).unwrap();
    let ua = wgpu::util::DeviceExt::create_buffer_init(
        &ctx.device,
        &wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::cast_slice(&adata),
            usage: wgpu::BufferUsages::UNIFORM,
        },
    );
    let b = Tensor::from_f32(&ctx, "b", &[k, n], &rng.vec_f32(k * n, -1.0, 1.0)).unwrap();
    let c = Tensor::zeros(&ctx, "c", &[m, n], DType::F32).unwrap();
    let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: None,
        source: wgpu::ShaderSource::Wgsl(src.into()),
    });
    let mut reference: Option<Vec<f32>> = None;
    for layout in ["nn"] {
        let (b_k, b_j) = if layout == "nn" { (n, 1) } else { (1, k) };
        for (mr, nc, uni) in std::env::var("V")
            .map(|v| {
                v.split(';')
                    .map(|t| {
                        let x: Vec<u32> = t.split(',').map(|s| s.parse().unwrap()).collect();
                        (x[0], x[1], x[2])
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or(vec![(8u32, 1u32, 0u32), (8, 2, 0), (4, 2, 0), (8, 1, 1), (8, 2, 1), (4, 2, 1)])
        {
            let consts: Vec<(&str, f64)> = vec![("MR", mr as f64), ("NC", nc as f64), ("UNI", uni as f64)];
            let pipe = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &consts,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
            let nw = nc as usize * 4;
            let jb = n.div_ceil(nw);
            let (groups, total) = if true {
                (m / 8 * n / 512, 0)
            } else if uni == 1 {
                (m.div_ceil(mr as usize) * jb.div_ceil(64), 0)
            } else {
                let t = m.div_ceil(mr as usize) * jb;
                (t.div_ceil(64), t)
            };
            let gx = groups.min(65535);
            let gy = groups.div_ceil(gx);
            let params: [u32; 12] = [
                m as u32,
                n as u32,
                k as u32,
                total as u32,
                k as u32,
                1,
                b_k as u32,
                b_j as u32,
                n as u32,
                1,
                gx as u32,
                0,
            ];
            let pbuf = wgpu::util::DeviceExt::create_buffer_init(
                &ctx.device,
                &wgpu::util::BufferInitDescriptor {
                    label: None,
                    contents: bytemuck::cast_slice(&params),
                    usage: wgpu::BufferUsages::UNIFORM,
                },
            );
            let bg = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipe.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: pbuf.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: a.buffer.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: b.buffer.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: c.buffer.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: ua.as_entire_binding() },
                ],
            });
            let run = || {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    pass.set_pipeline(&pipe);
                    pass.set_bind_group(0, &bg, &[]);
                    pass.dispatch_workgroups(gx as u32, gy as u32, 1);
                }
                ctx.queue.submit([enc.finish()]);
                ctx.device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
            };
            run();
            let mut best = f64::MAX;
            for _ in 0..3 {
                let t = Instant::now();
                run();
                best = best.min(t.elapsed().as_secs_f64());
            }
            let out = c.to_f32(&ctx).unwrap();
            let same = match &reference {
                None => {
                    reference = Some(out.clone());
                    true
                }
                Some(r) => r.iter().zip(&out).all(|(x, y)| x.to_bits() == y.to_bits()),
            };
            let h = out.iter().fold(0xcbf29ce484222325u64, |h, x| (h ^ x.to_bits() as u64).wrapping_mul(0x100000001b3));
            println!(
                "{layout} MR={mr} NC={nc} UNI={uni}: {:.2} GFLOP/s  bits-equal {same} hash {h:016x}",
                2.0 * (m * n * k) as f64 / best * 1e-9
            );
        }
        reference = None;
    }
}
