//! nhacviec: reminds officers of their directives' deadlines, escalates overdue work up the
//! chain, and alarms when work is closed without being done.
//!
//! Data flows one way: config → store → planner → outbox → delivery → channels. Only
//! [`clock`] reads the system's time: the entry points (the scheduler, the CLI's default
//! instant) ask it for `now`, and everything else takes `now` as an argument — which is what
//! makes `plan --at` and `tick --at` possible.

pub mod app;
pub mod calendar;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod digest;
pub mod digest_render;
pub mod domain;
pub mod http;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod monthly;
pub mod notify;
pub mod outbox;
pub mod parallel;
pub mod planner;
pub mod policy;
pub mod preflight;
pub mod render;
pub mod reports;
pub mod scheduler;
pub mod store;
pub mod time;
