// prelude: grid
//
// Token embedding on one piece of the table (rows row_start .. row_start + rows of [vocab, d]).
// Forward: out[t] = table[ids[t]], one lane per output element; each piece's dispatch writes
// the tokens whose id falls in it. Ids are validated on the host; here an id past the
// vocabulary is clamped to the last row, so no read goes out of bounds.
// Backward: a gather, deterministic and free of float atomics. The host sorts the positions
// by id into `index`:
//   index[0]                            number of distinct ids u
//   index[1 + s]                        the s-th distinct id, increasing (s < u)
//   index[offsets_at + s .. + s + 1]    where its positions start and end in the list below
//   index[positions_at + k]             positions, grouped by id, in position order
// One lane per (distinct id, column) sums its d_out rows in position order, then adds the sum
// to d_table (accumulating; rows of ids that do not occur are untouched).

struct Params { n: u32, d: u32, row_start: u32, rows: u32, vocab: u32, groups_x: u32, offsets_at: u32, positions_at: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> d_out: array<f32>;
@group(0) @binding(5) var<storage, read> index: array<u32>;
@group(0) @binding(6) var<storage, read_write> d_table: array<f32>;

const WG: u32 = 256u; // lanes per workgroup, as in @workgroup_size(256)

// Row of `v` inside this piece, or `rows` when it lies in another piece.
fn local_row(v: u32) -> u32 {
    if (v < p.row_start || v - p.row_start >= p.rows) {
        return p.rows;
    }
    return v - p.row_start;
}

// p.n is tokens * d elements.
@compute @workgroup_size(256)
fn embedding_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i >= p.n) {
        return;
    }
    let t = i / p.d;
    let row = local_row(min(ids[t], p.vocab - 1u));
    if (row < p.rows) {
        out[i] = table[row * p.d + (i - t * p.d)];
    }
}

// p.n is (slots for distinct ids = tokens) * d elements.
@compute @workgroup_size(256)
fn embedding_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = element_index(wid, lid.x);
    if (i >= p.n) {
        return;
    }
    let s = i / p.d;
    if (s >= index[0]) {
        return;
    }
    let row = local_row(index[1u + s]);
    if (row >= p.rows) {
        return;
    }
    let j = i - s * p.d;
    let end = index[p.offsets_at + s + 1u];
    var sum = 0.0;
    for (var k = index[p.offsets_at + s]; k < end; k++) {
        sum += d_out[index[p.positions_at + k] * p.d + j];
    }
    d_table[row * p.d + j] += sum;
}
