//! `strata report` end to end on the tiny default model at small sizes: one self-contained
//! page with every section, every figure an inline SVG, readings that agree with the CSV
//! files beside the page, a failing analysis that keeps the others, and (where Chromium is
//! installed) figures that render.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use strata_report::html::{format_number, format_percent};

/// The sections of the page, in order.
const SECTIONS: [&str; 5] = ["spectra", "massive", "sparsity", "void", "steer"];

/// Figures per section: spectra 2, massive 3, sparsity 1, void 2, steer 1 per concept (2).
const N_FIGURES: usize = 10;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("strata runs")
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A pairs file with the first 10 pairs of each concept of the project's set.
fn small_pairs(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("datasets/steering/pairs.jsonl")).unwrap();
    let mut kept = Vec::new();
    for concept in ["archaic", "sentiment"] {
        let needle = format!("\"concept\": \"{concept}\"");
        kept.extend(text.lines().filter(|l| l.contains(&needle)).take(10));
    }
    let path = dir.join("pairs.jsonl");
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    path
}

/// The small-size flags every run of the tests uses.
fn small_sizes(pairs: &Path) -> Vec<String> {
    [
        "--n-seq",
        "2",
        "--seq-len",
        "32",
        "--n-windows",
        "2",
        "--window",
        "32",
        "--grid-size",
        "1024",
        "--pairs",
        pairs.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec()
}

/// The report of the tiny default model at small sizes, run once for every test here.
fn report() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = out_dir("tiny-default");
        let pairs = small_pairs(&dir);
        let mut args = vec![
            "report".to_string(),
            "--out".into(),
            dir.to_str().unwrap().into(),
        ];
        args.extend(small_sizes(&pairs));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = strata(&args);
        assert!(
            run.status.success(),
            "strata report failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("[1/5] spectra"),
            "progress on stderr: {stderr}"
        );
        dir.join("report")
    })
}

fn page() -> String {
    std::fs::read_to_string(report().join("index.html")).unwrap()
}

/// The text of the reading of one section.
fn reading(page: &str, section: &str) -> String {
    let start = page
        .find(&format!("<section id=\"{section}\">"))
        .unwrap_or_else(|| panic!("no section `{section}`"));
    let rest = &page[start..];
    let from = rest.find("<div class=\"reading\">").expect("a reading");
    let to = rest[from..].find("</div>").unwrap();
    rest[from..from + to].replace("&quot;", "\"")
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            assert_eq!(r.len(), header.len());
            r
        })
        .collect()
}

fn column(path: &Path, name: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let idx = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("{}: no column `{name}`", path.display()));
    csv_rows(path).iter().map(|r| r[idx].to_string()).collect()
}

fn floats(path: &Path, name: &str) -> Vec<f64> {
    column(path, name)
        .iter()
        .map(|v| {
            if v.is_empty() {
                f64::NAN
            } else {
                v.parse().unwrap()
            }
        })
        .collect()
}

#[test]
fn the_page_is_self_contained_and_holds_every_section_and_figure() {
    let html = page();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for tag in ["<script", "<link", "<img", "<iframe", " src=", "url("] {
        assert!(!html.contains(tag), "the page must not reference `{tag}`");
    }
    let n_href = html.matches("href=\"").count();
    assert_eq!(
        n_href,
        html.matches("href=\"#").count(),
        "only in-page links"
    );
    // The only URL is the SVG namespace, which is a name, not a reference.
    assert_eq!(
        html.matches("://").count(),
        html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
    for id in SECTIONS {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        assert!(
            html.contains(&format!("<a href=\"#{id}\">")),
            "{id} in the contents"
        );
    }
    assert!(!html.contains("class=\"error\""), "no section failed");
    let figures: Vec<&str> = html.split("<figure>").skip(1).collect();
    assert_eq!(figures.len(), N_FIGURES);
    for figure in figures {
        let figure = &figure[..figure.find("</figure>").unwrap()];
        let svg_start = figure.find("<svg").expect("an inline <svg> element");
        let svg = &figure[svg_start..figure.find("</svg>").expect("a closed <svg>")];
        let n_shapes = ["<rect", "<circle", "<polyline", "<path", "<line"]
            .iter()
            .map(|s| svg.matches(s).count())
            .sum::<usize>();
        assert!(
            n_shapes >= 3,
            "a figure with content, found {n_shapes} shapes"
        );
        assert!(svg.contains("<text"), "a figure with labels");
    }
    // Settings and the timing table.
    assert!(html.contains("<th>model</th><td>datasets/models/tiny-default</td>"));
    assert!(html.contains("Wall time per analysis"));
    assert_eq!(
        html.matches("<td class=\"ok\">ok</td>").count(),
        SECTIONS.len()
    );
    // Each analysis's tables are in its subfolder, as CSV and Parquet.
    let dir = report();
    for file in [
        "spectra/spectra.csv",
        "spectra/spectra.parquet",
        "massive/massive.csv",
        "massive/top_activations.parquet",
        "sparsity/sparsity.csv",
        "sparsity/sparsity.parquet",
        "void/void.csv",
        "void/void.parquet",
        "steer/archaic/layers.csv",
        "steer/sentiment/layers.parquet",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
        assert!(
            html.contains(&format!("<code>{file}</code>")),
            "{file} listed"
        );
    }
}

#[test]
fn the_readings_agree_with_the_tables_written_beside_the_page() {
    let html = page();
    let dir = report();

    // Spectra: the largest kappa of spectra.csv and its unit.
    let spectra = dir.join("spectra/spectra.csv");
    let kappas = floats(&spectra, "kappa");
    let units = column(&spectra, "unit");
    let worst = (0..kappas.len())
        .filter(|&i| kappas[i].is_finite())
        .max_by(|&a, &b| kappas[a].total_cmp(&kappas[b]))
        .unwrap();
    let text = reading(&html, "spectra");
    assert!(
        text.contains(&format!("The worst-conditioned matrix is {}", units[worst])),
        "{text}"
    );
    assert!(
        text.contains(&format!("kappa = {}", format_number(kappas[worst], 3))),
        "{text}"
    );

    // Massive: the layer of the largest max_abs, its value and its ratio to the median.
    let massive = dir.join("massive/massive.csv");
    let max_abs = floats(&massive, "max_abs");
    let layers = column(&massive, "layer");
    let top = (0..max_abs.len())
        .max_by(|&a, &b| max_abs[a].total_cmp(&max_abs[b]))
        .unwrap();
    let top_csv = dir.join("massive/top_activations.csv");
    let top_layers = column(&top_csv, "layer");
    let ranks = column(&top_csv, "rank");
    let ratios = floats(&top_csv, "ratio_to_median");
    let entry = (0..ranks.len())
        .find(|&i| top_layers[i] == layers[top] && ranks[i] == "1")
        .unwrap();
    let text = reading(&html, "massive");
    assert!(
        text.contains(&format!(
            "Layer {} carries the largest activation: |h| = {}, {}x the median",
            layers[top],
            format_number(max_abs[top], 3),
            format_number(ratios[entry], 3)
        )),
        "{text}"
    );

    // Sparsity: the mean over layers of the activation ratio in sparsity.csv.
    let sparsity = dir.join("sparsity/sparsity.csv");
    let active = floats(&sparsity, "activation_ratio");
    let mean = active.iter().sum::<f64>() / active.len() as f64;
    let text = reading(&html, "sparsity");
    assert!(text.contains("PPL-1%"), "{text}");
    assert!(
        text.contains(&format!(
            "the MLPs compute {} of their neurons",
            format_percent(mean)
        )),
        "{text}"
    );

    // Voids: the share of active (token, layer) rows of void.csv, and the token count.
    let void = dir.join("void/void.csv");
    let flags = floats(&void, "active");
    let n_layers = layers.len();
    let share = flags.iter().sum::<f64>() / flags.len() as f64;
    let text = reading(&html, "void");
    assert!(
        text.contains(&format!(
            "Over {} tokens in 2 forward passes at alpha 0.8, {} of the (token, layer) pairs",
            flags.len() / n_layers,
            format_percent(share)
        )),
        "{text}"
    );
    assert_eq!(
        flags.len(),
        2 * 32 * n_layers,
        "every token of both sequences"
    );

    // Steering: the best probe accuracy of each concept's layers.csv.
    let text = reading(&html, "steer");
    for concept in ["archaic", "sentiment"] {
        let layers_csv = dir.join(format!("steer/{concept}/layers.csv"));
        let accuracy = floats(&layers_csv, "probe_accuracy");
        let separation = floats(&layers_csv, "separation");
        let best = (0..accuracy.len())
            .max_by(|&a, &b| {
                accuracy[a]
                    .total_cmp(&accuracy[b])
                    .then(separation[a].total_cmp(&separation[b]))
            })
            .unwrap();
        assert!(
            text.contains(&format!(
                "{concept} (10 pairs): a held-out logistic probe tells the two sides apart best \
                 at layer {best} (accuracy {})",
                format_percent(accuracy[best])
            )),
            "{text}"
        );
    }
}

#[test]
fn a_failing_analysis_keeps_the_others() {
    // A fixture without a tokenizer: spectra needs only the weights; every analysis of a
    // text corpus or of text pairs fails, and says why.
    let dir = out_dir("no-tokenizer");
    let pairs = small_pairs(&dir);
    let model = workspace().join("tests/fixtures/llama-tiny");
    let mut args = vec![
        "report".to_string(),
        "--model".into(),
        model.to_str().unwrap().into(),
        "--out".into(),
        dir.to_str().unwrap().into(),
    ];
    args.extend(small_sizes(&pairs));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = strata(&args);
    assert!(!run.status.success(), "failed analyses make a failed run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("4 of 5 analyses failed"),
        "the message counts the failures: {stderr}"
    );
    let html = std::fs::read_to_string(dir.join("report/index.html")).unwrap();
    let spectra = reading(&html, "spectra");
    assert!(spectra.contains("weight matrices analysed"), "{spectra}");
    for id in ["massive", "sparsity", "void", "steer"] {
        let start = html.find(&format!("<section id=\"{id}\">")).unwrap();
        let section = &html[start..start + html[start..].find("</section>").unwrap()];
        assert!(section.contains("class=\"error\""), "{id} shows its error");
        assert!(section.contains("tokenizer"), "{id}: {section}");
    }
    assert_eq!(html.matches("<td class=\"failed\">failed</td>").count(), 4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_figures_render_in_a_headless_browser() {
    let Some(chromium) = which("chromium") else {
        println!("skipped: `chromium` is not on PATH (Debian: apt-get install chromium)");
        return;
    };
    let page = report().join("index.html");
    let shot = report().join("screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let run = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000",
            &format!("file://{}", page.canonicalize().unwrap().display()),
        ])
        .output()
        .expect("chromium runs");
    assert!(
        shot.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (1200, 3000));
    let bytes_per_pixel = info.line_size / info.width as usize;
    let mut colours = std::collections::HashSet::new();
    let mut n_dark = 0usize;
    for px in pixels[..info.buffer_size()].chunks_exact(bytes_per_pixel) {
        colours.insert(px[..3.min(px.len())].to_vec());
        if px[..3.min(px.len())].iter().all(|&c| c < 100) {
            n_dark += 1;
        }
    }
    // A blank page has one colour; text, tables and figures give hundreds (anti-aliasing)
    // and a share of dark pixels.
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(n_dark > 1000, "only {n_dark} dark pixels");
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.is_file())
}
