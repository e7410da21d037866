#include "json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace leakscope {

void JsonWriter::separate() {
  if (need_comma_) out_ += ',';
  need_comma_ = true;
}

JsonWriter& JsonWriter::begin_object() { separate(); out_ += '{'; need_comma_ = false; return *this; }
JsonWriter& JsonWriter::end_object() { out_ += '}'; need_comma_ = true; return *this; }
JsonWriter& JsonWriter::begin_array() { separate(); out_ += '['; need_comma_ = false; return *this; }
JsonWriter& JsonWriter::end_array() { out_ += ']'; need_comma_ = true; return *this; }

JsonWriter& JsonWriter::key(const char* name) {
  separate();
  write_string(name);
  out_ += ':';
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::value(const char* s) { return value(std::string(s ? s : "")); }

JsonWriter& JsonWriter::value(const std::string& s) {
  separate();
  write_string(s);
  return *this;
}

void JsonWriter::write_string(const std::string& s) {
  out_ += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out_ += "\\\""; break;
      case '\\': out_ += "\\\\"; break;
      case '\n': out_ += "\\n"; break;
      case '\r': out_ += "\\r"; break;
      case '\t': out_ += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out_ += buf;
        } else {
          out_ += char(c);
        }
    }
  }
  out_ += '"';
}

JsonWriter& JsonWriter::value(uint64_t n) { separate(); out_ += std::to_string(n); return *this; }
JsonWriter& JsonWriter::value(int64_t n) { separate(); out_ += std::to_string(n); return *this; }
JsonWriter& JsonWriter::value(bool b) { separate(); out_ += b ? "true" : "false"; return *this; }
JsonWriter& JsonWriter::null() { separate(); out_ += "null"; return *this; }
JsonWriter& JsonWriter::raw(const std::string& json) { separate(); out_ += json.empty() ? "null" : json; return *this; }

JsonWriter& JsonWriter::fields_raw(const std::string& fields) {
  if (fields.empty()) return *this;
  separate();
  out_ += fields;
  return *this;
}

JsonWriter& JsonWriter::value(double n) {
  separate();
  if (!std::isfinite(n)) { out_ += "null"; return *this; }
  char buf[32];
  snprintf(buf, sizeof buf, "%.17g", n);
  out_ += buf;
  return *this;
}

namespace {

struct Reader {
  const std::string& s;
  size_t i = 0;
  std::string error;

  void skip_ws() { while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i; }
  bool fail(const char* why) { if (error.empty()) error = std::string(why) + " at byte " + std::to_string(i); return false; }

  bool string(std::string* out) {
    skip_ws();
    if (i >= s.size() || s[i] != '"') return fail("expected a string");
    ++i;
    while (i < s.size()) {
      char c = s[i++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') { *out += c; continue; }
      if (i >= s.size()) break;
      char e = s[i++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          if (i + 4 > s.size()) return fail("truncated \\u escape");
          unsigned code = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s[i++];
            code <<= 4;
            if (h >= '0' && h <= '9') code |= unsigned(h - '0');
            else if (h >= 'a' && h <= 'f') code |= unsigned(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') code |= unsigned(h - 'A' + 10);
            else return fail("bad \\u escape");
          }
          *out += code < 0x80 ? char(code) : '?';
          break;
        }
        default: return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }

  bool number(double* out) {
    skip_ws();
    const char* start = s.c_str() + i;
    char* end = nullptr;
    *out = strtod(start, &end);
    if (end == start || !std::isfinite(*out)) return fail("expected a value");
    i += size_t(end - start);
    return true;
  }

  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s.compare(i, n, word) != 0) return fail("expected a value");
    i += n;
    return true;
  }
};

}  // namespace

bool parse_request(const std::string& text, Request* out, std::string* error) {
  Reader r{text, 0, {}};
  r.skip_ws();
  if (r.i >= text.size() || text[r.i] != '{') { *error = "request is not a JSON object"; return false; }
  ++r.i;
  r.skip_ws();
  bool first = true;
  while (true) {
    r.skip_ws();
    if (r.i < text.size() && text[r.i] == '}' && first) { ++r.i; break; }
    std::string name;
    if (!r.string(&name)) break;
    r.skip_ws();
    if (r.i >= text.size() || text[r.i] != ':') { r.fail("expected ':'"); break; }
    ++r.i;
    r.skip_ws();
    if (r.i >= text.size()) { r.fail("truncated request"); break; }
    char c = text[r.i];
    if (c == '"') {
      std::string v;
      if (!r.string(&v)) break;
      out->strings[name] = v;
    } else if (c == 't') { if (!r.literal("true")) break; out->numbers[name] = 1;
    } else if (c == 'f') { if (!r.literal("false")) break; out->numbers[name] = 0;
    } else if (c == 'n') { if (!r.literal("null")) break;
    } else if (c == '{' || c == '[') { r.fail("nested values are not accepted"); break;
    } else {
      double v;
      if (!r.number(&v)) break;
      out->numbers[name] = v;
    }
    first = false;
    r.skip_ws();
    if (r.i < text.size() && text[r.i] == ',') { ++r.i; continue; }
    if (r.i < text.size() && text[r.i] == '}') { ++r.i; break; }
    r.fail(r.i >= text.size() ? "truncated request" : "expected ',' or '}'");
    break;
  }
  if (r.error.empty()) {
    r.skip_ws();
    if (r.i != text.size()) r.fail("trailing bytes after the request");
  }
  if (!r.error.empty()) { *error = r.error; return false; }
  return true;
}

}  // namespace leakscope
