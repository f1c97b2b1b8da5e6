#include "spruce/torch/checkpoint.hpp"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/utils.h>

#include <climits>
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

// Whether every element `t` addresses lies inside its storage.
bool within_storage(const ::torch::Tensor& t) {
  if (t.numel() == 0) return true;
  if (!t.has_storage() || t.storage_offset() < 0) return false;
  int64_t last = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) {
    const int64_t stride = t.stride(d), extent = t.size(d) - 1;
    if (stride < 0 || (extent > 0 && stride > (INT64_MAX - last) / extent)) return false;
    last += stride * extent;
  }
  return uint64_t(last) < t.storage().nbytes() / uint64_t(t.element_size());
}

std::string shape_of(const ::torch::Tensor& t) {
  std::string out = "[";
  for (int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
  return out + "]";
}

// The model's parameters and buffers, each read into a fresh tensor and checked before it is
// copied in: Module::load takes the file's tensor as it is (its shape, dtype, offset and all), so a
// damaged file crashed, or trained at another shape.
void load_module(::torch::serialize::InputArchive& archive, ::torch::nn::Module& module, const std::string& prefix,
                 const std::string& path) {
  ::torch::NoGradGuard no_grad;
  auto load_tensor = [&](const std::string& key, ::torch::Tensor& into, bool is_buffer) {
    ::torch::Tensor read;  // undefined: read() would otherwise re-point `into` at the file's storage
    if (!archive.try_read(key, read, is_buffer))
      data_error(path + " has no tensor " + prefix + key + "; it is not a checkpoint of this model");
    require_sound_tensor(read, path + ": " + prefix + key, into, into.is_floating_point());
    into.copy_(read);
  };
  for (auto& item : module.named_parameters(/*recurse=*/false)) load_tensor(item.key(), item.value(), false);
  for (auto& item : module.named_buffers(/*recurse=*/false)) load_tensor(item.key(), item.value(), true);
  for (const auto& child : module.named_children()) {
    if (!child.value()->is_serializable()) continue;
    ::torch::serialize::InputArchive part;
    if (!archive.try_read(child.key(), part)) {
      std::string held;  // what it does hold, so that another model's checkpoint shows as one
      for (const auto& key : archive.keys()) held += (held.empty() ? "" : ", ") + prefix + key;
      data_error(path + " has no part " + prefix + child.key() + " (it holds " + (held.empty() ? "none" : held) +
                 "); it is another model's checkpoint (was it trained with another --model?)");
    }
    load_module(part, *child.value(), prefix + child.key() + ".", path);
  }
}

// Adam's and AdamW's moments must match their parameters, as the model's tensors must.
template <typename State>
bool check_moments(const ::torch::optim::OptimizerParamState* base, const ::torch::Tensor& param,
                   const std::string& what) {
  const auto* state = dynamic_cast<const State*>(base);
  if (!state) return false;
  if (state->step() < 0) data_error(what + ": a negative step count; the file is damaged");
  for (const auto& [name, moment] :
       {std::pair{"exp_avg", state->exp_avg()}, std::pair{"exp_avg_sq", state->exp_avg_sq()},
        std::pair{"max_exp_avg_sq", state->max_exp_avg_sq()}})
    if (moment.defined()) require_sound_tensor(moment, what + " " + name, param);
  return true;
}

void check_optimizer_state(::torch::optim::Optimizer& optimizer, const std::string& path) {
  for (size_t g = 0; g < optimizer.param_groups().size(); ++g) {
    const auto& params = optimizer.param_groups()[g].params();
    for (size_t i = 0; i < params.size(); ++i) {
      const auto found = optimizer.state().find(c10::guts::to_string(params[i].unsafeGetTensorImpl()));
      if (found == optimizer.state().end()) continue;
      const std::string what = path + ": the optimizer's state of parameter " + std::to_string(i);
      if (!check_moments<::torch::optim::AdamParamState>(found->second.get(), params[i], what))
        check_moments<::torch::optim::AdamWParamState>(found->second.get(), params[i], what);
    }
  }
}

// Refuses to resume sparse weights without masks: the next optimizer step would refill them.
void refuse_silent_densify(const Pruner& pruner, const std::string& path) {
  for (const auto& layer : pruner.layers()) {
    const double zeros = (layer.weight == 0).sum().item<double>() / double(layer.weight.numel());
    if (zeros >= 0.05)
      data_error(path + " holds no masks, but layer " + layer.name + " is " + std::to_string(int(zeros * 100)) +
                 "% zeros; training would refill them. Resume with pattern lock (--lock-pattern) to keep its zeros");
  }
}

LoopState read_loop_state(::torch::serialize::InputArchive& archive, const std::string& path) {
  LoopState loop;
  c10::IValue text;
  if (archive.try_read("loop_text", text)) loop.text = text.toStringRef();
  for (const auto& key : archive.keys()) {
    ::torch::Tensor tensor;  // undefined: a defined one would be overwritten in place
    if (key.rfind("loop.", 0) != 0 || !archive.try_read(key, tensor)) continue;
    require_sound_tensor(tensor, path + ": " + key);
    loop.tensors[key.substr(5)] = tensor;
  }
  return loop;
}

}  // namespace

void require_sound_tensor(const ::torch::Tensor& t, const std::string& what, const ::torch::Tensor& like, bool finite) {
  if (!t.defined() || t.layout() != ::torch::kStrided || t.is_quantized())
    data_error(what + " is not a plain tensor; the file is damaged");
  if (!within_storage(t)) data_error(what + " lies outside its storage; the file is damaged");
  if (like.defined() && t.sizes() != like.sizes())
    data_error(what + " is " + shape_of(t) + " where the model's is " + shape_of(like) +
               "; it is not a checkpoint of this model");
  if (like.defined() && t.scalar_type() != like.scalar_type())
    data_error(what + " holds " + std::string(c10::toString(t.scalar_type())) + " where the model's holds " +
               c10::toString(like.scalar_type()) + "; the file is damaged");
  if (finite && t.is_floating_point() && t.numel() > 0 && !::torch::isfinite(t).all().item<bool>())
    data_error(what + " holds NaN or infinity; the file is damaged, or its training diverged");
}

LoopState read_loop_state(const std::string& path) {
  require_regular_file(path);
  ::torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    return read_loop_state(archive, path);
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
    load_module(model_part, model, "model.", path);
    if (optimizer && archive.try_read("optimizer", optimizer_part)) {
      optimizer->load(optimizer_part);
      check_optimizer_state(*optimizer, path);
    }
    ::torch::Tensor value;
    if (archive.try_read("epoch", value)) position.epoch = value.item<int64_t>();
    if (archive.try_read("step", value)) position.step = value.item<int64_t>();
    // Each epoch takes a step or more; a trillion steps is beyond any run.
    if (position.epoch < 0 || position.step < 0 || position.epoch > position.step || position.step > int64_t(1e12))
      data_error(path + ": its position (epoch " + std::to_string(position.epoch) + ", step " +
                 std::to_string(position.step) + ") is impossible; the file is damaged");
    if (loop) *loop = read_loop_state(archive, path);
    if (!pruner && optimizer && archive.try_read("pruner", pruner_part))
      data_error(path +
                 " holds a pruned run's masks, but this run prunes nothing and would refill them; resume "
                 "with the run's recipe (--recipe, or the recipe.yaml saved beside the checkpoint)");
    if (pruner) {
      if (archive.try_read("pruner", pruner_part)) try {
          pruner->load(pruner_part);
        } catch (const Error& e) {  // the pruner's messages do not know the file
          throw Error(e.kind(), path + ": " + e.what());
        }
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
  refuse_converted_model(file, path);
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
