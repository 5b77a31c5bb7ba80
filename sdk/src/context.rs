//! [`Ctx`]: everything a workflow may ask of the world, each answer recorded in history.

use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Failure;
use crate::bindings::weft::workflow::{host, types as raw};
use crate::pending::{self, Pending, Select2};

/// The workflow's handle on the world. Cheap; passed to the workflow function by reference.
#[derive(Debug)]
pub struct Ctx {
    _private: (),
}

/// Who this run is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowInfo {
    /// The workflow id, stable across continue-as-new.
    pub workflow_id: String,
    /// This run's id.
    pub run_id: String,
    /// The workflow type name.
    pub workflow_type: String,
    /// The run's task queue.
    pub task_queue: String,
    /// 1 for the first run; grows with continue-as-new.
    pub run_number: u32,
}

/// How the server retries a failing activity.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial_interval: Duration,
    /// Each delay is the previous one times this.
    pub backoff_coefficient: f64,
    /// Delays never exceed this.
    pub maximum_interval: Duration,
    /// 0 means unlimited.
    pub maximum_attempts: u32,
    /// Error kinds that are never retried.
    pub non_retryable_errors: Vec<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(100),
            maximum_attempts: 0,
            non_retryable_errors: Vec::new(),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn encode<T: Serialize + ?Sized>(what: &str, value: &T) -> Vec<u8> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes,
        // A value that cannot be JSON is a bug in the workflow: fail the run saying which.
        Err(e) => panic!("the input of {what} does not encode as JSON: {e}"),
    }
}

/// An activity to start; set options, then [`Activity::call`] or [`Activity::start`].
#[must_use = "an activity does nothing until `call()` or `start()`"]
#[derive(Debug)]
pub struct Activity<O> {
    name: String,
    input: Vec<u8>,
    options: raw::ActivityOptions,
    ext: raw::ActivityOptionsExt,
    _output: PhantomData<fn() -> O>,
}

impl<O: DeserializeOwned> Activity<O> {
    /// The task queue whose workers run it (default: the run's own).
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        self.options.task_queue = Some(queue.into());
        self
    }
    /// Longest time one attempt may take.
    pub fn start_to_close(mut self, timeout: Duration) -> Self {
        self.options.start_to_close_timeout_ms = Some(millis(timeout));
        self
    }
    /// Longest time all attempts together may take.
    pub fn schedule_to_close(mut self, timeout: Duration) -> Self {
        self.options.schedule_to_close_timeout_ms = Some(millis(timeout));
        self
    }
    /// An attempt that no worker takes within this time fails with `ScheduleToStartTimeout`
    /// and is retried per the retry policy: a workflow whose workers are all gone learns it
    /// instead of waiting forever.
    pub fn schedule_to_start(mut self, timeout: Duration) -> Self {
        self.ext.schedule_to_start_timeout_ms = Some(millis(timeout));
        self
    }
    /// An attempt that does not heartbeat within this time is failed and retried.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.options.heartbeat_timeout_ms = Some(millis(timeout));
        self
    }
    /// The retry policy (default: the server's).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = Some(raw::RetryPolicy {
            initial_interval_ms: millis(policy.initial_interval),
            backoff_coefficient: policy.backoff_coefficient,
            maximum_interval_ms: millis(policy.maximum_interval),
            maximum_attempts: policy.maximum_attempts,
            non_retryable_errors: policy.non_retryable_errors,
        });
        self
    }
    /// Starts the activity; wait on the returned handle later.
    pub fn start(self) -> Pending<O> {
        let handle = if self.ext.schedule_to_start_timeout_ms.is_some() {
            host::start_activity_ext(&self.name, &self.input, &self.options, self.ext)
        } else {
            host::start_activity(&self.name, &self.input, &self.options)
        };
        Pending::new(handle)
    }
    /// Starts the activity and waits for its result.
    pub fn call(self) -> Result<O, Failure> {
        self.start().wait()
    }
}

/// A child workflow to start; set options, then [`Child::call`] or [`Child::start`].
#[must_use = "a child workflow does nothing until `call()` or `start()`"]
#[derive(Debug)]
pub struct Child<O> {
    workflow_type: String,
    input: Vec<u8>,
    options: raw::ChildOptions,
    parent_close_policy: Option<ParentClosePolicy>,
    _output: PhantomData<fn() -> O>,
}

/// What happens to a child workflow still running when its parent closes (completes, fails,
/// is cancelled or terminated, or continues as new).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParentClosePolicy {
    /// The child is terminated: the default.
    #[default]
    Terminate,
    /// The child is asked to cancel, and closes as it chooses (a workflow can clean up).
    RequestCancel,
    /// The child goes on by itself.
    Abandon,
}

impl<O: DeserializeOwned> Child<O> {
    /// The child's workflow id (default: "<parent id>/<handle>").
    pub fn workflow_id(mut self, id: impl Into<String>) -> Self {
        self.options.workflow_id = Some(id.into());
        self
    }
    /// The child's task queue (default: the parent's).
    pub fn task_queue(mut self, queue: impl Into<String>) -> Self {
        self.options.task_queue = Some(queue.into());
        self
    }
    /// What happens to the child if it is still running when this run closes (default:
    /// [`ParentClosePolicy::Terminate`]).
    pub fn parent_close_policy(mut self, policy: ParentClosePolicy) -> Self {
        self.parent_close_policy = Some(policy);
        self
    }
    /// Starts the child; wait on the returned handle later. Cancelling the handle completes
    /// it as cancelled at once and asks the child to cancel.
    pub fn start(self) -> Pending<O> {
        let handle = match self.parent_close_policy {
            // Only modules that choose a policy import the newer host function.
            Some(policy) => host::start_child_workflow_ext(
                &self.workflow_type,
                &self.input,
                &self.options,
                raw::ChildOptionsExt {
                    parent_close_policy: Some(match policy {
                        ParentClosePolicy::Terminate => raw::ParentClosePolicy::Terminate,
                        ParentClosePolicy::RequestCancel => raw::ParentClosePolicy::RequestCancel,
                        ParentClosePolicy::Abandon => raw::ParentClosePolicy::Abandon,
                    }),
                },
            ),
            None => host::start_child_workflow(&self.workflow_type, &self.input, &self.options),
        };
        Pending::new(handle)
    }
    /// Starts the child and waits for its result.
    pub fn call(self) -> Result<O, Failure> {
        self.start().wait()
    }
}

impl Ctx {
    pub(crate) fn new() -> Self {
        Ctx { _private: () }
    }

    /// An activity `name` with `input`, producing an `O`.
    pub fn activity<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        name: &str,
        input: &I,
    ) -> Activity<O> {
        Activity {
            name: name.to_owned(),
            input: encode(&format!("activity `{name}`"), input),
            options: raw::ActivityOptions {
                task_queue: None,
                start_to_close_timeout_ms: None,
                schedule_to_close_timeout_ms: None,
                heartbeat_timeout_ms: None,
                retry: None,
            },
            ext: raw::ActivityOptionsExt {
                schedule_to_start_timeout_ms: None,
            },
            _output: PhantomData,
        }
    }

    /// A child workflow of `workflow_type` with `input`, producing an `O`.
    pub fn child<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        workflow_type: &str,
        input: &I,
    ) -> Child<O> {
        Child {
            workflow_type: workflow_type.to_owned(),
            input: encode(&format!("child workflow `{workflow_type}`"), input),
            options: raw::ChildOptions {
                workflow_id: None,
                task_queue: None,
            },
            parent_close_policy: None,
            _output: PhantomData,
        }
    }

    /// A durable timer that fires after `duration`.
    pub fn timer(&self, duration: Duration) -> Pending<()> {
        Pending::new(host::start_timer(millis(duration)))
    }

    /// Durable sleep: survives restarts of the server. A run cancelled during a `sleep` ends
    /// there as cancelled; use [`timer`](Self::timer) to see the cancellation and clean up.
    pub fn sleep(&self, duration: Duration) {
        host::sleep(millis(duration));
    }

    /// Completes with the payload of the next signal called `name`.
    pub fn signal<T: DeserializeOwned>(&self, name: &str) -> Pending<T> {
        Pending::new(host::next_signal(name))
    }

    /// Waits for the first of `a` and `b`; returns its result and the one still pending.
    pub fn select2<A: DeserializeOwned, B: DeserializeOwned>(
        &self,
        a: Pending<A>,
        b: Pending<B>,
    ) -> Select2<A, B> {
        pending::select2(a, b)
    }

    /// Waits for all of `pending`; results in the same order.
    pub fn join_all<T: DeserializeOwned>(
        &self,
        pending: Vec<Pending<T>>,
    ) -> Vec<Result<T, Failure>> {
        pending::join_all(pending)
    }

    /// Workflow time in milliseconds since the Unix epoch (recorded).
    pub fn now_ms(&self) -> u64 {
        host::now()
    }

    /// Workflow time (recorded).
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.now_ms())
    }

    /// 64 random bits from the run's seeded generator (the same on replay).
    pub fn random(&self) -> u64 {
        host::random_u64()
    }

    /// A random (version 4) UUID from the run's seeded generator.
    pub fn uuid(&self) -> String {
        let hi = self.random();
        let lo = self.random();
        let hi = (hi & !0xF000) | 0x4000; // version 4
        let lo = (lo & !(0xC << 60)) | (0x8 << 60); // RFC 4122 variant
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }

    /// Whether this run takes the new code path of a change, so that runs started before the
    /// change still replay on the new code:
    ///
    /// ```ignore
    /// if ctx.patched("wait-before-greeting") {
    ///     ctx.sleep(Duration::from_secs(1)); // new code
    /// }
    /// ```
    ///
    /// True in runs that reach this point on code with the change (a `MarkerRecorded` event
    /// says so in the history); false when replaying a history recorded before it, which
    /// then takes the old path. Once every run that started before the change has closed,
    /// drop the call and keep the new path.
    pub fn patched(&self, change_id: &str) -> bool {
        host::patched(change_id)
    }

    /// Who this run is.
    pub fn info(&self) -> WorkflowInfo {
        let info = host::info();
        WorkflowInfo {
            workflow_id: info.workflow_id,
            run_id: info.run_id,
            workflow_type: info.workflow_type,
            task_queue: info.task_queue,
            run_number: info.run_number,
        }
    }

    /// Ends this run and starts a new one of the same workflow id with `input`.
    pub fn continue_as_new<I: Serialize + ?Sized>(&self, input: &I) -> ! {
        host::continue_as_new(&encode("continue-as-new", input));
        unreachable!("the host does not return from continue-as-new")
    }
}
