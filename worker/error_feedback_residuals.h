// Error feedback for a worker's compressed gradient pushes: per parameter server, the part
// of the gradients that rounding to the wire format took from the pushes so far, added to
// the next push (common/float_conversion.h EncodeWithErrorFeedback). The servers then
// receive, summed over pushes, the sum of the gradients to within one rounding.
//
// A push takes a server's residual when it is encoded and settles it when the server has
// answered, so that the residual reaches the server exactly once:
//   - applied: the residual the push leaves replaces the one it took;
//   - not applied (an error; the gradients are dropped, as in float32): the residual it
//     took is kept for the next push;
//   - a duplicate (the server had applied this request_id before): if this client saw it
//     applied, nothing changes (the taken residual is kept); otherwise the earlier attempt
//     was applied without this client knowing (e.g. its answer was lost), and since the
//     encoding is deterministic the resent bytes are those applied: the residual the push
//     leaves replaces the one it took.
// Retries inside one call resend the same bytes and settle once. Should an attempt whose
// answer never came have been applied and the request never be resent, one residual (at
// most half a unit in the last place of each value) reaches the server twice.
#ifndef MOBILENET_WORKER_ERROR_FEEDBACK_RESIDUALS_H_
#define MOBILENET_WORKER_ERROR_FEEDBACK_RESIDUALS_H_

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/float_conversion.h"
#include "worker/shard_routing.h"

namespace mobilenet {

// How a server answered a push.
enum class PushOutcome { kApplied, kDuplicate, kNotApplied };

// Thread-safe: pushes may be encoded and settled concurrently (a push encoded while
// another holds a server's residual adds none; the residuals both leave are summed).
class ErrorFeedbackResiduals {
 public:
  // One push's use of one server's residual, from Encode to Settle. Move-only.
  struct Pending {
    int server = 0;
    uint64_t request_id = 0;
    std::vector<float> taken;  // the residual added to the push
    std::vector<float> left;   // the residual the push leaves if applied
  };

  // Zero residuals for servers holding `counts[i]` gradients each.
  explicit ErrorFeedbackResiduals(std::vector<int64_t> counts);

  // Encodes server `server`'s gradients (the `segments` of `gradients`, the full parameter
  // buffer, in the server's order) plus its residual in `dtype` to `out` (count x
  // BytesPerValue(dtype) bytes). The result must be settled.
  Pending Encode(int server, uint64_t request_id, WireDtype dtype,
                 absl::Span<const float> gradients, absl::Span<const Segment> segments, char* out);
  // Settles `pending` by the server's answer (see the file comment).
  void Settle(Pending pending, PushOutcome outcome);

  // A copy of server `server`'s residual (zeros while a push holds it).
  std::vector<float> Residual(int server) const;

 private:
  struct Server {
    int64_t count = 0;
    std::vector<float> residual;  // empty while a push holds it
    std::vector<float> spare;     // memory for the next push's Pending
    uint64_t last_applied = 0;    // request id of the last push seen applied
    bool any_applied = false;
  };
  // Makes `values` the server's residual, or adds them to the one a concurrent push left.
  static void Deposit(Server& server, std::vector<float> values);

  mutable absl::Mutex mu_;
  std::vector<Server> servers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mobilenet

#endif  // MOBILENET_WORKER_ERROR_FEEDBACK_RESIDUALS_H_
