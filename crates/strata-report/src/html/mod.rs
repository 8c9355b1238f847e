//! The HTML report: one self-contained page (inline CSS, inline SVG figures, no scripts, no
//! external references) with a section per analysis.
//!
//! [`ReportPage`] is the skeleton (title, settings, timings, sections); each analysis has a
//! section renderer that reads its result into a [`SectionBody`]: a few plain-language
//! sentences computed from the numbers (the same numbers its CSV tables hold) and its key
//! table. The caller adds the figures ([`Figure::from_file`] inlines an SVG this crate
//! wrote) and the list of files; a section whose analysis failed carries its error instead.

mod escape;
mod massive;
mod number;
mod page;
mod sparsity;
mod spectra;
mod steer;
mod table;
mod void;

pub use escape::escape;
pub use massive::massive_section;
pub use number::{format_indices, format_number, format_percent};
pub use page::{Figure, ReportPage, Section, SectionBody};
pub use sparsity::sparsity_section;
pub use spectra::spectra_section;
pub use steer::{SteerConcept, steer_section};
pub use table::HtmlTable;
pub use void::void_section;
