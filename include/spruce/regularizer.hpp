// Group lasso over the blocks of a pattern: penalty alpha * sum over blocks of ||W_block||_2.
#pragma once
#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"

namespace spruce {

// The penalty value.
double group_lasso_penalty(const Pattern& p, MatrixView<const float> w, double alpha);

// Adds d(penalty)/dW = alpha * W / ||W_block||_2 to `grad` (zero for an all-zero block).
// For N:M patterns the groups are the 1 x M groups along input channels.
void add_group_lasso_grad(const Pattern& p, MatrixView<const float> w, double alpha, MatrixView<float> grad);

}  // namespace spruce
