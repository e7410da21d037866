#include "uv_census.h"

extern "C" {
struct uv_handle_s;
typedef void (*uv_walk_cb)(uv_handle_s* handle, void* arg);
void uv_walk(uv_loop_s* loop, uv_walk_cb walk_cb, void* arg);
int uv_is_active(const uv_handle_s* handle);
int uv_has_ref(const uv_handle_s* handle);
int uv_handle_get_type(const uv_handle_s* handle);  // uv_handle_type
const char* uv_handle_type_name(int type);
}

namespace leakscope {

std::map<std::string, HandleCount> count_handles(uv_loop_s* loop) {
  std::map<std::string, HandleCount> counts;
  uv_walk(
      loop,
      [](uv_handle_s* handle, void* arg) {
        auto& counts = *static_cast<std::map<std::string, HandleCount>*>(arg);
        const char* name = uv_handle_type_name(uv_handle_get_type(handle));
        HandleCount& c = counts[name != nullptr ? name : "unknown"];
        ++c.total;
        const bool active = uv_is_active(handle) != 0;
        if (active) ++c.active;
        if (active && uv_has_ref(handle) != 0) ++c.referenced;
      },
      &counts);
  return counts;
}

}  // namespace leakscope
