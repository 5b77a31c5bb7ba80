//! Modules: upload (checked, compiled, optionally vetted against recent runs), vet a module
//! against stored histories, migrate running runs to a module they replay clean on, list.

use super::*;

/// Running runs read per page when `MigrateRuns` lists a type's runs.
pub(super) const MIGRATE_PAGE: u32 = 500;

/// Vet-and-move rounds for a run whose history grows while it is vetted.
pub(super) const MIGRATE_ROUNDS: usize = 3;

/// How long `MigrateRuns` waits for another node to carry out a migration routed to it.
pub(super) const ROUTED_MIGRATION_WAIT: Duration = Duration::from_secs(10);

/// Where and how a history did not replay on a module.
pub(super) struct Divergence {
    /// The recorded event that did not match; 0 when the replay failed otherwise.
    seq: u64,
    recorded: String,
    new: String,
    message: String,
}

impl WorkflowApi {
    /// Replays `history` on its own module (compiled once, then kept) for the guest's log
    /// lines, as `weft replay` prints them.
    /// Compiles and checks a component, off the async workers, a few at a time, with a
    /// deadline; a bad one is INVALID_ARGUMENT naming the problem.
    pub(super) async fn compile(
        &self,
        bytes: Vec<u8>,
    ) -> Result<(Vec<u8>, WorkflowModule), Status> {
        // Compiling is CPU work: off the async workers, a few at a time, with a deadline.
        let slot = self
            .compiles
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        let engine = self.engine.clone();
        let compiling = tokio::task::spawn_blocking(move || {
            let checked = engine.load(&bytes);
            // Held until the compile ends, even past the caller's deadline.
            drop(slot);
            (bytes, checked)
        });
        let timeout = self.limits.module_compile_timeout;
        let (bytes, checked) = tokio::time::timeout(timeout, compiling)
            .await
            .map_err(|_| {
                Status::invalid_argument(format!(
                    "component rejected: compiling it took longer than {} ms \
                     (module_compile_timeout_ms); a workflow module should compile in well under a second",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| Status::internal(e.to_string()))?;
        let module =
            checked.map_err(|e| Status::invalid_argument(format!("component rejected: {e}")))?;
        Ok((bytes, module))
    }

    /// Replays the stored histories of the `limit` most recent runs of `workflow_type` (only
    /// the running ones with `running_only`) on `module`, on every core.
    pub(super) async fn vet(
        &self,
        workflow_type: &str,
        module: &WorkflowModule,
        limit: u32,
        running_only: bool,
    ) -> Result<proto::VetModuleResponse, Status> {
        let filter = RunFilter {
            status: running_only.then_some(RunStatus::Running),
            workflow_type: Some(workflow_type.to_owned()),
            workflow_id_prefix: None,
        };
        let runs = self
            .store
            .list_runs(&filter, None, limit)
            .await
            .or_status()?;
        let mut histories = Vec::with_capacity(runs.len());
        for run in &runs {
            if let Some(h) = self.store.history(&run.run_id).await.or_status()? {
                histories.push((run, h));
            }
        }
        let (runs, histories): (Vec<&RunRecord>, Vec<History>) = histories.into_iter().unzip();
        let replayed = self.replay_on(module, histories).await?;
        let mut response = proto::VetModuleResponse {
            module_id: module.sha256().to_owned(),
            vetted: replayed.len() as u32,
            ..Default::default()
        };
        for (run, replayed) in runs.iter().zip(replayed) {
            match replayed {
                None => response.clean += 1,
                Some(d) => response.divergences.push(proto::VetDivergence {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    seq: d.seq,
                    recorded: d.recorded,
                    new: d.new,
                    message: d.message,
                }),
            }
        }
        Ok(response)
    }

    /// Replays `histories` on `module` on every core, off the async workers: `None` for each
    /// that replays clean, else where and how it diverged.
    pub(super) async fn replay_on(
        &self,
        module: &WorkflowModule,
        histories: Vec<History>,
    ) -> Result<Vec<Option<Divergence>>, Status> {
        let engine = self.engine.clone();
        let module = module.clone();
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let replayed = tokio::task::spawn_blocking(move || {
            weft_engine::replay::replay_many(&engine, &module, histories, jobs)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(replayed
            .into_iter()
            .map(|replayed| match replayed.report {
                Ok(report) => match report.verdict {
                    ReplayVerdict::Clean => None,
                    ReplayVerdict::NonDeterminism(nd) => Some(Divergence {
                        seq: nd.seq,
                        recorded: nd.recorded.clone(),
                        new: nd.new.clone(),
                        message: nd.to_string(),
                    }),
                },
                Err(e) => Some(Divergence {
                    seq: 0,
                    recorded: String::new(),
                    new: String::new(),
                    message: format!("the replay failed: {e}"),
                }),
            })
            .collect())
    }

    /// The running runs `MigrateRuns` is about, in workflow id order: every one of the type,
    /// or those of the ids asked for (each must have a running run of the type).
    pub(super) async fn runs_to_migrate(
        &self,
        workflow_type: &str,
        workflow_ids: &[String],
    ) -> Result<Vec<RunRecord>, Status> {
        let mut runs = Vec::new();
        if workflow_ids.is_empty() {
            let filter = RunFilter {
                status: Some(RunStatus::Running),
                workflow_type: Some(workflow_type.to_owned()),
                workflow_id_prefix: None,
            };
            let mut cursor = None;
            loop {
                let page = self
                    .store
                    .list_runs(&filter, cursor.clone(), MIGRATE_PAGE)
                    .await
                    .or_status()?;
                let full = page.len() == MIGRATE_PAGE as usize;
                cursor = page.last().map(|r| (r.started_at_ms, r.run_id.clone()));
                runs.extend(page);
                if !full {
                    break;
                }
            }
        } else {
            for workflow_id in workflow_ids {
                let run = self
                    .store
                    .latest_run(workflow_id)
                    .await
                    .or_status()?
                    .ok_or_else(|| {
                        Status::not_found(format!("no workflow `{workflow_id}` is stored"))
                    })?;
                if run.status != RunStatus::Running {
                    return Err(Status::failed_precondition(format!(
                        "workflow `{workflow_id}` has no running run (its latest, {}, is {}); \
                         only running runs move",
                        run.run_id,
                        run.status.as_str()
                    )));
                }
                if run.workflow_type != workflow_type {
                    return Err(Status::invalid_argument(format!(
                        "workflow `{workflow_id}` is a `{}`, not a `{workflow_type}`",
                        run.workflow_type
                    )));
                }
                runs.push(run);
            }
        }
        runs.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        runs.dedup_by(|a, b| a.run_id == b.run_id);
        Ok(runs)
    }

    /// Waits, up to [`ROUTED_MIGRATION_WAIT`] in all, for the migrations routed to other nodes
    /// (`rows[i]`, run on `owner`) to show in the store: each becomes MIGRATED, or SKIPPED
    /// saying its owner did not re-pin it in time.
    pub(super) async fn await_routed(
        &self,
        to: &str,
        routed: Vec<(proto::RunMigration, String)>,
    ) -> Result<Vec<proto::RunMigration>, Status> {
        let deadline = tokio::time::Instant::now() + ROUTED_MIGRATION_WAIT;
        let mut waiting = routed;
        let mut done = Vec::with_capacity(waiting.len());
        while !waiting.is_empty() {
            let mut still = Vec::new();
            for (mut row, owner) in waiting {
                let run = self.store.run(&row.run_id).await.or_status()?;
                match run {
                    Some(run) if run.module_id == to => {
                        row.outcome = proto::MigrationOutcome::Migrated as i32;
                        done.push(row);
                    }
                    Some(run) if run.status == RunStatus::Running => still.push((row, owner)),
                    _ => {
                        row.outcome = proto::MigrationOutcome::Skipped as i32;
                        row.message = "it closed while it was moved".into();
                        done.push(row);
                    }
                }
            }
            waiting = still;
            if waiting.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                for (mut row, owner) in waiting.drain(..) {
                    row.outcome = proto::MigrationOutcome::Skipped as i32;
                    row.message = format!(
                        "its owner, node `{owner}`, did not re-pin it within {} s (its history \
                         may have grown meanwhile); run the migration again",
                        ROUTED_MIGRATION_WAIT.as_secs()
                    );
                    done.push(row);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(done)
    }

    pub(super) async fn upload_module(
        &self,
        request: Request<proto::UploadModuleRequest>,
    ) -> Result<Response<proto::UploadModuleResponse>, Status> {
        let principal = self.auth.require(&request, Right::Administer).await?;
        let audit = request.get_ref().workflow_type.clone();
        let peer = auth::peer_of(&request);
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        check_component(&req.component)?;
        let module_id = module_sha256(&req.component);
        let versions = self
            .store
            .modules()
            .await
            .or_status()?
            .into_iter()
            .filter(|m| m.workflow_type == workflow_type)
            .collect::<Vec<_>>();
        if versions.len() >= self.limits.max_module_versions
            && !versions.iter().any(|m| m.module_id == module_id)
        {
            return Err(Status::resource_exhausted(format!(
                "workflow type `{workflow_type}` has {} module versions, the limit \
                 (max_module_versions); upload under a new type name, or raise the limit",
                versions.len()
            )));
        }
        let bytes = req.component;
        let (bytes, module) = self.compile(bytes).await?;
        if req.vet_recent > 0 {
            let vetted = self
                .vet(workflow_type, &module, req.vet_recent.min(1000), false)
                .await?;
            if !vetted.divergences.is_empty() {
                let runs: Vec<String> = vetted
                    .divergences
                    .iter()
                    .map(|d| format!("{}/{}: {}", d.workflow_id, d.run_id, d.message))
                    .collect();
                return Err(Status::failed_precondition(format!(
                    "component refused: it cannot replay {} of the {} most recent runs of `{workflow_type}`: {}",
                    vetted.divergences.len(),
                    vetted.vetted,
                    runs.join("; ")
                )));
            }
        }
        self.store
            .put_module(workflow_type, &module_id, &bytes, self.clock.now_ms())
            .await
            .or_status()?;
        self.executor.module_uploaded(workflow_type, &module_id);
        tracing::info!(workflow_type, module_id = %module_id, "module uploaded");
        let target = format!("{audit} {module_id}");
        self.auth
            .audit(&principal, &peer, "upload_module", &target, "ok")
            .await;
        Ok(Response::new(proto::UploadModuleResponse { module_id }))
    }

    pub(super) async fn vet_module(
        &self,
        request: Request<proto::VetModuleRequest>,
    ) -> Result<Response<proto::VetModuleResponse>, Status> {
        // Compiling and replaying a stranger's component is as costly as an upload.
        self.auth.require(&request, Right::Administer).await?;
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        check_component(&req.component)?;
        let limit = match req.limit {
            0 => 100,
            n => n.min(1000),
        };
        let (_, module) = self.compile(req.component).await?;
        let vetted = self
            .vet(workflow_type, &module, limit, req.running_only)
            .await?;
        tracing::info!(workflow_type, module_id = %vetted.module_id, vetted = vetted.vetted,
            diverged = vetted.divergences.len(), "module vetted");
        Ok(Response::new(vetted))
    }

    pub(super) async fn migrate_runs(
        &self,
        request: Request<proto::MigrateRunsRequest>,
    ) -> Result<Response<proto::MigrateRunsResponse>, Status> {
        use proto::MigrationOutcome as Outcome;
        let principal = self.auth.require(&request, Right::Administer).await?;
        let peer = auth::peer_of(&request);
        let req = request.into_inner();
        let workflow_type = required("workflow_type", &req.workflow_type)?;
        let to = required("to_module_id", &req.to_module_id)?;
        let stored = self.store.modules().await.or_status()?;
        match stored.iter().find(|m| m.module_id == to) {
            None => {
                return Err(Status::not_found(format!(
                    "no module `{to}` is stored; upload it first (`weft upload --type \
                     {workflow_type} FILE`) and pass the module id it answers"
                )));
            }
            Some(m) if m.workflow_type != workflow_type => {
                return Err(Status::invalid_argument(format!(
                    "module `{to}` was uploaded for workflow type `{}`, not `{workflow_type}`",
                    m.workflow_type
                )));
            }
            Some(_) => {}
        }
        let bytes = self
            .store
            .module(to)
            .await
            .or_status()?
            .ok_or_else(|| Status::not_found(format!("module `{to}` is not stored")))?;
        let (_, module) = self.compile(bytes).await?;
        let runs = self
            .runs_to_migrate(workflow_type, &req.workflow_ids)
            .await?;
        let mut rows: Vec<proto::RunMigration> = Vec::with_capacity(runs.len());
        let mut to_vet: Vec<RunRecord> = Vec::new();
        for run in runs {
            if run.module_id == to {
                rows.push(proto::RunMigration {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    from_module_id: run.module_id.clone(),
                    outcome: Outcome::AlreadyOnModule as i32,
                    events: run.history_length,
                    ..Default::default()
                });
            } else {
                to_vet.push(run);
            }
        }
        // Runs another node owns: moved there, confirmed from the store at the end.
        let mut routed = Vec::new();
        for round in 1..=MIGRATE_ROUNDS {
            if to_vet.is_empty() {
                break;
            }
            let mut histories = Vec::with_capacity(to_vet.len());
            let mut vetted_runs = Vec::with_capacity(to_vet.len());
            for run in to_vet.drain(..) {
                if let Some(h) = self.store.history(&run.run_id).await.or_status()? {
                    histories.push(h);
                    vetted_runs.push(run);
                }
            }
            let lengths: Vec<u64> = histories.iter().map(|h| h.events.len() as u64).collect();
            let replayed = self.replay_on(&module, histories).await?;
            for ((run, events), divergence) in vetted_runs.into_iter().zip(lengths).zip(replayed) {
                let mut row = proto::RunMigration {
                    workflow_id: run.workflow_id.clone(),
                    run_id: run.run_id.clone(),
                    from_module_id: run.module_id.clone(),
                    events,
                    ..Default::default()
                };
                if let Some(d) = divergence {
                    row.outcome = Outcome::Diverged as i32;
                    row.seq = d.seq;
                    row.recorded = d.recorded;
                    row.new = d.new;
                    row.message = d.message;
                    rows.push(row);
                    continue;
                }
                if req.dry_run {
                    row.outcome = Outcome::WouldMigrate as i32;
                    rows.push(row);
                    continue;
                }
                let skipped = |row: &mut proto::RunMigration, message: String| {
                    row.outcome = Outcome::Skipped as i32;
                    row.message = message;
                };
                match self
                    .executor
                    .migrate(&run.run_id, &run.module_id, to, events)
                    .await
                {
                    Ok(Migration::Migrated { .. }) => row.outcome = Outcome::Migrated as i32,
                    Ok(Migration::Routed { owner }) => {
                        routed.push((row, owner));
                        continue;
                    }
                    Ok(Migration::HistoryGrew { events: now }) if round < MIGRATE_ROUNDS => {
                        tracing::debug!(run_id = %run.run_id, vetted = events, now,
                            "history grew while vetted; vetting again");
                        to_vet.push(run);
                        continue;
                    }
                    Ok(Migration::HistoryGrew { events: now }) => skipped(
                        &mut row,
                        format!(
                            "its history kept growing while it was vetted ({events} events \
                             vetted, {now} now, {MIGRATE_ROUNDS} tries); run the migration again"
                        ),
                    ),
                    Ok(Migration::Moved { module_id }) if module_id == to => {
                        row.outcome = Outcome::AlreadyOnModule as i32;
                    }
                    Ok(Migration::Moved { module_id }) => skipped(
                        &mut row,
                        format!("it was moved to module `{module_id}` meanwhile"),
                    ),
                    Err(ServerError::RunClosed(_)) => {
                        skipped(&mut row, "it closed while it was vetted".into());
                    }
                    Err(e) => skipped(&mut row, format!("the migration failed: {e}")),
                }
                rows.push(row);
            }
        }
        rows.extend(self.await_routed(to, routed).await?);
        rows.sort_by(|a, b| a.workflow_id.cmp(&b.workflow_id));
        let count = |o: Outcome| rows.iter().filter(|r| r.outcome == o as i32).count() as u32;
        let response = proto::MigrateRunsResponse {
            to_module_id: to.to_owned(),
            migrated: count(Outcome::Migrated),
            diverged: count(Outcome::Diverged),
            runs: rows,
        };
        tracing::info!(workflow_type, module_id = %to, migrated = response.migrated,
            diverged = response.diverged, dry_run = req.dry_run, "runs migrated");
        if !req.dry_run {
            let target = format!("{workflow_type} -> {to}: {} migrated", response.migrated);
            self.auth
                .audit(&principal, &peer, "migrate_runs", &target, "ok")
                .await;
        }
        Ok(Response::new(response))
    }

    pub(super) async fn list_modules(
        &self,
        request: Request<proto::ListModulesRequest>,
    ) -> Result<Response<proto::ListModulesResponse>, Status> {
        self.auth.require(&request, Right::Read).await?;
        let modules = self.store.modules().await.or_status()?;
        Ok(Response::new(proto::ListModulesResponse {
            modules: modules
                .into_iter()
                .map(|m| proto::ModuleVersion {
                    workflow_type: m.workflow_type,
                    module_id: m.module_id,
                    size_bytes: m.size_bytes,
                    uploaded_at_ms: m.uploaded_at_ms,
                    newest: m.newest,
                    running_runs: m.running_runs,
                    closed_runs: m.closed_runs,
                })
                .collect(),
        }))
    }
}

/// A component's bytes are there and within the limit.
pub(super) fn check_component(component: &[u8]) -> Result<(), Status> {
    if component.is_empty() {
        return Err(Status::invalid_argument(
            "component is required: the bytes of a .wasm component",
        ));
    }
    if component.len() > MAX_COMPONENT_BYTES {
        return Err(Status::invalid_argument(format!(
            "component is {} bytes; the limit is {MAX_COMPONENT_BYTES}",
            component.len()
        )));
    }
    Ok(())
}
