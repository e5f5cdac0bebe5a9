// Autocast and TF32 controls that tch 0.24 does not expose (it can enable CUDA autocast, but only
// in float16). Called from src/autocast.rs; every function is exception-safe.
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/stack.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/unpickler.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {
at::DeviceType device_type(int device) { return device == 1 ? at::kCUDA : at::kCPU; }

// tch hands tensors over as `at::Tensor*` (libtch's `tensor` type).
std::vector<at::Tensor> list(at::Tensor** ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}
}  // namespace

extern "C" {

// Enables or disables autocast for the device (0 = CPU, 1 = CUDA) with the given dtype
// (0 = bfloat16, 1 = float16) and returns whether it was enabled before, or -1 on error.
int inheritune_autocast_set(int device, int enabled, int dtype) {
  try {
    auto d = device_type(device);
    bool was = at::autocast::is_autocast_enabled(d);
    at::autocast::set_autocast_dtype(d, dtype == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(d, enabled != 0);
    return was ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// Enters (delta = 1) or leaves (delta = -1) an autocast region; leaving the outermost one clears
// the cache of casted weights, as torch.autocast's __exit__ does.
int inheritune_autocast_nesting(int delta) {
  try {
    if (delta > 0) return at::autocast::increment_nesting();
    int left = at::autocast::decrement_nesting();
    if (left == 0) at::autocast::clear_cache();
    return left;
  } catch (...) {
    return -1;
  }
}

// Lets float32 matmuls and convolutions use TF32 on CUDA (torch.backends.*.allow_tf32 = True).
int inheritune_allow_tf32(int allow) {
  try {
    at::globalContext().setAllowTF32CuBLAS(allow != 0);
    at::globalContext().setAllowTF32CuDNN(allow != 0);
    return 0;
  } catch (...) {
    return -1;
  }
}

// torch.optim.AdamW(fused=True) over one parameter group: `_fused_adamw_` with every parameter
// sharing one step tensor, which the caller has already incremented (as torch does).
int inheritune_fused_adamw(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs,
                           at::Tensor** exp_avg_sqs, int n, at::Tensor* step, double lr, double beta1,
                           double beta2, double weight_decay, double eps) {
  try {
    std::vector<at::Tensor> steps(n, *step);
    at::_fused_adamw_(list(params, n), list(grads, n), list(exp_avgs, n), list(exp_avg_sqs, n), {}, steps, lr,
                      beta1, beta2, weight_decay, eps, false, false);
    return 0;
  } catch (...) {
    return -1;
  }
}

// clip_grad_norm_(foreach=True): the global L2 norm of the gradients, written to *total (a new
// tensor the caller owns), and every gradient scaled by min(1, max_norm / (norm + 1e-6)) on the
// device, with no host synchronisation.
int inheritune_foreach_clip(at::Tensor** grads, int n, double max_norm, at::Tensor** total) {
  try {
    auto gs = list(grads, n);
    auto norms = at::_foreach_norm(gs, 2);
    auto t = at::linalg_vector_norm(at::stack(norms), 2);
    auto coef = (max_norm / (t + 1e-6)).clamp_max(1.0);
    at::_foreach_mul_(gs, coef);
    *total = new at::Tensor(t);
    return 0;
  } catch (...) {
    return -1;
  }
}

// optimizer.zero_grad(set_to_none=True): drops the gradients, so their memory is free during the
// next forward pass (tch's zero_grad fills them with zeros instead).
int inheritune_grads_to_none(at::Tensor** ts, int n) {
  try {
    for (int i = 0; i < n; ++i) ts[i]->mutable_grad() = at::Tensor();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Writes the first line of an exception's message into `err`; returns -1.
static int first_line(const std::exception& e, char* err, size_t err_len) {
  std::string m = e.what();
  m = m.substr(0, m.find('\n'));
  std::snprintf(err, err_len, "%s", m.c_str());
  return -1;
}

// The bytes of a torch.save file's `data.pkl`, handed to `bytes(ctx, ptr, len)`; 0, or -1 with
// a message in `err`.
int inheritune_read_pickle(const char* path, void (*bytes)(void*, const char*, size_t), void* ctx, char* err,
                           size_t err_len) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::string{path});
    auto [data, size] = reader.getRecord("data.pkl");
    bytes(ctx, static_cast<const char*>(data.get()), size);
    return 0;
  } catch (const std::exception& e) {
    return first_line(e, err, err_len);
  }
}

// Reads the state dict of a torch.save file with libtorch's own unpickler, as torch::pickle_load
// does, from `pickle` (the file's `data.pkl`, possibly rewritten by src/pickle.rs) and the
// file's tensor records. Calls `entry(ctx, key, new at::Tensor)` per tensor (the callee owns
// the tensor); returns 0, or -1 with a message in `err`.
int inheritune_load_state_dict(const char* path, const char* pickle_data, size_t pickle_len,
                               void (*entry)(void*, const char*, at::Tensor*), void* ctx, char* err, size_t err_len) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(std::string{path});
    std::string pickle(pickle_data, pickle_len);
    size_t pos = 0;
    auto read = [&](char* buf, size_t n) -> size_t {
      size_t k = std::min(n, pickle.size() - pos);
      std::memcpy(buf, pickle.data() + pos, k);
      pos += k;
      return k;
    };
    auto read_record = [&](const std::string& name) { return std::get<0>(reader.getRecord("data/" + name)); };
    torch::jit::Unpickler unpickler(read, nullptr, nullptr, read_record, c10::Device(c10::kCPU));
    unpickler.set_version(reader.version());
    auto value = unpickler.parse_ivalue();
    if (!value.isGenericDict()) {
      std::snprintf(err, err_len, "the pickle holds a %s, not a dict of tensors", value.tagKind().c_str());
      return -1;
    }
    for (const auto& item : value.toGenericDict()) {
      if (!item.key().isString() || !item.value().isTensor()) {
        std::snprintf(err, err_len, "an entry is not a (string, tensor) pair");
        return -1;
      }
      entry(ctx, item.key().toStringRef().c_str(), new at::Tensor(item.value().toTensor()));
    }
    return 0;
  } catch (const std::exception& e) {
    return first_line(e, err, err_len);
  }
}
}
