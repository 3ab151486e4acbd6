//! `c-examples`: the C examples of ffi/ (`producer.c`, `consumer.c --verify`, linked
//! against libtensorpool.so as README's C section builds them, with `-O2`) beside the
//! Rust examples, the same flags against the same in-process driver, at 640 KiB and 64 B.
//!
//! The C ABI hands out the slot and the payload buffer in place (no copy of its own), so
//! the C pair should do what the Rust pair does: the target is 95 % of the Rust figure.
//! The two pairs alternate Rust, C, C, Rust at each size (so a drift of the machine's
//! load hits both alike), and each pair's figure is the better of its two runs.
//!
//! A pair's figure is the consumer's delivered rate while the producer publishes as fast
//! as it can: with a producer, a consumer and the driver on 2 cores it depends on how the
//! scheduler interleaves them as much as on either program. The producers alone (no
//! consumer, Rust, C, Rust, C) isolate what the C ABI costs on the publishing side.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::driver_host::{DriverSpec, InProcessDriver};
use crate::error::{BenchError, Context};
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::driver_scale::locate_built_program;
use crate::scenarios::examples::{ExamplePair, PairRun, SMALL_PAYLOAD};
use crate::scenarios::large_frames::TARGET_PAYLOAD;
use crate::scenarios::memcpy;
use crate::stats::size_label;
use crate::sys::{workspace_root, Scratch};

/// The C pair must reach this fraction of the Rust pair's figure.
pub const C_ABI_TARGET: f64 = 0.95;

/// The `c-examples` scenario.
pub struct CExamples;

impl Scenario for CExamples {
    fn name(&self) -> &'static str {
        "c-examples"
    }

    fn summary(&self) -> &'static str {
        "ffi/examples producer.c → consumer.c --verify beside the Rust examples, 640 KiB and 64 B, same driver"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let rust_producer = locate_built_program(
            ctx,
            "examples/producer",
            &["-p", "tensorpool", "--examples"],
        )?;
        let rust_consumer = locate_built_program(
            ctx,
            "examples/consumer",
            &["-p", "tensorpool", "--examples"],
        )?;
        let library =
            locate_built_program(ctx, "libtensorpool.so", &["-p", "tensorpool-ffi", "--lib"])?;
        let scratch = Scratch::new("c-examples")?;
        let c_producer = compile_c_example(&library, "producer", &scratch)?;
        let c_consumer = compile_c_example(&library, "consumer", &scratch)?;
        let pools = [
            (1u16, 4096u32),
            (2, memcpy::stride_for(TARGET_PAYLOAD) as u32),
        ];
        let spec = DriverSpec::in_scratch(&scratch, memcpy::RING_SLOTS as u32, &pools, 1)?;
        let _driver = InProcessDriver::start(&spec, None)?;
        let rust = ExamplePair {
            tag: "rust",
            producer: rust_producer,
            consumer: rust_consumer,
            spec: &spec,
            scratch: &scratch,
        };
        let c = ExamplePair {
            tag: "c",
            producer: c_producer,
            consumer: c_consumer,
            spec: &spec,
            scratch: &scratch,
        };

        let mut figures = Vec::new();
        for (payload, unit) in [(TARGET_PAYLOAD, "MiB/s"), (SMALL_PAYLOAD, "frames/s")] {
            let value = |run: &PairRun| match unit {
                "MiB/s" => run.mib_per_s,
                _ => run.frames_per_s,
            };
            let rust_first = rust.run(payload, ctx.duration)?;
            let c_first = c.run(payload, ctx.duration)?;
            let c_second = c.run(payload, ctx.duration)?;
            let rust_second = rust.run(payload, ctx.duration)?;
            let best = |a: PairRun, b: PairRun| if value(&a) >= value(&b) { a } else { b };
            let rust_best = best(rust_first, rust_second);
            let c_best = best(c_first, c_second);
            let label = size_label(payload);
            let reference = Figure::new(
                self.name(),
                format!("Rust examples {label}"),
                value(&rust_best),
                unit,
            )
            .marked_reference()
            .with_note(format!("best of 2: {}", rust_best.note()));
            let figure = Figure::new(
                self.name(),
                format!("C examples {label}"),
                value(&c_best),
                unit,
            )
            .against(Some(&reference))
            .with_target(Target::RatioAtLeast(C_ABI_TARGET))
            .with_note(format!("best of 2: {}", c_best.note()));
            figures.extend([reference, figure]);

            let rust_alone = rust.publish_alone(payload, ctx.duration)?.max(0.0);
            let c_alone = c.publish_alone(payload, ctx.duration)?;
            let rust_alone = rust_alone.max(rust.publish_alone(payload, ctx.duration)?);
            let c_alone = c_alone.max(c.publish_alone(payload, ctx.duration)?);
            let reference = Figure::new(
                self.name(),
                format!("Rust producer alone {label}"),
                rust_alone,
                "frames/s",
            )
            .marked_reference()
            .with_note("no consumer: what publishing costs the program; best of 2");
            let figure = Figure::new(
                self.name(),
                format!("C producer alone {label}"),
                c_alone,
                "frames/s",
            )
            .against(Some(&reference))
            .with_target(Target::RatioAtLeast(C_ABI_TARGET))
            .with_note("no consumer; best of 2");
            figures.extend([reference, figure]);
        }
        Ok(figures)
    }
}

/// Compiles `ffi/examples/<name>.c` with `-O2` against the header in ffi/include and
/// `library` (linked by rpath, as pkg-config's flags would link an installed copy).
fn compile_c_example(library: &Path, name: &str, scratch: &Scratch) -> Result<PathBuf, BenchError> {
    let ffi = workspace_root().join("ffi");
    let lib_dir = library.parent().unwrap_or(Path::new("."));
    let out = scratch.join(&format!("{name}-c"));
    let output = Command::new("cc")
        .current_dir(&ffi)
        .args(["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror"])
        .args(["-Iinclude", "-Iexamples"])
        .arg(format!("examples/{name}.c"))
        .arg("-L")
        .arg(lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-ltensorpool")
        .arg("-o")
        .arg(&out)
        .output()
        .setup("running cc (a C compiler is needed for this scenario)")?;
    if !output.status.success() {
        return Err(BenchError::Setup(format!(
            "cc examples/{name}.c failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(out)
}
