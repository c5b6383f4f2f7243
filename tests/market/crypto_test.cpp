#include "market/crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/temp_dir.h"

namespace gpumart::market {
namespace {

// Temp dirs name their files with File(); the shared helper calls it Sub().
class TempDir : public testing::TempDir {
 public:
  std::string File(const std::string& name) const { return Sub(name); }
};

TEST(CryptoTest, SignAndVerify) {
  const Identity id = Identity::Generate();
  const std::string text = "lease terms";
  const auto* data = reinterpret_cast<const uint8_t*>(text.data());
  const Signature sig = id.Sign(data, text.size());
  EXPECT_TRUE(VerifyDetached(id.public_key(), sig, data, text.size()));
  EXPECT_FALSE(VerifyDetached(Identity::Generate().public_key(), sig, data, text.size()));
  Signature bad = sig;
  bad[0] ^= 1;
  EXPECT_FALSE(VerifyDetached(id.public_key(), bad, data, text.size()));
  EXPECT_FALSE(VerifyDetached(id.public_key(), sig, data, text.size() - 1));
}

TEST(CryptoTest, SeedIsDeterministic) {
  const Seed seed{7, 7, 7};
  EXPECT_EQ(Identity::FromSeed(seed).public_key(), Identity::FromSeed(seed).public_key());
  EXPECT_EQ(Identity::FromSeed(seed).seed(), seed);
  EXPECT_NE(Identity::FromSeed(seed).public_key(), Identity::FromSeed(Seed{8}).public_key());
}

TEST(CryptoTest, Blake2bKnownAnswer) {
  // BLAKE2b-256 of the empty string.
  EXPECT_EQ(ToHex(Blake2b256(nullptr, 0)), "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

TEST(CryptoTest, NoncesDiffer) { EXPECT_NE(RandomNonce(), RandomNonce()); }

TEST(CryptoTest, KeyFileRoundTripWithMode0600) {
  TempDir dir;
  const std::string path = dir.File("tenant.key");
  const Identity id = Identity::Generate();
  ASSERT_TRUE(WriteKeyFile(path, id).ok());
  struct stat info{};
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  Result<Identity> loaded = LoadKeyFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->public_key(), id.public_key());
}

TEST(CryptoTest, LoadOrCreateKeepsTheFirstIdentity) {
  TempDir dir;
  const std::string path = dir.File("node.key");
  Result<Identity> created = LoadOrCreateKeyFile(path);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Result<Identity> loaded = LoadOrCreateKeyFile(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->public_key(), created->public_key());
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);  // a loosened key is refused, never replaced
  EXPECT_EQ(LoadOrCreateKeyFile(path).status().code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(LoadOrCreateKeyFile(dir.File("missing-dir/node.key")).status().code(), Status::Code::kIoError);
}

TEST(CryptoTest, KeyFileNeverOverwritten) {
  TempDir dir;
  const std::string path = dir.File("tenant.key");
  const Identity first = Identity::Generate();
  ASSERT_TRUE(WriteKeyFile(path, first).ok());
  Status again = WriteKeyFile(path, Identity::Generate());
  EXPECT_EQ(again.code(), Status::Code::kAlreadyExists);
  EXPECT_EQ(LoadKeyFile(path)->public_key(), first.public_key());
}

TEST(CryptoTest, KeyFileReadableByOthersRefused) {
  TempDir dir;
  const std::string path = dir.File("tenant.key");
  ASSERT_TRUE(WriteKeyFile(path, Identity::Generate()).ok());
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    Status status = LoadKeyFile(path).status();
    EXPECT_EQ(status.code(), Status::Code::kPermissionDenied) << std::oct << mode;
    EXPECT_NE(status.message().find("chmod 600"), std::string::npos);
  }
}

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  chmod(path.c_str(), 0600);
}

TEST(CryptoTest, MalformedKeyFilesRejected) {
  TempDir dir;
  const std::string path = dir.File("bad.key");
  WriteText(path, "hello\n");
  EXPECT_EQ(LoadKeyFile(path).status().code(), Status::Code::kInvalidArgument);
  const Identity id = Identity::Generate();
  const std::string good_pub = ToHex(id.public_key());
  const std::string good_seed = ToHex(id.seed());
  std::remove(path.c_str());
  WriteText(path, "gpumart-identity-v1\npublic " + good_pub + "\nseed " + good_seed.substr(2) + "\n");
  EXPECT_NE(LoadKeyFile(path).status().message().find("seed must be 64 hex digits"), std::string::npos);
  std::remove(path.c_str());
  WriteText(path, "gpumart-identity-v1\npublic " + ToHex(Identity::Generate().public_key()) + "\nseed " + good_seed + "\n");
  EXPECT_EQ(LoadKeyFile(path).status().code(), Status::Code::kCorruption);
  std::remove(path.c_str());
  WriteText(path, std::string(kMaxKeyFileBytes + 1, 'x'));
  EXPECT_EQ(LoadKeyFile(path).status().code(), Status::Code::kLimitExceeded);
  EXPECT_EQ(LoadKeyFile(dir.File("missing.key")).status().code(), Status::Code::kIoError);
}

}  // namespace
}  // namespace gpumart::market
