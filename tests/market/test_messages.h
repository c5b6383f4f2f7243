// Sample messages shared by the market tests and benchmarks.
#pragma once

#include "market/types.h"

namespace gpumart::market::testing {

// A realistic order: one 2-GPU vLLM service with three fallbacks, plus a small web service.
inline Order SampleOrder() {
  Order order;
  order.group = "dcloud";
  order.attributes = {{"region", "us-west"}, {"tier", "community"}};
  order.signed_by.any_of = {"akash1365yvmc4s7awdyj3n2sav7xfx76adc6dnmlx63"};
  ServiceRequest vllm;
  vllm.name = "vllm";
  vllm.profile = "vllm";
  vllm.count = 1;
  vllm.resources.cpu_millis = 16000;
  vllm.resources.memory_bytes = 64 * kGi;
  vllm.resources.storage = {StorageVolume{"default", 20 * kGi, std::nullopt, false},
                            StorageVolume{"models", 200 * kGi, std::string("beta3"), true}};
  vllm.resources.gpu.units = 2;
  vllm.resources.gpu.options = {GpuOption{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm},
                                GpuOption{"nvidia", "a100", 80 * kGi, std::nullopt},
                                GpuOption{"nvidia", "*", 48 * kGi, std::nullopt}};
  vllm.cuda_min = CudaVersion{12, 4};
  vllm.price_cap = PriceCap{"uakt", 250000, PerBlockToPerHour(250000)};
  ServiceRequest web;
  web.name = "web";
  web.profile = "web";
  web.count = 2;
  web.resources.cpu_millis = 500;
  web.resources.memory_bytes = 512 * kMi;
  web.resources.storage = {StorageVolume{"default", kGi, std::nullopt, false}};
  web.price_cap = PriceCap{"uakt", 1000, PerBlockToPerHour(1000)};
  order.services = {vllm, web};
  return order;
}

inline Offer SampleOffer() {
  Offer offer;
  offer.provider = "prov-a";
  offer.name = "Provider A";
  offer.attributes = {{"region", "us-west"}};
  offer.auditors = {"akash1365yvmc4s7awdyj3n2sav7xfx76adc6dnmlx63"};
  offer.reputation_ppm = 970'000;
  PriceTable table;
  table.denom = "uakt";
  table.gpu = {{"h100.80Gi.sxm", 300000}, {"a100", 200000}, {"*", 90000}};
  table.cpu = 1000;
  table.memory = 200;
  table.storage = 10;
  offer.pricing = {table};
  NodeCapacity node;
  node.name = "n1";
  node.cpu_millis = 64000;
  node.memory_bytes = 512 * kGi;
  node.storage_bytes = 2 * kTi;
  node.gpus = {GpuDevices{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm, CudaVersion{12, 4}, 8}};
  offer.nodes = {node};
  return offer;
}

inline std::vector<ServiceAssignment> SampleAssignments() {
  ServiceAssignment vllm;
  vllm.service = "vllm";
  vllm.option = 0;
  vllm.device = DeviceType{"nvidia", "h100", 80 * kGi, GpuInterface::kSxm};
  vllm.placements = {Placement{"n1", 1}};
  ServiceAssignment web;
  web.service = "web";
  web.placements = {Placement{"n1", 2}};
  return {vllm, web};
}

}  // namespace gpumart::market::testing
