#include "node/sdl_json.h"

namespace gpumart::node {
namespace {

using nlohmann::json;

json OptionalJson(const auto& value) {
  if (!value) return nullptr;
  return json(*value);
}

json GpuToJson(const market::GpuRequest& gpu) {
  json options = json::array();
  for (const auto& option : gpu.options) {
    options.push_back({{"vendor", option.vendor},
                       {"model", option.model},
                       {"ram_min_bytes", OptionalJson(option.ram_min_bytes)},
                       {"interface", option.interface ? json(std::string(market::ToString(*option.interface)))
                                                      : json(nullptr)}});
  }
  return {{"units", gpu.units}, {"options", std::move(options)}};
}

json ServiceToJson(const market::ServiceRequest& service, const market::Deployment& deployment) {
  json storage = json::array();
  for (const auto& volume : service.resources.storage) {
    storage.push_back({{"name", volume.name},
                       {"bytes", volume.bytes},
                       {"class", OptionalJson(volume.storage_class)},
                       {"persistent", volume.persistent}});
  }
  const auto& cap = service.price_cap;
  json out = {{"name", service.name},
              {"profile", service.profile},
              {"count", service.count},
              {"cpu_millis", service.resources.cpu_millis},
              {"memory_bytes", service.resources.memory_bytes},
              {"storage", std::move(storage)},
              {"gpu", GpuToJson(service.resources.gpu)},
              {"cuda_min", service.cuda_min ? json(market::ToString(*service.cuda_min)) : json(nullptr)},
              {"price_cap", {{"denom", cap.denom}, {"amount", cap.amount}, {"per", "block"}, {"per_hour", cap.per_hour}}}};
  if (auto spec = deployment.services.find(service.name); spec != deployment.services.end()) {
    out["image"] = spec->second.image;
  }
  return out;
}

}  // namespace

json DeploymentToJson(const market::Deployment& deployment) {
  json groups = json::array();
  for (const auto& order : deployment.orders) {
    json services = json::array();
    for (const auto& service : order.services) services.push_back(ServiceToJson(service, deployment));
    groups.push_back({{"name", order.group},
                      {"attributes", order.attributes},
                      {"signed_by", {{"all_of", order.signed_by.all_of}, {"any_of", order.signed_by.any_of}}},
                      {"services", std::move(services)},
                      {"denom", order.Denom()},
                      {"cap_per_hour", order.CapPerHour()}});
  }
  return {{"version", deployment.version}, {"groups", std::move(groups)}};
}

}  // namespace gpumart::node
