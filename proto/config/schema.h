// A small declarative schema language for the experiment YAML, and the engine
// that validates a parsed document against it and fills every default.
//
// Each section of the config lives in its own file so the engineer who owns a
// job kind also owns its keys:
//   schema_experiment.cc  top-level keys, the common stage keys, the kind table
//   schema_model.cc       `model:`  (one variant of keys per `family`)
//   schema_data.cc        `data:`   (one variant of keys per `dataset`)
//   schema_<kind>.cc      the keys of one stage kind (train, swapopt, ...)
//
// Error convention (every validation error is InvalidArgument):
//   "<path>: <what is wrong>"
// where <path> is the full path of the offending value, written as in the file:
// top-level keys bare (`name`), nested keys joined with '.' (`resources.gpus`),
// list items with [i] (`stages[2].needs[0]`). An unknown key is reported at
// the path the key itself would have: `stages[0].optimizer.lrr: unknown key
// (did you mean "lr"?)`. A missing required key likewise:
// `stages[1].id: missing required key`. Errors about the stage graph use the
// path `stages` (`stages: cycle: a -> b -> a`). When the file position of the
// offending value is known, " (line L, column C)" is appended at the end.
//
// Extending: add a Field to the right schema_*.cc. A Field with a default is
// always present in the normalised output; one without a default and not
// required is left out when the user does not give it.
#ifndef TOPOLAB_PROTO_CONFIG_SCHEMA_H_
#define TOPOLAB_PROTO_CONFIG_SCHEMA_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace topolab::config {

using Json = nlohmann::json;             // normalised output: keys sorted
using RawJson = nlohmann::ordered_json;  // parsed input: keys in file order

enum class FieldType {
  kInt,         // int64; an integral float (1e5) is accepted
  kDouble,      // finite number; ints are accepted and stored as double
  kBool,        // true | false (YAML 1.2: yes/no/on/off are strings, rejected)
  kString,
  kStringList,  // list of strings; `allowed` restricts the elements
  kList,        // list whose every element validates against `items[0]` (numbers,
                // integers, mappings, ...); min_items/max_items bound its length
  kEnum,        // string from `allowed`
  kObject,      // mapping with the keys in `fields` (+ a variant's keys)
  kMap,         // mapping from free keys to values of schema `items[0]`
  kOneOf,       // the first of `items` whose JSON type matches the value
};

// Extra checks on string values.
enum class PathCheck {
  kNone,
  kFile,       // with ParseOptions::check_paths: a readable regular file
  kDirectory,  // with ParseOptions::check_paths: a readable directory
};

// One key of a mapping (or the element schema of a map / one-of).
// Built with the helpers below and chained setters, e.g.
//   Int("batch_size").Default(64).Range(1, 65536).Doc("images per step")
struct Field {
  std::string name;
  FieldType type = FieldType::kString;
  bool required = false;
  Json default_value;               // null: no default
  std::optional<double> min, max;   // numbers: inclusive bounds
  bool exclusive_min = false;       // numbers: value must be > min
  bool exclusive_max = false;       // numbers: value must be < max
  std::vector<std::string> allowed; // kEnum values; kStringList element values
  bool unique = true;               // kStringList: no repeated element
  size_t max_length = 4096;         // strings / string-list elements / list length
  bool non_empty = false;           // strings and lists
  size_t min_items = 0;             // kList: length bounds (inclusive)
  size_t max_items = 4096;
  bool increasing = false;          // kList of numbers: each item > the one before
  std::string doc;
  std::vector<Field> fields;        // kObject keys
  // kObject: the value of the kEnum field named `discriminator` selects which
  // extra keys (variants[value]) are allowed, with their defaults.
  std::string discriminator;
  std::map<std::string, std::vector<Field>> variants;
  std::vector<Field> items;         // kMap, kList: items[0]; kOneOf: alternatives
  PathCheck path_check = PathCheck::kNone;
  // kString: the value (when not empty) names a stage this stage `needs`.
  bool stage_ref = false;
  // Extra check on the normalised value. Returns "" when fine, else the
  // message; the engine prepends the path and ": ". A message that starts
  // with '.' or '[' continues the path instead, so a check on a mapping can
  // name one of its keys: ".layer_factors: must have 3 items" on `model`
  // reads "model.layer_factors: must have 3 items".
  std::function<std::string(const Json&)> check;

  Field& Required() { required = true; return *this; }
  Field& Default(Json v) { default_value = std::move(v); return *this; }
  Field& Min(double v) { min = v; return *this; }
  Field& Max(double v) { max = v; return *this; }
  Field& Range(double lo, double hi) { min = lo; max = hi; return *this; }
  Field& Positive() { min = 0; exclusive_min = true; return *this; }
  // Numbers: value < v (e.g. Adam's betas in [0, 1): Min(0).Below(1)).
  Field& Below(double v) { max = v; exclusive_max = true; return *this; }
  // kList: exactly n items / between lo and hi items.
  Field& Length(size_t n) { min_items = max_items = n; return *this; }
  Field& Length(size_t lo, size_t hi) { min_items = lo; max_items = hi; return *this; }
  // kList of numbers: strictly increasing.
  Field& Increasing() { increasing = true; return *this; }
  Field& Doc(std::string d) { doc = std::move(d); return *this; }
  Field& NonEmpty() { non_empty = true; return *this; }
  Field& MaxLength(size_t n) { max_length = n; return *this; }
  Field& Allowed(std::vector<std::string> v) { allowed = std::move(v); return *this; }
  Field& Path(PathCheck p) { path_check = p; return *this; }
  Field& StageRef() { stage_ref = true; return *this; }
  Field& Check(std::function<std::string(const Json&)> f) { check = std::move(f); return *this; }
  Field& Variant(const std::string& value, std::vector<Field> extra) {
    variants[value] = std::move(extra);
    return *this;
  }
};

Field Int(std::string name);
Field Double(std::string name);
Field Bool(std::string name);
Field String(std::string name);
Field StringList(std::string name);
// A list whose elements are validated by `element` (its name is only used in
// `topolab schema` output). Element errors name the item: `betas[1]: ...`.
//   List("layers", Object("layer", {...})).Length(1, 64)
Field List(std::string name, Field element);
// List(name, Double("number").Range(lo, hi)): a list of finite numbers in [lo, hi].
Field NumberList(std::string name, double lo, double hi);
// List(name, Int("integer").Range(lo, hi)): a list of integers in [lo, hi]
// (integral floats such as 3.0 are accepted, as for Int).
Field IntList(std::string name, int64_t lo, int64_t hi);
Field Enum(std::string name, std::vector<std::string> values);
Field Object(std::string name, std::vector<Field> fields);
// An object whose allowed keys depend on the enum field `discriminator`
// (which must be one of `fields`).
Field TaggedObject(std::string name, std::string discriminator, std::vector<Field> fields);
Field Map(std::string name, Field value);
Field OneOf(std::string name, std::vector<Field> alternatives);

// One stage kind: the keys it adds beside the common stage keys.
struct KindSchema {
  std::string kind;
  std::string doc;
  std::vector<Field> fields;
  // With check_paths, the stage's `data` paths are checked only for kinds
  // that read the dataset.
  bool uses_data = false;
  // Optional last touch on the job spec after defaults are filled (e.g. a
  // sub-seed that defaults to the job's seed).
  std::function<void(Json& job_spec)> finalize;
  // Optional check across keys of the finished job spec: returns {} when
  // fine, else {key, message}, reported as "<stage path>.<key>: <message>".
  std::function<std::pair<std::string, std::string>(const Json& job_spec)> check;
};

// Section schemas, one per file.
Field ModelSchema();        // schema_model.cc
Field DataSchema();         // schema_data.cc
Field ResourcesSchema();    // schema_experiment.cc
std::vector<Field> ExperimentFields();    // top level except stages/model/data/resources
std::vector<Field> StageCommonFields();   // id, kind, needs, max_attempts, seed
KindSchema TrainSchema();   // schema_train.cc
KindSchema SwapoptSchema(); // schema_swapopt.cc
KindSchema ExtractSchema(); // schema_extract.cc
KindSchema AnalyzeSchema(); // schema_analyze.cc
KindSchema SleepSchema();   // schema_sleep.cc
// Every kind, in a fixed order (schema_experiment.cc). Add new kinds there.
const std::vector<KindSchema>& AllKinds();
// nullptr if `kind` is unknown.
const KindSchema* FindKind(const std::string& kind);

// ------------------------------------------------------------------ engine

// Per-validation context.
struct ValidateContext {
  bool check_paths = false;
  // For stage_ref fields: the stage ids the current stage needs.
  const std::vector<std::string>* needs = nullptr;
};

// Validates `in` against `field` (whose own name is ignored) at `path` and
// writes the normalised value (defaults filled) to `*out`.
// Returns InvalidArgument "<path>: ..." on the first problem.
absl::Status ValidateValue(const Field& field, const RawJson& in, const std::string& path,
                           const ValidateContext& ctx, Json* out);

// Validates the keys of a mapping against `fields` (the allowed keys).
// Unknown keys are errors. Missing keys get their defaults.
absl::Status ValidateFields(const std::vector<Field>& fields, const RawJson& in,
                            const std::string& path, const ValidateContext& ctx, Json* out);

// "a.b" / "a[2]" path building; an empty parent gives the bare key.
std::string JoinPath(const std::string& parent, const std::string& key);
std::string IndexPath(const std::string& parent, size_t index);

// Overlays `over` on `base`: mappings merge key by key (recursively), any
// other value replaces.
RawJson DeepMerge(const RawJson& base, const RawJson& over);

// Parses one YAML (or JSON) document into RawJson with YAML 1.2 core scalar
// typing (plain `true`/`false`, ints, floats, `null`/`~`; quoted -> string).
// Fills `marks` with path -> (line, column), 1-based, for error messages.
// Returns InvalidArgument "yaml: line L, column C: <problem>" on syntax
// errors, and "<path>: duplicate key" on repeated mapping keys.
using MarkMap = std::map<std::string, std::pair<int, int>>;
absl::StatusOr<RawJson> ParseYamlDocument(std::string_view text, MarkMap* marks);

// Appends " (line L, column C)" to an InvalidArgument whose path (the text
// before the first ": ") has a known mark.
absl::Status WithLocation(const absl::Status& s, const MarkMap& marks);

// Human-readable reference of a list of fields (for `topolab schema`).
std::string DescribeFields(const std::vector<Field>& fields, int indent);

}  // namespace topolab::config

#endif  // TOPOLAB_PROTO_CONFIG_SCHEMA_H_
