//! Dequantization of the ggml tensor types GGUF files hold, to f32, with the arithmetic of
//! gguf-py's `quants.py` (f32 products in the same order), so results are bit-equal to it.
//! Block layouts: ggml's `ggml-common.h`; a summary is in the model crate's README.

/// A ggml tensor type this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// 32 values: f16 scale, 16 bytes of 4-bit values (offset 8).
    Q4_0,
    /// 32 values: f16 scale and minimum, 16 bytes of 4-bit values.
    Q4_1,
    /// 32 values: f16 scale, 32 signed bytes.
    Q8_0,
    /// 256 values in 8 sub-blocks with 6-bit scales and minimums, 4-bit values.
    Q4K,
    /// As Q4_K with a fifth bit per value.
    Q5K,
    /// 256 values in 16 sub-blocks with 8-bit scales, 6-bit values.
    Q6K,
}

/// The ggml type ids and names of every type, for messages (ggml's `ggml_type`).
const NAMES: [(u32, &str); 31] = [
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (4, "Q4_2"),
    (5, "Q4_3"),
    (6, "Q5_0"),
    (7, "Q5_1"),
    (8, "Q8_0"),
    (9, "Q8_1"),
    (10, "Q2_K"),
    (11, "Q3_K"),
    (12, "Q4_K"),
    (13, "Q5_K"),
    (14, "Q6_K"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (30, "BF16"),
];

/// The name ggml gives a type id (`type 42` when unknown).
pub fn type_name(id: u32) -> String {
    NAMES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or_else(|| format!("type {id}"), |(_, n)| (*n).to_string())
}

impl GgmlType {
    /// The type of a ggml type id, or `None` for types this crate does not read.
    pub fn from_id(id: u32) -> Option<Self> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::Bf16,
            _ => return None,
        })
    }

    /// Values per block and bytes per block.
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::Bf16 => (1, 2),
            GgmlType::Q4_0 => (32, 18),
            GgmlType::Q4_1 => (32, 20),
            GgmlType::Q8_0 => (32, 34),
            GgmlType::Q4K => (256, 144),
            GgmlType::Q5K => (256, 176),
            GgmlType::Q6K => (256, 210),
        }
    }

    /// The ggml name.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Bf16 => "BF16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4K => "Q4_K",
            GgmlType::Q5K => "Q5_K",
            GgmlType::Q6K => "Q6_K",
        }
    }
}

/// IEEE half to f32 (exact: every half is an f32).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise.
            let shift = frac.leading_zeros() - 21; // bring the top set bit to bit 10
            let frac = (frac << shift) & 0x3ff;
            let exp = 127 - 15 + 1 - shift;
            sign | (exp << 23) | (frac << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

fn half(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The 6-bit scales and minimums of the 8 sub-blocks of a Q4_K/Q5_K block.
fn scale_min_k4(s: &[u8]) -> ([f32; 8], [f32; 8]) {
    let (mut sc, mut m) = ([0f32; 8], [0f32; 8]);
    for j in 0..4 {
        sc[j] = (s[j] & 63) as f32;
        m[j] = (s[j + 4] & 63) as f32;
        sc[j + 4] = ((s[j + 8] & 0x0f) | ((s[j] >> 2) & 0x30)) as f32;
        m[j + 4] = ((s[j + 8] >> 4) | ((s[j + 4] >> 2) & 0x30)) as f32;
    }
    (sc, m)
}

/// Dequantizes `data` (whole blocks of `kind`) into f32 values appended to `out`.
///
/// # Panics
/// Never for data whose length is a whole number of blocks (the reader checks it).
pub fn dequantize(kind: GgmlType, data: &[u8], out: &mut Vec<f32>) {
    let (n, size) = kind.block();
    out.reserve(data.len() / size * n);
    for b in data.chunks_exact(size) {
        match kind {
            GgmlType::F32 => out.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            GgmlType::F16 => out.push(half(b, 0)),
            GgmlType::Bf16 => out.push(f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)),
            GgmlType::Q4_0 => {
                let d = half(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|q| d * ((q & 15) as i8 - 8) as f32));
                out.extend(qs.iter().map(|q| d * ((q >> 4) as i8 - 8) as f32));
            }
            GgmlType::Q4_1 => {
                let (d, m) = (half(b, 0), half(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|q| d * (q & 15) as f32 + m));
                out.extend(qs.iter().map(|q| d * (q >> 4) as f32 + m));
            }
            GgmlType::Q8_0 => {
                let d = half(b, 0);
                out.extend(b[2..34].iter().map(|&q| (q as i8) as f32 * d));
            }
            GgmlType::Q4K | GgmlType::Q5K => {
                let (d, dmin) = (half(b, 0), half(b, 2));
                let (sc, m) = scale_min_k4(&b[4..16]);
                let (qh, qs) = if kind == GgmlType::Q5K {
                    (Some(&b[16..48]), &b[48..176])
                } else {
                    (None, &b[16..144])
                };
                for j in 0..8 {
                    let (dl, ml) = (d * sc[j], dmin * m[j]);
                    let (chunk, shift) = (j / 2, 4 * (j % 2));
                    for l in 0..32 {
                        let mut q = (qs[chunk * 32 + l] >> shift) & 15;
                        if let Some(qh) = qh {
                            q |= ((qh[l] >> j) & 1) << 4;
                        }
                        out.push(dl * q as f32 - ml);
                    }
                }
            }
            GgmlType::Q6K => {
                let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
                let d = half(b, 208);
                for h in 0..2 {
                    for g in 0..4 {
                        for l in 0..32 {
                            let low = (ql[h * 64 + (g % 2) * 32 + l] >> (4 * (g / 2))) & 15;
                            let high = (qh[h * 32 + l] >> (2 * g)) & 3;
                            let q = ((low | (high << 4)) as i8 - 32) as f32;
                            let i = h * 128 + g * 32 + l;
                            out.push((d * (scales[i / 16] as i8) as f32) * q);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_convert_exactly() {
        for (h, want) in [
            (0x3c00u16, 1.0f32),
            (0xc000, -2.0),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x7bff, 65504.0),
            (0x0000, 0.0),
        ] {
            assert_eq!(f16_to_f32(h), want, "{h:#x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
    }

    /// A Q4_0 block by hand: scale 0.5, nibbles 0..15 low and 15..0 high.
    #[test]
    fn q4_0_by_hand() {
        let mut b = vec![0x00, 0x38]; // f16 0.5
        b.extend((0..16u8).map(|i| i | ((15 - i) << 4)));
        let mut out = Vec::new();
        dequantize(GgmlType::Q4_0, &b, &mut out);
        let want: Vec<f32> = (0..16)
            .map(|i| 0.5 * (i as f32 - 8.0))
            .chain((0..16).map(|i| 0.5 * ((15 - i) as f32 - 8.0)))
            .collect();
        assert_eq!(out, want);
    }
}
