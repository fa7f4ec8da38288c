#include "worker/science/io/npy.h"

#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace topolab::science {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;

[[noreturn]] void Fail(const std::string& path, const std::string& what) {
  throw std::runtime_error(path + ": " + what);
}

struct FileCloser {
  void operator()(std::FILE* f) const { if (f) std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// numpy descr string for a dtype ('<' little-endian, '|' byte-sized).
std::string Descr(at::ScalarType t, const std::string& path) {
  switch (t) {
    case at::kHalf: return "<f2";
    case at::kFloat: return "<f4";
    case at::kDouble: return "<f8";
    case at::kChar: return "|i1";
    case at::kShort: return "<i2";
    case at::kInt: return "<i4";
    case at::kLong: return "<i8";
    case at::kByte: return "|u1";
    case at::kBool: return "|b1";
    default: Fail(path, std::string("unsupported dtype for .npy: ") + c10::toString(t));
  }
}

at::ScalarType FromDescr(const std::string& d, const std::string& path) {
  if (d.size() != 3) Fail(path, "unsupported .npy dtype '" + d + "'");
  if (d[0] == '>') Fail(path, "big-endian .npy dtype '" + d + "' is not supported");
  std::string k = d.substr(1);
  if (k == "f2") return at::kHalf;
  if (k == "f4") return at::kFloat;
  if (k == "f8") return at::kDouble;
  if (k == "i1") return at::kChar;
  if (k == "i2") return at::kShort;
  if (k == "i4") return at::kInt;
  if (k == "i8") return at::kLong;
  if (k == "u1") return at::kByte;
  if (k == "b1") return at::kBool;
  Fail(path, "unsupported .npy dtype '" + d + "'");
}

std::string ShapeText(const std::vector<int64_t>& shape, int first_dim_width) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    std::string v = std::to_string(shape[i]);
    // Padding inside the tuple keeps the header length fixed while the
    // streaming writer's row count grows; numpy's literal parser allows it.
    if (i == 0 && static_cast<int>(v.size()) < first_dim_width) {
      v = std::string(first_dim_width - v.size(), ' ') + v;
    }
    s << v << (shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  }
  s << ")";
  return s.str();
}

// Full header (magic, version, length, dict, padding, '\n'), a multiple of 64 bytes.
std::string Header(const std::string& descr, const std::vector<int64_t>& shape,
                   int first_dim_width) {
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " +
                     ShapeText(shape, first_dim_width) + ", }";
  size_t prefix = kMagicLen + 2 + 2;
  bool v2 = prefix + dict.size() + 1 > 65535;
  if (v2) prefix += 2;
  size_t total = prefix + dict.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  dict.append(padded - total, ' ');
  dict.push_back('\n');
  std::string h(kMagic, kMagicLen);
  h.push_back(static_cast<char>(v2 ? 2 : 1));
  h.push_back(0);
  uint32_t len = static_cast<uint32_t>(dict.size());
  h.push_back(static_cast<char>(len & 0xff));
  h.push_back(static_cast<char>((len >> 8) & 0xff));
  if (v2) {
    h.push_back(static_cast<char>((len >> 16) & 0xff));
    h.push_back(static_cast<char>((len >> 24) & 0xff));
  }
  return h + dict;
}

// Value of `key` in numpy's header dict, as raw text.
std::string DictValue(const std::string& dict, const std::string& key, const std::string& path) {
  size_t k = dict.find("'" + key + "'");
  if (k == std::string::npos) Fail(path, "malformed .npy header: no '" + key + "'");
  size_t colon = dict.find(':', k);
  if (colon == std::string::npos) Fail(path, "malformed .npy header near '" + key + "'");
  size_t start = dict.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) Fail(path, "malformed .npy header near '" + key + "'");
  size_t end;
  if (dict[start] == '(') {
    end = dict.find(')', start);
    if (end == std::string::npos) Fail(path, "malformed .npy shape");
    return dict.substr(start, end - start + 1);
  }
  end = dict.find_first_of(",}", start);
  return dict.substr(start, end - start);
}

void WriteAll(std::FILE* f, const void* data, size_t n, const std::string& path) {
  if (n > 0 && std::fwrite(data, 1, n, f) != n) Fail(path, "write failed");
}

at::Tensor ToCpuContiguous(const at::Tensor& t) { return t.to(at::kCPU).contiguous(); }

}  // namespace

at::Tensor ReadNpy(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) Fail(path, "cannot open .npy file");
  char magic[8];
  if (std::fread(magic, 1, 8, f.get()) != 8 || std::memcmp(magic, kMagic, kMagicLen) != 0) {
    Fail(path, "not a .npy file (bad magic)");
  }
  int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  unsigned char lenbuf[4] = {0, 0, 0, 0};
  size_t lenbytes = major == 1 ? 2 : 4;
  if (major < 1 || major > 3) Fail(path, "unsupported .npy version " + std::to_string(major));
  if (std::fread(lenbuf, 1, lenbytes, f.get()) != lenbytes) Fail(path, "truncated .npy header");
  for (size_t i = 0; i < lenbytes; ++i) header_len |= static_cast<uint32_t>(lenbuf[i]) << (8 * i);
  if (header_len > (1u << 24)) Fail(path, "implausible .npy header length");
  std::string dict(header_len, '\0');
  if (std::fread(dict.data(), 1, header_len, f.get()) != header_len) {
    Fail(path, "truncated .npy header");
  }
  std::string descr = DictValue(dict, "descr", path);
  if (descr.size() < 2 || descr.front() != '\'' || descr.back() != '\'') {
    Fail(path, "malformed .npy descr " + descr);
  }
  at::ScalarType dtype = FromDescr(descr.substr(1, descr.size() - 2), path);
  if (DictValue(dict, "fortran_order", path).find("True") != std::string::npos) {
    Fail(path, "Fortran-order .npy files are not supported (save with np.ascontiguousarray)");
  }
  std::string shape_text = DictValue(dict, "shape", path);
  std::vector<int64_t> shape;
  {
    std::string inner = shape_text.substr(1, shape_text.size() - 2);
    std::stringstream ss(inner);
    std::string item;
    while (std::getline(ss, item, ',')) {
      size_t a = item.find_first_not_of(' ');
      if (a == std::string::npos) continue;
      try {
        long long v = std::stoll(item.substr(a));
        if (v < 0) Fail(path, "negative .npy dimension");
        shape.push_back(v);
      } catch (const std::logic_error&) {
        Fail(path, "malformed .npy shape " + shape_text);
      }
    }
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t bytes = t.numel() * t.element_size();
  if (bytes > 0 && std::fread(t.data_ptr(), 1, bytes, f.get()) != bytes) {
    Fail(path, "truncated .npy data: expected " + std::to_string(bytes) + " bytes");
  }
  return t;
}

void WriteNpy(const std::string& path, const at::Tensor& tensor) {
  at::Tensor t = ToCpuContiguous(tensor);
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
  std::string header = Header(Descr(t.scalar_type(), path), shape, 0);
  File f(std::fopen(path.c_str(), "wb"));
  if (!f) Fail(path, "cannot create .npy file");
  WriteAll(f.get(), header.data(), header.size(), path);
  WriteAll(f.get(), t.data_ptr(), t.numel() * t.element_size(), path);
  if (std::fflush(f.get()) != 0) Fail(path, "write failed");
}

// The row count is printed right-aligned in 20 characters: room for any int64.
constexpr int kRowWidth = 20;

NpyStreamWriter::NpyStreamWriter(const std::string& path, at::ScalarType dtype,
                                 std::vector<int64_t> row_shape)
    : path_(path), dtype_(dtype), row_shape_(std::move(row_shape)) {
  std::vector<int64_t> shape{0};
  shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
  std::string header = Header(Descr(dtype_, path_), shape, kRowWidth);
  header_size_ = header.size();
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) Fail(path_, "cannot create .npy file");
  WriteAll(file_, header.data(), header.size(), path_);
}

NpyStreamWriter::~NpyStreamWriter() {
  try {
    Close();
  } catch (const std::exception&) {
    // Destructors must not throw; an explicit Close() reports errors.
  }
}

void NpyStreamWriter::Append(const at::Tensor& rows) {
  if (file_ == nullptr) Fail(path_, "append after close");
  if (rows.dim() != static_cast<int64_t>(row_shape_.size()) + 1) {
    Fail(path_, "appended rows have " + std::to_string(rows.dim()) + " dims, expected " +
                    std::to_string(row_shape_.size() + 1));
  }
  for (size_t i = 0; i < row_shape_.size(); ++i) {
    if (rows.size(i + 1) != row_shape_[i]) Fail(path_, "appended rows have the wrong shape");
  }
  at::Tensor t = ToCpuContiguous(rows.to(dtype_));
  WriteAll(file_, t.data_ptr(), t.numel() * t.element_size(), path_);
  rows_ += rows.size(0);
}

void NpyStreamWriter::Close() {
  if (file_ == nullptr) return;
  std::vector<int64_t> shape{rows_};
  shape.insert(shape.end(), row_shape_.begin(), row_shape_.end());
  std::string header = Header(Descr(dtype_, path_), shape, kRowWidth);
  std::FILE* f = file_;
  file_ = nullptr;
  bool ok = header.size() == header_size_ && std::fseek(f, 0, SEEK_SET) == 0 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) Fail(path_, "failed to finalise .npy header");
}

}  // namespace topolab::science
