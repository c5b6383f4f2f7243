// JSON rendering of a parsed SDL, shared by `gpumart sdl check --json` and the demo command.
// The shape is documented in docs/SDL.md; values that are absent in the SDL are null.
#pragma once

#include <nlohmann/json.hpp>

#include "market/sdl.h"

namespace gpumart::node {

nlohmann::json DeploymentToJson(const market::Deployment& deployment);

}  // namespace gpumart::node
