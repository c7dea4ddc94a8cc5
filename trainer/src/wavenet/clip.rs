//! Gradient clipping by the global norm.

use candle_core::backprop::GradStore;
use candle_core::Var;

/// The global L2 norm of the gradients of `vars` (those without a gradient
/// count as zero).
pub fn grad_norm(grads: &GradStore, vars: &[Var]) -> candle_core::Result<f64> {
    let mut sum = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sum += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    Ok(sum.sqrt())
}

/// Scales the gradients of `vars` so their global norm is at most
/// `max_norm` (0 or less: unchanged). Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> candle_core::Result<f64> {
    let norm = grad_norm(grads, vars)?;
    if max_norm > 0.0 && norm > max_norm {
        // The tiny margin keeps the clipped norm at or below the bound even
        // after f32 rounding of the scaled values.
        let scale = max_norm / norm * (1.0 - 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}
