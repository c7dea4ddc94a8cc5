//! The WaveNet's training loss and its gradients, written out by hand.
//!
//! candle's autograd spends most of a WaveNet step outside the matrix
//! products: every narrow, concatenation and broadcast of the forward pass
//! becomes fresh full-size tensors in the backward one (zero padding for
//! each slice, a sum for each bias), and the gated activation alone is five
//! element-wise passes each way. Here one pass per layer does the gate, the
//! slices are offsets into one buffer, biases are summed as rows go by, and
//! every product runs straight on `gemm` (the kernels candle itself calls),
//! accumulating in place. The batch's sequences are shared out over
//! candle's thread count (`RAYON_NUM_THREADS`), each on one thread. The
//! arithmetic is the engine's forward pass
//! ([`WavenetNet::forward_with_predictions`] with [`Padding::Valid`], then
//! the mean cross-entropy, or the signal loss: see [`row_loss`]); the tests
//! check loss and gradients against candle's autograd of exactly that.
//!
//! [`Padding::Valid`]: reverie_engine::wavenet::Padding::Valid

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use reverie_engine::model_file::Layout;
use reverie_engine::mulaw::MuLaw;
use reverie_engine::wavenet::WavenetNet;

use super::chunks::{Batch, PowerTail};

/// A network's tensors as plain row-major `[in, out]` data.
type Data = WavenetNet<Vec<f32>>;

/// The mean loss (nats per scored sample; see [`row_loss`]) of `batch`'s
/// last `len` positions of every row, and its gradient for each of `vars` (the
/// network's trainable tensors, found by tensor id), as `loss.backward()`
/// of the candle forward pass would give.
pub(crate) fn loss_and_gradients(
    net: &WavenetNet,
    vars: &[Var],
    batch: &Batch,
    len: usize,
) -> Result<(f32, GradStore)> {
    let weights: Data = net.try_map(|_, _, t| t.flatten_all()?.to_vec1::<f32>())?;
    let inputs = batch.inputs.to_vec2::<u32>()?;
    let predictions = batch
        .predictions
        .iter()
        .map(|p| p.to_vec2::<u32>())
        .collect::<Result<Vec<_>>>()?;
    let targets = batch.targets.to_vec1::<u32>()?;
    let rows = inputs.len();
    let field = net.receptive_field();
    if rows == 0
        || len == 0
        || inputs.iter().any(|row| row.len() != field - 1 + len)
        || targets.len() != rows * len
        || batch.cells.as_ref().is_some_and(|c| c.len() != rows * len)
    {
        candle_core::bail!("a batch of {rows} rows does not hold {len} scored samples per row");
    }
    let dims = Dims::of(net)?;
    within_classes("input", inputs.iter().flatten(), dims.c)?;
    within_classes("prediction", predictions.iter().flatten().flatten(), dims.c)?;
    within_classes("target", &targets, dims.c)?;
    let mulaw = MuLaw::new(dims.c).ok_or_else(|| candle_core::Error::Msg(format!("{} classes", dims.c)))?;
    if let Some(cells) = &batch.cells {
        within_classes("audio", cells.iter().map(|(k, _)| k), dims.c)?;
    }
    let cells = batch.cells.as_deref();
    let scale = 1.0 / (rows * len) as f32;
    let threads = candle_core::utils::get_num_threads().clamp(1, rows);
    let zero: Data = weights.map(|_, _, w| vec![0.0f32; w.len()]);
    let parts: Vec<(f64, Data)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let (weights, inputs, predictions, targets, zero, tails) =
                    (&weights, &inputs, &predictions, &targets, &zero, &batch.tails);
                let power_weight = batch.power_weight;
                s.spawn(move || {
                    let mut grads = zero.clone();
                    let mut loss = 0.0;
                    for b in (k..rows).step_by(threads) {
                        let preds: Vec<&[u32]> = predictions.iter().map(|p| p[b].as_slice()).collect();
                        let item = Item {
                            inputs: &inputs[b],
                            predictions: &preds,
                            targets: &targets[b * len..(b + 1) * len],
                            cells: cells.map(|c| (mulaw, &c[b * len..(b + 1) * len])),
                            tail: tails
                                .get(b)
                                .and_then(Option::as_ref)
                                .map(|t| (t, power_weight, mulaw)),
                        };
                        loss += sequence(weights, dims, item, scale, &mut grads);
                    }
                    (loss, grads)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut parts = parts.into_iter();
    let (mut loss, mut total) = parts.next().expect("at least one thread");
    for (l, g) in parts {
        loss += l;
        total = sum_data(&total, &g);
    }
    let mut store = GradStore::default();
    let named = net.named();
    let grads = total.named();
    for ((_, _, tensor), (_, _, grad)) in named.iter().zip(grads) {
        if let Some(var) = vars.iter().find(|v| v.as_tensor().id() == tensor.id()) {
            store.insert(
                var.as_tensor(),
                Tensor::from_vec(grad.clone(), tensor.shape(), tensor.device())?,
            );
        }
    }
    Ok(((loss * f64::from(scale)) as f32, store))
}

/// An error naming the first of `classes` that is not below `count`.
fn within_classes<'a>(what: &str, classes: impl IntoIterator<Item = &'a u32>, count: usize) -> Result<()> {
    match classes.into_iter().find(|&&k| k as usize >= count) {
        Some(bad) => candle_core::bail!("{what} class {bad} is outside the model's {count} classes"),
        None => Ok(()),
    }
}

/// `a + b`, tensor by tensor.
fn sum_data(a: &Data, b: &Data) -> Data {
    let mut parts = b.named().into_iter();
    a.map(|_, _, x| {
        let (_, _, y) = parts.next().expect("the same layout");
        x.iter().zip(y).map(|(x, y)| x + y).collect()
    })
}

/// Channel counts.
#[derive(Clone, Copy)]
struct Dims {
    r: usize,
    d: usize,
    s: usize,
    c: usize,
}

impl Dims {
    fn of(net: &WavenetNet) -> Result<Self> {
        let (c, r) = net.embedding.dims2()?;
        let (s, c2) = net.head2_w.dims2()?;
        let d = net
            .layers
            .first()
            .map(|l| l.skip_w.dims2())
            .transpose()?
            .map_or(0, |(d, _)| d);
        if c2 != c || d == 0 {
            candle_core::bail!("a WaveNet without layers or with mismatched classes");
        }
        Ok(Self { r, d, s, c })
    }
}

/// One row of the batch.
struct Item<'a> {
    inputs: &'a [u32],
    predictions: &'a [&'a [u32]],
    targets: &'a [u32],
    /// With the signal loss: the audio classes and cell shifts.
    cells: Option<(MuLaw, &'a [(u32, f32)])>,
    /// A free-running stretch scored by its power, with that score's
    /// weight and the classes' coding.
    tail: Option<(&'a PowerTail, f32, MuLaw)>,
}

/// The summed loss of one sequence; its gradients (times `scale`) are added
/// to `g`.
fn sequence(w: &Data, dims: Dims, item: Item<'_>, scale: f32, g: &mut Data) -> f64 {
    let Dims { r, d, s, c } = dims;
    let len = item.targets.len();
    let t0 = item.inputs.len();

    // Forward, keeping what the backward pass needs: each layer's input,
    // its tanh and sigmoid values, and its gated activation.
    let mut h = vec![0.0f32; t0 * r];
    for (t, row) in h.chunks_exact_mut(r).enumerate() {
        row.copy_from_slice(&w.embedding[item.inputs[t] as usize * r..][..r]);
        for (e, p) in w.prediction_embeddings.iter().zip(item.predictions) {
            add(row, &e[p[t] as usize * r..][..r]);
        }
    }
    let mut skip_bias = vec![0.0f32; s];
    for layer in &w.layers {
        add(&mut skip_bias, &layer.skip_b);
    }
    let mut skip = repeat_rows(&skip_bias, len);
    let mut saved: Vec<Saved> = Vec::with_capacity(w.layers.len());
    for layer in &w.layers {
        let t = h.len() / r;
        let t1 = t - layer.dilation;
        let (past, now) = layer.filter_gate_w.split_at(r * 2 * d);
        let hv = View::rows_of(&h, r);
        let mut gates = affine(hv.rows(0, t1), past, &layer.filter_gate_b);
        matmul(
            &mut gates,
            hv.rows(layer.dilation, t1),
            View::rows_of(now, 2 * d),
            true,
        );
        let mut act = vec![0.0f32; t1 * d];
        for (z, a) in gates.chunks_exact_mut(2 * d).zip(act.chunks_exact_mut(d)) {
            let (f, gt) = z.split_at_mut(d);
            for ((f, gt), a) in f.iter_mut().zip(gt).zip(a) {
                *f = tanh(*f);
                *gt = sigmoid(*gt);
                *a = *f * *gt;
            }
        }
        let av = View::rows_of(&act, d);
        matmul(
            &mut skip,
            av.rows(t1 - len, len),
            View::rows_of(&layer.skip_w, s),
            true,
        );
        let next = match &layer.residual {
            Some((rw, rb)) => {
                let mut next = h[layer.dilation * r..].to_vec();
                for row in next.chunks_exact_mut(r) {
                    add(row, rb);
                }
                matmul(&mut next, av, View::rows_of(rw, r), true);
                next
            }
            None => Vec::new(),
        };
        saved.push(Saved {
            input: std::mem::replace(&mut h, next),
            gates,
            act,
        });
    }
    relu(&mut skip);
    let mut hidden = affine(View::rows_of(&skip, s), &w.head1_w, &w.head1_b);
    relu(&mut hidden);
    let mut logits = affine(View::rows_of(&hidden, s), &w.head2_w, &w.head2_b);

    // The logits become their gradient.
    let mut loss = 0.0f64;
    let mut shares = Vec::new();
    let first = item.tail.map_or(len, |(tail, ..)| tail.first.min(len));
    if let Some((tail, weight, mulaw)) = item.tail {
        // Weighed per row, as the scored samples are per sample.
        let row_scale = weight * scale * len as f32;
        loss += f64::from(weight) * len as f64 * power_tail(&mut logits[first * c..], tail, mulaw, row_scale);
    }
    for (t, (row, &target)) in logits
        .chunks_exact_mut(c)
        .zip(item.targets)
        .enumerate()
        .take(first)
    {
        let target = match item.cells {
            Some((mulaw, cells)) => Target::Cell {
                mulaw,
                class: cells[t].0 as usize,
                shift: f64::from(cells[t].1),
            },
            None => Target::Class(target as usize),
        };
        loss += row_loss(row, target, scale, &mut shares);
    }

    // The head, backwards.
    let mut dhidden = affine_backward(
        View::rows_of(&hidden, s),
        &w.head2_w,
        &logits,
        (&mut g.head2_w, &mut g.head2_b),
    );
    mask_by_positive(&mut dhidden, &hidden);
    let mut dskip = affine_backward(
        View::rows_of(&skip, s),
        &w.head1_w,
        &dhidden,
        (&mut g.head1_w, &mut g.head1_b),
    );
    mask_by_positive(&mut dskip, &skip);
    let mut dskip_bias = vec![0.0f32; s];
    add_column_sums(&mut dskip_bias, &dskip);
    let dskip = View::rows_of(&dskip, s);

    // The layers, last first; `dnext` is the gradient of the layer's
    // output (none for the last, whose output feeds nothing).
    let mut dnext: Option<Vec<f32>> = None;
    for (layer, gl) in w.layers.iter().zip(g.layers.iter_mut()).rev() {
        let Saved {
            input,
            mut gates,
            act,
        } = saved.pop().expect("one saved entry per layer");
        let t = input.len() / r;
        let t1 = t - layer.dilation;
        add(&mut gl.skip_b, &dskip_bias);
        let av = View::rows_of(&act, d);
        let mut dact = vec![0.0f32; t1 * d];
        matmul(
            &mut dact[(t1 - len) * d..],
            dskip,
            View::rows_of(&layer.skip_w, s).t(),
            false,
        );
        matmul(&mut gl.skip_w, av.rows(t1 - len, len).t(), dskip, true);
        if let (Some(dn), Some((rw, _)), Some((grw, grb))) = (&dnext, &layer.residual, &mut gl.residual) {
            let dnv = View::rows_of(dn, r);
            matmul(&mut dact, dnv, View::rows_of(rw, r).t(), true);
            matmul(grw, av.t(), dnv, true);
            add_column_sums(grb, dn);
        }
        drop(act);
        // d tanh = 1 - tanh^2, d sigmoid = sigmoid (1 - sigmoid).
        for (z, da) in gates.chunks_exact_mut(2 * d).zip(dact.chunks_exact(d)) {
            let (f, gt) = z.split_at_mut(d);
            for ((f, gt), &da) in f.iter_mut().zip(gt).zip(da) {
                let (th, sg) = (*f, *gt);
                *f = da * sg * (1.0 - th * th);
                *gt = da * th * sg * (1.0 - sg);
            }
        }
        add_column_sums(&mut gl.filter_gate_b, &gates);
        let dz = View::rows_of(&gates, 2 * d);
        let hv = View::rows_of(&input, r);
        let (gtop, gbottom) = gl.filter_gate_w.split_at_mut(r * 2 * d);
        matmul(gtop, hv.rows(0, t1).t(), dz, true);
        matmul(gbottom, hv.rows(layer.dilation, t1).t(), dz, true);
        let fg = View::rows_of(&layer.filter_gate_w, 2 * d);
        let mut dinput = vec![0.0f32; t * r];
        if let Some(dn) = &dnext {
            // The residual path: the current input passes straight on.
            dinput[layer.dilation * r..].copy_from_slice(dn);
        }
        matmul(&mut dinput[..t1 * r], dz, fg.rows(0, r).t(), true);
        matmul(&mut dinput[layer.dilation * r..], dz, fg.rows(r, r).t(), true);
        dnext = Some(dinput);
    }
    if let Some(dinput) = dnext {
        for (t, row) in dinput.chunks_exact(r).enumerate() {
            add(&mut g.embedding[item.inputs[t] as usize * r..][..r], row);
            for (e, p) in g.prediction_embeddings.iter_mut().zip(item.predictions) {
                add(&mut e[p[t] as usize * r..][..r], row);
            }
        }
    }
    loss
}

/// What one layer's forward pass leaves for its backward pass.
struct Saved {
    /// The layer's input, `[t, r]`.
    input: Vec<f32>,
    /// `tanh` of the filter and `sigmoid` of the gate, `[t - dilation, 2d]`.
    gates: Vec<f32>,
    /// Their product, `[t - dilation, d]`.
    act: Vec<f32>,
}

/// A matrix inside a slice: element `(i, j)` at `offset + i * rs + j * cs`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// `data` as row-major rows of `cols`.
    fn rows_of(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            offset: 0,
            rows: data.len() / cols,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// Rows `first..first + n` (of a row-major view).
    fn rows(self, first: usize, n: usize) -> Self {
        assert!(
            first + n <= self.rows,
            "rows {first}..{} of {}",
            first + n,
            self.rows
        );
        Self {
            offset: self.offset + first * self.rs,
            rows: n,
            ..self
        }
    }

    /// The transpose (no copy).
    fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element lies inside the slice.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || self.offset + (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (+)= lhs * rhs` with `dst` row-major `[lhs.rows, rhs.cols]`: added
/// to what is there when `accumulate`, written over it otherwise.
fn matmul(dst: &mut [f32], lhs: View<'_>, rhs: View<'_>, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(rhs.rows == k, "a [{m}, {k}] x [{}, {n}] product", rhs.rows);
    assert!(
        dst.len() == m * n,
        "a [{m}, {n}] product into {} values",
        dst.len()
    );
    assert!(
        lhs.in_bounds() && rhs.in_bounds(),
        "a product reads outside its data"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above keep every index gemm forms for the three
    // matrices (row and column strides within the checked extents) inside
    // the slices, and `dst` is borrowed mutably, so nothing else aliases it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// `x w + b` for the rows of `x`, with `w` row-major `[x.cols, b.len()]`.
fn affine(x: View<'_>, w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = repeat_rows(b, x.rows);
    matmul(&mut y, x, View::rows_of(w, b.len()), true);
    y
}

/// The backward pass of [`affine`] for the gradient `dy` of its output:
/// adds `x^T dy` and the column sums of `dy` to the gradients `(gw, gb)`,
/// and returns the gradient of `x`, `dy w^T`.
fn affine_backward(x: View<'_>, w: &[f32], dy: &[f32], (gw, gb): (&mut [f32], &mut [f32])) -> Vec<f32> {
    let dyv = View::rows_of(dy, gb.len());
    matmul(gw, x.t(), dyv, true);
    add_column_sums(gb, dy);
    let mut dx = vec![0.0f32; x.rows * x.cols];
    matmul(&mut dx, dyv, View::rows_of(w, gb.len()).t(), false);
    dx
}

/// `n` copies of `row`, one after another.
fn repeat_rows(row: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(row.len() * n);
    for _ in 0..n {
        out.extend_from_slice(row);
    }
    out
}

fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Adds the column sums of the row-major `m` (rows as long as `dst`).
fn add_column_sums(dst: &mut [f32], m: &[f32]) {
    let mut sums = vec![0.0f32; dst.len()];
    for row in m.chunks_exact(dst.len()) {
        add(&mut sums, row);
    }
    add(dst, &sums);
}

fn relu(x: &mut [f32]) {
    for v in x {
        *v = v.max(0.0);
    }
}

/// Zeroes the gradient where the ReLU's output was not positive.
fn mask_by_positive(grad: &mut [f32], out: &[f32]) {
    for (g, &o) in grad.iter_mut().zip(out) {
        if o <= 0.0 {
            *g = 0.0;
        }
    }
}

/// `tanh` through one `exp` (the library's `tanhf` costs several times
/// more, and this loop runs on every gate of every step); within 1e-7 of
/// it, clamped where `exp` would overflow.
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / ((2.0 * x.min(40.0)).exp() + 1.0)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// What one scored position is scored against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// Cross-entropy of this output class.
    Class(usize),
    /// The signal loss: `-ln` of the probability that the audio falls in
    /// the µ-law cell of `class`, each output class's probability spread
    /// over its cell moved by `shift`
    /// ([`reverie_engine::signal_coding::SignalCoding::signal_nll`], the
    /// measure `cargo xtask nll` reports). For a residual target the
    /// network is then not asked which of the many fine residual cells
    /// inside one audio cell the sample took, a choice the audio never
    /// hears and the network, which sees the prediction only as a class,
    /// cannot know.
    Cell {
        /// The coding's quantiser.
        mulaw: MuLaw,
        /// The audio's class.
        class: usize,
        /// How far the output cells move to the audio.
        shift: f64,
    },
}

/// The loss of one row of `logits` (nats), which becomes the loss's
/// gradient times `scale`: the softmax minus the target distribution (a
/// one-hot class, or the softmax restricted to the cell's classes, weighted
/// by their shares and renormalised). `shares` is scratch.
pub(crate) fn row_loss(row: &mut [f32], target: Target, scale: f32, shares: &mut Vec<(usize, f64)>) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    // In log space: after a history of the model's own (free-running rows)
    // the target can be so unlikely that its exponential underflows.
    let target_logit = match target {
        Target::Class(k) => row[k] - max,
        Target::Cell { .. } => 0.0,
    };
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    match target {
        Target::Class(target) => {
            let loss = f64::from(sum.ln() - target_logit);
            let norm = scale / sum;
            for v in row.iter_mut() {
                *v *= norm;
            }
            row[target] -= scale;
            loss
        }
        Target::Cell { mulaw, class, shift } => {
            shares.clear();
            mulaw.overlapping_cells(class, shift, |j, share| shares.push((j, share)));
            let mass: f64 = shares.iter().map(|&(j, w)| w * f64::from(row[j])).sum();
            let whole: f64 = shares.iter().map(|&(_, w)| w).sum();
            // As signal_nll: a floor keeps an underflowed mass finite.
            let loss = -((mass / f64::from(sum)).max(1e-30).ln());
            for (j, w) in shares.iter_mut() {
                // The target's share of class j; where every class of the
                // cell underflowed, the cell's shares themselves.
                *w = if mass > 0.0 {
                    *w * f64::from(row[*j]) / mass
                } else {
                    *w / whole.max(f64::MIN_POSITIVE)
                };
            }
            let norm = scale / sum;
            for v in row.iter_mut() {
                *v *= norm;
            }
            for &(j, q) in shares.iter() {
                row[j] -= (q * f64::from(scale)) as f32;
            }
            loss
        }
    }
}

/// The power score of a free-running stretch: with `logits` the rows of
/// its positions, `(ln(M + eps) - ln(R + eps))^2`, where `M` is the mean
/// over them of the squared audio the model expects next (each output
/// class's µ-law value moved by the position's shift, clipped to full
/// scale as the audio is) and `R` the recording's mean square there. The
/// logits become its gradient times `scale`. Sample by sample, the
/// recording after a history of the model's own is far out of reach and
/// its likelihood only widens the distribution (hiss, models/README); how
/// loud the recording went on is in reach, and says whether the model's
/// own continuation ran away or died.
pub(crate) fn power_tail(logits: &mut [f32], tail: &PowerTail, mulaw: MuLaw, scale: f32) -> f64 {
    const EPS: f64 = 1e-6;
    let c = mulaw.classes();
    let n = (logits.len() / c).min(tail.shifts.len());
    if n == 0 {
        return 0.0;
    }
    let values: Vec<f64> = (0..c).map(|j| f64::from(mulaw.decode(j))).collect();
    let mut expected = Vec::with_capacity(n);
    for (row, &shift) in logits.chunks_exact_mut(c).zip(&tail.shifts) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f64;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += f64::from(*v);
        }
        let mut e = 0.0f64;
        for (v, &x) in row.iter_mut().zip(&values) {
            *v = (f64::from(*v) / sum) as f32;
            let a = (x + f64::from(shift)).clamp(-1.0, 1.0);
            e += f64::from(*v) * a * a;
        }
        expected.push(e);
    }
    let mean = expected.iter().sum::<f64>() / n as f64;
    let diff = (mean + EPS).ln() - (f64::from(tail.power) + EPS).ln();
    let coef = 2.0 * diff / (mean + EPS) / n as f64 * f64::from(scale);
    for ((row, &shift), &e) in logits.chunks_exact_mut(c).zip(&tail.shifts).zip(&expected) {
        for (v, &x) in row.iter_mut().zip(&values) {
            let a = (x + f64::from(shift)).clamp(-1.0, 1.0);
            *v = (coef * f64::from(*v) * (a * a - e)) as f32;
        }
    }
    // Rows past the shifts (none when the tail was built for this row).
    for v in logits[n * c..].iter_mut() {
        *v = 0.0;
    }
    diff * diff
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand::{Rng, SeedableRng};
    use reverie_engine::predictor::PredictorConfig;
    use reverie_engine::wavenet::WavenetConfig;

    /// A random network (biases and prediction embeddings included, so
    /// every gradient is exercised) as trainable variables.
    fn random_net(config: &WavenetConfig, seed: u64) -> (WavenetNet, Vec<Var>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut vars = Vec::new();
        let net = config
            .shapes()
            .try_map(|_, _, shape| -> Result<Tensor> {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n).map(|_| rng.random_range(-0.6..0.6)).collect();
                let var = Var::from_tensor(&Tensor::from_vec(values, shape.as_slice(), &Device::Cpu)?)?;
                let t = var.as_tensor().clone();
                vars.push(var);
                Ok(t)
            })
            .unwrap();
        (net, vars)
    }

    fn random_batch(net: &WavenetNet, rows: usize, len: usize, seed: u64) -> Batch {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let classes = net.embedding.dim(0).unwrap() as u32;
        let width = net.receptive_field() - 1 + len;
        let mut draw = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..classes)).collect() };
        let inputs = Tensor::from_vec(draw(rows * width), (rows, width), &Device::Cpu).unwrap();
        let predictions = (0..net.prediction_embeddings.len())
            .map(|_| Tensor::from_vec(draw(rows * width), (rows, width), &Device::Cpu).unwrap())
            .collect();
        let targets = Tensor::from_vec(draw(rows * len), rows * len, &Device::Cpu).unwrap();
        Batch {
            inputs,
            predictions,
            targets,
            cells: None,
            tails: Vec::new(),
            power_weight: 0.0,
        }
    }

    /// Random audio classes with shifts of up to a quarter of full scale,
    /// as a residual target's predictions move the cells.
    fn random_cells(batch: &mut Batch, classes: usize, seed: u64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = batch.targets.elem_count();
        batch.cells = Some(
            (0..n)
                .map(|_| {
                    (
                        rng.random_range(0..classes as u32),
                        rng.random_range(-0.25f32..0.25),
                    )
                })
                .collect(),
        );
    }

    /// The signal loss in candle's arithmetic: `-ln sum_j w_j softmax_j`,
    /// the shares `w` as a dense matrix, averaged over the rows.
    fn candle_signal_loss(net: &WavenetNet, batch: &Batch, len: usize) -> Tensor {
        let logits = super::super::scored_logits(net, batch, len).unwrap();
        let (rows, classes) = logits.dims2().unwrap();
        let mulaw = MuLaw::new(classes).unwrap();
        let mut shares = vec![0.0f32; rows * classes];
        for (r, &(k, shift)) in batch.cells.as_ref().unwrap().iter().enumerate() {
            mulaw.overlapping_cells(k as usize, f64::from(shift), |j, w| {
                shares[r * classes + j] = w as f32
            });
        }
        let shares = Tensor::from_vec(shares, (rows, classes), &Device::Cpu).unwrap();
        let p = candle_nn::ops::log_softmax(&logits, 1).unwrap().exp().unwrap();
        (p * shares)
            .unwrap()
            .sum(1)
            .unwrap()
            .log()
            .unwrap()
            .neg()
            .unwrap()
            .mean_all()
            .unwrap()
    }

    fn values(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Loss and every gradient agree with candle's autograd of the
    /// engine's forward pass and the mean cross-entropy (or, with
    /// `signal`, the signal loss).
    fn matches_autograd(config: WavenetConfig, rows: usize, len: usize, seed: u64) {
        matches_autograd_of(config, (rows, len), seed, false);
    }

    fn matches_autograd_of(config: WavenetConfig, (rows, len): (usize, usize), seed: u64, signal: bool) {
        let (net, vars) = random_net(&config, seed);
        let mut batch = random_batch(&net, rows, len, seed + 100);
        let reference = if signal {
            random_cells(&mut batch, config.classes, seed + 200);
            candle_signal_loss(&net, &batch, len)
        } else {
            super::super::cross_entropy(&net, &batch, len).unwrap()
        };
        let reference_grads = reference.backward().unwrap();
        let (loss, grads) = loss_and_gradients(&net, &vars, &batch, len).unwrap();
        let want = reference.to_scalar::<f32>().unwrap();
        assert!(
            (loss - want).abs() <= 1e-5 * want.abs(),
            "loss {loss} against autograd's {want}"
        );
        for ((name, _, _), var) in net.named().into_iter().zip(&vars) {
            let want = values(reference_grads.get(var.as_tensor()).unwrap());
            let got = values(
                grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("no gradient for {name}")),
            );
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            assert!(
                scale > 0.0,
                "{name}: autograd's gradient is zero, the test would prove nothing"
            );
            let worst = got
                .iter()
                .zip(&want)
                .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{name}: off by {worst} where the gradient reaches {scale}"
            );
        }
    }

    fn small(dilations: Vec<usize>, predictor: Option<PredictorConfig>) -> WavenetConfig {
        WavenetConfig {
            dilations,
            residual_channels: 4,
            dilation_channels: 5,
            skip_channels: 6,
            classes: 16,
            predictor,
            ..WavenetConfig::default()
        }
    }

    #[test]
    fn plain_network_matches_autograd() {
        matches_autograd(small(vec![1, 2, 4, 1, 3], None), 3, 7, 1);
    }

    #[test]
    fn prediction_inputs_match_autograd() {
        let both = PredictorConfig::for_rate(8_000);
        let short = PredictorConfig {
            long_term: false,
            ..both
        };
        matches_autograd(small(vec![2, 1, 8], Some(both)), 2, 5, 2);
        matches_autograd(small(vec![1, 4], Some(short)), 4, 9, 3);
    }

    #[test]
    fn one_layer_and_one_scored_sample_match_autograd() {
        matches_autograd(small(vec![3], None), 1, 1, 4);
    }

    #[test]
    fn signal_loss_matches_autograd() {
        let both = PredictorConfig::for_rate(8_000);
        matches_autograd_of(small(vec![1, 2, 4], Some(both)), (3, 6), 7, true);
        matches_autograd_of(small(vec![2], None), (1, 1), 8, true);
    }

    #[test]
    fn signal_loss_is_the_engines_signal_nll() {
        use reverie_engine::signal_coding::SignalCoding;
        let config = WavenetConfig {
            residual_target: true,
            predictor: Some(PredictorConfig::for_rate(16_000)),
            ..WavenetConfig::default()
        };
        let mulaw = MuLaw::default();
        let coding = SignalCoding::new(&config, mulaw);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let mut shares = Vec::new();
        let mut spread = 0usize;
        for _ in 0..200 {
            let logits: Vec<f32> = (0..256).map(|_| rng.random_range(-4.0f32..4.0)).collect();
            let x = rng.random_range(-0.9f32..0.9);
            // Predictions near the sample, as a good predictor's are.
            let p = x + rng.random_range(-0.05f32..0.05);
            let want = coding.signal_nll(&logits, x, p);
            let target = Target::Cell {
                mulaw,
                class: mulaw.encode(x),
                shift: coding.cell_shift(p),
            };
            let mut row = logits.clone();
            let got = row_loss(&mut row, target, 1.0, &mut shares);
            assert!(
                (got - f64::from(want)).abs() <= 1e-4 * f64::from(want),
                "{got} against {want}"
            );
            // The gradient is the softmax minus a distribution: it sums to 0.
            let total: f32 = row.iter().sum();
            assert!(total.abs() < 1e-5, "{total}");
            spread = spread.max(shares.len());
        }
        // Loud cells hold many fine residual cells: the loss is not one class's.
        assert!(spread > 10, "{spread}");
    }

    #[test]
    fn unshifted_cells_score_as_the_cross_entropy() {
        let mulaw = MuLaw::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
        let mut shares = Vec::new();
        for class in [0, 3, 127, 128, 200, 255] {
            let logits: Vec<f32> = (0..256).map(|_| rng.random_range(-4.0f32..4.0)).collect();
            let (mut a, mut b) = (logits.clone(), logits);
            let ce = row_loss(&mut a, Target::Class(class), 0.5, &mut shares);
            let cell = row_loss(
                &mut b,
                Target::Cell {
                    mulaw,
                    class,
                    shift: 0.0,
                },
                0.5,
                &mut shares,
            );
            assert!((ce - cell).abs() < 1e-5, "{class}: {ce} against {cell}");
            let worst = a.iter().zip(&b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(worst < 1e-6, "{class}: gradients differ by {worst}");
        }
    }

    /// A target far below the likeliest class (its exponential underflows,
    /// as after a free-running history) still scores its finite distance,
    /// with the softmax minus one as its gradient.
    #[test]
    fn a_target_whose_probability_underflows_scores_finitely() {
        let mut row = vec![0.0f32; 8];
        row[2] = 150.0;
        row[5] = -60.0;
        let loss = row_loss(&mut row, Target::Class(5), 1.0, &mut Vec::new());
        assert!((loss - 210.0).abs() < 1e-3, "loss {loss}");
        assert!(
            (row[2] - 1.0).abs() < 1e-6 && (row[5] + 1.0).abs() < 1e-6,
            "{row:?}"
        );
    }

    /// The power score's gradient is its slope (central differences), it
    /// is zero where the expected power is the recording's, and it grows
    /// with how far the two are apart.
    #[test]
    fn the_power_score_has_its_slope_as_gradient() {
        let mulaw = MuLaw::new(16).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (n, c) = (3, 16);
        let logits: Vec<f32> = (0..n * c).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let tail = PowerTail {
            first: 0,
            shifts: (0..n).map(|_| rng.random_range(-0.2f32..0.2)).collect(),
            power: 0.05,
        };
        let mut grad = logits.clone();
        let loss = power_tail(&mut grad, &tail, mulaw, 1.0);
        assert!(loss > 0.01, "loss {loss}");
        for k in [0, 5, 17, 30, 47] {
            let h = 1e-2f32;
            let (mut up, mut down) = (logits.clone(), logits.clone());
            up[k] += h;
            down[k] -= h;
            let slope = (power_tail(&mut up, &tail, mulaw, 1.0) - power_tail(&mut down, &tail, mulaw, 1.0))
                / (2.0 * f64::from(h));
            assert!(
                (slope - f64::from(grad[k])).abs() < 1e-3 + 1e-2 * slope.abs(),
                "logit {k}: slope {slope}, gradient {}",
                grad[k]
            );
        }
        // Scored against the power it expects itself: nothing to learn.
        let mean: f64 = logits
            .chunks_exact(c)
            .zip(&tail.shifts)
            .map(|(row, &shift)| {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let w: Vec<f64> = row.iter().map(|&v| f64::from((v - max).exp())).collect();
                let total: f64 = w.iter().sum();
                w.iter()
                    .enumerate()
                    .map(|(k, &p)| {
                        let a = (f64::from(mulaw.decode(k)) + f64::from(shift)).clamp(-1.0, 1.0);
                        p / total * a * a
                    })
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n as f64;
        let own = PowerTail {
            power: mean as f32,
            ..tail.clone()
        };
        let mut at_own = logits.clone();
        assert!(power_tail(&mut at_own, &own, mulaw, 1.0) < 1e-9);
        assert!(at_own.iter().all(|g| g.abs() < 1e-4), "{at_own:?}");
        let mut probe = logits.clone();
        let far = PowerTail {
            power: 1e-4,
            ..tail.clone()
        };
        assert!(power_tail(&mut probe, &far, mulaw, 1.0) > loss);
    }

    #[test]
    fn a_class_outside_the_model_is_an_error() {
        let (net, vars) = random_net(&small(vec![1, 2], None), 5);
        let mut batch = random_batch(&net, 2, 3, 6);
        batch.targets = Tensor::from_vec(vec![0u32, 1, 2, 3, 4, 16], 6, &Device::Cpu).unwrap();
        let err = loss_and_gradients(&net, &vars, &batch, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("target class 16"), "{err}");
    }
}
