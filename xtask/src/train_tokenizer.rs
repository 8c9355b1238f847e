//! `cargo xtask train-tokenizer`: the byte-level BPE tokenizer of the embedded models.
//!
//! A GPT-2 style byte-level BPE (GPT-2's pre-tokenizer regex, no prefix space, no
//! normaliser) trained with the `tokenizers` crate on `datasets/kjv/train.txt`, one verse per
//! sequence. The initial alphabet is all 256 bytes, so any UTF-8 text, digits and symbols
//! absent from the Bible included, encodes without an unknown token. `<|endoftext|>` is the
//! only special token, id 0, and serves as BOS, EOS and padding; the tokenizer itself adds
//! no special tokens, the caller does.
//!
//! After training it checks that decoding inverts encoding on every line of the valid split
//! and on the split as one string, and writes `tokenizer_config.json` (for transformers)
//! and `sample_ids.jsonl` (texts and their ids) beside `tokenizer.json`;
//! `datasets/tokenizer/check_tokenizer.py` compares those ids with what the Python
//! `tokenizers` and `transformers` packages give.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, ensure};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{AddedToken, Tokenizer, TokenizerBuilder};

use crate::paths::Paths;
use crate::read_lines;

/// The one special token: beginning and end of a sequence, and padding.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// Every how many valid lines one goes into the sample file.
const SAMPLE_EVERY: usize = 16;

/// Texts beyond the corpus that the sample file also pins down.
const EXTRA_SAMPLES: &[&str] = &[
    "",
    "17+25=42",
    "99-7=92",
    "  two  spaces, a tab\there\nand a newline\n",
    "In the beginning<|endoftext|>And the earth",
    "naïve café, Ζεύς, 東京 🙂",
    "THE LORD is my shepherd; I shall not want.",
];

#[derive(clap::Args)]
pub struct Args {
    /// Training text, one sequence per line [default: datasets/kjv/train.txt].
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Text the round trip is checked on [default: datasets/kjv/valid.txt].
    #[arg(long)]
    valid: Option<PathBuf>,
    /// Output folder for tokenizer.json and sample_ids.jsonl [default: datasets/tokenizer].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Vocabulary size, special token and the 256 byte tokens included.
    #[arg(long, default_value_t = 4096)]
    vocab_size: usize,
}

pub fn run(args: &Args) -> Result<()> {
    let corpus = args
        .corpus
        .clone()
        .unwrap_or_else(|| Paths::workspace().kjv("train"));
    let valid = args
        .valid
        .clone()
        .unwrap_or_else(|| Paths::workspace().kjv("valid"));
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Paths::workspace().tokenizer_dir());
    ensure!(
        args.vocab_size > 257,
        "--vocab-size {} leaves no room for merges: it must exceed 257 (256 bytes and {END_OF_TEXT})",
        args.vocab_size
    );

    let train_lines = read_lines(&corpus)?;
    let tokenizer = train(&train_lines, args.vocab_size)?;
    let n_vocab = tokenizer.get_vocab_size(true);
    ensure!(
        tokenizer.token_to_id(END_OF_TEXT) == Some(0),
        "{END_OF_TEXT} did not get id 0"
    );

    fs::create_dir_all(&out).with_context(|| format!("{}: cannot create", out.display()))?;
    let tokenizer_path = out.join("tokenizer.json");
    tokenizer.save(&tokenizer_path, true).map_err(|e| {
        anyhow!(
            "{}: cannot save the tokenizer: {e}",
            tokenizer_path.display()
        )
    })?;
    // Reload from disk, so the checks below run on what was written.
    let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
        anyhow!(
            "{}: cannot load the tokenizer: {e}",
            tokenizer_path.display()
        )
    })?;

    let config_path = out.join("tokenizer_config.json");
    fs::write(&config_path, tokenizer_config() + "\n")
        .with_context(|| format!("{}: cannot write", config_path.display()))?;

    let valid_lines = read_lines(&valid)?;
    check_round_trip(&tokenizer, &valid_lines, &valid)?;
    let n_samples = write_samples(&tokenizer, &valid_lines, &out.join("sample_ids.jsonl"))?;

    println!(
        "trained on {} lines of {}: vocabulary {n_vocab}, saved {}",
        train_lines.len(),
        corpus.display(),
        tokenizer_path.display()
    );
    println!(
        "round trip holds on {} lines of {} and on the file as one string; {n_samples} samples written",
        valid_lines.len(),
        valid.display()
    );
    Ok(())
}

/// Trains a byte-level BPE of `vocab_size` entries, `<|endoftext|>` first.
fn train(lines: &[String], vocab_size: usize) -> Result<Tokenizer> {
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(2)
        .special_tokens(vec![AddedToken::from(END_OF_TEXT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_normalizer(None)
    .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false).into()))
    .with_post_processor(Some(ByteLevel::default().trim_offsets(false).into()))
    .with_decoder(Some(ByteLevel::default().into()))
    .build()
    .map_err(|e| anyhow!("cannot build the tokenizer: {e}"))?;
    tokenizer
        .train(&mut trainer, lines.iter())
        .map_err(|e| anyhow!("training the tokenizer failed: {e}"))?;
    Ok(Tokenizer::from(tokenizer))
}

/// The `tokenizer_config.json` that lets `transformers.AutoTokenizer` load the folder.
///
/// `clean_up_tokenization_spaces` is off, so transformers' `decode` also inverts `encode`.
fn tokenizer_config() -> String {
    let config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": END_OF_TEXT,
        "eos_token": END_OF_TEXT,
        "unk_token": END_OF_TEXT,
        "pad_token": END_OF_TEXT,
        "add_bos_token": false,
        "add_eos_token": false,
        "add_prefix_space": false,
        "clean_up_tokenization_spaces": false,
    });
    serde_json::to_string_pretty(&config).expect("a JSON literal serializes")
}

/// Checks `decode(encode(text)) == text` per line and for the whole file.
fn check_round_trip(tokenizer: &Tokenizer, lines: &[String], path: &Path) -> Result<()> {
    let mut texts: Vec<String> = lines.to_vec();
    texts.push(lines.join("\n") + "\n");
    for (line_idx, text) in texts.iter().enumerate() {
        let ids = encode(tokenizer, text)?;
        let decoded = tokenizer
            .decode(&ids, false)
            .map_err(|e| anyhow!("decoding failed: {e}"))?;
        ensure!(
            &decoded == text,
            "{}: line {}: decode(encode(text)) differs: {decoded:?} != {text:?}",
            path.display(),
            line_idx + 1
        );
    }
    Ok(())
}

/// Writes `{"text", "ids"}` lines for a sample of `lines` and for [`EXTRA_SAMPLES`].
fn write_samples(tokenizer: &Tokenizer, lines: &[String], path: &Path) -> Result<usize> {
    let texts: Vec<&str> = lines
        .iter()
        .step_by(SAMPLE_EVERY)
        .map(String::as_str)
        .chain(EXTRA_SAMPLES.iter().copied())
        .collect();
    let mut file =
        fs::File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    for text in &texts {
        let ids = encode(tokenizer, text)?;
        let row = serde_json::json!({ "text": text, "ids": ids });
        writeln!(file, "{row}").with_context(|| format!("{}: cannot write", path.display()))?;
    }
    Ok(texts.len())
}

/// The ids of `text`, without added special tokens.
pub fn encode(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    let encoding = tokenizer
        .encode(text, false)
        .map_err(|e| anyhow!("encoding {text:?} failed: {e}"))?;
    Ok(encoding.get_ids().to_vec())
}
