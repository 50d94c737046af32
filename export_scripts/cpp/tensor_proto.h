// A minimal reader of ONNX TensorProto files (the input_<i>.pb / output_<i>.pb of ONNX test data),
// so that this example needs neither protobuf nor onnx headers. It reads the fields numpy_helper
// writes for numeric tensors: dims (1), data_type (2), name (8) and raw_data (9, little-endian);
// other fields are skipped, and a tensor without raw_data is rejected.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace tensor_proto {

struct Tensor {
  std::string name;
  int32_t data_type = 0;  // ONNX TensorProto.DataType: 1 float, 7 int64, 9 bool, ...
  std::vector<int64_t> dims;
  std::vector<uint8_t> raw;

  int64_t element_count() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
};

namespace detail {

class Reader {
 public:
  Reader(const uint8_t* begin, const uint8_t* end) : pos_(begin), end_(end) {}
  bool done() const { return pos_ >= end_; }

  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_) throw std::runtime_error("truncated varint");
      const uint8_t byte = *pos_++;
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    throw std::runtime_error("varint longer than 10 bytes");
  }

  Reader bytes() {
    const uint64_t length = varint();
    if (length > static_cast<uint64_t>(end_ - pos_)) throw std::runtime_error("truncated length-delimited field");
    Reader sub(pos_, pos_ + length);
    pos_ += length;
    return sub;
  }

  void skip(uint32_t wire_type) {
    switch (wire_type) {
      case 0: varint(); break;
      case 1: advance(8); break;
      case 2: bytes(); break;
      case 5: advance(4); break;
      default: throw std::runtime_error("unsupported wire type " + std::to_string(wire_type));
    }
  }

  const uint8_t* begin() const { return pos_; }
  const uint8_t* end() const { return end_; }

 private:
  void advance(size_t n) {
    if (n > static_cast<size_t>(end_ - pos_)) throw std::runtime_error("truncated fixed-width field");
    pos_ += n;
  }
  const uint8_t* pos_;
  const uint8_t* end_;
};

}  // namespace detail

inline Tensor parse(const std::vector<uint8_t>& bytes) {
  Tensor tensor;
  bool has_raw = false;
  detail::Reader reader(bytes.data(), bytes.data() + bytes.size());
  while (!reader.done()) {
    const uint64_t key = reader.varint();
    const uint32_t field = static_cast<uint32_t>(key >> 3), wire_type = static_cast<uint32_t>(key & 7);
    if (field == 1 && wire_type == 0) {
      tensor.dims.push_back(static_cast<int64_t>(reader.varint()));
    } else if (field == 1 && wire_type == 2) {  // packed dims
      detail::Reader packed = reader.bytes();
      while (!packed.done()) tensor.dims.push_back(static_cast<int64_t>(packed.varint()));
    } else if (field == 2 && wire_type == 0) {
      tensor.data_type = static_cast<int32_t>(reader.varint());
    } else if ((field == 8 || field == 9) && wire_type == 2) {
      detail::Reader value = reader.bytes();
      if (field == 8) {
        tensor.name.assign(value.begin(), value.end());
      } else {
        tensor.raw.assign(value.begin(), value.end());
        has_raw = true;
      }
    } else {
      reader.skip(wire_type);
    }
  }
  if (!has_raw) throw std::runtime_error("tensor '" + tensor.name + "' has no raw_data");
  return tensor;
}

inline Tensor load(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot open " + path);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  return parse(bytes);
}

}  // namespace tensor_proto
