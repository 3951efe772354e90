// prelude: grid_3d, matmul_common
//
// matmul_rows_16x8 (prelude/matmul_rows.wgsl) with A read through the subgroup: there each
// lane loads all 16 of the tile's A elements at depth kk (the same addresses in every lane);
// here each lane loads 2 of them and the 16 reach every lane by subgroupShuffle. Needs
// subgroups of at least ROWS_WG lanes, so that the workgroup is one subgroup (the host offers
// this variant only then). Same multiply-adds in the same order as matmul_rows_16x8: the
// same bits.

const ROWS_WG: u32 = 8u;
const ROWS_TM: u32 = 16u;
const ROWS_TN: u32 = 8u;
// A rows each lane loads: rows r * ROWS_WG + (its subgroup lane).
const A_PER_LANE: u32 = ROWS_TM / ROWS_WG;

@compute @workgroup_size(ROWS_WG)
fn matmul_rows_sg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    // Uniform across the workgroup, so the shuffles below run in uniform control flow.
    let t = tile_of(wid, ROWS_TM, ROWS_WG * ROWS_TN);
    if (!t.valid) {
        return;
    }
    let a_base = p.a_off + t.batch * p.a_bs;
    let b_base = p.b_off + t.batch * p.b_bs;
    // Clamped indices keep every load in bounds; clamped rows and columns are not stored.
    var a_row: array<u32, A_PER_LANE>;
    for (var r = 0u; r < A_PER_LANE; r++) {
        a_row[r] = a_base + min(t.m0 + r * ROWS_WG + lane, p.m - 1u) * p.a_rs;
    }
    var b_col: array<u32, ROWS_TN>;
    for (var j = 0u; j < ROWS_TN; j++) {
        b_col[j] = b_base + min(t.n0 + lid.x + j * ROWS_WG, p.n - 1u) * p.b_cs;
    }
    var acc: array<array<f32, ROWS_TN>, ROWS_TM>;
    for (var kk = 0u; kk < p.k; kk++) {
        var bv: array<f32, ROWS_TN>;
        let b_k = kk * p.b_rs;
        for (var j = 0u; j < ROWS_TN; j++) {
            bv[j] = b[b_col[j] + b_k];
        }
        let a_k = kk * p.a_cs;
        var mine: array<f32, A_PER_LANE>;
        for (var r = 0u; r < A_PER_LANE; r++) {
            mine[r] = a[a_row[r] + a_k];
        }
        for (var i = 0u; i < ROWS_TM; i++) {
            let av = subgroupShuffle(mine[i / ROWS_WG], i % ROWS_WG);
            for (var j = 0u; j < ROWS_TN; j++) {
                acc[i][j] = fma(av, bv[j], acc[i][j]);
            }
        }
    }
    for (var i = 0u; i < ROWS_TM; i++) {
        for (var j = 0u; j < ROWS_TN; j++) {
            store(t.batch, t.m0 + i, t.n0 + lid.x + j * ROWS_WG, acc[i][j]);
        }
    }
}
