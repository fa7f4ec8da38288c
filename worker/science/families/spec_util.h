// Small helpers that read a family's keys from the job spec's `model` object
// with path-named errors ("model.filters_5: must be an integer in [1, 1000000]").
// Header-only and torch-free; shared by the three family parsers.
#ifndef TOPOLAB_WORKER_SCIENCE_FAMILIES_SPEC_UTIL_H_
#define TOPOLAB_WORKER_SCIENCE_FAMILIES_SPEC_UTIL_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace topolab::science::spec {

// Keys every family accepts in `model:` (read by the model factory itself).
inline const std::set<std::string>& SharedModelKeys() {
  static const std::set<std::string> k = {"family", "num_classes", "projection_dim",
                                          "projection_hidden"};
  return k;
}

// InvalidArgument for the first key of `obj` that is neither in `allowed`
// nor shared.
inline absl::Status CheckKeys(const nlohmann::json& obj, const std::set<std::string>& allowed,
                              const std::string& prefix) {
  if (obj.is_null()) return absl::OkStatus();
  if (!obj.is_object()) return absl::InvalidArgumentError(prefix + ": must be a mapping");
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!allowed.count(it.key()) && !SharedModelKeys().count(it.key())) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, ".", it.key(), ": unknown key (known: ",
          absl::StrJoin(allowed.begin(), allowed.end(), ", "), ")"));
    }
  }
  return absl::OkStatus();
}

inline absl::Status GetInt(const nlohmann::json& obj, const std::string& key, int64_t lo,
                           int64_t hi, const std::string& prefix, int64_t* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const auto& v = obj[key];
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ".", key, ": must be an integer in [", lo, ", ", hi, "]"));
  }
  *out = v.get<int64_t>();
  return absl::OkStatus();
}

inline absl::Status GetDouble(const nlohmann::json& obj, const std::string& key, double lo,
                              double hi, const std::string& prefix, double* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const auto& v = obj[key];
  if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ".", key, ": must be a number in [", lo, ", ", hi, "]"));
  }
  *out = v.get<double>();
  return absl::OkStatus();
}

inline absl::Status GetBool(const nlohmann::json& obj, const std::string& key,
                            const std::string& prefix, bool* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  if (!obj[key].is_boolean()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ".", key, ": must be true or false"));
  }
  *out = obj[key].get<bool>();
  return absl::OkStatus();
}

inline absl::Status GetEnum(const nlohmann::json& obj, const std::string& key,
                            const std::vector<std::string>& choices, const std::string& prefix,
                            std::string* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const auto& v = obj[key];
  if (v.is_string()) {
    for (const auto& c : choices) {
      if (c == v.get<std::string>()) {
        *out = c;
        return absl::OkStatus();
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(prefix, ".", key, ": must be one of ",
                                                 absl::StrJoin(choices, ", ")));
}

// A list of numbers (each in [lo, hi]); `exact_len` >= 0 demands that length.
inline absl::Status GetDoubleList(const nlohmann::json& obj, const std::string& key, double lo,
                                  double hi, int exact_len, const std::string& prefix,
                                  std::vector<double>* out) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) return absl::OkStatus();
  const auto& v = obj[key];
  std::string err = absl::StrCat(prefix, ".", key, ": must be a list of numbers in [", lo, ", ",
                                 hi, "]");
  if (exact_len >= 0) absl::StrAppend(&err, " of length ", exact_len);
  if (!v.is_array() || v.empty() || (exact_len >= 0 && static_cast<int>(v.size()) != exact_len)) {
    return absl::InvalidArgumentError(err);
  }
  std::vector<double> r;
  for (const auto& e : v) {
    if (!e.is_number() || e.get<double>() < lo || e.get<double>() > hi) {
      return absl::InvalidArgumentError(err);
    }
    r.push_back(e.get<double>());
  }
  *out = std::move(r);
  return absl::OkStatus();
}

}  // namespace topolab::science::spec

#endif  // TOPOLAB_WORKER_SCIENCE_FAMILIES_SPEC_UTIL_H_
