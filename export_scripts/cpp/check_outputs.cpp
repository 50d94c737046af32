// Load an exported graph with onnxruntime's C++ API, run it on test_data_set_0/input_<i>.pb and
// compare each output with output_<i>.pb: |got - expected| <= atol + rtol * |expected|.
//
//   check_outputs MODEL.onnx DATA_DIR [ATOL] [RTOL]     (exit status 0 = every output within tolerance)

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tensor_proto.h"

namespace {

// Element i of a tensor of ONNX type `type` (float, double, int32, int64, bool), as a double.
double element(const void* data, int32_t type, int64_t i) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return static_cast<const float*>(data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return static_cast<const double*>(data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return static_cast<const int32_t*>(data)[i];
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return static_cast<double>(static_cast<const int64_t*>(data)[i]);
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return static_cast<const bool*>(data)[i] ? 1.0 : 0.0;
    default: throw std::runtime_error("unsupported element type " + std::to_string(type));
  }
}

std::string pb_path(const std::string& dir, const char* prefix, size_t i) {
  return dir + "/" + prefix + "_" + std::to_string(i) + ".pb";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.onnx DATA_DIR [ATOL] [RTOL]\n", argv[0]);
    return 2;
  }
  const std::string model_path = argv[1], data_dir = argv[2];
  const double atol = argc > 3 ? std::atof(argv[3]) : 1e-5, rtol = argc > 4 ? std::atof(argv[4]) : 1e-5;
  try {
    Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "exportloss");
    Ort::SessionOptions options;
    options.SetIntraOpNumThreads(1);
    options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    Ort::Session session(env, model_path.c_str(), options);
    Ort::AllocatorWithDefaultOptions allocator;
    const Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);

    std::vector<Ort::AllocatedStringPtr> name_storage;
    std::vector<const char*> input_names, output_names;
    std::vector<tensor_proto::Tensor> inputs;  // owns the buffers the Ort::Values point into
    std::vector<Ort::Value> input_values;
    for (size_t i = 0; i < session.GetInputCount(); ++i) {
      name_storage.push_back(session.GetInputNameAllocated(i, allocator));
      input_names.push_back(name_storage.back().get());
      inputs.push_back(tensor_proto::load(pb_path(data_dir, "input", i)));
    }
    for (tensor_proto::Tensor& tensor : inputs) {
      input_values.push_back(Ort::Value::CreateTensor(
          memory, tensor.raw.data(), tensor.raw.size(), tensor.dims.data(), tensor.dims.size(),
          static_cast<ONNXTensorElementDataType>(tensor.data_type)));
    }
    for (size_t i = 0; i < session.GetOutputCount(); ++i) {
      name_storage.push_back(session.GetOutputNameAllocated(i, allocator));
      output_names.push_back(name_storage.back().get());
    }

    std::vector<Ort::Value> outputs = session.Run(Ort::RunOptions{nullptr}, input_names.data(), input_values.data(),
                                                  input_values.size(), output_names.data(), output_names.size());
    bool all_passed = true;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const tensor_proto::Tensor expected = tensor_proto::load(pb_path(data_dir, "output", i));
      const Ort::TensorTypeAndShapeInfo info = outputs[i].GetTensorTypeAndShapeInfo();
      const std::vector<int64_t> shape = info.GetShape();
      bool passed = shape == expected.dims;
      double max_abs = 0.0;
      if (passed) {
        const void* got = outputs[i].GetTensorRawData();
        for (int64_t k = 0; k < expected.element_count(); ++k) {
          const double a = element(got, info.GetElementType(), k), e = element(expected.raw.data(), expected.data_type, k);
          const double err = std::fabs(a - e);
          max_abs = std::max(max_abs, err);
          passed = passed && std::isfinite(a) && err <= atol + rtol * std::fabs(e);
        }
      }
      std::printf("%-16s %s  max abs err %.2e\n", output_names[i], passed ? "PASS" : "FAIL", max_abs);
      all_passed = all_passed && passed;
    }
    std::printf("%s\n", all_passed ? "all outputs match" : "MISMATCH");
    return all_passed ? 0 : 1;
  } catch (const std::exception& err) {
    std::fprintf(stderr, "error: %s\n", err.what());
    return 2;
  }
}
