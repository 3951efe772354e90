//! `wgtrain eval --documents` (and `--per-document`) end to end, against an independent plain
//! computation.
//!
//! The checkpoint is a tiny random model (context 16) with the byte tokenizer (one id per
//! UTF-8 byte), so a document's ids are its bytes and the reference needs no tokenizer. Its
//! output projection is scaled up so that predictions are far from uniform and the documents'
//! perplexities differ: the mean of per-document perplexities and the token-pooled one are
//! then clearly different numbers.
//!
//! Reference: each document on its own, its first `max_length` bytes (no start token), through
//! a batch-1 inference decoder planned for exactly that length and loaded from the checkpoint
//! files; logits downloaded, log-softmax of each label on the host in f64. The CLI packs
//! documents into batches of right-padded windows and sums the GPU's per-token NLL. They
//! differ by f32 rounding only (~1e-6 relative per token), and the CLI prints 6 decimals, so
//! the printed perplexities are compared to 1e-4 relative.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use wgtrain::model::checkpoint::{self, Checkpoint};
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;
use wgtrain::train::byte_tokenizer;
use wgtrain::Gpu;

const CONTEXT: usize = 16;

fn config() -> ModelConfig {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.d_model = 16;
    c.n_layers = 1;
    c.vocab_size = byte_tokenizer::VOCAB;
    c.attention_n_heads = 4;
    c.attention_n_kv_heads = 2;
    c.activation_hidden_dim = 32;
    c.max_seq_len = CONTEXT;
    c
}

/// The shared checkpoint directory (config.json, model.safetensors, tokenizer.json).
fn checkpoint_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let gpu = common::gpu();
        let dir = common::temp_path("eval-documents").join("ckpt");
        let m = Decoder::for_inference(&gpu, &config(), 1, CONTEXT).unwrap();
        m.init_params(&gpu, 17).unwrap();
        let mut params = pollster::block_on(m.read_params(&gpu)).unwrap();
        for (name, _, values) in &mut params {
            if name == "de_embedding_proj.weight" {
                values.iter_mut().for_each(|v| *v *= 3.0);
            }
        }
        let list: Vec<(&str, &[usize], &[f32])> = params
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        checkpoint::save(&dir, &config(), &list).unwrap();
        std::fs::write(dir.join("tokenizer.json"), byte_tokenizer::tokenizer_json()).unwrap();
        dir
    })
}

/// Plain per-document scoring, one forward per window, host log-softmax in f64.
struct Reference {
    gpu: Gpu,
    ckpt: Checkpoint,
    models: HashMap<usize, Decoder>,
}

impl Reference {
    fn new() -> Reference {
        Reference {
            gpu: common::gpu(),
            ckpt: checkpoint::load_checked(checkpoint_dir()).unwrap(),
            models: HashMap::new(),
        }
    }

    /// log p(x[i] | x[..i]) for i = 1..len, from one unpadded forward of `x`.
    fn label_logprobs(&mut self, x: &[u32]) -> Vec<f64> {
        let t = x.len() - 1;
        let (gpu, ckpt) = (&self.gpu, &self.ckpt);
        let m = self.models.entry(t).or_insert_with(|| {
            let m = Decoder::for_inference(gpu, &ckpt.config, 1, t).unwrap();
            m.load_params(gpu, |n| ckpt.tensors.get(n).map(|t| t.data.as_slice()))
                .unwrap();
            m
        });
        m.set_batch(gpu, x).unwrap();
        let mut enc = gpu.encoder();
        m.record_eval_forward(&mut enc);
        gpu.submit(enc);
        let v = ckpt.config.vocab_size;
        let logits = m.logits().unwrap().to_vec_f32(gpu).unwrap();
        (0..t)
            .map(|p| {
                let row = &logits[p * v..(p + 1) * v];
                let max = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let lse = max
                    + row
                        .iter()
                        .map(|&l| (l as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                row[x[p + 1] as usize] as f64 - lse
            })
            .collect()
    }

    /// NLL of every label of `x` by sliding windows of `max_length` ids advancing `stride`
    /// labels: the first window scores labels 1..=max_length-1; each next one scores the
    /// following `stride` labels (fewer at the end), each with the max_length - 1 ids before
    /// its last label as context.
    fn sliding_nll(&mut self, x: &[u32], max_length: usize, stride: usize) -> f64 {
        let labels = max_length - 1;
        let n = x.len() - 1;
        let mut end = n.min(labels);
        let mut nll = -self.label_logprobs(&x[..=end]).iter().sum::<f64>();
        while end < n {
            let next = (end + stride).min(n);
            let start = next - labels;
            let lp = self.label_logprobs(&x[start..=next]);
            // lp[j] is label start + 1 + j; labels end+1..=next are new.
            nll -= lp[end - start..].iter().sum::<f64>();
            end = next;
        }
        nll
    }

    /// (Paloma mean of per-document perplexities, pooled perplexity, scored tokens,
    /// documents scored) with truncation to `max_length`, or sliding windows of `stride`.
    fn score(
        &mut self,
        docs: &[&str],
        max_length: usize,
        stride: Option<usize>,
    ) -> (f64, f64, usize, usize) {
        let (mut ppl_sum, mut nll_sum, mut tokens, mut scored) = (0.0, 0.0, 0usize, 0usize);
        for d in docs {
            // No start token: the document's ids are its bytes, nothing before them.
            let ids: Vec<u32> = d.bytes().map(u32::from).collect();
            if ids.len() < 2 {
                continue;
            }
            let (nll, n) = match stride {
                None => {
                    let kept = &ids[..ids.len().min(max_length)];
                    (
                        -self.label_logprobs(kept).iter().sum::<f64>(),
                        kept.len() - 1,
                    )
                }
                Some(s) => (self.sliding_nll(&ids, max_length, s), ids.len() - 1),
            };
            ppl_sum += (nll / n as f64).exp();
            nll_sum += nll;
            tokens += n;
            scored += 1;
        }
        (
            ppl_sum / scored as f64,
            (nll_sum / tokens as f64).exp(),
            tokens,
            scored,
        )
    }
}

/// The number right after `key` on the first line of `out` containing it.
fn number_after(out: &str, key: &str) -> f64 {
    out.lines()
        .find_map(|l| l.split_once(key).map(|(_, rest)| rest.to_string()))
        .and_then(|rest| {
            rest.split_whitespace()
                .next()
                .and_then(|w| w.trim_end_matches([',', ';', ')']).parse().ok())
        })
        .unwrap_or_else(|| panic!("no number after {key:?} in:\n{out}"))
}

fn close(got: f64, want: f64, what: &str, out: &str) {
    assert!(
        (got / want - 1.0).abs() < 1e-4,
        "{what}: CLI {got}, reference {want}\n{out}"
    );
}

fn eval_documents(path: &Path, extra: &[&str]) -> String {
    common::wgtrain(["eval", "--checkpoint"])
        .arg(checkpoint_dir())
        .arg("--documents")
        .arg(path)
        .args(extra)
        .test_backend()
        .run_ok()
}

/// JSONL documents: 2 ids, 1 id and 0 ids (both skipped), 40 and 17 ids (truncated), exactly
/// 16 ids (not truncated), and multi-byte UTF-8.
const JSONL_DOCS: [&str; 7] = [
    "ab",
    "x",
    "",
    "The quick brown fox jumps over the lazy dog",
    "exactly 16 bytes",
    "seventeen bytes!!",
    "héllo, wörld ✓",
];

/// .txt documents, in path order: a.txt, b.txt, sub/c.txt.
const TXT_DOCS: [&str; 3] = [
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "Once upon a time\n",
    "qwerty",
];

fn write_documents(root: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(root.join("txt/sub")).unwrap();
    let mut jsonl = String::new();
    for (i, d) in JSONL_DOCS.iter().enumerate() {
        jsonl += &serde_json::json!({"text": d, "id": i}).to_string();
        jsonl += "\n";
        if i == 2 {
            jsonl += "\n"; // blank lines are not documents
        }
    }
    let jsonl_path = root.join("docs.jsonl");
    std::fs::write(&jsonl_path, jsonl).unwrap();
    let txt = root.join("txt");
    std::fs::write(txt.join("a.txt"), TXT_DOCS[0]).unwrap();
    std::fs::write(txt.join("b.txt"), TXT_DOCS[1]).unwrap();
    std::fs::write(txt.join("sub/c.txt"), TXT_DOCS[2]).unwrap();
    std::fs::write(txt.join("notes.md"), "not a document").unwrap();
    (jsonl_path, txt)
}

#[test]
fn documents_score_by_paloma_rule_as_computed_by_hand() {
    let root = common::temp_path("eval-documents-paloma");
    let (jsonl, txt) = write_documents(&root);
    let mut reference = Reference::new();

    let t0 = std::time::Instant::now();
    let out = eval_documents(&jsonl, &[]);
    eprintln!("{out}(in {:.2?})", t0.elapsed());
    let (mean, pooled, tokens, scored) = reference.score(&JSONL_DOCS, CONTEXT, None);
    assert_eq!((scored, tokens), (5, 1 + 15 + 15 + 15 + 15));
    assert!(
        out.contains("Paloma's figure") && !out.contains("stride"),
        "truncation is the default:\n{out}"
    );
    close(
        number_after(&out, "per-document perplexity"),
        mean,
        "mean",
        &out,
    );
    close(
        number_after(&out, "token-pooled perplexity"),
        pooled,
        "pooled",
        &out,
    );
    assert!(
        (mean / pooled - 1.0).abs() > 1e-2,
        "the test needs documents whose mean and pooled perplexities differ: {mean} vs {pooled}"
    );
    assert_eq!(number_after(&out, "nats over") as usize, tokens, "{out}");
    assert!(
        out.contains("7 documents: 5 scored, 2 skipped (fewer than 2 token ids)"),
        "{out}"
    );
    let long: Vec<usize> = JSONL_DOCS
        .iter()
        .map(|d| d.len())
        .filter(|&n| n > CONTEXT)
        .collect();
    assert_eq!(
        long.len(),
        3,
        "the fox, seventeen bytes and the multi-byte one"
    );
    let dropped: usize = long.iter().map(|n| n - CONTEXT).sum();
    assert!(
        out.contains(&format!("3 truncated to 16 ids ({dropped} ids not scored)")),
        "{out}"
    );
    // A directory of .txt files (recursively, .md ignored), and a shorter --max-length.
    let out = eval_documents(&txt, &["--max-length", "8", "--batch", "2"]);
    let (mean, pooled, tokens, _) = reference.score(&TXT_DOCS, 8, None);
    close(
        number_after(&out, "per-document perplexity"),
        mean,
        "txt mean",
        &out,
    );
    close(
        number_after(&out, "token-pooled perplexity"),
        pooled,
        "txt pooled",
        &out,
    );
    assert_eq!(tokens, 7 + 7 + 5);
    assert!(
        out.contains("3 documents: 3 scored, 0 skipped") && out.contains("2 truncated to 8 ids"),
        "{out}"
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn sliding_windows_score_every_token() {
    let root = common::temp_path("eval-documents-slide");
    let (jsonl, _) = write_documents(&root);
    let mut reference = Reference::new();
    let out = eval_documents(
        &jsonl,
        &["--long-documents", "slide", "--stride", "4", "--batch", "3"],
    );
    let (mean, pooled, tokens, _) = reference.score(&JSONL_DOCS, CONTEXT, Some(4));
    let all: usize = JSONL_DOCS.iter().map(|d| d.len().saturating_sub(1)).sum();
    assert_eq!(tokens, all);
    assert_eq!(number_after(&out, "nats over") as usize, all, "{out}");
    close(
        number_after(&out, "per-document perplexity"),
        mean,
        "slide mean",
        &out,
    );
    close(
        number_after(&out, "token-pooled perplexity"),
        pooled,
        "slide pooled",
        &out,
    );
    assert!(
        out.contains("not the study's rule")
            && !out.contains("Paloma's figure")
            && out.contains("0 truncated (3 longer than 16"),
        "{out}"
    );
    // The default stride is (max_length - 1) / 2 = 7.
    let out = eval_documents(&jsonl, &["--long-documents", "slide"]);
    let (mean, _, _, _) = reference.score(&JSONL_DOCS, CONTEXT, Some(7));
    assert!(out.contains("stride 7"), "{out}");
    close(
        number_after(&out, "per-document perplexity"),
        mean,
        "stride 7",
        &out,
    );
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn per_document_wikitext_uses_the_same_rule_as_documents() {
    let root = common::temp_path("eval-documents-wikitext");
    std::fs::create_dir_all(root.join("articles")).unwrap();
    let articles = [
        " = First = \n \n A first article , longer than the context .",
        " = Second = \n Two .",
    ];
    let text = format!("\n{}\n \n{}\n", articles[0], articles[1]);
    let text_path = root.join("wiki.txt");
    std::fs::write(&text_path, &text).unwrap();
    assert_eq!(wgtrain::eval::wikitext_documents(&text), articles);
    for (i, a) in articles.iter().enumerate() {
        std::fs::write(root.join(format!("articles/{i}.txt")), a).unwrap();
    }
    let out = common::wgtrain(["eval", "--per-document", "--checkpoint"])
        .arg(checkpoint_dir())
        .arg("--text")
        .arg(&text_path)
        .test_backend()
        .run_ok();
    let mut reference = Reference::new();
    let (mean, pooled, tokens, _) = reference.score(&articles, CONTEXT, None);
    assert_eq!(tokens, 15 + 15);
    assert!(out.contains("(WikiText articles)"), "{out}");
    close(
        number_after(&out, "per-document perplexity"),
        mean,
        "articles",
        &out,
    );
    close(
        number_after(&out, "token-pooled perplexity"),
        pooled,
        "articles pooled",
        &out,
    );
    assert!(out.contains("2 truncated to 16 ids"), "{out}");
    // The same figures as --documents on the same articles: one definition.
    let docs = eval_documents(&root.join("articles"), &[]);
    let line = |o: &str, key: &str| {
        o.lines()
            .find_map(|l| l.split_once(key).map(|(_, r)| r.to_string()))
            .unwrap()
    };
    for key in ["per-document perplexity", "token-pooled perplexity"] {
        assert_eq!(line(&out, key), line(&docs, key), "{out}{docs}");
    }
    // Stream perplexity of the file is still reported.
    assert!(out.contains("wiki.txt: perplexity"), "{out}");
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let root = common::temp_path("eval-documents-errors");
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("short")).unwrap();
    std::fs::write(root.join("empty/notes.md"), "no documents here").unwrap();
    std::fs::write(root.join("short/a.txt"), "a").unwrap();
    std::fs::write(root.join("short/b.txt"), "").unwrap();
    std::fs::write(root.join("bad.jsonl"), "{\"text\": \"fine\"}\nnot json\n").unwrap();
    std::fs::write(root.join("field.jsonl"), "{\"body\": \"no text\"}\n").unwrap();
    std::fs::write(root.join("ok.jsonl"), "{\"text\": \"fine text\"}\n").unwrap();
    // A tokenizer with one id more than the model's vocabulary.
    let mut tok: serde_json::Value =
        serde_json::from_str(&byte_tokenizer::tokenizer_json()).unwrap();
    let extra = byte_tokenizer::VOCAB;
    tok["added_tokens"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": extra, "content": "<|extra|>", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
    tok["model"]["vocab"]["<|extra|>"] = serde_json::json!(extra);
    let big = root.join("big-tokenizer.json");
    std::fs::write(&big, tok.to_string()).unwrap();

    let p = |name: &str| root.join(name).display().to_string();
    let ok = p("ok.jsonl");
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--documents".into(), p("missing")],
            "does not exist".into(),
        ),
        (
            vec!["--documents".into(), p("empty")],
            "holds no documents".into(),
        ),
        (
            vec!["--documents".into(), p("bad.jsonl")],
            "bad.jsonl:2: not a JSON object".into(),
        ),
        (
            vec!["--documents".into(), p("field.jsonl")],
            "field.jsonl:1: no string field `text`".into(),
        ),
        (
            vec![
                "--documents".into(),
                ok.clone(),
                "--tokenizer".into(),
                big.display().to_string(),
            ],
            format!(
                "the tokenizer has {} ids but the model only {}",
                extra + 1,
                extra
            ),
        ),
        (
            vec!["--documents".into(), p("short")],
            "none of the 2 documents has 2 or more token ids".into(),
        ),
        (
            vec![
                "--documents".into(),
                ok.clone(),
                "--max-length".into(),
                "17".into(),
            ],
            "longer than the model's context (max_seq_len 16)".into(),
        ),
        (
            vec![
                "--documents".into(),
                ok.clone(),
                "--max-length".into(),
                "1".into(),
            ],
            "must be at least 2".into(),
        ),
        (
            vec![
                "--documents".into(),
                ok.clone(),
                "--stride".into(),
                "3".into(),
            ],
            "--stride applies to sliding windows only".into(),
        ),
        (
            vec![
                "--documents".into(),
                ok.clone(),
                "--long-documents".into(),
                "slide".into(),
                "--stride".into(),
                "16".into(),
            ],
            "between 1 and max_length - 1 (15)".into(),
        ),
        (vec!["--per-document".into()], "give --text FILE".into()),
        (vec![], "nothing to evaluate".into()),
    ];
    for (args, want) in &cases {
        let r = common::wgtrain(["eval", "--checkpoint"])
            .arg(checkpoint_dir())
            .args(args)
            .test_backend()
            .run();
        assert!(!r.ok, "{args:?} succeeded:\n{}", r.stdout);
        assert!(
            r.stderr.contains(want) && !r.stderr.contains("panicked"),
            "{args:?}: want {want:?} in:\n{}",
            r.stderr
        );
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn help_says_what_is_computed() {
    let eval = common::wgtrain(["eval", "--help"]).run_ok();
    for want in [
        "Paloma",
        "no start token",
        "not the study's rule",
        "LoRA dropout",
    ] {
        assert!(eval.contains(want), "eval --help lacks {want:?}:\n{eval}");
    }
    let grads = common::wgtrain(["grads", "--help"]).run_ok();
    assert!(
        grads.contains("deterministic gradient")
            && grads.contains("without LoRA dropout")
            && grads.contains("model.eval()"),
        "{grads}"
    );
}
