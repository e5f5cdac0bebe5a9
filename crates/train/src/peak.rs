//! Peak FLOP/s of the device, the denominator of MFU.
//!
//! CUDA: the dense bf16 (or TF32 for f32) tensor-core peak of the GPU model `nvidia-smi` names.
//! CPU: a nominal peak from `/proc/cpuinfo`, threads × clock × 2 FMA ports × SIMD lanes × 2
//! (lanes: 16 f32 with AVX-512, 8 with AVX2 + FMA, 4 otherwise; bf16 doubles them when the CPU
//! has AVX-512 BF16). `[train] peak_tflops` overrides both.

use inheritune_model::tch::{self, Device};
use inheritune_model::DType;

/// Dense peak FLOP/s for `dtype` on `device`, when it can be determined.
pub fn peak_flops(device: Device, dtype: DType) -> Option<f64> {
    match device {
        Device::Cuda(i) => gpu_peak(&gpu_name(i)?, dtype),
        _ => cpu_peak(
            &std::fs::read_to_string("/proc/cpuinfo").ok()?,
            tch::get_num_threads(),
            dtype,
        ),
    }
}

fn gpu_name(index: usize) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader", &format!("--id={index}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Dense tensor-core peaks (bf16, TF32) from the vendors' data sheets, SXM parts.
pub fn gpu_peak(name: &str, dtype: DType) -> Option<f64> {
    let (bf16, tf32) = [
        ("H200", 989.4e12, 494.7e12),
        ("H100 PCIe", 756.0e12, 378.0e12),
        ("H100", 989.4e12, 494.7e12),
        ("A100", 312.0e12, 156.0e12),
        ("L40S", 362.0e12, 183.0e12),
        ("A10", 125.0e12, 62.5e12),
    ]
    .into_iter()
    .find(|(k, ..)| name.contains(k))
    .map(|(_, b, t)| (b, t))?;
    Some(if dtype == DType::F32 { tf32 } else { bf16 })
}

/// The nominal CPU peak for `threads` threads from a `/proc/cpuinfo` text.
pub fn cpu_peak(cpuinfo: &str, threads: i32, dtype: DType) -> Option<f64> {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let mhz: f64 = field("cpu MHz")?.parse().ok()?;
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let mut lanes = if has("avx512f") {
        16.0
    } else if has("avx2") && has("fma") {
        8.0
    } else {
        4.0
    };
    if dtype != DType::F32 && has("avx512_bf16") {
        lanes *= 2.0;
    }
    Some(threads.max(1) as f64 * mhz * 1e6 * 2.0 * lanes * 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peaks_from_hand_derived_values() {
        let avx512 = "processor\t: 0\ncpu MHz\t\t: 2000.000\nflags\t\t: fpu avx2 fma avx512f avx512_bf16\n";
        // 2 threads × 2.0 GHz × 2 FMA ports × 16 lanes × 2 FLOPs = 256 GFLOP/s; bf16 doubles the lanes.
        assert_eq!(cpu_peak(avx512, 2, DType::F32), Some(256e9));
        assert_eq!(cpu_peak(avx512, 2, DType::Bf16), Some(512e9));
        let avx2 = "cpu MHz : 3000.0\nflags : sse avx2 fma\n";
        assert_eq!(cpu_peak(avx2, 1, DType::F32), Some(3e9 * 2.0 * 8.0 * 2.0));
        assert_eq!(cpu_peak("flags : avx2\n", 1, DType::F32), None, "no clock, no peak");
        assert_eq!(gpu_peak("NVIDIA H100 80GB HBM3", DType::Bf16), Some(989.4e12));
        assert_eq!(gpu_peak("NVIDIA H100 PCIe", DType::F32), Some(378.0e12));
        assert_eq!(gpu_peak("Tesla T4", DType::Bf16), None);
    }
}
