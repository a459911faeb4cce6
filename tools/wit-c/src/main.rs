//! `parade-wit-c`: the two steps of building a C actor that Debian's toolchain cannot do.
//!
//! Debian's clang and wasi-libc build WASI preview 1 core modules. A Parade plugin is a
//! component of the `parade:actor` world, so a C actor needs
//! - C bindings for the world (`bindings`, wit-bindgen's C generator): a header, the glue
//!   code, and an object file carrying the world's type, which the linker keeps in the
//!   module as a custom section;
//! - the linked module turned into a component (`component`, wit-component), with the
//!   WASI preview 1 imports wasi-libc makes adapted onto WASI preview 2 by the adapter that
//!   ships with wasmtime (the reactor flavour: an actor has no `main`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::Resolve;

#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes C bindings for a WIT world: NAME.h, NAME.c and NAME_component_type.o.
    Bindings {
        /// The WIT folder (Parade's `wit/`).
        #[arg(long)]
        wit: PathBuf,
        /// The world to implement.
        #[arg(long, default_value = "actor")]
        world: String,
        /// Where to write the files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Turns a WASI preview 1 core module (with its world's type linked in) into a component.
    Component {
        /// The core module clang linked.
        module: PathBuf,
        /// The component to write.
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bindings { wit, world, out } => bindings(&wit, &world, &out),
        Command::Component { module, output } => component(&module, &output),
    }
}

fn bindings(wit: &std::path::Path, world: &str, out: &std::path::Path) -> anyhow::Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .with_context(|| format!("cannot read the WIT in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, contents) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn component(module: &std::path::Path, output: &std::path::Path) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(module).with_context(|| format!("cannot read {}", module.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .module(&bytes)
        .with_context(|| format!("{}: not a module with a component type", module.display()))?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .validate(true)
        .encode()
        .with_context(|| format!("cannot make a component of {}", module.display()))?;
    std::fs::write(output, component)
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(())
}
