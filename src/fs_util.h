// fs_util.h — small file-system helpers with the durability rules pullmail
// relies on. All throw Error(LocalIO) with the path and strerror on failure.
#pragma once

#include <string>
#include <string_view>

namespace pullmail {

// mkdir -p with the given mode for created directories.
void make_dirs(const std::string& path, unsigned mode);
// Reads a whole (small) file. Returns false when it does not exist.
bool read_file_if_exists(const std::string& path, std::string& out);
// write(2) until everything is written; EINTR-safe.
void write_all_fd(int fd, std::string_view data, const std::string& path_for_errors);
// fsync a directory so that a rename or create inside it is durable.
void fsync_dir(const std::string& dir);
// Replace `path` atomically and durably: write a sibling temp file, fsync it,
// rename over `path`, fsync the directory.
void write_file_atomic(const std::string& path, std::string_view data, unsigned mode);

}  // namespace pullmail
