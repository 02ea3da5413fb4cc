//! Shader checks that need no GPU: every `.wgsl` file parses and validates with naga, every kernel's
//! entry point exists in its file, and every Rust params struct matches its WGSL twin byte for byte.

use std::mem::size_of;

use wgcnn::kernels::{
    activation::ElementwiseParams,
    concat::ConcatParams,
    conv::ConvParams,
    conv_fast::FastConvParams,
    dropout::DropoutParams,
    elementwise::AddParams,
    gather::GatherParams,
    linear::LinearParams,
    loss::LossParams,
    matmul::MatmulParams,
    optim::{AdamParams, SgdParams},
    pool::{PoolParams, TileParams},
    reduce::ReduceParams,
    Kernel, ShaderFile, WORKGROUP_SIZE,
};

/// naga's validator for `file`: with the subgroup capabilities for the module built with them (what
/// wgpu grants on a device with the `SUBGROUP` feature).
fn validator(file: ShaderFile) -> naga::valid::Validator {
    use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};
    let caps = if file.uses_subgroups() { Capabilities::SUBGROUP } else { Capabilities::empty() };
    let mut v = Validator::new(ValidationFlags::all(), caps);
    if file.uses_subgroups() {
        v.subgroup_stages(ShaderStages::COMPUTE).subgroup_operations(SubgroupOperationSet::all());
    }
    v
}

fn module(file: ShaderFile) -> naga::Module {
    let src = file.source();
    naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{}: {}", file.file_name(), e.emit_to_string(&src)))
}

#[test]
fn every_shader_parses_and_validates() {
    for file in ShaderFile::ALL {
        let m = module(file);
        if let Err(e) = validator(file).validate(&m) {
            panic!("{}: {}", file.file_name(), e.emit_to_string(&file.source()));
        }
    }
}

#[test]
fn every_kernel_has_its_entry_point_with_the_declared_bindings() {
    for &k in Kernel::ALL {
        let m = module(k.file());
        let ep = m
            .entry_points
            .iter()
            .find(|e| e.name == k.entry_point())
            .unwrap_or_else(|| panic!("{:?}: no entry point {} in {}", k, k.entry_point(), k.file().file_name()));
        assert_eq!(ep.stage, naga::ShaderStage::Compute, "{}", k.entry_point());
        // A fixed-size kernel declares WG_FIXED (a constant, 64); every other one the `WG` override,
        // whose default is 64 and which the launcher sets smaller for small dispatches on software
        // adapters (Context::workgroup_for).
        if k.fixed_workgroup() {
            assert_eq!(ep.workgroup_size, [WORKGROUP_SIZE, 1, 1], "{}", k.entry_point());
            assert!(ep.workgroup_size_overrides.is_none(), "{}: a fixed workgroup", k.entry_point());
        } else {
            let [x, y, z] = ep.workgroup_size_overrides.expect("the WG override");
            assert!(y.is_none() && z.is_none(), "{}", k.entry_point());
            let x = x.expect("the WG override");
            let wg = m.overrides.iter().find(|(_, o)| o.name.as_deref() == Some("WG")).map(|(h, _)| h);
            assert!(
                matches!(m.global_expressions[x], naga::Expression::Override(h) if Some(h) == wg),
                "{}: its workgroup size is WG",
                k.entry_point()
            );
        }
        // Which bindings does the entry point use? Walk its expressions for global variables.
        let info = validator(k.file()).validate(&m).unwrap();
        let idx = m.entry_points.iter().position(|e| e.name == k.entry_point()).unwrap();
        let ep_info = info.get_entry_point(idx);
        let mut used: Vec<(u32, bool)> = m
            .global_variables
            .iter()
            .filter(|(h, _)| !ep_info[*h].is_empty())
            .filter_map(|(_, g)| {
                let b = g.binding.as_ref()?;
                let writable = match g.space {
                    naga::AddressSpace::Storage { access } => access.contains(naga::StorageAccess::STORE),
                    _ => false,
                };
                Some((b.binding, writable))
            })
            .collect();
        used.sort();
        let declared: Vec<(u32, bool)> = std::iter::once((0, false))
            .chain(
                k.bindings().iter().enumerate().map(|(i, a)| (i as u32 + 1, *a == wgcnn::kernels::Access::ReadWrite)),
            )
            .collect();
        assert_eq!(used, declared, "{}: bindings used by the shader vs Kernel::bindings", k.entry_point());
    }
}

fn wgsl_struct_size(file: ShaderFile, name: &str) -> u32 {
    let m = module(file);
    for (_, ty) in m.types.iter() {
        if ty.name.as_deref() == Some(name) {
            if let naga::TypeInner::Struct { span, .. } = ty.inner {
                return span;
            }
        }
    }
    panic!("no struct {name} in {}", file.file_name());
}

#[test]
fn params_structs_match_their_wgsl_twins() {
    let rows: &[(ShaderFile, &str, usize)] = &[
        (ShaderFile::Conv, "ConvParams", size_of::<ConvParams>()),
        (ShaderFile::ConvFast, "FastConvParams", size_of::<FastConvParams>()),
        (ShaderFile::Activation, "ElementwiseParams", size_of::<ElementwiseParams>()),
        (ShaderFile::Elementwise, "AddParams", size_of::<AddParams>()),
        (ShaderFile::Concat, "ConcatParams", size_of::<ConcatParams>()),
        (ShaderFile::Dropout, "DropoutParams", size_of::<DropoutParams>()),
        (ShaderFile::Pool, "PoolParams", size_of::<PoolParams>()),
        (ShaderFile::PoolFast, "TileParams", size_of::<TileParams>()),
        (ShaderFile::Linear, "LinearParams", size_of::<LinearParams>()),
        (ShaderFile::Matmul, "MatmulParams", size_of::<MatmulParams>()),
        (ShaderFile::MatmulVec, "MatmulParams", size_of::<MatmulParams>()),
        (ShaderFile::Loss, "LossParams", size_of::<LossParams>()),
        (ShaderFile::Optim, "SgdParams", size_of::<SgdParams>()),
        (ShaderFile::Optim, "AdamParams", size_of::<AdamParams>()),
        (ShaderFile::Gather, "GatherParams", size_of::<GatherParams>()),
        (ShaderFile::Reduce, "ReduceParams", size_of::<ReduceParams>()),
    ];
    for &(file, name, rust) in rows {
        assert_eq!(rust % 16, 0, "{name}: {rust} bytes is not a multiple of 16");
        assert_eq!(wgsl_struct_size(file, name) as usize, rust, "{name}: WGSL size vs Rust size");
    }
}
