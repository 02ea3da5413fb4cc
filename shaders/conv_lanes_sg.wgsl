// The builtins of conv2d_direct and the 3x3 weight gradients, and the subgroup operation they use, for
// the module built where the device has subgroups (wgpu's SUBGROUP feature, requested where the adapter
// offers it, native only): `lane` is the invocation's index in its subgroup, and lane_shuffle returns
// `v` of lane `src`.
struct LaneIds {
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
}

fn lane_shuffle(v: f32, src: u32) -> f32 {
    return subgroupShuffle(v, src);
}
