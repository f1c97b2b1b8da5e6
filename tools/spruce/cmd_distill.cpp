// spruce distill --pattern 4x1 --sparsity 0.8 --save out/minilm-4x1-80: prunes all-MiniLM-L6-v2's
// encoder by distillation from the dense model, on Debian's fortunes, and reports held-out fidelity.
// Its flags; the work is in run_distill.cpp.
#include "cmd_distill.hpp"

#include <memory>

#include "command.hpp"
#include "flags.hpp"

namespace spruce::cli {
namespace {

void add(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  auto* cmd =
      app.add_subcommand("distill", "Prune all-MiniLM-L6-v2 by distillation from the dense model; held-out fidelity");
  a->cmd = cmd;
  cmd->add_option("--pattern", a->pattern,
                  "Pattern for every encoder Linear: 4x1, 2:4, 16x1, ... (without it: a dense distillation)");
  cmd->add_option("--sparsity", a->sparsity, "Target sparsity (an N:M pattern fixes its own)")->check(fraction());
  cmd->add_option("--criterion", a->criterion,
                  "Pruning scores: magnitude, gradient, snip, snip_momentum, wanda (|W| x input RMS) or sparsegpt "
                  "(OBS saliency; the kept weights are rewritten to make up for the pruned)")
      ->capture_default_str();
  cmd->add_option("--scope", a->scope,
                  "local: every layer at the target; global: one threshold over all the encoder's scores, so "
                  "that layers differ and the total meets the target")
      ->check(CLI::IsMember({"local", "global"}))
      ->capture_default_str();
  cmd->add_option("--max-layer-sparsity", a->max_layer_sparsity,
                  "With --scope global: no layer sparser than this (default 0.98)")
      ->check(fraction());
  cmd->add_flag("--straight-through", a->straight_through,
                "Pruned weights keep learning through the masked forward until 70% of the steps, and each of "
                "about 100 mask updates may bring them back (SR-STE); then the mask is final");
  cmd->add_flag("--gradual-nm", a->gradual_nm,
                "An N:M pattern grows like a block one: the share of weight groups pruned to N:M rises on the "
                "schedule to all of them at 70% of the steps, those that lose least first (default: whole at "
                "the start)");
  cmd->add_flag("--permute-channels", a->o.permute_channels,
                "With an N:M pattern: first reorder the input channels of every attention output and FFN output "
                "(and the rows of V and FFN in that produce them) so that the N:M masks keep more of the "
                "criterion's scores; the model computes the same function (Pool & Yu 2021)");
  cmd->add_option("--straight-through-decay", a->straight_through_decay,
                  "With --straight-through: the fraction by which pruned weights shrink each step, so that the "
                  "masks settle (SR-STE's refined term; 0: none)")
      ->check(real_in(0, 1, false, true))
      ->capture_default_str();
  cmd->add_option("--steps", a->o.steps, "Training steps")->check(int_in(1, 1'000'000))->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "Texts per step")->check(int_in(1, 1024))->capture_default_str();
  cmd->add_option("--lr", a->o.learning_rate, "AdamW learning rate")->check(real_in(0, 1, true))->capture_default_str();
  cmd->add_flag("--decay-lr,!--no-decay-lr", a->o.decay_lr,
                "Decay the learning rate linearly to 0 over the steps after the last mask update (the default), "
                "or keep it constant");
  cmd->add_option("--hidden-weight", a->o.hidden_weight, "Weight of the hidden-state loss (0: embeddings only)")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--attention-weight", a->o.attention_weight,
                  "Weight of self-attention transfer (MiniLM): the KL between the teacher's and the student's "
                  "attention distributions and value relations in every layer (0: off)")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--similarity-weight", a->o.similarity_weight,
                  "Weight of the loss on in-batch pairwise similarities (0: off), for retrieval fidelity")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--neighbour-weight", a->o.neighbour_weight,
                  "Weight of the loss on each text's similarities to the teacher's embeddings of every training "
                  "text, a softmax at --neighbour-temperature (0: off), for retrieval fidelity")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--neighbour-temperature", a->o.neighbour_temperature,
                  "Temperature of the neighbourhood loss: lower weighs the nearest neighbours more")
      ->check(real_in(0.001, 10))
      ->capture_default_str();
  cmd->add_option("--spread-weight", a->o.spread_weight,
                  "Weight of the embedding error weighted by how the training texts' embeddings vary, so that "
                  "errors which reorder neighbours cost most (0: off), for retrieval fidelity")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_flag("--train-embeddings", a->o.train_embeddings,
                "Train the token, position and type embeddings too (not pruned; frozen by default)");
  cmd->add_option("--crop", a->o.crop,
                  "Share of training texts replaced, each time they are drawn, by a random run of 3 or more of "
                  "their words, so that repeated passes see new inputs")
      ->check(fraction())
      ->capture_default_str();
  cmd->add_option("--dropout", a->o.dropout,
                  "The student's dropout probability while it trains (0: off), a regularizer against memorizing "
                  "the training texts")
      ->check(real_in(0, 1, false, true))
      ->capture_default_str();
  cmd->add_option("--ema", a->o.ema,
                  "Keep an exponential moving average of the weights from the last mask update on, decaying by "
                  "this factor per step (e.g. 0.99), and return it (0: off)")
      ->check(real_in(0, 1, false, true))
      ->capture_default_str();
  cmd->add_option("--checkpoint", a->o.checkpoint_dir,
                  "Folder to keep the run in (DIR/checkpoint.pt), saved at each held-out check or every "
                  "--checkpoint-every steps, so that it can be resumed")
      ->check(non_empty());
  cmd->add_option("--checkpoint-every", a->o.checkpoint_every, "Steps between checkpoints (0: at each held-out check)")
      ->check(int_in(0, 100000000))
      ->capture_default_str();
  cmd->add_flag("--resume", a->o.resume,
                "Continue the run kept in --checkpoint DIR; every other setting must be the same as when it started");
  cmd->add_option("--stop-after", a->o.stop_after,
                  "End this sitting after this many of the steps (in all), leaving the checkpoint to --resume from")
      ->check(int_in(1, 100000000));
  cmd->add_option("--evaluations", a->o.evaluations, "Held-out fidelity reports during training")
      ->check(int_in(1, 1000))
      ->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "Seed for the text order")->check(uint_in(0, UINT64_MAX))->capture_default_str();
  cmd->add_option("--model", a->model, "The teacher: a sentence-transformers folder")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--fortunes", a->fortunes, "Folder of fortune files (Debian's fortunes)")
      ->check(non_empty())
      ->capture_default_str();
  auto* wordnet =
      cmd->add_option("--wordnet", a->wordnet,
                      "Also train on WordNet's definitions and example sentences, from this folder (Debian's "
                      "wordnet-base: /usr/share/wordnet); never held out")
          ->check(non_empty());
  cmd->add_option("--wordnet-share", a->o.extra_share, "Share of the training steps whose batch is WordNet's")
      ->check(real_in(0, 1))
      ->needs(wordnet)
      ->capture_default_str();
  cmd->add_option("--save", a->save,
                  "Write the pruned model here, as a sentence-transformers folder (a new folder, or one saved before, "
                  "which it replaces whole)")
      ->check(non_empty());
  cmd->add_option("--json", a->json, "Write the fidelity and settings")->check(non_empty());
  cmd->add_option("--threads", a->threads, "Threads")->check(thread_count())->capture_default_str();
  cmd->add_flag("!--no-progress", a->o.progress_bar, "No progress line");
  cmd->callback([a] { run_distill(*a); });
}

const Command reg{"distill", add};

}  // namespace
}  // namespace spruce::cli
