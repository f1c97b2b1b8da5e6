// How a pruned MiniLM's retrieval fidelity depends on the direction of its errors, not only their
// size. Prints held-out fidelity (mean cosine, top-10 overlap, Spearman) of:
//   - the teacher's embeddings with isotropic noise of growing size (errors with no structure);
//   - the student's embeddings (pruned model folder, if given);
//   - the student's embeddings with their error turned into a random direction orthogonal to the
//     teacher's embedding: the same cosine per text, the error's structure removed;
//   - the student's embeddings less their mean error (a drift shared by all texts);
//   - the student's fidelity on as many training texts (what it memorized);
//   - the student's embeddings through the 384x384 linear map that best takes them to the
//     teacher's on the training texts (least squares): how much of the error is linear.
//   minilm_error_structure [STUDENT_DIR]
#include <torch/torch.h>

#include <cstdio>
#include <string>
#include <vector>

#include "minilm/corpus.hpp"
#include "minilm/distill.hpp"
#include "minilm/sentence_encoder.hpp"

namespace {

void print(const std::string& what, const minilm::Fidelity& f) {
  std::printf("%-52s cosine %.4f  top-10 %.3f  Spearman %.4f\n", what.c_str(), f.mean_cosine, f.top10_overlap,
              f.spearman);
}

::torch::Tensor unit_rows(const ::torch::Tensor& x) { return x / x.norm(2, 1, true); }

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 || (argc == 2 && std::string(argv[1]).rfind("-", 0) == 0)) {
    std::fprintf(stderr, "usage: minilm_error_structure [STUDENT_DIR]  (a pruned sentence-transformers folder)\n");
    return 2;
  }
  try {
    ::torch::manual_seed(0);
    auto teacher = minilm::SentenceEncoder::load(minilm::default_model_dir());
    const auto held_out = minilm::read_fortunes().held_out;
    const auto t = teacher.encode(held_out, 64);
    for (const double sigma : {0.01, 0.015, 0.02, 0.03, 0.05})
      print("teacher + isotropic noise, sigma " + std::to_string(sigma).substr(0, 5),
            minilm::measure_fidelity(unit_rows(t + sigma * ::torch::randn_like(t)), t));
    if (argc < 2) return 0;
    auto student = minilm::SentenceEncoder::load(argv[1]);
    const auto s = student.encode(held_out, 64);
    print("student", minilm::measure_fidelity(s, t));
    const auto along = (s * t).sum(1, true);  // each text's cosine to the teacher
    const auto error = s - along * t;         // the rest, orthogonal to the teacher's embedding
    auto random = ::torch::randn_like(t);
    random = random - (random * t).sum(1, true) * t;
    random = random / random.norm(2, 1, true) * error.norm(2, 1, true);
    print("student, its errors in random directions", minilm::measure_fidelity(along * t + random, t));
    print("student less its mean error", minilm::measure_fidelity(unit_rows(s - (s - t).mean(0, true)), t));
    // The same measures on as many training texts (every k-th), which the student was trained on:
    // the gap to the held-out figures is what it memorized rather than learned.
    const auto corpus = minilm::read_fortunes();
    std::vector<std::string> seen;
    for (size_t i = 0; i < corpus.train.size() && seen.size() < held_out.size();
         i += corpus.train.size() / held_out.size())
      seen.push_back(corpus.train[i]);
    print("student, on " + std::to_string(seen.size()) + " training texts",
          minilm::measure_fidelity(student.encode(seen, 64), teacher.encode(seen, 64)));
    const auto s_train = student.encode(corpus.train, 64).to(::torch::kFloat64);
    const auto t_train = teacher.encode(corpus.train, 64).to(::torch::kFloat64);
    const auto map = ::torch::linalg_solve(s_train.t().mm(s_train), s_train.t().mm(t_train)).to(::torch::kFloat32);
    print("student through a linear map fitted on training texts", minilm::measure_fidelity(unit_rows(s.mm(map)), t));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "minilm_error_structure: %s\n", e.what());
    return 1;
  }
}
