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

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

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
  // `num_tokens` tokens of `seq` were scheduled this step (prefill chunk or decode).
  virtual void on_scheduled(const SequenceInfo& seq, int32_t num_tokens) {}
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

}  // namespace sluice::scheduler
