//! The extern "C" functions of csrc/c10d.cpp, each wrapped to return `Result<_, String>`.
//! Without the shim (no `LIBTORCH` at build time) every call reports that.

use std::ffi::{c_char, c_int, c_void, CStr};

/// An owned pointer from the shim.
pub struct Handle(pub *mut c_void);

#[cfg(c10d_shim)]
mod ffi {
    use super::*;
    extern "C" {
        pub fn idist_last_error() -> *const c_char;
        pub fn idist_has_nccl() -> c_int;
        #[allow(clippy::too_many_arguments)]
        pub fn idist_init(
            rank: c_int,
            world: c_int,
            addr: *const c_char,
            port: c_int,
            serve_store: c_int,
            prefix: *const c_char,
            timeout_ms: i64,
            nccl: c_int,
            device: c_int,
        ) -> *mut c_void;
        pub fn idist_free(h: *mut c_void);
        pub fn idist_allreduce_sum(h: *mut c_void, t: *mut c_void) -> c_int;
        pub fn idist_allreduce_buckets(
            h: *mut c_void,
            ts: *const *mut c_void,
            n: c_int,
            bucket: i64,
            divisor: f64,
        ) -> c_int;
        pub fn idist_broadcast(h: *mut c_void, t: *mut c_void, root: c_int) -> c_int;
        pub fn idist_barrier(h: *mut c_void) -> c_int;
        pub fn idist_reducer_new(h: *mut c_void, ps: *const *mut c_void, n: c_int, bucket: i64) -> *mut c_void;
        pub fn idist_reducer_prepare(r: *mut c_void, outs: *const *mut c_void, n: c_int) -> c_int;
        pub fn idist_reducer_free(r: *mut c_void);
    }
}

#[cfg(c10d_shim)]
fn last_error() -> String {
    // SAFETY: the shim returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(ffi::idist_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(c10d_shim)]
fn check(rc: c_int) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

#[cfg(c10d_shim)]
fn count(n: usize) -> Result<c_int, String> {
    c_int::try_from(n).map_err(|_| format!("{n} tensors in one call"))
}

#[cfg(c10d_shim)]
mod imp {
    use super::*;

    pub fn has_nccl() -> bool {
        // SAFETY: no arguments.
        unsafe { ffi::idist_has_nccl() != 0 }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn init(
        rank: c_int,
        world: c_int,
        addr: &CStr,
        port: c_int,
        serve_store: bool,
        prefix: &CStr,
        timeout_ms: i64,
        nccl: bool,
        device: c_int,
    ) -> Result<Handle, String> {
        // SAFETY: the strings outlive the call; the shim copies them.
        let h = unsafe {
            ffi::idist_init(
                rank,
                world,
                addr.as_ptr(),
                port,
                serve_store as c_int,
                prefix.as_ptr(),
                timeout_ms,
                nccl as c_int,
                device,
            )
        };
        if h.is_null() {
            Err(last_error())
        } else {
            Ok(Handle(h))
        }
    }

    pub fn free(h: *mut c_void) {
        // SAFETY: `h` came from idist_init and is freed once (by Drop).
        unsafe { ffi::idist_free(h) }
    }

    pub fn all_reduce_sum(h: *mut c_void, t: *mut c_void) -> Result<(), String> {
        // SAFETY: `h` is a live group, `t` a live at::Tensor.
        check(unsafe { ffi::idist_allreduce_sum(h, t) })
    }

    pub fn all_reduce_buckets(h: *mut c_void, ts: &[*mut c_void], bucket: usize, divisor: f64) -> Result<(), String> {
        let n = count(ts.len())?;
        // SAFETY: `ts` holds `n` live at::Tensor pointers.
        check(unsafe { ffi::idist_allreduce_buckets(h, ts.as_ptr(), n, bucket as i64, divisor) })
    }

    pub fn broadcast(h: *mut c_void, t: *mut c_void, root: c_int) -> Result<(), String> {
        // SAFETY: as all_reduce_sum.
        check(unsafe { ffi::idist_broadcast(h, t, root) })
    }

    pub fn barrier(h: *mut c_void) -> Result<(), String> {
        // SAFETY: `h` is a live group.
        check(unsafe { ffi::idist_barrier(h) })
    }

    pub fn reducer_new(h: *mut c_void, ps: &[*mut c_void], bucket: usize) -> Result<Handle, String> {
        let n = count(ps.len())?;
        // SAFETY: `ps` holds `n` live at::Tensor pointers; the Reducer keeps its own references.
        let r = unsafe { ffi::idist_reducer_new(h, ps.as_ptr(), n, bucket as i64) };
        if r.is_null() {
            Err(last_error())
        } else {
            Ok(Handle(r))
        }
    }

    pub fn reducer_prepare(r: *mut c_void, outs: &[*mut c_void]) -> Result<(), String> {
        let n = count(outs.len())?;
        // SAFETY: `r` is a live Reducer, `outs` live tensors.
        check(unsafe { ffi::idist_reducer_prepare(r, outs.as_ptr(), n) })
    }

    pub fn reducer_free(r: *mut c_void) {
        // SAFETY: `r` came from idist_reducer_new and is freed once (by Drop).
        unsafe { ffi::idist_reducer_free(r) }
    }
}

#[cfg(not(c10d_shim))]
mod imp {
    use super::*;
    const NONE: &str = "this build has no c10d shim (it was built without LIBTORCH)";
    pub fn has_nccl() -> bool {
        false
    }
    #[allow(clippy::too_many_arguments)]
    pub fn init(
        _: c_int,
        _: c_int,
        _: &CStr,
        _: c_int,
        _: bool,
        _: &CStr,
        _: i64,
        _: bool,
        _: c_int,
    ) -> Result<Handle, String> {
        Err(NONE.into())
    }
    pub fn free(_: *mut c_void) {}
    pub fn all_reduce_sum(_: *mut c_void, _: *mut c_void) -> Result<(), String> {
        Err(NONE.into())
    }
    pub fn all_reduce_buckets(_: *mut c_void, _: &[*mut c_void], _: usize, _: f64) -> Result<(), String> {
        Err(NONE.into())
    }
    pub fn broadcast(_: *mut c_void, _: *mut c_void, _: c_int) -> Result<(), String> {
        Err(NONE.into())
    }
    pub fn barrier(_: *mut c_void) -> Result<(), String> {
        Err(NONE.into())
    }
    pub fn reducer_new(_: *mut c_void, _: &[*mut c_void], _: usize) -> Result<Handle, String> {
        Err(NONE.into())
    }
    pub fn reducer_prepare(_: *mut c_void, _: &[*mut c_void]) -> Result<(), String> {
        Err(NONE.into())
    }
    pub fn reducer_free(_: *mut c_void) {}
}

pub use imp::*;
