//! The scaffold every figure shares: draw into an in-memory SVG, then write it atomically.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, IntoDrawingArea, SVGBackend};

use crate::error::{Error, Result};

/// A drawing routine: fills the whole area, or says why it cannot.
pub type Draw<'a> =
    dyn FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String> + 'a;

/// Renders `draw` to an SVG string and writes it to `path` atomically: a failed drawing or
/// write never leaves an empty or truncated figure behind, nor destroys an earlier one.
pub fn render_svg(path: &Path, size: (u32, u32), draw: Box<Draw<'_>>) -> Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw(root).map_err(|reason| Error::Plot {
            path: path.to_path_buf(),
            reason,
        })?;
    }
    strata_core::io::write_bytes_atomic(path, svg.as_bytes())?;
    Ok(())
}
