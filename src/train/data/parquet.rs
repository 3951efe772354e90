//! pico's pre-tokenized parquet shards to token ids: the rows of a list-of-integers column
//! (`input_ids`), assembled from the column's repetition and definition levels and written
//! row by row, with errors that name the file, row and position. The rows go to the token
//! cache when training ([`read_parquet_files`]) or are kept one per document for evaluation
//! ([`read_parquet_documents`]).

use super::cache::StreamWriter;
use super::PROGRESS_BYTES;
use crate::error::{Error, Result};
use crate::train::progress;
use indicatif::ProgressBar;
use parquet::column::reader::{ColumnReader, ColumnReaderImpl};
use parquet::data_type::DataType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Writes the rows of `column` of every parquet file in `files` to `w`, each file begun
/// with [`StreamWriter::begin_file`]; returns the number of rows.
pub(super) fn read_parquet_files(
    files: &[PathBuf],
    column: &str,
    progress: bool,
    w: &mut StreamWriter,
) -> Result<u64> {
    let total: u64 = files.iter().map(|f| parquet_rows(f).unwrap_or(0)).sum();
    // Rows are counted, not bytes: the size threshold assumes pico's rows (2049 u32 ids).
    let bar = progress::bar(
        progress && total * 2049 * 4 >= PROGRESS_BYTES,
        total,
        "{msg} [{elapsed_precise}] [{wide_bar}] {pos}/{len} rows ({eta})",
    )
    .with_message("reading parquet");
    let mut rows = 0;
    for f in files {
        w.begin_file(f);
        rows += read_parquet(f, column, w, &bar)?;
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// Where assembled rows go.
trait RowSink {
    fn row(&mut self, ids: &[u32]) -> Result<()>;
}

impl RowSink for StreamWriter {
    fn row(&mut self, ids: &[u32]) -> Result<()> {
        self.push(ids)?;
        self.add_row(ids.len() as u64);
        Ok(())
    }
}

impl RowSink for Vec<Vec<u32>> {
    fn row(&mut self, ids: &[u32]) -> Result<()> {
        self.push(ids.to_vec());
        Ok(())
    }
}

/// The rows of `column` of the parquet file `path`, one `Vec` per row, in file order (pico's
/// pre-tokenized documents, one per row).
fn read_parquet_rows(path: &Path, column: &str) -> Result<Vec<Vec<u32>>> {
    let mut rows = Vec::new();
    read_parquet(path, column, &mut rows, &ProgressBar::hidden())?;
    Ok(rows)
}

/// Pre-tokenized documents at `path` (a `.parquet` file, or every `.parquet` file under a
/// directory, in path order): one document per row of the list column `input_ids`, as pico's
/// `pretokenized-paloma`. `None` when `path` holds no parquet file.
pub fn read_parquet_documents(path: &Path) -> Result<Option<Vec<Vec<u32>>>> {
    let mut files = Vec::new();
    if path.is_dir() {
        super::discover::walk(path, &mut files)?;
        files.retain(|f| super::discover::has_ext(f, &["parquet"]));
        files.sort();
    } else if super::discover::has_ext(path, &["parquet"]) {
        files.push(path.to_path_buf());
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut docs = Vec::new();
    for f in &files {
        docs.extend(read_parquet_rows(f, "input_ids")?);
    }
    Ok(Some(docs))
}

/// Assembles rows from a list column's levels and writes them.
struct RowAssembler<'a> {
    path: &'a Path,
    row: Vec<u32>,
    open: bool,
    rows: u64,
}

impl RowAssembler<'_> {
    fn end_row(&mut self, w: &mut impl RowSink) -> Result<()> {
        if self.open {
            w.row(&self.row)?;
            self.row.clear();
            self.rows += 1;
            self.open = false;
        }
        Ok(())
    }

    fn push(&mut self, v: i64) -> Result<()> {
        if v < 0 || v > u32::MAX as i64 {
            return Err(Error::Invalid(format!(
                "{}: row {} (0-based), position {}: {v} is not a token id",
                self.path.display(),
                self.rows,
                self.row.len()
            )));
        }
        self.row.push(v as u32);
        Ok(())
    }
}

fn read_list_column<T: DataType>(
    mut r: ColumnReaderImpl<T>,
    max_def: i16,
    nullable_element: bool,
    asm: &mut RowAssembler,
    w: &mut impl RowSink,
) -> Result<()>
where
    T::T: Copy + Into<i64>,
{
    let path = asm.path;
    let mut def = Vec::new();
    let mut rep = Vec::new();
    let mut vals: Vec<T::T> = Vec::new();
    loop {
        def.clear();
        rep.clear();
        vals.clear();
        let (_, _, levels) = r
            .read_records(1024, Some(&mut def), Some(&mut rep), &mut vals)
            .map_err(|e| {
                Error::Invalid(format!("{}: reading parquet failed: {e}", path.display()))
            })?;
        if levels == 0 {
            return Ok(());
        }
        let mut vi = 0;
        for k in 0..levels {
            if rep[k] == 0 {
                asm.end_row(w)?;
                asm.open = true;
            }
            if def[k] == max_def {
                asm.push(vals[vi].into())?;
                vi += 1;
            } else if nullable_element && def[k] == max_def - 1 {
                return Err(Error::Invalid(format!(
                    "{}: row {} (0-based), position {}: null token id",
                    path.display(),
                    asm.rows,
                    asm.row.len()
                )));
            }
            // Lower definition levels: an empty or null list, a row without ids.
        }
    }
}

fn read_parquet(path: &Path, column: &str, w: &mut impl RowSink, bar: &ProgressBar) -> Result<u64> {
    // The parquet crate panics on some corrupt files (found by fuzzing) instead of erring.
    let what = format!("{}: not a readable parquet file", path.display());
    crate::panic_guard::contain(&what, || read_parquet_unguarded(path, column, w, bar))
}

fn read_parquet_unguarded(
    path: &Path,
    column: &str,
    w: &mut impl RowSink,
    bar: &ProgressBar,
) -> Result<u64> {
    // Read whole: the crate's File reader took 20 s to give up on an 856-byte file whose
    // page header claims more bytes than it has (found by fuzzing); in memory it fails in
    // about a second. One shard's (compressed) bytes at a time is cheap next to training.
    let file = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot open {}: {e}", path.display())))?;
    let reader = SerializedFileReader::new(bytes::Bytes::from(file)).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a readable parquet file: {e}",
            path.display()
        ))
    })?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let cols = schema.columns();
    let Some(idx) = cols
        .iter()
        .position(|c| c.path().parts().first().map(String::as_str) == Some(column))
    else {
        let mut names: Vec<String> = cols
            .iter()
            .filter_map(|c| c.path().parts().first().cloned())
            .collect();
        names.dedup();
        return Err(Error::Invalid(format!(
            "{}: no column \"{column}\" (its columns: {}); pico's pre-tokenized shards hold the \
             token ids in a list column \"input_ids\"",
            path.display(),
            names.join(", ")
        )));
    };
    let col = &cols[idx];
    use parquet::basic::Type as Physical;
    if col.max_rep_level() != 1 || !matches!(col.physical_type(), Physical::INT32 | Physical::INT64)
    {
        return Err(Error::Invalid(format!(
            "{}: column \"{column}\" is not a list of integer token ids (its leaf {} is {:?}, \
             repetition level {})",
            path.display(),
            col.path().string(),
            col.physical_type(),
            col.max_rep_level()
        )));
    }
    let max_def = col.max_def_level();
    let nullable = col.self_type().is_optional();
    let mut asm = RowAssembler {
        path,
        row: Vec::new(),
        open: false,
        rows: 0,
    };
    let pq = |e: parquet::errors::ParquetError| {
        Error::Invalid(format!("{}: reading parquet failed: {e}", path.display()))
    };
    for rg in 0..reader.num_row_groups() {
        let group = reader.get_row_group(rg).map_err(pq)?;
        match group.get_column_reader(idx).map_err(pq)? {
            ColumnReader::Int64ColumnReader(r) => {
                read_list_column(r, max_def, nullable, &mut asm, w)?
            }
            ColumnReader::Int32ColumnReader(r) => {
                read_list_column(r, max_def, nullable, &mut asm, w)?
            }
            _ => unreachable!("physical type checked above"),
        }
        asm.end_row(w)?;
        bar.inc(reader.metadata().row_group(rg).num_rows().max(0) as u64);
    }
    Ok(asm.rows)
}

fn parquet_rows(path: &Path) -> Option<u64> {
    let rows = || {
        let file = File::open(path).ok()?;
        let reader = SerializedFileReader::new(file).ok()?;
        Some(reader.metadata().file_metadata().num_rows().max(0) as u64)
    };
    // The parquet crate may panic on a corrupt footer: that counts as unknown here too.
    crate::panic_guard::contain("parquet", || Ok(rows()))
        .ok()
        .flatten()
}
