// The console page's files, compiled into the binary from node/console/assets/ at build time
// (node/console/embed_assets.cmake writes the table), so a node serves its console with no file
// and no network access.
#pragma once

#include <string_view>
#include <vector>

namespace gpumart::console {

struct Asset {
  std::string_view path;          // "/index.html", "/console.js", ...
  std::string_view content_type;  // from the file's extension
  std::string_view body;
};

// Every file of node/console/assets/, sorted by path.
const std::vector<Asset>& Assets();

}  // namespace gpumart::console
