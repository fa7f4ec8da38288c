// topolab-bench swapopt: SwapOpt speed (tdann.md §3).
//
//   * swaps/s on one 500-unit window with 640 images: every window holds the
//     same 500 units, so one window = one 500x500 Pearson matrix (Gram of the
//     z-scored responses) + 500 swap attempts. Reported with and without the
//     matrix: swaps_per_s (end to end), gram_ms (per window) and swap_ns
//     (per attempt, O(n) incremental cost).
//   * windows/s on a V1-like sheet (layer2.0 geometry at 224 px with fewer
//     channels), 1 vs 2 threads: the deterministic parallel schedule's speedup.
#include <chrono>
#include <cstdio>
#include <functional>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <CLI/CLI.hpp>

#include "tests/bench/bench.h"
#include "worker/science/tdann/sheet.h"
#include "worker/science/tdann/swapopt.h"

namespace topolab::bench {
namespace {

namespace sci = topolab::science;

double Seconds(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Responses with spatial structure: a few smooth random fields plus noise.
at::Tensor SmoothResponses(const at::Tensor& pos, int64_t images, double scale, uint64_t seed) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t bumps = 32;
  at::Tensor lo = std::get<0>(pos.min(0)), hi = std::get<0>(pos.max(0));
  at::Tensor centres = lo + at::rand({bumps, 2}, gen) * (hi - lo);
  at::Tensor basis = at::exp(-(pos.unsqueeze(1) - centres.unsqueeze(0)).pow(2).sum(-1) /
                             (2 * scale * scale));
  return (at::randn({images, bumps}, gen).matmul(basis.t()) +
          0.1 * at::randn({images, pos.size(0)}, gen))
      .contiguous();
}

}  // namespace

int RunSwapoptBench(int argc, char** argv) {
  CLI::App app{"SwapOpt swaps/s on a 500-unit window; sheet windows/s at 1 and 2 threads"};
  int64_t units = 500, images = 640, windows = 40, swaps = 500, sheet_channels = 16,
          sheet_windows = 2000;
  app.add_option("--units", units, "units in the single window");
  app.add_option("--images", images, "stimuli (rows of the response matrix)");
  app.add_option("--windows", windows, "windows for the single-window figure");
  app.add_option("--swaps", swaps, "swap attempts per window");
  app.add_option("--sheet-channels", sheet_channels, "channels of the 28x28 V1-like sheet");
  app.add_option("--sheet-windows", sheet_windows, "windows on the sheet");
  CLI11_PARSE(app, argc, argv);

  // 1. One window of `units` units.
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor pos = at::rand({units, 2}, gen);   // all inside a 1 mm square
  at::Tensor resp = SmoothResponses(pos, images, 0.2, 2);
  pos = pos.index_select(0, at::randperm(units, gen, at::kLong)).contiguous();  // scrambled
  sci::SwapOptOptions opt;
  opt.num_windows = windows;
  opt.swaps_per_window = swaps;
  opt.width_mm = 2.0;            // wider than the sheet: the window holds every unit
  opt.max_units = units;
  opt.threads = 1;
  // Gram only (0 swaps), then many swaps per window so the O(n) swap cost
  // is measured well above the matrix time; end to end = gram + M swaps.
  double cost_before = 0, cost_after = 0;
  opt.swaps_per_window = 0;
  const double t_gram = Seconds([&] { (void)sci::RunSwapOpt(resp, pos, opt); });
  const double gram_s = t_gram / static_cast<double>(windows);
  sci::SwapOptOptions many = opt;
  many.num_windows = 2;
  many.swaps_per_window = 100 * swaps;
  const double t_many = Seconds([&] {
    auto r = sci::RunSwapOpt(resp, pos, many);
    if (r.ok()) {
      cost_before = r->mean_cost_before;
      cost_after = r->mean_cost_after;
    }
  });
  const double swap_s = std::max(1e-12, t_many - 2 * gram_s) / (2.0 * many.swaps_per_window);
  const double swaps_per_s = static_cast<double>(swaps) / (gram_s + swaps * swap_s);
  const double gram_ms = 1e3 * gram_s;
  const double swap_ns = 1e9 * swap_s;
  std::printf("single window: %lld units x %lld images, %lld windows x %lld swaps\n",
              static_cast<long long>(units), static_cast<long long>(images),
              static_cast<long long>(windows), static_cast<long long>(swaps));
  std::printf("  %.0f swaps/s end to end at %lld swaps per window (%.2f ms per window for the "
              "%lldx%lld Pearson matrix, %.0f ns per swap attempt, %.0f swaps/s without the matrix); "
              "window cost %.4f -> %.4f\n",
              swaps_per_s, static_cast<long long>(swaps), gram_ms, static_cast<long long>(units),
              static_cast<long long>(units), swap_ns, 1.0 / swap_s, cost_before, cost_after);

  // 2. A V1-like sheet, 1 vs 2 threads (identical results).
  sci::SheetOptions so;
  so.side_mm = 36.75;
  so.seed = 3;
  auto sheet = sci::BuildCorticalSheet(sheet_channels, 28, 28, so);
  if (!sheet.ok()) {
    std::fprintf(stderr, "%s\n", sheet.status().ToString().c_str());
    return 1;
  }
  at::Tensor sresp = SmoothResponses(sheet->positions, images, 3.0, 4);
  sci::SwapOptOptions sopt;
  sopt.num_windows = sheet_windows;
  sopt.swaps_per_window = swaps;
  sopt.width_mm = sheet->hypercolumn_width_mm;
  double t1 = 0, t2 = 0;
  at::Tensor p1, p2;
  sopt.threads = 1;
  t1 = Seconds([&] { p1 = sci::RunSwapOpt(sresp, sheet->positions, sopt)->positions; });
  sopt.threads = 2;
  t2 = Seconds([&] { p2 = sci::RunSwapOpt(sresp, sheet->positions, sopt)->positions; });
  const bool same = at::equal(p1, p2);
  std::printf("V1-like sheet: %lld units, window %.3f mm, %lld windows x %lld swaps\n",
              static_cast<long long>(sheet->num_units()), sopt.width_mm,
              static_cast<long long>(sheet_windows), static_cast<long long>(swaps));
  std::printf("  1 thread %.2f s (%.0f windows/s), 2 threads %.2f s (%.0f windows/s), "
              "speedup %.2fx, identical result: %s\n",
              t1, sheet_windows / t1, t2, sheet_windows / t2, t1 / t2, same ? "yes" : "NO");
  std::printf("{\"swaps_per_s\": %.0f, \"window_units\": %lld, \"images\": %lld, \"gram_ms\": %.3f, "
              "\"swap_ns\": %.1f, \"swaps_only_per_s\": %.0f, \"sheet_windows_per_s_1t\": %.1f, \"sheet_windows_per_s_2t\": %.1f, "
              "\"speedup_2t\": %.3f, \"deterministic\": %s}\n",
              swaps_per_s, static_cast<long long>(units), static_cast<long long>(images), gram_ms,
              swap_ns, 1.0 / swap_s, sheet_windows / t1, sheet_windows / t2, t1 / t2, same ? "true" : "false");
  return same ? 0 : 1;
}

}  // namespace topolab::bench
