//! The training data pipeline: tokenizers, text / parquet / bin sources, order, resume, errors.
//!
//! Real data comes from `../shared/data` (see its SOURCES.md); tests that need it fail with a
//! message naming the missing path where it is absent. Synthetic inputs are written to temporary directories.

use parquet::basic::Compression;
use parquet::data_type::{Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wgtrain::train::data::{BinDtype, DataKind, DataSource, DataSpec, DataState, Holdout, Split};
use wgtrain::train::tokenizer::{train_bpe, Tokenizer};

const PICO_VOCAB: usize = 50280;
const PICO_EOS: u32 = 50279;

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        panic!(
            "{} not found: these tests read the shared data from ../shared/data",
            p.display()
        )
    }
}

fn pico_tokenizer() -> Option<Tokenizer> {
    shared("tokenizers/olmo-gpt-neox-dolma-v1_5.json").map(|p| Tokenizer::from_file(p).unwrap())
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wgtrain-data-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small byte-level BPE trained on synthetic text (for tests that need no shared data).
fn small_tokenizer(dir: &Path) -> Tokenizer {
    let texts = (0..200).map(|i| format!("document {i} says the quick brown fox jumps {i}"));
    train_bpe(texts, 300, &dir.join("tok.json")).unwrap()
}

/// A spec that caches nowhere (or in `cache`) and shows no progress bar.
fn spec(path: &Path, seq_len: usize, vocab: usize, tok: Option<Tokenizer>) -> DataSpec {
    DataSpec {
        tokenizer: tok,
        cache_dir: None,
        progress: false,
        ..DataSpec::new(path, seq_len, vocab)
    }
}

fn err_of(r: wgtrain::Result<DataSource>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Every window of a source, in data order, concatenated.
fn all_windows(src: &DataSource) -> Vec<u32> {
    (0..src.num_windows())
        .flat_map(|i| src.window(i).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tokenizers.

#[test]
fn pico_tokenizer_loads_and_round_trips() {
    let Some(tok) = pico_tokenizer() else { return };
    assert_eq!(tok.vocab_size(), PICO_VOCAB);
    assert_eq!(tok.eos_id(), Some(PICO_EOS));
    assert_eq!(tok.token_to_id("<|padding|>"), Some(1));
    let text = "The quick brown fox jumps over the lazy dog.\n\nIt's 2024: ünïcödé works.";
    let ids = tok.encode(text).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), text);
    assert_eq!(tok.encode("Hello world").unwrap(), vec![12092, 1533]);
    // Special tokens written in text are recognized; no special tokens are added around text.
    assert_eq!(
        tok.encode("a<|endoftext|>").unwrap().last(),
        Some(&PICO_EOS)
    );
    assert!(tok.splits_at_whitespace());
}

#[test]
fn tokenizer_file_errors_are_clear() {
    let dir = temp_dir("tokerr");
    let missing = dir.join("nope.json");
    let err = Tokenizer::from_file(&missing).unwrap_err().to_string();
    assert!(
        err.contains("nope.json") && err.contains("not found"),
        "{err}"
    );
    let bad = dir.join("bad.json");
    std::fs::write(&bad, b"{\"model\": 3").unwrap();
    let err = Tokenizer::from_file(&bad).unwrap_err().to_string();
    assert!(
        err.contains("bad.json") && err.contains("not a valid Hugging Face tokenizer.json"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn train_bpe_on_shakespeare_round_trips_and_is_deterministic() {
    let Some(path) = shared("tinyshakespeare/input.txt") else {
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = temp_dir("bpe");
    let t0 = Instant::now();
    // Paragraphs as texts: as a training run on a directory of documents would give.
    let texts = || text.split("\n\n").map(str::to_string);
    let a = train_bpe(texts(), 512, &dir.join("a/tokenizer.json")).unwrap();
    eprintln!(
        "train_bpe (vocab 512) on tinyshakespeare: {:?}",
        t0.elapsed()
    );
    let b = train_bpe(texts(), 512, &dir.join("b/tokenizer.json")).unwrap();
    assert_eq!(a.vocab_size(), 512);
    assert_eq!(a.eos_id(), Some(0));
    assert!(a.splits_at_whitespace());
    let sample = &text[..2000];
    let ids = a.encode(sample).unwrap();
    assert_eq!(a.decode(&ids).unwrap(), sample);
    assert!(
        ids.len() < sample.len() * 2 / 3,
        "BPE compresses: {} ids",
        ids.len()
    );
    assert_eq!(ids, b.encode(sample).unwrap(), "two trainings, same ids");
    assert_eq!(
        std::fs::read(dir.join("a/tokenizer.json")).unwrap(),
        std::fs::read(dir.join("b/tokenizer.json")).unwrap(),
        "two trainings, same tokenizer.json"
    );
    // Text outside the training data still encodes (byte-level: no unknown tokens).
    let odd = "Zürich 東京 🚀";
    assert_eq!(a.decode(&a.encode(odd).unwrap()).unwrap(), odd);
    // Loads back from the file.
    let c = Tokenizer::from_file(dir.join("a/tokenizer.json")).unwrap();
    assert_eq!(c.encode(sample).unwrap(), ids);
    let err = train_bpe(texts(), 100, &dir.join("c.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("too small"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Text.

#[test]
fn text_file_windows_are_the_tokenized_text() {
    // A whole book: long enough to be tokenized in several parallel pieces, which must give
    // exactly the ids of encoding it in one piece.
    let Some(tok) = pico_tokenizer() else { return };
    let Some(book) = shared("corpus/train/gutenberg_pg11_Alices_Adventures_in_Wonderland.txt")
    else {
        return;
    };
    let whole = tok
        .encode(&std::fs::read_to_string(&book).unwrap())
        .unwrap();
    let seq = 127;
    let src = DataSource::open(&spec(&book, seq, 50304, Some(tok))).unwrap();
    assert_eq!(src.kind(), DataKind::Text);
    assert_eq!(src.total_tokens(), whole.len() as u64);
    assert_eq!(src.num_windows(), whole.len() as u64 / 128);
    let n = src.num_windows() as usize * 128;
    assert_eq!(all_windows(&src), whole[..n]);
}

#[test]
fn text_directory_is_read_in_path_order_with_eos_between_documents() {
    let Some(tok) = pico_tokenizer() else { return };
    let Some(train) = shared("corpus/train") else {
        return;
    };
    // Three small real books, linked into a directory (b/ nested to check recursion).
    let dir = temp_dir("textdir");
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let books = [
        ("a.txt", "gutenberg_pg7256_The_Gift_of_the_Magi.txt"),
        ("b/c.txt", "gutenberg_pg1080_A_Modest_Proposal.txt"),
        ("b/d.md", "gutenberg_pg1952_The_Yellow_Wallpaper.txt"),
    ];
    let mut expected = Vec::new();
    for (i, (name, book)) in books.iter().enumerate() {
        let src = train.join(book);
        std::os::unix::fs::symlink(&src, dir.join(name)).unwrap();
        if i > 0 {
            expected.push(PICO_EOS);
        }
        expected.extend(tok.encode(&std::fs::read_to_string(&src).unwrap()).unwrap());
    }
    std::fs::write(dir.join("b/ignored.csv"), "not,text\n").unwrap();
    std::fs::write(dir.join(".hidden.txt"), "skipped").unwrap();
    let src = DataSource::open(&spec(&dir, 255, 50304, Some(tok))).unwrap();
    assert_eq!(src.total_tokens(), expected.len() as u64);
    let n = src.num_windows() as usize * 256;
    assert_eq!(all_windows(&src), expected[..n]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn jsonl_documents_are_separated_by_eos() {
    let Some(tok) = pico_tokenizer() else { return };
    let Some(wiki) = shared("wikitext-2/test.txt") else {
        return;
    };
    let text = std::fs::read_to_string(&wiki).unwrap();
    let docs: Vec<&str> = text.lines().filter(|l| l.len() > 200).take(20).collect();
    let dir = temp_dir("jsonl");
    let path = dir.join("docs.jsonl");
    let mut jsonl = String::new();
    let mut expected = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        jsonl.push_str(&serde_json::json!({ "id": i, "text": d }).to_string());
        jsonl.push_str("\n\n"); // blank lines are skipped
        if i > 0 {
            expected.push(PICO_EOS);
        }
        expected.extend(tok.encode(d).unwrap());
    }
    std::fs::write(&path, jsonl).unwrap();
    let src = DataSource::open(&spec(&path, 63, PICO_VOCAB, Some(tok.clone()))).unwrap();
    let n = src.num_windows() as usize * 64;
    assert_eq!(src.total_tokens(), expected.len() as u64);
    assert_eq!(all_windows(&src), expected[..n]);

    std::fs::write(&path, "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n").unwrap();
    let err = err_of(DataSource::open(&spec(
        &path,
        4,
        PICO_VOCAB,
        Some(tok.clone()),
    )));
    assert!(
        err.contains("docs.jsonl line 2") && err.contains("\"text\""),
        "{err}"
    );
    std::fs::write(&path, "{\"text\": \"fine\"}\nnot json\n").unwrap();
    let err = err_of(DataSource::open(&spec(&path, 4, PICO_VOCAB, Some(tok))));
    assert!(
        err.contains("line 2") && err.contains("not valid JSON"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_cache_is_reused_and_invalidated() {
    let Some(tok) = pico_tokenizer() else { return };
    let Some(shakespeare) = shared("tinyshakespeare/input.txt") else {
        return;
    };
    let dir = temp_dir("cache");
    let cache = dir.join("cache");
    let s = DataSpec {
        cache_dir: Some(cache.clone()),
        seed: 3,
        ..spec(&shakespeare, 128, PICO_VOCAB, Some(tok.clone()))
    };
    let t0 = Instant::now();
    let mut a = DataSource::open(&s).unwrap();
    let first = t0.elapsed();
    let t1 = Instant::now();
    let mut b = DataSource::open(&s).unwrap();
    let second = t1.elapsed();
    eprintln!("tinyshakespeare: tokenize + cache {first:?}, open from cache {second:?}");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 2, "one .u32 and one .json");
    assert!(second < first, "{second:?} vs {first:?}");
    assert_eq!(a.next_batch(8).unwrap(), b.next_batch(8).unwrap());
    // Same as without a cache.
    let mut c = DataSource::open(&DataSpec {
        cache_dir: None,
        ..s.clone()
    })
    .unwrap();
    c.next_batch(8).unwrap();
    assert_eq!(a.next_batch(8).unwrap(), c.next_batch(8).unwrap());
    // A changed file gets a new cache entry; a different tokenizer too.
    let copy = dir.join("copy.txt");
    std::fs::copy(&shakespeare, &copy).unwrap();
    DataSource::open(&DataSpec {
        path: copy.clone(),
        ..s.clone()
    })
    .unwrap();
    std::fs::write(
        &copy,
        "First Citizen: a shorter text, but long enough for a window.".repeat(50),
    )
    .unwrap();
    let d = DataSource::open(&DataSpec {
        path: copy.clone(),
        seq_len: 16,
        ..s.clone()
    })
    .unwrap();
    assert!(d.total_tokens() < 1000);
    let small = small_tokenizer(&dir);
    DataSource::open(&DataSpec {
        path: copy,
        tokenizer: Some(small),
        seq_len: 16,
        ..s
    })
    .unwrap();
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Parquet.

/// Writes rows as HF datasets does: optional list<optional int64>.
fn write_parquet(path: &Path, column: &str, rows: &[Vec<i64>]) {
    let schema = format!(
        "message schema {{ OPTIONAL GROUP {column} (LIST) {{ REPEATED GROUP list {{ OPTIONAL \
         INT64 element; }} }} }}"
    );
    let schema = Arc::new(parse_message_type(&schema).unwrap());
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    // Two row groups when there are several rows.
    let half = rows.len().div_ceil(2);
    for group in rows.chunks(half.max(1)) {
        let mut rg = w.next_row_group().unwrap();
        while let Some(mut col) = rg.next_column().unwrap() {
            let (mut vals, mut def, mut rep) = (vec![], vec![], vec![]);
            for row in group {
                for (i, &v) in row.iter().enumerate() {
                    vals.push(v);
                    def.push(3);
                    rep.push(if i == 0 { 0 } else { 1 });
                }
            }
            col.typed::<Int64Type>()
                .write_batch(&vals, Some(&def), Some(&rep))
                .unwrap();
            col.close().unwrap();
        }
        rg.close().unwrap();
    }
    w.close().unwrap();
}

/// A required list<required int32> column: the other layout the reader handles.
fn write_parquet_i32(path: &Path, rows: &[Vec<i32>]) {
    let schema = "message schema { REQUIRED GROUP input_ids (LIST) { REPEATED GROUP list { \
                  REQUIRED INT32 element; } } }";
    let schema = Arc::new(parse_message_type(schema).unwrap());
    let props = Arc::new(WriterProperties::builder().build());
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    while let Some(mut col) = rg.next_column().unwrap() {
        let (mut vals, mut def, mut rep) = (vec![], vec![], vec![]);
        for row in rows {
            for (i, &v) in row.iter().enumerate() {
                vals.push(v);
                def.push(1);
                rep.push(if i == 0 { 0 } else { 1 });
            }
        }
        col.typed::<Int32Type>()
            .write_batch(&vals, Some(&def), Some(&rep))
            .unwrap();
        col.close().unwrap();
    }
    rg.close().unwrap();
    w.close().unwrap();
}

fn pico_rows(n: usize, len: usize) -> Vec<Vec<i64>> {
    (0..n)
        .map(|r| {
            (0..len)
                .map(|i| ((r * 7919 + i * 31) % PICO_VOCAB) as i64)
                .collect()
        })
        .collect()
}

#[test]
fn parquet_shards_give_windows_within_rows() {
    let dir = temp_dir("parquet");
    let rows = pico_rows(3, 2049);
    write_parquet(&dir.join("train-00000.parquet"), "input_ids", &rows);
    let more = pico_rows(5, 2049)[3..].to_vec();
    write_parquet(&dir.join("train-00001.parquet"), "input_ids", &more);
    let all_rows: Vec<u32> = rows
        .iter()
        .chain(&more)
        .flatten()
        .map(|&v| v as u32)
        .collect();

    // pico's layout: one window per row, in row order.
    let src = DataSource::open(&spec(&dir, 2048, 50304, None)).unwrap();
    assert_eq!(src.kind(), DataKind::Parquet);
    assert_eq!(src.num_windows(), 5);
    assert_eq!(all_windows(&src), all_rows);

    // Shorter windows never cross rows; the tail of a row is dropped.
    let src = DataSource::open(&spec(&dir, 999, 50304, None)).unwrap();
    assert_eq!(src.num_windows(), 10);
    for i in 0..10u64 {
        let (row, k) = ((i / 2) as usize, (i % 2) as usize * 1000);
        assert_eq!(
            src.window(i).unwrap(),
            all_rows[row * 2049 + k..row * 2049 + k + 1000],
            "window {i}"
        );
    }

    // A single file, through the cache, and shuffled batches hold the same rows.
    let s = DataSpec {
        cache_dir: Some(dir.join("cache")),
        seed: 11,
        ..spec(&dir.join("train-00000.parquet"), 2048, 50304, None)
    };
    let mut src = DataSource::open(&s).unwrap();
    let mut got: Vec<Vec<u32>> = src
        .next_batch(3)
        .unwrap()
        .chunks(2049)
        .map(<[u32]>::to_vec)
        .collect();
    got.sort();
    let mut want: Vec<Vec<u32>> = all_rows[..3 * 2049]
        .chunks(2049)
        .map(<[u32]>::to_vec)
        .collect();
    want.sort();
    assert_eq!(got, want);
    let cached = DataSource::open(&s).unwrap();
    assert_eq!(all_windows(&cached), all_rows[..3 * 2049]);

    // int32, required layout.
    let p32 = dir.join("i32.parquet");
    write_parquet_i32(&p32, &[(0..12).collect(), (12..27).collect()]);
    let src = DataSource::open(&spec(&p32, 4, 100, None)).unwrap();
    assert_eq!(
        all_windows(&src),
        (0..10).chain(12..27).collect::<Vec<u32>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parquet_errors_name_the_file_and_row() {
    let dir = temp_dir("parquet-err");
    // A short row.
    let mut rows = pico_rows(3, 2049);
    rows[2].truncate(100);
    let short = dir.join("short.parquet");
    write_parquet(&short, "input_ids", &rows);
    let err = err_of(DataSource::open(&spec(&short, 2048, 50304, None)));
    assert!(
        err.contains("short.parquet") && err.contains("row 2") && err.contains("100 token ids"),
        "{err}"
    );
    // Ids outside the vocabulary.
    let mut rows = pico_rows(2, 2049);
    rows[1][17] = 60000;
    let big = dir.join("big.parquet");
    write_parquet(&big, "input_ids", &rows);
    let err = err_of(DataSource::open(&spec(&big, 2048, 50304, None)));
    assert!(
        err.contains("big.parquet")
            && err.contains("row 1")
            && err.contains("position 17")
            && err.contains("60000")
            && err.contains("tokenizer"),
        "{err}"
    );
    // Wrong column.
    let wrong = dir.join("wrong.parquet");
    write_parquet(&wrong, "tokens", &pico_rows(1, 2049));
    let err = err_of(DataSource::open(&spec(&wrong, 2048, 50304, None)));
    assert!(
        err.contains("wrong.parquet")
            && err.contains("no column \"input_ids\"")
            && err.contains("tokens"),
        "{err}"
    );
    // Not parquet at all.
    let junk = dir.join("junk.parquet");
    std::fs::write(&junk, b"this is not a parquet file at all").unwrap();
    let err = err_of(DataSource::open(&spec(&junk, 2048, 50304, None)));
    assert!(
        err.contains("junk.parquet") && err.contains("not a readable parquet file"),
        "{err}"
    );
    // No rows.
    let empty = dir.join("empty.parquet");
    write_parquet(&empty, "input_ids", &[]);
    let err = err_of(DataSource::open(&spec(&empty, 2048, 50304, None)));
    assert!(
        err.contains("no tokens") && err.contains("0 row(s)"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Bin.

fn write_bin(path: &Path, ids: &[u32], dtype: BinDtype) {
    let bytes: Vec<u8> = match dtype {
        BinDtype::U16 => ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect(),
        BinDtype::U32 => ids.iter().flat_map(|&i| i.to_le_bytes()).collect(),
    };
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bin_files_u16_and_u32() {
    let dir = temp_dir("bin");
    let ids: Vec<u32> = (0..1000).map(|i| (i * 37) % 50280).collect();
    let p16 = dir.join("train.bin");
    write_bin(&p16, &ids, BinDtype::U16);
    let src = DataSource::open(&spec(&p16, 99, 50304, None)).unwrap();
    assert_eq!(src.kind(), DataKind::Bin);
    assert_eq!(src.num_windows(), 10);
    assert_eq!(all_windows(&src), ids);

    let big: Vec<u32> = (0..1000).map(|i| 70_000 + i).collect();
    let p32 = dir.join("wide.bin");
    write_bin(&p32, &big, BinDtype::U32);
    let s32 = DataSpec {
        bin_dtype: BinDtype::U32,
        ..spec(&p32, 249, 100_000, None)
    };
    let src = DataSource::open(&s32).unwrap();
    assert_eq!(src.num_windows(), 4);
    assert_eq!(all_windows(&src), big);
    // Read as u16, the same file is (low, high) halves: in range, so no error, but different.
    // Read the u16 file as u32: ids far outside the vocabulary.
    let err = err_of(DataSource::open(&DataSpec {
        bin_dtype: BinDtype::U32,
        ..spec(&p16, 99, 50304, None)
    }));
    assert!(
        err.contains("train.bin") && err.contains("token 0") && err.contains("token dtype"),
        "{err}"
    );
    assert_eq!("u32".parse::<BinDtype>().unwrap(), BinDtype::U32);
    assert!("f16".parse::<BinDtype>().is_err());

    // A directory of .bin files: each file is cut on its own, in path order.
    let d = dir.join("shards");
    std::fs::create_dir_all(&d).unwrap();
    write_bin(&d.join("a.bin"), &ids[..250], BinDtype::U16);
    write_bin(&d.join("b.bin"), &ids[250..], BinDtype::U16);
    let src = DataSource::open(&spec(&d, 99, 50304, None)).unwrap();
    assert_eq!(src.num_windows(), 2 + 7);
    let mut want = ids[..200].to_vec();
    want.extend(&ids[250..950]);
    assert_eq!(all_windows(&src), want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bin_errors() {
    let dir = temp_dir("bin-err");
    let p = dir.join("t.bin");
    let mut ids: Vec<u32> = (0..500).collect();
    ids[321] = 60_000;
    write_bin(&p, &ids, BinDtype::U16);
    let err = err_of(DataSource::open(&spec(&p, 63, 50304, None)));
    assert!(
        err.contains("t.bin")
            && err.contains("token 321")
            && err.contains("60000")
            && err.contains("vocab_size 50304"),
        "{err}"
    );
    std::fs::write(&p, [1u8, 2, 3]).unwrap();
    let err = err_of(DataSource::open(&spec(&p, 63, 50304, None)));
    assert!(err.contains("not a whole number of u16"), "{err}");
    write_bin(&p, &(0..50).collect::<Vec<_>>(), BinDtype::U16);
    let err = err_of(DataSource::open(&spec(&p, 63, 50304, None)));
    assert!(
        err.contains("found 50 tokens") && err.contains("need at least 64"),
        "{err}"
    );
    std::fs::write(&p, []).unwrap();
    let err = err_of(DataSource::open(&spec(&p, 63, 50304, None)));
    assert!(err.contains("empty") && err.contains("no tokens"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Order, resume, held-out data.

#[test]
fn resume_gives_the_same_batches() {
    let Some(tok) = pico_tokenizer() else { return };
    let Some(shakespeare) = shared("tinyshakespeare/input.txt") else {
        return;
    };
    let dir = temp_dir("resume");
    let s = DataSpec {
        cache_dir: Some(dir.join("cache")),
        seed: 1234,
        holdout: Holdout::Fraction(0.05),
        ..spec(&shakespeare, 256, PICO_VOCAB, Some(tok))
    };
    let k = 10;
    let mut straight = DataSource::open(&s).unwrap();
    let want: Vec<Vec<u32>> = (0..k).map(|_| straight.next_batch(4).unwrap()).collect();

    let mut first = DataSource::open(&s).unwrap();
    let mut got: Vec<Vec<u32>> = (0..k / 2).map(|_| first.next_batch(4).unwrap()).collect();
    let saved = serde_json::to_string(&first.state()).unwrap();
    drop(first);
    let mut resumed = DataSource::open(&s).unwrap();
    resumed
        .restore(&serde_json::from_str::<DataState>(&saved).unwrap())
        .unwrap();
    got.extend((k / 2..k).map(|_| resumed.next_batch(4).unwrap()));
    assert_eq!(got, want);

    // Another seed, another order; the state of other data is refused.
    let mut other = DataSource::open(&DataSpec {
        seed: 1,
        ..s.clone()
    })
    .unwrap();
    assert_ne!(other.next_batch(4).unwrap(), want[0]);
    let mut shorter = DataSource::open(&DataSpec {
        seq_len: 128,
        ..s.clone()
    })
    .unwrap();
    let err = shorter.restore(&straight.state()).unwrap_err().to_string();
    assert!(err.contains("does not match"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn epochs_reshuffle_and_resume_across_epoch_boundaries() {
    let dir = temp_dir("epochs");
    let p = dir.join("t.bin");
    let ids: Vec<u32> = (0..70).collect();
    write_bin(&p, &ids, BinDtype::U16);
    let s = DataSpec {
        seed: 5,
        ..spec(&p, 6, 100, None)
    }; // 10 windows of 7
    let mut src = DataSource::open(&s).unwrap();
    let epoch = |b: &[u32]| -> Vec<u32> { b.chunks(7).map(|w| w[0] / 7).collect() };
    let e0 = epoch(&src.next_batch(10).unwrap());
    let e1 = epoch(&src.next_batch(10).unwrap());
    for e in [&e0, &e1] {
        let mut sorted = e.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            (0..10).collect::<Vec<_>>(),
            "each epoch sees every window once"
        );
    }
    assert_ne!(e0, e1, "a new order each epoch");
    assert_eq!(src.epoch(), 1);

    // Batches straddling epochs, resumed mid-way.
    let mut a = DataSource::open(&s).unwrap();
    let want: Vec<u32> = (0..7).flat_map(|_| a.next_batch(3).unwrap()).collect();
    let mut b = DataSource::open(&s).unwrap();
    let mut got: Vec<u32> = (0..4).flat_map(|_| b.next_batch(3).unwrap()).collect();
    let st = b.state();
    assert_eq!((st.epoch, st.position), (1, 2));
    let mut c = DataSource::open(&s).unwrap();
    c.restore(&st).unwrap();
    got.extend((0..3).flat_map(|_| c.next_batch(3).unwrap()));
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn heldout_windows_are_never_trained_on() {
    let Some(tok) = pico_tokenizer() else { return };
    let Some(wiki) = shared("wikitext-2/test.txt") else {
        return;
    };
    let dir = temp_dir("heldout");
    let s = DataSpec {
        holdout: Holdout::Fraction(0.1),
        seed: 9,
        cache_dir: Some(dir.clone()),
        ..spec(&wiki, 512, PICO_VOCAB, Some(tok))
    };
    let mut train = DataSource::open(&s).unwrap();
    let held = DataSource::open_heldout(&s).unwrap();
    assert_eq!(held.split(), Split::Heldout);
    let total = train.total_windows();
    assert_eq!(train.num_windows() + held.num_windows(), total);
    assert_eq!(held.num_windows(), (total as f64 * 0.1).round() as u64);
    eprintln!("{}", train.describe());
    let held_rows: std::collections::HashSet<Vec<u32>> = (0..held.num_windows())
        .map(|i| held.window(i).unwrap())
        .collect();
    let n = train.num_windows() as usize;
    let batch = train.next_batch(n).unwrap();
    for row in batch.chunks(513) {
        assert!(!held_rows.contains(row));
    }
    // Held-out batches come in data order.
    let mut h = DataSource::open_heldout(&s).unwrap();
    assert_eq!(
        h.next_batch(2).unwrap(),
        [held.window(0).unwrap(), held.window(1).unwrap()].concat()
    );

    // The last N windows.
    let last = DataSpec {
        holdout: Holdout::LastWindows(3),
        ..s.clone()
    };
    let held = DataSource::open_heldout(&last).unwrap();
    let all = DataSource::open(&DataSpec {
        holdout: Holdout::None,
        ..s.clone()
    })
    .unwrap();
    assert_eq!(held.window(2).unwrap(), all.window(total - 1).unwrap());
    let err = err_of(DataSource::open_heldout(&DataSpec {
        holdout: Holdout::None,
        ..s.clone()
    }));
    assert!(err.contains("no held-out data"), "{err}");
    let err = err_of(DataSource::open(&DataSpec {
        holdout: Holdout::LastWindows(total),
        ..s
    }));
    assert!(err.contains("leaves none to train on"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Input errors.

#[test]
fn input_errors_are_clear() {
    let dir = temp_dir("inerr");
    let tok = small_tokenizer(&dir);
    let missing = dir.join("nowhere");
    let err = err_of(DataSource::open(&spec(&missing, 8, 300, Some(tok.clone()))));
    assert!(
        err.contains("nowhere") && err.contains("does not exist"),
        "{err}"
    );

    let empty_dir = dir.join("empty");
    std::fs::create_dir_all(&empty_dir).unwrap();
    let err = err_of(DataSource::open(&spec(
        &empty_dir,
        8,
        300,
        Some(tok.clone()),
    )));
    assert!(err.contains("no documents found"), "{err}");

    let empty_file = empty_dir.join("a.txt");
    std::fs::write(&empty_file, "").unwrap();
    let err = err_of(DataSource::open(&spec(
        &empty_dir,
        8,
        300,
        Some(tok.clone()),
    )));
    assert!(
        err.contains("no documents") && err.contains("empty"),
        "{err}"
    );

    let short = dir.join("short.txt");
    std::fs::write(&short, "the quick brown fox").unwrap();
    let n = tok.encode("the quick brown fox").unwrap().len();
    let err = err_of(DataSource::open(&spec(&short, 64, 300, Some(tok.clone()))));
    assert!(
        err.contains(&format!("found {n} tokens")) && err.contains("need at least 65"),
        "{err}"
    );

    let err = err_of(DataSource::open(&spec(&short, 2, 300, None)));
    assert!(err.contains("tokenizer is needed"), "{err}");

    // The tokenizer's ids do not fit the model's vocabulary.
    let text = dir.join("t.txt");
    std::fs::write(
        &text,
        "document 5 says the quick brown fox jumps 5 ".repeat(20),
    )
    .unwrap();
    let err = err_of(DataSource::open(&spec(&text, 8, 100, Some(tok.clone()))));
    assert!(
        err.contains("t.txt")
            && err.contains("outside the vocabulary (vocab_size 100)")
            && err.contains("tokenizer (300 ids)"),
        "{err}"
    );

    let mixed = dir.join("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    write_bin(&mixed.join("a.bin"), &[1; 100], BinDtype::U16);
    write_parquet(&mixed.join("b.parquet"), "input_ids", &pico_rows(1, 20));
    let err = err_of(DataSource::open(&spec(&mixed, 8, 300, None)));
    assert!(err.contains("both .parquet and .bin"), "{err}");
    let src = DataSource::open(&DataSpec {
        kind: Some(DataKind::Bin),
        ..spec(&mixed, 8, 300, None)
    })
    .unwrap();
    assert_eq!(src.num_windows(), 11);
    let _ = std::fs::remove_dir_all(&dir);
}
