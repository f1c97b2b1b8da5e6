#include "spruce/torch/checkpoint.hpp"

#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/utils.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string_view>

#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/safetensors.hpp"

namespace spruce::torch {

void save_checkpoint(const std::string& path, ::torch::nn::Module& model, const ::torch::optim::Optimizer* optimizer,
                     const Pruner* pruner, TrainPosition position, const LoopState* loop) {
  ::torch::serialize::OutputArchive archive, model_part, optimizer_part, pruner_part;
  model.save(model_part);
  archive.write("model", model_part);
  if (optimizer) {
    optimizer->save(optimizer_part);
    archive.write("optimizer", optimizer_part);
  }
  if (pruner) {
    pruner->save(pruner_part);
    archive.write("pruner", pruner_part);
  }
  archive.write("epoch", ::torch::tensor(position.epoch, ::torch::kInt64));
  archive.write("step", ::torch::tensor(position.step, ::torch::kInt64));
  if (loop) {
    archive.write("loop_text", c10::IValue(loop->text));
    for (const auto& [name, tensor] : loop->tensors) archive.write("loop." + name, tensor);
  }
  // LibTorch's own file writer cannot report a failed write: its destructor writes again while the
  // error unwinds, throws, and the process aborts with a backtrace (a full disk, or a file-size
  // limit). So LibTorch writes through a function that never fails in its eyes: the first failed
  // write is kept, the rest are skipped, and the error is raised once LibTorch is done. The
  // temporary file is removed, and the previous checkpoint kept.
  AtomicOutput out(path);
  std::optional<Error> failed;
  archive.save_to([&](const void* bytes, size_t n) -> size_t {
    if (!failed) {
      try {
        out.write(std::string_view(static_cast<const char*>(bytes), n));
      } catch (const Error& e) {
        failed = e;
      }
    }
    return n;
  });
  if (failed) throw *failed;
  out.commit();
}

namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Refuses to resume sparse weights without masks: the next optimizer step would refill them.
void refuse_silent_densify(const Pruner& pruner, const std::string& path) {
  for (const auto& layer : pruner.layers()) {
    const double zeros = (layer.weight == 0).sum().item<double>() / double(layer.weight.numel());
    if (zeros >= 0.05)
      data_error(path + " holds no masks, but layer " + layer.name + " is " + std::to_string(int(zeros * 100)) +
                 "% zeros; training would refill them. Resume with pattern lock (--lock-pattern) to keep its zeros");
  }
}

LoopState read_loop_state(::torch::serialize::InputArchive& archive) {
  LoopState loop;
  c10::IValue text;
  if (archive.try_read("loop_text", text)) loop.text = text.toStringRef();
  for (const auto& key : archive.keys()) {
    ::torch::Tensor tensor;  // undefined: a defined one would be overwritten in place
    if (key.rfind("loop.", 0) == 0 && archive.try_read(key, tensor)) loop.tensors[key.substr(5)] = tensor;
  }
  return loop;
}

}  // namespace

LoopState read_loop_state(const std::string& path) {
  require_regular_file(path);
  ::torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    return read_loop_state(archive);
  } catch (const c10::Error& e) {
    data_error(path + ": not a checkpoint (" + first_line(e.what_without_backtrace()) + ")");
  } catch (const std::out_of_range& e) {  // an archive whose parts disagree
    data_error(path + ": not a checkpoint (" + first_line(e.what()) + ")");
  }
}

TrainPosition load_checkpoint(const std::string& path, ::torch::nn::Module& model, ::torch::optim::Optimizer* optimizer,
                              Pruner* pruner, MaskSource source, LoopState* loop) {
  require_regular_file(path);
  ::torch::serialize::InputArchive archive, model_part, optimizer_part, pruner_part;
  TrainPosition position;
  try {
    archive.load_from(path);
    archive.read("model", model_part);
    model.load(model_part);
    if (optimizer && archive.try_read("optimizer", optimizer_part)) optimizer->load(optimizer_part);
    ::torch::Tensor value;
    if (archive.try_read("epoch", value)) position.epoch = value.item<int64_t>();
    if (archive.try_read("step", value)) position.step = value.item<int64_t>();
    if (loop) *loop = read_loop_state(archive);
    if (!pruner && optimizer && archive.try_read("pruner", pruner_part))
      data_error(path +
                 " holds a pruned run's masks, but this run prunes nothing and would refill them; resume "
                 "with the run's recipe (--recipe, or the recipe.yaml saved beside the checkpoint)");
    if (pruner) {
      if (archive.try_read("pruner", pruner_part))
        pruner->load(pruner_part);
      else if (source == MaskSource::LockZeros)
        pruner->lock_existing_zeros();
      else
        refuse_silent_densify(*pruner, path);
    }
  } catch (const c10::Error& e) {
    data_error(path + ": not a checkpoint of this model (" + first_line(e.what_without_backtrace()) + ")");
  } catch (const std::out_of_range& e) {  // an archive whose parts disagree
    data_error(path + ": not a checkpoint of this model (" + first_line(e.what()) + ")");
  }
  return position;
}

void load_safetensors_weights(const std::string& path, ::torch::nn::Module& model) {
  SafetensorsFile file = read_safetensors(path);
  ::torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const Tensor* t = file.find(item.key());
    if (t == nullptr) data_error(path + " has no tensor " + item.key() + "; it is not a checkpoint of this model");
    if (t->shape != item.value().sizes().vec())
      data_error(path + ": tensor " + item.key() + " has another shape than the model's parameter");
    std::vector<float> values = t->to_f32();
    require_finite(path, *t, values, "training from it would spread them to every weight");
    item.value().copy_(::torch::from_blob(values.data(), t->shape, ::torch::kFloat32));
  }
}

void export_safetensors(const std::string& path, ::torch::nn::Module& model,
                        const std::map<std::string, std::string>& metadata) {
  SafetensorsFile file;
  file.metadata = metadata;
  for (const auto& item : model.named_parameters()) {
    ::torch::Tensor t = item.value().detach().to(::torch::kFloat32).contiguous();
    file.tensors.push_back(Tensor::from_f32(item.key(), t.sizes().vec(), t.data_ptr<float>()));
  }
  write_safetensors(path, file);
}

void export_masks(const std::string& path, const Pruner& pruner) {
  SafetensorsFile file;
  for (const auto& layer : pruner.layers()) {
    ::torch::Tensor keep = layer.mask.defined() ? layer.mask.to(::torch::kUInt8).contiguous()
                                                : ::torch::ones(layer.weight.sizes(), ::torch::kUInt8);
    Tensor t;
    t.name = layer.name + ".weight";
    t.dtype = DType::U8;
    t.shape = keep.sizes().vec();
    t.bytes.assign(keep.data_ptr<uint8_t>(), keep.data_ptr<uint8_t>() + keep.numel());
    file.metadata[t.name + ".pattern"] = pruner.recipe().groups[layer.group].pattern.str();
    file.tensors.push_back(std::move(t));
  }
  write_safetensors(path, file);
}

}  // namespace spruce::torch
