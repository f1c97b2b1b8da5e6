// spruce bench-model dlrm: whole-model Offline and Server throughput through MLPerf LoadGen, in the
// seed's table form, with the seed's own figures beside it.
// Its flags, and the checks that need no LibTorch (both programs run them); the work is in run_bench_model.cpp.
#include "cmd_bench_model.hpp"

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <memory>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/attention.hpp"
#include "spruce/error.hpp"
#include "spruce/recipe.hpp"
#include "spruce/spmm.hpp"

namespace spruce::cli {
namespace {

void add(CLI::App& app) {
  auto a = std::make_shared<BenchModelArgs>();
  auto* cmd = app.add_subcommand(
      "bench-model", "Train, convert and measure a whole model: LibTorch FP32 dense, INT8 dense, INT8 sparse");
  a->cmd = cmd;
  cmd->add_option("model", a->model,
                  "dlrm (MLPerf shapes, synthetic data, through LoadGen) or minilm (all-MiniLM-L6-v2, pruned by "
                  "`spruce distill`)")
      ->required();
  a->minilm.dense_dir = minilm::default_model_dir();
  cmd->add_option("--sparse-model", a->minilm.sparse_dir, "minilm: the pruned model folder (`spruce distill --save`)")
      ->check(non_empty());
  cmd->add_option("--dense-model", a->minilm.dense_dir, "minilm: the dense model folder")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--seq-length", a->minilm.seq_length, "minilm: tokens per sequence")
      ->check(int_in(3, 512))
      ->capture_default_str();
  cmd->add_option("--variants", a->minilm.variants,
                  "minilm: which to run, of fp32-dense, int8-dense, fp32-sparse and int8-sparse")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--tokens-per-pass", a->minilm.tokens_per_pass,
                  "minilm: run each batch in passes of whole sequences, at most this many tokens each, so that "
                  "activations stay in cache between layers (0: the whole batch at once; the default fits a core's L2 "
                  "cache at 8 KiB a token, in whole sequences of 128)")
      ->check(int_in(0, 1 << 20))
      ->capture_default_str();
  cmd->add_flag_callback(
      "--one-pass-at-a-time", [a] { a->minilm.parallel_passes = false; },
      "minilm: run a batch's passes one after another, each operator on every thread (default: the "
      "passes side by side, one thread each, with no barrier between operators)");
  cmd->add_option("--attention", a->attention,
                  "minilm: the INT8 variants' attention products: f32; bf16 (BF16-rounded inputs, FP32 sums; "
                  "AVX512_BF16); int8 (8-bit inputs and u8 softmax weights, int32 sums; AVX512_VNNI). Where the "
                  "CPU lacks the instructions, f32; the table says which kernel ran")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}))
      ->capture_default_str();
  cmd->add_flag("--bf16-attention", a->bf16_attention, "minilm: the same as --attention bf16");
  cmd->add_option("--seconds", a->minilm.min_seconds, "minilm: timing per variant and batch size, seconds")
      ->check(real_in(0.01, 3600))
      ->capture_default_str();
  cmd->add_option("--work-dir", a->work_dir, "Where trained models are cached")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_flag("--retrain", a->o.retrain, "Train again even when the cache has the models");
  cmd->add_option("--train-samples", a->o.train_samples, "Synthetic training samples")
      ->check(int_in(1, 1 << 26))
      ->capture_default_str();
  cmd->add_option("--test-samples", a->o.test_samples, "Synthetic test samples")
      ->check(int_in(1, 1 << 26))
      ->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "Dense training epochs")->check(int_in(1, 1000))->capture_default_str();
  cmd->add_option("--finetune-epochs", a->o.finetune_epochs,
                  "Dense and sparse both continue from the pre-trained model on this many epochs of the same "
                  "fresh clicks (the sparse one prunes meanwhile)")
      ->check(int_in(1, 1000))
      ->capture_default_str();
  cmd->add_option("--table-cap", a->o.table_cap, "Rows per embedding table at most")
      ->check(int_in(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--pattern", a->pattern, "Sparsity pattern of the MLPs")->capture_default_str();
  cmd->add_option("--sparsity", a->o.sparsity,
                  "Fraction of zeros in the pruned MLP layers (an N:M pattern fixes its own: 2:4 is 0.5)")
      ->check(fraction())
      ->capture_default_str();
  cmd->add_option("--threads", a->o.threads, "Threads for every variant")->check(thread_count())->capture_default_str();
  add_fallback_option(cmd, a->fallback);
  cmd->add_option("--batches", a->o.batches, "Batch sizes: dlrm's Offline batches to try; minilm's (default 1 8 32)")
      ->check(int_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--p99-ms", a->o.p99_bound_ms, "Server p99 latency bound; 0: LoadGen's for DLRM v2 (60 ms)")
      ->check(real_in(0, 1e6))
      ->capture_default_str();
  cmd->add_option("--min-duration", a->o.min_duration_s,
                  "LoadGen's minimum duration of each run, seconds (LoadGen's own: 600; shorter runs are marked)")
      ->check(real_in(0.1, 1e5))
      ->capture_default_str();
  cmd->add_option("--server-probes", a->o.server_probes, "LoadGen Server runs in the search for the highest VALID rate")
      ->check(int_in(1, 100))
      ->capture_default_str();
  cmd->add_option("--log-dir", a->o.log_dir, "LoadGen's summary and detail logs (default: <work-dir>/loadgen)")
      ->check(non_empty());
  cmd->add_option("--server-max-batch", a->o.server_max_batch, "Largest dynamic batch in the Server scenario")
      ->check(int_in(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the data and training")
      ->check(uint_in(0, UINT32_MAX))
      ->capture_default_str();
  cmd->add_option("--json", a->json, "Write one record per variant and scenario, with LoadGen's fields")
      ->check(non_empty());
  cmd->callback([a] { run_bench_model(*a); });
}

const Command reg{"bench-model", add};

}  // namespace

void check_bench_model_args(BenchModelArgs& a) {
  a.o.fallback = a.minilm.fallback = parse_fallback(a.fallback);
  // A batch given twice was measured twice, as two records of one row.
  if (const auto i = first_repeat(a.o.batches))
    usage_error("--batches " + std::to_string(a.o.batches[*i]) + " is given twice; give each once");
  if (a.model == "minilm") {
    for (const char* dlrm_only : {"--pattern", "--sparsity", "--epochs", "--finetune-epochs", "--train-samples",
                                  "--test-samples", "--table-cap", "--retrain", "--p99-ms", "--server-probes",
                                  "--log-dir", "--server-max-batch", "--work-dir", "--min-duration", "--seed"})
      if (a.cmd->count(dlrm_only) > 0)
        usage_error(std::string(dlrm_only) + " is for dlrm; minilm measures the weights given by --sparse-model");
    if (a.bf16_attention && a.cmd->count("--attention") > 0 && a.attention != "bf16")
      usage_error("--bf16-attention and --attention " + a.attention + " disagree: give one of them");
    a.minilm.int8_attention = parse_attention_precision(a.bf16_attention ? "bf16" : a.attention);
    // Settings that act on variants not run would be taken in silence.
    const auto& v = a.minilm.variants;
    const auto runs = [&](std::initializer_list<const char*> names) {
      return std::any_of(names.begin(), names.end(), [&](const char* n) { return std::count(v.begin(), v.end(), n); });
    };
    if ((a.cmd->count("--attention") > 0 || a.bf16_attention) && !runs({"int8-dense", "int8-sparse"}))
      usage_error(
          "--attention sets the INT8 variants' attention, and --variants runs none; add int8-dense or "
          "int8-sparse, or drop it");
    if (a.cmd->count("--fallback") > 0 && !runs({"fp32-sparse", "int8-sparse"}))
      usage_error(
          "--fallback acts on the sparse variants, and --variants runs none; add fp32-sparse or int8-sparse, "
          "or drop it");
    a.minilm.threads = a.o.threads;
    if (a.cmd->count("--batches") > 0) a.minilm.batches = a.o.batches;
    check_not_inside("--json", a.json, a.minilm.sparse_dir, "the pruned model (--sparse-model)", kSentenceModelFiles);
    check_not_inside("--json", a.json, a.minilm.dense_dir, "the dense model (--dense-model)", kSentenceModelFiles);
    check_output_file("--json", a.json, "JSON");
    return;
  }
  for (const char* minilm_only : {"--sparse-model", "--dense-model", "--seq-length", "--seconds", "--variants",
                                  "--attention", "--bf16-attention", "--tokens-per-pass", "--one-pass-at-a-time"})
    if (a.cmd->count(minilm_only) > 0) usage_error(std::string(minilm_only) + " is for minilm");
  if (a.model != "dlrm") usage_error("unknown model " + in_quotes(a.model) + ": valid are dlrm and minilm");
  a.o.pattern = Pattern::parse(a.pattern);
  // An N:M pattern fixes its own sparsity, as in prune, train and distill: an explicit --sparsity
  // must agree with it, and the default 0.85 gives way to it (2:4 ran at 50% labelled 85%).
  if (a.o.pattern.is_nm())
    a.o.sparsity =
        Recipe::from_flags(a.pattern, a.cmd->count("--sparsity") > 0 ? a.o.sparsity : NAN).groups[0].target();
  if (!(a.o.sparsity > 0 && a.o.sparsity < 1)) usage_error("--sparsity must be in (0, 1), e.g. 0.85");
}

}  // namespace spruce::cli
