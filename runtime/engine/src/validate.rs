//! What a workflow component may import and must export, checked before it is accepted.

use wasmtime::component::Component;
use wasmtime::component::types::{ComponentItem, Type};

use crate::ModuleError;

/// The only package a workflow may import from.
pub const ALLOWED_IMPORT_PREFIX: &str = "weft:workflow/";

/// What to use instead of a forbidden import, by interface name prefix.
fn hint_for(import: &str) -> &'static str {
    const HINTS: &[(&str, &str)] = &[
        (
            "wasi:clocks/",
            "of the clocks weft answers wall-clock and monotonic-clock at 0.2.x; for time use \
             `ctx.now()` from weft-sdk, which records it in history",
        ),
        (
            "wasi:random/",
            "weft answers wasi:random at 0.2.x; or use `ctx.random()` or `ctx.uuid()` from \
             weft-sdk, seeded per run",
        ),
        (
            "wasi:http/",
            "do HTTP calls in an activity, run by a native worker",
        ),
        (
            "wasi:",
            "weft answers WASI 0.2.x's io, clocks, random, cli, filesystem and sockets \
             interfaces only; do other I/O in an activity, run by a native worker",
        ),
    ];
    HINTS
        .iter()
        .find(|(prefix, _)| import.starts_with(prefix))
        .map(|(_, hint)| *hint)
        .unwrap_or("reach the world through weft-sdk's `Ctx` (activities, timers, signals) instead")
}

/// Checks the first bytes: a component, not a core module or something else.
pub(crate) fn check_encoding(bytes: &[u8]) -> Result<(), ModuleError> {
    if wasmparser::Parser::is_component(bytes) {
        Ok(())
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Err(ModuleError::CoreModule)
    } else {
        Err(ModuleError::NotWasm {
            len: bytes.len(),
            head: bytes.iter().take(8).map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Checks the imports (only `weft:workflow/*` and the WASI the layer answers) and the `run` export's signature.
pub(crate) fn check_component(
    engine: &wasmtime::Engine,
    component: &Component,
) -> Result<(), ModuleError> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if !name.starts_with(ALLOWED_IMPORT_PREFIX) && !crate::wasi::answers(name) {
            return Err(ModuleError::ForbiddenImport {
                import: name.to_owned(),
                hint: hint_for(name),
            });
        }
    }
    let run = ty
        .get_export(engine, "run")
        .ok_or(ModuleError::MissingRun)?;
    let ComponentItem::ComponentFunc(func) = run.ty else {
        return Err(ModuleError::WrongRunSignature {
            found: "an export that is not a function".into(),
        });
    };
    let params: Vec<String> = func
        .params()
        .map(|(name, ty)| format!("{name}: {}", describe(&ty)))
        .collect();
    let results: Vec<String> = func.results().map(|ty| describe(&ty)).collect();
    let found = format!("func({}) -> {}", params.join(", "), results.join(", "));
    if found != EXPECTED_RUN {
        return Err(ModuleError::WrongRunSignature { found });
    }
    Ok(())
}

/// Whether the component imports any `wasi:*` interface (answered by [`crate::wasi`]).
pub(crate) fn imports_wasi(engine: &wasmtime::Engine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:"))
}

/// The `run` export as [`describe`] writes it.
pub(crate) const EXPECTED_RUN: &str = "func(input: list<u8>) -> result<list<u8>, record{kind: string, message: string, attempts: u32}>";

/// A WIT-like rendering of a component type, for comparing and for messages.
fn describe(ty: &Type) -> String {
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", describe(&list.ty())),
        Type::Record(record) => {
            let fields: Vec<String> = record
                .fields()
                .map(|f| format!("{}: {}", f.name, describe(&f.ty)))
                .collect();
            format!("record{{{}}}", fields.join(", "))
        }
        Type::Option(option) => format!("option<{}>", describe(&option.ty())),
        Type::Result(result) => {
            let part = |t: Option<Type>| t.map(|t| describe(&t)).unwrap_or_else(|| "_".into());
            format!("result<{}, {}>", part(result.ok()), part(result.err()))
        }
        other => format!("{other:?}"),
    }
}
