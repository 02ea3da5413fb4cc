// Prepended to every shader file of wgcnn (see ShaderFile::source in src/kernels/mod.rs).

// Threads per workgroup: WORKGROUP_SIZE in src/kernels/mod.rs, or fewer (8, 16 or 32) where the launcher
// splits a small dispatch of a one-dimensional kernel into more workgroups (Context::workgroup_for).
// Kernels that share workgroup memory or number their work by workgroup declare WG_FIXED instead
// (Kernel::fixed_workgroup; tests/shaders.rs checks both lists agree).
override WG: u32 = 64u;
const WG_FIXED: u32 = 64u;

// The flat invocation index of a grid that dispatch_grid may have folded into a second dimension.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// A 32-bit integer hash with good avalanche ("lowbias32"): the counter-based random draws of dropout's
// masks and the gather's augmentation. Mirrored by `mix32` in src/reference/mod.rs.
fn mix32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}
