#include "fashion_mnist/trainer.hpp"

#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <torch/utils.h>

#include <unistd.h>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numbers>
#include <ostream>
#include <sstream>
#include <utility>

#include "common/progress.hpp"
#include "fashion_mnist/data.hpp"
#include "fashion_mnist/models.hpp"
#include "spruce/checksum.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/distillation.hpp"

namespace spruce::fashion_mnist {
using namespace spruce::torch;
using apps::ProgressLine;

int64_t steps_per_epoch(int64_t examples, int64_t batch_size) { return (examples + batch_size - 1) / batch_size; }

double test_accuracy(Classifier& model, const ImageTensors& set) {
  ::torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  int64_t correct = 0;
  for (int64_t i = 0; i < set.size(); i += 1000) {
    const int64_t n = std::min<int64_t>(1000, set.size() - i);
    auto logits = model.forward(set.images.narrow(0, i, n));
    correct += (logits.argmax(1) == set.labels.narrow(0, i, n)).sum().item<int64_t>();
  }
  model.train(was_training);
  return double(correct) / double(set.size());
}

Recipe recipe_for_flags(const TrainOptions& o, int64_t total_steps, const std::vector<std::string>& dense_layers) {
  if (!o.pattern) {  // pattern lock alone: masks come from the weights, the schedule never prunes
    Recipe r = Recipe::single(Pattern::block(1, 1), 0.0);
    r.groups[0].schedule.start_step = r.groups[0].schedule.end_step = INT64_MAX / 2;
    return r;
  }
  Recipe r = Recipe::single(*o.pattern, o.sparsity);
  PruningGroup& g = r.groups[0];
  for (const auto& name : dense_layers) g.excluded_op_names.push_back("^" + name + "$");
  g.schedule.start_step = total_steps / 10;
  g.schedule.end_step = std::max(g.schedule.start_step, total_steps * 6 / 10);
  g.schedule.frequency = std::max<int64_t>(1, (g.schedule.end_step - g.schedule.start_step) / 20);
  if (o.scope) g.scope = *o.scope;
  if (o.criterion) g.criterion = *o.criterion;
  g.group_lasso = o.group_lasso > 0;
  g.reg_coeff = o.group_lasso;
  g.straight_through = o.straight_through;
  g.straight_through_decay = o.straight_through_decay;
  g.gradual_nm = o.gradual_nm;
  return r;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Zeros over every Linear and Conv2d weight: the sparsity a dense run reports.
double weight_sparsity(::torch::nn::Module& model) {
  int64_t zeros = 0, total = 0;
  for (const auto& p : model.named_parameters())
    if (p.key().ends_with(".weight") && p.value().dim() >= 2) {
      zeros += (p.value() == 0).sum().item<int64_t>();
      total += p.value().numel();
    }
  return total ? double(zeros) / double(total) : 0.0;
}

void set_learning_rate(::torch::optim::Adam& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<::torch::optim::AdamOptions&>(group.options()).lr(lr);
}

// How the run distils, kept in its checkpoint so that a resumed run distils alike: the teacher's
// weights (a checksum of the file), the weight and the temperature; or no teacher.
std::string distillation_record(const TrainOptions& o) {
  if (o.teacher.empty()) return "train: no teacher";
  const std::string bytes = read_file(o.teacher);
  char line[200];
  std::snprintf(line, sizeof line, "train: teacher %016llx, weight %g, temperature %g",
                static_cast<unsigned long long>(fnv1a(bytes.data(), bytes.size())), o.distill_weight,
                o.distill_temperature);
  return line;
}

// The flags besides the recipe and the teacher that decide a run's steps, as the command line
// gives them: kept in its checkpoint, so that a resumed run continues the same run.
std::vector<std::pair<std::string, std::string>> run_settings(const TrainOptions& o) {
  char lr[32];
  const auto end = std::to_chars(lr, lr + sizeof lr, o.learning_rate).ptr;  // shortest exact form
  return {{"--model", o.model},
          {"--batch-size", std::to_string(o.batch_size)},
          {"--lr", std::string(lr, end)},
          {"--seed", std::to_string(o.seed)},
          {"--train-limit", o.train_limit > 0 ? std::to_string(o.train_limit) : "all"}};
}

// A checkpoint's run state: how the run distils, then "settings:" and its run_settings.
std::string run_record(const TrainOptions& o) {
  std::string record = distillation_record(o) + "\nsettings:";
  for (const auto& [flag, value] : run_settings(o)) record += " " + flag + " " + value;
  return record;
}

// A resumed run must distil as its checkpoint did, and with its settings; a checkpoint from before
// each record leaves that part unchecked.
void require_same_run(const TrainOptions& o, const LoopState& saved) {
  const std::string& path = o.resume_from;
  if (!saved.text.starts_with("train: ")) return;
  const size_t newline = saved.text.find('\n');
  const std::string distillation = saved.text.substr(0, newline), here = distillation_record(o);
  if (distillation != here)
    usage_error(path + " was trained with " + distillation.substr(7) + "; this run has " + here.substr(7) +
                ": resume with the same --teacher, --distill-weight and --distill-temperature, or start afresh");
  if (newline == std::string::npos) return;
  std::istringstream words(saved.text.substr(newline + 1));
  std::string word, flag, value;
  words >> word;
  std::map<std::string, std::string> settings;
  if (word == "settings:")
    while (words >> flag >> value) settings[flag] = value;
  std::string theirs, ours, fix;
  for (const auto& [flag, value] : run_settings(o)) {
    const auto it = settings.find(flag);
    if (it == settings.end()) data_error(path + ": not a checkpoint of spruce train (its settings lack " + flag + ")");
    if (it->second == value) continue;
    const char* comma = theirs.empty() ? "" : ", ";
    theirs += comma + flag + " " + it->second;
    ours += comma + flag + " " + value;
    fix += comma + (it->second == "all" ? "no " + flag : flag + " " + it->second);
  }
  if (!theirs.empty())
    usage_error(path + " holds a run trained with " + theirs + ", and this one has " + ours + ": resume with " + fix +
                " to continue it, or start afresh in another folder");
}

// The generator a resumed run draws its shuffles from, where the checkpoint left it.
void restore_generator(const std::string& path, const ::torch::Tensor& state) {
  at::Generator generator = at::globalContext().defaultGenerator(at::kCPU);
  const ::torch::Tensor current = generator.get_state();
  if (!state.defined() || state.scalar_type() != current.scalar_type() || !state.sizes().equals(current.sizes()))
    data_error(path + ": not a checkpoint of spruce train (its random generator's state is damaged)");
  generator.set_state(state);
}

// The run's files, written as a set (a full disk or a signal part-way leaves the earlier set): the
// checkpoint with its recipe (--resume reads the schedule from recipe.yaml), and at the end the
// weights and masks. A dense run removes a stale recipe and masks.
void save_run(const TrainOptions& o, Classifier& model, const ::torch::optim::Adam& optimizer, const Pruner* pruner,
              TrainPosition position, const TrainResult* result) {
  std::filesystem::create_directories(o.save_dir);
  // Part-way, the final files of an earlier run (or sitting) would sit beside a checkpoint of this
  // one, describing another model: gone before it is written, the folder reads as unfinished.
  if (!result)
    for (const char* final_file : {"/model.safetensors", "/masks.safetensors"}) {
      std::error_code ec;
      std::filesystem::remove(o.save_dir + final_file, ec);
      if (ec) data_error("cannot remove the earlier run's " + o.save_dir + final_file + ": " + ec.message());
    }
  replace_files_together(o.save_dir, [&](const std::string& temp) {
    if (pruner) write_file_atomic(temp + "/recipe.yaml", pruner->recipe().to_yaml());
    const spruce::torch::LoopState loop{run_record(o),
                                        {{"torch_rng", at::globalContext().defaultGenerator(at::kCPU).get_state()}}};
    save_checkpoint(temp + "/checkpoint.pt", model, &optimizer, pruner, position, &loop);
    if (!result) return;
    std::map<std::string, std::string> metadata{
        {"spruce.model", o.model},
        {"spruce.dataset", "fashion-mnist"},
        {"spruce.test_accuracy", std::to_string(result->test_accuracy)},
        {"spruce.sparsity", std::to_string(result->sparsity)},
    };
    if (pruner) {
      metadata["spruce.recipe"] = pruner->recipe().to_yaml();
      export_masks(temp + "/masks.safetensors", *pruner);
    }
    export_safetensors(temp + "/model.safetensors", model, metadata);
  });
  if (pruner) return;
  for (const char* stale : {"/recipe.yaml", "/masks.safetensors"}) {
    std::error_code ec;
    std::filesystem::remove(o.save_dir + stale, ec);
    if (ec) data_error("cannot remove the earlier run's " + o.save_dir + stale + ": " + ec.message());
  }
}

// Test accuracy; data-parallel, each rank scores a slice of the set and the counts are summed.
double evaluate(Classifier& model, const ImageTensors& set, DataParallel* dp) {
  if (dp == nullptr) return test_accuracy(model, set);
  const size_t r = size_t(dp->rank());
  const ImageTensors part{set.images.tensor_split(dp->world_size())[r], set.labels.tensor_split(dp->world_size())[r]};
  std::vector<double> counts{part.size() ? std::round(test_accuracy(model, part) * double(part.size())) : 0.0,
                             double(part.size())};
  dp->all_reduce_sum(counts);
  return counts[0] / counts[1];
}

// A tensor's bytes, checksummed: the same order on every rank hashes alike.
uint64_t bytes_checksum(const ::torch::Tensor& t) {
  const auto c = t.contiguous();
  return fnv1a(c.data_ptr(), c.nbytes());
}

// Nothing would train, and the table and notes would describe a run that did not happen.
void require_epochs_left(const TrainOptions& o, const TrainPosition& position) {
  if (position.epoch < o.epochs) {
    if (o.stop_after > 0 && o.stop_after <= position.epoch)
      usage_error("--stop-after " + std::to_string(o.stop_after) + ": " + o.resume_from + " has finished " +
                  std::to_string(position.epoch) + (position.epoch == 1 ? " epoch" : " epochs") +
                  " already; give a later epoch, or drop it");
    return;
  }
  usage_error("--epochs " + std::to_string(o.epochs) + ": " + o.resume_from + " has finished " +
              std::to_string(position.epoch) + (position.epoch == 1 ? " epoch" : " epochs") +
              " already; give --epochs above " + std::to_string(position.epoch) + " to continue it");
}

}  // namespace

void check_resume(const TrainOptions& o) {
  require_same_run(o, read_loop_state(o.resume_from));  // first: another --model is named as such
  auto model = make_model(o.model);
  require_epochs_left(o, load_checkpoint(o.resume_from, *model, nullptr, nullptr));
}

TrainResult train(const TrainOptions& o, std::ostream& log) {
  if (o.epochs < 1 || o.batch_size < 1) usage_error("--epochs and --batch-size must be at least 1");
  if (o.stop_after < 0 || o.stop_after >= o.epochs || (o.stop_after > 0 && o.save_dir.empty()))
    usage_error("--stop-after ends a sitting before the last epoch, its checkpoint in --save: give an epoch below " +
                std::to_string(o.epochs) + " and --save DIR");
  const auto started = Clock::now();
  ::torch::manual_seed(o.seed);
  ImageTensors train_set = load_fashion_mnist_tensors(o.data_dir, Split::Train, o.train_limit);
  ImageTensors test_set = load_fashion_mnist_tensors(o.data_dir, Split::Test, o.test_limit);
  const int64_t per_epoch = steps_per_epoch(train_set.size(), o.batch_size);
  const int64_t total_steps = o.epochs * per_epoch;

  std::shared_ptr<Classifier> model = make_model(o.model);
  ::torch::optim::Adam optimizer(model->parameters(), ::torch::optim::AdamOptions(o.learning_rate));
  std::optional<Pruner> pruner;
  if (o.recipe)
    pruner.emplace(*model, *o.recipe);
  else if (o.pattern || o.lock_pattern)
    pruner.emplace(*model, recipe_for_flags(o, total_steps, model->dense_layers()));

  std::shared_ptr<Classifier> teacher;
  if (!o.teacher.empty()) {
    if (!(o.distill_weight > 0 && o.distill_weight <= 1) || !(o.distill_temperature > 0))
      usage_error("distillation needs a weight in (0, 1] and a positive temperature");
    teacher = make_model(o.model);
    load_safetensors_weights(o.teacher, *teacher);
    teacher->eval();
  }

  TrainPosition position;
  if (!o.init_from.empty()) {
    load_safetensors_weights(o.init_from, *model);
    if (o.lock_pattern)
      pruner->lock_existing_zeros();
    else if (!pruner && weight_sparsity(*model) >= 0.05)
      data_error(o.init_from +
                 " holds sparse weights and dense training would refill them; add --lock-pattern to "
                 "keep its zeros, or --pattern/--sparsity to prune it further");
  }
  ::torch::Tensor saved_generator;
  if (!o.resume_from.empty()) {
    const LoopState saved = read_loop_state(o.resume_from);
    require_same_run(o, saved);  // the command line checked it already; library callers too
    position = load_checkpoint(o.resume_from, *model, &optimizer, pruner ? &*pruner : nullptr,
                               o.lock_pattern ? MaskSource::LockZeros : MaskSource::Checkpoint);
    require_epochs_left(o, position);
    if (const auto it = saved.tensors.find("torch_rng"); it != saved.tensors.end()) saved_generator = it->second;
  }

  log << o.header;
  if (pruner)
    for (const auto& g : pruner->recipe().groups)
      if (g.schedule.end_step >= total_steps && g.target() > 0)
        log << "note: the recipe's end_step " << g.schedule.end_step << " is not before the run's last step "
            << total_steps - 1 << ", so its target sparsity " << g.target() << " is not reached\n";

  DataParallel* const dp = o.data_parallel;
  const bool writer = dp == nullptr || dp->rank() == 0;  // the rank that prints and writes files
  if (dp) dp->broadcast_parameters(*model);              // identical replicas, whatever each rank loaded
  if (dp && pruner)  // wanda scores with every rank's inputs, so the masks stay identical
    pruner->set_input_reducer([dp](std::vector<double>& sums) { dp->all_reduce_sum(sums); });

  TrainResult result;
  const bool redraw = writer && o.progress_bar && isatty(STDERR_FILENO) && &log == &std::cerr;
  ProgressLine progress(log, redraw, o.epochs, per_epoch);
  const int64_t examples = train_set.size();
  // torch's RandomSampler drew one order when built and one per epoch; drawing the same keeps a
  // seed's runs (and RESULTS.md's figures) as they were.
  ::torch::randperm(examples, ::torch::kInt64);
  // A resumed run draws the shuffles an uninterrupted one would (a checkpoint from before the
  // generator was kept: the first epoch's again).
  if (saved_generator.defined()) restore_generator(o.resume_from, saved_generator);
  if (pruner) pruner->on_train_begin();
  int64_t checked_masks = pruner ? pruner->mask_updates() : 0;
  for (int64_t epoch = position.epoch; epoch < o.epochs; ++epoch) {
    const auto epoch_started = Clock::now();
    const ::torch::Tensor order = ::torch::randperm(examples, ::torch::kInt64);
    if (dp) dp->require_identical("the shuffled order of epoch " + std::to_string(epoch + 1), bytes_checksum(order));
    double loss_sum = 0, sparsity = pruner ? pruner->sparsity() : 0.0;
    int64_t seen = 0, correct = 0, step_in_epoch = 0;
    for (int64_t first = 0; first < examples; first += o.batch_size) {
      // This rank's share of the global batch: contiguous, as even as the batch allows.
      ::torch::Tensor index = order.narrow(0, first, std::min(o.batch_size, examples - first));
      const int64_t global_n = index.size(0);
      if (dp) index = index.tensor_split(dp->world_size())[size_t(dp->rank())];
      const int64_t n = index.size(0);
      const ::torch::Tensor images = train_set.images.index_select(0, index);
      const ::torch::Tensor labels = train_set.labels.index_select(0, index);

      const int64_t step = position.step;
      set_learning_rate(optimizer,
                        o.learning_rate * 0.5 * (1 + std::cos(std::numbers::pi * double(step) / double(total_steps))));
      if (pruner) {
        pruner->on_step_begin(step);
        if (dp && pruner->mask_updates() != checked_masks)
          dp->require_identical("the masks after the update at step " + std::to_string(step), pruner->mask_checksum());
        checked_masks = pruner->mask_updates();
      }
      optimizer.zero_grad();
      if (n > 0) {  // a rank can get none of a short last batch, and still joins the all-reduce
        auto logits = model->forward(images);
        auto loss = ::torch::nn::functional::cross_entropy(logits, labels);
        if (teacher) {
          ::torch::Tensor taught;
          {
            ::torch::NoGradGuard no_grad;
            taught = teacher->forward(images);
          }
          loss = (1 - o.distill_weight) * loss +
                 o.distill_weight * logit_distillation(logits, taught, o.distill_temperature);
        }
        const double value = loss.item<double>();
        // Diverged: every later step would be NaN too, and the saved model useless.
        if (!std::isfinite(value))
          data_error("epoch " + std::to_string(epoch + 1) + ", step " + std::to_string(step_in_epoch + 1) +
                     ": the loss is " + (std::isnan(value) ? "NaN" : "infinite") +
                     " (training diverged); lower --lr, or start from smaller weights (--init)");
        loss.backward();
        loss_sum += value * double(n);
        correct += (logits.argmax(1) == labels).sum().item<int64_t>();
      }
      if (dp) dp->average_gradients(*model, double(n) / double(global_n));
      if (pruner) pruner->on_before_optimizer_step();
      optimizer.step();
      if (pruner) pruner->on_after_optimizer_step();

      seen += n;
      ++position.step;
      ++step_in_epoch;
      if (redraw && (step_in_epoch % 20 == 0 || step_in_epoch == per_epoch)) {
        if (pruner) sparsity = pruner->sparsity();
        progress.update(epoch + 1, step_in_epoch, loss_sum / double(std::max<int64_t>(seen, 1)),
                        double(correct) / double(std::max<int64_t>(seen, 1)), sparsity);
      }
    }
    position.epoch = epoch + 1;
    std::vector<double> totals{loss_sum, double(correct), double(seen)};
    if (dp) dp->all_reduce_sum(totals);
    EpochLog e;
    e.epoch = epoch + 1;
    e.loss = totals[0] / totals[2];
    e.train_accuracy = totals[1] / totals[2];
    e.test_accuracy = evaluate(*model, test_set, dp);
    e.sparsity = pruner ? pruner->sparsity() : weight_sparsity(*model);
    e.seconds = seconds_since(epoch_started);
    if (writer) progress.end_epoch(e);
    result.history.push_back(e);
    // A checkpoint per epoch, written by one rank once every rank has finished the epoch.
    if (!o.save_dir.empty()) {
      if (dp) dp->barrier();
      if (writer) save_run(o, *model, optimizer, pruner ? &*pruner : nullptr, position, nullptr);
    }
    if (position.epoch == o.stop_after) {  // the sitting ends; the checkpoint just saved continues it
      result.finished = false;
      break;
    }
  }

  if (pruner && result.finished) result.report = pruner->on_train_end();
  result.test_accuracy = evaluate(*model, test_set, dp);
  result.sparsity = pruner ? pruner->sparsity() : weight_sparsity(*model);
  result.epochs = position.epoch;
  result.steps = position.step;
  result.seconds = seconds_since(started);
  if (!o.save_dir.empty() && writer && result.finished)
    save_run(o, *model, optimizer, pruner ? &*pruner : nullptr, position, &result);
  if (dp) dp->barrier();  // no rank exits before the files are written
  return result;
}

}  // namespace spruce::fashion_mnist
