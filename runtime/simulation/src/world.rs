//! One simulated world: server node processes on one database, activity workers, clients
//! that start workflows and wait for their results, and a supervisor that kills, stalls and
//! restarts processes. Everything runs in one thread on tokio's paused clock; every choice
//! is drawn from the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tonic::{Request, Response, Status};
use weft_engine::{Clock, Engine};
use weft_proto::worker_service_server::WorkerService;
use weft_proto::workflow_service_server::WorkflowService;
use weft_proto::{self as proto, RunStatus};
use weft_server::{ApiLimits, Node, NodeSetup, auth::Auth};

use crate::database::{Database, NodeStore};
use crate::faults::{Chaos, Life};
use crate::workload::{self, QUEUES, Workflow};

/// The simulated wall clock: a fixed epoch plus tokio's (paused) time.
pub struct SimClock {
    start: Instant,
}

/// 2026-01-01T00:00:00Z: simulated time starts here whatever the real date.
const EPOCH_MS: u64 = 1_767_225_600_000;

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        EPOCH_MS + self.start.elapsed().as_millis() as u64
    }
}

/// How one world is shaped; drawn from its seed.
#[derive(Clone, Debug)]
pub struct Shape {
    pub nodes: usize,
    /// One node that adopts every run at start (SQLite's mode), else leases and fencing.
    pub single_node: bool,
    pub workers: usize,
    pub workflows: usize,
    /// How long faults are injected.
    pub chaos_ms: u64,
    /// Runs a node keeps in memory (small: runs are rebuilt from history often).
    pub max_cached_runs: usize,
    /// Chance per supervisor tick (100 ms) that a process is killed or stalled.
    pub kill_rate: f64,
    pub stall_rate: f64,
    /// Chance per task that a worker misbehaves (dies, runs late, fails, completes twice).
    pub worker_fault_rate: f64,
}

impl Shape {
    pub fn draw(rng: &mut crate::rng::Rng) -> Shape {
        let nodes = rng.between(1, 3) as usize;
        Shape {
            nodes,
            single_node: nodes == 1 && rng.chance(0.5),
            workers: rng.between(1, 3) as usize,
            workflows: rng.between(2, 10) as usize,
            chaos_ms: rng.between(2_000, 8_000),
            max_cached_runs: [1, 3, 10_000][rng.below(3) as usize],
            kill_rate: [0.0, 0.01, 0.04][rng.below(3) as usize],
            stall_rate: [0.0, 0.01, 0.03][rng.below(3) as usize],
            worker_fault_rate: [0.0, 0.05, 0.2][rng.below(3) as usize],
        }
    }
}

/// A node process that finished starting.
struct Process {
    life: Arc<Life>,
    node: Node,
}

enum Slot {
    Booting(Arc<Life>),
    Up(Arc<Process>),
    Down { restart_at: Instant },
}

/// A result a client was answered.
#[derive(Clone, Debug)]
pub struct Answer {
    pub workflow_id: String,
    pub run_id: String,
    pub status: RunStatus,
    pub output: Vec<u8>,
    pub error_kind: Option<String>,
}

/// What the world's actors saw, for the invariants.
#[derive(Default)]
pub struct Observed {
    /// Workflow id -> the workflow the client started under it.
    pub started: BTreeMap<String, Workflow>,
    pub answers: Vec<Answer>,
    /// Activity attempts handed to workers: (idempotency key, attempt) -> times.
    pub attempts: BTreeMap<(String, u32), u32>,
    /// Idempotency keys a worker sent a successful result for.
    pub completed: BTreeSet<String>,
    /// Workflows whose client never got an answer.
    pub unanswered: Vec<String>,
}

pub struct World {
    pub chaos: Arc<Chaos>,
    pub db: Arc<Database>,
    engine: Engine,
    clock: Arc<SimClock>,
    pub shape: Shape,
    slots: Mutex<Vec<Slot>>,
    generations: Mutex<Vec<u64>>,
    pub observed: Mutex<Observed>,
    /// Clients still waiting for their result.
    waiting: AtomicUsize,
    done: AtomicBool,
}

/// How long a healed world may take to finish every run before it counts as stuck.
pub const HEAL_LIMIT: Duration = Duration::from_secs(600);
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);
const TICK: Duration = Duration::from_millis(100);
/// How long a client waits before calling again after an error.
const CLIENT_PAUSE: Duration = Duration::from_millis(200);

impl World {
    pub fn new(chaos: Arc<Chaos>, db: Arc<Database>, engine: Engine, shape: Shape) -> Arc<World> {
        let slots = (0..shape.nodes)
            .map(|_| Slot::Down {
                restart_at: Instant::now(),
            })
            .collect();
        Arc::new(World {
            chaos,
            db,
            engine,
            clock: Arc::new(SimClock {
                start: Instant::now(),
            }),
            generations: Mutex::new(vec![0; shape.nodes]),
            shape,
            slots: Mutex::new(slots),
            observed: Mutex::default(),
            waiting: AtomicUsize::new(0),
            done: AtomicBool::new(false),
        })
    }

    fn observed(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the world: the workload under faults for `chaos_ms`, then healed until every
    /// client has its answer and every run is closed (or [`HEAL_LIMIT`] passes). Returns
    /// false when it did not settle.
    pub async fn run(self: &Arc<World>) -> bool {
        tokio::spawn(self.clone().supervise());
        for index in 0..self.shape.workers {
            let queue = QUEUES[index % QUEUES.len()];
            tokio::spawn(self.clone().work(index, queue));
        }
        // Every queue gets a worker, whatever the count drawn.
        for (index, queue) in QUEUES.iter().enumerate().skip(self.shape.workers) {
            tokio::spawn(self.clone().work(index, queue));
        }
        let workflows: Vec<(Workflow, u64)> = {
            let mut rng = self.chaos.rng();
            (0..self.shape.workflows)
                .map(|i| (Workflow::draw(&mut rng, i), rng.below(self.shape.chaos_ms)))
                .collect()
        };
        self.waiting.store(workflows.len(), Ordering::SeqCst);
        for (index, (workflow, at_ms)) in workflows.into_iter().enumerate() {
            tokio::spawn(self.clone().client(index, workflow, at_ms));
        }
        sleep(Duration::from_millis(self.shape.chaos_ms)).await;
        self.chaos.heal();
        self.chaos.note("healed");
        for slot in self.slots().iter() {
            if let Slot::Up(p) = slot {
                p.life.stall_until(None);
            }
        }
        let deadline = Instant::now() + HEAL_LIMIT;
        let settled = loop {
            sleep(Duration::from_millis(500)).await;
            if self.waiting.load(Ordering::SeqCst) == 0 {
                let running = self.db.call(|s| async move {
                    use weft_store::Store;
                    s.running_runs().await
                });
                if running.is_ok_and(|r| r.is_empty()) {
                    break true;
                }
            }
            if Instant::now() >= deadline {
                break false;
            }
        };
        self.done.store(true, Ordering::SeqCst);
        settled
    }

    /// Boots the node processes, restarts dead ones after a while, and (while faults are
    /// on) kills and stalls live ones.
    async fn supervise(self: Arc<World>) {
        while !self.done.load(Ordering::SeqCst) {
            let now = Instant::now();
            let mut boots = Vec::new();
            {
                let mut slots = self.slots();
                let mut rng = self.chaos.rng();
                for (index, slot) in slots.iter_mut().enumerate() {
                    let dead = match slot {
                        Slot::Booting(life) => life.is_dead(),
                        Slot::Up(p) => p.life.is_dead(),
                        Slot::Down { .. } => false,
                    };
                    if dead {
                        *slot = Slot::Down {
                            restart_at: now + Duration::from_millis(rng.between(50, 2_000)),
                        };
                    }
                    match slot {
                        Slot::Down { restart_at } if *restart_at <= now => {
                            let life = Arc::new(Life::default());
                            *slot = Slot::Booting(life.clone());
                            boots.push((index, life, rng.chance(0.5)));
                        }
                        Slot::Up(p) if self.chaos.on() => {
                            if rng.chance(self.shape.kill_rate) {
                                self.chaos.note(&format!("kill node slot {index}"));
                                p.life.kill();
                            } else if rng.chance(self.shape.stall_rate) {
                                let ms = rng.between(500, 8_000);
                                self.chaos.note(&format!("stall node slot {index} {ms} ms"));
                                p.life.stall_until(Some(now + Duration::from_millis(ms)));
                            }
                        }
                        _ => {}
                    }
                }
            }
            for (index, life, same_id) in boots {
                tokio::spawn(self.clone().boot(index, life, same_id));
            }
            sleep(TICK).await;
        }
    }

    /// Starts a node process in slot `index`: under the id of the last one (a restart) or a
    /// new one (another machine; the old id's runs wait for its lease to end).
    async fn boot(self: Arc<World>, index: usize, life: Arc<Life>, same_id: bool) {
        let node_id = {
            let mut generations = self
                .generations
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !same_id {
                generations[index] += 1;
            }
            format!("n{index}.{}", generations[index])
        };
        self.chaos.note(&format!("boot {node_id}"));
        let store: Arc<dyn weft_store::Store> = Arc::new(NodeStore::new(
            self.db.clone(),
            self.chaos.clone(),
            life.clone(),
            node_id.clone(),
            self.shape.single_node,
        ));
        let setup = NodeSetup {
            node: node_id,
            engine: self.engine.clone(),
            store: store.clone(),
            clock: self.clock.clone(),
            max_cached_runs: self.shape.max_cached_runs,
            sweep_interval: SWEEP_INTERVAL,
            auth: Auth::new(store, false, self.clock.clone()),
            api_limits: ApiLimits::default(),
            secure_cookies: false,
        };
        let started = tokio::select! {
            biased;
            started = Node::start(setup) => started,
            () = life.died() => return,
        };
        let mut slots = self.slots();
        match started {
            Ok(node) => {
                if matches!(&slots[index], Slot::Booting(l) if Arc::ptr_eq(l, &life)) {
                    slots[index] = Slot::Up(Arc::new(Process { life, node }));
                }
            }
            // A database fault during the start: the supervisor starts it again.
            Err(_) => life.kill(),
        }
    }

    /// A live process, slot `preferred` if it is up.
    fn live(&self, preferred: usize) -> Option<Arc<Process>> {
        let slots = self.slots();
        let up = |slot: &Slot| match slot {
            Slot::Up(p) if !p.life.is_dead() => Some(p.clone()),
            _ => None,
        };
        up(&slots[preferred % slots.len()]).or_else(|| slots.iter().find_map(up))
    }

    /// An activity worker polling `queue`; it misbehaves as drawn while faults are on.
    async fn work(self: Arc<World>, index: usize, queue: &'static str) {
        let worker_id = format!("worker-{index}");
        while !self.done.load(Ordering::SeqCst) {
            let Some(p) = self.live(index) else {
                sleep(Duration::from_millis(50)).await;
                continue;
            };
            let max_tasks = self.chaos.rng().between(1, 3) as u32;
            let poll =
                p.node
                    .worker
                    .poll_activity_task(Request::new(proto::PollActivityTaskRequest {
                        task_queue: queue.into(),
                        worker_id: worker_id.clone(),
                        max_tasks,
                        poll_timeout_ms: 1_000,
                    }));
            let tasks = match rpc(&p, poll).await {
                Ok(r) => r.tasks,
                Err(_) => {
                    sleep(TICK).await;
                    continue;
                }
            };
            for task in tasks {
                let key = task.idempotency_key.clone();
                self.chaos
                    .note(&format!("{worker_id} got {key} #{}", task.attempt));
                *self
                    .observed()
                    .attempts
                    .entry((key.clone(), task.attempt))
                    .or_default() += 1;
                let fault =
                    if self.chaos.on() && self.chaos.rng().chance(self.shape.worker_fault_rate) {
                        self.chaos.rng().below(4)
                    } else {
                        u64::MAX
                    };
                if fault == 0 {
                    // The worker process dies with its tasks; another takes its place later.
                    self.chaos.note(&format!("{worker_id} dies"));
                    let ms = self.chaos.rng().between(100, 3_000);
                    sleep(Duration::from_millis(ms)).await;
                    break;
                }
                let late_ms = if fault == 1 && task.deadline_ms > 0 {
                    // Past its lease: the attempt has timed out when the result comes.
                    task.deadline_ms.saturating_sub(self.clock.now_ms())
                        + self.chaos.rng().between(1, 3_000)
                } else if task.activity_name == "slow" {
                    // Long enough for the client's cancel to race it.
                    self.chaos.rng().below(3_000)
                } else {
                    self.chaos.rng().below(30)
                };
                sleep(Duration::from_millis(late_ms)).await;
                match workload::activity(&task.activity_name, &task.input) {
                    Ok(_) if fault == 2 => {
                        self.fail(index, &task.task_token, "Flaky", false).await;
                    }
                    Ok(output) => {
                        self.observed().completed.insert(key.clone());
                        self.complete(index, &task.task_token, &output).await;
                        if fault == 3 {
                            self.complete(index, &task.task_token, &output).await;
                        }
                    }
                    Err(message) => self.fail(index, &task.task_token, &message, true).await,
                }
            }
        }
    }

    /// Reports a result until the server has it or says it is stale.
    async fn complete(&self, index: usize, token: &str, output: &[u8]) {
        let request = proto::CompleteActivityTaskRequest {
            task_token: token.into(),
            output: output.to_vec(),
        };
        self.call_until_answered(index, Some(50), TICK, None, |p| {
            let request = request.clone();
            async move {
                p.node
                    .worker
                    .complete_activity_task(Request::new(request))
                    .await
            }
        })
        .await;
    }

    async fn fail(&self, index: usize, token: &str, message: &str, non_retryable: bool) {
        let request = proto::FailActivityTaskRequest {
            task_token: token.into(),
            error_kind: if non_retryable { "Bug" } else { "Flaky" }.into(),
            message: message.into(),
            non_retryable,
            handed_back: false,
        };
        self.call_until_answered(index, Some(50), TICK, None, |p| {
            let request = request.clone();
            async move {
                p.node
                    .worker
                    .fail_activity_task(Request::new(request))
                    .await
            }
        })
        .await;
    }

    /// Makes `call` on a live process (slot `index` first) until it answers with anything
    /// but an error worth trying again, waiting `pause` between tries; at most `tries` tries
    /// (`None`: no limit). With `what`, each answer goes to the trace.
    async fn call_until_answered<T, Fut>(
        &self,
        index: usize,
        tries: Option<usize>,
        pause: Duration,
        what: Option<&str>,
        call: impl Fn(Arc<Process>) -> Fut,
    ) where
        Fut: std::future::Future<Output = Result<Response<T>, Status>>,
    {
        let mut tried = 0;
        while tries.is_none_or(|limit| tried < limit) {
            tried += 1;
            let Some(p) = self.live(index) else {
                sleep(TICK).await;
                continue;
            };
            let answer = rpc(&p, call(p.clone())).await;
            if let Some(what) = what {
                self.chaos.note(&format!(
                    "{what}: {:?}",
                    answer.as_ref().map(|_| ()).map_err(Status::code)
                ));
            }
            match answer {
                Err(s) if retryable(&s) => sleep(pause).await,
                _ => return,
            }
        }
    }

    /// A client: starts `workflow` at `at_ms` (again with `return_existing` until it is
    /// answered), signals it if it waits for one, and waits for its result.
    async fn client(self: Arc<World>, index: usize, workflow: Workflow, at_ms: u64) {
        sleep(Duration::from_millis(at_ms)).await;
        let workflow_id = format!("w{index}");
        let (workflow_type, input) = workflow.start();
        let input = serde_json::to_vec(&input).unwrap_or_default();
        self.observed()
            .started
            .insert(workflow_id.clone(), workflow.clone());
        loop {
            let Some(p) = self.live(index) else {
                sleep(TICK).await;
                continue;
            };
            let call = p
                .node
                .workflow
                .start_workflow(Request::new(proto::StartWorkflowRequest {
                    workflow_type: workflow_type.into(),
                    workflow_id: workflow_id.clone(),
                    input: input.clone(),
                    task_queue: String::new(),
                    return_existing: true,
                }));
            match rpc(&p, call).await {
                Ok(started) => {
                    self.chaos.note(&format!(
                        "started {workflow_id} {} {workflow:?}",
                        started.run_id
                    ));
                    break;
                }
                Err(_) => sleep(CLIENT_PAUSE).await,
            }
        }
        if let Some((name, payload)) = workflow.signal() {
            let request = proto::SignalWorkflowRequest {
                workflow_id: workflow_id.clone(),
                signal_name: name.into(),
                payload: serde_json::to_vec(&payload).unwrap_or_default(),
            };
            let what = format!("signal {workflow_id}");
            self.call_until_answered(index, None, CLIENT_PAUSE, Some(&what), |p| {
                let request = request.clone();
                async move { p.node.workflow.signal_workflow(Request::new(request)).await }
            })
            .await;
        }
        if let Workflow::Cancel { after_ms, .. } = workflow {
            sleep(Duration::from_millis(after_ms)).await;
            let request = proto::CancelWorkflowRequest {
                workflow_id: workflow_id.clone(),
                reason: "simulated".into(),
            };
            let what = format!("cancel {workflow_id}");
            self.call_until_answered(index, None, CLIENT_PAUSE, Some(&what), |p| {
                let request = request.clone();
                async move { p.node.workflow.cancel_workflow(Request::new(request)).await }
            })
            .await;
        }
        while !self.done.load(Ordering::SeqCst) {
            let Some(p) = self.live(index) else {
                sleep(TICK).await;
                continue;
            };
            let call = p.node.workflow.get_workflow_result(Request::new(
                proto::GetWorkflowResultRequest {
                    workflow_id: workflow_id.clone(),
                    run_id: String::new(),
                    wait: true,
                    wait_timeout_ms: 5_000,
                },
            ));
            match rpc(&p, call).await {
                Ok(result) => {
                    let status = result.status();
                    if matches!(status, RunStatus::Running | RunStatus::Unspecified) {
                        continue;
                    }
                    self.chaos
                        .note(&format!("answered {workflow_id} {}", result.run_id));
                    self.observed().answers.push(Answer {
                        workflow_id: workflow_id.clone(),
                        run_id: result.run_id,
                        status,
                        output: result.output,
                        error_kind: result.error.map(|e| e.kind),
                    });
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                Err(s) if s.code() == tonic::Code::DeadlineExceeded => {}
                Err(_) => sleep(CLIENT_PAUSE).await,
            }
        }
        self.observed().unanswered.push(workflow_id);
    }
}

/// Whether a call may succeed if made again (the process or the database was away).
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Internal
    )
}

/// A call to process `p`, which fails as a broken connection would if `p` dies meanwhile.
async fn rpc<T>(
    p: &Process,
    call: impl std::future::Future<Output = Result<Response<T>, Status>>,
) -> Result<T, Status> {
    tokio::select! {
        biased;
        result = call => result.map(Response::into_inner),
        () = p.life.died() => Err(Status::unavailable("simulated: the server process died")),
    }
}
