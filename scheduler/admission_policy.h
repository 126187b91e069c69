#pragma once
// AdmissionPolicy: which waiting sequence the scheduler tries to admit next, and which
// running sequence it preempts when a block is short.
//
// The scheduler calls the policy on the engine thread only. It shows the policy each
// sequence's tenant, priority, weight and arrival (SequenceInfo), tells it when a sequence
// queues, gets tokens scheduled, or leaves, and asks it to pick. That is enough for:
//   - FCFS (here): the front of the queue; preempted sequences sit at the front;
//   - strict priority classes: the lowest priority value first;
//   - fair share by Virtual Token Counter: a counter per tenant grows by the tokens served
//     to it divided by its weight (on_scheduled); pick the backlogged tenant with the
//     smallest counter, lifting a newly backlogged tenant's counter (on_enqueued).
// The scheduler stops admitting for the step when the picked sequence does not fit, so a
// policy's order is kept: nothing jumps ahead of the pick.
//
// The two policies a server can choose (SchedulingPolicy, `--scheduling-policy`) are FCFS
// and FairSharePolicy, which combines the strict priority classes with the counter.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>

#include "common/ids.h"  // RequestId
#include "scheduler/sequence.h"

namespace sluice::scheduler {

// A policy's view of one sequence.
struct SequenceInfo {
  SequenceId seq_id;
  RequestId request_id;
  int32_t choice_index = 0;
  TenantId tenant;
  int32_t priority = 0;  // lower runs first
  double weight = 1.0;
  uint64_t arrival = 0;    // scheduler's arrival counter; forked choices share their parent's
  int32_t num_tokens = 0;  // prompt + output so far
  int32_t num_prompt_tokens = 0;
  int32_t num_computed_tokens = 0;  // 0 while waiting
  int32_t num_preemptions = 0;
};

SequenceInfo sequence_info(const SequenceState& seq);

class AdmissionPolicy {
 public:
  virtual ~AdmissionPolicy() = default;
  virtual std::string_view name() const = 0;

  // `waiting` (non-empty) in queue order: preempted sequences at the front (the most
  // recently preempted first), then new ones by arrival. Returns an index into it.
  virtual size_t pick_next(std::span<const SequenceInfo> waiting) = 0;

  // `running` (non-empty): the sequence to preempt when one cannot get a block. Default:
  // the lowest priority (largest value), then the latest arrival, then the highest choice.
  virtual size_t pick_victim(std::span<const SequenceInfo> running);

  // A sequence joined the waiting queue: new (num_preemptions == 0) or preempted.
  virtual void on_enqueued(const SequenceInfo& seq) {}
  // `num_new_tokens` positions of `seq`, from seq.num_computed_tokens on, were scheduled this
  // step (prefill chunk, recompute or decode); `num_samples` tokens will be sampled from
  // them (0 for a chunk that does not reach the end; n for an unforked n > 1 request).
  virtual void on_scheduled(const SequenceInfo& seq, int32_t num_new_tokens,
                            int32_t num_samples) {}
  // A sequence left the scheduler: finished or aborted, waiting or running.
  virtual void on_finished(const SequenceInfo& seq) {}
};

// First come, first served: always the front of the queue.
class FcfsPolicy final : public AdmissionPolicy {
 public:
  std::string_view name() const override { return "fcfs"; }
  size_t pick_next(std::span<const SequenceInfo> waiting) override;
};

std::unique_ptr<AdmissionPolicy> make_fcfs_policy();

// Strict priority classes, then weighted fair share between tenants by Virtual Token Counter
// (Sheng et al., "Fairness in Serving Large Language Models", OSDI '24), FCFS within a tenant.
//
// pick_next: among the waiting sequences of the best (lowest) priority present, the tenant
// with the smallest counter, and of its sequences the first in queue order (so its preempted
// ones first). A tie between tenants goes to the one with fewer live sequences (a tenant
// just lifted from idle is served before the busy one it was lifted to), then queue order.
// Priority is strict at admission only: a running sequence of a worse class is not
// preempted to make room (the default victim choice does prefer the worse class when
// blocks run short).
//
// Counter: each scheduled prompt position costs input_cost and each token to be sampled
// output_cost, divided by the tenant's weight (the weight of the sequence charged, so a
// reloaded weight applies to new requests). Recomputed output positions are not charged:
// preemption is the server's doing. A tenant with no live sequence that gets one is lifted
// to the smallest counter among the tenants with live sequences (or, when there are none, to
// the largest counter of all), so time spent idle banks no credit, and a tenant returning
// from idle is served next without being owed a burst.
class FairSharePolicy final : public AdmissionPolicy {
 public:
  struct Options {
    double input_cost = 1.0;   // per prompt position computed
    double output_cost = 2.0;  // per token sampled
  };
  FairSharePolicy() : FairSharePolicy(Options{}) {}
  explicit FairSharePolicy(Options options) : options_(options) {}

  std::string_view name() const override { return "fair"; }
  size_t pick_next(std::span<const SequenceInfo> waiting) override;
  void on_enqueued(const SequenceInfo& seq) override;
  void on_scheduled(const SequenceInfo& seq, int32_t num_new_tokens, int32_t num_samples) override;
  void on_finished(const SequenceInfo& seq) override;

  // The tenant's counter (service / weight so far, after lifts); 0 for an unknown tenant.
  double counter(TenantId tenant) const;

 private:
  struct TenantState {
    double counter = 0.0;
    int32_t num_live = 0;  // sequences waiting or running
  };
  // Counts `seq` as live once (forked choices reach the policy first through on_scheduled or
  // on_finished), lifting its tenant's counter when it had none live.
  void track(const SequenceInfo& seq);

  Options options_;
  std::unordered_map<TenantId, TenantState> tenants_;
  std::unordered_map<SequenceId, TenantId> live_;
};

// The policies a server chooses between (`--scheduling-policy`).
enum class SchedulingPolicy : uint8_t { kFcfs, kFair };
std::string_view scheduling_policy_name(SchedulingPolicy policy);  // "fcfs", "fair"
std::optional<SchedulingPolicy> parse_scheduling_policy(std::string_view name);
std::unique_ptr<AdmissionPolicy> make_policy(SchedulingPolicy policy);

}  // namespace sluice::scheduler
