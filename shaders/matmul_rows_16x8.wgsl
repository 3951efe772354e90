// prelude: grid_3d, matmul_common, matmul_rows
//
// matmul_rows with 16 rows per workgroup and 8 columns per lane, 8 lanes: each B element a lane
// reads feeds 16 fused multiply-adds (the most of the three shapes; the most registers too).

const ROWS_WG: u32 = 8u;
const ROWS_TM: u32 = 16u;
const ROWS_TN: u32 = 8u;
