//! The `wgcnn` command line: thin — parse arguments, call the library, turn errors into a message
//! and an exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wgcnn::Context;

#[derive(Parser)]
#[command(name = "wgcnn", version, about = "A CNN engine whose every computation runs in WGSL compute shaders")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the selected GPU adapter, the limits that matter and the optional features.
    ///
    /// Select another adapter with WGCNN_ADAPTER=software|hardware|<name substring> and restrict
    /// backends with WGPU_BACKEND=vulkan,metal,dx12.
    Info,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info => info(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info() -> wgcnn::Result<()> {
    let ctx = Context::new()?;
    let i = &ctx.info;
    let l = &ctx.limits;
    let f = ctx.adapter_features();
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("adapter      {}", i.name);
    println!("backend      {:?}", i.backend);
    println!("device type  {:?}{}", i.device_type, if ctx.is_software() { " (software)" } else { "" });
    println!("driver       {} {}", i.driver, i.driver_info);
    println!("limits (as requested from the adapter)");
    println!("  max_buffer_size                      {:.0} MiB", mib(l.max_buffer_size));
    println!("  max_storage_buffer_binding_size      {:.0} MiB", mib(l.max_storage_buffer_binding_size));
    println!("  max_storage_buffers_per_shader_stage {}", l.max_storage_buffers_per_shader_stage);
    println!("  max_compute_workgroups_per_dimension {}", l.max_compute_workgroups_per_dimension);
    println!("  max_compute_invocations_per_workgroup {}", l.max_compute_invocations_per_workgroup);
    println!("  max_compute_workgroup_storage_size   {} KiB", l.max_compute_workgroup_storage_size / 1024);
    println!("  min_storage_buffer_offset_alignment  {}", l.min_storage_buffer_offset_alignment);
    println!("optional features");
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("  timestamp queries  {}", yes(f.contains(wgpu::Features::TIMESTAMP_QUERY)));
    println!("  shader f16         {}", yes(f.contains(wgpu::Features::SHADER_F16)));
    println!("  subgroups          {}", yes(f.contains(wgpu::Features::SUBGROUP)));
    Ok(())
}
