// Compiles leakscope's agent core (C++, ../src) into the crate, with the
// entry the crate calls (../src/crate/entry.cc) and the task ABI.
use std::path::PathBuf;

fn main() {
    let native = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let core = [
        "agent", "agent_heap", "clock", "json", "ledger", "ownership", "probe_detect", "probe_glibc", "probe_jemalloc", "probe_mimalloc", "proc", "sampler",
        "server", "stacks", "strings", "tasks", "tasks_json",
    ];
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .opt_level(2)
        .warnings(false)
        .flag("-fvisibility=hidden")
        .include(native.join("include"));
    for name in core {
        build.file(native.join("src/core").join(format!("{name}.cc")));
    }
    build.file(native.join("src/crate/entry.cc"));
    build.file(native.join("src/abi/task_abi.cc"));
    build.compile("leakscope_agent");
    println!("cargo:rerun-if-changed={}", native.join("src").display());
    println!("cargo:rerun-if-changed={}", native.join("include").display());
}
