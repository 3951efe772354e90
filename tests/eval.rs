//! The evaluation module against independent host references.
//!
//! References: every scored window or sentence is run on its own, unpadded, through a model
//! planned with exactly its length (batch 1); its logits are downloaded and the log-softmax of
//! the label is taken on the host in f64. The evaluation module instead packs windows into the
//! model's fixed [batch, seq] shape, pads, and sums the GPU's per-token NLL of the valid
//! positions. Tolerance: the two differ only by f32 rounding of logits computed in differently
//! shaped dispatches and of the GPU's log-sum-exp, so per-token NLLs (about ln 50 = 3.9 for a
//! random model over 50 ids) agree to ~1e-6; sums of up to 40 tokens are compared to 1e-4
//! absolute plus 1e-5 relative, and perplexities to 1e-5 relative.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use wgtrain::eval::{
    self, blimp, blimp_paradigms, parse_jsonl, perplexity, perplexity_per_document, read_paradigms,
    sequence_logprobs, wikitext_documents, BlimpOptions, DocumentOptions, LongDocuments,
    LongSequences,
};
use wgtrain::model::config::ModelConfig;
use wgtrain::model::decoder::Decoder;
use wgtrain::Gpu;

const VOCAB: usize = 50;

fn small_config() -> ModelConfig {
    let mut c = ModelConfig::preset("tiny").unwrap();
    c.d_model = 24;
    c.n_layers = 2;
    c.vocab_size = VOCAB;
    c.attention_n_heads = 6;
    c.attention_n_kv_heads = 2;
    c.activation_hidden_dim = 40;
    c.max_seq_len = 16;
    c
}

fn model(gpu: &Gpu, batch: usize, seq: usize) -> Decoder {
    let m = Decoder::new(gpu, &small_config(), batch, seq).unwrap();
    m.init_params(gpu, 11).unwrap();
    m
}

/// Deterministic ids in [lo, VOCAB).
fn ids(n: usize, seed: u64, lo: u32) -> Vec<u32> {
    common::random(n, seed)
        .iter()
        .map(|r| {
            lo + (((r + 1.0) * 0.5 * (VOCAB as u32 - lo) as f32) as u32).min(VOCAB as u32 - lo - 1)
        })
        .collect()
}

/// Host reference: per-label log-probabilities of `x[1..]` given the ids before, from the
/// logits of one unpadded forward of `x[..len-1]` (a batch-1 model planned for exactly that
/// length, seeded like the model under test), log-softmax in f64.
struct Reference<'a> {
    gpu: &'a Gpu,
    models: HashMap<usize, Decoder>,
}

impl<'a> Reference<'a> {
    fn new(gpu: &'a Gpu) -> Self {
        Reference {
            gpu,
            models: HashMap::new(),
        }
    }

    fn label_logprobs(&mut self, x: &[u32]) -> Vec<f64> {
        let t = x.len() - 1;
        let gpu = self.gpu;
        let m = self.models.entry(t).or_insert_with(|| model(gpu, 1, t));
        m.set_batch(gpu, x).unwrap();
        let mut enc = gpu.encoder();
        m.record_forward(&mut enc);
        gpu.submit(enc);
        let logits = m.logits().unwrap().to_vec_f32(gpu).unwrap();
        (0..t)
            .map(|p| {
                let row = &logits[p * VOCAB..(p + 1) * VOCAB];
                let max = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
                let lse = max
                    + row
                        .iter()
                        .map(|&v| (v as f64 - max).exp())
                        .sum::<f64>()
                        .ln();
                row[x[p + 1] as usize] as f64 - lse
            })
            .collect()
    }

    /// Sum of log-probs of x[1..]; x must fit the model's max_seq_len (16).
    fn logprob(&mut self, x: &[u32]) -> f64 {
        if x.len() < 2 {
            return 0.0;
        }
        self.label_logprobs(x).iter().sum()
    }
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-4 + 1e-5 * want.abs();
    assert!(
        (got - want).abs() <= tol && got.is_finite(),
        "{what}: got {got}, reference {want} (tolerance {tol})"
    );
}

#[test]
fn stream_perplexity_matches_host_log_softmax_including_a_partial_window() {
    let gpu = common::gpu();
    let m = model(&gpu, 2, 8);
    let mut reference = Reference::new(&gpu);
    // 38 ids: 37 labels = 4 full windows of 8 and a last one of 5 (so 3 forwards, the last
    // with one padding row).
    let x = ids(38, 1, 0);
    let got = pollster::block_on(perplexity(&gpu, &m, &x)).unwrap();
    assert_eq!(got.tokens, 37);
    assert_eq!(got.windows, 5);
    let mut nll = 0.0;
    for k in 0..5 {
        let w = &x[k * 8..(k * 8 + 9).min(x.len())];
        nll -= reference.logprob(w);
    }
    close(got.nll_sum, nll, "stream NLL sum");
    let want_ppl = (nll / 37.0).exp();
    assert!(
        (got.perplexity / want_ppl - 1.0).abs() < 1e-5,
        "perplexity {} vs reference {want_ppl}",
        got.perplexity
    );
    assert!((got.mean_nll - nll / 37.0).abs() < 1e-5);

    // Exactly one full window, and a two-id stream (one label).
    let one = pollster::block_on(perplexity(&gpu, &m, &x[..9])).unwrap();
    assert_eq!((one.tokens, one.windows), (8, 1));
    close(one.nll_sum, -reference.logprob(&x[..9]), "one window");
    let two = pollster::block_on(perplexity(&gpu, &m, &x[..2])).unwrap();
    assert_eq!(two.tokens, 1);
    close(two.nll_sum, -reference.logprob(&x[..2]), "one label");

    let err = pollster::block_on(perplexity(&gpu, &m, &x[..1])).unwrap_err();
    assert!(err.to_string().contains("at least 2"), "{err}");
    let mut bad = x.clone();
    bad[20] = VOCAB as u32;
    let err = pollster::block_on(perplexity(&gpu, &m, &bad)).unwrap_err();
    assert!(err.to_string().contains("position 20"), "{err}");
}

#[test]
fn per_document_perplexity_is_the_mean_of_document_perplexities() {
    let gpu = common::gpu();
    let m = model(&gpu, 3, 8);
    let mut reference = Reference::new(&gpu);
    // Documents of 5, 1 (skipped), 12 (truncated to its first 9 ids) and 9 ids.
    let docs = vec![ids(5, 2, 0), vec![7], ids(12, 3, 0), ids(9, 4, 0)];
    let paloma = DocumentOptions::paloma(9);
    assert_eq!(paloma.seq_for(&docs), 8);
    let got = pollster::block_on(perplexity_per_document(&gpu, &m, &docs, paloma)).unwrap();
    assert_eq!(got.skipped, 1);
    assert!(got.documents[1].is_none());
    let mut ppls = Vec::new();
    let (mut total, mut count) = (0.0, 0);
    for (i, d) in docs.iter().enumerate() {
        if d.len() < 2 {
            continue;
        }
        // No start token: the first id is context; ids 2..=min(n, 9) are scored.
        let kept = &d[..d.len().min(9)];
        let nll = -reference.logprob(kept);
        let r = got.documents[i].as_ref().unwrap();
        assert_eq!(r.tokens, kept.len() - 1);
        close(r.nll_sum, nll, &format!("document {i}"));
        ppls.push((nll / (kept.len() - 1) as f64).exp());
        total += nll;
        count += kept.len() - 1;
    }
    let mean = ppls.iter().sum::<f64>() / ppls.len() as f64;
    assert!((got.mean_perplexity / mean - 1.0).abs() < 1e-5);
    assert!((got.pooled.perplexity / (total / count as f64).exp() - 1.0).abs() < 1e-5);
    assert_eq!(got.pooled.tokens, count);
    // Not the same number: the rule matters.
    assert!((got.mean_perplexity - got.pooled.perplexity).abs() > 1e-9);

    // Sliding windows score every id of the long document: labels 1..=8 in the first
    // window, then 9..=11 with the 8 ids before the last label as context (stride 4 > 3 left).
    let slide = DocumentOptions {
        max_length: 9,
        long: LongDocuments::Slide { stride: 4 },
    };
    let got = pollster::block_on(perplexity_per_document(&gpu, &m, &docs, slide)).unwrap();
    let d = &docs[2];
    let lp = reference.label_logprobs(&d[3..12]);
    let want = -reference.logprob(&d[..9]) - lp[5..].iter().sum::<f64>();
    let r = got.documents[2].as_ref().unwrap();
    assert_eq!(r.tokens, 11);
    close(r.nll_sum, want, "sliding windows over the long document");

    // A model planned too short for the windows is refused with advice.
    let short = model(&gpu, 3, 4);
    let e = pollster::block_on(perplexity_per_document(&gpu, &short, &docs, paloma)).unwrap_err();
    assert!(e.to_string().contains("seq >= 8"), "{e}");
}

#[test]
fn packed_sentence_logprobs_match_one_sentence_at_a_time() {
    let gpu = common::gpu();
    let m = model(&gpu, 4, 8);
    let mut reference = Reference::new(&gpu);
    let bos = (VOCAB - 1) as u32;
    // 13 sentences of 0..=12 tokens after BOS (11 and 12 exceed seq = 8).
    let sentences: Vec<Vec<u32>> = (0..13)
        .map(|n| {
            let mut s = vec![bos];
            s.extend(ids(n, 100 + n as u64, 1));
            s
        })
        .collect();
    let got = pollster::block_on(sequence_logprobs(
        &gpu,
        &m,
        &sentences,
        LongSequences::Slide { stride: 3 },
    ))
    .unwrap();
    for (i, s) in sentences.iter().enumerate() {
        let labels = s.len() - 1;
        let want = if labels <= 8 {
            reference.logprob(s)
        } else {
            // Sliding rule with seq 8, stride 3: labels 1..=8 from s[0..=8], then each next
            // window ends 3 labels later with the 8 ids before its last label as context.
            let mut lp = reference.logprob(&s[..=8]);
            let mut end = 8;
            while end < labels {
                let next = (end + 3).min(labels);
                let per = reference.label_logprobs(&s[next - 8..=next]);
                lp += per[end - (next - 8)..].iter().sum::<f64>();
                end = next;
            }
            lp
        };
        close(got[i], want, &format!("sentence of {labels} tokens"));
    }
    assert_eq!(got[0], 0.0);

    // Too long for the window and told to refuse: the error names the sequence.
    let err = pollster::block_on(sequence_logprobs(
        &gpu,
        &m,
        &sentences,
        LongSequences::Error,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sequence 9") && err.contains("window of 8"),
        "{err}"
    );

    // As BLiMP pairs (good = sentence 2k, bad = 2k+1): the accuracy counts agree.
    let word = |i: u32| format!("w{i}");
    let text = |s: &[u32]| {
        s[1..]
            .iter()
            .map(|&i| word(i))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let encode = |s: &str| -> Vec<u32> {
        s.split_whitespace()
            .map(|w| w[1..].parse::<u32>().unwrap())
            .collect()
    };
    let pairs: Vec<_> = (0..6)
        .map(|k| eval::BlimpPair {
            good: text(&sentences[2 * k + 1]),
            bad: text(&sentences[2 * k]),
            line: k + 1,
        })
        .collect();
    let paradigm = eval::Paradigm {
        name: "generated".into(),
        uid: "generated".into(),
        path: PathBuf::from("generated.jsonl"),
        pairs,
    };
    let options = BlimpOptions {
        long_sentences: Some(LongSequences::Slide { stride: 3 }),
        progress: false,
        ..BlimpOptions::default()
    };
    let report = pollster::block_on(blimp_paradigms(
        &gpu,
        &m,
        &encode,
        bos,
        std::slice::from_ref(&paradigm),
        &options,
    ))
    .unwrap();
    let want_correct = (0..6).filter(|k| got[2 * k + 1] > got[2 * k]).count();
    let p = &report.paradigms[0];
    assert_eq!((p.correct, p.total), (want_correct, 6));
    for k in 0..6 {
        close(p.pairs[k].good, got[2 * k + 1], "pair good");
        close(p.pairs[k].bad, got[2 * k], "pair bad");
    }
}

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("wgtrain-eval-{tag}-{}", std::process::id()));
        std::fs::remove_dir_all(&d).ok();
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn pair_line(good: &str, bad: &str, uid: &str, id: usize) -> String {
    serde_json::json!({
        "sentence_good": good, "sentence_bad": bad, "field": "test",
        "UID": uid, "simple_LM_method": true, "pairID": id.to_string()
    })
    .to_string()
}

#[test]
fn handcrafted_paradigms_score_as_computed_by_hand() {
    let gpu = common::gpu();
    let m = model(&gpu, 4, 16);
    let mut reference = Reference::new(&gpu);
    // Word-level "tokenizer": ids 1.. for the words below, 0 for unknown words, BOS = 49.
    let words = [
        "the", "cat", "cats", "sleeps", "sleep", "dog", "dogs", "runs", "run", "a", "who", "what",
        "did", "see", "himself", "herself", "man", "woman", ".",
    ];
    let vocab: HashMap<&str, u32> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (*w, i as u32 + 1))
        .collect();
    let encode = |s: &str| -> Vec<u32> {
        s.replace('.', " .")
            .split_whitespace()
            .map(|w| *vocab.get(w.to_lowercase().as_str()).unwrap_or(&0))
            .collect()
    };
    let bos = 49;
    let agreement = [
        ("The cat sleeps.", "The cat sleep."),
        ("The cats sleep.", "The cats sleeps."),
        ("The dog runs.", "The dog run."),
        ("The dogs run.", "The dogs runs."),
        ("A dog runs.", "A dog run."),
    ];
    let anaphor = [
        ("The man did see himself.", "The man did see herself."),
        ("The woman did see herself.", "The woman did see himself."),
        ("Who did the man see.", "What did the man see."),
    ];
    let dir = TempDir::new("handcrafted");
    let write = |name: &str, pairs: &[(&str, &str)]| {
        let mut text = String::new();
        for (i, (g, b)) in pairs.iter().enumerate() {
            text += &pair_line(g, b, name, i);
            text += "\n";
        }
        text += "\n"; // a trailing blank line is fine
        std::fs::write(dir.0.join(format!("{name}.jsonl")), text).unwrap();
    };
    write("agreement", &agreement);
    write("anaphor", &anaphor);
    std::fs::write(dir.0.join("notes.txt"), "not a paradigm").unwrap();

    // By hand: log-probs of [bos] + encode(sentence), one sentence at a time.
    let mut by_hand = |pairs: &[(&str, &str)], limit: usize| -> (usize, usize) {
        let mut correct = 0;
        for (g, b) in &pairs[..limit] {
            let lp = |r: &mut Reference, s: &str| {
                let mut x = vec![bos];
                x.extend(encode(s));
                r.logprob(&x)
            };
            let (lg, lb) = (lp(&mut reference, g), lp(&mut reference, b));
            assert!(
                (lg - lb).abs() > 1e-3,
                "a near-tie would make the test fragile"
            );
            correct += (lg > lb) as usize;
        }
        (correct, limit)
    };
    let want_a = by_hand(&agreement, 5);
    let want_b = by_hand(&anaphor, 3);
    let report = pollster::block_on(blimp(&gpu, &m, &encode, bos, &dir.0, None)).unwrap();
    assert_eq!(report.paradigms.len(), 2);
    let (a, b) = (&report.paradigms[0], &report.paradigms[1]);
    assert_eq!(
        (a.name.as_str(), a.uid.as_str()),
        ("agreement", "agreement")
    );
    assert_eq!(b.name, "anaphor");
    assert_eq!((a.correct, a.total), want_a);
    assert_eq!((b.correct, b.total), want_b);
    let mean = (want_a.0 as f64 / 5.0 + want_b.0 as f64 / 3.0) / 2.0;
    assert!((report.mean_accuracy - mean).abs() < 1e-12);
    assert_eq!(report.correct, want_a.0 + want_b.0);
    assert_eq!(report.total, 8);
    assert!(report.table().contains("mean of 2 paradigms"));

    // --limit: the first N pairs of each paradigm; a single file works too.
    let limited = pollster::block_on(blimp(&gpu, &m, &encode, bos, &dir.0, Some(2))).unwrap();
    let want_a2 = by_hand(&agreement, 2);
    let want_b2 = by_hand(&anaphor, 2);
    assert_eq!(
        (limited.paradigms[0].correct, limited.paradigms[0].total),
        want_a2
    );
    assert_eq!(
        (limited.paradigms[1].correct, limited.paradigms[1].total),
        want_b2
    );
    let single = pollster::block_on(blimp(
        &gpu,
        &m,
        &encode,
        bos,
        &dir.0.join("anaphor.jsonl"),
        None,
    ))
    .unwrap();
    assert_eq!(single.paradigms.len(), 1);
    assert_eq!(single.paradigms[0], report.paradigms[1]);

    // A pair of identical sentences (the official data has 7) ties exactly: counted wrong.
    let tie = eval::Paradigm {
        name: "tie".into(),
        uid: "tie".into(),
        path: PathBuf::from("tie.jsonl"),
        pairs: vec![eval::BlimpPair {
            good: "The cat sleeps.".into(),
            bad: "The cat sleeps.".into(),
            line: 1,
        }],
    };
    let options = BlimpOptions {
        progress: false,
        ..BlimpOptions::default()
    };
    let r = pollster::block_on(blimp_paradigms(&gpu, &m, &encode, bos, &[tie], &options)).unwrap();
    assert_eq!(r.paradigms[0].pairs[0].good, r.paradigms[0].pairs[0].bad);
    assert_eq!((r.correct, r.total), (0, 1));

    // An encoder that produces ids outside the vocabulary is named with file and line.
    let wide = |s: &str| -> Vec<u32> {
        let mut v = encode(s);
        if s.contains("himself") {
            v.push(VOCAB as u32 + 3);
        }
        v
    };
    let err = pollster::block_on(blimp(&gpu, &m, &wide, bos, &dir.0, None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("anaphor.jsonl:1") && err.contains("sentence_good") && err.contains("53"),
        "{err}"
    );
}

fn blimp_dir() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/blimp");
    if d.is_dir() {
        Some(d)
    } else {
        panic!(
            "{} not found: these tests read the shared data from ../shared/data",
            d.display()
        )
    }
}

#[test]
fn every_real_blimp_file_parses() {
    let Some(dir) = blimp_dir() else { return };
    let paradigms = read_paradigms(&dir).unwrap();
    assert_eq!(paradigms.len(), 67);
    let pairs: usize = paradigms.iter().map(|p| p.pairs.len()).sum();
    assert_eq!(pairs, 67_000);
    for p in &paradigms {
        assert_eq!(p.pairs.len(), 1000, "{}", p.name);
        assert_eq!(p.name, p.uid, "file name and UID");
        assert!(p
            .pairs
            .iter()
            .all(|q| !q.good.is_empty() && !q.bad.is_empty()));
    }
    // The official data holds 7 pairs whose two sentences are identical (passive_1 lines 325
    // and 811, principle_A_case_2 lines 106, 288, 373, 817, 968): always a tie, so always
    // wrong under the strict rule (see `wgtrain::eval::blimp`).
    let same: Vec<String> = paradigms
        .iter()
        .flat_map(|p| {
            p.pairs
                .iter()
                .filter(|q| q.good == q.bad)
                .map(move |q| format!("{}:{}", p.name, q.line))
        })
        .collect();
    assert_eq!(
        same,
        [
            "passive_1:325",
            "passive_1:811",
            "principle_A_case_2:106",
            "principle_A_case_2:288",
            "principle_A_case_2:373",
            "principle_A_case_2:817",
            "principle_A_case_2:968"
        ]
    );
    let island = paradigms
        .iter()
        .find(|p| p.name == "adjunct_island")
        .unwrap();
    assert_eq!(
        island.pairs[0].good,
        "Who should Derek hug after shocking Richard?"
    );
    assert_eq!(island.pairs[0].line, 1);
}

#[test]
fn malformed_jsonl_lines_are_named_by_file_and_line() {
    let src = Path::new("bad_paradigm.jsonl");
    let ok = pair_line("A b.", "B a.", "x", 0);
    let cases = [
        (
            format!("{ok}\n{{\"sentence_good\": \"x\"}}\n"),
            ":2:",
            "sentence_bad",
        ),
        (
            format!("{ok}\n\n{ok}\nnot json\n"),
            ":4:",
            "not a BLiMP pair",
        ),
        (
            format!("{{\"sentence_good\": 3, \"sentence_bad\": \"y\"}}\n{ok}"),
            ":1:",
            "sentence_good",
        ),
        (format!("{ok}\n{}\n", &ok[..ok.len() - 5]), ":2:", "EOF"),
        ("\n  \n".to_string(), "no minimal pairs", ""),
    ];
    for (text, at, what) in &cases {
        let err = parse_jsonl(text, src).unwrap_err().to_string();
        assert!(
            err.contains("bad_paradigm.jsonl") && err.contains(at) && err.contains(what),
            "{err}"
        );
    }
    // The same through a directory, and a directory with no .jsonl files.
    let dir = TempDir::new("malformed");
    std::fs::write(dir.0.join("a.jsonl"), format!("{ok}\n")).unwrap();
    std::fs::write(dir.0.join("b.jsonl"), format!("{ok}\n{ok}\n[1, 2]\n")).unwrap();
    let err = read_paradigms(&dir.0).unwrap_err().to_string();
    assert!(err.contains("b.jsonl:3:"), "{err}");
    let empty = TempDir::new("empty");
    let err = read_paradigms(&empty.0).unwrap_err().to_string();
    assert!(err.contains("no BLiMP .jsonl files"), "{err}");
    let err = read_paradigms(&empty.0.join("missing.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.jsonl: cannot read"), "{err}");
}

#[test]
fn real_blimp_pairs_score_on_a_random_model_with_a_byte_tokenizer() {
    // End to end on the real files, two pairs per paradigm: a byte "tokenizer" folded into the
    // 50-id vocabulary. Only checks the plumbing (counts, bounds, consistency with the pairs'
    // log-probs); accuracy of a random model means nothing.
    let Some(dir) = blimp_dir() else { return };
    let gpu = common::gpu();
    let m = model(&gpu, 16, 16);
    let encode = |s: &str| -> Vec<u32> { s.bytes().map(|b| 1 + b as u32 % 48).collect() };
    let t0 = std::time::Instant::now();
    let report = pollster::block_on(blimp(&gpu, &m, &encode, 49, &dir, Some(2))).unwrap();
    eprintln!(
        "134 pairs (byte-level, sliding windows) in {:.2?}",
        t0.elapsed()
    );
    assert_eq!(report.paradigms.len(), 67);
    assert_eq!(report.total, 134);
    for p in &report.paradigms {
        assert_eq!(p.total, 2);
        assert_eq!(p.correct, p.pairs.iter().filter(|q| q.good > q.bad).count());
        assert!(p.pairs.iter().all(|q| q.good < 0.0 && q.bad < 0.0));
    }
    assert!((0.0..=1.0).contains(&report.mean_accuracy));
}

#[test]
fn wikitext_splits_into_articles() {
    let text = " \n = First = \n \n Body one .\n \n = = Section = = \n More .\n\n = Second = \n Two .\n \n";
    let docs = wikitext_documents(text);
    assert_eq!(docs.len(), 2);
    assert!(docs[0].starts_with(" = First = ") && docs[0].ends_with("More ."));
    assert!(docs[0].contains("= = Section = ="));
    assert_eq!(docs[1], " = Second = \n Two .");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/wikitext-2/test.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (tests read ../shared/data)", path.display()));
    let docs = wikitext_documents(&text);
    assert_eq!(docs.len(), 62, "WikiText-2 test has 62 articles");
    assert!(docs[0].starts_with(" = Robert <unk> = "));
}
