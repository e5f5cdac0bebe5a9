//! PyTorch's multi-tensor optimizer kernels, which tch does not wrap: `_fused_adamw_` and the
//! foreach gradient clipping of `clip_grad_norm_(foreach=True)`. They run through the same C++
//! shim as [`crate::autocast()`]; the training loop uses them on CUDA, where one kernel per
//! parameter list instead of ten per parameter is what keeps the optimizer step cheap.

use std::ffi::c_void;

use tch::Tensor;

use crate::error::{Error, Result};

#[cfg(autocast_shim)]
extern "C" {
    fn inheritune_fused_adamw(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        n: i32,
        step: *mut c_void,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> i32;
    fn inheritune_grads_to_none(ts: *const *mut c_void, n: i32) -> i32;
    fn inheritune_foreach_clip(grads: *const *mut c_void, n: i32, max_norm: f64, total: *mut *mut c_void) -> i32;
}

fn ptrs(ts: &[&Tensor]) -> Vec<*mut c_void> {
    ts.iter().map(|t| t.as_ptr() as *mut c_void).collect()
}

fn unavailable(what: &str) -> Error {
    Error::Unavailable(format!(
        "{what} failed (or the shim was not built: LIBTORCH unset at build time)"
    ))
}

/// One fused AdamW update (torch's `_fused_adamw_`, the kernel of `AdamW(fused=True)`) of a
/// parameter group; `step` is a scalar f32 tensor on the parameters' device holding the step
/// number after this update (1 for the first).
///
/// # Errors
/// Mismatched list lengths, tensors the kernel rejects, or no shim.
#[allow(clippy::too_many_arguments)]
pub fn fused_adamw(
    params: &[&Tensor],
    grads: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    step: &Tensor,
    lr: f64,
    betas: (f64, f64),
    weight_decay: f64,
    eps: f64,
) -> Result<()> {
    let n = params.len();
    if grads.len() != n || exp_avgs.len() != n || exp_avg_sqs.len() != n {
        return Err(Error::Unavailable("fused_adamw: lists of different lengths".into()));
    }
    if n == 0 {
        return Ok(());
    }
    #[cfg(autocast_shim)]
    {
        let (p, g, m, v) = (ptrs(params), ptrs(grads), ptrs(exp_avgs), ptrs(exp_avg_sqs));
        let rc = unsafe {
            inheritune_fused_adamw(
                p.as_ptr(),
                g.as_ptr(),
                m.as_ptr(),
                v.as_ptr(),
                n as i32,
                step.as_ptr() as *mut c_void,
                lr,
                betas.0,
                betas.1,
                weight_decay,
                eps,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    #[cfg(not(autocast_shim))]
    let _ = (ptrs, step, lr, betas, weight_decay, eps);
    Err(unavailable("fused_adamw"))
}

/// Scales `grads` in place so their global L2 norm is at most `max_norm` and returns that norm
/// (before scaling) as a device scalar, without synchronising with the host.
///
/// # Errors
/// Tensors the kernels reject, or no shim.
pub fn foreach_clip(grads: &[&Tensor], max_norm: f64) -> Result<Tensor> {
    #[cfg(autocast_shim)]
    {
        let g = ptrs(grads);
        let mut total: *mut c_void = std::ptr::null_mut();
        let rc = unsafe { inheritune_foreach_clip(g.as_ptr(), g.len() as i32, max_norm, &mut total) };
        if rc == 0 && !total.is_null() {
            return Ok(unsafe { Tensor::from_ptr(total as *mut _) });
        }
    }
    #[cfg(not(autocast_shim))]
    let _ = (ptrs, grads, max_norm);
    Err(unavailable("foreach_clip"))
}

/// Drops the gradients of `params` (`zero_grad(set_to_none=True)`), falling back to zero-filling
/// them when the shim is missing.
pub fn grads_to_none(params: &mut [Tensor]) {
    #[cfg(autocast_shim)]
    {
        let refs: Vec<&Tensor> = params.iter().collect();
        let p = ptrs(&refs);
        if unsafe { inheritune_grads_to_none(p.as_ptr(), p.len() as i32) } == 0 {
            return;
        }
    }
    for t in params.iter_mut() {
        t.zero_grad();
    }
}
