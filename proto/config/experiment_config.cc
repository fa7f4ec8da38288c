// ParseExperimentYaml / ParseJobSpec: the schema engine applied to a whole
// document, plus what a schema cannot say (stage graph, overrides).
#include "proto/config/experiment_config.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/config/schema.h"
#include "proto/sha256.h"
#include "proto/status_macros.h"

namespace topolab::config {
namespace {

absl::Status Err(const std::string& path, const std::string& msg) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", msg));
}

// Keys validated by hand rather than by ValidateFields.
const std::vector<std::string>& StageSectionKeys() {
  static const std::vector<std::string> k = {"model", "data", "resources"};
  return k;
}

// Stage-level `model`/`data` overrides: keys merge into the experiment's
// block, except that naming a different family/dataset replaces the block
// (the other family's keys would not be valid).
RawJson MergeSection(const RawJson& base, const RawJson& over, const std::string& tag) {
  if (over.is_null()) return base;
  if (!over.is_object() || !base.is_object()) return over;
  if (over.contains(tag)) {
    const RawJson base_tag = base.contains(tag) ? base[tag] : RawJson();
    if (base_tag != over[tag]) return over;
  }
  return DeepMerge(base, over);
}

// cpu jobs use no GPU; a cuda job uses at least one.
void FixResources(Json& r) {
  if (r["device"] == "cpu") {
    r["gpus"] = 0;
    r["gpu_memory_gb"] = 0.0;
  } else if (r["gpus"].get<int64_t>() == 0) {
    r["gpus"] = 1;
  }
}

Resources ToResources(const Json& r) {
  Resources out;
  out.device = r["device"].get<std::string>();
  out.gpus = static_cast<int>(r["gpus"].get<int64_t>());
  out.gpu_memory_gb = r["gpu_memory_gb"].get<double>();
  return out;
}

// The experiment-level context a stage is resolved against.
struct Base {
  RawJson model = RawJson::object();
  RawJson data = RawJson::object();
  RawJson resources = RawJson::object();
  Json model_norm, data_norm, resources_norm;
  int64_t seed = 0;
};

absl::Status CheckKind(const RawJson& raw, const std::string& path, const KindSchema** kind) {
  const std::string kpath = JoinPath(path, "kind");
  if (!raw.contains("kind") || raw["kind"].is_null()) return Err(kpath, "missing required key");
  if (!raw["kind"].is_string()) return Err(kpath, absl::StrCat("must be a string, got ", raw["kind"].dump()));
  const std::string k = raw["kind"].get<std::string>();
  *kind = FindKind(k);
  if (*kind == nullptr) {
    std::vector<std::string> names;
    for (const auto& x : AllKinds()) names.push_back(x.kind);
    return Err(kpath, absl::StrCat("unknown kind \"", k, "\" (known: ", absl::StrJoin(names, ", "), ")"));
  }
  return absl::OkStatus();
}

// Validates one stage at `path` and builds its job spec.
absl::StatusOr<Json> NormalizeStage(const RawJson& raw, const std::string& path, const Base& base,
                                    const ParseOptions& options) {
  if (!raw.is_object()) return Err(path, absl::StrCat("must be a mapping (one stage), got ", raw.dump()));
  const KindSchema* kind = nullptr;
  RETURN_IF_ERROR(CheckKind(raw, path, &kind));

  RawJson rest = RawJson::object();
  for (auto it = raw.begin(); it != raw.end(); ++it) {
    const auto& keys = StageSectionKeys();
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) rest[it.key()] = it.value();
  }
  std::vector<Field> fields = StageCommonFields();
  fields.insert(fields.end(), kind->fields.begin(), kind->fields.end());

  // `needs` first, so fields that refer to a needed stage can be checked.
  std::vector<std::string> needs;
  {
    Json n;
    const RawJson rn = rest.contains("needs") ? rest["needs"] : RawJson();
    auto nf = std::find_if(fields.begin(), fields.end(), [](const Field& f) { return f.name == "needs"; });
    RETURN_IF_ERROR(ValidateValue(*nf, rn, JoinPath(path, "needs"), ValidateContext{}, &n));
    if (n.is_array()) needs = n.get<std::vector<std::string>>();
  }
  ValidateContext ctx;
  ctx.check_paths = options.check_paths;
  ctx.needs = &needs;
  Json spec;
  RETURN_IF_ERROR(ValidateFields(fields, rest, path, ctx, &spec));

  ValidateContext section_ctx;
  section_ctx.check_paths = options.check_paths && kind->uses_data;
  // model / data: a stage override is validated merged, at the stage's path.
  if (raw.contains("model")) {
    Json m;
    RETURN_IF_ERROR(ValidateValue(ModelSchema(), MergeSection(base.model, raw["model"], "family"),
                                  JoinPath(path, "model"), ValidateContext{}, &m));
    spec["model"] = std::move(m);
  } else {
    spec["model"] = base.model_norm;
  }
  if (raw.contains("data")) {
    Json d;
    RETURN_IF_ERROR(ValidateValue(DataSchema(), MergeSection(base.data, raw["data"], "dataset"),
                                  JoinPath(path, "data"), section_ctx, &d));
    spec["data"] = std::move(d);
  } else {
    spec["data"] = base.data_norm;
  }
  if (raw.contains("resources")) {
    Json r;
    RETURN_IF_ERROR(ValidateValue(ResourcesSchema(), MergeSection(base.resources, raw["resources"], ""),
                                  JoinPath(path, "resources"), ValidateContext{}, &r));
    FixResources(r);
    spec["resources"] = std::move(r);
  } else {
    spec["resources"] = base.resources_norm;
  }
  if (!spec.contains("seed")) spec["seed"] = base.seed;
  if (kind->finalize) kind->finalize(spec);
  if (kind->check) {
    auto [key, message] = kind->check(spec);
    if (!message.empty()) return Err(JoinPath(path, key), message);
  }
  return spec;
}

// Validates the top-level `model`, `data`, `resources` blocks.
absl::Status NormalizeBase(const RawJson& doc, const std::string& prefix, bool check_data_paths,
                           Base* base) {
  auto get = [&](const char* key) {
    return (doc.contains(key) && !doc[key].is_null()) ? doc[key] : RawJson::object();
  };
  base->model = get("model");
  base->data = get("data");
  base->resources = get("resources");
  RETURN_IF_ERROR(ValidateValue(ModelSchema(), base->model, JoinPath(prefix, "model"), ValidateContext{},
                                &base->model_norm));
  ValidateContext dctx;
  dctx.check_paths = check_data_paths;
  RETURN_IF_ERROR(ValidateValue(DataSchema(), base->data, JoinPath(prefix, "data"), dctx, &base->data_norm));
  RETURN_IF_ERROR(ValidateValue(ResourcesSchema(), base->resources, JoinPath(prefix, "resources"),
                                ValidateContext{}, &base->resources_norm));
  FixResources(base->resources_norm);
  return absl::OkStatus();
}

// Unknown-key check for a mapping with hand-handled sections.
absl::Status CheckKeys(const RawJson& obj, const std::vector<std::string>& known, const std::string& path) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    // Let ValidateFields word the error (with its suggestion).
    std::vector<Field> fs;
    for (const auto& k : known) fs.push_back(Bool(k));
    RawJson probe = RawJson::object();
    probe[it.key()] = nullptr;
    Json ignored;
    return ValidateFields(fs, probe, path, ValidateContext{}, &ignored);
  }
  return absl::OkStatus();
}

absl::Status CheckGraph(const std::vector<StageSpec>& stages) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < stages.size(); ++i) {
    auto [it, inserted] = index.emplace(stages[i].id, i);
    if (!inserted) {
      return Err(IndexPath("stages", i) + ".id",
                 absl::StrCat("duplicate stage id \"", stages[i].id, "\" (also stages[", it->second, "])"));
    }
  }
  for (size_t i = 0; i < stages.size(); ++i) {
    for (size_t j = 0; j < stages[i].needs.size(); ++j) {
      const std::string& n = stages[i].needs[j];
      const std::string p = IndexPath(IndexPath("stages", i) + ".needs", j);
      if (!index.count(n)) return Err(p, absl::StrCat("unknown stage \"", n, "\""));
      if (n == stages[i].id) return Err(p, absl::StrCat("stage \"", n, "\" cannot need itself"));
    }
  }
  // Depth-first search in file order; a grey node reached again closes a cycle.
  std::vector<int> color(stages.size(), 0);
  std::vector<size_t> stack;
  std::function<absl::Status(size_t)> visit = [&](size_t u) -> absl::Status {
    color[u] = 1;
    stack.push_back(u);
    for (const auto& n : stages[u].needs) {
      size_t v = index.at(n);
      if (color[v] == 1) {
        std::vector<std::string> cyc;
        auto start = std::find(stack.begin(), stack.end(), v);
        for (auto it = start; it != stack.end(); ++it) cyc.push_back(stages[*it].id);
        cyc.push_back(stages[v].id);
        return Err("stages", absl::StrCat("cycle: ", absl::StrJoin(cyc, " -> ")));
      }
      if (color[v] == 0) RETURN_IF_ERROR(visit(v));
    }
    stack.pop_back();
    color[u] = 2;
    return absl::OkStatus();
  };
  for (size_t i = 0; i < stages.size(); ++i) {
    if (color[i] == 0) RETURN_IF_ERROR(visit(i));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExperimentSpec> ParseExperiment(const RawJson& doc, const ParseOptions& options) {
  if (doc.is_null()) return Err("experiment", "the document is empty");
  if (!doc.is_object()) return Err("experiment", "the document must be a mapping of keys");

  std::vector<Field> top = ExperimentFields();
  std::vector<std::string> known;
  for (const auto& f : top) known.push_back(f.name);
  for (const char* k : {"resources", "model", "data", "stages"}) known.push_back(k);
  RETURN_IF_ERROR(CheckKeys(doc, known, ""));

  RawJson plain = RawJson::object();
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (std::any_of(top.begin(), top.end(), [&](const Field& f) { return f.name == it.key(); })) {
      plain[it.key()] = it.value();
    }
  }
  Json norm;
  RETURN_IF_ERROR(ValidateFields(top, plain, "", ValidateContext{}, &norm));
  if (!norm.contains("owner")) {
    norm["owner"] = options.default_owner.empty() ? "anonymous" : options.default_owner;
  }

  if (!doc.contains("stages") || doc["stages"].is_null()) return Err("stages", "missing required key");
  const RawJson& raw_stages = doc["stages"];
  if (!raw_stages.is_array() || raw_stages.empty()) {
    return Err("stages", absl::StrCat("must be a non-empty list of stages, got ", raw_stages.dump()));
  }
  if (raw_stages.size() > 1000) return Err("stages", "at most 1000 stages");

  bool any_data = false;
  for (const auto& s : raw_stages) {
    const KindSchema* k = (s.is_object() && s.contains("kind") && s["kind"].is_string())
                              ? FindKind(s["kind"].get<std::string>())
                              : nullptr;
    if (k && k->uses_data && !s.contains("data")) any_data = true;
  }
  Base base;
  base.seed = norm["seed"].get<int64_t>();
  RETURN_IF_ERROR(NormalizeBase(doc, "", options.check_paths && any_data, &base));

  ExperimentSpec spec;
  spec.name = norm["name"].get<std::string>();
  spec.owner = norm["owner"].get<std::string>();
  spec.priority = static_cast<int>(norm["priority"].get<int64_t>());
  spec.resources = ToResources(base.resources_norm);
  Json stages_norm = Json::array();
  for (size_t i = 0; i < raw_stages.size(); ++i) {
    ASSIGN_OR_RETURN(Json job, NormalizeStage(raw_stages[i], IndexPath("stages", i), base, options));
    StageSpec st;
    st.id = job["id"].get<std::string>();
    st.kind = job["kind"].get<std::string>();
    st.needs = job["needs"].get<std::vector<std::string>>();
    st.max_attempts = static_cast<int>(job["max_attempts"].get<int64_t>());
    st.resources = ToResources(job["resources"]);
    st.job_spec = job;
    stages_norm.push_back(std::move(job));
    spec.stages.push_back(std::move(st));
  }
  RETURN_IF_ERROR(CheckGraph(spec.stages));

  norm["resources"] = base.resources_norm;
  norm["model"] = base.model_norm;
  norm["data"] = base.data_norm;
  norm["stages"] = std::move(stages_norm);
  spec.normalized = std::move(norm);
  spec.normalized_json = spec.normalized.dump();
  spec.hash = Sha256Hex(spec.normalized_json);
  return spec;
}

}  // namespace

absl::StatusOr<ExperimentSpec> ParseExperimentYaml(std::string_view yaml, const ParseOptions& options) {
  MarkMap marks;
  auto doc = ParseYamlDocument(yaml, &marks);
  if (!doc.ok()) return doc.status();
  auto spec = ParseExperiment(*doc, options);
  if (!spec.ok()) return WithLocation(spec.status(), marks);
  return spec;
}

absl::StatusOr<nlohmann::json> ParseJobSpec(std::string_view text, const ParseOptions& options) {
  MarkMap marks;
  auto doc_or = ParseYamlDocument(text, &marks);
  if (!doc_or.ok()) return doc_or.status();
  RawJson doc = std::move(*doc_or);
  if (doc.is_null()) return Err("job", "the document is empty");
  if (!doc.is_object()) return Err("job", "the document must be a mapping of keys");
  // A standalone spec may omit `id` (it defaults to the kind) and `seed` (0).
  if ((!doc.contains("id") || doc["id"].is_null()) && doc.contains("kind") && doc["kind"].is_string()) {
    doc["id"] = doc["kind"];
  }
  Base base;
  const KindSchema* kind = nullptr;
  absl::Status s = CheckKind(doc, "", &kind);
  if (s.ok()) s = NormalizeBase(RawJson::object(), "", false, &base);
  if (!s.ok()) return WithLocation(s, marks);
  auto spec = NormalizeStage(doc, "", base, options);
  if (!spec.ok()) return WithLocation(spec.status(), marks);
  return spec;
}

std::vector<std::string> KnownJobKinds() {
  std::vector<std::string> out;
  for (const auto& k : AllKinds()) out.push_back(k.kind);
  return out;
}

}  // namespace topolab::config
