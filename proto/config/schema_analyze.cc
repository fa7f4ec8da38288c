// `kind: analyze` — analyses on user-supplied activations and positions.
// Owner after the engine landed: the analysis engineer.
#include "proto/config/schema.h"

namespace topolab::config {

Field AnalysisOptionsField();  // schema_extract.cc

KindSchema AnalyzeSchema() {
  KindSchema k;
  k.kind = "analyze";
  k.doc = "analyse activations (.npy) at unit positions (.npy) for a stimulus set";
  k.uses_data = false;
  k.fields = {
      Object("inputs", {
          String("activations").Required().NonEmpty().Path(PathCheck::kFile)
              .Doc("activations .npy (images x units)"),
          String("positions").Required().NonEmpty().Path(PathCheck::kFile).Doc("positions .npy (units x 2, mm)"),
          OneOf("stimuli", {
              Enum("stimuli", {"sine_gratings"}),
              Object("stimuli", {
                  String("labels").Required().NonEmpty().Path(PathCheck::kFile)
                      .Doc("labels .npy (one int per image)"),
                  StringList("categories").Required().NonEmpty().Doc("category name of each label value"),
                  Map("domains", StringList("domain").NonEmpty()).Default(Json::object())
                      .Doc("domain name -> its categories"),
              }),
          }).Default("sine_gratings").Doc("sine_gratings, or {labels, categories, domains}"),
      }).Doc("input files"),
      Int("batch_size").Default(256).Range(1, 1 << 20).Doc("rows fed to the accumulators at a time"),
      AnalysisOptionsField(),
  };
  return k;
}

}  // namespace topolab::config
