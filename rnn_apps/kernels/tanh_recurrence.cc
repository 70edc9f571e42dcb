// The SimpleRNN recurrence h_t = tanh(a_t + h_(t-1) W) as one TensorFlow CPU op a direction: the
// whole sequence in one kernel call, forward and backward, where a while loop of small TensorFlow
// ops pays the executor's bookkeeping at every step (issue 13, bench/RESULTS.md "Performance").
//
// Rows of the batch are independent through time, so each thread of the op's pool runs its own
// block of rows for all steps: no synchronisation between steps, and W (64 KB at 128 units) stays
// in that core's cache. Layout is Keras's, batch-major [batch, time, units]. Masks follow Keras
// (a masked step keeps the state; its output repeats the previous output, or is zero), exactly as
// the Python loops in rnn_apps/layers.py, which remain the reference and the fallback.
//
// At the reference size memory traffic weighs as much as the products (each [64, 200, 128]
// activation is 6.5 MB against ~9 GB/s of memory traffic a core here), so the backward pass also
// sums the kernel's gradient step by step from the outputs it reads anyway, instead of the forward
// pass writing every step's previous state for one large product afterwards; and a layer that
// returns only its last output passes no gradient array of zeros for the others.
//
// Built by rnn_apps/kernels/__init__.py with the compiler flags TensorFlow reports.

#include <algorithm>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::Map<Matrix, 0, Eigen::OuterStride<>>;
using ConstStrided = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;
using ConstMatrix = Eigen::Map<const Matrix>;

// out[rows, n] = lhs[rows, depth] * rhs[depth, n] + add[rows, n]: the small product every step
// makes. lhs(r, k) is lhs[r * lhs_row + k * lhs_depth], so a transposed lhs costs nothing; rhs, add
// and out are row-major with leading dimensions n, add_ld, out_ld. Eigen's general product packs
// both operands on every call, which at 32 x 128 by 128 x 128 costs about as much as the
// arithmetic; here rhs is read in place: 6 rows by 64 columns of output stay in 24 vector registers
// while k runs over a block of 128, so the 32 KB panel of rhs it reads stays in L1 across the row
// blocks. Measured alone on this project's 2-core Xeon: 115 GFLOP/s a core at 128 units, 82 at 512
// (Eigen: 45-60). n must be a multiple of kTileColumns (`Tiled`; the callers use Eigen otherwise).
//
// The tile follows the target's vector registers: 4 vectors a row, as many rows as leave room for the
// 4 vectors of rhs. A 64-byte vector on a target without AVX-512 is lowered piecewise through memory
// (measured: the op built for x86-64-v3 with 64-byte vectors ran 6-17x slower than TensorFlow's loops).
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64, kTileRows = 6;  // 24 of 32 zmm registers accumulate
#elif defined(__AVX__)
constexpr int kVectorBytes = 32, kTileRows = 3;  // 12 of 16 ymm registers accumulate
#else
constexpr int kVectorBytes = 16, kTileRows = 3;  // 12 of 16 xmm registers accumulate
#endif
constexpr int kLanes = kVectorBytes / 4;
constexpr int64_t kTileColumns = 4 * kLanes;
using Vector = float __attribute__((vector_size(kVectorBytes), aligned(4)));

template <int kRows>
inline void Block(const float* lhs, int64_t lhs_row, int64_t lhs_depth, const float* rhs, int64_t rhs_ld,
                  int64_t depth, const float* add, int64_t add_ld, float* out, int64_t out_ld) {
  Vector acc[kRows][4];
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < 4; ++v) acc[r][v] = *reinterpret_cast<const Vector*>(add + r * add_ld + kLanes * v);
  for (int64_t k = 0; k < depth; ++k) {
    Vector w[4];
    for (int v = 0; v < 4; ++v) w[v] = *reinterpret_cast<const Vector*>(rhs + k * rhs_ld + kLanes * v);
    for (int r = 0; r < kRows; ++r) {
      const float x = lhs[r * lhs_row + k * lhs_depth];
      for (int v = 0; v < 4; ++v) acc[r][v] += x * w[v];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int v = 0; v < 4; ++v) *reinterpret_cast<Vector*>(out + r * out_ld + kLanes * v) = acc[r][v];
}

constexpr int64_t kDepthBlock = 128;

bool Tiled(int64_t n) { return n % kTileColumns == 0; }

void MultiplyAdd(int64_t rows, int64_t depth, int64_t n, const float* lhs, int64_t lhs_row, int64_t lhs_depth,
                 const float* rhs, const float* add, int64_t add_ld, float* out, int64_t out_ld) {
  for (int64_t j = 0; j < n; j += kTileColumns) {
    for (int64_t k = 0; k < depth; k += kDepthBlock) {
      const int64_t kc = std::min(kDepthBlock, depth - k);
      // The first block of k starts from add, the next ones from what the previous ones wrote.
      const float* start = k == 0 ? add + j : out + j;
      const int64_t start_ld = k == 0 ? add_ld : out_ld;
      const float* panel = rhs + k * n + j;
      int64_t r = 0;
      for (; r + kTileRows <= rows; r += kTileRows)
        Block<kTileRows>(lhs + r * lhs_row + k * lhs_depth, lhs_row, lhs_depth, panel, n, kc, start + r * start_ld,
                 start_ld, out + j + r * out_ld, out_ld);
      for (; r < rows; ++r)
        Block<1>(lhs + r * lhs_row + k * lhs_depth, lhs_row, lhs_depth, panel, n, kc, start + r * start_ld,
                 start_ld, out + j + r * out_ld, out_ld);
    }
  }
}

// Splits rows [0, batch) into blocks of at least 8 rows, one block a thread, and runs them;
// block(index, first row, end row).
template <typename Fn>
int64_t ForRowBlocks(OpKernelContext* context, int64_t batch, Fn&& block) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t blocks = std::max<int64_t>(1, std::min<int64_t>(pool->NumThreads(), batch / 8));
  pool->ParallelFor(blocks, /*cost_per_unit=*/1 << 30, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) block(b, batch * b / blocks, batch * (b + 1) / blocks);
  });
  return blocks;
}

// Shared input checks: a [batch, time, units], kernel [units, units], state [batch, units], mask
// [batch, time] or empty (no mask).
void CheckShapes(OpKernelContext* context, const Tensor& a, const Tensor& kernel, const Tensor& state,
                 const Tensor& mask) {
  OP_REQUIRES(context, a.dims() == 3, InvalidArgument("inputs must be [batch, time, units]"));
  const int64_t batch = a.dim_size(0), time = a.dim_size(1), units = a.dim_size(2);
  OP_REQUIRES(context, kernel.dims() == 2 && kernel.dim_size(0) == units && kernel.dim_size(1) == units,
              InvalidArgument("kernel must be [units, units]"));
  OP_REQUIRES(context, state.dims() == 2 && state.dim_size(0) == batch && state.dim_size(1) == units,
              InvalidArgument("state must be [batch, units]"));
  OP_REQUIRES(context, mask.NumElements() == 0 || (mask.dims() == 2 && mask.dim_size(0) == batch &&
                                                   mask.dim_size(1) == time),
              InvalidArgument("mask must be [batch, time] or empty"));
}

// Both ops take Keras's zero_output_for_mask: whether a masked step outputs zeros or repeats the
// previous output.
class RecurrenceKernel : public OpKernel {
 public:
  explicit RecurrenceKernel(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

 protected:
  bool zero_output_for_mask_;
};

REGISTER_OP("TanhRecurrence")
    .Input("inputs: float")
    .Input("state: float")
    .Input("kernel: float")
    .Input("mask: float")
    .Attr("zero_output_for_mask: bool = false")
    .Output("outputs: float")
    .Output("last: float")
    .Output("final: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    })
    .Doc(R"doc(
h_t = tanh(inputs_t + h_(t-1) kernel) for t in time -> outputs [batch, time, units], last output, final
state. mask [batch, time] of 0/1, or empty for none.
)doc");

class TanhRecurrenceOp : public RecurrenceKernel {
 public:
  using RecurrenceKernel::RecurrenceKernel;

  void Compute(OpKernelContext* context) override {
    const Tensor& a = context->input(0);
    const Tensor& state = context->input(1);
    const Tensor& kernel = context->input(2);
    const Tensor& mask = context->input(3);
    CheckShapes(context, a, kernel, state, mask);
    if (!context->status().ok()) return;
    const int64_t batch = a.dim_size(0), time = a.dim_size(1), units = a.dim_size(2);
    Tensor *outputs, *last, *final;
    OP_REQUIRES_OK(context, context->allocate_output(0, a.shape(), &outputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, state.shape(), &last));
    OP_REQUIRES_OK(context, context->allocate_output(2, state.shape(), &final));
    if (batch == 0 || units == 0) return;
    const bool masked = mask.NumElements() > 0;
    const float* a_data = a.flat<float>().data();
    const float* m_data = masked ? mask.flat<float>().data() : nullptr;
    float* out_data = outputs->flat<float>().data();
    const ConstMatrix w(kernel.flat<float>().data(), units, units);
    const ConstMatrix h0(state.flat<float>().data(), batch, units);
    Eigen::Map<Matrix> last_map(last->flat<float>().data(), batch, units);
    Eigen::Map<Matrix> final_map(final->flat<float>().data(), batch, units);
    const bool zero_output = zero_output_for_mask_;
    const Eigen::OuterStride<> stride(time * units);

    ForRowBlocks(context, batch, [&](int64_t, int64_t r0, int64_t r1) {
      const int64_t rows = r1 - r0;
      Matrix h = h0.middleRows(r0, rows);
      Matrix out = Matrix::Zero(rows, units);  // the last output, for masked steps
      Matrix fresh(rows, units);
      for (int64_t t = 0; t < time; ++t) {
        const int64_t offset = r0 * time * units + t * units;
        if (Tiled(units)) {
          MultiplyAdd(rows, units, units, h.data(), units, 1, w.data(), a_data + offset, time * units,
                      fresh.data(), units);
          fresh = fresh.array().tanh().matrix();
        } else {
          fresh.noalias() = h * w;
          fresh = (fresh + ConstStrided(a_data + offset, rows, units, stride)).array().tanh().matrix();
        }
        Strided step_out(out_data + offset, rows, units, stride);
        if (!masked) {
          h.swap(fresh);
          step_out = h;
          continue;
        }
        for (int64_t r = 0; r < rows; ++r) {
          if (m_data[(r0 + r) * time + t] != 0.0f) {
            h.row(r) = fresh.row(r);
            out.row(r) = fresh.row(r);
          } else if (zero_output) {
            out.row(r).setZero();
          }
        }
        step_out = out;
      }
      final_map.middleRows(r0, rows) = h;
      last_map.middleRows(r0, rows) = masked ? out : h;
    });
  }
};

REGISTER_KERNEL_BUILDER(Name("TanhRecurrence").Device(DEVICE_CPU), TanhRecurrenceOp);

REGISTER_OP("TanhRecurrenceGrad")
    .Input("d_outputs: float")
    .Input("d_last: float")
    .Input("d_final: float")
    .Input("outputs: float")
    .Input("state: float")
    .Input("kernel: float")
    .Input("mask: float")
    .Attr("zero_output_for_mask: bool = false")
    .Output("d_inputs: float")
    .Output("d_state: float")
    .Output("d_kernel: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(3));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(5));
      return absl::OkStatus();
    })
    .Doc(R"doc(
The backward pass of TanhRecurrence through time: d_inputs_t = (dh_t + d_inputs_(t+1) kernel^T)(1 - h_t^2)
and d_kernel = sum_t h_(t-1)^T d_inputs_t, with Keras's masking. d_outputs empty: the outputs' gradient
is zero but for the last output (a layer that returns only that).
)doc");

class TanhRecurrenceGradOp : public RecurrenceKernel {
 public:
  using RecurrenceKernel::RecurrenceKernel;

  void Compute(OpKernelContext* context) override {
    const Tensor& d_outputs = context->input(0);
    const Tensor& d_last = context->input(1);
    const Tensor& d_final = context->input(2);
    const Tensor& outputs = context->input(3);
    const Tensor& state = context->input(4);
    const Tensor& kernel = context->input(5);
    const Tensor& mask = context->input(6);
    CheckShapes(context, outputs, kernel, state, mask);
    if (!context->status().ok()) return;
    OP_REQUIRES(context, (d_outputs.NumElements() == 0 || d_outputs.shape() == outputs.shape()) &&
                             d_last.shape() == state.shape() && d_final.shape() == state.shape(),
                InvalidArgument("gradients must match the outputs in shape"));
    const int64_t batch = outputs.dim_size(0), time = outputs.dim_size(1), units = outputs.dim_size(2);
    Tensor *d_inputs, *d_state, *d_kernel;
    OP_REQUIRES_OK(context, context->allocate_output(0, outputs.shape(), &d_inputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, state.shape(), &d_state));
    OP_REQUIRES_OK(context, context->allocate_output(2, kernel.shape(), &d_kernel));
    Eigen::Map<Matrix> d_kernel_map(d_kernel->flat<float>().data(), units, units);
    d_kernel_map.setZero();
    if (batch == 0 || units == 0) return;
    if (time == 0) {
      d_state->flat<float>() = d_final.flat<float>();
      return;
    }
    const bool masked = mask.NumElements() > 0;
    const float* dy_data = d_outputs.NumElements() > 0 ? d_outputs.flat<float>().data() : nullptr;
    const float* y_data = outputs.flat<float>().data();
    const float* m_data = masked ? mask.flat<float>().data() : nullptr;
    float* da_data = d_inputs->flat<float>().data();
    const Matrix w_t = ConstMatrix(kernel.flat<float>().data(), units, units).transpose();
    const ConstMatrix h0(state.flat<float>().data(), batch, units);
    const ConstMatrix d_last_map(d_last.flat<float>().data(), batch, units);
    const ConstMatrix d_final_map(d_final.flat<float>().data(), batch, units);
    Eigen::Map<Matrix> d_state_map(d_state->flat<float>().data(), batch, units);
    const bool zero_output = zero_output_for_mask_;
    const Eigen::OuterStride<> stride(time * units);
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    std::vector<Matrix> d_kernels(std::max(1, pool->NumThreads()));  // each row block's own sum

    const int64_t blocks = ForRowBlocks(context, batch, [&](int64_t block, int64_t r0, int64_t r1) {
      const int64_t rows = r1 - r0;
      // previous[r * time + t]: the step whose output row r's state was before step t (-1: the
      // initial state). Without a mask, t - 1.
      std::vector<int64_t> previous;
      if (masked) {
        previous.resize(rows * time);
        for (int64_t r = 0; r < rows; ++r) {
          int64_t last_unmasked = -1;
          for (int64_t t = 0; t < time; ++t) {
            previous[r * time + t] = last_unmasked;
            if (m_data[(r0 + r) * time + t] != 0.0f) last_unmasked = t;
          }
        }
      }
      Matrix& d_w = d_kernels[block];
      d_w = Matrix::Zero(units, units);
      Matrix d_h = d_final_map.middleRows(r0, rows);
      Matrix d_out = d_last_map.middleRows(r0, rows);  // carried into the last step's output gradient
      Matrix d_output(rows, units), d_a(rows, units), carried(rows, units), before(rows, units);
      for (int64_t t = time - 1; t >= 0; --t) {
        const int64_t offset = r0 * time * units + t * units;
        const ConstStrided y(y_data + offset, rows, units, stride);
        if (dy_data != nullptr) {
          d_output = ConstStrided(dy_data + offset, rows, units, stride) + d_out;
        } else {
          d_output = d_out;
        }
        d_a = ((d_output + d_h).array() * (1.0f - y.array().square())).matrix();
        if (masked) {
          for (int64_t r = 0; r < rows; ++r) {
            if (m_data[(r0 + r) * time + t] != 0.0f) {
              d_out.row(r).setZero();
              d_h.row(r).setZero();
            } else {  // a masked step passes its state's gradient through unchanged
              d_a.row(r).setZero();
              if (zero_output) {
                d_out.row(r).setZero();
              } else {
                d_out.row(r) = d_output.row(r);
              }
            }
          }
        } else {
          d_out.setZero();
          d_h.setZero();
        }
        Strided(da_data + offset, rows, units, stride) = d_a;
        // the state before step t, for d_kernel += before^T d_a
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t s = masked ? previous[r * time + t] : t - 1;
          if (s < 0) {
            before.row(r) = h0.row(r0 + r);
          } else {
            before.row(r) = Eigen::Map<const Eigen::RowVectorXf>(y_data + (r0 + r) * time * units + s * units, units);
          }
        }
        if (Tiled(units)) {
          MultiplyAdd(rows, units, units, d_a.data(), units, 1, w_t.data(), d_h.data(), units, carried.data(), units);
          MultiplyAdd(units, rows, units, before.data(), 1, units, d_a.data(), d_w.data(), units, d_w.data(), units);
        } else {
          carried.noalias() = d_h + d_a * w_t;
          d_w.noalias() += before.transpose() * d_a;
        }
        d_h.swap(carried);
      }
      d_state_map.middleRows(r0, rows) = d_h;
    });
    for (int64_t block = 0; block < blocks; ++block) d_kernel_map += d_kernels[block];
  }
};

REGISTER_KERNEL_BUILDER(Name("TanhRecurrenceGrad").Device(DEVICE_CPU), TanhRecurrenceGradOp);

}  // namespace
