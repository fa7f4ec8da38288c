// `kind: train` — supervised or SimCLR training with an optional spatial loss.
// Owner after the engine landed: the train engineer.
#include "proto/config/schema.h"

namespace topolab::config {
namespace {

// Keys of optimizer.name adam and adamw (torch.optim.Adam/AdamW's betas, eps).
std::vector<Field> AdamFields() {
  Field betas = NumberList("betas", 0, 1).Length(2).Default(Json::array({0.9, 0.999}))
      .Doc("[beta1, beta2]: decay rates of the first and second moment estimates");
  betas.items[0].Below(1);  // beta = 1 divides by zero in the bias correction
  return {
      betas,
      Double("eps").Default(1e-8).Positive().Max(1)
          .Doc("added to the denominator (All-TNN's paper value: 1e-7)"),
  };
}

}  // namespace

KindSchema TrainSchema() {
  KindSchema k;
  k.kind = "train";
  k.doc = "train a model (supervised or SimCLR), optionally with the TDANN spatial loss";
  k.uses_data = true;
  k.fields = {
      Int("epochs").Default(1).Range(1, 100000).Doc("passes over the training set"),
      Int("max_steps").Default(0).Min(0).Doc("stop after this many optimizer steps (0 = no cap)"),
      Int("batch_size").Default(64).Range(1, 65536).Doc("images per step"),
      TaggedObject("optimizer", "name", {
          Enum("name", {"sgd", "adam", "adamw"}).Default("sgd")
              .Doc("sgd (momentum, nesterov) | adam (weight_decay as L2 added to the gradient) | adamw "
                   "(decoupled weight decay: p -= lr * weight_decay * p)"),
          Double("lr").Default(0.1).Positive().Max(100).Doc("base (peak) learning rate"),
          Double("weight_decay").Default(1e-4).Range(0, 1)
              .Doc("weight decay (sgd, adam: L2 added to the gradient; adamw: decoupled)"),
          Bool("weight_decay_bn").Default(false)
              .Doc("also decay normalisation-layer (BatchNorm, LayerNorm) weights and biases"),
          Double("clip_grad_norm").Default(0.0).Min(0)
              .Doc("clip the total L2 norm of all gradients to this before each step (0 = off); "
                   "when on, the pre-clip norm is reported as metric grad_norm"),
      }).Variant("sgd", {
          Double("momentum").Default(0.9).Range(0, 1).Doc("SGD momentum"),
          Bool("nesterov").Default(false).Doc("Nesterov momentum (needs momentum > 0)"),
      }).Variant("adam", AdamFields()).Variant("adamw", AdamFields())
          .Doc("optimizer settings; the keys after `name` depend on it"),
      Enum("lr_schedule", {"cosine", "constant", "multistep"}).Default("cosine")
          .Doc("learning-rate schedule, updated every step (cosine: lr -> min_lr over all steps; "
               "multistep: lr * lr_gamma^(milestones passed))"),
      NumberList("lr_milestones", 0, 1e6).Increasing().Length(0, 1000).Default(Json::array())
          .Doc("multistep: epochs (fractions allowed) at which lr is multiplied by lr_gamma; milestone m "
               "applies from step ceil(m * steps_per_epoch); empty = no decay"),
      Double("lr_gamma").Default(0.1).Positive().Max(1).Doc("multistep decay factor"),
      Double("min_lr").Default(0.0).Range(0, 100).Doc("cosine schedule's final learning rate"),
      Int("warmup_steps").Default(0).Min(0).Doc("linear warm-up steps before the schedule"),
      Bool("hflip").Default(false).Doc("random horizontal flips of training images (supervised)"),
      Int("eval_batches").Default(10).Min(0)
          .Doc("test-set batches evaluated at the end (0 = no test evaluation)"),
      Int("eval_batch_size").Default(0).Min(0).Doc("test batch size (0 = batch_size)"),
      Int("log_every").Default(10).Range(1, 1000000).Doc("report metrics every N steps"),
      Int("checkpoint_every").Default(100).Min(0).Doc("checkpoint every N steps (0 = only the final one)"),
      Enum("objective", {"supervised", "simclr"}).Default("supervised").Doc("task loss"),
      Object("simclr", {
          Double("temperature").Default(0.1).Positive().Max(100).Doc("NT-Xent temperature tau"),
      }).Doc("SimCLR settings (objective: simclr)"),
      Double("spatial_weight").Default(0.0).Range(0, 1000).Doc("alpha of the spatial loss (0 = off)"),
      Object("spatial", {
          Enum("loss", {"rel", "abs"}).Default("rel").Doc("SL_Rel or SL_Abs"),
          Enum("rel_form", {"half", "full"}).Default("half").Doc("SL_Rel as (1-r)/2 (half) or 1-r (full)"),
          Int("neighborhoods_per_step").Default(1).Range(1, 1000).Doc("neighbourhoods per layer per step"),
          StringList("layers").Default(Json::array()).Doc("layers with a spatial loss (empty = all 8 blocks)"),
          Map("layer_weights", Double("weight").Range(0, 1000)).Default(Json::object())
              .Doc("per-layer alpha overriding spatial_weight ({layer4.1: 0.5}; 0 = off)"),
          Enum("scale", {"human", "train"}).Default("human")
              .Doc("cortical sheet size table for fresh sheets (no positions_from)"),
          Double("jitter_mm").Default(0.3).Range(0, 1000).Doc("fresh sheet jitter sd in mm"),
          Int("pool_windows").Default(20000).Range(1, 100000000)
              .Doc("windows drawn for a neighbourhood pool built here"),
      }).Doc("spatial loss settings"),
      String("positions_from").Default("").StageRef()
          .Doc("stage id (in needs) whose positions artifact lays out the units; empty = fresh sheet"),
  };
  return k;
}

}  // namespace topolab::config
