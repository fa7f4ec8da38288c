// Datasets: Fashion-MNIST from the real Debian gzip IDX files (small
// slices), an image folder of PNG/JPEG files written here, IDX and gzip
// error handling, and the bilinear resize on hand-computed values.
#include "worker/science/data/dataset.h"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <stb/stb_image_write.h>

#include "tests/test_util.h"
#include "worker/science/io/png.h"

namespace topolab::science {
namespace {

namespace fs = std::filesystem;

const std::string kFmnist = kDefaultFashionMnistPath;
bool HaveFashionMnist() { return fs::exists(kFmnist + "/t10k-images-idx3-ubyte.gz"); }

fs::path TempDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("topolab_data_test_" + name + "_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void WriteGzip(const fs::path& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

std::string BigEndian(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

TEST(IdxTest, ParsesHandWrittenImagesFile) {
  std::string bytes = BigEndian(0x803) + BigEndian(2) + BigEndian(2) + BigEndian(3);
  for (int i = 0; i < 12; ++i) bytes.push_back(static_cast<char>(i * 10));
  absl::StatusOr<at::Tensor> t = ParseIdx(bytes, 0x803, "mem");
  ASSERT_OK(t);
  EXPECT_EQ(t->sizes(), (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(t->index({1, 1, 2}).item<int>(), 110);
}

TEST(IdxTest, RejectsWrongMagicAndSizeNamingThePath) {
  std::string labels = BigEndian(0x801) + BigEndian(3) + std::string("\x01\x02\x03", 3);
  absl::StatusOr<at::Tensor> wrong_magic = ParseIdx(labels, 0x803, "/x/labels.gz");
  EXPECT_EQ(wrong_magic.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(wrong_magic.status().message().find("/x/labels.gz"), std::string::npos);
  EXPECT_NE(wrong_magic.status().message().find("0x00000801"), std::string::npos);
  absl::StatusOr<at::Tensor> short_data = ParseIdx(labels.substr(0, labels.size() - 1), 0x801, "/x/l.gz");
  EXPECT_EQ(short_data.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(short_data.status().message().find("promises 3 bytes"), std::string::npos);
  EXPECT_EQ(ParseIdx("abc", 0x801, "p").status().code(), absl::StatusCode::kDataLoss);
}

TEST(GzipTest, MissingAndCorruptFiles) {
  fs::path dir = TempDir("gzip");
  EXPECT_EQ(ReadGzipFile((dir / "nope.gz").string()).status().code(), absl::StatusCode::kNotFound);
  // A valid gzip cut in half: zlib reports a truncated stream.
  std::string payload(5000, 'x');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>((i * 7919) % 251);
  WriteGzip(dir / "ok.gz", payload);
  absl::StatusOr<std::string> ok = ReadGzipFile((dir / "ok.gz").string());
  ASSERT_OK(ok);
  EXPECT_EQ(*ok, payload);
  std::ifstream in(dir / "ok.gz", std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream((dir / "cut.gz").string(), std::ios::binary) << gz.substr(0, gz.size() / 2);
  absl::StatusOr<std::string> cut = ReadGzipFile((dir / "cut.gz").string());
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(cut.status().message().find("cut.gz"), std::string::npos);
  fs::remove_all(dir);
}

TEST(ResizeTest, BilinearUpscaleMatchesHandComputedValues) {
  // 2x2 -> 4x4 with align_corners=false: source coordinate (d + 0.5)/2 - 0.5,
  // clamped at the border, so each row is [a, .75a+.25b, .25a+.75b, b].
  at::Tensor img = at::tensor({0, 51, 102, 153}, at::TensorOptions().dtype(at::kByte)).view({1, 1, 2, 2});
  at::Tensor out = ToRgbFloat(img, 4);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{1, 3, 4, 4}));
  at::Tensor expected = at::tensor({0.0, 0.05, 0.15, 0.2, 0.1, 0.15, 0.25, 0.3, 0.3, 0.35, 0.45, 0.5, 0.4, 0.45,
                                    0.55, 0.6},
                                   at::TensorOptions().dtype(at::kFloat))
                            .view({4, 4});
  for (int c = 0; c < 3; ++c) EXPECT_TRUE(at::allclose(out[0][c], expected, 1e-6, 1e-6)) << out[0][c];
}

TEST(ResizeTest, SameSizeIsExactAndShrinkKeepsConstants) {
  at::Tensor img = at::randint(0, 256, {2, 1, 28, 28}, at::TensorOptions().dtype(at::kByte));
  at::Tensor same = ToRgbFloat(img, 28);
  EXPECT_TRUE(at::equal(same[1][2], img[1][0].to(at::kFloat) / 255.0));
  at::Tensor flat = at::full({1, 3, 40, 40}, 0.25, at::TensorOptions().dtype(at::kFloat));
  EXPECT_TRUE(at::allclose(ToRgbFloat(flat, 16), at::full({1, 3, 16, 16}, 0.25), 1e-6, 1e-6));
}

TEST(DataOptionsTest, ParsesKeysAndNamesBadOnes) {
  absl::StatusOr<DataOptions> o = ParseDataOptions(
      {{"dataset", "image_folder"}, {"path", "/d"}, {"image_size", 64}, {"classes", {"a", "b"}}});
  ASSERT_OK(o);
  EXPECT_EQ(o->dataset, "image_folder");
  EXPECT_EQ(o->image_size, 64);
  EXPECT_EQ(o->classes, (std::vector<std::string>{"a", "b"}));
  auto bad = [](const nlohmann::json& j) { return ParseDataOptions(j).status(); };
  EXPECT_NE(bad({{"image_size", 4}}).message().find("data.image_size"), std::string::npos);
  EXPECT_NE(bad({{"dataset", "cifar"}}).message().find("data.dataset"), std::string::npos);
  EXPECT_NE(bad({{"classes", {1}}}).message().find("data.classes[0]"), std::string::npos);
  EXPECT_EQ(bad({{"train_subset", -1}}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenDataset(nlohmann::json::object(), "valid").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FashionMnistTest, TestSplitSliceMatchesRawIdx) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  absl::StatusOr<std::string> raw_images = ReadGzipFile(kFmnist + "/t10k-images-idx3-ubyte.gz");
  ASSERT_OK(raw_images);
  absl::StatusOr<at::Tensor> images = ParseIdx(*raw_images, 0x803, "t10k-images");
  ASSERT_OK(images);
  EXPECT_EQ(images->sizes(), (std::vector<int64_t>{10000, 28, 28}));
  absl::StatusOr<std::string> raw_labels = ReadGzipFile(kFmnist + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_OK(raw_labels);
  absl::StatusOr<at::Tensor> labels = ParseIdx(*raw_labels, 0x801, "t10k-labels");
  ASSERT_OK(labels);

  absl::StatusOr<std::unique_ptr<ImageDataset>> ds = OpenDataset({{"image_size", 28}}, "test");
  ASSERT_OK(ds);
  EXPECT_EQ((*ds)->size(), 10000);
  EXPECT_EQ((*ds)->class_names().size(), 10u);
  EXPECT_EQ((*ds)->class_names()[9], "ankle boot");
  auto [x, y] = (*ds)->GetBatch({0, 1, 9999});
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 3, 28, 28}));
  EXPECT_EQ(x.scalar_type(), at::kFloat);
  EXPECT_EQ(y.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(x[2][1], (*images)[9999].to(at::kFloat) / 255.0));
  EXPECT_TRUE(at::equal(x[0][0], x[0][2]));  // grey replicated
  EXPECT_EQ(y[2].item<int64_t>(), (*labels)[9999].item<int64_t>());
  EXPECT_EQ(y[0].item<int64_t>(), 9);  // the first t10k image is an ankle boot
}

TEST(FashionMnistTest, SubsetIsSeededAndResized) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  nlohmann::json spec = {{"image_size", 32}, {"test_subset", 50}, {"subset_seed", 3}};
  auto a = OpenDataset(spec, "test");
  auto b = OpenDataset(spec, "test");
  spec["subset_seed"] = 4;
  auto c = OpenDataset(spec, "test");
  ASSERT_OK(a);
  ASSERT_OK(b);
  ASSERT_OK(c);
  EXPECT_EQ((*a)->size(), 50);
  std::vector<int64_t> all(50);
  for (int i = 0; i < 50; ++i) all[i] = i;
  auto [xa, ya] = (*a)->GetBatch(all);
  auto [xb, yb] = (*b)->GetBatch(all);
  auto [xc, yc] = (*c)->GetBatch(all);
  EXPECT_EQ(xa.sizes(), (std::vector<int64_t>{50, 3, 32, 32}));
  EXPECT_GE(xa.min().item<float>(), 0.0f);
  EXPECT_LE(xa.max().item<float>(), 1.0f);
  EXPECT_TRUE(at::equal(xa, xb));
  EXPECT_TRUE(at::equal(ya, yb));
  EXPECT_FALSE(at::equal(xa, xc));
}

TEST(FashionMnistTest, ClassesFilterRelabelsInListedOrder) {
  if (!HaveFashionMnist()) GTEST_SKIP() << "dataset-fashion-mnist not installed";
  auto ds = OpenDataset({{"classes", {"bag", "trouser"}}}, "test");
  ASSERT_OK(ds);
  EXPECT_EQ((*ds)->size(), 2000);  // 1000 test images per class
  EXPECT_EQ((*ds)->class_names(), (std::vector<std::string>{"bag", "trouser"}));
  std::vector<int64_t> idx(2000);
  for (int i = 0; i < 2000; ++i) idx[i] = i;
  auto [x, y] = (*ds)->GetBatch(idx);
  EXPECT_EQ(y.eq(0).sum().item<int64_t>(), 1000);
  EXPECT_EQ(y.eq(1).sum().item<int64_t>(), 1000);
  auto bad = OpenDataset({{"classes", {"bag", "cat"}}}, "test");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("data.classes[1]"), std::string::npos);
}

TEST(FashionMnistTest, MissingOrCorruptFilesNameTheFile) {
  fs::path dir = TempDir("fmnist");
  auto missing = OpenDataset({{"path", dir.string()}}, "test");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("t10k-images-idx3-ubyte.gz"), std::string::npos);
  // Right file names, labels file has the images magic.
  std::string images = BigEndian(0x803) + BigEndian(1) + BigEndian(2) + BigEndian(2) + std::string(4, '\x10');
  WriteGzip(dir / "t10k-images-idx3-ubyte.gz", images);
  WriteGzip(dir / "t10k-labels-idx1-ubyte.gz", images);
  auto corrupt = OpenDataset({{"path", dir.string()}}, "test");
  EXPECT_EQ(corrupt.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(corrupt.status().message().find("t10k-labels-idx1-ubyte.gz"), std::string::npos);
  // Valid tiny pair: one 2x2 image with label 3.
  WriteGzip(dir / "t10k-labels-idx1-ubyte.gz", BigEndian(0x801) + BigEndian(1) + std::string("\x03", 1));
  auto tiny = OpenDataset({{"path", dir.string()}, {"image_size", 8}}, "test");
  ASSERT_OK(tiny);
  auto [x, y] = (*tiny)->GetBatch({0});
  EXPECT_TRUE(at::allclose(x, at::full({1, 3, 8, 8}, 16.0 / 255.0), 1e-6, 1e-6));
  EXPECT_EQ(y[0].item<int64_t>(), 3);
  // A label outside 0..9.
  WriteGzip(dir / "t10k-labels-idx1-ubyte.gz", BigEndian(0x801) + BigEndian(1) + std::string("\x0c", 1));
  EXPECT_EQ(OpenDataset({{"path", dir.string()}}, "test").status().code(), absl::StatusCode::kDataLoss);
  fs::remove_all(dir);
}

// A solid-colour image as [H,W,3] uint8.
at::Tensor Solid(int h, int w, int r, int g, int b) {
  at::Tensor t = at::empty({h, w, 3}, at::TensorOptions().dtype(at::kByte));
  t.select(2, 0).fill_(r);
  t.select(2, 1).fill_(g);
  t.select(2, 2).fill_(b);
  return t;
}

TEST(ImageFolderTest, SortedClassesLazyLoadingAndSplits) {
  fs::path root = TempDir("folder");
  for (const char* split : {"train", "val"}) {
    fs::create_directories(root / split / "zebra");
    fs::create_directories(root / split / "apple");
    WritePngRgb((root / split / "zebra" / "b.png").string(), Solid(20, 30, 255, 0, 0));
    WritePngRgb((root / split / "zebra" / "a.PNG").string(), Solid(10, 10, 0, 255, 0));
    // Grayscale JPEG written with stb: replicated to 3 channels.
    std::vector<unsigned char> gray(16 * 16, 128);
    ASSERT_NE(stbi_write_jpg((root / split / "apple" / "g.jpg").c_str(), 16, 16, 1, gray.data(), 95), 0);
    std::ofstream(root / split / "apple" / "notes.txt") << "ignored";
  }
  absl::StatusOr<std::unique_ptr<ImageDataset>> train =
      OpenDataset({{"dataset", "image_folder"}, {"path", root.string()}, {"image_size", 12}}, "train");
  ASSERT_OK(train);
  EXPECT_EQ((*train)->class_names(), (std::vector<std::string>{"apple", "zebra"}));
  ASSERT_EQ((*train)->size(), 3);
  auto [x, y] = (*train)->GetBatch({2, 1, 0});
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{3, 3, 12, 12}));
  EXPECT_EQ(y[0].item<int64_t>(), 1);  // zebra/b.png (files sorted: a.PNG, b.png)
  EXPECT_EQ(y[2].item<int64_t>(), 0);  // apple/g.jpg
  EXPECT_TRUE(at::allclose(x[0][0], at::ones({12, 12}), 1e-6, 1e-6));   // red
  EXPECT_TRUE(at::allclose(x[0][1], at::zeros({12, 12}), 1e-6, 1e-6));
  EXPECT_TRUE(at::allclose(x[1][1], at::ones({12, 12}), 1e-6, 1e-6));   // green
  EXPECT_TRUE(at::allclose(x[2][0], x[2][2], 0, 0));                       // grey replicated
  EXPECT_NEAR(x[2][0].mean().item<float>(), 128.0 / 255.0, 0.02);
  // "test" falls back to val/.
  auto test = OpenDataset({{"dataset", "image_folder"}, {"path", root.string()}}, "test");
  ASSERT_OK(test);
  EXPECT_EQ((*test)->size(), 3);
  // Corrupt file: opening works (lazy), the batch throws naming the file.
  std::ofstream(root / "train" / "apple" / "z_broken.png") << "not a png";
  auto broken = OpenDataset({{"dataset", "image_folder"}, {"path", root.string()}}, "train");
  ASSERT_OK(broken);
  try {
    (*broken)->GetBatch({1});
    ADD_FAILURE() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("z_broken.png"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(ImageFolderTest, ErrorsNameThePath) {
  auto no_path = OpenDataset({{"dataset", "image_folder"}}, "train");
  EXPECT_EQ(no_path.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(no_path.status().message().find("data.path"), std::string::npos);
  auto missing = OpenDataset({{"dataset", "image_folder"}, {"path", "/nonexistent/topolab"}}, "train");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("/nonexistent/topolab"), std::string::npos);
  fs::path empty = TempDir("empty");
  auto no_classes = OpenDataset({{"dataset", "image_folder"}, {"path", empty.string()}}, "train");
  EXPECT_EQ(no_classes.status().code(), absl::StatusCode::kNotFound);
  fs::remove_all(empty);
}

}  // namespace
}  // namespace topolab::science
