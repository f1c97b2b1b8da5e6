// Your own LibTorch training loop, pruned with spruce: only the five Pruner hooks are added.
//
//   build/examples/fashion_mnist_pruning [epochs]
//
// The model, optimizer and loop are the user's; spruce supplies the recipe and the hooks, and (for
// brevity here) the Fashion-MNIST application in apps/ the loader.
#include <torch/nn/functional/loss.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>

#include <iostream>

#include "fashion_mnist/data.hpp"
#include "spruce/error.hpp"
#include "spruce/torch/pruner.hpp"
#include "spruce/torch/threads.hpp"

struct Net : torch::nn::Module {
  torch::nn::Linear hidden{nullptr}, classifier{nullptr};
  Net() {
    hidden = register_module("hidden", torch::nn::Linear(784, 512));
    classifier = register_module("classifier", torch::nn::Linear(512, 10));
  }
  torch::Tensor forward(torch::Tensor x) { return classifier(torch::relu(hidden(x.flatten(1)))); }
};

// Intel Neural Compressor's WeightPruningConfig keys: 4x1 blocks, 90% zeros, grown over steps 100..600.
constexpr const char* kRecipe = R"(
target_sparsity: 0.9
pattern: "4x1"
pruning_type: snip_momentum
excluded_op_names: ["classifier"]
start_step: 100
end_step: 600
pruning_frequency: 50
sparsity_decay_type: exp
)";

int main(int argc, char** argv) try {
  const int epochs = argc > 1 ? std::atoi(argv[1]) : 2;
  torch::manual_seed(0);
  spruce::torch::set_training_threads(2);
  auto train = spruce::fashion_mnist::load_fashion_mnist_tensors(spruce::kFashionMnistDir, spruce::Split::Train);
  auto test = spruce::fashion_mnist::load_fashion_mnist_tensors(spruce::kFashionMnistDir, spruce::Split::Test);
  auto loader = spruce::fashion_mnist::make_train_loader(train, 128);

  Net net;
  torch::optim::SGD optimizer(net.parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
  spruce::torch::Pruner pruner(net, spruce::Recipe::parse(kRecipe, "example recipe"));

  pruner.on_train_begin();
  int64_t step = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    for (auto& batch : *loader) {
      pruner.on_step_begin(step++);
      auto loss = torch::nn::functional::cross_entropy(net.forward(batch.data), batch.target);
      optimizer.zero_grad();
      loss.backward();
      pruner.on_before_optimizer_step();
      optimizer.step();
      pruner.on_after_optimizer_step();
    }
    torch::NoGradGuard no_grad;
    const double accuracy =
        (net.forward(test.images).argmax(1) == test.labels).to(torch::kFloat64).mean().item<double>();
    std::cout << "epoch " << epoch + 1 << ": test accuracy " << 100 * accuracy << "%, sparsity "
              << 100 * pruner.sparsity() << "%\n";
  }
  std::cout << spruce::torch::format_report(pruner.on_train_end());
  return 0;
} catch (const spruce::Error& e) {
  std::cerr << "fashion_mnist_pruning: " << e.what() << '\n';
  return e.exit_code();
}
