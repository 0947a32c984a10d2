//! The requests awaited through messages (`Join`, `Leave`, `Push`): a slot per open
//! request, indexed by the [`RequestId`] given to the engine (no hashing per reply).

use tokio::sync::oneshot;

use crate::engine::{Outcome, RequestId};
use crate::error::{JoinError, LeaveError, PushError};
use crate::message::{Payload, Reply};

/// Where an outcome goes.
pub(crate) enum Waiter {
    Join(oneshot::Sender<Result<Payload, JoinError>>),
    Leave(oneshot::Sender<Result<(), LeaveError>>),
    Push(oneshot::Sender<Result<Reply, PushError>>),
}

impl Waiter {
    fn is_closed_join(&self) -> bool {
        matches!(self, Waiter::Join(tx) if tx.is_closed())
    }
}

/// A slot: a waiter, or free. The free slots form a stack, each naming the next.
enum Slot {
    Busy(Waiter),
    Free { next: usize },
}

/// No free slot (a link of the free stack, or its top).
const NO_FREE: usize = usize::MAX;

/// The open requests. A slot is freed when its outcome is delivered (or the request
/// is cancelled) and reused by a later request, the last freed first: the engine
/// resolves each request exactly once, so a freed id is never resolved again.
pub(crate) struct Waiters {
    slots: Vec<Slot>,
    /// The last freed slot, or [`NO_FREE`].
    free: usize,
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters {
            slots: Vec::new(),
            free: NO_FREE,
        }
    }
}

impl Waiters {
    /// Records a waiter; its id goes to the engine.
    pub(crate) fn insert(&mut self, waiter: Waiter) -> RequestId {
        let i = self.free;
        let i = if let Some(&Slot::Free { next }) = self.slots.get(i) {
            self.free = next;
            self.slots[i] = Slot::Busy(waiter);
            i
        } else {
            self.slots.push(Slot::Busy(waiter));
            self.slots.len() - 1
        };
        RequestId(i as u64)
    }

    /// Takes a waiter out, freeing its slot.
    pub(crate) fn remove(&mut self, request: RequestId) -> Option<Waiter> {
        let i = usize::try_from(request.0).ok()?;
        let slot = self.slots.get_mut(i)?;
        if let Slot::Free { .. } = slot {
            return None;
        }
        let Slot::Busy(waiter) = std::mem::replace(slot, Slot::Free { next: self.free }) else {
            return None;
        };
        self.free = i;
        Some(waiter)
    }

    /// Hands an outcome to its waiter (nothing happens if the waiter is gone).
    pub(crate) fn resolve(&mut self, request: RequestId, outcome: Outcome) {
        let Some(waiter) = self.remove(request) else {
            return;
        };
        match (waiter, outcome) {
            (Waiter::Join(tx), Outcome::Join(r)) => {
                let _ = tx.send(r);
            }
            (Waiter::Leave(tx), Outcome::Leave(r)) => {
                let _ = tx.send(r);
            }
            (Waiter::Push(tx), Outcome::Push(r)) => {
                let _ = tx.send(r);
            }
            (_, outcome) => {
                log::error!(target: crate::logging::CONNECTION, "{request}: outcome of another kind ({outcome:?}) dropped");
            }
        }
    }

    /// The slots holding a waiter (for leak checks).
    pub(crate) fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s, Slot::Busy(_)))
            .count()
    }

    /// The join requests whose caller stopped waiting (their future was dropped).
    pub(crate) fn abandoned_joins(&self) -> Vec<RequestId> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Slot::Busy(w) if w.is_closed_join()))
            .map(|(i, _)| RequestId(i as u64))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_once_resolved_and_each_outcome_reaches_its_own_waiter() {
        let mut w = Waiters::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let a = w.insert(Waiter::Push(tx1));
        let b = w.insert(Waiter::Leave(tx2));
        assert_ne!(a, b);
        w.resolve(a, Outcome::Push(Err(PushError::Timeout)));
        assert_eq!(rx1.try_recv().unwrap(), Err(PushError::Timeout));
        // A second outcome for a freed slot reaches nobody.
        w.resolve(a, Outcome::Push(Err(PushError::Stopped)));
        let (tx3, rx3) = oneshot::channel();
        let c = w.insert(Waiter::Join(tx3));
        assert_eq!(c, a, "the freed slot is reused");
        drop(rx3);
        assert_eq!(w.abandoned_joins(), vec![c]);
        w.resolve(b, Outcome::Leave(Ok(())));
        assert_eq!(rx2.try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn freed_slots_are_reused_last_freed_first_and_a_freed_id_resolves_nothing() {
        let mut w = Waiters::default();
        let ids: Vec<RequestId> = (0..4)
            .map(|_| w.insert(Waiter::Push(oneshot::channel().0)))
            .collect();
        assert_eq!(ids, (0..4).map(RequestId).collect::<Vec<_>>());
        for i in [1, 3, 0] {
            assert!(w.remove(ids[i]).is_some());
            assert!(w.remove(ids[i]).is_none(), "freed twice");
        }
        assert_eq!(w.len(), 1);
        let again: Vec<RequestId> = (0..4)
            .map(|_| w.insert(Waiter::Push(oneshot::channel().0)))
            .collect();
        assert_eq!(again, [0, 3, 1, 4].map(RequestId));
        assert_eq!(w.len(), 5);
        assert!(w.remove(RequestId(99)).is_none());
    }
}
