//! Mixed precision like `torch.autocast`: f32 master weights, matmuls and attention in bf16 (or
//! f16), reductions and normalisations in f32, chosen per op by ATen's own autocast lists.
//!
//! tch can switch CUDA autocast on but only in float16, so the dtype is set through a small C++
//! shim (`csrc/autocast.cpp`) compiled against the same libtorch headers.

use tch::Device;

use crate::error::{Error, Result};
use crate::lm::DType;

#[cfg(autocast_shim)]
extern "C" {
    fn inheritune_autocast_set(device: i32, enabled: i32, dtype: i32) -> i32;
    fn inheritune_autocast_nesting(delta: i32) -> i32;
    fn inheritune_allow_tf32(allow: i32) -> i32;
}

fn device_code(device: Device) -> i32 {
    i32::from(matches!(device, Device::Cuda(_)))
}

/// Leaves the autocast region on drop (also when the closure panics).
struct Region {
    device: i32,
    was_enabled: bool,
}

impl Drop for Region {
    fn drop(&mut self) {
        #[cfg(autocast_shim)]
        unsafe {
            inheritune_autocast_nesting(-1);
            inheritune_autocast_set(self.device, i32::from(self.was_enabled), 0);
        }
        #[cfg(not(autocast_shim))]
        let _ = (self.device, self.was_enabled);
    }
}

/// Runs `f` with autocast to `dtype` on `device`; `DType::F32` runs it unchanged.
///
/// # Errors
/// The shim was not built (no `LIBTORCH` at build time) or ATen refused the setting.
pub fn autocast<T>(device: Device, dtype: DType, f: impl FnOnce() -> T) -> Result<T> {
    if dtype == DType::F32 {
        return Ok(f());
    }
    let code = device_code(device);
    #[cfg(autocast_shim)]
    let region = {
        let was = unsafe { inheritune_autocast_set(code, 1, i32::from(dtype == DType::F16)) };
        if was < 0 {
            return Err(Error::Unavailable(format!(
                "autocast to {} failed on {device:?}",
                dtype.hf_name()
            )));
        }
        unsafe { inheritune_autocast_nesting(1) };
        Region {
            device: code,
            was_enabled: was == 1,
        }
    };
    #[cfg(not(autocast_shim))]
    let region: Region = {
        let _ = code;
        return Err(Error::Unavailable(
            "mixed precision needs the autocast shim, which is built only when LIBTORCH is set".into(),
        ));
    };
    let out = f();
    drop(region);
    Ok(out)
}

/// Lets f32 matmuls use TF32 on CUDA (PyTorch's `allow_tf32 = True`); a no-op without the shim.
pub fn allow_tf32(allow: bool) {
    #[cfg(autocast_shim)]
    unsafe {
        inheritune_allow_tf32(i32::from(allow));
    }
    #[cfg(not(autocast_shim))]
    let _ = allow;
}
