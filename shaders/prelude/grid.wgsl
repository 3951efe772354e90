// prelude/grid.wgsl: where a workgroup and a lane sit in a dispatch. The host spreads a run
// of workgroups over x and y (Gpu::grid); kernels rebuild the linear index from the ids.
// Needs from the shader: the uniform `p` with `groups_x`, and `const WG` (lanes per
// workgroup).

// Linear index of workgroup `wid` in a grid folded over x and y.
fn group_index(wid: vec3<u32>) -> u32 {
    return wid.x + p.groups_x * wid.y;
}

// Linear index of lane `lane` of workgroup `wid`, for kernels with one lane per element.
fn element_index(wid: vec3<u32>, lane: u32) -> u32 {
    return group_index(wid) * WG + lane;
}
