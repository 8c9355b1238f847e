//! How numbers read on the page: a few significant digits, never a wall of decimals.

/// `value` with `digits` significant digits (at least 1), in plain notation between 1e-4
/// and 1e6 and in scientific notation outside; integers below 1e6 are written whole.
/// Non-finite values read `NaN`, `inf` and `-inf`, as in the CSV files.
pub fn format_number(value: f64, digits: usize) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    if value == 0.0 {
        return "0".into();
    }
    let digits = digits.max(1);
    let magnitude = value.abs();
    if !(1e-4..1e6).contains(&magnitude) {
        return format!("{:.*e}", digits - 1, value);
    }
    if value.fract() == 0.0 {
        return format!("{value:.0}");
    }
    let exponent = magnitude.log10().floor() as i64;
    let decimals = (digits as i64 - 1 - exponent).max(0) as usize;
    let text = format!("{value:.decimals$}");
    // A rounding that reaches the next power of ten (9.996 -> "10.00") keeps one digit too
    // many; drop trailing zeros after the point so the digit count stays honest.
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `share` in [0, 1] as a percentage with one decimal: `0.4321` reads `43.2%`.
pub fn format_percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", 100.0 * share)
    } else {
        format_number(share, 3)
    }
}

/// Sorted indices with runs of three or more written as ranges: `[2, 3, 5, 6, 7, 9]` reads
/// `2, 3, 5-7, 9`.
pub fn format_indices(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let mut j = i;
        while j + 1 < indices.len() && indices[j + 1] == indices[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", indices[i], indices[j]));
        } else {
            parts.extend(indices[i..=j].iter().map(usize::to_string));
        }
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits_plain_and_scientific() {
        assert_eq!(format_number(43.2178, 3), "43.2");
        assert_eq!(format_number(0.012345, 3), "0.0123");
        assert_eq!(format_number(1234.6, 3), "1235");
        assert_eq!(format_number(12.0, 3), "12");
        assert_eq!(format_number(9.9996, 3), "10");
        assert_eq!(format_number(2.5e7, 3), "2.50e7");
        assert_eq!(format_number(-3.0e-6, 2), "-3.0e-6");
        assert_eq!(format_number(f64::NAN, 3), "NaN");
        assert_eq!(format_number(f64::NEG_INFINITY, 3), "-inf");
        assert_eq!(format_number(0.0, 3), "0");
    }

    #[test]
    fn runs_of_indices_read_as_ranges() {
        assert_eq!(format_indices(&[2, 3, 5, 6, 7, 9]), "2, 3, 5-7, 9");
        assert_eq!(format_indices(&[11, 12, 13, 14]), "11-14");
        assert_eq!(format_indices(&[4]), "4");
        assert_eq!(format_indices(&[]), "");
    }

    #[test]
    fn shares_read_as_percent() {
        assert_eq!(format_percent(0.4321), "43.2%");
        assert_eq!(format_percent(1.0), "100.0%");
    }
}
