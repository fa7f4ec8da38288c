// ArtifactStore: upload protocol (temp file, digest check, rename), reads at
// offsets, and the artifact name rules.
#include "server/store/artifact_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "proto/sha256.h"
#include "tests/test_util.h"

namespace topolab::server {
namespace {

namespace fs = std::filesystem;

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "topolab-artifacts-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto s = ArtifactStore::Open(dir_);
    ASSERT_OK(s);
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Every regular file under <dir>/artifacts, relative paths.
  std::vector<std::string> Files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir_ + "/artifacts")) {
      if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir_ + "/artifacts").string());
    }
    return out;
  }
  size_t TempFiles() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(store_->tmp_dir()), fs::directory_iterator()));
  }

  absl::StatusOr<std::string> Put(const std::vector<std::string>& chunks, const std::string& expected) {
    auto w = store_->NewWriter();
    if (!w.ok()) return w.status();
    for (const std::string& c : chunks) {
      absl::Status s = (*w)->Append(c);
      if (!s.ok()) return s;
    }
    return (*w)->Commit(expected);
  }

  std::string dir_;
  std::unique_ptr<ArtifactStore> store_;
};

TEST_F(ArtifactStoreTest, CommitMakesBlobVisibleUnderItsDigest) {
  const std::string data = "hello, topographic world\n";
  const std::string digest = Sha256Hex(data);
  auto w = store_->NewWriter();
  ASSERT_OK(w);
  ASSERT_OK((*w)->Append("hello, "));
  ASSERT_OK((*w)->Append(""));
  ASSERT_OK((*w)->Append("topographic world\n"));
  EXPECT_EQ((*w)->size(), static_cast<int64_t>(data.size()));
  EXPECT_EQ(TempFiles(), 1u);
  EXPECT_FALSE(store_->Contains(digest));
  auto committed = (*w)->Commit(digest);
  ASSERT_OK(committed);
  EXPECT_EQ(*committed, digest);
  EXPECT_TRUE(store_->Contains(digest));
  auto size = store_->Size(digest);
  ASSERT_OK(size);
  EXPECT_EQ(*size, static_cast<int64_t>(data.size()));
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_EQ(Files(), (std::vector<std::string>{digest.substr(0, 2) + "/" + digest}));
  EXPECT_EQ(store_->BlobPath(digest), dir_ + "/artifacts/" + digest.substr(0, 2) + "/" + digest);
  auto sha_on_disk = Sha256File(store_->BlobPath(digest));
  ASSERT_OK(sha_on_disk);
  EXPECT_EQ(*sha_on_disk, digest);
  // The writer is finished.
  EXPECT_EQ((*w)->Append("more").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*w)->Commit(digest).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ArtifactStoreTest, DigestMismatchLeavesNothingVisible) {
  const std::string data = "the real bytes";
  const std::string actual = Sha256Hex(data);
  const std::string claimed = Sha256Hex("other bytes");
  auto r = Put({data}, claimed);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), "sha256 mismatch: expected " + claimed + " got " + actual);
  EXPECT_FALSE(store_->Contains(actual));
  EXPECT_FALSE(store_->Contains(claimed));
  EXPECT_EQ(store_->Size(claimed).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Files().empty());
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(ArtifactStoreTest, MalformedExpectedDigestAbortsTheUpload) {
  for (const std::string& bad : {std::string(""), std::string(64, 'A'), std::string(63, 'a'), std::string("../x")}) {
    auto r = Put({"data"}, bad);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(Files().empty());
}

TEST_F(ArtifactStoreTest, AbandonedWriterIsATruncatedUploadAndLeavesNothing) {
  {
    auto w = store_->NewWriter();
    ASSERT_OK(w);
    ASSERT_OK((*w)->Append(std::string(100000, 'x')));
    EXPECT_EQ(TempFiles(), 1u);
  }  // the stream broke: no Commit
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_TRUE(Files().empty());
}

TEST_F(ArtifactStoreTest, SameContentTwiceIsOneBlob) {
  const std::string data(3000, 'z');
  const std::string digest = Sha256Hex(data);
  ASSERT_OK(Put({data}, digest));
  ASSERT_OK(Put({data.substr(0, 1000), data.substr(1000)}, digest));
  EXPECT_EQ(Files().size(), 1u);
  EXPECT_EQ(TempFiles(), 0u);
}

TEST_F(ArtifactStoreTest, ConcurrentUploadsOfTheSameAndOtherContent) {
  const std::string same(5000, 's');
  std::vector<std::thread> threads;
  std::vector<absl::Status> results(6);
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      const std::string data = t % 2 == 0 ? same : "unique " + std::to_string(t);
      auto w = store_->NewWriter();
      if (!w.ok()) {
        results[t] = w.status();
        return;
      }
      for (size_t i = 0; i < data.size(); i += 1000) {
        absl::Status s = (*w)->Append(data.substr(i, 1000));
        if (!s.ok()) {
          results[t] = s;
          return;
        }
      }
      results[t] = (*w)->Commit(Sha256Hex(data)).status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_OK(s);
  EXPECT_EQ(Files().size(), 4u);  // one shared blob + three unique ones
  EXPECT_EQ(TempFiles(), 0u);
  auto r = store_->Read(Sha256Hex(same), 0, 10000);
  ASSERT_OK(r);
  EXPECT_EQ(*r, same);
}

TEST_F(ArtifactStoreTest, EmptyBlob) {
  const std::string digest = Sha256Hex("");
  ASSERT_OK(Put({}, digest));
  auto size = store_->Size(digest);
  ASSERT_OK(size);
  EXPECT_EQ(*size, 0);
  auto r = store_->Read(digest, 0, 10);
  ASSERT_OK(r);
  EXPECT_EQ(*r, "");
  EXPECT_EQ(store_->Read(digest, 1, 10).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(ArtifactStoreTest, ReadAtOffsets) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i % 251);
  const std::string digest = Sha256Hex(data);
  ASSERT_OK(Put({data}, digest));
  struct Case {
    int64_t offset, max;
    std::string want;
  };
  const std::vector<Case> cases = {
      {0, 1000, data},           {0, 5000, data},          {0, 10, data.substr(0, 10)},
      {995, 10, data.substr(995)}, {500, 0, ""},            {1000, 10, ""},
      {999, 1, data.substr(999)},  {123, 77, data.substr(123, 77)},
  };
  for (const Case& c : cases) {
    auto r = store_->Read(digest, c.offset, c.max);
    ASSERT_OK(r);
    EXPECT_EQ(*r, c.want) << "offset " << c.offset << " max " << c.max;
  }
  // Resuming a download chunk by chunk reassembles the blob.
  std::string joined;
  for (int64_t off = 0; off < static_cast<int64_t>(data.size()); off += 64) {
    auto r = store_->Read(digest, off, 64);
    ASSERT_OK(r);
    EXPECT_EQ(r->size(), std::min<size_t>(64, data.size() - off));
    joined += *r;
  }
  EXPECT_EQ(joined, data);
  EXPECT_EQ(store_->Read(digest, 1001, 10).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store_->Read(digest, -1, 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Read(digest, 0, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ArtifactStoreTest, UnknownAndMalformedDigests) {
  const std::string absent = std::string(64, 'f');
  EXPECT_FALSE(store_->Contains(absent));
  EXPECT_EQ(store_->Size(absent).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Read(absent, 0, 1).status().code(), absl::StatusCode::kNotFound);
  for (const std::string& bad : {std::string("../../etc/passwd"), std::string(64, 'g'), std::string("")}) {
    EXPECT_FALSE(store_->Contains(bad));
    EXPECT_EQ(store_->Size(bad).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store_->Read(bad, 0, 1).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(ArtifactStoreTest, OpenRemovesStaleTempFilesAndKeepsBlobs) {
  const std::string digest = Sha256Hex("keep me");
  ASSERT_OK(Put({"keep me"}, digest));
  {
    std::ofstream stale(store_->tmp_dir() + "/upload-crashed");
    stale << "half an upload";
  }
  EXPECT_EQ(TempFiles(), 1u);
  store_.reset();
  auto reopened = ArtifactStore::Open(dir_);
  ASSERT_OK(reopened);
  store_ = std::move(*reopened);
  EXPECT_EQ(TempFiles(), 0u);
  EXPECT_TRUE(store_->Contains(digest));
}

TEST_F(ArtifactStoreTest, OpenFailsOnAnUnusableDataDir) {
  EXPECT_EQ(ArtifactStore::Open("").status().code(), absl::StatusCode::kInvalidArgument);
  const std::string file = dir_ + "/a-file";
  { std::ofstream(file) << "x"; }
  auto s = ArtifactStore::Open(file);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(file), absl::string_view::npos) << s.status();
}

TEST(ValidateArtifactNameTest, AcceptsRelativePaths) {
  for (const std::string& name :
       {std::string("a"), std::string("metrics.json"), std::string("checkpoints/final.pt"),
        std::string("positions/layer4.1.npy"), std::string("..a"), std::string("a..b"), std::string(".hidden"),
        std::string("a/.b/c"), std::string("spaces are ok"), std::string("ünïcode/名前.png"),
        std::string(255, 'x')}) {
    EXPECT_OK(ValidateArtifactName(name));
  }
}

TEST(ValidateArtifactNameTest, RejectsUnsafeNames) {
  struct Case {
    std::string name;
    std::string why;  // substring of the message
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {"/etc/passwd", "absolute"},
      {"/", "absolute"},
      {"..", "'..'"},
      {".", "'.'"},
      {"../x", "'..'"},
      {"a/../../x", "'..'"},
      {"a/..", "'..'"},
      {"./a", "'.'"},
      {"a/./b", "'.'"},
      {"a//b", "empty path segment"},
      {"a/", "empty path segment"},
      {"a\\b", "backslash"},
      {"..\\..\\windows", "backslash"},
      {"a\nb", "control character 0x0a"},
      {std::string("a\0b", 3), "control character 0x00"},
      {"tab\there", "control character 0x09"},
      {"del\x7f", "control character 0x7f"},
      {std::string(256, 'x'), "256 bytes"},
      {"a/" + std::string(300, 'b'), "at most 255"},
  };
  for (const Case& c : cases) {
    absl::Status s = ValidateArtifactName(c.name);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "name: " << c.name;
    EXPECT_NE(s.message().find(c.why), absl::string_view::npos) << "name: " << c.name << " -> " << s;
  }
}

}  // namespace
}  // namespace topolab::server
