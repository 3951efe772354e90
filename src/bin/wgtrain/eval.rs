//! `wgtrain eval`: stream perplexity of text files, per-document perplexity by Paloma's rule
//! (`--documents`, and WikiText articles with `--per-document`), BLiMP. What each computes is
//! in the README ("What evaluation computes") and in `wgtrain::eval`.

use super::{load_decoder, open_gpu};
use clap::ValueEnum;
use std::path::PathBuf;
use wgtrain::eval::{perplexity_per_document, wikitext_documents, DocumentOptions, LongDocuments};
use wgtrain::model::checkpoint;
use wgtrain::train::paloma::document_ids;
use wgtrain::Gpu;

#[derive(clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    checkpoint: PathBuf,
    /// Text file(s) to compute stream perplexity on (e.g. ../shared/data/wikitext-2/test.txt):
    /// the file's ids in consecutive windows of --seq + 1 ids, token-pooled.
    #[arg(long)]
    text: Vec<PathBuf>,
    /// Also score each WikiText article of the --text files as a document, by the same rule
    /// and code as --documents: Paloma's per-document perplexity (each article tokenized
    /// alone, no start token, truncated to --max-length ids), the mean of the articles'
    /// perplexities, and the token-pooled figure beside it.
    #[arg(long)]
    per_document: bool,
    /// Documents to score one by one (repeatable): a directory of .txt files (one document
    /// each) or .jsonl / .jsonl.gz files with a `text` field per line, as Paloma ships them,
    /// or .parquet files with an `input_ids` list per row (pre-tokenized, one document each).
    /// Each is tokenized alone with no start token and truncated to --max-length ids; reports
    /// the mean of the per-document perplexities (Paloma's figure) and the pooled one.
    #[arg(long)]
    documents: Vec<PathBuf>,
    /// Ids per document, first id included (default: the model's max_seq_len, its context,
    /// as Paloma). Applies to --documents and --per-document.
    #[arg(long)]
    max_length: Option<usize>,
    /// What is scored of a document longer than --max-length: `truncate` (its first
    /// max_length ids: Paloma's rule, the study's) or `slide` (every id, in sliding windows of
    /// max_length ids; not the study's rule).
    #[arg(long, value_enum, default_value_t = LongDocumentsArg::Truncate)]
    long_documents: LongDocumentsArg,
    /// Ids each sliding window advances by, with --long-documents slide (default:
    /// (max_length - 1) / 2).
    #[arg(long)]
    stride: Option<usize>,
    /// BLiMP directory (or one paradigm's .jsonl).
    #[arg(long)]
    blimp: Option<PathBuf>,
    /// Score only the first N pairs of each BLiMP paradigm.
    #[arg(long)]
    blimp_limit: Option<usize>,
    /// tokenizer.json (default: the checkpoint's own).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    /// Sequences (windows) per forward pass.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Window length of --text and BLiMP (default: the model's max_seq_len, at most 512).
    #[arg(long)]
    seq: Option<usize>,
    #[arg(long, default_value = "auto")]
    backend: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LongDocumentsArg {
    /// Score the first max_length ids only (Paloma's rule).
    Truncate,
    /// Score every id in sliding windows (not the study's rule).
    Slide,
}

/// How `--documents` and `--per-document` cut documents, from the command line: Paloma's
/// rule unless `--long-documents slide`.
fn document_options(
    args: &EvalArgs,
    config: &wgtrain::model::config::ModelConfig,
) -> wgtrain::Result<DocumentOptions> {
    let invalid = |m: String| Err(wgtrain::Error::Invalid(m));
    let context = config.max_seq_len;
    let max_length = args.max_length.unwrap_or(context);
    if max_length < 2 {
        return invalid(format!(
            "--max-length {max_length} must be at least 2 (one id of context, one to score)"
        ));
    }
    if max_length > context {
        return invalid(format!(
            "--max-length {max_length} is longer than the model's context (max_seq_len \
             {context}); Paloma's rule uses the context itself, the default"
        ));
    }
    let long = match (args.long_documents, args.stride) {
        (LongDocumentsArg::Truncate, None) => LongDocuments::Truncate,
        (LongDocumentsArg::Truncate, Some(_)) => {
            return invalid(
                "--stride applies to sliding windows only: add --long-documents slide (the \
                 default, Paloma's rule, truncates long documents)"
                    .into(),
            )
        }
        (LongDocumentsArg::Slide, stride) => {
            let labels = max_length - 1;
            let stride = stride.unwrap_or((labels / 2).max(1));
            if stride == 0 || stride > labels {
                return invalid(format!(
                    "--stride {stride} must be between 1 and max_length - 1 ({labels})"
                ));
            }
            LongDocuments::Slide { stride }
        }
    };
    Ok(DocumentOptions { max_length, long })
}

/// Score documents (each one's ids, tokenized alone) as `options` says, on a decoder planned
/// for just their longest window, and print the Paloma figure, the pooled one and the counts.
/// The one path for `--documents` and `--per-document`.
fn score_documents(
    gpu: &Gpu,
    ckpt: &checkpoint::Checkpoint,
    batch: usize,
    name: &str,
    docs: &[Vec<u32>],
    options: DocumentOptions,
) -> wgtrain::Result<()> {
    let named = |e: wgtrain::Error| match e {
        wgtrain::Error::Invalid(m) => wgtrain::Error::Invalid(format!("{name}: {m}")),
        e => e,
    };
    let model = load_decoder(gpu, ckpt, batch, options.seq_for(docs))?;
    let r =
        pollster::block_on(perplexity_per_document(gpu, &model, docs, options)).map_err(named)?;
    let scored = docs.len() - r.skipped;
    let long: Vec<usize> = docs
        .iter()
        .map(Vec::len)
        .filter(|&n| n > options.max_length)
        .collect();
    let rule = match options.long {
        LongDocuments::Truncate => format!(
            "Paloma's figure: each document alone, no start token, truncated to {} ids",
            options.max_length
        ),
        LongDocuments::Slide { stride } => format!(
            "each document alone, no start token, every id in sliding windows of {} ids, \
             stride {stride}: not the study's rule",
            options.max_length
        ),
    };
    println!(
        "{name}: per-document perplexity {:.6} (mean over {scored} documents; {rule})",
        r.mean_perplexity
    );
    println!(
        "{name}: token-pooled perplexity {:.6} (mean NLL {:.6} nats over {} scored tokens)",
        r.pooled.perplexity, r.pooled.mean_nll, r.pooled.tokens
    );
    let long_note = match options.long {
        LongDocuments::Truncate => format!(
            "{} truncated to {} ids ({} ids not scored)",
            long.len(),
            options.max_length,
            long.iter().map(|n| n - options.max_length).sum::<usize>()
        ),
        LongDocuments::Slide { .. } => format!(
            "0 truncated ({} longer than {} ids scored in sliding windows)",
            long.len(),
            options.max_length
        ),
    };
    println!(
        "{name}: {} documents: {scored} scored, {} skipped (fewer than 2 token ids), {long_note}",
        docs.len(),
        r.skipped
    );
    Ok(())
}

pub fn eval(args: EvalArgs) -> wgtrain::Result<()> {
    use wgtrain::train::tokenizer::Tokenizer;
    if args.text.is_empty() && args.documents.is_empty() && args.blimp.is_none() {
        return Err(wgtrain::Error::Invalid(
            "nothing to evaluate: give --text FILE (stream perplexity), --documents PATH \
             (per-document perplexity, Paloma's rule) and/or --blimp DIR"
                .into(),
        ));
    }
    if args.per_document && args.text.is_empty() {
        return Err(wgtrain::Error::Invalid(
            "--per-document scores the WikiText articles of the --text files: give --text FILE, \
             or --documents PATH for documents of your own"
                .into(),
        ));
    }
    let ckpt = checkpoint::load(&args.checkpoint)?;
    ckpt.check_against(&ckpt.config.param_specs())?;
    let options = document_options(&args, &ckpt.config)?;
    let tok_path = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| args.checkpoint.join("tokenizer.json"));
    let tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| {
        wgtrain::Error::Invalid(format!(
            "{e} (the checkpoint has no tokenizer.json: pass --tokenizer PATH)"
        ))
    })?;
    if tokenizer.vocab_size() > ckpt.config.vocab_size {
        return Err(wgtrain::Error::Invalid(format!(
            "the tokenizer has {} ids but the model only {}: use the tokenizer the model was trained with",
            tokenizer.vocab_size(),
            ckpt.config.vocab_size
        )));
    }
    // Read and tokenize everything before the GPU is opened, so bad input fails at once. The
    // tokenizer adds no special tokens: documents are scored without a start token.
    let texts: Vec<String> = args
        .text
        .iter()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|e| {
                wgtrain::Error::Invalid(format!("cannot read {}: {e}", path.display()))
            })
        })
        .collect::<wgtrain::Result<_>>()?;
    let document_sets: Vec<Vec<Vec<u32>>> = args
        .documents
        .iter()
        .map(|path| document_ids(path, Some(&tokenizer)))
        .collect::<wgtrain::Result<_>>()?;
    let gpu = open_gpu(&args.backend)?;
    println!(
        "checkpoint {} on {}",
        args.checkpoint.display(),
        gpu.adapter.name
    );
    let stream_model = if !args.text.is_empty() || args.blimp.is_some() {
        let seq = args.seq.unwrap_or(ckpt.config.max_seq_len.min(512));
        Some(load_decoder(&gpu, &ckpt, args.batch, seq)?)
    } else {
        None
    };
    for (path, text) in args.text.iter().zip(&texts) {
        let model = stream_model.as_ref().expect("planned for --text");
        let ids = tokenizer.encode(text)?;
        let r = pollster::block_on(wgtrain::eval::perplexity::perplexity(&gpu, model, &ids))?;
        println!(
            "{}: perplexity {:.3} (mean NLL {:.4} nats over {} tokens)",
            path.display(),
            r.perplexity,
            r.mean_nll,
            r.tokens
        );
        if args.per_document {
            let articles = wikitext_documents(text);
            let articles: Vec<&str> = articles.iter().map(String::as_str).collect();
            let docs = tokenizer.encode_batch(&articles)?;
            let name = format!("{} (WikiText articles)", path.display());
            score_documents(&gpu, &ckpt, args.batch, &name, &docs, options)?;
        }
    }
    for (path, docs) in args.documents.iter().zip(&document_sets) {
        score_documents(
            &gpu,
            &ckpt,
            args.batch,
            &path.display().to_string(),
            docs,
            options,
        )?;
    }
    if let Some(dir) = &args.blimp {
        let model = stream_model.as_ref().expect("planned for --blimp");
        let bos = tokenizer.eos_id().ok_or_else(|| {
            wgtrain::Error::Invalid(
                "BLiMP needs an end-of-text token in the tokenizer (used as BOS)".into(),
            )
        })?;
        let encode = |s: &str| tokenizer.encode(s).unwrap_or_default();
        let r = pollster::block_on(wgtrain::eval::blimp::blimp(
            &gpu,
            model,
            &encode,
            bos,
            dir,
            args.blimp_limit,
        ))?;
        print!("{}", r.table());
    }
    Ok(())
}
