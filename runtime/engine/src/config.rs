//! Engine settings and the deterministic wasmtime configuration.

/// Limits and allocation strategy of an [`Engine`](crate::Engine).
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Fuel (roughly, Wasm instructions) one activation may burn: the guest code running
    /// between two waits. Exhausting it fails the run with `CpuBudgetExceeded`.
    pub fuel_per_activation: u64,
    /// Largest linear memory of one instance, in bytes. Exceeding it fails the run with
    /// `MemoryLimitExceeded`.
    pub max_memory_bytes: usize,
    /// Use wasmtime's pooling allocator with this many instance slots (faster instantiation,
    /// memory reserved up front); `None` allocates on demand.
    pub pooling_instances: Option<u32>,
    /// How far one run may grow (history length, pending operations); past it the run fails
    /// with `LimitExceeded`.
    pub limits: weft_history::Limits,
    /// Where compiled components are kept between processes (by module SHA-256 and the
    /// engine's settings), so a restart does not recompile them: a Python module takes
    /// seconds to compile. `None`: compile in every process.
    pub compiled_cache_dir: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            // About a second of guest CPU: far above any orchestration step, low enough
            // that a runaway loop is stopped promptly.
            fuel_per_activation: 1_000_000_000,
            max_memory_bytes: 64 << 20,
            pooling_instances: None,
            limits: weft_history::Limits::default(),
            compiled_cache_dir: None,
        }
    }
}

/// Bytes of a pooled memory, table or stack kept mapped between two runs in the same slot:
/// more than an orchestration step of the example guests touches, little to reset.
const KEEP_RESIDENT_BYTES: usize = 256 << 10;

/// Guard after each pooled memory: enough for the constant offsets compiled code folds into
/// its bounds checks.
const GUARD_BYTES: u64 = 2 << 20;

pub(crate) fn wasmtime_config(config: &EngineConfig) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        // Determinism: the same bits out for the same bits in, on every machine.
        .cranelift_nan_canonicalization(true)
        .relaxed_simd_deterministic(true)
        // Guest stacks in non-determinism errors, panics and the replay debugger: names
        // always, `file:line` where the component kept its DWARF (`weft build --debug`).
        .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Enable)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64));
    // Threads and component-model async are not compiled into this wasmtime (no `threads`
    // or `component-model-async` feature): a component cannot turn them on.
    if let Some(instances) = config.pooling_instances {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        // wit-component wraps a guest in a few core instances (the guest, its shims), each
        // with a table; one memory per guest.
        pool.total_component_instances(instances)
            .total_core_instances(instances.saturating_mul(4))
            .total_memories(instances)
            .total_tables(instances.saturating_mul(4))
            .total_stacks(instances)
            .max_memory_size(config.max_memory_bytes)
            // A slot reused by the same module keeps its first pages mapped and is reset with
            // a memset: no page faults on the next run, no munmap and TLB shootdown on the last.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_BYTES)
            .async_stack_keep_resident(KEEP_RESIDENT_BYTES);
        // Each slot reserves only the largest memory a run may have (plus a guard), not the
        // 4 GiB that would let compiled code skip bounds checks: with a slot per cached run
        // the pool would otherwise reserve tens of TiB of address space.
        c.memory_reservation(config.max_memory_bytes as u64)
            .memory_guard_size(GUARD_BYTES)
            .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    c
}
