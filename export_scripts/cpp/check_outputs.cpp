// Load an exported graph with onnxruntime's C API, run it on DATA_DIR/input_<i>.pb and compare each
// output with DATA_DIR/output_<i>.pb: shape and element type exactly, values by the rule of
// `exportloss verify`, |got - expected| <= atol + rtol * |expected| (and finite).
//
//   check_outputs MODEL.onnx DATA_DIR [ATOL [RTOL]] [--runs N]
//
// Prints one line per output (shape, max abs and rel error, tolerance, PASS/FAIL); with --runs, the time per
// run over N more runs. Exit status as `exportloss verify`: 0 every output within tolerance, 1 a mismatch,
// 2 bad arguments or files, or an onnxruntime error.
//
// Only the C API (onnxruntime_c_api.h and the headers it includes) is used: it is the interface onnxruntime
// keeps binary compatible, so headers of an onnxruntime release work with the library of that release or of
// any later one (a header's ORT_API_VERSION must not exceed the library's; GetApi refuses it otherwise).

#include <onnxruntime_c_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor_proto.h"

namespace {

const OrtApi* api = nullptr;

void check(OrtStatus* status) {
  if (status == nullptr) return;
  const std::string message = api->GetErrorMessage(status);
  api->ReleaseStatus(status);
  throw std::runtime_error("onnxruntime: " + message);
}

// Owners of the C API's objects, each released by its own Release function.
template <typename T, void (*Release)(T*)>
struct Releaser {
  void operator()(T* p) const { Release(p); }
};
#define ORT_OWNER(Type)                                                            \
  void Release##Type##Fn(Ort##Type* p) { api->Release##Type(p); }                  \
  using Type##Ptr = std::unique_ptr<Ort##Type, Releaser<Ort##Type, Release##Type##Fn>>;
ORT_OWNER(Env)
ORT_OWNER(SessionOptions)
ORT_OWNER(Session)
ORT_OWNER(MemoryInfo)
ORT_OWNER(Value)
ORT_OWNER(TensorTypeAndShapeInfo)
#undef ORT_OWNER

size_t element_size(int32_t type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return 8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return 4;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return 8;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8:
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return 1;
    default: throw std::runtime_error("unsupported element type " + std::to_string(type));
  }
}

const char* type_name(int32_t type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "float64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
    default: return "other";
  }
}

// Element i of a tensor of ONNX element type `type`, as a double (memcpy: the bytes need not be aligned).
double element(const uint8_t* data, int32_t type, int64_t i) {
  const size_t size = element_size(type);
  const uint8_t* p = data + static_cast<size_t>(i) * size;
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: { float v; std::memcpy(&v, p, size); return v; }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: { double v; std::memcpy(&v, p, size); return v; }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: { int32_t v; std::memcpy(&v, p, size); return v; }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: { int64_t v; std::memcpy(&v, p, size); return static_cast<double>(v); }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return *p;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return static_cast<int8_t>(*p);
    default: return *p != 0 ? 1.0 : 0.0;  // bool
  }
}

std::string pb_path(const std::string& dir, const char* prefix, size_t i) {
  return dir + "/" + prefix + "_" + std::to_string(i) + ".pb";
}

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i ? "," : "") + std::to_string(dims[i]);
  return text + "]";
}

std::vector<std::string> names(OrtSession* session, OrtAllocator* allocator, bool inputs) {
  size_t count = 0;
  check(inputs ? api->SessionGetInputCount(session, &count) : api->SessionGetOutputCount(session, &count));
  std::vector<std::string> result;
  for (size_t i = 0; i < count; ++i) {
    char* name = nullptr;
    check(inputs ? api->SessionGetInputName(session, i, allocator, &name)
                 : api->SessionGetOutputName(session, i, allocator, &name));
    result.emplace_back(name);
    check(api->AllocatorFree(allocator, name));
  }
  return result;
}

struct Comparison {
  bool passed = true;
  double max_abs = 0.0, max_rel = 0.0;
  std::string problem;  // why it failed before values were compared
};

// The rule of exportloss.verify.compare: rel err = |got - expected| / max(|expected|, atol).
Comparison compare(OrtValue* value, const tensor_proto::Tensor& expected, double atol, double rtol) {
  OrtTensorTypeAndShapeInfo* raw_info = nullptr;
  check(api->GetTensorTypeAndShape(value, &raw_info));
  const TensorTypeAndShapeInfoPtr info(raw_info);
  ONNXTensorElementDataType type;
  size_t rank = 0;
  check(api->GetTensorElementType(info.get(), &type));
  check(api->GetDimensionsCount(info.get(), &rank));
  std::vector<int64_t> shape(rank);
  check(api->GetDimensions(info.get(), shape.data(), rank));
  Comparison result;
  if (shape != expected.dims) {
    result.passed = false;
    result.problem = "shape " + shape_text(shape) + " != expected " + shape_text(expected.dims);
    return result;
  }
  if (type != expected.data_type) {
    result.passed = false;
    result.problem = std::string("type ") + type_name(type) + " != expected " + type_name(expected.data_type);
    return result;
  }
  const int64_t count = expected.element_count();
  if (expected.raw.size() != static_cast<size_t>(count) * element_size(type)) {
    throw std::runtime_error("output_<i>.pb of " + std::to_string(expected.raw.size()) + " bytes for shape " +
                             shape_text(expected.dims));
  }
  void* got = nullptr;
  check(api->GetTensorMutableData(value, &got));
  for (int64_t k = 0; k < count; ++k) {
    const double a = element(static_cast<const uint8_t*>(got), type, k), e = element(expected.raw.data(), type, k);
    const double err = std::fabs(a - e);
    if (!std::isfinite(a)) result.problem = "non-finite output";
    result.max_abs = std::max(result.max_abs, err);
    result.max_rel = std::max(result.max_rel, err / std::max(std::fabs(e), atol));
    result.passed = result.passed && std::isfinite(a) && err <= atol + rtol * std::fabs(e);
  }
  return result;
}

std::string duration(double seconds) {
  char text[32];
  if (seconds >= 1e-3) std::snprintf(text, sizeof text, "%.2f ms", seconds * 1e3);
  else std::snprintf(text, sizeof text, "%.1f us", seconds * 1e6);
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  long runs = 0;
  const auto runs_flag = std::find(args.begin(), args.end(), "--runs");
  if (runs_flag != args.end()) {
    runs = runs_flag + 1 != args.end() ? std::strtol((runs_flag + 1)->c_str(), nullptr, 10) : 0;
    if (runs <= 0) {
      std::fprintf(stderr, "error: --runs needs a positive count\n");
      return 2;
    }
    args.erase(runs_flag, runs_flag + 2);
  }
  if (args.size() < 2 || args.size() > 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx DATA_DIR [ATOL [RTOL]] [--runs N]\n", argv[0]);
    return 2;
  }
  const std::string model_path = args[0], data_dir = args[1];
  const double atol = args.size() > 2 ? std::atof(args[2].c_str()) : 1e-5;
  const double rtol = args.size() > 3 ? std::atof(args[3].c_str()) : 1e-5;

  const OrtApiBase* base = OrtGetApiBase();
  api = base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    std::fprintf(stderr, "error: the onnxruntime library is %s, older than these headers (ORT_API_VERSION %d): "
                 "build with the headers of that release or an older one\n", base->GetVersionString(), ORT_API_VERSION);
    return 2;
  }
  try {
    OrtEnv* raw_env = nullptr;
    check(api->CreateEnv(ORT_LOGGING_LEVEL_WARNING, "exportloss", &raw_env));
    const EnvPtr env(raw_env);
    OrtSessionOptions* raw_options = nullptr;
    check(api->CreateSessionOptions(&raw_options));
    const SessionOptionsPtr options(raw_options);
    check(api->SetIntraOpNumThreads(options.get(), 1));
    check(api->SetSessionGraphOptimizationLevel(options.get(), ORT_ENABLE_ALL));
    OrtSession* raw_session = nullptr;
    check(api->CreateSession(env.get(), model_path.c_str(), options.get(), &raw_session));
    const SessionPtr session(raw_session);
    OrtAllocator* allocator = nullptr;
    check(api->GetAllocatorWithDefaultOptions(&allocator));
    OrtMemoryInfo* raw_memory = nullptr;
    check(api->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &raw_memory));
    const MemoryInfoPtr memory(raw_memory);

    const std::vector<std::string> input_names = names(session.get(), allocator, true);
    const std::vector<std::string> output_names = names(session.get(), allocator, false);
    std::vector<tensor_proto::Tensor> inputs;  // owns the buffers the input values point into
    std::vector<ValuePtr> input_values;
    for (size_t i = 0; i < input_names.size(); ++i) {
      inputs.push_back(tensor_proto::load(pb_path(data_dir, "input", i)));
      tensor_proto::Tensor& tensor = inputs.back();
      OrtValue* value = nullptr;
      check(api->CreateTensorWithDataAsOrtValue(memory.get(), tensor.raw.data(), tensor.raw.size(), tensor.dims.data(),
                                                tensor.dims.size(),
                                                static_cast<ONNXTensorElementDataType>(tensor.data_type), &value));
      input_values.emplace_back(value);
    }
    std::vector<const char*> input_cnames, output_cnames;
    std::vector<const OrtValue*> input_pointers;
    for (const std::string& name : input_names) input_cnames.push_back(name.c_str());
    for (const std::string& name : output_names) output_cnames.push_back(name.c_str());
    for (const ValuePtr& value : input_values) input_pointers.push_back(value.get());

    auto run = [&]() {
      std::vector<OrtValue*> raw_outputs(output_names.size(), nullptr);
      check(api->Run(session.get(), nullptr, input_cnames.data(), input_pointers.data(), input_pointers.size(),
                     output_cnames.data(), output_cnames.size(), raw_outputs.data()));
      std::vector<ValuePtr> outputs;
      for (OrtValue* value : raw_outputs) outputs.emplace_back(value);
      return outputs;
    };

    std::printf("onnxruntime %s (headers: ORT_API_VERSION %d), %s\n", base->GetVersionString(), ORT_API_VERSION,
                model_path.c_str());
    const std::vector<ValuePtr> outputs = run();
    bool all_passed = true;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const tensor_proto::Tensor expected = tensor_proto::load(pb_path(data_dir, "output", i));
      const Comparison result = compare(outputs[i].get(), expected, atol, rtol);
      std::printf("  %-20s %-14s max abs err %.2e  max rel err %.2e  (atol %g, rtol %g)  %s%s%s\n",
                  output_names[i].c_str(), shape_text(expected.dims).c_str(), result.max_abs, result.max_rel, atol,
                  rtol, result.passed ? "PASS" : "FAIL", result.problem.empty() ? "" : ": ", result.problem.c_str());
      all_passed = all_passed && result.passed;
    }
    if (runs > 0) {
      std::vector<double> seconds;
      for (long r = 0; r < runs; ++r) {
        const auto start = std::chrono::steady_clock::now();
        run();
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      std::sort(seconds.begin(), seconds.end());
      std::printf("  C++ per run: median %s, min %s over %ld runs (1 intra-op thread, ORT_ENABLE_ALL)\n",
                  duration(seconds[seconds.size() / 2]).c_str(), duration(seconds.front()).c_str(), runs);
    }
    std::printf("%s\n", all_passed ? "PASS: every output within tolerance" : "FAIL: outputs out of tolerance");
    return all_passed ? 0 : 1;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "error: %s\n", err.what());
    return 2;
  }
}
