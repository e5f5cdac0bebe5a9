// extern "C" face of PyTorch's c10d for inheritune-dist: a TCPStore rendezvous (prefixed per
// elastic attempt), ProcessGroupGloo for CPU tensors, ProcessGroupNCCL for CUDA tensors when
// compiled with USE_C10D_NCCL, flat-bucket gradient averaging, broadcast, barrier, and DDP's
// C++ Reducer for overlapping the all-reduce with backward.
//
// Conventions: tensors arrive as `at::Tensor*` (tch's C_tensor). Every call returns 0 (or a
// non-null handle) on success and -1 (or null) on failure, with a one-line message in
// idist_last_error() (thread-local). Rank discovery and validation happen in Rust.
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace {
thread_local std::string g_error;

struct Group {
  int rank = 0;
  int world = 1;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  c10::intrusive_ptr<c10d::Backend> gloo;
  c10::intrusive_ptr<c10d::Backend> nccl;
};

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

template <class F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    g_error = one_line(e.what_without_backtrace());
  } catch (const std::exception& e) {
    g_error = one_line(e.what());
  } catch (...) {
    g_error = "unknown C++ exception";
  }
  return -1;
}

c10d::Backend& backend(Group* g, const at::Tensor& t) {
  auto& b = t.is_cuda() ? g->nccl : g->gloo;
  TORCH_CHECK(b, "this process group has no backend for tensors on ", t.device(),
              " (CUDA tensors need a NCCL group)");
  return *b;
}

void run(const c10::intrusive_ptr<c10d::Work>& work) {
  work->wait();  // throws on a failed or timed-out collective
}
}  // namespace

extern "C" {

const char* idist_last_error() { return g_error.c_str(); }

int idist_has_nccl() {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

// Joins the group. `serve_store`: this process hosts the TCPStore (rank 0, unless a launcher's
// agent already hosts it). `prefix` separates the keys of one attempt from another's.
void* idist_init(int rank, int world, const char* addr, int port, int serve_store,
                 const char* prefix, int64_t timeout_ms, int nccl, int device) {
  auto* g = new Group;
  // Connection retries log each attempt with a C++ stack trace; the outcome comes back as one
  // error line instead. TORCH_CPP_LOG_LEVEL, when set, is left to decide.
  const bool quiet = std::getenv("TORCH_CPP_LOG_LEVEL") == nullptr;
  const int log_level = FLAGS_caffe2_log_level;
  if (quiet) FLAGS_caffe2_log_level = 3;  // FATAL only
  int rc = guarded([&] {
    g->rank = rank;
    g->world = world;
    const std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = serve_store != 0;
    so.numWorkers = world;
    so.timeout = timeout;
    so.waitWorkers = true;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, so);
    g->store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);
    g->pg = c10::make_intrusive<c10d::ProcessGroup>(g->store, rank, world);

    auto gloo_opts = c10d::ProcessGroupGloo::Options::create_default(timeout);
    g->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("gloo/", g->store), rank, world, gloo_opts);
    g->pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::GLOO, g->gloo);
    g->pg->setDefaultBackend(c10d::ProcessGroup::GLOO);
    if (nccl) {
#ifdef USE_C10D_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
      auto nccl_opts = c10d::ProcessGroupNCCL::Options::create();
      nccl_opts->timeout = timeout;
      g->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          c10::make_intrusive<c10d::PrefixStore>("nccl/", g->store), rank, world, nccl_opts);
      g->pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::NCCL, g->nccl);
      g->pg->setDefaultBackend(c10d::ProcessGroup::NCCL);
#else
      (void)device;
      TORCH_CHECK(false, "this build has no NCCL: rebuild after `cargo xtask setup` has installed the CUDA headers");
#endif
    }
  });
  if (quiet) FLAGS_caffe2_log_level = log_level;
  if (rc != 0) {
    delete g;
    return nullptr;
  }
  return g;
}

void idist_free(void* h) {
  auto* g = static_cast<Group*>(h);
  guarded([&] {
#ifdef USE_C10D_NCCL
    if (g->nccl) static_cast<c10d::ProcessGroupNCCL&>(*g->nccl).shutdown();
#endif
    g->pg.reset();
    g->nccl.reset();
    g->gloo.reset();
    g->store.reset();
  });
  delete g;
}

int idist_allreduce_sum(void* h, at::Tensor* t) {
  return guarded([&] {
    auto* g = static_cast<Group*>(h);
    TORCH_CHECK(t->is_contiguous(), "all-reduce needs a contiguous tensor");
    std::vector<at::Tensor> v{*t};
    run(backend(g, *t).allreduce(v));
  });
}

// Every tensor becomes its sum over ranks divided by `divisor`. Runs of consecutive tensors of
// one dtype and device are packed into flat buckets of at most `bucket_bytes` (a tensor larger
// than that is a bucket of its own), one collective per bucket.
int idist_allreduce_buckets(void* h, at::Tensor** ts, int n, int64_t bucket_bytes, double divisor) {
  return guarded([&] {
    auto* g = static_cast<Group*>(h);
    int i = 0;
    while (i < n) {
      std::vector<at::Tensor> members{*ts[i]};
      int64_t bytes = static_cast<int64_t>(ts[i]->nbytes());
      int j = i + 1;
      while (j < n && ts[j]->scalar_type() == ts[i]->scalar_type() &&
             ts[j]->device() == ts[i]->device() &&
             bytes + static_cast<int64_t>(ts[j]->nbytes()) <= bucket_bytes) {
        members.push_back(*ts[j]);
        bytes += static_cast<int64_t>(ts[j]->nbytes());
        ++j;
      }
      const bool in_place = members.size() == 1 && members[0].is_contiguous();
      at::Tensor flat;
      if (in_place) {
        flat = members[0].view({-1});
      } else {
        std::vector<at::Tensor> pieces;
        pieces.reserve(members.size());
        for (auto& m : members) pieces.push_back(m.reshape({-1}));
        flat = at::cat(pieces, 0);
      }
      std::vector<at::Tensor> v{flat};
      run(backend(g, flat).allreduce(v));
      if (divisor != 1.0) flat.div_(divisor);
      if (!in_place) {
        int64_t offset = 0;
        for (auto& m : members) {
          m.copy_(flat.narrow(0, offset, m.numel()).view(m.sizes()));
          offset += m.numel();
        }
      }
      i = j;
    }
  });
}

int idist_broadcast(void* h, at::Tensor* t, int root) {
  return guarded([&] {
    auto* g = static_cast<Group*>(h);
    TORCH_CHECK(t->is_contiguous(), "broadcast needs a contiguous tensor");
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    run(backend(g, *t).broadcast(v, opts));
  });
}

int idist_barrier(void* h) {
  return guarded([&] { run(static_cast<Group*>(h)->gloo->barrier()); });
}

// DDP's Reducer over `params`: DDP's bucket assignment (a small first bucket, then
// `bucket_bytes`), in the reverse order backward produces gradients. After
// idist_reducer_prepare(outputs) and backward(), every parameter's gradient is its mean over
// ranks; a backward without prepare leaves gradients local (DDP's no_sync).
void* idist_reducer_new(void* h, at::Tensor** params, int n, int64_t bucket_bytes) {
  c10d::Reducer* reducer = nullptr;
  int rc = guarded([&] {
    auto* g = static_cast<Group*>(h);
    std::vector<at::Tensor> ps;
    ps.reserve(n);
    for (int i = 0; i < n; ++i) ps.push_back(*params[i]);
    std::vector<bool> sparse(n, false);
    const int64_t first_cap = 1024 * 1024;
    auto [buckets, caps] = c10d::compute_bucket_assignment_by_size(
        ps, {static_cast<size_t>(first_cap), static_cast<size_t>(bucket_bytes)}, sparse);
    std::reverse(buckets.begin(), buckets.end());
    std::vector<int64_t> cap_list(caps.rbegin(), caps.rend());
    reducer = new c10d::Reducer(ps, buckets, g->pg, sparse, bucket_bytes,
                                /*find_unused_parameters=*/false,
                                /*gradient_as_bucket_view=*/false, /*param_names=*/{}, first_cap,
                                /*skip_all_reduce_unused_params=*/false,
                                /*use_python_reducer=*/false, cap_list);
  });
  return rc == 0 ? reducer : nullptr;
}

int idist_reducer_prepare(void* r, at::Tensor** outputs, int n) {
  return guarded([&] {
    std::vector<at::Tensor> outs;
    outs.reserve(n);
    for (int i = 0; i < n; ++i) outs.push_back(*outputs[i]);
    auto* reducer = static_cast<c10d::Reducer*>(r);
    reducer->prepare_for_forward();
    reducer->prepare_for_backward(outs);
  });
}

void idist_reducer_free(void* r) {
  guarded([&] { delete static_cast<c10d::Reducer*>(r); });
}
}
