//! The client commands: upload, start, result, describe, list, history, signal, cancel,
//! terminate. Each prints a readable line, or one JSON document with `--json`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use weft_proto::credentials::{Authorized, ClientOptions};
use weft_proto::workflow_service_client::WorkflowServiceClient;
use weft_proto::{self as proto, RunStatus};

use crate::exit;

#[derive(clap::Args)]
pub struct Server {
    /// The weft server (client commands).
    #[arg(
        long,
        env = "WEFT_SERVER",
        default_value = "http://127.0.0.1:7233",
        global = true
    )]
    server: String,
    /// The bearer token to send, when the server runs with --auth.
    #[arg(long, env = "WEFT_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// PEM file of the CA that signed an https:// server's certificate [default: public CAs].
    #[arg(long, env = "WEFT_CA", global = true)]
    ca: Option<String>,
    /// PEM client certificate for mutual TLS (with --key).
    #[arg(long, env = "WEFT_CERT", global = true)]
    cert: Option<String>,
    /// PEM private key of --cert.
    #[arg(long, env = "WEFT_KEY", global = true)]
    key: Option<String>,
}

/// A client of the workflow API that sends the token.
pub type Client = WorkflowServiceClient<Authorized>;

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Upload a workflow component as the newest module of a workflow type.
    Upload {
        /// The workflow type whose new runs get this module.
        #[arg(long = "type")]
        workflow_type: String,
        /// The `.wasm` component (`weft build` writes it).
        file: PathBuf,
        /// Replay the type's N most recent runs on the component first; refuse the upload if
        /// any diverges (exit 3).
        #[arg(long, default_value_t = 0)]
        vet_recent: u32,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Start a workflow run.
    Start {
        #[arg(long = "type")]
        workflow_type: String,
        #[arg(long = "id")]
        workflow_id: String,
        #[arg(long, default_value = "null")]
        input: String,
        #[arg(long, default_value = "default")]
        task_queue: String,
        /// Wait for the result and print it.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's result.
    Result {
        workflow_id: String,
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's status.
    Describe {
        workflow_id: String,
        #[arg(long)]
        json: bool,
    },
    /// List runs, newest first.
    List {
        #[arg(long = "type")]
        workflow_type: Option<String>,
        /// running, completed, failed, continued_as_new, terminated or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Where the previous page ended (printed after a full page).
        #[arg(long)]
        page_token: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print a run's history (`--json`: the format `weft replay` reads).
    History {
        workflow_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Ask a running workflow to cancel: what it waits on completes as cancelled, and it may
    /// clean up before it ends (recorded as `RunCancelRequested`).
    Cancel {
        workflow_id: String,
        #[arg(long, default_value = "cancelled from the command line")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// End a running workflow now (recorded as `RunTerminated`; the workflow code is not run).
    Terminate {
        workflow_id: String,
        #[arg(long, default_value = "terminated from the command line")]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a running workflow.
    Signal {
        workflow_id: String,
        name: String,
        #[arg(long, default_value = "null")]
        payload: String,
        #[arg(long)]
        json: bool,
    },
}

impl Server {
    /// The server's URL.
    pub fn url(&self) -> String {
        self.server.clone()
    }

    /// The token and TLS files as options for a client.
    pub fn options(&self) -> anyhow::Result<ClientOptions> {
        ClientOptions::from_files(
            self.token.clone(),
            self.ca.as_deref(),
            self.cert.as_deref(),
            self.key.as_deref(),
        )
        .map_err(|e| anyhow::anyhow!(e))
    }

    /// A channel to the server that carries the token (over TLS for https://).
    pub async fn channel(&self) -> anyhow::Result<Authorized> {
        self.options()?.connect(&self.server).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to the weft server at {} ({e}); start one with `weft server`",
                self.server
            )
        })
    }

    /// A workflow API client.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Ok(WorkflowServiceClient::new(self.channel().await?)
            .max_decoding_message_size(weft_server::MAX_COMPONENT_BYTES)
            .max_encoding_message_size(weft_server::MAX_COMPONENT_BYTES + 1024))
    }
}

/// Every status a run can have.
const STATUSES: [RunStatus; 6] = [
    RunStatus::Running,
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::ContinuedAsNew,
    RunStatus::Terminated,
    RunStatus::Cancelled,
];

fn status_name(status: i32) -> &'static str {
    match RunStatus::try_from(status) {
        Ok(RunStatus::Running) => "running",
        Ok(RunStatus::Completed) => "completed",
        Ok(RunStatus::Failed) => "failed",
        Ok(RunStatus::ContinuedAsNew) => "continued_as_new",
        Ok(RunStatus::Terminated) => "terminated",
        Ok(RunStatus::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

/// A JSON argument as the payload to send: checked, and compact (JSON written over several
/// lines, as a README prints it, is sent as one line), so that histories hold it as JSON.
fn json_arg(name: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    let value = serde_json::from_str::<serde_json::Value>(text)
        .with_context(|| format!("{name} `{text}` is not valid JSON"))?;
    Ok(serde_json::to_vec(&value)?)
}

pub fn client(server: Server, command: ClientCommand) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(server, command))
}

async fn result(
    client: &mut Client,
    workflow_id: String,
    wait: bool,
    json: bool,
) -> anyhow::Result<u8> {
    let r = client
        .get_workflow_result(proto::GetWorkflowResultRequest {
            workflow_id,
            run_id: String::new(),
            wait,
            wait_timeout_ms: 0,
        })
        .await?
        .into_inner();
    let output = String::from_utf8_lossy(&r.output).into_owned();
    if json {
        let error = r
            .error
            .as_ref()
            .map(|e| serde_json::json!({"kind": e.kind, "message": e.message}));
        println!(
            "{}",
            serde_json::json!({"run_id": r.run_id, "status": status_name(r.status), "output": output, "error": error})
        );
    } else if let Some(e) = &r.error {
        println!("{}: {}: {}", status_name(r.status), e.kind, e.message);
    } else if r.status == RunStatus::Running as i32 {
        println!("running");
    } else {
        println!("{output}");
    }
    let unsuccessful = [
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Terminated,
    ];
    Ok(if unsuccessful.iter().any(|s| *s as i32 == r.status) {
        exit::RUN_FAILED
    } else {
        0
    })
}

async fn run(server: Server, command: ClientCommand) -> anyhow::Result<u8> {
    let mut client = server.connect().await?;
    match command {
        ClientCommand::Upload {
            workflow_type,
            file,
            vet_recent,
            json,
        } => {
            let component = crate::read_file(&file, "component")?;
            let uploaded = client
                .upload_module(proto::UploadModuleRequest {
                    vet_recent,
                    workflow_type: workflow_type.clone(),
                    component,
                })
                .await;
            let r = match uploaded {
                Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                    eprintln!("error: {}", status.message());
                    return Ok(crate::exit::NON_DETERMINISM);
                }
                other => other?.into_inner(),
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_type": workflow_type, "module_id": r.module_id})
                );
            } else {
                println!("{}", r.module_id);
            }
        }
        ClientCommand::Start {
            workflow_type,
            workflow_id,
            input,
            task_queue,
            wait,
            json,
        } => {
            let input = json_arg("--input", &input)?;
            let r = client
                .start_workflow(proto::StartWorkflowRequest {
                    workflow_type,
                    workflow_id: workflow_id.clone(),
                    input,
                    task_queue,
                    return_existing: false,
                })
                .await?
                .into_inner();
            if wait {
                return result(&mut client, workflow_id, true, json).await;
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_id": workflow_id, "run_id": r.run_id})
                );
            } else {
                println!("{}", r.run_id);
            }
        }
        ClientCommand::Result {
            workflow_id,
            wait,
            json,
        } => return result(&mut client, workflow_id, wait, json).await,
        ClientCommand::Describe { workflow_id, json } => {
            let r = client
                .describe_workflow(proto::DescribeWorkflowRequest {
                    workflow_id,
                    run_id: String::new(),
                })
                .await?
                .into_inner();
            let Some(run) = r.run else {
                bail!("the server returned no run")
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_id": run.workflow_id, "run_id": run.run_id, "type": run.workflow_type,
                        "status": status_name(run.status), "run_number": run.run_number, "module_id": run.module_id,
                        "history_length": run.history_length})
                );
            } else {
                println!(
                    "{} {} {} run #{} {} events={}",
                    run.workflow_id,
                    run.run_id,
                    run.workflow_type,
                    run.run_number,
                    status_name(run.status),
                    run.history_length
                );
            }
        }
        ClientCommand::List {
            workflow_type,
            status,
            limit,
            page_token,
            json,
        } => {
            let status = match status.as_deref() {
                None => RunStatus::Unspecified,
                Some(name) => STATUSES
                    .iter()
                    .find(|s| status_name(**s as i32) == name)
                    .copied()
                    .with_context(|| {
                        format!(
                            "--status `{name}` is not one of: {}",
                            STATUSES.map(|s| status_name(s as i32)).join(", ")
                        )
                    })?,
            };
            let r = client
                .list_workflows(proto::ListWorkflowsRequest {
                    status: status as i32,
                    workflow_type: workflow_type.unwrap_or_default(),
                    page_size: limit,
                    page_token: page_token.unwrap_or_default(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if json {
                let runs: Vec<_> = r
                    .runs
                    .iter()
                    .map(|run| {
                        serde_json::json!({"workflow_id": run.workflow_id, "run_id": run.run_id,
                            "type": run.workflow_type, "status": status_name(run.status)})
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"runs": runs, "next_page_token": r.next_page_token})
                );
            } else {
                for run in &r.runs {
                    println!(
                        "{}\t{}\t{}\t{}",
                        run.workflow_id,
                        run.run_id,
                        run.workflow_type,
                        status_name(run.status)
                    );
                }
                if !r.next_page_token.is_empty() {
                    println!("(more: --page-token {})", r.next_page_token);
                }
            }
        }
        ClientCommand::History { workflow_id, json } => {
            let r = client
                .get_history(proto::GetHistoryRequest {
                    workflow_id,
                    run_id: String::new(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            if json {
                println!("{}", r.history_json);
            } else {
                let history = weft_history::History::from_json(r.history_json.as_bytes())?;
                for e in history.events {
                    println!("{:>4}  {}", e.seq, e.kind);
                }
            }
        }
        ClientCommand::Cancel {
            workflow_id,
            reason,
            json,
        } => {
            let r = client
                .cancel_workflow(proto::CancelWorkflowRequest {
                    workflow_id: workflow_id.clone(),
                    reason,
                })
                .await?
                .into_inner();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_id": workflow_id, "run_id": r.run_id,
                        "newly_requested": r.newly_requested})
                );
            } else if r.newly_requested {
                println!(
                    "cancellation requested for {workflow_id} (run {})",
                    r.run_id
                );
            } else {
                println!(
                    "{workflow_id} (run {}) had already been asked to cancel",
                    r.run_id
                );
            }
        }
        ClientCommand::Terminate {
            workflow_id,
            reason,
            json,
        } => {
            client
                .terminate_workflow(proto::TerminateWorkflowRequest {
                    workflow_id: workflow_id.clone(),
                    reason,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_id": workflow_id, "terminated": true})
                );
            } else {
                println!("terminated {workflow_id}");
            }
        }
        ClientCommand::Signal {
            workflow_id,
            name,
            payload,
            json,
        } => {
            let payload = json_arg("--payload", &payload)?;
            client
                .signal_workflow(proto::SignalWorkflowRequest {
                    workflow_id: workflow_id.clone(),
                    signal_name: name.clone(),
                    payload,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"workflow_id": workflow_id, "signal": name, "sent": true})
                );
            } else {
                println!("sent `{name}` to {workflow_id}");
            }
        }
    }
    Ok(0)
}
