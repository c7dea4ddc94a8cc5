//! AVX-512 kernels for the cached sampler's matrix-vector products, chosen
//! at run time where the CPU has AVX-512F (the AVX2 and portable kernels
//! are the sampler's own generic code compiled for those targets).
//!
//! A weight panel is `rows` rows of [`PANEL`] columns, contiguous. The
//! product keeps eight 16-float sums in registers: two per row for four
//! rows in flight, so the multiply-adds of neighbouring rows do not wait
//! on each other (an FMA's result is ready after four cycles and two can
//! start per cycle).

/// Output columns per packed panel (the sampler's layout).
pub const PANEL: usize = 32;

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
        let low = _mm512_add_ps(_mm512_add_ps(s[0], s[2]), _mm512_add_ps(s[4], s[6]));
        let high = _mm512_add_ps(_mm512_add_ps(s[1], s[3]), _mm512_add_ps(s[5], s[7]));
        _mm512_storeu_ps(out.as_mut_ptr(), low);
        _mm512_storeu_ps(out.as_mut_ptr().add(16), high);
    }
    out
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
}
