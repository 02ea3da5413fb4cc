// Prepended to every shader file of wgcnn (see ShaderFile::source in src/kernels/mod.rs).

// Threads per workgroup; mirrors WORKGROUP_SIZE in src/kernels/mod.rs.
const WG: u32 = 64u;

// The flat invocation index of a grid that dispatch_grid may have folded into a second dimension.
fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}
