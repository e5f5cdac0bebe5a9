//! bf16 autocast through the shim: matmuls run in bf16 inside the region only, and a model's
//! logits under autocast stay close to its f32 logits.

use inheritune_model::tch::{Device, Kind, Tensor};
use inheritune_model::{autocast, CausalLm, DType, Preset};

#[test]
fn matmul_is_bf16_inside_the_region_only() {
    let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
    let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
    let inside = autocast(Device::Cpu, DType::Bf16, || a.matmul(&b)).unwrap();
    assert_eq!(inside.kind(), Kind::BFloat16);
    assert_eq!(a.matmul(&b).kind(), Kind::Float);
    // f32 is a pass-through.
    assert_eq!(
        autocast(Device::Cpu, DType::F32, || a.matmul(&b)).unwrap().kind(),
        Kind::Float
    );
    // Nested regions restore the outer state.
    let nested = autocast(Device::Cpu, DType::Bf16, || {
        let _ = autocast(Device::Cpu, DType::Bf16, || a.matmul(&b)).unwrap();
        a.matmul(&b)
    })
    .unwrap();
    assert_eq!(nested.kind(), Kind::BFloat16);
    assert_eq!(a.matmul(&b).kind(), Kind::Float);
}

#[test]
fn bf16_logits_track_f32_logits_and_weights_stay_f32() {
    let config = Preset::Gpt2Tiny.config();
    let model = CausalLm::new(&config, Device::Cpu, DType::F32).unwrap();
    let idx = Tensor::from_slice(&(0..32i64).map(|i| (i * 37) % 200).collect::<Vec<_>>()).view([2, 16]);
    let full = model.forward(&idx).unwrap();
    let mixed = autocast(Device::Cpu, DType::Bf16, || model.forward(&idx).unwrap()).unwrap();
    assert_eq!(mixed.kind(), Kind::BFloat16);
    let diff = (mixed.to_kind(Kind::Float) - &full).abs().max().double_value(&[]);
    let scale = full.abs().max().double_value(&[]);
    assert!(
        diff < 0.05 * scale.max(1.0),
        "bf16 logits differ by {diff} (scale {scale})"
    );
    assert!(diff > 0.0, "autocast changed nothing");
    assert!(model.named_parameters().values().all(|p| p.kind() == Kind::Float));
}

/// Under autocast the loss of bf16 logits is taken in f32 (ATen's fp32 op list), on CPU as on CUDA.
#[test]
fn cross_entropy_of_autocast_logits_is_f32() {
    let model = CausalLm::new(&Preset::Gpt2Tiny.config(), Device::Cpu, DType::F32).unwrap();
    let idx = Tensor::from_slice(&(0..32i64).map(|i| (i * 11) % 200).collect::<Vec<_>>()).view([2, 16]);
    let loss = autocast(Device::Cpu, DType::Bf16, || {
        let logits = model.forward(&idx).unwrap();
        assert_eq!(logits.kind(), Kind::BFloat16);
        logits.view([-1, 256]).cross_entropy_loss::<Tensor>(
            &idx.view([-1]),
            None,
            inheritune_model::tch::Reduction::Mean,
            -100,
            0.0,
        )
    })
    .unwrap();
    assert_eq!(loss.kind(), Kind::Float);
}
