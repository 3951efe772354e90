// prelude/grid_3d.wgsl: the linear index of a workgroup in a grid folded over x, y and z
// (Gpu::grid), for kernels that may need more workgroups than x and y can hold.
// Needs from the shader: the uniform `p` with `groups_x` and `groups_y`.

fn group_index_3d(wid: vec3<u32>) -> u32 {
    return wid.x + p.groups_x * (wid.y + p.groups_y * wid.z);
}
