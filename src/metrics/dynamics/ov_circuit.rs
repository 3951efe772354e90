//! The OV circuit of an attention layer, built on the device from its `v_proj` and `o_proj`
//! (see the [module docs](super) for the two forms).

use crate::error::{Error, Result};
use crate::gpu::shaders::MATRIX_STATS;
use crate::gpu::{DType, Dispatch, Gpu, Tensor};
use crate::model::config::ModelConfig;
use crate::ops::common::{grid_2d, matrix_dims, to_u32, whole_of};

/// What to do when an input or the output is too large for one binding: the kernel binds them
/// whole.
const TOO_LARGE: &str = "the OV circuit kernel binds it whole: this model is too large for it \
                         on this adapter";

/// Which product the OV construction builds (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OvForm {
    /// pico-analyze's per-head products `W_v,g(h) · W_o,h` (`hd x hd` each), stacked
    /// vertically: `[H*hd, hd]`, head h in rows `h*hd .. (h+1)*hd`.
    #[default]
    Heads,
    /// `[W_o,h · W_v,g(h)]` over heads h, side by side: `d x (H*d)` (wgtrain's
    /// `ov_circuit_concat`, not pico-analyze's).
    Concat,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct OvParams {
    rows: u32,
    cols: u32,
    inner: u32,
    heads: u32,
    group: u32,
    x_rs: u32,
    x_hq: u32,
    x_hkv: u32,
    y_rs: u32,
    y_hq: u32,
    y_hkv: u32,
    tiles_r: u32,
    tiles_c: u32,
    groups_x: u32,
    total: u32,
    out_offset: u32,
    out_hs: u32,
    out_rs: u32,
    pad: [u32; 2],
}

/// A prepared OV construction from `v_proj` and `o_proj` into `out`.
pub struct OvCircuit {
    dispatch: Dispatch,
}

/// `(d, head_dim)` of a layer's `v_proj` `[KV*hd, d]` and `o_proj` `[d, H*hd]`.
fn ov_dims(
    v_proj: &Tensor,
    o_proj: &Tensor,
    n_heads: usize,
    n_kv_heads: usize,
) -> Result<(usize, usize)> {
    let op = "ov circuit";
    let (vr, vc) = matrix_dims(v_proj, op)?;
    let (or, oc) = matrix_dims(o_proj, op)?;
    let bad = |detail: String| Error::Shape { op, detail };
    if n_heads == 0 || n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
        return Err(bad(format!(
            "{n_heads} heads are not a multiple of {n_kv_heads} kv heads"
        )));
    }
    if !oc.is_multiple_of(n_heads) {
        return Err(bad(format!(
            "o_proj {:?} has no [d, {n_heads} * head_dim] shape",
            o_proj.shape()
        )));
    }
    let hd = oc / n_heads;
    if vr != n_kv_heads * hd || vc != or {
        return Err(bad(format!(
            "v_proj {:?} does not match o_proj {:?}: expected v_proj [{} * {hd}, {or}]",
            v_proj.shape(),
            o_proj.shape(),
            n_kv_heads
        )));
    }
    Ok((or, hd))
}

impl OvCircuit {
    /// The shape of the OV construction of these weights.
    pub fn output_shape(
        v_proj: &Tensor,
        o_proj: &Tensor,
        n_heads: usize,
        n_kv_heads: usize,
        form: OvForm,
    ) -> Result<[usize; 2]> {
        let (d, hd) = ov_dims(v_proj, o_proj, n_heads, n_kv_heads)?;
        Ok(match form {
            OvForm::Heads => [n_heads * hd, hd],
            OvForm::Concat => [d, n_heads * d],
        })
    }

    /// The construction of these weights into `out`, of [`OvCircuit::output_shape`].
    pub fn new(
        gpu: &Gpu,
        v_proj: &Tensor,
        o_proj: &Tensor,
        out: &Tensor,
        n_heads: usize,
        n_kv_heads: usize,
        form: OvForm,
    ) -> Result<OvCircuit> {
        Self::into_slot(gpu, v_proj, o_proj, out, 0, n_heads, n_kv_heads, form)
    }

    /// The construction into slot `slot` of `out`, which stacks several layers' outputs
    /// vertically (`[m * rows, cols]` for an output of `rows x cols`; slot < m): how the
    /// per-head products of every layer land in one tensor for one batched SVD.
    #[allow(clippy::too_many_arguments)]
    pub fn into_slot(
        gpu: &Gpu,
        v_proj: &Tensor,
        o_proj: &Tensor,
        out: &Tensor,
        slot: usize,
        n_heads: usize,
        n_kv_heads: usize,
        form: OvForm,
    ) -> Result<OvCircuit> {
        let (d, hd) = ov_dims(v_proj, o_proj, n_heads, n_kv_heads)?;
        let [out_rows, out_cols] = Self::output_shape(v_proj, o_proj, n_heads, n_kv_heads, form)?;
        let fits = matches!(out.shape(), &[r, c] if c == out_cols && r >= (slot + 1) * out_rows
            && r % out_rows == 0);
        if !fits || out.dtype() != DType::F32 {
            return Err(Error::Shape {
                op: "ov circuit",
                detail: format!(
                    "out is {:?} {:?}, expected [m * {out_rows}, {out_cols}] f32 with m > {slot}",
                    out.shape(),
                    out.dtype()
                ),
            });
        }
        let op = "ov circuit";
        let v = whole_of(v_proj, DType::F32, op, "v_proj", TOO_LARGE)?;
        let o = whole_of(o_proj, DType::F32, op, "o_proj", TOO_LARGE)?;
        let ob = whole_of(out, DType::F32, op, "out", TOO_LARGE)?;
        let (rows, cols, inner, x, y, p) = match form {
            OvForm::Concat => (
                d,
                d,
                hd,
                o,
                v,
                OvParams {
                    x_rs: to_u32(n_heads * hd)?,
                    x_hq: to_u32(hd)?,
                    y_rs: to_u32(d)?,
                    y_hkv: to_u32(hd * d)?,
                    ..OvParams::default()
                },
            ),
            OvForm::Heads => (
                hd,
                hd,
                d,
                v,
                o,
                OvParams {
                    x_rs: to_u32(d)?,
                    x_hkv: to_u32(hd * d)?,
                    y_rs: to_u32(n_heads * hd)?,
                    y_hq: to_u32(hd)?,
                    ..OvParams::default()
                },
            ),
        };
        let (tiles_r, tiles_c) = (rows.div_ceil(16), cols.div_ceil(16));
        let total = n_heads * tiles_r * tiles_c;
        let grid = grid_2d(gpu, total)?;
        let p = OvParams {
            rows: to_u32(rows)?,
            cols: to_u32(cols)?,
            inner: to_u32(inner)?,
            heads: to_u32(n_heads)?,
            group: to_u32(n_heads / n_kv_heads)?,
            tiles_r: to_u32(tiles_r)?,
            tiles_c: to_u32(tiles_c)?,
            groups_x: grid[0],
            total: to_u32(total)?,
            out_offset: to_u32(slot * out_rows * out_cols)?,
            // Heads: stacked, one hd x hd block after another; Concat: side by side.
            out_hs: to_u32(match form {
                OvForm::Heads => rows * cols,
                OvForm::Concat => cols,
            })?,
            out_rs: to_u32(match form {
                OvForm::Heads => cols,
                OvForm::Concat => n_heads * cols,
            })?,
            ..p
        };
        let dispatch = Dispatch::with_bindings(
            gpu,
            &MATRIX_STATS,
            "ov_circuit",
            bytemuck::bytes_of(&p),
            &[(6, x), (7, y), (8, ob)],
            grid,
        );
        Ok(OvCircuit { dispatch })
    }

    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    pub fn into_dispatch(self) -> Dispatch {
        self.dispatch
    }

    /// Record into a fresh encoder and submit (does not wait).
    pub fn run(&self, gpu: &Gpu) {
        crate::gpu::run_all(gpu, std::slice::from_ref(&self.dispatch));
    }
}

/// pico-analyze's per-head OV circuits `W_v,g(h) · W_o,h` of a layer's `v_proj` `[KV*hd, d]`
/// and `o_proj` `[d, H*hd]`, stacked: `[H*hd, hd]`, on the device.
pub fn ov_circuit(
    gpu: &Gpu,
    v_proj: &Tensor,
    o_proj: &Tensor,
    n_heads: usize,
    n_kv_heads: usize,
) -> Result<Tensor> {
    ov_circuit_with(gpu, v_proj, o_proj, n_heads, n_kv_heads, OvForm::Heads)
}

/// [`ov_circuit`] in either [`OvForm`].
pub fn ov_circuit_with(
    gpu: &Gpu,
    v_proj: &Tensor,
    o_proj: &Tensor,
    n_heads: usize,
    n_kv_heads: usize,
    form: OvForm,
) -> Result<Tensor> {
    let shape = OvCircuit::output_shape(v_proj, o_proj, n_heads, n_kv_heads, form)?;
    let out = Tensor::zeros(gpu, &shape, DType::F32)?;
    OvCircuit::new(gpu, v_proj, o_proj, &out, n_heads, n_kv_heads, form)?.run(gpu);
    Ok(out)
}

/// The OV construction of layer `layer` with the head counts of `config`, from the layer's
/// `attention.v_proj.weight` and `attention.o_proj.weight` as `matrix` gives them (weights of
/// a checkpoint, or a live model's weights or updates).
pub(super) fn layer_ov_circuit(
    gpu: &Gpu,
    config: &ModelConfig,
    layer: usize,
    form: OvForm,
    mut matrix: impl FnMut(&str) -> Result<Tensor>,
) -> Result<Tensor> {
    let v_proj = matrix(&format!("layers.{layer}.attention.v_proj.weight"))?;
    let o_proj = matrix(&format!("layers.{layer}.attention.o_proj.weight"))?;
    let (h, kv) = (config.attention_n_heads, config.attention_n_kv_heads);
    ov_circuit_with(gpu, &v_proj, &o_proj, h, kv, form)
}
