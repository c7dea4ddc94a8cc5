//! AVX-512 kernels for the cached sampler's matrix-vector products, chosen
//! at run time where the CPU has AVX-512F (the AVX2 and portable kernels
//! are the sampler's own generic code compiled for those targets).
//!
//! Two weight formats: f32, and bfloat16 (the top half of an f32), which
//! halves the bytes a sample streams from the L2 cache. The default model's
//! 0.93 MB of f32 weights per sample is what limits the sampler: on this
//! project's Xeon an L2-resident matrix-vector product streams about
//! 58 GB/s whatever the arithmetic, so f32 weights top out near 15 GMAC/s
//! and bfloat16 ones near 29. The bfloat16 product widens each weight back
//! to f32 in a register (a mask or a shift) and multiplies f32 activations,
//! so the only change from the f32 product is the weights' rounding.
//!
//! A weight panel is `rows` rows of [`PANEL`] columns, contiguous. The
//! product keeps eight 16-float sums in registers: two per row for four
//! rows in flight, so the multiply-adds of neighbouring rows do not wait
//! on each other (an FMA's result is ready after four cycles and two can
//! start per cycle).

/// Output columns per packed panel (the sampler's layout).
pub const PANEL: usize = 32;

/// How far ahead of its reads the bfloat16 product prefetches, in values.
const PREFETCH_AHEAD: usize = 512;

/// `acc + x · panel` for one panel of `x.len()` rows, with AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F, and `panel` must hold at least
/// `x.len() * PANEL` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn panel_product_avx512(x: &[f32], panel: &[f32], acc: [f32; PANEL]) -> [f32; PANEL] {
    use std::arch::x86_64::*;
    debug_assert!(panel.len() >= x.len() * PANEL);
    let rows = x.len();
    let p = panel.as_ptr();
    let mut out = acc;
    // SAFETY: every load reads 16 floats inside `panel` (row < rows, and
    // the panel holds rows x 32 floats) or inside `out`.
    unsafe {
        let zero = _mm512_setzero_ps();
        let mut s = [zero; 8];
        s[0] = _mm512_loadu_ps(out.as_ptr());
        s[1] = _mm512_loadu_ps(out.as_ptr().add(16));
        let mut row = 0;
        while row + 4 <= rows {
            for k in 0..4 {
                let w = p.add((row + k) * PANEL);
                let xv = _mm512_set1_ps(*x.get_unchecked(row + k));
                s[2 * k] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w), s[2 * k]);
                s[2 * k + 1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w.add(16)), s[2 * k + 1]);
            }
            row += 4;
        }
        while row < rows {
            let w = p.add(row * PANEL);
            let xv = _mm512_set1_ps(*x.get_unchecked(row));
            s[0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w), s[0]);
            s[1] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(w.add(16)), s[1]);
            row += 1;
        }
        sum_into(&s, &mut out);
    }
    out
}

/// The eight running sums of a panel product into `out`: the even ones
/// are the panel's first 16 columns, the odd ones its last 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn sum_into(s: &[std::arch::x86_64::__m512; 8], out: &mut [f32; PANEL]) {
    use std::arch::x86_64::*;
    let low = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[4], s[6]));
    let high = _mm512_add_ps(_mm512_add_ps(s[1], s[3]), _mm512_add_ps(s[5], s[7]));
    // SAFETY: `out` holds 32 floats, two stores of 16.
    unsafe {
        _mm512_storeu_ps(out.as_mut_ptr(), low);
        _mm512_storeu_ps(out.as_mut_ptr().add(16), high);
    }
}

/// `acc + x · panel` for one panel of bfloat16 weights, with AVX-512F.
/// The panel holds the rows in pairs: lane `l` of pair `i` is a `u32`
/// whose high half is row `2i`'s weight of column `l` and whose low half is
/// row `2i + 1`'s ([`bf16_pair`]); an odd last row is paired with zeros.
///
/// # Safety
/// The CPU must support AVX-512F, and `panel` must hold at least
/// `x.len().div_ceil(2) * PANEL` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn panel_product_avx512_bf16(x: &[f32], panel: &[u32], acc: [f32; PANEL]) -> [f32; PANEL] {
    use std::arch::x86_64::*;
    let rows = x.len();
    debug_assert!(panel.len() >= rows.div_ceil(2) * PANEL);
    let p = panel.as_ptr();
    let mut out = acc;
    // SAFETY: every load reads 16 values inside `panel` (pair < the pairs
    // of `rows`, and the panel holds that many times 32) or inside `out`.
    unsafe {
        let high_half = _mm512_set1_epi32(0xFFFF_0000_u32 as i32);
        // Widening bfloat16 to f32: the high half masked, the low half
        // shifted up; both are exact.
        macro_rules! upper {
            ($v:expr) => {
                _mm512_castsi512_ps(_mm512_and_si512($v, high_half))
            };
        }
        macro_rules! lower {
            ($v:expr) => {
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>($v))
            };
        }
        let mut s = [_mm512_setzero_ps(); 8];
        s[0] = _mm512_loadu_ps(out.as_ptr());
        s[1] = _mm512_loadu_ps(out.as_ptr().add(16));
        let pairs = rows / 2;
        let mut pair = 0;
        // Two pairs (four rows) in flight: eight independent sums.
        while pair + 2 <= pairs {
            // Ahead of the stream: short panels end before the hardware
            // prefetcher has ramped up.
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(pair * PANEL + PREFETCH_AHEAD).cast());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(pair * PANEL + PREFETCH_AHEAD + 16).cast());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(pair * PANEL + PREFETCH_AHEAD + 32).cast());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(pair * PANEL + PREFETCH_AHEAD + 48).cast());
            for k in 0..2 {
                let w = p.add((pair + k) * PANEL);
                let x0 = _mm512_set1_ps(*x.get_unchecked(2 * (pair + k)));
                let x1 = _mm512_set1_ps(*x.get_unchecked(2 * (pair + k) + 1));
                let v0 = _mm512_loadu_si512(w.cast());
                let v1 = _mm512_loadu_si512(w.add(16).cast());
                s[4 * k] = _mm512_fmadd_ps(x0, upper!(v0), s[4 * k]);
                s[4 * k + 1] = _mm512_fmadd_ps(x0, upper!(v1), s[4 * k + 1]);
                s[4 * k + 2] = _mm512_fmadd_ps(x1, lower!(v0), s[4 * k + 2]);
                s[4 * k + 3] = _mm512_fmadd_ps(x1, lower!(v1), s[4 * k + 3]);
            }
            pair += 2;
        }
        while pair < rows.div_ceil(2) {
            let w = p.add(pair * PANEL);
            let x0 = _mm512_set1_ps(*x.get_unchecked(2 * pair));
            // The zero partner of an odd last row.
            let x1 = _mm512_set1_ps(x.get(2 * pair + 1).copied().unwrap_or(0.0));
            let v0 = _mm512_loadu_si512(w.cast());
            let v1 = _mm512_loadu_si512(w.add(16).cast());
            s[0] = _mm512_fmadd_ps(x0, upper!(v0), s[0]);
            s[1] = _mm512_fmadd_ps(x0, upper!(v1), s[1]);
            s[2] = _mm512_fmadd_ps(x1, lower!(v0), s[2]);
            s[3] = _mm512_fmadd_ps(x1, lower!(v1), s[3]);
            pair += 1;
        }
        sum_into(&s, &mut out);
    }
    out
}

/// The bfloat16 nearest `v` (ties to even), as its 16 bits: the top half
/// of an f32 after rounding away the bottom half.
pub fn bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        // Keep it a NaN (rounding could carry into the exponent).
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 a bfloat16 holds.
pub fn bf16_value(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Two rows' weights of one column as one lane of a bfloat16 panel (see
/// [`panel_product_avx512_bf16`]).
pub fn bf16_pair(upper_row: f32, lower_row: f32) -> u32 {
    (u32::from(bf16_bits(upper_row)) << 16) | u32::from(bf16_bits(lower_row))
}

/// Whether this CPU can run [`panel_product_avx512`].
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn the_avx512_panel_product_equals_a_plain_sum() {
        if !has_avx512() {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        for rows in [1, 3, 4, 7, 32, 33, 130] {
            let x: Vec<f32> = (0..rows).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.1).collect();
            let panel: Vec<f32> = (0..rows * PANEL)
                .map(|i| ((i * 53 % 17) as f32 - 8.0) * 0.01)
                .collect();
            let acc: [f32; PANEL] = std::array::from_fn(|l| l as f32 * 0.5);
            // SAFETY: checked above; the panel has rows x PANEL floats.
            let got = unsafe { panel_product_avx512(&x, &panel, acc) };
            for l in 0..PANEL {
                let want = acc[l] as f64
                    + (0..rows)
                        .map(|r| f64::from(x[r]) * f64::from(panel[r * PANEL + l]))
                        .sum::<f64>();
                assert!(
                    (f64::from(got[l]) - want).abs() < 1e-4,
                    "rows {rows}, column {l}: {} vs {want}",
                    got[l]
                );
            }
        }
    }

    #[test]
    fn the_bf16_panel_product_equals_a_plain_sum_of_the_rounded_weights() {
        if !has_avx512() {
            eprintln!("skipped: no AVX-512 on this CPU");
            return;
        }
        for rows in [1usize, 2, 3, 4, 5, 7, 32, 33, 130] {
            let x: Vec<f32> = (0..rows).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.1).collect();
            // Weights with bits below bfloat16's precision, so rounding
            // matters and a kernel using the f32 values would be caught.
            let w = |r: usize, l: usize| ((r * PANEL + l) * 53 % 17) as f32 * 0.0123 - 0.1;
            let panel: Vec<u32> = (0..rows.div_ceil(2))
                .flat_map(|pair| {
                    (0..PANEL).map(move |l| {
                        let lower = if 2 * pair + 1 < rows {
                            w(2 * pair + 1, l)
                        } else {
                            0.0
                        };
                        bf16_pair(w(2 * pair, l), lower)
                    })
                })
                .collect();
            let acc: [f32; PANEL] = std::array::from_fn(|l| l as f32 * 0.5);
            // SAFETY: checked above; the panel has the rows' pairs x PANEL.
            let got = unsafe { panel_product_avx512_bf16(&x, &panel, acc) };
            let mut rounding_moved = 0.0f64;
            for l in 0..PANEL {
                let sum = |weight: &dyn Fn(usize) -> f32| {
                    acc[l] as f64
                        + (0..rows)
                            .map(|r| f64::from(x[r]) * f64::from(weight(r)))
                            .sum::<f64>()
                };
                let want = sum(&|r| bf16_value(bf16_bits(w(r, l))));
                assert!(
                    (f64::from(got[l]) - want).abs() < 1e-4,
                    "rows {rows}, column {l}: {} vs {want}",
                    got[l]
                );
                rounding_moved = rounding_moved.max((sum(&|r| w(r, l)) - want).abs());
            }
            // The rounding is visible: the f32 weights give other sums.
            if rows >= 32 {
                assert!(rounding_moved > 1e-4, "rows {rows}: {rounding_moved}");
            }
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_with_ties_to_even() {
        for v in [
            0.0f32,
            -0.0,
            1.0,
            -2.5,
            2f32.powi(-100),
            -1.5 * 2f32.powi(127),
            f32::INFINITY,
        ] {
            assert_eq!(
                bf16_value(bf16_bits(v)).to_bits(),
                v.to_bits(),
                "{v} is a bfloat16"
            );
        }
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(bf16_value(bf16_bits(1.0 + 2f32.powi(-8))), 1.0);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        assert_eq!(
            bf16_value(bf16_bits(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        // Just above halfway rounds up.
        assert_eq!(
            bf16_value(bf16_bits(1.0 + 2f32.powi(-8) + 2f32.powi(-20))),
            1.0 + 2f32.powi(-7)
        );
        // Relative error at most half of the 8-bit significand's step, 2^-8.
        for i in 1..300 {
            let v = (i as f32 * 0.4).exp2() * if i % 2 == 0 { 1.0 } else { -1.0 } * 1e-6;
            let r = bf16_value(bf16_bits(v));
            assert!(((r - v) / v).abs() <= 2f32.powi(-8), "{v} -> {r}");
        }
        assert!(bf16_value(bf16_bits(f32::NAN)).is_nan());
        assert_eq!(bf16_pair(1.0, -2.0), 0x3F80_C000);
    }
}
