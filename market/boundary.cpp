#include "market/boundary.h"

#include <exception>
#include <new>
#include <stdexcept>
#include <string>

namespace gpumart {

Status CurrentExceptionStatus(std::string_view context) {
  const std::string where = context.empty() ? std::string() : std::string(context) + ": ";
  try {
    throw;
  } catch (const std::bad_alloc&) {
    return Status::LimitExceeded(where + "out of memory");
  } catch (const std::length_error& e) {
    return Status::LimitExceeded(where + "too large: " + e.what());
  } catch (const std::exception& e) {
    return Status::Internal(where + e.what());
  } catch (...) {
    return Status::Internal(where + "unknown exception");
  }
}

}  // namespace gpumart
