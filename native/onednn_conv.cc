// funcnn's CPU convolution engine: the three bilinear conv ops of funcnn/primitives/conv/rules.py run by oneDNN's
// convolution primitives, behind XLA's FFI.
//
//   funcnn_onednn_forward   z  = conv(x, w)        oneDNN convolution_forward          x (N, *S, C_in), w HWIO
//   funcnn_onednn_dx        dX = conv_transpose(g, w)  convolution_backward_data       g (N, *O, C_out), w HWIO
//   funcnn_onednn_dw        dW = conv_dw(x, g)     convolution_backward_weights        x, g -> dW HWIO
//
// HWIO is (*K, C_in/G, C_out), the output channel f = group * (C_out/G) + o. Activations stay channels-last (oneDNN's
// nwc / nhwc / ndhwc, described by strides); the small filter is reordered to the blocked layout oneDNN picks
// (format_tag::any) on each call, and dW back from it, since plain HWIO makes oneDNN's dX and dW 2-8x slower.
// Creating a primitive costs far more than running it, so each (op, dtype, shapes, geometry) gets one plan, kept for
// the life of the process. Scratchpads are the caller's (scratchpad_mode::user, one growing buffer per thread), so
// one plan may run on several of XLA's threads at once. Every oneDNN failure is returned to XLA as an FFI error
// naming the op, the shapes and oneDNN's message (JAX raises it as a Python exception); nothing here aborts.
//
// Built as the Python extension funcnn.primitives.conv._onednn (setup.py), which hands JAX the three handlers as
// PyCapsules (funcnn/primitives/conv/paths/onednn.py registers them with jax.ffi.register_ffi_target).

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum class Op { kForward, kDx, kDw };

const char* op_name(Op op) {
  return op == Op::kForward ? "forward" : op == Op::kDx ? "dx" : "dw";
}

// ------------------------------------------------------------------------------------------------------------------
// the configuration of one call, from the buffers' shapes and the op's attributes

struct Config {
  Op op;
  memory::data_type dtype;
  int64_t n, c_in, c_out, groups;
  std::vector<int64_t> in, out, window, stride, dilation, pad_lo, pad_hi;  // dilation as funcnn's D (>= 1)

  std::string key() const {
    std::ostringstream s;
    s << static_cast<int>(op) << '|' << static_cast<int>(dtype) << '|' << n << ',' << c_in << ',' << c_out << ','
      << groups;
    for (const auto* v : {&in, &out, &window, &stride, &dilation, &pad_lo, &pad_hi}) {
      s << '|';
      for (int64_t e : *v) s << e << ',';
    }
    return s.str();
  }

  std::string describe() const {
    auto list = [](const std::vector<int64_t>& v) {
      std::ostringstream s;
      s << '(';
      for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
      s << (v.size() == 1 ? ",)" : ")");
      return s.str();
    };
    std::ostringstream s;
    s << "funcnn conv " << op_name(op) << " in oneDNN: batch " << n << ", input sizes " << list(in)
      << ", output sizes " << list(out) << ", channels " << c_in << " -> " << c_out << ", groups " << groups
      << ", window " << list(window) << ", stride " << list(stride) << ", dilation " << list(dilation)
      << ", padding lo " << list(pad_lo) << " hi " << list(pad_hi)
      << (dtype == memory::data_type::bf16 ? ", bfloat16" : ", float32");
    return s.str();
  }
};

memory::dims times(const memory::dims& a, int64_t b) {
  memory::dims r(a);
  for (auto& e : r) e *= b;
  return r;
}

// channels-last activation (N, *sizes, C) as oneDNN's logical (N, C, *sizes)
memory::desc activation(int64_t n, int64_t c, const std::vector<int64_t>& sizes, memory::data_type dt) {
  memory::dims dims{n, c}, strides(2 + sizes.size());
  dims.insert(dims.end(), sizes.begin(), sizes.end());
  int64_t step = c;
  for (size_t j = sizes.size(); j-- > 0;) {
    strides[2 + j] = step;
    step *= sizes[j];
  }
  strides[0] = step;
  strides[1] = 1;
  return memory::desc(dims, dt, strides);
}

// HWIO filter (*K, C_in/G, C_out) as oneDNN's logical (O, I, *K), or (G, O/G, I/G, *K) with groups
memory::dims filter_dims(const Config& c) {
  memory::dims dims;
  if (c.groups > 1) dims = {c.groups, c.c_out / c.groups, c.c_in / c.groups};
  else dims = {c.c_out, c.c_in};
  dims.insert(dims.end(), c.window.begin(), c.window.end());
  return dims;
}

memory::desc filter_hwio(const Config& c) {
  const int64_t cin_g = c.c_in / c.groups, cout_g = c.c_out / c.groups;
  memory::dims strides;
  if (c.groups > 1) strides = {cout_g, 1, c.c_out};
  else strides = {1, c.c_out};
  std::vector<int64_t> k_strides(c.window.size());
  int64_t step = cin_g * c.c_out;
  for (size_t j = c.window.size(); j-- > 0;) {
    k_strides[j] = step;
    step *= c.window[j];
  }
  strides.insert(strides.end(), k_strides.begin(), k_strides.end());
  return memory::desc(filter_dims(c), c.dtype, strides);
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// ------------------------------------------------------------------------------------------------------------------
// plans: the primitive (and the filter's reorders) for one configuration, created once

struct Plan {
  dnnl::primitive conv;
  memory::desc a, b, result;      // the operands and result as XLA holds them
  memory::desc filter_user;       // HWIO
  memory::desc filter_engine;     // the layout the primitive takes (or gives, for dW)
  bool reorder = false;
  dnnl::primitive to_engine;      // HWIO -> engine layout (forward, dx) or engine layout -> HWIO (dw)
  size_t scratch = 0;
};

std::shared_ptr<Plan> make_plan(const Config& c) {
  auto& eng = cpu_engine();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const memory::desc x = activation(c.n, c.c_in, c.in, c.dtype), z = activation(c.n, c.c_out, c.out, c.dtype);
  const memory::desc any(filter_dims(c), c.dtype, memory::format_tag::any);
  memory::dims dilation(c.dilation);
  for (auto& d : dilation) d -= 1;  // oneDNN counts the gaps
  const memory::dims stride(c.stride), lo(c.pad_lo), hi(c.pad_hi);
  dnnl::convolution_forward::primitive_desc forward(eng, dnnl::prop_kind::forward_training,
                                                    dnnl::algorithm::convolution_direct, x, any, z, stride,
                                                    dilation, lo, hi, attr);
  auto plan = std::make_shared<Plan>();
  plan->filter_user = filter_hwio(c);
  if (c.op == Op::kForward) {
    plan->conv = dnnl::convolution_forward(forward);
    plan->filter_engine = forward.weights_desc();
    plan->a = x, plan->b = plan->filter_user, plan->result = z;
    plan->scratch = forward.scratchpad_desc().get_size();
  } else if (c.op == Op::kDx) {
    dnnl::convolution_backward_data::primitive_desc dx(eng, dnnl::algorithm::convolution_direct, x, any, z, stride,
                                                       dilation, lo, hi, forward, attr);
    plan->conv = dnnl::convolution_backward_data(dx);
    plan->filter_engine = dx.weights_desc();
    plan->a = z, plan->b = plan->filter_user, plan->result = x;
    plan->scratch = dx.scratchpad_desc().get_size();
  } else {
    dnnl::convolution_backward_weights::primitive_desc dw(eng, dnnl::algorithm::convolution_direct, x, any, z,
                                                          stride, dilation, lo, hi, forward, attr);
    plan->conv = dnnl::convolution_backward_weights(dw);
    plan->filter_engine = dw.diff_weights_desc();
    plan->a = x, plan->b = z, plan->result = plan->filter_user;
    plan->scratch = dw.scratchpad_desc().get_size();
  }
  plan->reorder = plan->filter_engine != plan->filter_user;
  if (plan->reorder) {
    dnnl::primitive_attr reorder_attr;
    reorder_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::reorder::primitive_desc pd =
        c.op == Op::kDw ? dnnl::reorder::primitive_desc(eng, plan->filter_engine, eng, plan->filter_user, reorder_attr)
                        : dnnl::reorder::primitive_desc(eng, plan->filter_user, eng, plan->filter_engine, reorder_attr);
    plan->to_engine = dnnl::reorder(pd);
    plan->scratch = std::max(plan->scratch, pd.scratchpad_desc().get_size());
  }
  return plan;
}

std::mutex plans_mutex;
std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
std::atomic<int> thread_count{0};  // 0: OpenMP's default (the cores this process may run on)

std::shared_ptr<Plan> plan_for(const Config& c) {
  const std::string key = c.key();
  {
    std::lock_guard<std::mutex> lock(plans_mutex);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
  }
  auto plan = make_plan(c);  // outside the lock: creating one takes milliseconds
  std::lock_guard<std::mutex> lock(plans_mutex);
  return plans.emplace(key, plan).first->second;
}

// a growing, 64-byte aligned buffer per thread (the reordered filter, the scratchpad)
struct Buffer {
  void* data = nullptr;
  size_t size = 0;
  void* get(size_t bytes) {
    if (bytes > size) {
      std::free(data);
      size = (bytes + 4095) / 4096 * 4096;
      data = std::aligned_alloc(64, size);
      if (data == nullptr) throw std::bad_alloc();
    }
    return data;
  }
  ~Buffer() { std::free(data); }
};

std::mutex run_mutex;  // one call at a time: each runs on every core already (OpenMP), two at once oversubscribe

void run(const Config& c, void* a, void* b, void* result) {
  auto plan = plan_for(c);
  std::lock_guard<std::mutex> lock(run_mutex);
  thread_local Buffer filter_buffer, scratch_buffer;
  thread_local dnnl::stream stream(cpu_engine());
  if (int threads = thread_count.load(std::memory_order_relaxed); threads > 0) omp_set_num_threads(threads);
  auto& eng = cpu_engine();
  memory scratch(dnnl::memory::desc({static_cast<int64_t>(plan->scratch)}, memory::data_type::u8,
                                    memory::format_tag::a),
                 eng, plan->scratch ? scratch_buffer.get(plan->scratch) : nullptr);
  memory user_filter(plan->filter_user, eng, c.op == Op::kDw ? result : b);
  memory filter = plan->reorder
                      ? memory(plan->filter_engine, eng, filter_buffer.get(plan->filter_engine.get_size()))
                      : user_filter;
  if (plan->reorder && c.op != Op::kDw) {
    plan->to_engine.execute(stream, {{DNNL_ARG_FROM, user_filter}, {DNNL_ARG_TO, filter},
                                     {DNNL_ARG_SCRATCHPAD, scratch}});
  }
  if (c.op == Op::kForward) {
    plan->conv.execute(stream, {{DNNL_ARG_SRC, memory(plan->a, eng, a)}, {DNNL_ARG_WEIGHTS, filter},
                                {DNNL_ARG_DST, memory(plan->result, eng, result)}, {DNNL_ARG_SCRATCHPAD, scratch}});
  } else if (c.op == Op::kDx) {
    plan->conv.execute(stream, {{DNNL_ARG_DIFF_DST, memory(plan->a, eng, a)}, {DNNL_ARG_WEIGHTS, filter},
                                {DNNL_ARG_DIFF_SRC, memory(plan->result, eng, result)},
                                {DNNL_ARG_SCRATCHPAD, scratch}});
  } else {
    plan->conv.execute(stream, {{DNNL_ARG_SRC, memory(plan->a, eng, a)}, {DNNL_ARG_DIFF_DST, memory(plan->b, eng, b)},
                                {DNNL_ARG_DIFF_WEIGHTS, filter}, {DNNL_ARG_SCRATCHPAD, scratch}});
    if (plan->reorder) {
      plan->to_engine.execute(stream, {{DNNL_ARG_FROM, filter}, {DNNL_ARG_TO, user_filter},
                                       {DNNL_ARG_SCRATCHPAD, scratch}});
    }
  }
  stream.wait();
}

// ------------------------------------------------------------------------------------------------------------------
// the FFI handlers

std::vector<int64_t> as_vector(ffi::Span<const int64_t> s) { return std::vector<int64_t>(s.begin(), s.end()); }

std::vector<int64_t> spatial(ffi::AnyBuffer::Dimensions dims) {  // (N, *S, C) -> S
  return std::vector<int64_t>(dims.begin() + 1, dims.end() - 1);
}

ffi::Error call(Op op, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> result,
                ffi::Span<const int64_t> window, ffi::Span<const int64_t> stride, ffi::Span<const int64_t> dilation,
                ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t groups) {
  Config c;
  c.op = op;
  const auto dt = a.element_type();
  if (dt == ffi::DataType::F32) c.dtype = memory::data_type::f32;
  else if (dt == ffi::DataType::BF16) c.dtype = memory::data_type::bf16;
  else return ffi::Error(ffi::ErrorCode::kInvalidArgument, "funcnn conv in oneDNN: float32 or bfloat16 only");
  if (b.element_type() != dt || result->element_type() != dt) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "funcnn conv in oneDNN: operands of different dtypes");
  }
  const auto da = a.dimensions(), db = b.dimensions(), dr = result->dimensions();
  c.groups = groups;
  c.window = as_vector(window), c.stride = as_vector(stride), c.dilation = as_vector(dilation);
  c.pad_lo = as_vector(pad_lo), c.pad_hi = as_vector(pad_hi);
  if (op == Op::kForward) {  // x, w -> z
    c.n = da[0], c.in = spatial(da), c.c_in = da[da.size() - 1], c.out = spatial(dr), c.c_out = dr[dr.size() - 1];
  } else if (op == Op::kDx) {  // g, w -> dX
    c.n = da[0], c.out = spatial(da), c.c_out = da[da.size() - 1], c.in = spatial(dr), c.c_in = dr[dr.size() - 1];
  } else {  // x, g -> dW
    c.n = da[0], c.in = spatial(da), c.c_in = da[da.size() - 1], c.out = spatial(db), c.c_out = db[db.size() - 1];
  }
  const size_t nd = c.window.size();
  if (c.in.size() != nd || c.out.size() != nd || c.stride.size() != nd || c.dilation.size() != nd ||
      c.pad_lo.size() != nd || c.pad_hi.size() != nd || groups < 1 || c.c_in % groups || c.c_out % groups) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, c.describe() + ": inconsistent shapes and attributes");
  }
  try {
    run(c, a.untyped_data(), b.untyped_data(), result->untyped_data());
  } catch (const dnnl::error& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, c.describe() + ": oneDNN: " + e.what());
  } catch (const std::exception& e) {
    return ffi::Error(ffi::ErrorCode::kInternal, c.describe() + ": " + e.what());
  }
  return ffi::Error::Success();
}

#define FUNCNN_BIND                                                                                                  \
  ffi::Ffi::Bind()                                                                                                   \
      .Arg<ffi::AnyBuffer>()                                                                                         \
      .Arg<ffi::AnyBuffer>()                                                                                         \
      .Ret<ffi::AnyBuffer>()                                                                                         \
      .Attr<ffi::Span<const int64_t>>("window")                                                                      \
      .Attr<ffi::Span<const int64_t>>("stride")                                                                      \
      .Attr<ffi::Span<const int64_t>>("dilation")                                                                    \
      .Attr<ffi::Span<const int64_t>>("pad_lo")                                                                      \
      .Attr<ffi::Span<const int64_t>>("pad_hi")                                                                      \
      .Attr<int64_t>("groups")

ffi::Error forward(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> r, ffi::Span<const int64_t> k,
                   ffi::Span<const int64_t> s, ffi::Span<const int64_t> d, ffi::Span<const int64_t> lo,
                   ffi::Span<const int64_t> hi, int64_t g) {
  return call(Op::kForward, a, b, r, k, s, d, lo, hi, g);
}
ffi::Error dx(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> r, ffi::Span<const int64_t> k,
              ffi::Span<const int64_t> s, ffi::Span<const int64_t> d, ffi::Span<const int64_t> lo,
              ffi::Span<const int64_t> hi, int64_t g) {
  return call(Op::kDx, a, b, r, k, s, d, lo, hi, g);
}
ffi::Error dw(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> r, ffi::Span<const int64_t> k,
              ffi::Span<const int64_t> s, ffi::Span<const int64_t> d, ffi::Span<const int64_t> lo,
              ffi::Span<const int64_t> hi, int64_t g) {
  return call(Op::kDw, a, b, r, k, s, d, lo, hi, g);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(funcnn_onednn_forward, forward, FUNCNN_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(funcnn_onednn_dx, dx, FUNCNN_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(funcnn_onednn_dw, dw, FUNCNN_BIND);

// ------------------------------------------------------------------------------------------------------------------
// the Python module: the handlers as capsules, and what the Python side asks before it chooses the engine

namespace {

PyObject* handlers(PyObject*, PyObject*) {
  PyObject* out = PyDict_New();
  if (out == nullptr) return nullptr;
  const std::pair<const char*, void*> entries[] = {{"forward", reinterpret_cast<void*>(funcnn_onednn_forward)},
                                                   {"dx", reinterpret_cast<void*>(funcnn_onednn_dx)},
                                                   {"dw", reinterpret_cast<void*>(funcnn_onednn_dw)}};
  for (const auto& [name, fn] : entries) {
    PyObject* capsule = PyCapsule_New(fn, nullptr, nullptr);
    if (capsule == nullptr || PyDict_SetItemString(out, name, capsule) < 0) {
      Py_XDECREF(capsule);
      Py_DECREF(out);
      return nullptr;
    }
    Py_DECREF(capsule);
  }
  return out;
}

// whether oneDNN on this CPU runs all three ops in a dtype ("float32", "bfloat16"): a tiny plan of each
PyObject* supports(PyObject*, PyObject* arg) {
  const char* name = PyUnicode_AsUTF8(arg);
  if (name == nullptr) return nullptr;
  const std::string dtype(name);
  if (dtype != "float32" && dtype != "bfloat16") Py_RETURN_FALSE;
  try {
    for (Op op : {Op::kForward, Op::kDx, Op::kDw}) {
      Config c{op, dtype == "float32" ? memory::data_type::f32 : memory::data_type::bf16, 2, 16, 16, 1,
               {8, 8}, {8, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}};
      make_plan(c);
    }
  } catch (const std::exception&) {
    Py_RETURN_FALSE;
  }
  Py_RETURN_TRUE;
}

PyObject* set_threads(PyObject*, PyObject* arg) {
  const long n = PyLong_AsLong(arg);
  if (n == -1 && PyErr_Occurred()) return nullptr;
  if (n < 0) {
    PyErr_SetString(PyExc_ValueError, "threads must be >= 0 (0: OpenMP's default)");
    return nullptr;
  }
  thread_count.store(static_cast<int>(n));
  Py_RETURN_NONE;
}

PyObject* plan_count(PyObject*, PyObject*) {
  std::lock_guard<std::mutex> lock(plans_mutex);
  return PyLong_FromSize_t(plans.size());
}

PyObject* version(PyObject*, PyObject*) {
  const dnnl_version_t* v = dnnl_version();
  return PyUnicode_FromFormat("%d.%d.%d", v->major, v->minor, v->patch);
}

PyMethodDef methods[] = {
    {"handlers", handlers, METH_NOARGS, "The FFI handlers, {'forward' | 'dx' | 'dw': PyCapsule}."},
    {"supports", supports, METH_O, "Whether oneDNN runs the three conv ops in this dtype on this CPU."},
    {"set_threads", set_threads, METH_O, "oneDNN's thread count per call (0: OpenMP's default)."},
    {"plan_count", plan_count, METH_NOARGS, "How many primitives have been created (one per configuration)."},
    {"version", version, METH_NOARGS, "oneDNN's version."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_onednn",
                      "funcnn's CPU convolution engine (oneDNN behind XLA's FFI); see paths/onednn.py.", -1,
                      methods};

}  // namespace

PyMODINIT_FUNC PyInit__onednn(void) { return PyModule_Create(&module); }
