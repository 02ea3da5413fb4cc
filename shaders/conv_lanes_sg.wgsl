// conv2d_direct's builtins and the subgroup operation it uses, for the module built where the device
// has subgroups (wgpu's SUBGROUP feature, requested where the adapter offers it, native only): `lane`
// is the invocation's index in its subgroup, and lane_shuffle returns `v` of lane `src`.
struct DirectIds {
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
}

fn lane_shuffle(v: f32, src: u32) -> f32 {
    return subgroupShuffle(v, src);
}
