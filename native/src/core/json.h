// A small JSON writer for the agent's replies and a strict reader for the
// flat request objects it accepts. Plain values: any thread may use its own.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace leakscope {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(const char* name);
  JsonWriter& value(const std::string& s);
  JsonWriter& value(const char* s);
  JsonWriter& value(uint64_t n);
  JsonWriter& value(int64_t n);
  JsonWriter& value(int n) { return value(int64_t(n)); }
  JsonWriter& value(unsigned n) { return value(uint64_t(n)); }
  JsonWriter& value(double n);
  JsonWriter& value(bool b);
  JsonWriter& null();
  // A value that is JSON already (a runtime's part of a snapshot).
  JsonWriter& raw(const std::string& json);
  // Fields written by another writer (`"a":1,"b":2`, no braces) into the open object.
  JsonWriter& fields_raw(const std::string& fields);
  template <typename T>
  JsonWriter& field(const char* name, const T& v) { return key(name).value(v); }
  const std::string& str() const { return out_; }

 private:
  void separate();
  void write_string(const std::string& s);
  std::string out_;
  bool need_comma_ = false;
};

// A request: one JSON object whose values are strings, numbers, booleans or
// null. Anything else (nesting, trailing bytes, bad escapes) is rejected with
// a reason in `error`.
struct Request {
  std::map<std::string, std::string> strings;
  std::map<std::string, double> numbers;
};
bool parse_request(const std::string& text, Request* out, std::string* error);

}  // namespace leakscope
