//! ggml tensor types and their dequantization to f32.
//!
//! Each dequantizer follows the reference of the `gguf` Python package (`gguf.quants`)
//! operation by operation, in f32 and in the same order (a product is rounded before a
//! minimum is subtracted), so the values are bit-for-bit the ones it produces.

use std::fmt;

/// Elements of a K-quant super-block.
const QK_K: usize = 256;

/// Dequantizes whole blocks, appending the values to the vector.
pub(crate) type Dequantize = fn(&[u8], &mut Vec<f32>);

/// A ggml tensor type: how the elements of a tensor are stored.
///
/// Quantized types store blocks of [`block_size`](Self::block_size) elements in
/// [`type_size`](Self::type_size) bytes each; blocks run along the innermost dimension.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// 4-bit, 32-element blocks with an f16 scale.
    Q4_0,
    /// 4-bit, 32-element blocks with an f16 scale and minimum.
    Q4_1,
    /// 5-bit, 32-element blocks with an f16 scale.
    Q5_0,
    /// 5-bit, 32-element blocks with an f16 scale and minimum.
    Q5_1,
    /// 8-bit, 32-element blocks with an f16 scale.
    Q8_0,
    /// 8-bit, 32-element blocks with f32 scale and sum (an intermediate type of ggml).
    Q8_1,
    /// 2-bit K-quant.
    Q2_K,
    /// 3-bit K-quant.
    Q3_K,
    /// 4-bit K-quant.
    Q4_K,
    /// 5-bit K-quant.
    Q5_K,
    /// 6-bit K-quant.
    Q6_K,
    /// 8-bit K-quant (f32 scale).
    Q8_K,
    /// 2.06-bit importance quant.
    IQ2_XXS,
    /// 2.31-bit importance quant.
    IQ2_XS,
    /// 3.06-bit importance quant.
    IQ3_XXS,
    /// 1.56-bit importance quant.
    IQ1_S,
    /// 4-bit non-linear, 32-element blocks.
    IQ4_NL,
    /// 3.44-bit importance quant.
    IQ3_S,
    /// 2.5-bit importance quant.
    IQ2_S,
    /// 4.25-bit non-linear, 256-element blocks.
    IQ4_XS,
    /// 8-bit integer.
    I8,
    /// 16-bit integer.
    I16,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 64-bit float.
    F64,
    /// 1.75-bit importance quant.
    IQ1_M,
    /// bfloat16.
    BF16,
    /// Ternary, 1.69 bits per weight.
    TQ1_0,
    /// Ternary, 2.06 bits per weight.
    TQ2_0,
    /// Microscaling FP4 (e2m1 values, e8m0 block scale).
    MXFP4,
    /// NVIDIA FP4 (e2m1 values, e4m3 sub-block scales).
    NVFP4,
    /// 1-bit, 128-element blocks.
    Q1_0,
}

impl GgmlType {
    /// Every type this module dequantizes, in id order.
    pub const SUPPORTED: [GgmlType; 20] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::F64,
        GgmlType::BF16,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
    ];

    /// The type with this ggml id, or `None` for an id ggml does not define.
    pub fn from_id(id: u32) -> Option<Self> {
        use GgmlType::*;
        Some(match id {
            0 => F32,
            1 => F16,
            2 => Q4_0,
            3 => Q4_1,
            6 => Q5_0,
            7 => Q5_1,
            8 => Q8_0,
            9 => Q8_1,
            10 => Q2_K,
            11 => Q3_K,
            12 => Q4_K,
            13 => Q5_K,
            14 => Q6_K,
            15 => Q8_K,
            16 => IQ2_XXS,
            17 => IQ2_XS,
            18 => IQ3_XXS,
            19 => IQ1_S,
            20 => IQ4_NL,
            21 => IQ3_S,
            22 => IQ2_S,
            23 => IQ4_XS,
            24 => I8,
            25 => I16,
            26 => I32,
            27 => I64,
            28 => F64,
            29 => IQ1_M,
            30 => BF16,
            34 => TQ1_0,
            35 => TQ2_0,
            39 => MXFP4,
            40 => NVFP4,
            41 => Q1_0,
            _ => return None,
        })
    }

    /// The id ggml gives the type (the number a GGUF tensor info stores).
    pub fn id(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q8_1 => 9,
            Q2_K => 10,
            Q3_K => 11,
            Q4_K => 12,
            Q5_K => 13,
            Q6_K => 14,
            Q8_K => 15,
            IQ2_XXS => 16,
            IQ2_XS => 17,
            IQ3_XXS => 18,
            IQ1_S => 19,
            IQ4_NL => 20,
            IQ3_S => 21,
            IQ2_S => 22,
            IQ4_XS => 23,
            I8 => 24,
            I16 => 25,
            I32 => 26,
            I64 => 27,
            F64 => 28,
            IQ1_M => 29,
            BF16 => 30,
            TQ1_0 => 34,
            TQ2_0 => 35,
            MXFP4 => 39,
            NVFP4 => 40,
            Q1_0 => 41,
        }
    }

    /// The name ggml gives the type (`Q4_K`, `IQ2_XXS`, ...).
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q8_1 => "Q8_1",
            Q2_K => "Q2_K",
            Q3_K => "Q3_K",
            Q4_K => "Q4_K",
            Q5_K => "Q5_K",
            Q6_K => "Q6_K",
            Q8_K => "Q8_K",
            IQ2_XXS => "IQ2_XXS",
            IQ2_XS => "IQ2_XS",
            IQ3_XXS => "IQ3_XXS",
            IQ1_S => "IQ1_S",
            IQ4_NL => "IQ4_NL",
            IQ3_S => "IQ3_S",
            IQ2_S => "IQ2_S",
            IQ4_XS => "IQ4_XS",
            I8 => "I8",
            I16 => "I16",
            I32 => "I32",
            I64 => "I64",
            F64 => "F64",
            IQ1_M => "IQ1_M",
            BF16 => "BF16",
            TQ1_0 => "TQ1_0",
            TQ2_0 => "TQ2_0",
            MXFP4 => "MXFP4",
            NVFP4 => "NVFP4",
            Q1_0 => "Q1_0",
        }
    }

    /// Elements per block (1 for the plain float and integer types).
    pub fn block_size(self) -> usize {
        self.layout().0
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.layout().1
    }

    fn layout(self) -> (usize, usize) {
        use GgmlType::*;
        match self {
            F32 | I32 => (1, 4),
            F16 | BF16 | I16 => (1, 2),
            I8 => (1, 1),
            F64 | I64 => (1, 8),
            Q4_0 => (32, 2 + 16),
            Q4_1 => (32, 2 + 2 + 16),
            Q5_0 => (32, 2 + 4 + 16),
            Q5_1 => (32, 2 + 2 + 4 + 16),
            Q8_0 => (32, 2 + 32),
            Q8_1 => (32, 4 + 4 + 32),
            Q2_K => (QK_K, 2 + 2 + QK_K / 16 + QK_K / 4),
            Q3_K => (QK_K, 2 + QK_K / 4 + QK_K / 8 + 12),
            Q4_K => (QK_K, 2 + 2 + QK_K / 2 + 12),
            Q5_K => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12),
            Q6_K => (QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16),
            Q8_K => (QK_K, 4 + QK_K + QK_K / 8),
            IQ2_XXS => (QK_K, 2 + QK_K / 4),
            IQ2_XS => (QK_K, 2 + QK_K / 4 + QK_K / 32),
            IQ3_XXS => (QK_K, 2 + QK_K / 4 + QK_K / 8),
            IQ1_S => (QK_K, 2 + QK_K / 8 + QK_K / 16),
            IQ4_NL => (32, 2 + 16),
            IQ3_S => (QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4),
            IQ2_S => (QK_K, 2 + QK_K / 4 + QK_K / 16),
            IQ4_XS => (QK_K, 2 + 2 + QK_K / 2 + QK_K / 64),
            IQ1_M => (QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32),
            TQ1_0 => (QK_K, 2 + 4 * 13),
            TQ2_0 => (QK_K, 2 + 64),
            MXFP4 => (32, 1 + 16),
            NVFP4 => (64, 4 + 32),
            Q1_0 => (128, 2 + 16),
        }
    }

    /// Whether [`GgufFile::read_f32`](super::GgufFile::read_f32) can dequantize this type.
    pub fn is_supported(self) -> bool {
        self.dequantizer().is_some()
    }

    /// The names of [`SUPPORTED`](Self::SUPPORTED), comma-separated, for messages.
    pub fn supported_names() -> String {
        Self::SUPPORTED.map(GgmlType::name).join(", ")
    }

    /// The function that dequantizes whole blocks of this type, appending to `out`.
    pub(crate) fn dequantizer(self) -> Option<Dequantize> {
        use GgmlType::*;
        Some(match self {
            F32 => f32_le,
            F16 => f16_le,
            BF16 => bf16_le,
            F64 => f64_le,
            Q4_0 => q4_0,
            Q4_1 => q4_1,
            Q5_0 => q5_0,
            Q5_1 => q5_1,
            Q8_0 => q8_0,
            Q2_K => q2_k,
            Q3_K => q3_k,
            Q4_K => q4_k,
            Q5_K => q5_k,
            Q6_K => q6_k,
            Q8_K => q8_k,
            IQ4_NL => iq4_nl,
            IQ4_XS => iq4_xs,
            TQ1_0 => tq1_0,
            TQ2_0 => tq2_0,
            MXFP4 => mxfp4,
            _ => return None,
        })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The f16 at `at`, as f32 (exact).
#[inline]
fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn f32_le(bytes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
}

fn f16_le(bytes: &[u8], out: &mut Vec<f32>) {
    out.extend(bytes.chunks_exact(2).map(|b| f16_at(b, 0)));
}

fn bf16_le(bytes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)),
    );
}

fn f64_le(bytes: &[u8], out: &mut Vec<f32>) {
    out.extend(
        bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8-byte chunk")) as f32),
    );
}

/// The 4-bit value `j` of a 32-element block packed as in Q4_0: the low nibbles of the 16
/// bytes hold elements 0..16, the high nibbles elements 16..32.
#[inline]
fn nibble32(qs: &[u8], j: usize) -> u8 {
    if j < 16 {
        qs[j] & 0x0F
    } else {
        qs[j - 16] >> 4
    }
}

fn q4_0(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(18) {
        let d = f16_at(b, 0);
        let qs = &b[2..18];
        out.extend((0..32).map(|j| d * f32::from(nibble32(qs, j) as i8 - 8)));
    }
}

fn q4_1(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(20) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qs = &b[4..20];
        out.extend((0..32).map(|j| d * f32::from(nibble32(qs, j)) + m));
    }
}

/// The 5-bit value `j` of a Q5_0/Q5_1 block: a nibble, and bit `j` of `qh` as bit 4.
#[inline]
fn five_bits(qs: &[u8], qh: u32, j: usize) -> u8 {
    nibble32(qs, j) | ((((qh >> j) & 1) as u8) << 4)
}

fn q5_0(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(22) {
        let d = f16_at(b, 0);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        out.extend((0..32).map(|j| d * f32::from(five_bits(qs, qh, j) as i8 - 16)));
    }
}

fn q5_1(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(24) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = &b[8..24];
        out.extend((0..32).map(|j| d * f32::from(five_bits(qs, qh, j)) + m));
    }
}

fn q8_0(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(34) {
        let d = f16_at(b, 0);
        out.extend(b[2..34].iter().map(|&q| f32::from(q as i8) * d));
    }
}

/// The 2-bit value `e` of 256 elements packed four to a byte in two halves of 32 bytes:
/// element `h*128 + s*32 + l` is bits `2s..2s+2` of byte `h*32 + l`.
#[inline]
fn crumb256(qs: &[u8], e: usize) -> u8 {
    let (h, s, l) = (e / 128, (e % 128) / 32, e % 32);
    (qs[h * 32 + l] >> (2 * s)) & 3
}

fn q2_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(84) {
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        let dl: [f32; 16] = std::array::from_fn(|i| d * f32::from(scales[i] & 0x0F));
        let ml: [f32; 16] = std::array::from_fn(|i| dmin * f32::from(scales[i] >> 4));
        out.extend((0..QK_K).map(|e| dl[e / 16] * f32::from(crumb256(qs, e)) - ml[e / 16]));
    }
}

fn q3_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(110) {
        let (hmask, qs, scales) = (&b[0..32], &b[32..96], &b[96..108]);
        let d = f16_at(b, 108);
        // Sixteen 6-bit scales: low nibbles in bytes 0..8 (low halves first), high 2 bits
        // in bytes 8..12.
        let dl: [f32; 16] = std::array::from_fn(|i| {
            let lo = if i < 8 {
                scales[i] & 0x0F
            } else {
                scales[i - 8] >> 4
            };
            let hi = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
            d * f32::from((lo | (hi << 4)) as i8 - 32)
        });
        out.extend((0..QK_K).map(|e| {
            let low = crumb256(qs, e) as i8;
            // The high bit subtracts 4 when it is clear.
            let high = (((hmask[e % 32] >> (e / 32)) & 1) ^ 1) as i8;
            dl[e / 16] * f32::from(low - (high << 2))
        }));
    }
}

/// The eight 6-bit scales and minimums of a Q4_K/Q5_K super-block.
fn scale_min_k4(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let sc = std::array::from_fn(|j| {
        if j < 4 {
            s[j] & 0x3F
        } else {
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 2) & 0x30)
        }
    });
    let mn = std::array::from_fn(|j| {
        if j < 4 {
            s[j + 4] & 0x3F
        } else {
            (s[j + 4] >> 4) | ((s[j] >> 2) & 0x30)
        }
    });
    (sc, mn)
}

/// The 4-bit value `e` of 256 elements packed as in Q4_K: 32-byte groups, low nibbles
/// first, so element `c*64 + h*32 + l` is nibble `h` of byte `c*32 + l`.
#[inline]
fn nibble256(qs: &[u8], e: usize) -> u8 {
    let (c, h, l) = (e / 64, (e % 64) / 32, e % 32);
    (qs[c * 32 + l] >> (4 * h)) & 0x0F
}

fn q4_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(144) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (sc, mn) = scale_min_k4(&b[4..16]);
        let qs = &b[16..144];
        let dl: [f32; 8] = std::array::from_fn(|j| d * f32::from(sc[j]));
        let ml: [f32; 8] = std::array::from_fn(|j| dmin * f32::from(mn[j]));
        out.extend((0..QK_K).map(|e| dl[e / 32] * f32::from(nibble256(qs, e)) - ml[e / 32]));
    }
}

fn q5_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(176) {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let (sc, mn) = scale_min_k4(&b[4..16]);
        let (qh, qs) = (&b[16..48], &b[48..176]);
        let dl: [f32; 8] = std::array::from_fn(|j| d * f32::from(sc[j]));
        let ml: [f32; 8] = std::array::from_fn(|j| dmin * f32::from(mn[j]));
        out.extend((0..QK_K).map(|e| {
            let q = nibble256(qs, e) | (((qh[e % 32] >> (e / 32)) & 1) << 4);
            dl[e / 32] * f32::from(q) - ml[e / 32]
        }));
    }
}

fn q6_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(210) {
        let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
        let d = f16_at(b, 208);
        let dl: [f32; 16] = std::array::from_fn(|i| d * f32::from(scales[i] as i8));
        out.extend((0..QK_K).map(|e| {
            let (h, r) = (e / 128, e % 128);
            let low = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0x0F;
            let high = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
            dl[e / 16] * f32::from((low | (high << 4)) as i8 - 32)
        }));
    }
}

fn q8_k(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(292) {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        out.extend(b[4..260].iter().map(|&q| d * f32::from(q as i8)));
    }
}

/// The non-linear 4-bit levels of IQ4_NL and IQ4_XS.
const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

fn iq4_nl(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(18) {
        let d = f16_at(b, 0);
        let qs = &b[2..18];
        out.extend((0..32).map(|j| d * f32::from(KVALUES_IQ4NL[usize::from(nibble32(qs, j))])));
    }
}

fn iq4_xs(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(136) {
        let d = f16_at(b, 0);
        let scales_h = u16::from_le_bytes([b[2], b[3]]);
        let (scales_l, qs) = (&b[4..8], &b[8..136]);
        let dl: [f32; 8] = std::array::from_fn(|g| {
            let lo = (scales_l[g / 2] >> (4 * (g % 2))) & 0x0F;
            let hi = ((scales_h >> (2 * g)) & 3) as u8;
            d * f32::from((lo | (hi << 4)) as i8 - 32)
        });
        out.extend((0..QK_K).map(|e| {
            let (g, h, l) = (e / 32, (e % 32) / 16, e % 16);
            let q = (qs[g * 16 + l] >> (4 * h)) & 0x0F;
            dl[g] * f32::from(KVALUES_IQ4NL[usize::from(q)])
        }));
    }
}

fn tq1_0(bytes: &[u8], out: &mut Vec<f32>) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    for b in bytes.chunks_exact(54) {
        let (qs, qh) = (&b[0..48], &b[48..52]);
        let d = f16_at(b, 52);
        out.extend((0..QK_K).map(|e| {
            // Five base-3 digits per byte, each brought to the top of the byte by a
            // wrapping multiply by a power of 3, then read off as (x * 3) >> 8.
            let x = if e < 160 {
                qs[e % 32].wrapping_mul(POW3[e / 32])
            } else if e < 240 {
                qs[32 + (e - 160) % 16].wrapping_mul(POW3[(e - 160) / 16])
            } else {
                qh[(e - 240) % 4].wrapping_mul(POW3[(e - 240) / 4])
            };
            let q = ((u16::from(x) * 3) >> 8) as i8 - 1;
            d * f32::from(q)
        }));
    }
}

fn tq2_0(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(66) {
        let qs = &b[0..64];
        let d = f16_at(b, 64);
        out.extend((0..QK_K).map(|e| d * f32::from(crumb256(qs, e) as i8 - 1)));
    }
}

/// The e2m1 levels of MXFP4, doubled (the block scale is halved to match).
const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

fn mxfp4(bytes: &[u8], out: &mut Vec<f32>) {
    for b in bytes.chunks_exact(17) {
        // Half of the e8m0 scale 2^(e - 127).
        let e = u32::from(b[0]);
        let d = f32::from_bits(if e < 2 {
            0x0020_0000 << e
        } else {
            (e - 1) << 23
        });
        let qs = &b[1..17];
        out.extend((0..32).map(|j| d * f32::from(KVALUES_MXFP4[usize::from(nibble32(qs, j))])));
    }
}
