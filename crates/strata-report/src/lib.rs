//! Tables and figures of strata results: the spectra table as CSV and SVG figures of
//! condition numbers and spectral densities.
//!
//! `strata spectra` writes its output through this crate, so the file formats are defined in
//! one place: [`write_spectra_csv`] is the `spectra.csv` contract (the columns are listed in
//! [`SPECTRA_COLUMNS`]), [`write_ranking_csv`] the KappaTune ranking, [`plot_kappa_by_layer`], [`plot_esd`] and
//! [`plot_forgetting_vs_accuracy`] the figures.
//!
//! # Example
//!
//! ```
//! use strata_spectra::{SpectraConfig, analyze_tensors};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let w: Vec<f32> = (0..12).map(|i| (i as f32 * 0.7).sin()).collect();
//! let result = analyze_tensors(&[("h.0.mlp.c_fc.weight".into(), vec![3, 4], w)], &SpectraConfig::default())?;
//! let mut csv = Vec::new();
//! strata_report::write_spectra_rows(&result, &mut csv)?;
//! let text = String::from_utf8(csv)?;
//! assert!(text.starts_with("tensor,rows,cols,s_max,s_min,kappa,log_volume,stable_rank,alpha"));
//! # Ok(())
//! # }
//! ```
//!
//! Figures are SVG only (plotters' SVG backend, no font or bitmap dependencies), which keeps
//! the crate quick to build. Every analysis table goes through [`write_table`], which
//! writes it as CSV and, beside it, as Parquet (the `parquet` crate's column writer without
//! Arrow or compression codecs, so the build stays light).
//!
//! The [`html`] module builds the one-page report of `strata report`: every analysis's
//! reading, figures and key tables in a single self-contained HTML file.

#![warn(missing_docs)]

mod cells;
mod error;
mod forgetting_figure;
pub mod html;
mod layer_lines;
mod massive_figure;
mod massive_views;
mod parquet_table;
mod ranking_csv;
mod sparsity_figure;
mod spectra_csv;
mod spectra_figures;
mod steer_figures;
mod svg;
mod table;
mod void_figure;

pub use error::{Error, Result};
pub use forgetting_figure::{ForgettingPoint, plot_forgetting_vs_accuracy};
pub use massive_figure::plot_massive_by_layer;
pub use massive_views::{
    TokenDimMap, Trajectory, plot_ratio_bars, plot_token_dim_heatmap, plot_trajectories,
};
pub use ranking_csv::{RANKING_COLUMNS, write_ranking_csv, write_ranking_rows};
pub use sparsity_figure::{
    TrainingCurve, plot_activation_ratio_by_layer, plot_activation_ratio_over_training,
};
pub use spectra_csv::{SPECTRA_COLUMNS, spectra_row, write_spectra_csv, write_spectra_rows};
pub use spectra_figures::{plot_esd, plot_kappa_by_layer};
pub use steer_figures::{plot_steer_cosines, plot_steer_dose_response, plot_steer_layer_scores};
pub use svg::{Draw, render_svg};
pub use table::write_table;
pub use void_figure::{VoidMapRow, plot_void_map, plot_void_usage_by_layer, plot_void_vs_alpha};
