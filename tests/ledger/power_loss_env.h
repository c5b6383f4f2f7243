// PowerLossEnv: a LevelDB Env that can lose power. It passes everything to the real Env and
// remembers, per file written through it, how much was synced; a crash then throws away what a
// power cut would: every byte appended after a file's last Sync, and every file whose directory
// entry was never made durable. A SIGKILL cannot show a missing fsync (the page cache survives
// the process); this can.
//
// The model is LevelDB's own fault_injection_test's: a new file's directory entry becomes durable
// at its first Sync (what ext4 and xfs do in practice; LevelDB also syncs the directory when it
// syncs a MANIFEST), renames and removals are durable at once, and files the env never wrote
// are durable as they are.
#pragma once

#include <leveldb/env.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace gpumart::ledger::testing {

class PowerLossEnv : public leveldb::EnvWrapper {
 public:
  PowerLossEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}

  // Power goes at once: from now on every write, sync, create, rename and removal fails and
  // changes nothing on disk (a dead machine writes nothing more).
  void CutPower() {
    std::lock_guard lock(mu_);
    powered_ = false;
  }
  // Power goes after `operations` more writes, syncs, creates, renames or removals (the last of
  // them fails), wherever they happen: in the middle of a ledger write or of a compaction.
  void CutPowerAfter(uint64_t operations) {
    std::lock_guard lock(mu_);
    countdown_ = operations;
  }
  bool powered() const {
    std::lock_guard lock(mu_);
    return powered_;
  }
  // A disk that acknowledges fsync without doing it, to show this env catches a missing sync.
  void IgnoreSyncs(bool ignore) {
    std::lock_guard lock(mu_);
    ignore_syncs_ = ignore;
  }

  // After the DB that used this env is closed: leaves on disk only what had been synced (each
  // file truncated to its last synced size, files never synced removed), then powers up again.
  // Returns how many bytes and files the crash took.
  struct Loss {
    uint64_t bytes = 0;
    uint64_t files = 0;
  };
  Loss LoseUnsyncedData() {
    std::lock_guard lock(mu_);
    Loss loss;
    for (const auto& [name, file] : files_) {
      if (!file.entry_durable) {
        ++loss.files;
        loss.bytes += file.size;
        target()->RemoveFile(name);
      } else if (file.size > file.synced) {
        loss.bytes += file.size - file.synced;
        if (::truncate(name.c_str(), static_cast<off_t>(file.synced)) != 0) ++loss.files;
      }
    }
    files_.clear();
    powered_ = true;
    countdown_ = 0;
    return loss;
  }

  leveldb::Status NewWritableFile(const std::string& name, leveldb::WritableFile** result) override {
    std::lock_guard lock(mu_);
    if (!Operate()) return Dead(name);
    const bool existed = target()->FileExists(name);
    leveldb::WritableFile* file = nullptr;
    leveldb::Status status = target()->NewWritableFile(name, &file);
    if (!status.ok()) return status;
    files_[name] = FileState{0, 0, existed};
    *result = new File(file, name, *this);
    return status;
  }
  leveldb::Status NewAppendableFile(const std::string& name, leveldb::WritableFile** result) override {
    std::lock_guard lock(mu_);
    if (!Operate()) return Dead(name);
    uint64_t size = 0;
    const bool existed = target()->GetFileSize(name, &size).ok();
    leveldb::WritableFile* file = nullptr;
    leveldb::Status status = target()->NewAppendableFile(name, &file);
    if (!status.ok()) return status;
    if (!files_.contains(name)) files_[name] = FileState{size, size, existed};
    *result = new File(file, name, *this);
    return status;
  }
  leveldb::Status RemoveFile(const std::string& name) override {
    std::lock_guard lock(mu_);
    if (!Operate()) return Dead(name);
    leveldb::Status status = target()->RemoveFile(name);
    if (status.ok()) files_.erase(name);
    return status;
  }
  leveldb::Status RenameFile(const std::string& from, const std::string& to) override {
    std::lock_guard lock(mu_);
    if (!Operate()) return Dead(from);
    leveldb::Status status = target()->RenameFile(from, to);
    if (!status.ok()) return status;
    files_.erase(to);
    if (auto node = files_.extract(from)) {
      node.key() = to;
      files_.insert(std::move(node));
    }
    return status;
  }

 private:
  struct FileState {
    uint64_t size = 0;     // bytes appended
    uint64_t synced = 0;   // bytes durable
    bool entry_durable = false;
  };

  class File : public leveldb::WritableFile {
   public:
    File(leveldb::WritableFile* file, std::string name, PowerLossEnv& env)
        : file_(file), name_(std::move(name)), env_(env) {}
    leveldb::Status Append(const leveldb::Slice& data) override {
      std::lock_guard lock(env_.mu_);
      if (!env_.Operate()) return Dead(name_);
      leveldb::Status status = file_->Append(data);
      if (status.ok()) {
        if (auto it = env_.files_.find(name_); it != env_.files_.end()) it->second.size += data.size();
      }
      return status;
    }
    leveldb::Status Flush() override {
      std::lock_guard lock(env_.mu_);
      if (!env_.powered_) return Dead(name_);
      return file_->Flush();
    }
    leveldb::Status Sync() override {
      std::lock_guard lock(env_.mu_);
      if (!env_.Operate()) return Dead(name_);
      leveldb::Status status = file_->Sync();
      if (status.ok() && !env_.ignore_syncs_) {
        if (auto it = env_.files_.find(name_); it != env_.files_.end()) {
          it->second.synced = it->second.size;
          it->second.entry_durable = true;
        }
      }
      return status;
    }
    // Closing writes the real file's buffer out; LoseUnsyncedData cuts it back afterwards.
    leveldb::Status Close() override { return file_->Close(); }

   private:
    std::unique_ptr<leveldb::WritableFile> file_;
    std::string name_;
    PowerLossEnv& env_;
  };

  static leveldb::Status Dead(const std::string& name) {
    return leveldb::Status::IOError(name, "power lost (simulated)");
  }
  // Counts one operation; false when the power is (or has just gone) off. Holds mu_.
  bool Operate() {
    if (!powered_) return false;
    if (countdown_ > 0 && --countdown_ == 0) powered_ = false;
    return powered_;
  }

  mutable std::mutex mu_;
  bool powered_ = true;
  bool ignore_syncs_ = false;
  uint64_t countdown_ = 0;  // 0: no cut scheduled
  std::map<std::string, FileState> files_;
};

}  // namespace gpumart::ledger::testing
