#include "spruce/torch/threads.hpp"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include "spruce/cpu.hpp"

// Resolved at load time when libopenblas is in the process (Debian's LibTorch links it as its BLAS).
extern "C" void openblas_set_num_threads(int n) __attribute__((weak));

namespace spruce::torch {

void set_threads(int n) {
  at::set_num_threads(checked_threads(n));
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(n);
}

void set_training_threads(int n) {
  at::set_num_threads(checked_threads(n));
  if (openblas_set_num_threads != nullptr) openblas_set_num_threads(1);
  // FTZ/DAZ live in each thread's MXCSR: set them on the caller and on every OpenMP worker.
  at::globalContext().setFlushDenormal(true);
#pragma omp parallel num_threads(n)
  at::globalContext().setFlushDenormal(true);
}

}  // namespace spruce::torch
