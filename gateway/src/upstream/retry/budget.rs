//! The retry budget: how many retries the calls of the last seconds have earned.

use std::{
    sync::atomic::{AtomicU64, Ordering::Relaxed},
    time::Instant,
};

/// Seconds of calls a retry budget looks back over.
const BUDGET_WINDOW: u64 = 10;

/// How many retries may be sent: `ratio` of the calls of the last [`BUDGET_WINDOW`] seconds,
/// plus `floor` a second (gRFC A6 / Linkerd). Every call is counted, so counting must be cheap:
/// one atomic add into the slot of the current second, no lock (tower's `TpsBudget` takes a
/// mutex on every deposit, which the gateway's workers contended for). A slot is reset when a
/// new second reuses it; a count racing that reset may be lost, which only moves the budget by
/// a call.
pub struct RetryBudget {
    epoch: Instant,
    slots: [BudgetSlot; BUDGET_WINDOW as usize],
    ratio: f64,
    floor: u64,
}

#[derive(Default)]
struct BudgetSlot {
    /// The second (since `epoch`) this slot counts; `u64::MAX` before its first use.
    second: AtomicU64,
    calls: AtomicU64,
    retries: AtomicU64,
}

impl BudgetSlot {
    /// This slot, emptied first if it still holds an older second.
    fn at(&self, second: u64) -> &Self {
        let seen = self.second.load(Relaxed);
        if seen != second
            && self
                .second
                .compare_exchange(seen, second, Relaxed, Relaxed)
                .is_ok()
        {
            self.calls.store(0, Relaxed);
            self.retries.store(0, Relaxed);
        }
        self
    }
}

impl RetryBudget {
    pub fn new(ratio: f64, floor: u64) -> Self {
        let slots = std::array::from_fn(|_| BudgetSlot {
            second: AtomicU64::new(u64::MAX),
            ..BudgetSlot::default()
        });
        Self {
            epoch: Instant::now(),
            slots,
            ratio,
            floor,
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    fn slot(&self, second: u64) -> &BudgetSlot {
        self.slots[(second % BUDGET_WINDOW) as usize].at(second)
    }

    /// A call was made.
    pub fn deposit(&self) {
        self.slot(self.now()).calls.fetch_add(1, Relaxed);
    }

    /// Takes one retry from the budget, if the window allows it.
    pub fn withdraw(&self) -> bool {
        let now = self.now();
        let (calls, retries) = self
            .slots
            .iter()
            .filter(|s| now.wrapping_sub(s.second.load(Relaxed)) < BUDGET_WINDOW)
            .fold((0u64, 0u64), |(c, r), s| {
                (c + s.calls.load(Relaxed), r + s.retries.load(Relaxed))
            });
        let allowed = self.floor * BUDGET_WINDOW + (calls as f64 * self.ratio) as u64;
        if retries >= allowed {
            return false;
        }
        self.slot(now).retries.fetch_add(1, Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_its_floor_and_a_share_of_the_calls() {
        let budget = RetryBudget::new(0.2, 10);
        // No calls yet: the floor, 10 a second over the 10-second window.
        let floor = (0..1000).take_while(|_| budget.withdraw()).count();
        assert_eq!(floor, 100);
        assert!(!budget.withdraw());
        // 1,000 calls buy 200 more retries.
        for _ in 0..1000 {
            budget.deposit();
        }
        let more = (0..1000).take_while(|_| budget.withdraw()).count();
        assert_eq!(more, 200);
    }

    #[test]
    fn a_slot_reused_by_a_later_second_starts_empty() {
        let budget = RetryBudget::new(0.2, 0);
        let slot = budget.slot(3);
        slot.calls.fetch_add(50, Relaxed);
        slot.retries.fetch_add(5, Relaxed);
        // Second 13 lands in the same slot: what second 3 counted is gone.
        let reused = budget.slot(13);
        assert_eq!(reused.calls.load(Relaxed), 0);
        assert_eq!(reused.retries.load(Relaxed), 0);
    }
}
