// spruce train --dataset fashion-mnist --model mlp|cnn [--pattern P --sparsity S | --recipe R.yaml]
//              --epochs N --seed N [--save DIR] [--json FILE] [--threads N]
// Its flags; the work is in run_train.cpp.
#include "cmd_train.hpp"

#include <memory>

#include "command.hpp"
#include "flags.hpp"

namespace spruce::cli {
namespace {

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  fashion_mnist::TrainOptions& o = args->options;
  auto* cmd = app.add_subcommand("train", "Train a Fashion-MNIST model, dense or pruned during training");
  args->cmd = cmd;
  cmd->add_option("--dataset", args->dataset, "Dataset (fashion-mnist)")->capture_default_str();
  cmd->add_option("--model", o.model, "Model: mlp (784-1024-1024-10) or cnn (2 conv + linear head)")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
  auto* pattern =
      cmd->add_option("--pattern", args->pattern, "Sparsity pattern: RxC blocks (4x1, 2x1, 4x16, 1x1) or N:M (2:4)")
          ->check(non_empty());
  cmd->add_option("--sparsity", args->sparsity, "Target fraction of zeros, e.g. 0.9 (an N:M pattern sets its own)")
      ->check(fraction());
  cmd->add_option("--recipe", args->recipe, "Pruning recipe YAML (Intel Neural Compressor's keys)")
      ->check(non_empty())
      ->excludes(pattern);
  cmd->add_option("--epochs", o.epochs, "Training epochs")->check(int_in(1, 10000))->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of initialization and shuffling")
      ->check(uint_in(0, UINT32_MAX))
      ->capture_default_str();
  cmd->add_option("--save", o.save_dir, "Folder for checkpoint.pt, masks.safetensors and model.safetensors")
      ->check(non_empty());
  cmd->add_option("--json", args->json, "Write the final metrics as JSON to this file")->check(non_empty());
  cmd->add_option("--threads", args->threads, "Intra-op threads (default: all cores)")->check(thread_count());
  cmd->add_option("--batch-size", o.batch_size, "Batch size")->check(int_in(1, 1 << 16))->capture_default_str();
  cmd->add_option("--lr", o.learning_rate, "Adam's peak learning rate (cosine decay to 0)")
      ->check(real_in(0, 10, true))
      ->capture_default_str();
  cmd->add_option("--data", o.data_dir, "Folder of the Fashion-MNIST IDX .gz files")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--train-limit", o.train_limit, "Use only the first N training examples")
      ->check(int_in(1, INT32_MAX));
  cmd->add_option("--test-limit", o.test_limit, "Use only the first N test examples")->check(int_in(1, INT32_MAX));
  cmd->add_option("--scope", args->scope, "With --pattern: local or global (default global)")
      ->check(CLI::IsMember({"local", "global"}));
  cmd->add_option("--criterion", args->criterion,
                  "With --pattern: magnitude, gradient, snip, snip_momentum (default), wanda (|W| x input RMS) or "
                  "sparsegpt (Linear layers, --scope local; the kept weights make up for the pruned)");
  cmd->add_option("--group-lasso", o.group_lasso, "With --pattern: group-lasso coefficient (default 0: off)")
      ->check(real_in(0, 1e3));
  cmd->add_flag("--straight-through", o.straight_through,
                "With --pattern: pruned weights keep learning through the masked forward until the ramp ends, "
                "and mask updates may bring them back (SR-STE)");
  cmd->add_flag("--gradual-nm", o.gradual_nm,
                "With an N:M --pattern: the share of weight groups pruned to N:M grows on the schedule, those "
                "that lose least first (default: N:M whole at the ramp's start)");
  cmd->add_option("--straight-through-decay", o.straight_through_decay,
                  "With --straight-through: the fraction by which pruned weights shrink each step (0: none)")
      ->check(real_in(0, 1, false, true));
  cmd->add_option("--resume", args->resume, "Continue from DIR/checkpoint.pt with DIR/recipe.yaml (same --model)")
      ->check(non_empty());
  cmd->add_option("--init", o.init_from, "Start from the weights of a .safetensors file")->check(non_empty());
  cmd->add_option("--teacher", args->teacher_dir,
                  "Distil from a trained model of the same architecture: the --save folder of a `spruce train`")
      ->check(non_empty());
  cmd->add_option("--distill-weight", o.distill_weight, "With --teacher: share of the distillation loss")
      ->check(real_in(0, 1, true, false))
      ->capture_default_str();
  cmd->add_option("--distill-temperature", o.distill_temperature, "With --teacher: softmax temperature")
      ->check(real_in(0.01, 100))
      ->capture_default_str();
  cmd->add_flag("--lock-pattern", o.lock_pattern,
                "Keep the loaded weights' zeros as masks when they come without masks");
  cmd->add_flag("--no-progress", args->no_progress, "Print one line per epoch instead of a progress bar");
  cmd->add_flag("--overwrite", args->overwrite, "Replace a run already saved in the --save folder");
  auto* nproc = cmd->add_option("--nproc", args->nproc,
                                "Data-parallel: start N local ranks (threads split between them), Gloo over loopback")
                    ->check(int_in(1, 256))
                    ->capture_default_str();
  cmd->add_option("--world-size", args->world_size, "Data-parallel job: number of ranks (env WORLD_SIZE)")
      ->check(int_in(1, 1 << 16))
      ->excludes(nproc);
  cmd->add_option("--rank", args->rank, "Data-parallel job: this process's rank, 0 to world size - 1 (env RANK)")
      ->check(int_in(0, 1 << 16))
      ->excludes(nproc);
  cmd->add_option("--master-addr", args->master_addr, "Data-parallel job: rank 0's address (env MASTER_ADDR)")
      ->check(non_empty())
      ->excludes(nproc);
  cmd->add_option("--master-port", args->master_port, "Data-parallel: rank 0's TCP port (env MASTER_PORT; 29500)")
      ->check(int_in(1, 65535));
  cmd->add_option("--dist-timeout", args->dist_timeout,
                  "Data-parallel: seconds a rank waits for the others before it fails")
      ->check(int_in(1, 86400))
      ->capture_default_str();
  cmd->callback([args] { run_train(*args); });
}

const Command reg{"train", add_train};

}  // namespace
}  // namespace spruce::cli
