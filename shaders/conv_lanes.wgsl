// The builtins of conv2d_direct and the 3x3 weight gradients, and the subgroup operation they use, for
// modules built without subgroups (every adapter, the browser included): the lane is not read, and
// the shuffle is the identity; SG, under which alone they call it, is never set in this module.
// conv_lanes_sg.wgsl is the subgroup twin.
struct LaneIds {
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
}

fn lane_shuffle(v: f32, src: u32) -> f32 {
    return v;
}
