//! nhacviec: reminds officers of their directives' deadlines, escalates overdue work up the
//! chain, and alarms when work is closed without being done.
//!
//! Data flows one way: config → store (filled by import and sources) → planner → outbox →
//! delivery → channels. Only [`clock`] reads the system's time: the entry points (the
//! scheduler, the CLI's default instant) ask it for `now`, and everything else takes `now` as
//! an argument — which is what makes `plan --at` and `tick --at` possible.

pub mod answer;
pub mod app;
pub mod calendar;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod domain;
pub mod import;
pub mod logging;
pub mod metrics;
pub mod plan;
pub mod render;
pub mod report;
pub mod source;
pub mod store;
pub mod web;
