//! Handles to operations in flight, and waiting on several of them.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::Failure;
use crate::bindings::weft::workflow::host;
use crate::bindings::weft::workflow::types::Completion;

/// An operation in flight (activity, timer, child workflow, signal) whose result is a `T`.
#[must_use = "an operation that is never waited on still runs, but its result is lost"]
#[derive(Debug)]
pub struct Pending<T> {
    handle: u32,
    _result: PhantomData<fn() -> T>,
}

/// The first of two operations to complete, with the other one still pending.
#[derive(Debug)]
pub enum Either<A, B> {
    /// The first completed first.
    Left(A),
    /// The second completed first.
    Right(B),
}

impl<T: DeserializeOwned> Pending<T> {
    pub(crate) fn new(handle: u32) -> Self {
        Pending {
            handle,
            _result: PhantomData,
        }
    }

    /// The host's handle for this operation.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Asks for the operation to be cancelled; waiting on it then gives
    /// [`Failure::Cancelled`] unless it completed first.
    pub fn cancel(&self) {
        host::cancel(self.handle);
    }

    /// Blocks (durably) until the operation completes.
    pub fn wait(self) -> Result<T, Failure> {
        let (_, completion) = host::wait_any(&[self.handle]);
        decode(completion)
    }
}

pub(crate) fn decode<T: DeserializeOwned>(completion: Completion) -> Result<T, Failure> {
    match completion {
        Completion::Ok(bytes) => {
            // A fired timer completes with no bytes; read that as `null` so `()` decodes.
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            serde_json::from_slice(bytes).map_err(|e| Failure::BadPayload(e.to_string()))
        }
        Completion::Err(failure) => Err(failure.into()),
    }
}

/// The result of a two-way select: the winner's result and the loser, still pending.
pub type Select2<A, B> = Either<(Result<A, Failure>, Pending<B>), (Result<B, Failure>, Pending<A>)>;

/// Waits for whichever of `a` and `b` completes first; returns its result and the other one.
pub fn select2<A: DeserializeOwned, B: DeserializeOwned>(
    a: Pending<A>,
    b: Pending<B>,
) -> Select2<A, B> {
    let (index, completion) = host::wait_any(&[a.handle, b.handle]);
    if index == 0 {
        Either::Left((decode(completion), b))
    } else {
        Either::Right((decode(completion), a))
    }
}

/// Waits for all of `pending`; results come back in the same order.
pub fn join_all<T: DeserializeOwned>(pending: Vec<Pending<T>>) -> Vec<Result<T, Failure>> {
    let mut results: Vec<Option<Result<T, Failure>>> = pending.iter().map(|_| None).collect();
    let mut waiting: Vec<(usize, u32)> = pending.iter().map(|p| p.handle).enumerate().collect();
    while !waiting.is_empty() {
        let handles: Vec<u32> = waiting.iter().map(|(_, h)| *h).collect();
        let (index, completion) = host::wait_any(&handles);
        let (position, _) = waiting.remove(index as usize);
        results[position] = Some(decode(completion));
    }
    results.into_iter().flatten().collect()
}
