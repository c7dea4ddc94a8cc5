//! SIMD kernels for the cached sampler's matrix-vector products, chosen at
//! run time: AVX-512 ones where the CPU has AVX-512F, and 8-bit ones with
//! AVX2 (the f32 AVX2 and portable kernels are the sampler's own generic
//! code compiled for those targets).
//!
//! Three weight formats. f32. bfloat16 (the top half of an f32), which
//! halves the bytes a sample streams from the L2 cache: the product widens
//! each weight back to f32 in a register (a mask or a shift) and multiplies
//! f32 activations, so the only change is the weights' rounding; it tops
//! out near 35 GMAC/s on this project's Xeon, held by the mask, shift and
//! two FMAs each row pair costs (AVX-512 BF16's own dot-product
//! instruction runs one per two cycles here, no faster). And signed bytes
//! with AVX-512 VNNI: weights scaled per column, activations quantised per
//! product to 255 levels, four rows' multiply-adds per instruction, exact
//! integer sums: a quarter of the f32 bytes, about 85 GMAC/s from L2. The
//! same 8-bit panels and levels run on AVX2 too
//! ([`panel_product_avx2_int8`]), where a CPU without AVX-512 (this
//! project's AMD EPYC) cannot hold the f32 weights in its L2 cache.
//!
//! A weight panel is `rows` rows of [`PANEL`] columns, contiguous, on whole
//! cache lines ([`CacheAligned`]). The products keep eight 16-lane sums in
//! registers, so the multiply-adds of neighbouring rows do not wait on
//! each other (an FMA's result is ready after four cycles and two can
//! start per cycle).

/// Output columns per packed panel (the sampler's layout).
pub const PANEL: usize = 32;

/// 32-bit values in whole 64-byte cache lines, the first at a line's start,
/// as the kernels' weight panels are kept: a 64-byte vector load that
/// straddles two lines costs two of the cache's reads, and panels at
/// `Vec`'s 16-byte alignment ran the products a third slower (f32 weights
/// in L1: 32 against 48 GMAC/s on this project's Xeon).
#[derive(Debug, Clone)]
pub struct CacheAligned<T> {
    lines: Vec<Line<T>>,
    len: usize,
}

/// Values per cache line.
const LINE: usize = 16;

#[repr(C, align(64))]
#[derive(Debug, Clone, Copy)]
struct Line<T>([T; LINE]);

impl<T: Copy + Default> CacheAligned<T> {
    /// A copy of `values`, padded with defaults to whole lines.
    pub fn from_slice(values: &[T]) -> Self {
        // Sixteen 4-byte values fill a line exactly, so the lines' values
        // are one contiguous run.
        const { assert!(std::mem::size_of::<T>() * LINE == 64) };
        let lines = values
            .chunks(LINE)
            .map(|chunk| {
                let mut line = [T::default(); LINE];
                line[..chunk.len()].copy_from_slice(chunk);
                Line(line)
            })
            .collect();
        Self {
            lines,
            len: values.len(),
        }
    }
}

impl<T> std::ops::Deref for CacheAligned<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the lines are `repr(C)` arrays of 16 values exactly 64
        // bytes long (asserted in `from_slice`, the only constructor), so
        // they are one contiguous, initialised run of values, of which the
        // first `len` are the buffer's.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), self.len) }
    }
}

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

/// Most rows an 8-bit product may have: its 32-bit integer sums cannot
/// overflow below this (each term is at most 255 x 127).
pub const MAX_INT8_ROWS: usize = 65_536;

/// The activations `x` as unsigned bytes for [`panel_product_avx512_int8`]:
/// each value rounded to the nearest of 255 levels spanning its largest
/// magnitude, offset by 128 (so 128 is zero), four rows per `u32` (row
/// `4i + j` in byte `j` of `quads[i]`). Returns the step between levels
/// (0 for an all-zero `x`); the rows past `x` in the last quad are 128.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512BW, and `quads` must hold at
/// least `x.len().div_ceil(4)` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub unsafe fn quantise_activations(x: &[f32], quads: &mut [u32]) -> f32 {
    use std::arch::x86_64::*;
    debug_assert!(quads.len() >= x.len().div_ceil(4));
    let lanes = |count: usize| -> __mmask16 { ((1u32 << count.min(16)) - 1) as __mmask16 };
    // SAFETY: masked loads read only x's own floats; each masked byte store
    // writes only bytes of the quads that hold x's rows, and the last quad's
    // padding is written as a whole u32 inside `quads`.
    unsafe {
        let mut largest = _mm512_setzero_ps();
        for first in (0..x.len()).step_by(16) {
            let v = _mm512_maskz_loadu_ps(lanes(x.len() - first), x.as_ptr().add(first));
            largest = _mm512_max_ps(largest, _mm512_abs_ps(v));
        }
        let largest = _mm512_reduce_max_ps(largest);
        if !x.len().is_multiple_of(4) {
            quads[x.len() / 4] = 0x8080_8080;
        }
        let step = largest / 127.0;
        let inverse = if largest > 0.0 { 127.0 / largest } else { 0.0 };
        let scale = _mm512_set1_ps(inverse);
        let offset = _mm512_set1_epi32(128);
        let bytes = quads.as_mut_ptr().cast::<u8>();
        for first in (0..x.len()).step_by(16) {
            let n = x.len() - first;
            let v = _mm512_maskz_loadu_ps(lanes(n), x.as_ptr().add(first));
            // Round to nearest (the default rounding mode), within +-127.
            let levels = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, scale)), offset);
            _mm512_mask_cvtepi32_storeu_epi8(bytes.add(first).cast(), lanes(n), levels);
        }
        step
    }
}

/// `acc + x · panel` in integers for one panel of 8-bit weights, with
/// AVX-512 VNNI: `x` as [`quantise_activations`] makes it, the panel's
/// rows in quads (lane `l` of quad `i` holds rows `4i..4i + 4` of column
/// `l` as signed bytes, row `4i + j` in byte `j`; [`int8_quad`]). One
/// instruction does four rows' 16 columns of multiply-adds: a quarter of the
/// f32 weights' bytes and an eighth of their instructions. The sums are of
/// the offset activations (128 + level); the caller takes 128 times each
/// column's weight sum away.
///
/// # Safety
/// The CPU must support AVX-512F and AVX-512 VNNI; `quads` must hold the
/// product's rows (at most [`MAX_INT8_ROWS`]) and `panel` at least
/// `quads.len() * PANEL` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
pub unsafe fn panel_product_avx512_int8(quads: &[u32], panel: &[u32], acc: [i32; PANEL]) -> [i32; PANEL] {
    use std::arch::x86_64::*;
    debug_assert!(panel.len() >= quads.len() * PANEL);
    let p = panel.as_ptr();
    let mut out = acc;
    // SAFETY: every load reads 16 values inside `panel` (quad < quads.len())
    // or inside `out`.
    unsafe {
        let mut s = [_mm512_setzero_si512(); 8];
        s[0] = _mm512_loadu_si512(out.as_ptr().cast());
        s[1] = _mm512_loadu_si512(out.as_ptr().add(16).cast());
        let mut quad = 0;
        // Four quads (16 rows) in flight: eight independent sums.
        while quad + 4 <= quads.len() {
            for k in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add((quad + k) * PANEL + PREFETCH_AHEAD).cast());
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add((quad + k) * PANEL + PREFETCH_AHEAD + 16).cast());
            }
            for k in 0..4 {
                let w = p.add((quad + k) * PANEL);
                let xv = _mm512_set1_epi32(*quads.get_unchecked(quad + k) as i32);
                s[2 * k] = _mm512_dpbusd_epi32(s[2 * k], xv, _mm512_loadu_si512(w.cast()));
                s[2 * k + 1] = _mm512_dpbusd_epi32(s[2 * k + 1], xv, _mm512_loadu_si512(w.add(16).cast()));
            }
            quad += 4;
        }
        while quad < quads.len() {
            let w = p.add(quad * PANEL);
            let xv = _mm512_set1_epi32(*quads.get_unchecked(quad) as i32);
            s[0] = _mm512_dpbusd_epi32(s[0], xv, _mm512_loadu_si512(w.cast()));
            s[1] = _mm512_dpbusd_epi32(s[1], xv, _mm512_loadu_si512(w.add(16).cast()));
            quad += 1;
        }
        let low = _mm512_add_epi32(_mm512_add_epi32(s[0], s[2]), _mm512_add_epi32(s[4], s[6]));
        let high = _mm512_add_epi32(_mm512_add_epi32(s[1], s[3]), _mm512_add_epi32(s[5], s[7]));
        _mm512_storeu_si512(out.as_mut_ptr().cast(), low);
        _mm512_storeu_si512(out.as_mut_ptr().add(16).cast(), high);
    }
    out
}

/// The activations `x` as signed bytes for [`panel_product_avx2_int8`]:
/// each value rounded (to nearest, ties to even) to the nearest of 255
/// levels spanning its largest magnitude, -127 to 127, four rows per `u32`
/// (row `4i + j` in byte `j` of `quads[i]`). Returns the step between
/// levels (0 for an all-zero `x`); the rows past `x` in the last quad are
/// 0. The same levels as [`quantise_activations`], without its offset.
///
/// # Safety
/// The CPU must support AVX2, and `quads` must hold at least
/// `x.len().div_ceil(4)` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn quantise_activations_signed(x: &[f32], quads: &mut [u32]) -> f32 {
    use std::arch::x86_64::*;
    debug_assert!(quads.len() >= x.len().div_ceil(4));
    // Whole runs of 32 values go through vectors, the rest one by one.
    let whole = x.len() / 32 * 32;
    // SAFETY: every vector load reads 8 floats of x's first `whole`, and
    // every store writes 32 bytes, the quads of 32 of those rows.
    unsafe {
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
        let mut largest = _mm256_setzero_ps();
        for first in (0..whole).step_by(8) {
            let v = _mm256_loadu_ps(x.as_ptr().add(first));
            largest = _mm256_max_ps(largest, _mm256_and_ps(v, magnitude));
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), largest);
        let largest = x[whole..]
            .iter()
            .chain(&lanes)
            .fold(0.0f32, |m, v| m.max(v.abs()));
        let inverse = if largest > 0.0 { 127.0 / largest } else { 0.0 };
        let scale = _mm256_set1_ps(inverse);
        // Packing works within 128-bit halves; this puts the quads back in
        // row order.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        let bytes = quads.as_mut_ptr().cast::<u8>();
        for first in (0..whole).step_by(32) {
            // Round to nearest (the default rounding mode); the packs
            // saturate, and |v| <= largest keeps every level within 127.
            let level = |k: usize| {
                _mm256_cvtps_epi32(_mm256_mul_ps(
                    _mm256_loadu_ps(x.as_ptr().add(first + 8 * k)),
                    scale,
                ))
            };
            let low = _mm256_packs_epi32(level(0), level(1));
            let high = _mm256_packs_epi32(level(2), level(3));
            let packed = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(low, high), order);
            _mm256_storeu_si256(bytes.add(first).cast(), packed);
        }
        let rest = &x[whole..];
        for (q, four) in quads[whole / 4..x.len().div_ceil(4)]
            .iter_mut()
            .zip(rest.chunks(4))
        {
            let mut b = [0u8; 4];
            for (b, &v) in b.iter_mut().zip(four) {
                *b = (v * inverse).round_ties_even() as i8 as u8;
            }
            *q = u32::from_le_bytes(b);
        }
        largest / 127.0
    }
}

/// `acc + x · panel` in integers for one panel of 8-bit weights, with AVX2:
/// `x` as [`quantise_activations_signed`] makes it, the panel as
/// [`panel_product_avx512_int8`] reads it. AVX2's byte multiply-add
/// (`vpmaddubsw`) takes one unsigned operand and saturates its 16-bit pair
/// sums, so each quad of activations goes in as magnitudes, their signs
/// moved onto the weights (`vpsign`): a pair sums to at most 2 x 127 x 127,
/// below the saturation, and the sums are the exact products. A quarter of
/// the f32 weights' bytes: the default model's 0.23 MB stay in a 512 KB L2
/// cache, where its 0.93 MB of f32 weights do not.
///
/// # Safety
/// The CPU must support AVX2; `quads` must hold the product's rows (at most
/// [`MAX_INT8_ROWS`]) and `panel` at least `quads.len() * PANEL` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub unsafe fn panel_product_avx2_int8(quads: &[u32], panel: &[u32], acc: [i32; PANEL]) -> [i32; PANEL] {
    use std::arch::x86_64::*;
    debug_assert!(panel.len() >= quads.len() * PANEL);
    let p = panel.as_ptr();
    let mut out = acc;
    // SAFETY: every load reads 8 values inside `panel` (quad <
    // quads.len()) or inside `out`.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut first = [_mm256_setzero_si256(); 4];
        let mut second = first;
        for (v, sum) in first.iter_mut().enumerate() {
            *sum = _mm256_loadu_si256(out.as_ptr().add(8 * v).cast());
        }
        // One quad's four rows into four sums (the panel's 32 columns,
        // eight per vector); a macro, so it is inlined with the function's
        // target features.
        macro_rules! quad {
            ($at:expr, $sums:expr) => {{
                let q = _mm256_set1_epi32(*quads.get_unchecked($at) as i32);
                let magnitudes = _mm256_abs_epi8(q);
                let w = p.add($at * PANEL);
                for v in 0..4 {
                    let signed = _mm256_sign_epi8(_mm256_loadu_si256(w.add(8 * v).cast()), q);
                    let pairs = _mm256_maddubs_epi16(magnitudes, signed);
                    $sums[v] = _mm256_add_epi32($sums[v], _mm256_madd_epi16(pairs, ones));
                }
            }};
        }
        let mut at = 0;
        // Two quads in flight: eight independent sums.
        while at + 2 <= quads.len() {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at * PANEL + PREFETCH_AHEAD).cast());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at * PANEL + PREFETCH_AHEAD + 16).cast());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at * PANEL + PREFETCH_AHEAD + 32).cast());
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at * PANEL + PREFETCH_AHEAD + 48).cast());
            quad!(at, first);
            quad!(at + 1, second);
            at += 2;
        }
        if at < quads.len() {
            quad!(at, first);
        }
        for v in 0..4 {
            _mm256_storeu_si256(
                out.as_mut_ptr().add(8 * v).cast(),
                _mm256_add_epi32(first[v], second[v]),
            );
        }
    }
    out
}

/// What both 8-bit panel products are ([`panel_product_avx512_int8`],
/// [`panel_product_avx2_int8`]): the quads, the panel, the sums to add to.
pub type Int8Product = unsafe fn(&[u32], &[u32], [i32; PANEL]) -> [i32; PANEL];

/// Four rows' signed 8-bit weights of one column as one lane of an 8-bit
/// panel (see [`panel_product_avx512_int8`]).
pub fn int8_quad(rows: [i8; 4]) -> u32 {
    u32::from_le_bytes(rows.map(|w| w as u8))
}

/// Whether this CPU can run [`panel_product_avx512_int8`] and
/// [`quantise_activations`].
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        has_avx512()
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
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
    fn cache_aligned_values_start_on_a_line_and_keep_their_order() {
        for n in [0usize, 1, 15, 16, 17, 100] {
            let v: Vec<u32> = (0..n as u32).map(|i| i * 7 + 1).collect();
            let a = CacheAligned::from_slice(&v);
            assert_eq!(&a[..], &v[..]);
            assert_eq!(a.as_ptr() as usize % 64, 0);
        }
    }

    #[test]
    fn activations_quantise_to_the_nearest_of_255_levels() {
        if !has_avx512_vnni() {
            eprintln!("skipped: no AVX-512 VNNI on this CPU");
            return;
        }
        for n in [1usize, 3, 4, 5, 16, 17, 64, 130] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.377).collect();
            let mut quads = vec![0u32; n.div_ceil(4) + 1];
            let guard = 0xDEAD_BEEF;
            quads[n.div_ceil(4)] = guard;
            // SAFETY: checked above; quads holds the rows.
            let step = unsafe { quantise_activations(&x, &mut quads) };
            let largest = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((step - largest / 127.0).abs() < 1e-7);
            let bytes: Vec<u8> = quads.iter().flat_map(|q| q.to_le_bytes()).collect();
            for (i, &v) in x.iter().enumerate() {
                let level = i32::from(bytes[i]) - 128;
                assert!(level.abs() <= 127);
                assert!(
                    (level as f32 * step - v).abs() <= step * 0.5 + 1e-6,
                    "{i}: {level} for {v}"
                );
            }
            assert!(
                bytes[n..n.div_ceil(4) * 4].iter().all(|&b| b == 128),
                "padding of {n}"
            );
            assert_eq!(quads[n.div_ceil(4)], guard, "wrote past the rows");
        }
        let mut quads = [0u32; 2];
        // SAFETY: checked above.
        assert_eq!(unsafe { quantise_activations(&[0.0; 5], &mut quads) }, 0.0);
        assert_eq!(quads, [0x8080_8080; 2]);
    }

    /// Checks an 8-bit panel product against the exact integer sum, on
    /// panels of 1 to 640 rows whose weights cover every signed level:
    /// `level(r)` is row r's activation as the product reads its byte (its
    /// low 8 bits), `pad` the byte past the rows in the last quad.
    fn check_int8_product(level: impl Fn(usize) -> i32, pad: u8, product: Int8Product) {
        for rows in [1usize, 4, 5, 8, 9, 15, 16, 17, 64, 130, 640] {
            let byte = |r: usize| if r < rows { level(r) as u8 } else { pad };
            let w = |r: usize, l: usize| {
                if r < rows {
                    (((r * PANEL + l) * 97 % 255) as i32 - 127) as i8
                } else {
                    0
                }
            };
            let quads: Vec<u32> = (0..rows.div_ceil(4))
                .map(|q| u32::from_le_bytes(std::array::from_fn(|j| byte(4 * q + j))))
                .collect();
            let panel: Vec<u32> = (0..rows.div_ceil(4))
                .flat_map(|q| (0..PANEL).map(move |l| int8_quad(std::array::from_fn(|j| w(4 * q + j, l)))))
                .collect();
            let acc: [i32; PANEL] = std::array::from_fn(|l| l as i32 * 1000 - 7);
            // SAFETY: the callers checked the CPU; the panel has the quads
            // x PANEL.
            let got = unsafe { product(&quads, &panel, acc) };
            for l in 0..PANEL {
                let want = acc[l] + (0..rows).map(|r| level(r) * i32::from(w(r, l))).sum::<i32>();
                assert_eq!(got[l], want, "rows {rows}, column {l}");
            }
        }
    }

    #[test]
    fn the_int8_panel_product_is_the_exact_integer_sum() {
        if !has_avx512_vnni() {
            eprintln!("skipped: no AVX-512 VNNI on this CPU");
            return;
        }
        // Unsigned bytes, 128 the zero level.
        check_int8_product(|r| ((r * 71 + 13) % 256) as i32, 128, panel_product_avx512_int8);
    }

    /// Whether this CPU runs the AVX2 kernels.
    fn has_avx2() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    #[test]
    fn activations_quantise_to_the_nearest_of_255_signed_levels() {
        if !has_avx2() {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        // Runs of 32 go through vectors, the rest one by one: both, and
        // their seam.
        for n in [1usize, 3, 4, 5, 31, 32, 33, 64, 100, 130, 640] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 29 % 13) as f32 - 6.0) * 0.377).collect();
            let mut quads = vec![0xFFFF_FFFFu32; n.div_ceil(4) + 1];
            let guard = 0xDEAD_BEEF;
            quads[n.div_ceil(4)] = guard;
            // SAFETY: checked above; quads holds the rows.
            let step = unsafe { quantise_activations_signed(&x, &mut quads) };
            let largest = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!((step - largest / 127.0).abs() < 1e-7, "{n}: step {step}");
            let bytes: Vec<i8> = quads
                .iter()
                .flat_map(|q| q.to_le_bytes())
                .map(|b| b as i8)
                .collect();
            for (i, &v) in x.iter().enumerate() {
                let level = i32::from(bytes[i]);
                assert!(level.abs() <= 127);
                assert!(
                    (level as f32 * step - v).abs() <= step * 0.5 + 1e-6,
                    "{n}, row {i}: {level} for {v}"
                );
            }
            // The largest magnitude is a whole level: the range is used.
            assert!(bytes[..n].iter().any(|&b| b.unsigned_abs() == 127), "{n}");
            assert!(
                bytes[n..n.div_ceil(4) * 4].iter().all(|&b| b == 0),
                "padding of {n}"
            );
            assert_eq!(quads[n.div_ceil(4)], guard, "wrote past the rows");
        }
        let mut quads = [7u32; 2];
        // SAFETY: checked above.
        assert_eq!(unsafe { quantise_activations_signed(&[0.0; 5], &mut quads) }, 0.0);
        assert_eq!(quads, [0; 2]);
    }

    #[test]
    fn the_avx2_int8_panel_product_is_the_exact_integer_sum() {
        if !has_avx2() {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        // Every level of both signs, the extremes among them, where
        // vpmaddubsw's pair sums would saturate without the sign trick
        // (127 x 127 twice is near its limit, 255 x 127 twice is past).
        check_int8_product(|r| ((r * 71 + 13) % 255) as i32 - 127, 0, panel_product_avx2_int8);
        // The saturating corner itself: every pair at +-127 x +-127.
        let quads = [int8_quad([127, -127, 127, -127])];
        let panel: Vec<u32> = (0..PANEL).map(|_| int8_quad([127, -127, -127, 127])).collect();
        // SAFETY: checked above.
        let got = unsafe { panel_product_avx2_int8(&quads, &panel, [0; PANEL]) };
        assert_eq!(got, [0; PANEL]);
        let panel: Vec<u32> = (0..PANEL).map(|_| int8_quad([127, -127, 127, -127])).collect();
        // SAFETY: checked above.
        let got = unsafe { panel_product_avx2_int8(&quads, &panel, [0; PANEL]) };
        assert_eq!(got, [4 * 127 * 127; PANEL]);
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
