#include "ledger/lease_state.h"

#include <limits>
#include <string>

#include "ledger/keys.h"
#include "market/billing.h"

namespace gpumart::ledger {

std::string_view ToString(LeaseState state) {
  switch (state) {
    case LeaseState::kActive: return "active";
    case LeaseState::kClosed: return "closed";
  }
  return "unknown";
}

std::optional<LeaseState> ParseLeaseState(std::string_view text) {
  if (text == "active") return LeaseState::kActive;
  if (text == "closed") return LeaseState::kClosed;
  return std::nullopt;
}

std::string_view ToString(LeaseEvent event) {
  switch (event) {
    case LeaseEvent::kRecord: return "record";
    case LeaseEvent::kClose: return "close";
  }
  return "unknown";
}

Result<LeaseState> NextLeaseState(std::optional<LeaseState> from, LeaseEvent event) {
  if (!from) {
    if (event == LeaseEvent::kRecord) return LeaseState::kActive;
    return Status::FailedPrecondition("cannot close a lease that is not recorded");
  }
  switch (*from) {
    case LeaseState::kActive:
      if (event == LeaseEvent::kClose) return LeaseState::kClosed;
      return Status::AlreadyExists("lease is already recorded (active)");
    case LeaseState::kClosed:
      if (event == LeaseEvent::kClose) return Status::FailedPrecondition("lease is already closed");
      return Status::FailedPrecondition("lease is closed; it cannot be recorded again");
  }
  return Status::Internal("unknown lease state");
}

Status CheckCloser(const market::PublicKey& signer, const market::PublicKey& tenant,
                   const market::PublicKey& provider, market::CloseReason reason) {
  const bool is_tenant = signer == tenant;
  const bool is_provider = signer == provider;
  if (!is_tenant && !is_provider) {
    return Status::PermissionDenied("close signed by " + market::ToHex(signer) +
                                    ", who is neither the lease's tenant nor its provider");
  }
  switch (reason) {
    case market::CloseReason::kTenantClosed:
      if (!is_tenant) return Status::PermissionDenied("only the tenant may close with reason tenant-closed");
      break;
    case market::CloseReason::kProviderClosed:
    case market::CloseReason::kProviderFailure:
    case market::CloseReason::kPreempted:
      if (!is_provider) {
        return Status::PermissionDenied("only the provider may close with reason " +
                                        std::string(market::ToString(reason)));
      }
      break;
    case market::CloseReason::kInsufficientFunds:
    case market::CloseReason::kExpired:
      break;
  }
  return Status::Ok();
}

Status CheckPreemption(const market::Signed<market::Close>& close, const market::PublicKey& lease_provider,
                       const std::optional<market::SpotTerms>& lease_spot) {
  auto refuse = [](std::string why) { return Status::FailedPrecondition("preemption breaks the rules: " + why); };
  if (!lease_spot) return refuse("the lease is not interruptible");
  const int64_t signed_ms = close.envelope.created_ms;
  // notice_ms <= limits::kMaxPreemptionNoticeMs, so the sum cannot overflow for valid times.
  const int64_t earliest_ms = signed_ms + static_cast<int64_t>(lease_spot->notice_ms);
  if (close.body.closed_ms < earliest_ms) {
    return refuse("notice not honoured: takes effect at " + std::to_string(close.body.closed_ms) +
                  ", but the lease's notice of " + std::to_string(lease_spot->notice_ms) + " ms after " +
                  std::to_string(signed_ms) + " allows " + std::to_string(earliest_ms) + " at the earliest");
  }
  auto preemptor = market::OpenLease(close.body.preemptor_lease);
  if (!preemptor.ok()) return refuse("the preemptor lease does not verify: " + preemptor.status().ToString());
  if (preemptor->envelope.signer != lease_provider) return refuse("the preemptor lease is another provider's");
  if (preemptor->body.spot) return refuse("the preemptor lease is itself interruptible");
  const int64_t preemptor_signed_ms = preemptor->envelope.created_ms;
  if (preemptor_signed_ms > signed_ms || preemptor_signed_ms < signed_ms - kMaxPreemptionLeadMs) {
    return refuse("the preemptor lease was signed at " + std::to_string(preemptor_signed_ms) +
                  ", not within " + std::to_string(kMaxPreemptionLeadMs) + " ms before the close (" +
                  std::to_string(signed_ms) + ")");
  }
  if (preemptor->body.start_ms < close.body.closed_ms) {
    return refuse("the preemptor lease starts at " + std::to_string(preemptor->body.start_ms) +
                  ", before the preemption takes effect at " + std::to_string(close.body.closed_ms));
  }
  return Status::Ok();
}

Result<Billing> ComputeBilling(uint64_t price_per_hour, int64_t start_ms, int64_t closed_ms) {
  Result<market::Accrued> accrued = market::BillBetween(price_per_hour, start_ms, closed_ms);
  if (!accrued.ok()) return accrued.status();
  return Billing{accrued->duration_ms, accrued->amount};
}

std::string EncodeBilling(const Billing& billing) {
  std::string out;
  AppendU64(out, static_cast<uint64_t>(billing.duration_ms));
  AppendU64(out, billing.amount_owed);
  return out;
}

Result<Billing> DecodeBilling(std::string_view bytes) {
  if (bytes.size() != kBillingBytes) return Status::Corruption("billing value is not 16 bytes");
  Billing billing;
  const uint64_t duration = ReadU64(bytes.data());
  if (duration > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Status::Corruption("billing duration out of range");
  }
  billing.duration_ms = static_cast<int64_t>(duration);
  billing.amount_owed = ReadU64(bytes.data() + 8);
  return billing;
}

}  // namespace gpumart::ledger
