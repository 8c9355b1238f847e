//! The book's reference page, `book/src/reference.md`, names every subcommand and long flag of
//! `strata` and every hook site, so a command or site added without its entry fails here.
//!
//! The command tree is read from the built binary's `--help` (clap's `Commands:` lists and
//! option lines), so the page is checked against exactly what users see. Each command has a
//! heading that names it in backticks (`` ### `strata steer extract` ``), and each of its
//! flags appears between that heading and the next command's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Flex;
use strata_core::{Model, Site};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference page.
fn reference_page() -> String {
    let path = workspace().join("book/src/reference.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `strata <path> --help`.
fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(path)
        .arg("--help")
        .output()
        .expect("strata runs");
    assert!(
        out.status.success(),
        "`strata {} --help` failed: {}",
        path.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands under clap's `Commands:` heading, `help` left out.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim_end() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// The long flags of the option lines (`  -m, --model <MODEL>`, `      --json`), under any
/// heading; `--help` and `--version` left out. Option lines are indented by two columns
/// (six when there is no short flag); their descriptions, in long help, by ten or more.
fn long_flags(help: &str) -> Vec<String> {
    help.lines()
        .map(|line| (line.len() - line.trim_start().len(), line.trim_start()))
        .filter(|(indent, text)| *indent <= 6 && text.starts_with('-'))
        .flat_map(|(_, text)| {
            text.split([' ', ',', '=', '['])
                .filter(|token| !token.is_empty())
                .take_while(|token| token.starts_with('-'))
                .filter(|token| token.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|flag| flag != "--help" && flag != "--version")
        .collect()
}

/// Every command path below the root (`["info"]`, `["steer", "extract"]`, ...) with its
/// long flags, in the order `--help` lists them.
fn command_tree() -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut pending = vec![Vec::new()];
    while let Some(path) = pending.pop() {
        let text = help(&path);
        for sub in subcommands(&text).into_iter().rev() {
            let mut child = path.clone();
            child.push(sub);
            pending.push(child);
        }
        if !path.is_empty() {
            found.push((path, long_flags(&text)));
        }
    }
    found
}

/// Whether `text` holds `flag` as a whole flag (not as the start of a longer one).
fn mentions_flag(text: &str, flag: &str) -> bool {
    text.match_indices(flag).any(|(at, _)| {
        !text[at + flag.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

/// The Markdown headings of the page, outside fenced code blocks: (byte offset, level, line).
fn headings(page: &str) -> Vec<(usize, usize, &str)> {
    let mut found = Vec::new();
    let mut offset = 0;
    let mut in_code = false;
    for line in page.split_inclusive('\n') {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let level = line.chars().take_while(|&c| c == '#').count();
            found.push((offset, level, line.trim_end()));
        }
        offset += line.len();
    }
    found
}

/// The part of the page from a command's heading to the next heading of any command, or of
/// the same or a higher level.
fn section<'a>(page: &'a str, command: &str) -> Option<&'a str> {
    let headings = headings(page);
    let at = headings
        .iter()
        .position(|(_, _, line)| line.contains(&format!("`{command}`")))?;
    let (start, level, _) = headings[at];
    let end = headings[at + 1..]
        .iter()
        .find(|(_, this, line)| *this <= level || line.contains("`strata "))
        .map_or(page.len(), |(offset, _, _)| *offset);
    Some(&page[start..end])
}

#[test]
fn reference_names_every_subcommand_and_long_flag() {
    let page = reference_page();
    let tree = command_tree();
    assert!(
        tree.iter().any(|(path, _)| path == &["report"]),
        "the walk found `strata report`: {tree:?}"
    );
    let mut missing = Vec::new();
    for (path, flags) in &tree {
        let command = format!("strata {}", path.join(" "));
        let Some(text) = section(&page, &command) else {
            missing.push(format!(
                "subcommand `{command}` (a heading naming `{command}`)"
            ));
            continue;
        };
        for flag in flags {
            if !mentions_flag(text, flag) {
                missing.push(format!("flag `{flag}` of `{command}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "book/src/reference.md lacks:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn reference_documents_no_command_that_does_not_exist() {
    let page = reference_page();
    let commands: BTreeSet<String> = command_tree()
        .into_iter()
        .map(|(path, _)| format!("strata {}", path.join(" ")))
        .collect();
    let stale: Vec<&str> = headings(&page)
        .into_iter()
        .filter_map(|(_, _, line)| {
            let start = line.find("`strata ")? + 1;
            let len = line[start..].find('`')?;
            Some(&line[start..start + len])
        })
        .filter(|command| !commands.contains(*command))
        .collect();
    assert!(
        stale.is_empty(),
        "book/src/reference.md has headings of commands `strata --help` does not list: {stale:?}"
    );
}

/// A site's name with its layer written `{l}`: `blocks.{l}.hook_resid_post`.
fn site_template(site: Site) -> String {
    let name = site.to_string();
    match site.layer() {
        Some(layer) => name.replacen(&format!("blocks.{layer}."), "blocks.{l}.", 1),
        None => name,
    }
}

fn config(fixture: &str) -> strata_core::ModelConfig {
    let dir = workspace().join("tests/fixtures").join(fixture);
    Model::<Flex>::read_config(Path::new(&dir)).expect("fixture config")
}

#[test]
fn reference_names_every_site() {
    let page = reference_page();
    // GPT-2 has learned positions and a serial residual, Llama rotary positions and a gated
    // MLP, GPT-NeoX a parallel residual, BERT no final norm or logits: together they have
    // every site. All are two-layer models.
    let mut sites = BTreeSet::new();
    for fixture in ["gpt2-tiny", "llama-tiny", "gpt-neox-tiny", "bert-tiny"] {
        let config = config(fixture);
        assert_eq!(config.n_layers, 2, "{fixture} has two layers");
        sites.extend(Site::all(&config));
    }
    let missing: BTreeSet<String> = sites
        .into_iter()
        .map(site_template)
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "book/src/reference.md lacks the sites {missing:?}"
    );
}

#[test]
fn every_site_on_the_reference_page_parses() {
    let page = reference_page();
    let names: Vec<&str> = page
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| {
            code.starts_with("blocks.{l}.")
                || [
                    "hook_embed",
                    "hook_pos_embed",
                    "ln_final.hook_normalized",
                    "logits",
                ]
                .contains(code)
        })
        .collect();
    assert!(!names.is_empty(), "the page lists sites");
    for name in names {
        let concrete = name.replace("{l}", "0");
        assert!(
            concrete.parse::<Site>().is_ok(),
            "book/src/reference.md names `{name}`, which is not a site"
        );
    }
}
