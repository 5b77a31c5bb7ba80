//! The workflows a simulation starts, the activities its workers run, and what each run
//! must end with, whatever the faults.

use serde_json::{Value, json};

use crate::rng::Rng;

/// A workflow type of the simulation and the guest component that implements it.
pub struct Module {
    pub workflow_type: &'static str,
    pub component: &'static str,
}

/// Every module a simulation uploads. The edge-cases guest starts its children by the type
/// `EdgeCases`, so the types are named as the examples name them.
pub const MODULES: &[Module] = &[
    Module {
        workflow_type: "GreetingWorkflow",
        component: weft_tests::HELLO_ACTIVITY,
    },
    Module {
        workflow_type: "FanOut",
        component: weft_tests::FAN_OUT,
    },
    Module {
        workflow_type: "EdgeCases",
        component: weft_tests::EDGE_CASES,
    },
    Module {
        workflow_type: "Approval",
        component: weft_tests::APPROVAL,
    },
];

/// The task queues the workers poll: the greeting's own, and the default (`square`).
pub const QUEUES: &[&str] = &["hello-activity-task-queue", "default"];

/// One workflow a client starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workflow {
    /// One activity on its own queue.
    Greeting { name: String },
    /// `n` activities at once.
    FanOut { n: u64 },
    /// A durable timer.
    Sleep { ms: u64 },
    /// `n` child workflows.
    Children { n: u64 },
    /// Continues as new until its run number reaches `until`.
    Count { until: u64 },
    /// Fails on purpose.
    Fail,
    /// Waits for a signal (which the client sends) before a long timer.
    Approval,
    /// Waits on the `slow` activity (and, with `child`, a child doing the same); the client
    /// cancels it `after_ms` after the start. It ends cancelled, after its `cleanup`
    /// activity, or completed if `slow` finished first.
    Cancel { child: bool, after_ms: u64 },
    /// Starts a child that sleeps an hour and cancels its handle at `stage` (`before`,
    /// `twice`, `runs`; at `completed` the child echoes and is cancelled after): the wait
    /// gives `cancelled` and the child ends cancelled.
    CancelChild { stage: &'static str },
    /// Starts a child that sleeps briefly and closes at once: the child ends as its parent
    /// close `policy` says.
    LeaveChild { policy: &'static str },
}

/// The stages `CancelChild` cancels at.
const STAGES: &[&str] = &["before", "twice", "runs", "completed"];

/// The parent close policies `LeaveChild` chooses from (`default`: none chosen).
const POLICIES: &[&str] = &["terminate", "request_cancel", "abandon", "default"];

/// What a run must end with.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Output(Value),
    Failed {
        kind: &'static str,
    },
    /// Completed, whatever the output.
    Completed,
    /// Either of two outcomes, as a race decides.
    Either(Box<Expected>, Box<Expected>),
}

impl Workflow {
    pub fn draw(rng: &mut Rng, index: usize) -> Workflow {
        match rng.below(11) {
            0 | 1 => Workflow::Greeting {
                name: format!("c{index}"),
            },
            2 => Workflow::FanOut {
                n: rng.between(2, 12),
            },
            3 => Workflow::Sleep {
                ms: rng.between(50, 2_000),
            },
            4 => Workflow::Children {
                n: rng.between(1, 3),
            },
            5 => Workflow::Count {
                until: rng.between(2, 4),
            },
            6 => Workflow::Fail,
            7 => Workflow::Approval,
            8 => Workflow::CancelChild {
                stage: STAGES[rng.below(STAGES.len() as u64) as usize],
            },
            9 => Workflow::LeaveChild {
                policy: POLICIES[rng.below(POLICIES.len() as u64) as usize],
            },
            _ => Workflow::Cancel {
                child: rng.chance(0.5),
                after_ms: rng.below(2_000),
            },
        }
    }

    /// The workflow type and the input to start it with.
    pub fn start(&self) -> (&'static str, Value) {
        match self {
            Workflow::Greeting { name } => ("GreetingWorkflow", json!(name)),
            Workflow::FanOut { n } => ("FanOut", json!({"n": n})),
            Workflow::Sleep { ms } => ("EdgeCases", json!({"mode": "sleep", "ms": ms})),
            Workflow::Children { n } => ("EdgeCases", json!({"mode": "children", "n": n})),
            Workflow::Count { until } => (
                "EdgeCases",
                json!({"mode": "count", "run": 1, "until": until, "seen": []}),
            ),
            Workflow::Fail => ("EdgeCases", json!({"mode": "fail", "kind": "Declined"})),
            Workflow::Approval => (
                "Approval",
                json!({"request": "purchase", "timeout_ms": 3_600_000}),
            ),
            Workflow::Cancel { child, .. } => {
                ("EdgeCases", json!({"mode": "cancellable", "child": child}))
            }
            Workflow::CancelChild { stage } => (
                "EdgeCases",
                json!({"mode": "cancel_at", "op": "child", "stage": stage,
                    "ms": 3_600_000, "queue": "default"}),
            ),
            Workflow::LeaveChild { policy } => (
                "EdgeCases",
                json!({"mode": "leave_child", "policy": policy, "child_ms": 300}),
            ),
        }
    }

    /// The signal the client sends once the run started, if any.
    pub fn signal(&self) -> Option<(&'static str, Value)> {
        match self {
            Workflow::Approval => Some(("approve", json!({"approver": "sim"}))),
            _ => None,
        }
    }

    /// How the last run of the workflow must close.
    pub fn expected(&self) -> Expected {
        match self {
            Workflow::Greeting { name } => Expected::Output(json!(format!("Hello, {name}!"))),
            Workflow::FanOut { n } => {
                Expected::Output(json!({"n": n, "sum": (0..*n).map(|i| i * i).sum::<u64>()}))
            }
            Workflow::Sleep { .. } => Expected::Output(json!("slept")),
            // Children echo their index, 0..n.
            Workflow::Children { n } => Expected::Output(json!((0..*n).sum::<u64>())),
            Workflow::Count { until } => Expected::Output(json!((1..=*until).collect::<Vec<_>>())),
            Workflow::Fail => Expected::Failed { kind: "Declined" },
            Workflow::Approval => Expected::Output(
                json!({"request": "purchase", "approved": true, "approver": "sim"}),
            ),
            Workflow::Cancel { .. } => Expected::Either(
                Box::new(Expected::Failed { kind: "Cancelled" }),
                Box::new(Expected::Output(json!(SLOW_OUTPUT))),
            ),
            Workflow::CancelChild { stage: "completed" } => {
                Expected::Output(json!({"outcome": "ok"}))
            }
            Workflow::CancelChild { .. } => Expected::Output(json!({"outcome": "cancelled"})),
            Workflow::LeaveChild { .. } => Expected::Completed,
        }
    }

    /// How its direct children must close, if that is decided: by the cancel of their
    /// handle, or by the parent close policy.
    pub fn children_end(&self) -> Option<weft_store::RunStatus> {
        use weft_store::RunStatus;
        match self {
            Workflow::CancelChild { stage: "completed" } => Some(RunStatus::Completed),
            Workflow::CancelChild { .. } => Some(RunStatus::Cancelled),
            Workflow::LeaveChild { policy } => Some(match *policy {
                "request_cancel" => RunStatus::Cancelled,
                "abandon" => RunStatus::Completed,
                _ => RunStatus::Terminated,
            }),
            _ => None,
        }
    }
}

/// What the `slow` activity returns.
const SLOW_OUTPUT: &str = "done";

/// Runs activity `name` on `input` as the examples' workers do.
pub fn activity(name: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let output = match name {
        "compose_greeting" => {
            let v: Value = serde_json::from_slice(input).map_err(|e| e.to_string())?;
            let (Some(greeting), Some(name)) = (v["greeting"].as_str(), v["name"].as_str()) else {
                return Err(format!("compose_greeting: unexpected input {v}"));
            };
            json!(format!("{greeting}, {name}!"))
        }
        "slow" => json!(SLOW_OUTPUT),
        "cleanup" => json!("cleaned"),
        "square" => {
            let i: u64 = serde_json::from_slice(input).map_err(|e| e.to_string())?;
            json!(i * i)
        }
        other => return Err(format!("no activity `{other}` in the simulation")),
    };
    serde_json::to_vec(&output).map_err(|e| e.to_string())
}
