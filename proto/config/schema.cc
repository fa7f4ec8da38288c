// The schema engine: YAML -> RawJson, and RawJson validated against Fields.
#include "proto/config/schema.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace topolab::config {
namespace {

Field Make(std::string name, FieldType type) {
  Field f;
  f.name = std::move(name);
  f.type = type;
  return f;
}

absl::Status Err(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", msg));
}

// A Field::check message: one starting with '.' or '[' continues the path.
absl::Status CheckErr(const std::string& path, const std::string& msg) {
  if (!msg.empty() && (msg[0] == '.' || msg[0] == '[')) return absl::InvalidArgumentError(path + msg);
  return Err(path, msg);
}

// Compact rendering of a bad value for "got ..." suffixes.
std::string Repr(const RawJson& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::string FormatNumber(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string QuotedList(const std::vector<std::string>& v) {
  std::vector<std::string> q;
  for (const auto& s : v) q.push_back("\"" + s + "\"");
  return absl::StrJoin(q, ", ");
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string IntExpectation(const Field& f) {
  if (f.min && f.max && (*f.min == 0 || *f.min == 1)) {
    return absl::StrCat(*f.min == 1 ? "must be a positive integer" : "must be a non-negative integer",
                        " (at most ", FormatNumber(*f.max), ")");
  }
  if (f.min && f.max) {
    return absl::StrCat("must be an integer in [", FormatNumber(*f.min), ", ",
                        FormatNumber(*f.max), "]");
  }
  if (f.min) {
    if (*f.min == 1) return "must be a positive integer";
    if (*f.min == 0) return "must be a non-negative integer";
    return absl::StrCat("must be an integer >= ", FormatNumber(*f.min));
  }
  if (f.max) return absl::StrCat("must be an integer <= ", FormatNumber(*f.max));
  return "must be an integer";
}

std::string DoubleExpectation(const Field& f) {
  if (f.min && f.max && *f.min == 0 && f.exclusive_min) {
    return absl::StrCat("must be a positive number (", f.exclusive_max ? "less than " : "at most ",
                        FormatNumber(*f.max), ")");
  }
  if (f.min && f.max) {
    return absl::StrCat("must be a number in ", f.exclusive_min ? "(" : "[", FormatNumber(*f.min), ", ",
                        FormatNumber(*f.max), f.exclusive_max ? ")" : "]");
  }
  if (f.min) {
    if (*f.min == 0) return f.exclusive_min ? "must be a positive number" : "must be a non-negative number";
    return absl::StrCat("must be a number ", f.exclusive_min ? "> " : ">= ", FormatNumber(*f.min));
  }
  if (f.max) return absl::StrCat("must be a number ", f.exclusive_max ? "< " : "<= ", FormatNumber(*f.max));
  return "must be a number";
}

bool InRange(const Field& f, double v) {
  if (f.min && (f.exclusive_min ? v <= *f.min : v < *f.min)) return false;
  if (f.max && (f.exclusive_max ? v >= *f.max : v > *f.max)) return false;
  return true;
}

// "numbers", "integers", ...: the elements of a kList.
std::string PluralTypeName(FieldType t) {
  switch (t) {
    case FieldType::kInt: return "integers";
    case FieldType::kDouble: return "numbers";
    case FieldType::kBool: return "booleans";
    case FieldType::kString:
    case FieldType::kEnum: return "strings";
    case FieldType::kStringList:
    case FieldType::kList: return "lists";
    case FieldType::kObject:
    case FieldType::kMap: return "mappings";
    case FieldType::kOneOf: return "values";
  }
  return "values";
}

constexpr size_t kDefaultMaxItems = 4096;

// "2", "1 to 64", "at least 1", "at most 100" or "" (any length).
std::string LengthPhrase(const Field& f) {
  const bool capped = f.max_items != kDefaultMaxItems;
  if (f.min_items == f.max_items) return absl::StrCat(f.min_items);
  if (f.min_items > 0 && capped) return absl::StrCat(f.min_items, " to ", f.max_items);
  if (f.min_items > 0) return absl::StrCat("at least ", f.min_items);
  if (capped) return absl::StrCat("at most ", f.max_items);
  return "";
}

// "a list of 2 numbers", "a list of at least 1 mappings", "a list of integers".
std::string ListExpectation(const Field& f) {
  const std::string n = LengthPhrase(f);
  return absl::StrCat("a list of ", n, n.empty() ? "" : " ", PluralTypeName(f.items.at(0).type));
}

std::string TypeName(FieldType t) {
  switch (t) {
    case FieldType::kInt: return "an integer";
    case FieldType::kDouble: return "a number";
    case FieldType::kBool: return "true or false";
    case FieldType::kString:
    case FieldType::kEnum: return "a string";
    case FieldType::kStringList: return "a list of strings";
    case FieldType::kList: return "a list";
    case FieldType::kObject:
    case FieldType::kMap: return "a mapping";
    case FieldType::kOneOf: return "one of several forms";
  }
  return "?";
}

bool TypeMatches(FieldType t, const RawJson& v) {
  switch (t) {
    case FieldType::kInt:
    case FieldType::kDouble: return v.is_number();
    case FieldType::kBool: return v.is_boolean();
    case FieldType::kString:
    case FieldType::kEnum: return v.is_string();
    case FieldType::kStringList:
    case FieldType::kList: return v.is_array();
    case FieldType::kObject:
    case FieldType::kMap: return v.is_object();
    case FieldType::kOneOf: return false;
  }
  return false;
}

absl::Status CheckString(const Field& f, const std::string& s, const std::string& path) {
  if (f.non_empty && s.empty()) return Err(path, "must not be empty");
  if (s.size() > f.max_length) {
    return Err(path, absl::StrCat("must be at most ", f.max_length, " characters"));
  }
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return Err(path, "must not contain control characters");
  }
  return absl::OkStatus();
}

std::string EnumError(const std::vector<std::string>& allowed, const std::string& got) {
  std::string msg = absl::StrCat("must be one of ", QuotedList(allowed), ", got \"", got, "\"");
  for (const auto& a : allowed) {
    if (EditDistance(a, got) <= 2) return absl::StrCat(msg, " (did you mean \"", a, "\"?)");
  }
  return msg;
}

absl::Status CheckPath(PathCheck kind, const std::string& p, const std::string& path) {
  if (kind == PathCheck::kNone || p.empty()) return absl::OkStatus();
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) {
    return Err(path, absl::StrCat("cannot read \"", p, "\": ", std::strerror(errno)));
  }
  if (kind == PathCheck::kDirectory && !S_ISDIR(st.st_mode)) {
    return Err(path, absl::StrCat("\"", p, "\" is not a directory"));
  }
  if (kind == PathCheck::kFile && !S_ISREG(st.st_mode)) {
    return Err(path, absl::StrCat("\"", p, "\" is not a regular file"));
  }
  int mode = kind == PathCheck::kDirectory ? (R_OK | X_OK) : R_OK;
  if (::access(p.c_str(), mode) != 0) {
    return Err(path, absl::StrCat("cannot read \"", p, "\": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// --------------------------------------------------------------- YAML reading

bool IsInt(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

bool IsFloat(const std::string& s) {
  if (s.empty()) return false;
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-') {
      return false;
    }
  }
  if (!digit) return false;
  char* end = nullptr;
  errno = 0;
  std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

RawJson PlainScalar(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (IsInt(s)) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno != ERANGE) return static_cast<int64_t>(v);
    return std::strtod(s.c_str(), nullptr);
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str() + 2, &end, s[1] == 'x' ? 16 : 8);
    if (errno == 0 && end == s.c_str() + s.size()) return static_cast<int64_t>(v);
  }
  if (IsFloat(s)) return std::strtod(s.c_str(), nullptr);
  static const std::set<std::string> kInf = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"};
  static const std::set<std::string> kNegInf = {"-.inf", "-.Inf", "-.INF"};
  static const std::set<std::string> kNan = {".nan", ".NaN", ".NAN"};
  if (kInf.count(s)) return HUGE_VAL;
  if (kNegInf.count(s)) return -HUGE_VAL;
  if (kNan.count(s)) return std::nan("");
  return s;
}

absl::Status Convert(const YAML::Node& node, const std::string& path, int depth,
                     MarkMap* marks, RawJson* out) {
  if (depth > 64) return Err(path.empty() ? "yaml" : path, "nested too deeply");
  const YAML::Mark m = node.Mark();
  if (marks && m.line >= 0) (*marks)[path] = {m.line + 1, m.column + 1};
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      *out = nullptr;
      return absl::OkStatus();
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      if (tag == "?") {
        *out = PlainScalar(node.Scalar());
      } else {
        *out = node.Scalar();  // quoted or explicitly tagged: keep as text
      }
      return absl::OkStatus();
    }
    case YAML::NodeType::Sequence: {
      *out = RawJson::array();
      size_t i = 0;
      for (const auto& item : node) {
        RawJson v;
        auto s = Convert(item, IndexPath(path, i++), depth + 1, marks, &v);
        if (!s.ok()) return s;
        out->push_back(std::move(v));
      }
      return absl::OkStatus();
    }
    case YAML::NodeType::Map: {
      *out = RawJson::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) return Err(path.empty() ? "yaml" : path, "mapping keys must be plain strings");
        const std::string key = kv.first.Scalar();
        const std::string child = JoinPath(path, key);
        if (out->contains(key)) {
          const YAML::Mark km = kv.first.Mark();
          return absl::InvalidArgumentError(absl::StrCat(child, ": duplicate key (line ", km.line + 1,
                                                         ", column ", km.column + 1, ")"));
        }
        RawJson v;
        auto s = Convert(kv.second, child, depth + 1, marks, &v);
        if (!s.ok()) return s;
        (*out)[key] = std::move(v);
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

Field Int(std::string name) { return Make(std::move(name), FieldType::kInt); }
Field Double(std::string name) { return Make(std::move(name), FieldType::kDouble); }
Field Bool(std::string name) { return Make(std::move(name), FieldType::kBool); }
Field String(std::string name) { return Make(std::move(name), FieldType::kString); }
Field StringList(std::string name) { return Make(std::move(name), FieldType::kStringList); }
Field List(std::string name, Field element) {
  Field f = Make(std::move(name), FieldType::kList);
  f.items.push_back(std::move(element));
  return f;
}
Field NumberList(std::string name, double lo, double hi) {
  return List(std::move(name), Double("number").Range(lo, hi));
}
Field IntList(std::string name, int64_t lo, int64_t hi) {
  return List(std::move(name), Int("integer").Range(static_cast<double>(lo), static_cast<double>(hi)));
}
Field Enum(std::string name, std::vector<std::string> values) {
  Field f = Make(std::move(name), FieldType::kEnum);
  f.allowed = std::move(values);
  return f;
}
Field Object(std::string name, std::vector<Field> fields) {
  Field f = Make(std::move(name), FieldType::kObject);
  f.fields = std::move(fields);
  return f;
}
Field TaggedObject(std::string name, std::string discriminator, std::vector<Field> fields) {
  Field f = Object(std::move(name), std::move(fields));
  f.discriminator = std::move(discriminator);
  return f;
}
Field Map(std::string name, Field value) {
  Field f = Make(std::move(name), FieldType::kMap);
  f.items.push_back(std::move(value));
  return f;
}
Field OneOf(std::string name, std::vector<Field> alternatives) {
  Field f = Make(std::move(name), FieldType::kOneOf);
  f.items = std::move(alternatives);
  return f;
}

std::string JoinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : absl::StrCat(parent, ".", key);
}
std::string IndexPath(const std::string& parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

RawJson DeepMerge(const RawJson& base, const RawJson& over) {
  if (!base.is_object() || !over.is_object()) return over;
  RawJson out = base;
  for (auto it = over.begin(); it != over.end(); ++it) {
    if (out.contains(it.key())) {
      out[it.key()] = DeepMerge(out[it.key()], it.value());
    } else {
      out[it.key()] = it.value();
    }
  }
  return out;
}

absl::Status ValidateFields(const std::vector<Field>& fields, const RawJson& in,
                            const std::string& path, const ValidateContext& ctx, Json* out) {
  static const RawJson kEmpty = RawJson::object();
  const RawJson& obj = in.is_null() ? kEmpty : in;
  if (!obj.is_object()) return Err(path, absl::StrCat("must be a mapping, got ", Repr(in)));
  *out = Json::object();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& key = it.key();
    auto f = std::find_if(fields.begin(), fields.end(), [&](const Field& x) { return x.name == key; });
    if (f == fields.end()) {
      std::string msg = "unknown key";
      size_t best = 3;
      std::string suggestion;
      for (const auto& x : fields) {
        size_t d = EditDistance(key, x.name);
        if (d < best && d < std::max<size_t>(key.size(), 2)) {
          best = d;
          suggestion = x.name;
        }
      }
      if (!suggestion.empty()) absl::StrAppend(&msg, " (did you mean \"", suggestion, "\"?)");
      return Err(JoinPath(path, key), msg);
    }
    Json v;
    auto s = ValidateValue(*f, it.value(), JoinPath(path, key), ctx, &v);
    if (!s.ok()) return s;
    if (!v.is_null()) (*out)[key] = std::move(v);
  }
  for (const auto& f : fields) {
    if (out->contains(f.name)) continue;
    const std::string child = JoinPath(path, f.name);
    if (f.required) return Err(child, "missing required key");
    Json v;
    if (!f.default_value.is_null()) {
      auto s = ValidateValue(f, RawJson(f.default_value), child, ctx, &v);
      if (!s.ok()) return s;
    } else if (f.type == FieldType::kObject) {
      auto s = ValidateValue(f, kEmpty, child, ctx, &v);
      if (!s.ok()) return s;
    }
    if (!v.is_null()) (*out)[f.name] = std::move(v);
  }
  return absl::OkStatus();
}

absl::Status ValidateValue(const Field& f, const RawJson& in, const std::string& path,
                           const ValidateContext& ctx, Json* out) {
  auto finish = [&]() -> absl::Status {
    if (f.check) {
      std::string msg = f.check(*out);
      if (!msg.empty()) return CheckErr(path, msg);
    }
    return absl::OkStatus();
  };
  // A key written with no value (`optimizer:`) means "all defaults" for a
  // mapping and "not given" for anything else.
  if (in.is_null() && f.type != FieldType::kObject) {
    if (f.required) return Err(path, absl::StrCat("must be ", TypeName(f.type), ", got nothing"));
    if (!f.default_value.is_null()) return ValidateValue(f, RawJson(f.default_value), path, ctx, out);
    *out = nullptr;
    return absl::OkStatus();
  }
  switch (f.type) {
    case FieldType::kInt: {
      int64_t v = 0;
      if (in.is_number_integer()) {
        v = in.get<int64_t>();
      } else if (in.is_number_float() && std::isfinite(in.get<double>()) &&
                 in.get<double>() == std::floor(in.get<double>()) && std::fabs(in.get<double>()) < 9.2e18) {
        v = static_cast<int64_t>(in.get<double>());
      } else {
        return Err(path, absl::StrCat(IntExpectation(f), ", got ", Repr(in)));
      }
      if (!InRange(f, static_cast<double>(v))) return Err(path, absl::StrCat(IntExpectation(f), ", got ", v));
      *out = v;
      return finish();
    }
    case FieldType::kDouble: {
      if (!in.is_number()) return Err(path, absl::StrCat(DoubleExpectation(f), ", got ", Repr(in)));
      double v = in.get<double>();
      if (!std::isfinite(v)) return Err(path, "must be a finite number");
      if (!InRange(f, v)) return Err(path, absl::StrCat(DoubleExpectation(f), ", got ", FormatNumber(v)));
      *out = v;
      return finish();
    }
    case FieldType::kBool:
      if (!in.is_boolean()) return Err(path, absl::StrCat("must be true or false, got ", Repr(in)));
      *out = in.get<bool>();
      return finish();
    case FieldType::kString: {
      if (!in.is_string()) return Err(path, absl::StrCat("must be a string, got ", Repr(in)));
      const std::string s = in.get<std::string>();
      auto st = CheckString(f, s, path);
      if (!st.ok()) return st;
      if (f.stage_ref && !s.empty() && ctx.needs &&
          std::find(ctx.needs->begin(), ctx.needs->end(), s) == ctx.needs->end()) {
        return Err(path, absl::StrCat("stage \"", s, "\" is not listed in needs"));
      }
      if (ctx.check_paths) {
        st = CheckPath(f.path_check, s, path);
        if (!st.ok()) return st;
      }
      *out = s;
      return finish();
    }
    case FieldType::kEnum: {
      if (!in.is_string()) {
        return Err(path, absl::StrCat("must be one of ", QuotedList(f.allowed), ", got ", Repr(in)));
      }
      const std::string s = in.get<std::string>();
      if (std::find(f.allowed.begin(), f.allowed.end(), s) == f.allowed.end()) {
        return Err(path, EnumError(f.allowed, s));
      }
      *out = s;
      return finish();
    }
    case FieldType::kStringList: {
      if (!in.is_array()) return Err(path, absl::StrCat("must be a list of strings, got ", Repr(in)));
      if (f.non_empty && in.empty()) return Err(path, "must not be empty");
      if (in.size() > f.max_length) return Err(path, absl::StrCat("must have at most ", f.max_length, " items"));
      *out = Json::array();
      std::set<std::string> seen;
      for (size_t i = 0; i < in.size(); ++i) {
        const std::string p = IndexPath(path, i);
        if (!in[i].is_string()) return Err(p, absl::StrCat("must be a string, got ", Repr(in[i])));
        const std::string s = in[i].get<std::string>();
        if (s.empty()) return Err(p, "must not be empty");
        Field elem = f;
        elem.non_empty = true;
        auto st = CheckString(elem, s, p);
        if (!st.ok()) return st;
        if (!f.allowed.empty() && std::find(f.allowed.begin(), f.allowed.end(), s) == f.allowed.end()) {
          return Err(p, EnumError(f.allowed, s));
        }
        if (f.unique && !seen.insert(s).second) return Err(p, absl::StrCat("duplicate \"", s, "\""));
        if (ctx.check_paths) {
          st = CheckPath(f.path_check, s, p);
          if (!st.ok()) return st;
        }
        out->push_back(s);
      }
      return finish();
    }
    case FieldType::kList: {
      if (!in.is_array()) return Err(path, absl::StrCat("must be ", ListExpectation(f), ", got ", Repr(in)));
      if (in.size() < f.min_items || in.size() > f.max_items) {
        const std::string n = LengthPhrase(f);
        if (f.min_items == 1 && f.max_items == kDefaultMaxItems) return Err(path, "must not be empty");
        return Err(path, absl::StrCat("must have ", n, f.min_items == 1 && f.max_items == 1 ? " item" : " items",
                                      ", got ", in.size()));
      }
      const Field& elem = f.items.at(0);
      *out = Json::array();
      for (size_t i = 0; i < in.size(); ++i) {
        const std::string p = IndexPath(path, i);
        // A bare `-` item is not "use the default": the list has no gaps.
        if (in[i].is_null()) return Err(p, absl::StrCat("must be ", TypeName(elem.type), ", got nothing"));
        Json v;
        auto st = ValidateValue(elem, in[i], p, ctx, &v);
        if (!st.ok()) return st;
        if (f.increasing && i > 0 && v.is_number() && (*out)[i - 1].is_number() &&
            v.get<double>() <= (*out)[i - 1].get<double>()) {
          return Err(p, absl::StrCat("must be greater than the item before it (", (*out)[i - 1].dump(),
                                     "), got ", v.dump()));
        }
        out->push_back(std::move(v));
      }
      return finish();
    }
    case FieldType::kObject: {
      if (!in.is_null() && !in.is_object()) return Err(path, absl::StrCat("must be a mapping, got ", Repr(in)));
      if (f.discriminator.empty()) {
        auto st = ValidateFields(f.fields, in, path, ctx, out);
        if (!st.ok()) return st;
        return finish();
      }
      auto disc = std::find_if(f.fields.begin(), f.fields.end(),
                               [&](const Field& x) { return x.name == f.discriminator; });
      std::string tag;
      if (disc != f.fields.end()) {
        Json v;
        const RawJson raw = (in.is_object() && in.contains(f.discriminator)) ? in[f.discriminator] : RawJson();
        if (raw.is_null() && disc->required) return Err(JoinPath(path, f.discriminator), "missing required key");
        auto st = ValidateValue(*disc, raw, JoinPath(path, f.discriminator), ctx, &v);
        if (!st.ok()) return st;
        if (v.is_string()) tag = v.get<std::string>();
      }
      std::vector<Field> all = f.fields;
      auto var = f.variants.find(tag);
      if (var != f.variants.end()) all.insert(all.end(), var->second.begin(), var->second.end());
      auto st = ValidateFields(all, in, path, ctx, out);
      if (!st.ok()) return st;
      return finish();
    }
    case FieldType::kMap: {
      if (!in.is_object()) return Err(path, absl::StrCat("must be a mapping, got ", Repr(in)));
      *out = Json::object();
      for (auto it = in.begin(); it != in.end(); ++it) {
        const std::string p = JoinPath(path, it.key());
        if (it.key().empty()) return Err(path, "keys must not be empty");
        Json v;
        auto st = ValidateValue(f.items.at(0), it.value(), p, ctx, &v);
        if (!st.ok()) return st;
        (*out)[it.key()] = std::move(v);
      }
      return finish();
    }
    case FieldType::kOneOf: {
      for (const auto& alt : f.items) {
        if (TypeMatches(alt.type, in)) {
          auto st = ValidateValue(alt, in, path, ctx, out);
          if (!st.ok()) return st;
          return finish();
        }
      }
      std::vector<std::string> names;
      for (const auto& alt : f.items) names.push_back(TypeName(alt.type));
      return Err(path, absl::StrCat("must be ", absl::StrJoin(names, " or "), ", got ", Repr(in)));
    }
  }
  return absl::InternalError("unreachable");
}

absl::StatusOr<RawJson> ParseYamlDocument(std::string_view text, MarkMap* marks) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("yaml: line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": nested too deeply"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("yaml: line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("yaml: ", e.what()));
  }
  if (docs.empty()) return RawJson();
  if (docs.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("yaml: expected one document, found ", docs.size(), " (separated by ---)"));
  }
  RawJson out;
  try {
    auto s = Convert(docs[0], "", 0, marks, &out);
    if (!s.ok()) return s;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("yaml: line ", e.mark.line + 1, ", column ", e.mark.column + 1, ": ", e.msg));
  }
  return out;
}

absl::Status WithLocation(const absl::Status& s, const MarkMap& marks) {
  if (s.ok() || s.code() != absl::StatusCode::kInvalidArgument) return s;
  const std::string msg(s.message());
  if (msg.find("(line ") != std::string::npos) return s;
  size_t colon = msg.find(": ");
  if (colon == std::string::npos) return s;
  std::string path = msg.substr(0, colon);
  while (!path.empty()) {
    auto it = marks.find(path);
    if (it != marks.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(msg, " (line ", it->second.first, ", column ", it->second.second, ")"));
    }
    size_t cut = path.find_last_of(".[");
    if (cut == std::string::npos) break;
    path.resize(cut);
  }
  return s;
}

std::string DescribeFields(const std::vector<Field>& fields, int indent) {
  std::string out;
  const std::string pad(indent, ' ');
  for (const auto& f : fields) {
    std::string type;
    switch (f.type) {
      case FieldType::kInt: type = "int"; break;
      case FieldType::kDouble: type = "number"; break;
      case FieldType::kBool: type = "bool"; break;
      case FieldType::kString: type = "string"; break;
      case FieldType::kStringList: type = "list of strings"; break;
      case FieldType::kList: type = ListExpectation(f).substr(2); break;
      case FieldType::kEnum: type = absl::StrJoin(f.allowed, "|"); break;
      case FieldType::kObject: type = "mapping"; break;
      case FieldType::kMap: type = "map"; break;
      case FieldType::kOneOf: type = "one of"; break;
    }
    absl::StrAppend(&out, pad, f.name, ": ", type);
    if (f.required) absl::StrAppend(&out, ", required");
    if (!f.default_value.is_null() && f.type != FieldType::kObject) {
      absl::StrAppend(&out, ", default ", f.default_value.dump());
    }
    if (f.type == FieldType::kInt) {
      absl::StrAppend(&out, " (", IntExpectation(f).substr(8), ")");
    } else if (f.type == FieldType::kDouble && (f.min || f.max)) {
      absl::StrAppend(&out, " (", DoubleExpectation(f).substr(8), ")");
    }
    if (f.type == FieldType::kStringList && !f.allowed.empty()) {
      absl::StrAppend(&out, " of ", absl::StrJoin(f.allowed, "|"));
    }
    if (f.type == FieldType::kList) {
      // Scalar elements: their range inline; mappings: their keys below.
      const Field& e = f.items.at(0);
      std::string each;
      if (e.type == FieldType::kInt) {
        each = IntExpectation(e).substr(8);
      } else if (e.type == FieldType::kDouble && (e.min || e.max)) {
        each = DoubleExpectation(e).substr(8);
      } else if (e.type == FieldType::kEnum) {
        each = absl::StrJoin(e.allowed, "|");
      }
      if (!each.empty() || f.increasing) {
        absl::StrAppend(&out, " (", each.empty() ? "" : "each ", each, !each.empty() && f.increasing ? ", " : "",
                        f.increasing ? "increasing" : "", ")");
      }
    }
    if (!f.doc.empty()) absl::StrAppend(&out, "  -- ", f.doc);
    absl::StrAppend(&out, "\n");
    if (f.type == FieldType::kObject) {
      absl::StrAppend(&out, DescribeFields(f.fields, indent + 2));
      for (const auto& [tag, extra] : f.variants) {
        if (extra.empty()) continue;
        absl::StrAppend(&out, pad, "  when ", f.discriminator, " = ", tag, ":\n");
        absl::StrAppend(&out, DescribeFields(extra, indent + 4));
      }
    } else if (f.type == FieldType::kMap || f.type == FieldType::kOneOf) {
      absl::StrAppend(&out, DescribeFields(f.items, indent + 2));
    } else if (f.type == FieldType::kList && f.items.at(0).type == FieldType::kObject) {
      absl::StrAppend(&out, DescribeFields(f.items.at(0).fields, indent + 2));
    }
  }
  return out;
}

}  // namespace topolab::config
