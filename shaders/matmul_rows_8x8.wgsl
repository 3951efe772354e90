// prelude: grid_3d, matmul_common, matmul_rows
//
// matmul_rows with 8 rows per workgroup and 8 columns per lane, 8 lanes: one 8-wide SIMD
// vector of lanes per workgroup on lavapipe (AVX2), twice the columns per lane of rows_8x4.

const ROWS_WG: u32 = 8u;
const ROWS_TM: u32 = 8u;
const ROWS_TN: u32 = 8u;
