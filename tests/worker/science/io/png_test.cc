#include "worker/science/io/png.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace topolab::science {
namespace {

TEST(PngTest, RoundTripsRgb) {
  auto path = (std::filesystem::temp_directory_path() / "topolab_png_test.png").string();
  at::Tensor img = at::randint(0, 256, {7, 5, 3}, at::kByte);
  WritePngRgb(path, img);
  at::Tensor back = ReadPngRgb(path);
  EXPECT_TRUE(back.equal(img));
}

TEST(PngTest, RejectsWrongShapeOrType) {
  auto path = (std::filesystem::temp_directory_path() / "topolab_png_bad.png").string();
  EXPECT_THROW(WritePngRgb(path, at::zeros({4, 4, 3}, at::kFloat)), std::runtime_error);
  EXPECT_THROW(WritePngRgb(path, at::zeros({4, 4}, at::kByte)), std::runtime_error);
}

}  // namespace
}  // namespace topolab::science
