//! The scenarios, in the order a full run measures them: references first, so every
//! figure that is compared with one finds it already measured.
//!
//! To add one: write a module implementing [`Scenario`], name the reference scenarios it
//! is compared with in [`Scenario::references`], look their figures up with
//! `RunContext::figure` using the name helpers they export (`memcpy::bandwidth_name`,
//! `aeron_rate::RATE_NAME`, `stats::latency_name`), and add it to [`all`]. A scenario with a second process re-runs
//! this executable with a hidden `--role` (see `pingpong::spawn_pong`) and adds that role
//! to `run_role` in main.rs. docs/BENCHMARKS.md describes the whole interface.

pub mod aeron_pingpong;
pub mod aeron_rate;
pub mod aeronmd_plugin;
pub mod attach;
pub mod c_examples;
pub mod driver_scale;
pub mod examples;
pub mod fan_out;
pub mod frame_cost;
pub mod frame_sweep;
pub mod iceoryx2_pingpong;
pub mod large_frames;
pub mod line_pingpong;
pub mod memcpy;
pub mod small_frames;
pub mod streams;
pub mod tp_pingpong;

use crate::scenario::Scenario;

/// Every scenario, references first.
pub fn all() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(memcpy::Memcpy),
        Box::new(large_frames::LargeFrames),
        Box::new(aeron_rate::AeronRate),
        Box::new(small_frames::SmallFrames),
        Box::new(frame_cost::FrameCost),
        Box::new(line_pingpong::LinePingPong),
        Box::new(aeron_pingpong::AeronPingPong),
        Box::new(iceoryx2_pingpong::Iceoryx2PingPong),
        Box::new(tp_pingpong::TpPingPong),
        Box::new(attach::Attach),
        Box::new(driver_scale::DriverScale),
        Box::new(streams::Streams),
        Box::new(frame_sweep::FrameSweep),
        Box::new(examples::Examples),
        Box::new(fan_out::FanOut),
        Box::new(c_examples::CExamples),
        Box::new(aeronmd_plugin::AeronmdPlugin),
    ]
}
