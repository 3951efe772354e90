//! pico-format checkpoints and safetensors files, on the host.
//!
//! A checkpoint is a directory holding `config.json` (the model keys, see [`ModelConfig`]) and
//! `model.safetensors` (the parameters by their pico state-dict names), as pico-lm and
//! PyTorch write them. [`load`] reads F32, BF16, F16 (and F64) weights into f32; [`save`]
//! writes f32.
//!
//! Saving is atomic: the new checkpoint is built and fsynced in a sibling directory
//! `.NAME.saving`, then swapped in with two renames (`NAME` -> `.NAME.previous`,
//! `.NAME.saving` -> `NAME`), after which the previous one is deleted. A crash at any point
//! leaves either the previous checkpoint complete (in `NAME`, or in `.NAME.previous` when the
//! crash fell between the renames: [`load`] then reads it from there, and the next save puts
//! it back first) or the new one complete in `NAME`. One process at a time may save to a
//! given directory. Saving replaces the whole directory, so it refuses to replace a non-empty
//! directory that has no `config.json` (that is not a checkpoint).
//!
//! [`read_safetensors`] / [`write_safetensors`] handle other safetensors files (batches,
//! expected outputs) with float and integer tensors; writing is atomic too (temporary
//! sibling file, fsync, rename).

use super::config::{ModelConfig, ParamSpec};
use crate::error::{Error, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The model config inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// The weights inside a checkpoint directory.
pub const MODEL_FILE: &str = "model.safetensors";

/// One weight tensor of a checkpoint, converted to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorData {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A loaded checkpoint: its config and every tensor of its model.safetensors by name.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The directory it was read from (`.NAME.previous` after an interrupted save).
    pub path: PathBuf,
    pub config: ModelConfig,
    pub tensors: BTreeMap<String, TensorData>,
}

/// The values of a tensor read from a safetensors file: floats (F32, BF16, F16, F64) as f32,
/// integers (I8..I64, U8..U64) as i64.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

/// A tensor read from a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: HostData,
}

/// Borrowed values to write with [`write_safetensors`], stored as F32, I64 or I32.
#[derive(Clone, Copy, Debug)]
pub enum HostSlice<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
}

impl HostData {
    pub fn len(&self) -> usize {
        match self {
            HostData::F32(v) => v.len(),
            HostData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            HostData::F32(v) => Some(v),
            HostData::I64(_) => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match self {
            HostData::I64(v) => Some(v),
            HostData::F32(_) => None,
        }
    }

    /// A borrowed view, to write it back with [`write_safetensors`].
    pub fn as_slice(&self) -> HostSlice<'_> {
        match self {
            HostData::F32(v) => HostSlice::F32(v),
            HostData::I64(v) => HostSlice::I64(v),
        }
    }
}

impl HostSlice<'_> {
    pub fn len(&self) -> usize {
        match self {
            HostSlice::F32(v) => v.len(),
            HostSlice::I64(v) => v.len(),
            HostSlice::I32(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn file_err(path: &Path, tensor: Option<&str>, problem: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        tensor: tensor.map(str::to_string),
        problem: problem.into(),
    }
}

fn io_err(path: &Path, action: &str, e: io::Error) -> Error {
    file_err(path, None, format!("could not {action}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Number conversions

/// IEEE binary16 to f32, exactly (subnormals, infinities and NaN payloads included).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) >> 15) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal: mant * 2^-24. Shift the leading one up to the implicit bit position.
            let shift = mant.leading_zeros() - 21; // leading zeros within the 10-bit field, +1
            let m = (mant << shift) & 0x3ff;
            let e = 127 - 15 + 1 - shift;
            sign | (e << 23) | (m << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 to f32 (the upper half of an f32, so exact).
pub fn bf16_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F64)
}

fn words<const N: usize>(bytes: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    bytes.chunks_exact(N).map(|c| {
        let mut w = [0u8; N];
        w.copy_from_slice(c);
        w
    })
}

/// Convert one tensor's little-endian bytes.
fn decode(path: &Path, name: &str, view: &TensorView<'_>) -> Result<HostData> {
    let b = view.data();
    let data = match view.dtype() {
        Dtype::F32 => HostData::F32(words::<4>(b).map(f32::from_le_bytes).collect()),
        Dtype::BF16 => HostData::F32(
            words::<2>(b)
                .map(|w| bf16_to_f32(u16::from_le_bytes(w)))
                .collect(),
        ),
        Dtype::F16 => HostData::F32(
            words::<2>(b)
                .map(|w| f16_to_f32(u16::from_le_bytes(w)))
                .collect(),
        ),
        Dtype::F64 => HostData::F32(
            words::<8>(b)
                .map(|w| f64::from_le_bytes(w) as f32)
                .collect(),
        ),
        Dtype::I64 => HostData::I64(words::<8>(b).map(i64::from_le_bytes).collect()),
        Dtype::I32 => HostData::I64(
            words::<4>(b)
                .map(|w| i32::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::I16 => HostData::I64(
            words::<2>(b)
                .map(|w| i16::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::I8 => HostData::I64(b.iter().map(|&v| v as i8 as i64).collect()),
        Dtype::U32 => HostData::I64(
            words::<4>(b)
                .map(|w| u32::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::U16 => HostData::I64(
            words::<2>(b)
                .map(|w| u16::from_le_bytes(w) as i64)
                .collect(),
        ),
        Dtype::U8 => HostData::I64(b.iter().map(|&v| v as i64).collect()),
        Dtype::U64 => {
            let mut out = Vec::with_capacity(b.len() / 8);
            for w in words::<8>(b) {
                let v = u64::from_le_bytes(w);
                out.push(i64::try_from(v).map_err(|_| {
                    file_err(
                        path,
                        Some(name),
                        format!("U64 value {v} does not fit in i64; store ids as I64"),
                    )
                })?);
            }
            HostData::I64(out)
        }
        other => {
            return Err(file_err(
                path,
                Some(name),
                format!(
                    "unsupported dtype {other:?}: store floats as F32, BF16, F16 or F64 and \
                     integers as I8..I64 or U8..U64"
                ),
            ))
        }
    };
    Ok(data)
}

// ---------------------------------------------------------------------------------------------
// Reading

fn read_bytes(path: &Path, missing_hint: &str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => file_err(path, None, format!("file not found{missing_hint}")),
        _ => io_err(path, "read the file", e),
    })
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        let what = match e {
            SafeTensorError::HeaderTooSmall
            | SafeTensorError::InvalidHeaderLength
            | SafeTensorError::MetadataIncompleteBuffer => "truncated or corrupt",
            _ => "corrupt",
        };
        file_err(
            path,
            None,
            format!(
                "is not a valid safetensors file, it is {what} ({e}; {} bytes). Write it again, \
                 or copy it again from where it came from",
                bytes.len()
            ),
        )
    })
}

/// Read every tensor of a safetensors file (floats as f32, integers as i64).
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = read_bytes(path, "")?;
    let st = parse(path, &bytes)?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data = decode(path, name, &view)?;
        out.insert(
            name.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(out)
}

fn read_config(path: &Path) -> Result<ModelConfig> {
    let text =
        match fs::read(path) {
            Ok(b) => String::from_utf8(b).map_err(|_| file_err(path, None, "is not UTF-8 text"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(file_err(
                path,
                None,
                "file not found: a checkpoint directory holds config.json (the model keys) and \
                 model.safetensors (the weights); is this directory a checkpoint?",
            )),
            Err(e) => return Err(io_err(path, "read the file", e)),
        };
    ModelConfig::from_json_str(&text).map_err(|e| match e {
        Error::Config { key, problem } if key == CONFIG_FILE => file_err(path, None, problem),
        Error::Config { key, problem } => file_err(path, None, format!("`{key}` {problem}")),
        other => other,
    })
}

/// The directory to read a checkpoint from: `dir`, or its `.previous` copy when a save was
/// interrupted between its two renames.
fn resolve_for_read(dir: &Path) -> Result<PathBuf> {
    if dir.is_dir() {
        return Ok(dir.to_path_buf());
    }
    if let Ok(p) = SwapPaths::new(dir) {
        if p.previous.is_dir() {
            log::warn!(
                "{}: a save to this checkpoint was interrupted; reading the previous checkpoint \
                 from {} (the next save puts it back in place)",
                dir.display(),
                p.previous.display()
            );
            return Ok(p.previous);
        }
    }
    Err(file_err(
        dir,
        None,
        if dir.exists() {
            "is not a directory: a checkpoint is a directory holding config.json and \
             model.safetensors"
        } else {
            "no such checkpoint directory"
        },
    ))
}

/// Load a checkpoint directory: its config.json (validated) and every tensor of its
/// model.safetensors, converted to f32. Integer tensors are an error (weights are floats).
/// See [`Checkpoint::check_against`] (or [`load_checked`]) to match it to a model.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let src = resolve_for_read(dir)?;
    let config = read_config(&src.join(CONFIG_FILE))?;
    let model_path = src.join(MODEL_FILE);
    let bytes = read_bytes(
        &model_path,
        ": a checkpoint directory holds config.json and model.safetensors (the weights)",
    )?;
    let st = parse(&model_path, &bytes)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        if !is_float(view.dtype()) {
            return Err(file_err(
                &model_path,
                Some(name),
                format!(
                    "unsupported dtype {:?} for a weight: weights must be F32, BF16 or F16 \
                     (or F64)",
                    view.dtype()
                ),
            ));
        }
        let HostData::F32(data) = decode(&model_path, name, &view)? else {
            unreachable!("float dtypes decode to f32")
        };
        tensors.insert(
            name.to_string(),
            TensorData {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(Checkpoint {
        path: src,
        config,
        tensors,
    })
}

/// [`load`], then check the tensors against the parameters of the checkpoint's own config
/// (a plain pico-decoder; a ReLoRA checkpoint also holds adapters: check it with its specs).
pub fn load_checked(dir: &Path) -> Result<Checkpoint> {
    let ckpt = load(dir)?;
    ckpt.check_against(&ckpt.config.param_specs())?;
    Ok(ckpt)
}

impl Checkpoint {
    /// Check that the checkpoint holds exactly the tensors of `specs`, with their shapes.
    /// The error names the first offending tensor and counts (and lists) the others.
    pub fn check_against(&self, specs: &[ParamSpec]) -> Result<()> {
        let mut problems: Vec<(String, String)> = Vec::new();
        let expected: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        for spec in specs {
            match self.tensors.get(&spec.name) {
                None => problems.push((
                    spec.name.clone(),
                    format!(
                        "missing: the model needs it with shape {:?}; the checkpoint does not \
                         match its config.json (or the model you asked for)",
                        spec.shape
                    ),
                )),
                Some(t) if t.shape != spec.shape => problems.push((
                    spec.name.clone(),
                    format!(
                        "wrong shape: expected {:?}, got {:?} (linear weights are [out, in]); \
                         the checkpoint is for another model size or layout",
                        spec.shape, t.shape
                    ),
                )),
                Some(_) => {}
            }
        }
        for (name, t) in &self.tensors {
            if !expected.contains(name.as_str()) {
                problems.push((
                    name.clone(),
                    format!(
                        "unexpected tensor (shape {:?}): not a parameter of this model; is it a \
                         checkpoint of another model (e.g. a ReLoRA one with adapters)?",
                        t.shape
                    ),
                ));
            }
        }
        let Some((name, problem)) = problems.first() else {
            return Ok(());
        };
        let mut problem = problem.clone();
        if problems.len() > 1 {
            let others: Vec<&str> = problems[1..].iter().map(|(n, _)| n.as_str()).collect();
            let shown = others.len().min(5);
            problem.push_str(&format!(
                " ({} more problem{}: {}{})",
                others.len(),
                if others.len() == 1 { "" } else { "s" },
                others[..shown].join(", "),
                if others.len() > shown { ", ..." } else { "" }
            ));
        }
        Err(file_err(&self.path.join(MODEL_FILE), Some(name), problem))
    }

    /// One tensor by name; the error names it.
    pub fn tensor(&self, name: &str) -> Result<&TensorData> {
        self.tensors.get(name).ok_or_else(|| {
            file_err(
                &self.path.join(MODEL_FILE),
                Some(name),
                "missing from the checkpoint",
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// A tensor to serialize: its bytes in little-endian order (borrowed where the host is LE).
struct RawView<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    bytes: Cow<'a, [u8]>,
}

impl View for &RawView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn le_bytes<T: bytemuck::Pod, const N: usize>(
    v: &[T],
    to_le: impl Fn(&T) -> [u8; N],
) -> Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        Cow::Borrowed(bytemuck::cast_slice(v))
    } else {
        Cow::Owned(v.iter().flat_map(to_le).collect())
    }
}

impl<'a> RawView<'a> {
    fn new(shape: &'a [usize], data: HostSlice<'a>) -> Self {
        let (dtype, bytes) = match data {
            HostSlice::F32(v) => (Dtype::F32, le_bytes(v, |x| x.to_le_bytes())),
            HostSlice::I64(v) => (Dtype::I64, le_bytes(v, |x| x.to_le_bytes())),
            HostSlice::I32(v) => (Dtype::I32, le_bytes(v, |x| x.to_le_bytes())),
        };
        RawView {
            dtype,
            shape,
            bytes,
        }
    }
}

/// Names non-empty and unique, and each shape's element count equal to its data length.
fn check_tensor_list<'a>(
    path: &Path,
    tensors: impl Iterator<Item = (&'a str, &'a [usize], usize)>,
) -> Result<()> {
    let mut seen = HashSet::new();
    for (name, shape, len) in tensors {
        if name.is_empty() {
            return Err(file_err(
                path,
                Some(name),
                "a tensor needs a non-empty name",
            ));
        }
        if !seen.insert(name) {
            return Err(file_err(
                path,
                Some(name),
                "given twice: tensor names must be unique",
            ));
        }
        let numel = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        if numel != Some(len) {
            return Err(file_err(
                path,
                Some(name),
                format!(
                    "shape {shape:?} holds {} values but {len} were given",
                    numel.map_or("too many".to_string(), |n| n.to_string())
                ),
            ));
        }
    }
    Ok(())
}

/// Serialize `views` to `path` and fsync it. `shown` is the path errors name.
fn write_st_file(path: &Path, views: &[(&str, RawView<'_>)], shown: &Path) -> Result<()> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views.iter().map(|(n, v)| (*n, v)), Some(metadata), path)
        .map_err(|e| file_err(shown, None, format!("could not write the file: {e}")))?;
    sync_file(path).map_err(|e| io_err(shown, "flush the file to disk", e))
}

fn open_for_sync(path: &Path) -> io::Result<fs::File> {
    // Windows needs write access to flush a file; elsewhere read access is enough.
    fs::OpenOptions::new()
        .read(true)
        .write(cfg!(windows))
        .open(path)
}

fn sync_file(path: &Path) -> io::Result<()> {
    open_for_sync(path)?.sync_all()
}

/// Make a directory's entries durable (renames, new files). Not possible on Windows, and some
/// filesystems refuse it: those cases are not errors.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        match fs::File::open(dir).and_then(|f| f.sync_all()) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
                ) =>
            {
                Ok(())
            }
            r => r,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

fn sync_tree(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            sync_file(&entry.path())?;
        }
    }
    sync_dir(dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write tensors to a safetensors file atomically (a temporary sibling file, fsync, rename):
/// F32 as F32, I64 as I64, I32 as I32.
pub fn write_safetensors(path: &Path, tensors: &[(&str, &[usize], HostSlice<'_>)]) -> Result<()> {
    check_tensor_list(path, tensors.iter().map(|(n, s, d)| (*n, *s, d.len())))?;
    let name = path
        .file_name()
        .ok_or_else(|| file_err(path, None, "is not a file name"))?;
    let parent = parent_of(path);
    fs::create_dir_all(&parent).map_err(|e| io_err(&parent, "create the directory", e))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = parent.join(tmp_name);
    let views: Vec<(&str, RawView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| (*n, RawView::new(s, *d)))
        .collect();
    let written = write_st_file(&tmp, &views, path).and_then(|()| {
        fs::rename(&tmp, path).map_err(|e| io_err(path, "move the new file into place", e))
    });
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(&parent).map_err(|e| io_err(&parent, "flush the directory to disk", e))
}

// ---------------------------------------------------------------------------------------------
// Atomic directory replacement

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The directory being replaced and its two siblings.
struct SwapPaths {
    dir: PathBuf,
    parent: PathBuf,
    staging: PathBuf,
    previous: PathBuf,
}

impl SwapPaths {
    fn new(dir: &Path) -> Result<Self> {
        // Replace what a symlink points to, not the link.
        let dir = match fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(dir).map_err(|e| io_err(dir, "resolve the symbolic link", e))?
            }
            _ => dir.to_path_buf(),
        };
        let name = dir.file_name().ok_or_else(|| {
            file_err(
                &dir,
                None,
                "cannot be a checkpoint directory: name one, e.g. runs/tiny/step_1000",
            )
        })?;
        let sibling = |suffix: &str| {
            let mut s = OsString::from(".");
            s.push(name);
            s.push(suffix);
            s
        };
        let parent = parent_of(&dir);
        Ok(SwapPaths {
            staging: parent.join(sibling(".saving")),
            previous: parent.join(sibling(".previous")),
            parent,
            dir,
        })
    }
}

/// The points between the steps of a directory swap, where the tests simulate a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SaveStep {
    /// The new directory is complete and fsynced beside the old one.
    Staged,
    /// The old directory has been renamed to `.NAME.previous`; `NAME` does not exist.
    PreviousMovedAside,
    /// The new directory is in place; `.NAME.previous` is still there.
    NewInPlace,
}

/// Finish or undo what an interrupted swap left: put `.previous` back if `dir` is missing,
/// delete it if `dir` is there (then `dir` is the complete new one), delete a partial staging.
fn recover(p: &SwapPaths) -> Result<()> {
    let dir_exists = fs::symlink_metadata(&p.dir).is_ok();
    if fs::symlink_metadata(&p.previous).is_ok() {
        if dir_exists {
            fs::remove_dir_all(&p.previous)
                .map_err(|e| io_err(&p.previous, "delete the leftover previous checkpoint", e))?;
        } else {
            fs::rename(&p.previous, &p.dir).map_err(|e| {
                io_err(
                    &p.previous,
                    "move the previous checkpoint back in place (do it by hand, then save again)",
                    e,
                )
            })?;
            sync_dir(&p.parent).map_err(|e| io_err(&p.parent, "flush the directory", e))?;
            log::warn!(
                "{}: restored the previous checkpoint: the last save to it was interrupted",
                p.dir.display()
            );
        }
    }
    if fs::symlink_metadata(&p.staging).is_ok() {
        fs::remove_dir_all(&p.staging)
            .map_err(|e| io_err(&p.staging, "delete the unfinished save", e))?;
    }
    Ok(())
}

/// Whether `dir` exists and may be replaced (missing: false; a checkpoint or empty: true).
fn check_replaceable(dir: &Path) -> Result<bool> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(dir, "inspect the directory", e)),
        Ok(m) if !m.is_dir() => Err(file_err(
            dir,
            None,
            "exists and is not a directory: a checkpoint is a directory; choose another path",
        )),
        Ok(_) => {
            let mut entries =
                fs::read_dir(dir).map_err(|e| io_err(dir, "list the directory", e))?;
            let empty = entries.next().is_none();
            if empty || dir.join(CONFIG_FILE).exists() {
                Ok(true)
            } else {
                Err(file_err(
                    dir,
                    None,
                    "refusing to replace this directory: it holds files but no config.json, so \
                     it is not a checkpoint, and saving replaces the whole directory. Choose a \
                     new or empty directory",
                ))
            }
        }
    }
}

/// Replace the directory `dir` atomically by one that `fill` writes: `fill` gets an empty
/// staging directory beside `dir`; its files are fsynced, then swapped in (see the module
/// docs). If `fill` fails, nothing changes. `dir` must be missing, empty or a checkpoint
/// (it holds a config.json).
pub fn replace_dir_atomically(dir: &Path, mut fill: impl FnMut(&Path) -> Result<()>) -> Result<()> {
    replace_dir_with_hook(dir, &mut fill, &mut |_| Ok(()))
}

/// The swap, with `hook` called after each step: an `Err` from it returns at once, without
/// any cleanup, as a crash would.
fn replace_dir_with_hook(
    dir: &Path,
    fill: &mut dyn FnMut(&Path) -> Result<()>,
    hook: &mut dyn FnMut(SaveStep) -> Result<()>,
) -> Result<()> {
    let p = SwapPaths::new(dir)?;
    fs::create_dir_all(&p.parent).map_err(|e| io_err(&p.parent, "create the directory", e))?;
    recover(&p)?;
    let has_previous = check_replaceable(&p.dir)?;

    fs::create_dir(&p.staging).map_err(|e| io_err(&p.staging, "create the directory", e))?;
    let filled = fill(&p.staging).and_then(|()| {
        sync_tree(&p.staging).map_err(|e| io_err(&p.staging, "flush the new files to disk", e))
    });
    if let Err(e) = filled {
        let _ = fs::remove_dir_all(&p.staging);
        return Err(e);
    }
    hook(SaveStep::Staged)?;

    if has_previous {
        let moved = fs::rename(&p.dir, &p.previous)
            .map_err(|e| io_err(&p.dir, "move the previous checkpoint aside", e))
            .and_then(|()| {
                sync_dir(&p.parent).map_err(|e| io_err(&p.parent, "flush the directory", e))
            });
        if let Err(e) = moved {
            let _ = fs::rename(&p.previous, &p.dir);
            let _ = fs::remove_dir_all(&p.staging);
            return Err(e);
        }
        hook(SaveStep::PreviousMovedAside)?;
    }

    if let Err(e) = fs::rename(&p.staging, &p.dir) {
        if has_previous {
            let _ = fs::rename(&p.previous, &p.dir);
        }
        let _ = fs::remove_dir_all(&p.staging);
        return Err(io_err(&p.dir, "move the new checkpoint into place", e));
    }
    sync_dir(&p.parent).map_err(|e| io_err(&p.parent, "flush the directory", e))?;
    hook(SaveStep::NewInPlace)?;

    if has_previous {
        if let Err(e) = fs::remove_dir_all(&p.previous) {
            // The new checkpoint is complete; the next save deletes the leftover.
            log::warn!("could not delete {}: {e}", p.previous.display());
        }
    }
    Ok(())
}

/// Save a checkpoint atomically: `dir/config.json` and `dir/model.safetensors` (f32, the
/// tensors under the names given). See the module docs for what a crash leaves.
pub fn save(dir: &Path, config: &ModelConfig, tensors: &[(&str, &[usize], &[f32])]) -> Result<()> {
    save_with_hook(dir, config, tensors, &mut |_| Ok(()))
}

fn save_with_hook(
    dir: &Path,
    config: &ModelConfig,
    tensors: &[(&str, &[usize], &[f32])],
    hook: &mut dyn FnMut(SaveStep) -> Result<()>,
) -> Result<()> {
    config.validate()?;
    let model_path = dir.join(MODEL_FILE);
    check_tensor_list(
        &model_path,
        tensors.iter().map(|(n, s, d)| (*n, *s, d.len())),
    )?;
    let views: Vec<(&str, RawView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| (*n, RawView::new(s, HostSlice::F32(d))))
        .collect();
    let config_text = config.to_json_string();
    let mut fill = |staging: &Path| -> Result<()> {
        let config_path = staging.join(CONFIG_FILE);
        write_synced(&config_path, config_text.as_bytes())
            .map_err(|e| io_err(&dir.join(CONFIG_FILE), "write the file", e))?;
        write_st_file(&staging.join(MODEL_FILE), &views, &model_path)
    };
    replace_dir_with_hook(dir, &mut fill, hook)
}

/// A checkpoint's two files in memory, `(file name, bytes)`: `config.json` and
/// `model.safetensors` (f32), exactly as [`save`] writes them. For targets without a file
/// system (the browser demo packs them with [`super::archive::tar`]).
pub fn checkpoint_files(
    config: &ModelConfig,
    tensors: &[(&str, &[usize], &[f32])],
) -> Result<Vec<(&'static str, Vec<u8>)>> {
    config.validate()?;
    let shown = Path::new(MODEL_FILE);
    check_tensor_list(shown, tensors.iter().map(|(n, s, d)| (*n, *s, d.len())))?;
    let views: Vec<(&str, RawView<'_>)> = tensors
        .iter()
        .map(|(n, s, d)| (*n, RawView::new(s, HostSlice::F32(d))))
        .collect();
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = safetensors::serialize(views.iter().map(|(n, v)| (*n, v)), Some(metadata))
        .map_err(|e| file_err(shown, None, format!("could not serialize the weights: {e}")))?;
    Ok(vec![
        (CONFIG_FILE, config.to_json_string().into_bytes()),
        (MODEL_FILE, weights),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "wgtrain-ckpt-{tag}-{}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mini() -> ModelConfig {
        ModelConfig {
            d_model: 8,
            n_layers: 1,
            vocab_size: 11,
            attention_n_heads: 2,
            attention_n_kv_heads: 1,
            activation_hidden_dim: 16,
            max_seq_len: 4,
            norm_eps: 1e-6,
            position_emb_theta: 10000.0,
            relora: None,
        }
    }

    /// Values for every parameter of `c`, different for each seed.
    fn weights(c: &ModelConfig, seed: u32) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        c.param_specs()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let n = s.numel();
                let data = (0..n)
                    .map(|j| (seed * 1000 + i as u32 * 37 + j as u32) as f32 * 0.25)
                    .collect();
                (s.name, s.shape, data)
            })
            .collect()
    }

    fn refs(w: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<(&str, &[usize], &[f32])> {
        w.iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice()))
            .collect()
    }

    fn assert_holds(ckpt: &Checkpoint, c: &ModelConfig, w: &[(String, Vec<usize>, Vec<f32>)]) {
        assert_eq!(&ckpt.config, c);
        assert_eq!(ckpt.tensors.len(), w.len());
        for (n, s, d) in w {
            let t = &ckpt.tensors[n];
            assert_eq!(&t.shape, s);
            assert_eq!(&t.data, d, "{n}");
        }
    }

    fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn f16_conversion_is_exact_for_every_value() {
        for h in 0..=u16::MAX {
            let got = f16_to_f32(h);
            let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
            let exp = ((h >> 10) & 0x1f) as i32;
            let mant = (h & 0x3ff) as f64;
            if exp == 0x1f {
                if mant == 0.0 {
                    assert_eq!(got, sign as f32 * f32::INFINITY, "{h:#06x}");
                } else {
                    assert!(got.is_nan(), "{h:#06x}");
                    // the payload survives (shifted into the f32 mantissa)
                    assert_eq!(got.to_bits() & 0x007f_ffff, ((h & 0x3ff) as u32) << 13);
                }
                continue;
            }
            let want = if exp == 0 {
                sign * mant * 2f64.powi(-24)
            } else {
                sign * (1.0 + mant / 1024.0) * 2f64.powi(exp - 15)
            };
            assert_eq!(got as f64, want, "{h:#06x}");
            assert_eq!(got.is_sign_negative(), h & 0x8000 != 0, "{h:#06x}");
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }

    #[test]
    fn bf16_conversion() {
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
        assert_eq!(bf16_to_f32(0x7f80), f32::INFINITY);
        assert!(bf16_to_f32(0x7fc1).is_nan());
        assert_eq!(bf16_to_f32(0x0001), f32::from_bits(0x0001_0000)); // subnormal
    }

    #[test]
    fn save_replaces_an_existing_checkpoint_and_leaves_no_siblings() {
        let tmp = TempDir::new("replace");
        let dir = tmp.0.join("ckpt");
        let c = mini();
        let (a, b) = (weights(&c, 1), weights(&c, 2));
        save(&dir, &c, &refs(&a)).unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &a);
        save(&dir, &c, &refs(&b)).unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &b);
        assert_eq!(listing(&tmp.0), ["ckpt"]);
        assert_eq!(listing(&dir), [CONFIG_FILE, MODEL_FILE]);
    }

    #[test]
    fn interrupted_save_leaves_the_previous_checkpoint_or_the_new_one() {
        let c = mini();
        let mut c2 = mini();
        c2.relora = Some(crate::model::relora::ReloraConfig {
            r: 4,
            ..Default::default()
        });
        let (old, new) = (weights(&c, 1), weights(&c2, 2));
        for step in [
            SaveStep::Staged,
            SaveStep::PreviousMovedAside,
            SaveStep::NewInPlace,
        ] {
            let tmp = TempDir::new("crash");
            let dir = tmp.0.join("ckpt");
            save(&dir, &c, &refs(&old)).unwrap();
            let before = files(&dir);

            let crashed = save_with_hook(&dir, &c2, &refs(&new), &mut |s| {
                if s == step {
                    Err(Error::Invalid("simulated crash".into()))
                } else {
                    Ok(())
                }
            });
            assert!(crashed.is_err(), "{step:?}");

            // Right after the crash: the previous checkpoint, byte for byte, or the new one.
            let ckpt = load(&dir).unwrap();
            if step == SaveStep::NewInPlace {
                assert_holds(&ckpt, &c2, &new);
            } else {
                assert_holds(&ckpt, &c, &old);
                assert_eq!(files(&ckpt.path), before, "{step:?}");
                load_checked(&dir).unwrap();
            }

            // The next save recovers and leaves a clean directory.
            save(&dir, &c, &refs(&old)).unwrap();
            assert_holds(&load(&dir).unwrap(), &c, &old);
            assert_eq!(files(&dir), before);
            assert_eq!(listing(&tmp.0), ["ckpt"], "{step:?}");
        }
    }

    #[test]
    fn crash_while_writing_the_new_files_is_ignored_then_cleaned() {
        let tmp = TempDir::new("partial");
        let dir = tmp.0.join("ckpt");
        let c = mini();
        let old = weights(&c, 1);
        save(&dir, &c, &refs(&old)).unwrap();
        // what a crash in the middle of writing leaves: a partial staging directory
        let staging = tmp.0.join(".ckpt.saving");
        fs::create_dir(&staging).unwrap();
        fs::write(staging.join(CONFIG_FILE), "{\"d_mo").unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &old);
        let new = weights(&c, 3);
        save(&dir, &c, &refs(&new)).unwrap();
        assert_holds(&load(&dir).unwrap(), &c, &new);
        assert_eq!(listing(&tmp.0), ["ckpt"]);
    }

    #[test]
    fn failed_save_changes_nothing() {
        let tmp = TempDir::new("fail");
        let dir = tmp.0.join("ckpt");
        let c = mini();
        let old = weights(&c, 1);
        save(&dir, &c, &refs(&old)).unwrap();
        let before = files(&dir);

        // an error while writing the new files
        let e = replace_dir_atomically(&dir, |staging| {
            fs::write(staging.join(CONFIG_FILE), "partial").unwrap();
            Err(Error::Invalid("disk full".into()))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"));
        assert_eq!(files(&dir), before);
        assert_eq!(listing(&tmp.0), ["ckpt"]);

        // bad input is refused before anything is written
        let mut bad = weights(&c, 2);
        bad[3].2.pop();
        let e = save(&dir, &c, &refs(&bad)).unwrap_err().to_string();
        assert!(e.contains(&bad[3].0) && e.contains("values but"), "{e}");
        let mut dup = weights(&c, 2);
        dup[1].0 = dup[0].0.clone();
        dup[1].1 = dup[0].1.clone();
        dup[1].2 = dup[0].2.clone();
        let e = save(&dir, &c, &refs(&dup)).unwrap_err().to_string();
        assert!(e.contains("given twice"), "{e}");
        let mut bad_config = c.clone();
        bad_config.d_model = 0;
        assert!(save(&dir, &bad_config, &refs(&old)).is_err());
        assert_eq!(files(&dir), before);
        assert_eq!(listing(&tmp.0), ["ckpt"]);
    }

    #[test]
    fn refuses_to_replace_a_directory_that_is_not_a_checkpoint() {
        let tmp = TempDir::new("foreign");
        let dir = tmp.0.join("results");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("notes.txt"), "keep me").unwrap();
        let c = mini();
        let e = save(&dir, &c, &refs(&weights(&c, 1)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no config.json") && e.contains("results"), "{e}");
        assert_eq!(
            fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "keep me"
        );
        assert_eq!(listing(&tmp.0), ["results"]);

        // an empty directory is fine
        let empty = tmp.0.join("empty");
        fs::create_dir(&empty).unwrap();
        save(&empty, &c, &refs(&weights(&c, 1))).unwrap();
        load_checked(&empty).unwrap();
    }
}
