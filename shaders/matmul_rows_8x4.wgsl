// prelude: grid_3d, matmul_common, matmul_rows
//
// matmul_rows with 8 rows per workgroup and 4 columns per lane, 16 lanes: the best of 4x4,
// 6x2, 8x2, 8x1, 12x1 and 16x1 on lavapipe (Mesa 25, AVX2) when it was the only rows kernel.

const ROWS_WG: u32 = 16u;
const ROWS_TM: u32 = 8u;
const ROWS_TN: u32 = 4u;
