#include "worker/science/io/npy.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace topolab::science {
namespace {

std::string TempPath(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("topolab_io_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(NpyTest, RoundTripsEveryDtype) {
  for (auto dtype : {at::kHalf, at::kFloat, at::kDouble, at::kChar, at::kShort, at::kInt, at::kLong,
                     at::kByte, at::kBool}) {
    at::Tensor t = (at::arange(24, at::kDouble).reshape({2, 3, 4}) - 5).to(dtype);
    std::string path = TempPath("rt.npy");
    WriteNpy(path, t);
    at::Tensor back = ReadNpy(path);
    EXPECT_EQ(back.scalar_type(), dtype);
    EXPECT_EQ(back.sizes(), t.sizes());
    EXPECT_TRUE(back.equal(t)) << c10::toString(dtype);
  }
}

TEST(NpyTest, HeaderMatchesNumpyLayout) {
  std::string path = TempPath("hdr.npy");
  WriteNpy(path, at::zeros({5}, at::kFloat));
  std::string bytes = ReadBytes(path);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 6), std::string("\x93NUMPY", 6));
  EXPECT_EQ(bytes[6], 1);
  size_t header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  EXPECT_EQ((10 + header_len) % 64, 0u);
  std::string dict = bytes.substr(10, header_len);
  EXPECT_NE(dict.find("'descr': '<f4'"), std::string::npos);
  EXPECT_NE(dict.find("'shape': (5,)"), std::string::npos);
  EXPECT_EQ(dict.back(), '\n');
  EXPECT_EQ(bytes.size(), 10 + header_len + 5 * 4);
}

TEST(NpyTest, ScalarAndEmptyArrays) {
  std::string path = TempPath("scalar.npy");
  WriteNpy(path, at::scalar_tensor(3.5, at::kDouble));
  at::Tensor s = ReadNpy(path);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item<double>(), 3.5);
  WriteNpy(path, at::zeros({0, 7}, at::kFloat));
  at::Tensor e = ReadNpy(path);
  EXPECT_EQ(e.size(0), 0);
  EXPECT_EQ(e.size(1), 7);
}

TEST(NpyTest, NonContiguousInputIsWrittenInLogicalOrder) {
  at::Tensor t = at::arange(6, at::kFloat).reshape({2, 3}).t();
  std::string path = TempPath("nc.npy");
  WriteNpy(path, t);
  EXPECT_TRUE(ReadNpy(path).equal(t));
}

TEST(NpyTest, StreamWriterAppendsRowsAndFixesHeader) {
  std::string path = TempPath("stream.npy");
  at::Tensor all = at::randn({10, 3, 2});
  {
    NpyStreamWriter w(path, at::kFloat, {3, 2});
    w.Append(all.slice(0, 0, 4));
    w.Append(all.slice(0, 4, 10).to(at::kDouble));  // converted to the file's dtype
    EXPECT_EQ(w.rows(), 10);
    w.Close();
  }
  at::Tensor back = ReadNpy(path);
  EXPECT_EQ(back.sizes(), all.sizes());
  EXPECT_TRUE(back.allclose(all));
}

TEST(NpyTest, StreamWriterRejectsWrongRowShape) {
  NpyStreamWriter w(TempPath("bad_stream.npy"), at::kFloat, {3});
  EXPECT_THROW(w.Append(at::zeros({2, 4})), std::runtime_error);
  EXPECT_THROW(w.Append(at::zeros({3})), std::runtime_error);
}

TEST(NpyTest, ErrorsNameTheFile) {
  std::string path = TempPath("garbage.npy");
  { std::ofstream(path) << "not numpy"; }
  try {
    ReadNpy(path);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("bad magic"), std::string::npos);
  }
  EXPECT_THROW(ReadNpy(TempPath("missing.npy")), std::runtime_error);
}

TEST(NpyTest, TruncatedDataIsAnError) {
  std::string path = TempPath("trunc.npy");
  WriteNpy(path, at::ones({100}, at::kFloat));
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 8);
  EXPECT_THROW(ReadNpy(path), std::runtime_error);
}

}  // namespace
}  // namespace topolab::science
