//! Every shader as the graphs actually specialise it translates to every backend wgcnn targets: the
//! pipelines (kernel + `override` constants) that LeNet-5 and every model of `models/` build — training
//! and evaluation graphs, full and partial batches, fast and plain kernel sets, SGD and Adam — are
//! collected from the context's pipeline cache (not listed by hand), the overrides are applied with naga,
//! and each is written as SPIR-V, MSL 2.0 and 2.4 (Metal), HLSL SM 5.1 and 6.0 (DX12) and GLSL ES 3.10
//! (OpenGL). The SPIR-V is then checked by `spirv-val` and the GLSL by `glslangValidator` (apt:
//! spirv-tools, glslang-tools; `.ci/run` installs them, and in CI a missing validator is a failure).
//! A shader that would not compile for Metal or DX12 fails here, on a machine that has neither.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};
use naga::ShaderStage;
use wgcnn::kernels::Kernel;
use wgcnn::model::{init_params, lenet5, LeNetConfig, ModelSpec};
use wgcnn::train::{Evaluator, Optimizer, Trainer};
use wgcnn::{Context, KernelSet};

type Spec = (Kernel, Vec<(&'static str, u32)>);

/// LeNet-5 and every model file of `models/`.
fn models() -> Vec<ModelSpec> {
    let mut v = vec![lenet5(LeNetConfig::default())];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    v.extend(
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| wgcnn::model::file::load(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))),
    );
    v
}

/// The pipelines the models' graphs build, plus every kernel whose overrides all have defaults.
fn collect() -> Vec<Spec> {
    let data = sample(40); // batch 32: a full batch and a partial one of 8
    let adam = Optimizer::Adam(wgcnn::kernels::optim::Adam::default());
    let mut specs = Vec::new();
    // The fast and plain kernel sets on this adapter, and the fast set with a GPU's plans (tiled
    // products, wider splits; this adapter's loop budget).
    for (set, gpu) in [(KernelSet::Fast, false), (KernelSet::Plain, false), (KernelSet::Fast, true)] {
        let mut c = Context::new().expect("an adapter");
        if gpu {
            let own = c.budget();
            c = c.with_budget(wgcnn::context::Budget { tiled: true, threads: 1 << 18, reduce_span: 4096, ..own });
        }
        c.kernels = set;
        for (i, spec) in models().into_iter().enumerate() {
            let opt = if i == 0 { adam } else { sgd() };
            // Colour models read the digits as RGB pictures of their size.
            let data = wgcnn::data::prep::conform(data.clone(), spec.input).unwrap();
            let t = Trainer::new(&c, spec.clone(), &data, 32, opt, &init_params(&spec.params(), 1))
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            Evaluator::new(&c, &spec, &t.params, &data, 1000).unwrap();
        }
        if set == KernelSet::Fast {
            // Every variant a tuned launch may choose (autotuning): LeNet-5's products and
            // inception-mini's 1×1 convolutions cover the scalar kernel and the vec4 one with each
            // operand read along either axis.
            let mut few: Vec<ModelSpec> =
                models().into_iter().filter(|m| m.name == "lenet5" || m.name == "inception-mini").collect();
            let mut seen = std::collections::HashSet::new();
            few.retain(|m| seen.insert(m.name.clone()));
            assert_eq!(few.len(), 2, "lenet5 and inception-mini");
            for i in 0..9 {
                c.set_tuning_in(wgcnn::context::Tuning::Force(i), None);
                for spec in &few {
                    let data = wgcnn::data::prep::conform(data.clone(), spec.input).unwrap();
                    Trainer::new(&c, spec.clone(), &data, 32, sgd(), &init_params(&spec.params(), 1)).unwrap();
                }
            }
            c.set_tuning_in(wgcnn::context::Tuning::Off, None);
        }
        if set == KernelSet::Fast && !gpu {
            wgcnn::viz::run_filters(&c, &wgcnn::viz::Grey { w: 40, h: 30, data: vec![0.5; 1200] }).unwrap();
        }
        specs.extend(c.pipeline_specs());
    }
    for &k in Kernel::ALL {
        let m = parse(k);
        if m.overrides.iter().all(|(_, o)| o.init.is_some()) {
            specs.push((k, Vec::new()));
        }
    }
    specs.sort_by_key(|(k, c)| (k.entry_point(), c.clone()));
    specs.dedup();
    specs
}

fn parse(k: Kernel) -> naga::Module {
    naga::front::wgsl::parse_str(&k.file().source()).unwrap_or_else(|e| panic!("{}: {e}", k.file().file_name()))
}

/// One pipeline's translations: SPIR-V words and GLSL text (for the external validators; `None` for
/// the subgroup module, which wgpu's GL backend never builds: it offers no subgroups).
struct Translated {
    spv: Vec<u32>,
    glsl: Option<String>,
}

fn translate(k: Kernel, consts: &[(&'static str, u32)]) -> Result<Translated, String> {
    let module = parse(k);
    // The subgroup module (conv2d_direct's SG variant) with the capabilities wgpu grants a device with
    // the SUBGROUP feature, and only for the targets that have subgroup operations: MSL 2.4 (not
    // 2.0), HLSL shader model 6.0 (not 5.1), SPIR-V 1.3's group operations (Vulkan 1.1); not GLSL.
    let sg = k.file().uses_subgroups();
    let mut validator =
        Validator::new(ValidationFlags::all(), if sg { Capabilities::SUBGROUP } else { Capabilities::empty() });
    if sg {
        validator.subgroup_stages(ShaderStages::COMPUTE).subgroup_operations(SubgroupOperationSet::all());
    }
    let info = validator.validate(&module).map_err(|e| format!("validate: {e}"))?;
    let mut pc = naga::back::PipelineConstants::default();
    for (n, v) in consts {
        pc.insert((*n).to_string(), f64::from(*v));
    }
    let ep = k.entry_point().to_string();
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, Some((ShaderStage::Compute, &ep)), &pc)
            .map_err(|e| format!("overrides: {e}"))?;
    let spv_pipe = spv::PipelineOptions { shader_stage: ShaderStage::Compute, entry_point: ep.clone() };
    let spv_opts =
        if sg { spv::Options { lang_version: (1, 3), ..Default::default() } } else { spv::Options::default() };
    let spv = spv::write_vec(&module, &info, &spv_opts, Some(&spv_pipe)).map_err(|e| format!("SPIR-V: {e}"))?;
    let versions: &[(u8, u8)] = if sg { &[(2, 4)] } else { &[(2, 0), (2, 4)] };
    for &lang_version in versions {
        let opts = msl::Options { lang_version, ..Default::default() };
        let pipe = msl::PipelineOptions { entry_point: Some((ShaderStage::Compute, ep.clone())), ..Default::default() };
        msl::write_string(&module, &info, &opts, &pipe).map_err(|e| format!("MSL {lang_version:?}: {e}"))?;
    }
    let models: &[hlsl::ShaderModel] =
        if sg { &[hlsl::ShaderModel::V6_0] } else { &[hlsl::ShaderModel::V5_1, hlsl::ShaderModel::V6_0] };
    for &shader_model in models {
        let opts = hlsl::Options { shader_model, ..Default::default() };
        let pipe = hlsl::PipelineOptions { entry_point: Some((ShaderStage::Compute, ep.clone())) };
        let mut out = String::new();
        hlsl::Writer::new(&mut out, &opts, &pipe)
            .write(&module, &info, None)
            .map_err(|e| format!("HLSL {shader_model:?}: {e}"))?;
    }
    if sg {
        return Ok(Translated { spv, glsl: None });
    }
    let mut glsl = String::new();
    let pipe = glsl::PipelineOptions { shader_stage: ShaderStage::Compute, entry_point: ep, multiview: None };
    let opts = glsl::Options::default(); // GLSL ES 3.10, what wgpu's GL backend asks for compute
    glsl::Writer::new(&mut glsl, &module, &info, &opts, &pipe, Default::default())
        .and_then(|mut w| w.write())
        .map_err(|e| format!("GLSL ES 3.10: {e}"))?;
    Ok(Translated { spv, glsl: Some(glsl) })
}

/// Run an external validator on `file`; `None` when the tool is not installed.
fn validate_with(tool: &str, args: &[&str], file: &Path) -> Option<Result<(), String>> {
    let out = Command::new(tool).args(args).arg(file).output().ok()?;
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    })
}

#[test]
fn every_specialised_shader_translates_to_metal_dx12_vulkan_and_gl() {
    let specs = collect();
    let dir = std::env::temp_dir().join(format!("wgcnn-portability-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut failures, mut checked) = (Vec::new(), [0usize; 2]);
    let mut missing = Vec::new();
    for (i, (k, consts)) in specs.iter().enumerate() {
        let name = format!("{}{consts:?}", k.entry_point());
        let t = match translate(*k, consts) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let spv_file = dir.join(format!("{i}.spv"));
        std::fs::write(&spv_file, bytemuck::cast_slice::<u32, u8>(&t.spv)).unwrap();
        let glsl_file = dir.join(format!("{i}.comp"));
        let mut tools = vec![("spirv-val", &["--target-env", "vulkan1.1"][..], &spv_file)];
        if let Some(glsl) = &t.glsl {
            std::fs::write(&glsl_file, glsl).unwrap();
            tools.push(("glslangValidator", &[][..], &glsl_file));
        }
        for (j, (tool, args, file)) in tools.into_iter().enumerate() {
            match validate_with(tool, args, file) {
                Some(Ok(())) => checked[j] += 1,
                Some(Err(e)) => failures.push(format!("{name}: {tool}: {e}")),
                None if !missing.contains(&tool) => missing.push(tool),
                None => {}
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
    eprintln!(
        "PORTABILITY {} pipelines ({} kernels) x SPIR-V, MSL 2.0/2.4, HLSL 5.1/6.0, GLSL ES 3.10; spirv-val passed {}, glslangValidator passed {}; missing tools {missing:?}",
        specs.len(),
        {
            let mut ks: Vec<&str> = specs.iter().map(|(k, _)| k.entry_point()).collect();
            ks.dedup();
            ks.len()
        },
        checked[0],
        checked[1]
    );
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), specs.len(), failures.join("\n"));
    assert!(specs.len() > Kernel::ALL.len(), "the graphs' specialisations were collected ({})", specs.len());
    // The subgroup module only where the device has subgroups of one size (lavapipe: 8, so in CI).
    let subgroups = Context::new().expect("an adapter").subgroup_size().is_some();
    let uncovered: Vec<String> = Kernel::ALL
        .iter()
        .filter(|k| !specs.iter().any(|(s, _)| s == *k) && (subgroups || !k.file().uses_subgroups()))
        .map(|k| format!("{k:?}"))
        .collect();
    assert!(uncovered.is_empty(), "kernels no graph specialises and without defaults: {uncovered:?}");
    if std::env::var_os("CI").is_some() {
        assert!(missing.is_empty(), "in CI the validators must be installed (.ci/run): missing {missing:?}");
    }
}
